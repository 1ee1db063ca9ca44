"""Benchmark the exact peak-memory order search on irregular graphs.

Generates, deterministically from seeds, two families of irregularly wired networks:

* NASNet-like: stacked cells; each cell preprocesses the two previous cell outputs with 1x1
  convs, then builds ~5 blocks that each combine two of the cell's hidden states (two branch
  op chains and an add), and concatenates the unused block outputs at the end. Two reduction
  cells halve the resolution and double the width.
* Randomly wired (Xie et al., "Exploring Randomly Wired Neural Networks"): four stages, each a
  Watts-Strogatz graph WS(N, K=4, P=0.75) made acyclic by node index; nodes without inputs read
  the stage input, nodes without outputs are averaged by a stage output op.

Tensor sizes are H x W x C x 2 bytes (16-bit activations) with random base widths and op
choices. For each graph the script prints the spec-order peak, the greedy peak, the search
result, the time to a proven optimum (or the gap when the budget ends), as a markdown table.

Usage: python benchmarks/bench_order_search.py [--quick] [--seeds N] [--time-limit S]
"""

from __future__ import annotations

import argparse
import random

import networkx as nx

from archspec.analysis.schedule import (
    Problem,
    greedy_order,
    lower_bound,
    optimal_order,
    peak,
)

BYTES = 2  # 16-bit activations


class _Builder:
    """Accumulates ops in topological order."""

    def __init__(self) -> None:
        self.ops: list[str] = []
        self.inputs: dict[str, tuple[str, ...]] = {}
        self.size: dict[str, int] = {}
        self.workspace: dict[str, int] = {}
        self.graph_inputs: list[str] = []

    def graph_input(self, name: str, hw: int, ch: int) -> str:
        self.graph_inputs.append(name)
        self.size[name] = hw * hw * ch * BYTES
        return name

    def op(self, name: str, reads: tuple[str, ...], hw: int, ch: int, ws: int = 0) -> str:
        self.ops.append(name)
        self.inputs[name] = reads
        self.size[name] = hw * hw * ch * BYTES
        if ws:
            self.workspace[name] = ws
        return name

    def problem(self, outputs: tuple[str, ...]) -> Problem:
        return Problem(
            ops=tuple(self.ops),
            inputs=dict(self.inputs),
            size=dict(self.size),
            workspace=dict(self.workspace),
            graph_inputs=tuple(self.graph_inputs),
            outputs=outputs,
        )


def _finish(b: _Builder, last: str, target_ops: int) -> Problem:
    """Append the classifier head: a short chain of small ops up to exactly ``target_ops``."""
    k = 0
    while True:
        last = b.op(f"head{k}", (last,), 1, 1000)
        k += 1
        if len(b.ops) >= target_ops:
            return b.problem(outputs=(last,))


def nasnet_like(target_ops: int, seed: int) -> Problem:
    """A NASNet-like stack of cells with ``target_ops`` ops (ops chains end the last cell)."""
    rng = random.Random(seed * 100_003 + target_ops)
    b = _Builder()
    width = rng.choice([32, 44, 48, 64])
    x = b.graph_input("image", 224, 3)
    stem0 = b.op("stem0", (x,), 112, width // 2)
    stem1 = b.op("stem1", (stem0,), 56, width)
    # (tensor, resolution, channels) of the two previous cell outputs
    prev2, prev1 = (stem0, 112, width // 2), (stem1, 56, width)
    n_cells = max(1, round((target_ops - 3) / 21))  # about 21 ops per cell
    reductions = {n_cells // 3, 2 * n_cells // 3} if n_cells >= 3 else set()
    hw, ch = 56, width
    cell = 0
    while len(b.ops) + 12 <= target_ops - 1:  # room for a cell of two blocks and the head
        reduce = cell in reductions
        if reduce:
            hw, ch = hw // 2, ch * 2
        p = f"c{cell}"
        states = []
        for k, (t, thw, _) in enumerate((prev2, prev1)):
            out_hw = min(hw, thw)  # a strided 1x1 conv (factorized reduce) when shrinking
            states.append((b.op(f"{p}_pre{k}", (t,), out_hw, ch), out_hw))
        used: set[str] = set()
        for blk in range(5):
            if blk >= 2 and len(b.ops) + 5 + 1 > target_ops - 1:
                break
            branch_outs = []
            for side in range(2):
                src, src_hw = rng.choice(states)
                used.add(src)
                kind = rng.choice(["sep3", "sep5", "avg", "max", "id"])
                name = f"{p}_b{blk}{'lr'[side]}"
                if kind in ("sep3", "sep5"):
                    # depthwise output as workspace, two stacked separable convs
                    ws_in = src_hw * src_hw * ch * BYTES
                    mid = b.op(f"{name}_{kind}a", (src,), hw, ch, ws=ws_in)
                    out = b.op(f"{name}_{kind}b", (mid,), hw, ch, ws=hw * hw * ch * BYTES)
                elif kind == "id" and src_hw == hw:
                    out = src
                else:
                    out = b.op(f"{name}_{kind}", (src,), hw, ch)
                branch_outs.append(out)
            add = b.op(f"{p}_b{blk}_add", tuple(dict.fromkeys(branch_outs)), hw, ch)
            states.append((add, hw))
        unused = tuple(s for s, _ in states[2:] if s not in used)
        concat = b.op(f"{p}_concat", unused, hw, ch * len(unused))
        prev2, prev1 = prev1, (concat, hw, ch * len(unused))
        cell += 1
    return _finish(b, prev1[0], target_ops)


def _ws_stage(
    b: _Builder, rng: random.Random, prefix: str, stage_in: str, n_nodes: int, hw: int, ch: int
) -> str:
    """One randomly wired stage: WS(n_nodes, 4, 0.75), edges oriented by node index."""
    g = nx.watts_strogatz_graph(n_nodes, 4, 0.75, seed=rng.randrange(2**31))
    preds: dict[int, list[int]] = {v: [] for v in range(n_nodes)}
    for u, v in g.edges():
        preds[max(u, v)].append(min(u, v))
    has_succ = {u for v in preds for u in preds[v]}
    names: dict[int, str] = {}
    for v in range(n_nodes):
        node_ch = max(8, int(ch * rng.uniform(0.8, 1.2)))
        reads = tuple(names[u] for u in sorted(preds[v])) or (stage_in,)
        src_bytes = max(b.size[r] for r in reads)
        # aggregation buffer (several inputs) plus the depthwise intermediate
        ws = (src_bytes if len(reads) > 1 else 0) + hw * hw * node_ch * BYTES
        names[v] = b.op(f"{prefix}_n{v}", reads, hw, node_ch, ws=ws)
    sinks = tuple(names[v] for v in range(n_nodes) if v not in has_succ)
    return b.op(f"{prefix}_out", sinks, hw, ch)


def randwire(target_ops: int, seed: int) -> Problem:
    """A randomly wired network: stages of N = 32 nodes (as in the paper) over 4 resolutions."""
    rng = random.Random(seed * 100_003 + target_ops)
    b = _Builder()
    width = rng.choice([78, 109, 154])
    x = b.graph_input("image", 224, 3)
    stem0 = b.op("stem0", (x,), 112, width // 2)
    stage_in = b.op("stem1", (stem0,), 56, width)
    room = target_ops - 3 - 1  # stems, graph head
    n_stages = max(1, -(-room // 33))  # ceil: at most 32 nodes (+ the output op) per stage
    for stage in range(n_stages):
        left = room - (len(b.ops) - 2)
        n_nodes = max(5, min(32, left - 1) if stage < n_stages - 1 else left - 1)
        level = min(3, stage * 4 // n_stages)
        hw, ch = 56 >> level, width << level
        stage_in = _ws_stage(b, rng, f"s{stage}", stage_in, n_nodes, hw, ch)
    return _finish(b, stage_in, target_ops)


def ws_flat(target_ops: int, seed: int) -> Problem:
    """Stress test: a single randomly wired stage of ``target_ops - 4`` nodes at one size."""
    rng = random.Random(seed * 100_003 + target_ops)
    b = _Builder()
    width = rng.choice([78, 109, 154])
    x = b.graph_input("image", 224, 3)
    stem = b.op("stem", (x,), 28, width)
    out = _ws_stage(b, rng, "s0", stem, target_ops - 3, 28, width)
    return _finish(b, out, target_ops)


FAMILIES = (("nasnet", nasnet_like), ("randwire", randwire), ("ws-flat", ws_flat))
MAIN = ("nasnet", "randwire")  # the final line covers these; ws-flat is a stress test


def _fmt_bytes(n: int) -> str:
    return f"{n / 1e6:.3f} MB" if n >= 1e5 else f"{n} B"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="sizes 50 and 100 only, one seed")
    parser.add_argument("--seeds", type=int, default=2, help="graphs per family and size")
    parser.add_argument("--time-limit", type=float, default=10.0, help="seconds per graph")
    args = parser.parse_args()
    sizes = [50, 100] if args.quick else [50, 100, 200, 400]
    seeds = 1 if args.quick else args.seeds

    print(f"Order search benchmark (1 core, budget {args.time_limit:g} s per graph)\n")
    print(
        "| graph | ops | spec-order peak | greedy peak | best peak | lower bound | proven "
        "| gap | saving vs spec | states | seconds |"
    )
    print("|---|---:|---:|---:|---:|---:|:---:|---:|---:|---:|---:|")
    solved: dict[tuple[str, int], bool] = {}
    for size in sizes:
        for family, make in FAMILIES:
            for seed in range(seeds):
                problem = make(size, seed)
                spec_peak = peak(problem, problem.ops)[0]
                greedy_peak = peak(problem, greedy_order(problem))[0]
                res = optimal_order(problem, max_states=10**8, time_limit=args.time_limit)
                assert res.peak_bytes == peak(problem, res.order)[0]
                assert lower_bound(problem) <= res.lower_bound_bytes <= res.peak_bytes
                gap = (res.peak_bytes - res.lower_bound_bytes) / res.peak_bytes
                saving = 1 - res.peak_bytes / spec_peak
                key = (family, size)
                solved[key] = solved.get(key, True) and res.optimal
                print(
                    f"| {family}-{size} s{seed} | {len(problem.ops)} | {_fmt_bytes(spec_peak)} "
                    f"| {_fmt_bytes(greedy_peak)} | {_fmt_bytes(res.peak_bytes)} "
                    f"| {_fmt_bytes(res.lower_bound_bytes)} | {'yes' if res.optimal else 'no'} "
                    f"| {gap:.2%} | {saving:.1%} | {res.states_explored} | {res.seconds:.2f} |",
                    flush=True,
                )

    def largest(families: tuple[str, ...]) -> int:
        best = 0
        for size in sizes:
            if not all(solved[(f, size)] for f in families):
                break
            best = size
        return best

    print()
    for family, _ in FAMILIES:
        n = largest((family,))
        print(f"{family}: largest size solved exactly within {args.time_limit:g} s: {n}")
    print(f"\nlargest size solved exactly within {args.time_limit:g} s: {largest(MAIN)}")
    print(f"(over {' and '.join(MAIN)}; every graph of that size and all smaller sizes proven)")


if __name__ == "__main__":
    main()
