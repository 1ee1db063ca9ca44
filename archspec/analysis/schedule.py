"""Peak-memory scheduling of a DAG of ops (MobileNetV2 paper, section 5.1, Eq. 1).

This module is generic: it knows nothing about specs or op types. A :class:`Problem` is a DAG
whose ops each produce one tensor; the memory of an execution order is computed with the
paper's Eq. 1 under a fixed convention:

    memory(step i) = sum of sizes of tensors live at step i + size(output of o_i) + workspace(o_i)

A tensor produced by o_j (j < i), or a graph input, is live at step i iff it is a graph output or
one of its readers sits at position >= i. So the inputs of o_i count, its output counts, its
workspace counts, and a tensor is freed right after its last reader. An op output that nobody
reads and that is not a graph output is counted at its own step only. No in-place reuse.

The exact search (:func:`optimal_order`):

* Pieces. An op comparable to every other op (a "cut", e.g. each op of a chain or the output op
  of a randomly wired stage) splits every order in two, so the ops between consecutive cuts
  form independent pieces and the peak is the max over pieces. Pieces are solved hardest first;
  a piece only has to reach the best proven lower bound of the whole problem (the floor).
* Per piece, an incumbent from greedy rules (and a small beam search on larger pieces), then
  budgeted questions "is there an order whose every step is <= B?", each a depth-first search
  over the sets of done ops (the live bytes depend on that set only; sets are int bitmasks).
  Asking with B = incumbent - 1 until the answer is no proves the incumbent optimal.
* A memo keeps for each failed state a lower bound on the best max over its future steps, so
  no failed subtree is searched twice; a failed question also yields the next critical budget.
* Dominance: an op whose step fits the budget and which does not raise the live bytes is run at
  once, without branching. Safe because moving it to the front of any completion does not raise
  any later step: the bytes it frees can only grow as more ops run, and its output is only read
  after it (live bytes are a submodular function of the done set).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

__all__ = [
    "Placement",
    "Problem",
    "ScheduleResult",
    "brute_force_order",
    "greedy_order",
    "live_at",
    "lower_bound",
    "optimal_order",
    "peak",
    "place_buffers",
    "step_memory",
]


@dataclass(frozen=True)
class Problem:
    """A DAG of ops; each op produces exactly one tensor (named like the op).

    Attributes:
        ops: op names, in a valid topological order (the "spec order").
        inputs: op -> names of the tensors it reads (producer op names or graph-input names).
            Ops missing from the mapping read nothing. Repeated names count once.
        size: tensor name -> bytes, for every op output and every graph input.
        workspace: op -> scratch bytes used only while that op runs (0 if absent).
        graph_inputs: tensors that exist before any op runs; live until their last reader ran.
        outputs: tensors that must stay live until the end (network outputs).
    """

    ops: tuple[str, ...]
    inputs: Mapping[str, tuple[str, ...]]
    size: Mapping[str, int]
    workspace: Mapping[str, int] = field(default_factory=dict)
    graph_inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()

    @cached_property
    def compiled(self) -> _Compiled:
        """The validated index form every function here works on (built once per problem)."""
        return _compile(self)


@dataclass(frozen=True)
class ScheduleResult:
    """The outcome of :func:`optimal_order`.

    Attributes:
        order: the best order found (a valid topological order of all ops).
        peak_bytes: its Eq. 1 peak.
        optimal: True only when ``peak_bytes`` is proven minimal over all topological orders.
        lower_bound_bytes: a proven lower bound on the optimum (equals ``peak_bytes`` if optimal).
        states_explored: number of search states expanded.
        seconds: wall-clock time spent.
    """

    order: tuple[str, ...]
    peak_bytes: int
    optimal: bool
    lower_bound_bytes: int
    states_explored: int
    seconds: float


@dataclass(frozen=True)
class Placement:
    """Arena offsets for every buffer of one order.

    Attributes:
        offsets: buffer name -> byte offset in one arena. Buffers are the graph inputs, the op
            outputs, and each op's workspace (keyed ``"<op>#ws"``, only when it is non-zero).
        arena_bytes: the largest end offset (offset + size) over all buffers.
        live_bound_bytes: the Eq. 1 peak of the order, a lower bound on any arena for it.
    """

    offsets: Mapping[str, int]
    arena_bytes: int
    live_bound_bytes: int

    @property
    def fragmentation(self) -> int:
        """Bytes the arena wastes over the live-sum bound (``arena_bytes - live_bound_bytes``)."""
        return self.arena_bytes - self.live_bound_bytes


# --------------------------------------------------------------------------------------------
# Compiled, index-based form of a problem (internal).


@dataclass(frozen=True)
class _Compiled:
    """Index form: op i produces tensor i; graph input k is tensor n + k.

    Sets of ops are int bitmasks (bit i = op i).
    """

    names: tuple[str, ...]  # tensor names, ops first then graph inputs
    n: int
    size: tuple[int, ...]  # per tensor
    step_add: tuple[int, ...]  # per op: size(output) + workspace
    inputs: tuple[tuple[int, ...], ...]  # per op: distinct tensor indices read
    pred: tuple[int, ...]  # per op: bitmask of producer ops among its inputs
    succ: tuple[tuple[int, ...], ...]  # per op: ops reading its output
    readers: tuple[int, ...]  # per tensor: bitmask of reader ops
    is_output: tuple[bool, ...]  # per tensor
    outlive: tuple[int, ...]  # per op: bytes its output keeps live after its step
    freeable: tuple[tuple[tuple[int, int], ...], ...]  # per op: (readers mask, bytes) of inputs
    live0: int  # live bytes before the first step (graph inputs that are read or outputs)
    index: Mapping[str, int]  # op name -> op index
    anc: tuple[int, ...]  # per op: bitmask of its ancestors
    desc: tuple[int, ...]  # per op: bitmask of its descendants and itself
    op_bound: tuple[int, ...]  # per op: bytes every order holds at its step (see _op_bounds)


def _compile(problem: Problem) -> _Compiled:
    """Validate ``problem`` and build its index form; raises ValueError on a bad problem."""
    ops = tuple(problem.ops)
    gins = tuple(problem.graph_inputs)
    n = len(ops)
    names = ops + gins
    index = {name: i for i, name in enumerate(names)}
    if len(index) != len(names):
        dups = sorted(name for name, k in Counter(names).items() if k > 1)
        raise ValueError(f"duplicate op / graph-input names: {dups}")
    unknown = set(problem.inputs) - set(ops)
    if unknown:
        raise ValueError(f"inputs given for unknown ops: {sorted(unknown)}")
    unknown = set(problem.workspace) - set(ops)
    if unknown:
        raise ValueError(f"workspace given for unknown ops: {sorted(unknown)}")
    sizes = []
    for name in names:
        if name not in problem.size:
            raise ValueError(f"no size for tensor {name!r}")
        value = int(problem.size[name])
        if value < 0:
            raise ValueError(f"negative size for tensor {name!r}: {value}")
        sizes.append(value)
    ws = []
    for op in ops:
        value = int(problem.workspace.get(op, 0))
        if value < 0:
            raise ValueError(f"negative workspace for op {op!r}: {value}")
        ws.append(value)
    is_output = [False] * len(names)
    for name in problem.outputs:
        if name not in index:
            raise ValueError(f"output {name!r} is neither an op nor a graph input")
        is_output[index[name]] = True

    inputs: list[tuple[int, ...]] = []
    pred = [0] * n
    succ: list[list[int]] = [[] for _ in range(n)]
    readers = [0] * len(names)
    for i, op in enumerate(ops):
        read: list[int] = []
        for name in problem.inputs.get(op, ()):
            t = index.get(name)
            if t is None:
                raise ValueError(f"op {op!r} reads unknown tensor {name!r}")
            if t < n and t >= i:
                raise ValueError(f"ops are not in topological order: {op!r} reads {name!r}")
            if t in read:
                continue
            read.append(t)
            readers[t] |= 1 << i
            if t < n:
                pred[i] |= 1 << t
                succ[t].append(i)
        inputs.append(tuple(read))

    outlive = tuple(sizes[i] if (readers[i] or is_output[i]) else 0 for i in range(n))
    freeable = tuple(
        tuple((readers[t], sizes[t]) for t in inputs[i] if not is_output[t] and sizes[t])
        for i in range(n)
    )
    live0 = sum(sizes[t] for t in range(n, len(names)) if readers[t] or is_output[t])
    anc = [0] * n
    for i in range(n):
        for p in _bits(pred[i]):
            anc[i] |= anc[p] | 1 << p
    desc = [1 << i for i in range(n)]
    for i in range(n - 1, -1, -1):
        for s in succ[i]:
            desc[i] |= desc[s]
    step_add = tuple(sizes[i] + ws[i] for i in range(n))
    return _Compiled(
        names=names,
        n=n,
        size=tuple(sizes),
        step_add=step_add,
        inputs=tuple(inputs),
        pred=tuple(pred),
        succ=tuple(tuple(s) for s in succ),
        readers=tuple(readers),
        is_output=tuple(is_output),
        outlive=outlive,
        freeable=freeable,
        live0=live0,
        index={op: i for i, op in enumerate(ops)},
        anc=tuple(anc),
        desc=tuple(desc),
        op_bound=_op_bounds(n, sizes, step_add, readers, is_output, anc, desc, pred, succ),
    )


def _op_bounds(
    n: int,
    sizes: Sequence[int],
    step_add: Sequence[int],
    readers: Sequence[int],
    is_output: Sequence[bool],
    anc: Sequence[int],
    desc: Sequence[int],
    pred: Sequence[int],
    succ: Sequence[Sequence[int]],
) -> tuple[int, ...]:
    """Per op o: the bytes every order holds at o's step.

    That is o's output and workspace plus every tensor that necessarily exists before o (graph
    inputs and outputs of o's ancestors) and is a graph output or is read by o or a descendant
    of o (such a reader runs at o's step or later).
    """
    n_tensors = len(sizes)
    outputs = 0  # bitmask over op outputs that are graph outputs
    for t in range(n):
        if is_output[t]:
            outputs |= 1 << t
    # read_below[o]: producer ops read by o or any descendant of o
    read_below = [0] * n
    for i in range(n - 1, -1, -1):
        mask = pred[i]
        for s in succ[i]:
            mask |= read_below[s]
        read_below[i] = mask
    gin = [t for t in range(n, n_tensors) if sizes[t]]
    bounds = []
    for i in range(n):
        need = desc[i]
        total = step_add[i]
        for t in _bits(anc[i] & (read_below[i] | outputs)):
            total += sizes[t]
        for t in gin:
            if is_output[t] or readers[t] & need:
                total += sizes[t]
        bounds.append(total)
    return tuple(bounds)


def _order_indices(c: _Compiled, order: Sequence[str]) -> list[int]:
    """Op indices of ``order``; raises ValueError unless it is a topological order of all ops."""
    idx = []
    done = 0
    for name in order:
        i = c.index.get(name)
        if i is None:
            raise ValueError(f"order names unknown op {name!r}")
        if done >> i & 1:
            raise ValueError(f"order repeats op {name!r}")
        if c.pred[i] & ~done:
            raise ValueError(f"order runs {name!r} before one of its inputs")
        done |= 1 << i
        idx.append(i)
    if len(idx) != c.n:
        missing = [c.names[i] for i in range(c.n) if not done >> i & 1]
        raise ValueError(f"order misses ops {missing}")
    return idx


def _advance(c: _Compiled, done: int, live: int, o: int) -> tuple[int, int]:
    """Run op ``o`` after the set ``done``: return (new done set, new live bytes)."""
    done2 = done | 1 << o
    live2 = live + c.outlive[o]
    for rmask, nbytes in c.freeable[o]:
        if rmask & done2 == rmask:
            live2 -= nbytes
    return done2, live2


def _ready_after(c: _Compiled, ready: int, done2: int, o: int) -> int:
    """The ready set after running ``o`` (``done2`` already includes ``o``)."""
    ready &= ~(1 << o)
    for s in c.succ[o]:
        if c.pred[s] & done2 == c.pred[s]:
            ready |= 1 << s
    return ready


def _bits(mask: int) -> list[int]:
    out = []
    while mask:
        low = mask & -mask
        out.append(low.bit_length() - 1)
        mask ^= low
    return out


def _steps(c: _Compiled, idx: Sequence[int]) -> list[int]:
    return _steps_from(c, 0, c.live0, idx)


def _steps_from(c: _Compiled, done: int, live: int, idx: Sequence[int]) -> list[int]:
    mem = []
    for o in idx:
        mem.append(live + c.step_add[o])
        done, live = _advance(c, done, live, o)
    return mem


def _lower_bound(c: _Compiled) -> int:
    return max(c.op_bound, default=0)


def _ready_at(c: _Compiled, done: int) -> int:
    ready = 0
    for i in range(c.n):
        if not done >> i & 1 and c.pred[i] & done == c.pred[i]:
            ready |= 1 << i
    return ready


def _greedy_from(
    c: _Compiled, done: int, live: int, ready: int, goal: int, rule: int = 2, cap: int = 0
) -> tuple[list[int], int]:
    """Run ops greedily from a state until ``goal`` is done; return (ops run, their peak).

    Rule 0 runs the ready op of least step memory (ties: least live bytes after), rule 1 the
    one leaving the least live bytes (ties: least step memory); rule 2 treats every step at or
    below ``cap`` and the peak so far as free, then leaves the least live bytes.
    """
    seq: list[int] = []
    worst = 0
    step_add = c.step_add
    while done & goal != goal:
        best_key: tuple[int, ...] | None = None
        best = (0, 0, 0, 0)
        free = max(cap, worst)
        for o in _bits(ready):
            step = live + step_add[o]
            done2, live2 = _advance(c, done, live, o)
            if rule == 0:
                key: tuple[int, ...] = (step, live2)
            elif rule == 1:
                key = (live2, step)
            else:
                key = (max(step, free), live2, step)
            if best_key is None or key < best_key:
                best_key, best = key, (o, step, done2, live2)
        o, step, done, live = best
        worst = max(worst, step)
        ready = _ready_after(c, ready, done, o)
        seq.append(o)
    return seq, worst


def _greedy_segment(
    c: _Compiled, start: int, goal: int, live0: int, ready0: int, cap: int
) -> tuple[list[int], int]:
    """Best of the index order and the greedy rules from ``start`` until ``goal`` is done."""
    spec = _bits(goal & ~start)
    best_seq, best_peak = spec, max(_steps_from(c, start, live0, spec), default=0)
    for rule in range(3):
        seq, worst = _greedy_from(c, start, live0, ready0, goal, rule, cap)
        if worst < best_peak:
            best_seq, best_peak = seq, worst
    return best_seq, best_peak


def _greedy(c: _Compiled) -> tuple[list[int], int]:
    """Best of the spec order and the greedy rules over the whole graph."""
    full = (1 << c.n) - 1
    return _greedy_segment(c, 0, full, c.live0, _ready_at(c, 0), _lower_bound(c))


def _beam(
    c: _Compiled, start: int, goal: int, live0: int, ready0: int, width: int, floor: int
) -> tuple[list[int], int]:
    """Beam search from ``start`` to ``goal`` keeping the ``width`` best states per depth.

    States are ranked by (max(peak so far, floor), live bytes); all states of a layer have
    run the same number of ops, so they all reach the goal together.
    """
    # layer entries: (rank peak, live, done set, ready set, peak, index in previous layer, op)
    layer = [(floor, live0, start, ready0, 0, -1, -1)]
    history = []
    step_add = c.step_add
    while layer[0][2] & goal != goal:
        children: dict[int, tuple[int, int, int, int, int, int, int]] = {}
        for k, (_, live, done, ready, g, _, _) in enumerate(layer):
            for o in _bits(ready):
                g2 = max(g, live + step_add[o])
                done2, live2 = _advance(c, done, live, o)
                old = children.get(done2)
                rank = max(g2, floor)
                if old is None or (rank, live2) < old[:2]:
                    children[done2] = (rank, live2, done2, ready, g2, k, o)
        history.append(layer)
        kept = sorted(children.values())[:width]
        layer = [
            (rank, live, done, _ready_after(c, ready, done, o), g, k, o)
            for rank, live, done, ready, g, k, o in kept
        ]
    best = layer[0]
    seq = []
    entry = best
    for prev in reversed(history):
        seq.append(entry[6])
        entry = prev[entry[5]]
    seq.reverse()
    return seq, best[4]


# --------------------------------------------------------------------------------------------
# Public evaluation API.


def step_memory(problem: Problem, order: Sequence[str]) -> list[int]:
    """Eq. 1 memory (bytes) at each step of ``order``.

    Raises ValueError if ``order`` is not a topological order of all ops of ``problem``.
    """
    c = problem.compiled
    return _steps(c, _order_indices(c, order))


def peak(problem: Problem, order: Sequence[str]) -> tuple[int, int]:
    """(peak bytes, index of the first step reaching it) of ``order``; (0, -1) with no ops."""
    mem = step_memory(problem, order)
    if not mem:
        return 0, -1
    top = max(mem)
    return top, mem.index(top)


def live_at(problem: Problem, order: Sequence[str], step: int) -> dict[str, int]:
    """Buffers counted by Eq. 1 at ``step`` of ``order``, name -> bytes.

    That is the live tensors (the op's inputs and its own output included) plus, when it is
    non-zero, the op's workspace under the key ``"<op>#ws"``; the values sum to
    ``step_memory(problem, order)[step]``.
    """
    c = problem.compiled
    idx = _order_indices(c, order)
    if not 0 <= step < len(idx):
        raise IndexError(f"step {step} out of range for {len(idx)} ops")
    later = 0
    for o in idx[step:]:
        later |= 1 << o
    done = 0
    for o in idx[:step]:
        done |= 1 << o
    op = idx[step]
    out: dict[str, int] = {}
    for t in [*_bits(done), *range(c.n, len(c.names))]:
        if c.is_output[t] or c.readers[t] & later:
            out[c.names[t]] = c.size[t]
    out[c.names[op]] = c.size[op]
    ws = c.step_add[op] - c.size[op]
    if ws:
        out[f"{c.names[op]}#ws"] = ws
    return out


def greedy_order(problem: Problem) -> tuple[str, ...]:
    """A good order found fast: the best of the spec order and three greedy rules.

    Each rule repeatedly runs a ready op: the one of least step memory; the one leaving the
    least live bytes; or, treating every step up to max(:func:`lower_bound`, peak so far) as
    free, the one leaving the least live bytes (ties: least step memory).
    """
    c = problem.compiled
    seq, _ = _greedy(c)
    return tuple(c.names[i] for i in seq)


def lower_bound(problem: Problem) -> int:
    """A cheap valid lower bound on the optimal peak.

    For every op o, any order holds at o's step: o's output and workspace, and every tensor
    produced before o necessarily (graph inputs and outputs of o's ancestors) that is a graph
    output or is read by o or a descendant of o. The bound is the max of that over ops; it is
    at least max over ops of (inputs + output + workspace), the paper's Eq. 2.
    """
    return _lower_bound(problem.compiled)


# --------------------------------------------------------------------------------------------
# Exact search.

_CHECK_EVERY = 256  # expansions between clock checks
_BEAM_WIDTH = 16  # beam search width for a first incumbent on larger pieces
_BEAM_MIN_OPS = 16
_LB_SHARE = 0.15  # share of the limits kept for raising the lower bound of an unsolved piece
_INF = float("inf")


def _segments(c: _Compiled) -> list[tuple[int, int]]:
    """Split the ops at cut ops (ops comparable to every other op).

    When op v is comparable to all ops, every order runs exactly the ancestors of v before it,
    so orders are concatenations of independent pieces and the peak is the max of the pieces'
    peaks. Returns (done set at the piece's start, done set at its end) per non-empty piece.
    """
    full = (1 << c.n) - 1
    cuts = [0]
    for v in range(c.n):
        if c.anc[v] | c.desc[v] == full:
            cuts.append(c.anc[v] | 1 << v)
    if cuts[-1] != full:
        cuts.append(full)
    return [(a, b) for a, b in zip(cuts, cuts[1:], strict=False) if a != b]


_FOUND, _DEAD, _ABORTED = 0, 1, 2


class _Piece:
    """Exact search for one piece (from the done set ``start`` until ``goal`` is done).

    The search asks budgeted questions: "is there an order of the piece whose every step is at
    most B?" Each is a depth-first search over done sets (int bitmasks). A memo keeps, for every
    state that was shown to fail, a lower bound on the smallest achievable max over its future
    steps (``future_lb``); it stays valid for every later question, so failed subtrees are never
    searched twice below that bound. A failed question at B also proves the piece cannot do
    better than the smallest step the search had to refuse (the next critical budget).
    """

    def __init__(
        self,
        c: _Compiled,
        start: int,
        goal: int,
        live0: int,
        ready0: int,
        floor: int,
        seq: list[int],
        ub: int,
    ) -> None:
        self.c, self.start, self.goal = c, start, goal
        self.lb, self.ub, self.ub_seq = floor, ub, seq
        self.explored = 0
        self.future_lb: dict[int, int] = {}
        self.live0, self.ready0 = live0, ready0

    @property
    def proven(self) -> bool:
        return self.lb >= self.ub

    def offer(self, seq: list[int], worst: int) -> None:
        """Take ``seq`` (ops from start to goal) as the incumbent if it is better."""
        if worst < self.ub:
            self.ub, self.ub_seq = worst, seq

    def solve(self, max_expansions: int, deadline: float | None) -> bool:
        """Close the gap between ``lb`` and ``ub`` within the limits; True once proven.

        Mostly asks for a strictly better order than the incumbent (budget ``ub - 1``): cheap
        while one exists, and the last, failing question proves optimality. If that runs out
        of limits, the reserved rest raises the lower bound with failing questions at budgets
        growing geometrically from ``lb`` (cheap ones first).
        """
        now = time.perf_counter()
        stop = self.explored + max_expansions
        main_stop = self.explored + int(max_expansions * (1 - _LB_SHARE))
        main_deadline = None if deadline is None else now + (deadline - now) * (1 - _LB_SHARE)
        while not self.proven:
            if self.probe(self.ub - 1, main_stop - self.explored, main_deadline) == _ABORTED:
                break
        step = max(1, (self.ub - self.lb) // 64)
        while not self.proven:
            budget = min(self.lb + step, self.ub - 1)
            if self.probe(budget, stop - self.explored, deadline) == _ABORTED:
                break
            step *= 2
        return self.proven

    def probe(self, budget: int, max_expansions: int, deadline: float | None) -> int:
        """Search for an order of the piece with every step <= ``budget``.

        Returns _FOUND (the incumbent was improved), _DEAD (no such order: ``lb`` is raised to
        the smallest refused future step) or _ABORTED (a limit was hit).
        """
        c, goal, memo = self.c, self.goal, self.future_lb
        step_add, outlive, freeable = c.step_add, c.outlive, c.freeable
        stop = self.explored + max_expansions
        # frame: [done set, ready set, ops run to reach it, children left, least refused step,
        #         done set before the dominance chain]
        frames: list[list] = []
        pending: tuple[int, int, int, int] | None = (self.start, self.live0, self.ready0, -1)
        result = 0  # least refused future step of the subtree just finished (0: none yet)
        while True:
            if pending is not None:
                state, live, ready, op = pending
                pending = None
                if self.explored >= stop or (
                    deadline is not None
                    and self.explored % _CHECK_EVERY == 0
                    and time.perf_counter() > deadline
                ):
                    return _ABORTED
                self.explored += 1
                first = state
                chain = [] if op < 0 else [op]
                while True:
                    # One pass over the ready ops: refuse those over budget, and run at once
                    # (dominance) the first one that fits and does not raise the live bytes.
                    least = _INF
                    kids = []
                    closing = -1
                    mask = ready & goal  # once the piece's last op ran, the next piece's ops
                    while mask:  # get ready: they are not part of this search
                        low = mask & -mask
                        mask ^= low
                        o = low.bit_length() - 1
                        step = live + step_add[o]
                        if step > budget:
                            if step < least:
                                least = step
                            continue
                        done2 = state | low
                        live2 = live + outlive[o]
                        for rmask, nbytes in freeable[o]:
                            if rmask & done2 == rmask:
                                live2 -= nbytes
                        if live2 <= live:
                            closing = o
                            break
                        kids.append((live2, step, done2, o))
                    if closing < 0:
                        break
                    chain.append(closing)
                    ready = _ready_after(c, ready, done2, closing)
                    state, live = done2, live2
                if state & goal == goal:
                    path = [o for f in frames for o in f[2]] + chain
                    worst = max(_steps_from(c, self.start, self.live0, path), default=0)
                    self.offer(path, worst)
                    return _FOUND
                known = memo.get(state, 0)
                if known > budget:
                    memo[first] = max(memo.get(first, 0), known)
                    result = known
                    continue
                # tried from the end: least live bytes after first (memo checked when tried)
                kids.sort(reverse=True)
                frames.append([state, ready, chain, kids, least, first])
                result = 0
                continue
            if not frames:
                self.lb = max(self.lb, result)
                return _DEAD
            frame = frames[-1]
            if result and result < frame[4]:
                frame[4] = result
            kids = frame[3]
            if kids:
                live2, _, done2, o = kids.pop()
                known = memo.get(done2, 0)
                if known > budget:
                    result = known
                else:
                    pending = (done2, live2, _ready_after(c, frame[1], done2, o), o)
                    result = 0
                continue
            frames.pop()
            result = frame[4]
            memo[frame[0]] = max(memo.get(frame[0], 0), result)
            memo[frame[5]] = max(memo.get(frame[5], 0), result)


def _single_order(problem: Problem) -> bool:
    """True when the given op order is the only topological order: each op reads its
    predecessor (a chain, residual skips allowed). Then the search has nothing to choose."""
    ops = problem.ops
    return all(ops[i - 1] in problem.inputs.get(ops[i], ()) for i in range(1, len(ops)))


def _linear_steps(problem: Problem) -> list[int]:
    """Eq. 1 memory of the spec order in one pass (interval sweep), for `_single_order`
    problems; validates the names it reads like `_compile` does."""
    ops = problem.ops
    n = len(ops)
    position = {op: i for i, op in enumerate(ops)}
    known = set(problem.graph_inputs)
    last: dict[str, int] = {}
    for i, op in enumerate(ops):
        for name in problem.inputs.get(op, ()):
            if name not in known and position.get(name, n) >= i:
                raise ValueError(f"op {op!r} reads unknown or later tensor {name!r}")
            last[name] = i
    outputs = set(problem.outputs)
    delta = [0] * (n + 1)

    def hold(name: str, start: int, stop: int) -> None:
        size = int(problem.size[name]) if name in problem.size else None
        if size is None:
            raise ValueError(f"no size for tensor {name!r}")
        delta[start] += size
        delta[stop + 1] -= size

    for name in problem.graph_inputs:
        if name in outputs:
            hold(name, 0, n - 1)
        elif name in last:
            hold(name, 0, last[name])
    for i, op in enumerate(ops):
        hold(op, i, n - 1 if op in outputs else max(i, last.get(op, i)))
    steps, running = [], 0
    for i, op in enumerate(ops):
        running += delta[i]
        steps.append(running + int(problem.workspace.get(op, 0)))
    return steps


def optimal_order(
    problem: Problem, *, max_states: int = 2_000_000, time_limit: float | None = 10.0
) -> ScheduleResult:
    """The order of minimum Eq. 1 peak, proven optimal unless a budget stops the search.

    See the module docstring for the method. ``max_states`` caps the number of search states
    expanded (over all pieces) and ``time_limit`` the seconds. When a limit is hit, the best
    order found so far is returned with ``optimal=False`` and a proven lower bound (at least
    :func:`lower_bound`).
    """
    t0 = time.perf_counter()
    if problem.ops and _single_order(problem):
        steps = _linear_steps(problem)
        return ScheduleResult(
            order=tuple(problem.ops),
            peak_bytes=max(steps),
            optimal=True,
            lower_bound_bytes=max(steps),
            states_explored=0,
            seconds=time.perf_counter() - t0,
        )
    deadline = None if time_limit is None else t0 + time_limit
    c = problem.compiled
    floor = _lower_bound(c)
    todo = []
    live = c.live0
    for start, goal in _segments(c):
        ops = _bits(goal & ~start)
        ready = 0
        for o in ops:
            if c.pred[o] & start == c.pred[o]:
                ready |= 1 << o
        seq, worst = _greedy_segment(c, start, goal, live, ready, floor)
        piece_lb = max(c.op_bound[o] for o in ops)
        todo.append((piece_lb, worst, start, goal, live, ready, seq))
        for o in ops:  # the live bytes at the next piece's start (index order is topological)
            start, live = _advance(c, start, live, o)
    # Hardest first: its optimum raises the floor, which can settle the others at once.
    todo.sort(key=lambda p: (-p[0], -p[1], p[2]))
    pieces: list[_Piece] = []
    explored = 0
    for _, worst, start, goal, live, ready, seq in todo:
        piece = _Piece(c, start, goal, live, ready, floor, seq, worst)
        pieces.append(piece)
        out_of_time = deadline is not None and time.perf_counter() > deadline
        if piece.proven or explored >= max_states or out_of_time:
            continue
        if (goal & ~start).bit_count() >= _BEAM_MIN_OPS:
            piece.offer(*_beam(c, start, goal, live, ready, _BEAM_WIDTH, floor))
        piece.solve(max_states - explored, deadline)
        explored += piece.explored
        if piece.proven:
            floor = max(floor, piece.ub)

    pieces.sort(key=lambda p: p.start)
    order = [o for p in pieces for o in p.ub_seq]
    worst = max((p.ub for p in pieces), default=0)
    low = max([floor, *(p.lb for p in pieces)])
    return ScheduleResult(
        order=tuple(c.names[i] for i in order),
        peak_bytes=worst,
        optimal=low >= worst,
        lower_bound_bytes=min(low, worst),
        states_explored=explored,
        seconds=time.perf_counter() - t0,
    )


# --------------------------------------------------------------------------------------------
# Reference enumeration (tests only).


def brute_force_order(problem: Problem) -> tuple[tuple[str, ...], int]:
    """Enumerate the topological orders; return (an order of minimum peak, that peak).

    A deliberately simple reference for tests on small graphs: it works on names, recomputes
    each step's memory from the definition of Eq. 1, and only skips prefixes whose peak already
    reaches the best complete order found (they cannot lead to a strictly better one).
    """
    ops = list(problem.ops)
    op_set = set(ops)
    deps = {op: {x for x in problem.inputs.get(op, ()) if x in op_set} for op in ops}
    readers: dict[str, set[str]] = {}
    for op in ops:
        for name in problem.inputs.get(op, ()):
            readers.setdefault(name, set()).add(op)
    outputs = set(problem.outputs)

    def memory(done: list[str], op: str) -> int:
        """Eq. 1 at the step that runs ``op`` after the ops in ``done``."""
        total = problem.size[op] + problem.workspace.get(op, 0)
        finished = set(done)
        for t in [*problem.graph_inputs, *done]:
            if t in outputs or readers.get(t, set()) - finished:
                total += problem.size[t]
        return total

    best: list[tuple[tuple[str, ...], int]] = []

    def extend(done: list[str], worst: int) -> None:
        if best and worst >= best[0][1]:
            return
        if len(done) == len(ops):
            best[:] = [(tuple(done), worst)]
            return
        for op in ops:
            if op in done or not deps[op] <= set(done):
                continue
            step = memory(done, op)
            done.append(op)
            extend(done, max(worst, step))
            done.pop()

    extend([], 0)
    return best[0]


# --------------------------------------------------------------------------------------------
# Buffer placement.


def place_buffers(problem: Problem, order: Sequence[str], *, alignment: int = 1) -> Placement:
    """Assign arena offsets to all buffers of ``order`` so that live buffers never overlap.

    Lifetimes in steps (inclusive): an op output lives from its step to its last reader's step
    (to the last step if it is a graph output); a graph input from step 0 to its last reader (the
    last step if it is an output; step 0 if it is neither read nor an output); a workspace
    ``"<op>#ws"`` only at its op's step. Buffers are placed largest first (ties: earlier start,
    then name), each at the lowest offset that is a multiple of ``alignment`` and does not
    overlap an already placed buffer whose lifetime intersects its own.
    """
    if alignment < 1:
        raise ValueError(f"alignment must be >= 1, got {alignment}")
    c = problem.compiled
    idx = _order_indices(c, order)
    last = max(len(idx) - 1, 0)
    pos = {o: p for p, o in enumerate(idx)}
    buffers: list[tuple[str, int, int, int]] = []  # (name, bytes, first step, last step)
    for t, name in enumerate(c.names):
        start = pos[t] if t < c.n else 0
        readers = [pos[r] for r in _bits(c.readers[t])]
        end = last if c.is_output[t] else max(readers, default=start)
        buffers.append((name, c.size[t], start, max(start, end)))
    for o in range(c.n):
        ws = c.step_add[o] - c.size[o]
        if ws:
            buffers.append((f"{c.names[o]}#ws", ws, pos[o], pos[o]))
    buffers.sort(key=lambda b: (-b[1], b[2], b[0]))

    offsets: dict[str, int] = {}
    # The placed buffers, as arrays so that finding those whose lifetimes meet a new one is one
    # vectorised pass (a Python scan made placement quadratic at Python speed: minutes at 20,000
    # ops). Offsets can exceed int64 only for arenas no target could build.
    count = len(buffers)
    lo_at, hi_at = np.zeros(count, dtype=object), np.zeros(count, dtype=object)
    first, final = np.zeros(count, dtype=np.int64), np.zeros(count, dtype=np.int64)
    k = 0
    arena = 0
    for name, nbytes, start, end in buffers:
        if nbytes == 0:
            offsets[name] = 0
            continue
        meets = np.flatnonzero((first[:k] <= end) & (final[:k] >= start))
        busy = sorted(zip(lo_at[meets].tolist(), hi_at[meets].tolist(), strict=True))
        at = 0
        for lo, hi in busy:
            if at + nbytes <= lo:
                break
            if hi > at:
                at = -(-hi // alignment) * alignment
        offsets[name] = at
        lo_at[k], hi_at[k], first[k], final[k] = at, at + nbytes, start, end
        k += 1
        arena = max(arena, at + nbytes)
    live_bound = max(_steps(c, idx), default=0)
    return Placement(offsets=offsets, arena_bytes=arena, live_bound_bytes=live_bound)
