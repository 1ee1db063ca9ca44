"""Peak-memory scheduling of a DAG of ops (MobileNetV2 paper, section 5.1, Eq. 1).

This module is generic: it knows nothing about specs or op types. A :class:`Problem` is a DAG
whose ops each produce one tensor; the memory of an execution order is computed with the
paper's Eq. 1 under a fixed convention:

    memory(step i) = sum of sizes of tensors live at step i + size(output of o_i) + workspace(o_i)

A tensor produced by o_j (j < i), or a graph input, is live at step i iff it is a graph output or
one of its readers sits at position >= i. So the inputs of o_i count, its output counts, its
workspace counts, and a tensor is freed right after its last reader. An op output that nobody
reads and that is not a graph output is counted at its own step only. No in-place reuse.

The exact search (:func:`optimal_order`) is a best-first search over the sets of already
scheduled ops (the live memory depends on that set only), keyed by the peak so far, with an
incumbent from :func:`greedy_order` for pruning and a dominance rule that takes memory-freeing
ops greedily when that is provably safe.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

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


def _compile(problem: Problem) -> _Compiled:
    ops = tuple(problem.ops)
    gins = tuple(problem.graph_inputs)
    n = len(ops)
    names = ops + gins
    index = {name: i for i, name in enumerate(names)}
    if len(index) != len(names):
        seen: set[str] = set()
        dup = next(x for x in names if x in seen or seen.add(x))  # type: ignore[func-returns-value]
        raise ValueError(f"duplicate op / graph-input name {dup!r}")
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
    return _Compiled(
        names=names,
        n=n,
        size=tuple(sizes),
        step_add=tuple(sizes[i] + ws[i] for i in range(n)),
        inputs=tuple(inputs),
        pred=tuple(pred),
        succ=tuple(tuple(s) for s in succ),
        readers=tuple(readers),
        is_output=tuple(is_output),
        outlive=outlive,
        freeable=freeable,
        live0=live0,
        index={op: i for i, op in enumerate(ops)},
    )


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


def _initial_ready(c: _Compiled) -> int:
    ready = 0
    for i in range(c.n):
        if not c.pred[i]:
            ready |= 1 << i
    return ready


def _bits(mask: int) -> list[int]:
    out = []
    while mask:
        low = mask & -mask
        out.append(low.bit_length() - 1)
        mask ^= low
    return out


def _steps(c: _Compiled, idx: Sequence[int]) -> list[int]:
    done, live = 0, c.live0
    mem = []
    for o in idx:
        mem.append(live + c.step_add[o])
        done, live = _advance(c, done, live, o)
    return mem


def _lower_bound(c: _Compiled) -> int:
    """Max over ops o of what every order must hold at o's step.

    At o's step every tensor produced by an ancestor of o (or a graph input) that is a graph
    output or is read by o or a descendant of o is live, plus o's output and workspace.
    """
    n = c.n
    anc = [0] * n
    for i in range(n):
        a = c.pred[i]
        for p in _bits(c.pred[i]):
            a |= anc[p]
        anc[i] = a
    desc_or_self = [1 << i for i in range(n)]
    for i in range(n - 1, -1, -1):
        for s in c.succ[i]:
            desc_or_self[i] |= desc_or_self[s]
    gin = range(n, len(c.names))
    best = 0
    for i in range(n):
        need = desc_or_self[i]
        total = c.step_add[i]
        for t in _bits(anc[i]):
            if c.is_output[t] or c.readers[t] & need:
                total += c.size[t]
        for t in gin:
            if c.is_output[t] or c.readers[t] & need:
                total += c.size[t]
        best = max(best, total)
    return best


# Greedy rules: the key each rule minimises over the ready ops, from (step memory, live after).
_RULES = (
    lambda step, after: (step, after),
    lambda step, after: (after, step),
    lambda step, after: (max(step, after), after),
)


def _greedy_from(
    c: _Compiled, done: int, live: int, ready: int, rule: int = 0
) -> tuple[list[int], int]:
    """Complete from a state by a greedy rule; return (ops run, peak of those steps)."""
    key_of = _RULES[rule]
    seq: list[int] = []
    worst = 0
    while ready:
        best_key = None
        best = (0, 0, 0, 0)
        for o in _bits(ready):
            step = live + c.step_add[o]
            done2, live2 = _advance(c, done, live, o)
            key = key_of(step, live2)
            if best_key is None or key < best_key:
                best_key, best = key, (o, step, done2, live2)
        o, step, done, live = best
        worst = max(worst, step)
        ready = _ready_after(c, ready, done, o)
        seq.append(o)
    return seq, worst


def _greedy(c: _Compiled) -> tuple[list[int], int]:
    """Best of the spec order and a few greedy rules."""
    spec = list(range(c.n))
    steps = _steps(c, spec)
    best_seq, best_peak = spec, max(steps, default=0)
    ready0 = _initial_ready(c)
    for rule in range(len(_RULES)):
        seq, worst = _greedy_from(c, 0, c.live0, ready0, rule)
        if worst < best_peak:
            best_seq, best_peak = seq, worst
    return best_seq, best_peak


# --------------------------------------------------------------------------------------------
# Public evaluation API.


def step_memory(problem: Problem, order: Sequence[str]) -> list[int]:
    """Eq. 1 memory (bytes) at each step of ``order``.

    Raises ValueError if ``order`` is not a topological order of all ops of ``problem``.
    """
    c = _compile(problem)
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
    c = _compile(problem)
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

    Each rule repeatedly runs the ready op minimising, respectively, (step memory, live bytes
    after), (live bytes after, step memory), or (max of the two, live bytes after).
    """
    c = _compile(problem)
    seq, _ = _greedy(c)
    return tuple(c.names[i] for i in seq)


def lower_bound(problem: Problem) -> int:
    """A cheap valid lower bound on the optimal peak.

    For every op o, any order holds at o's step: o's output and workspace, and every tensor
    produced before o necessarily (graph inputs and outputs of o's ancestors) that is a graph
    output or is read by o or a descendant of o. The bound is the max of that over ops; it is
    at least max over ops of (inputs + output + workspace), the paper's Eq. 2.
    """
    return _lower_bound(_compile(problem))


# --------------------------------------------------------------------------------------------
# Exact search.

_CHECK_EVERY = 512  # expansions between time-limit checks
_DIVE_EVERY = 2048  # expansions between greedy completions that may improve the incumbent


def optimal_order(
    problem: Problem, *, max_states: int = 2_000_000, time_limit: float | None = 10.0
) -> ScheduleResult:
    """The order of minimum Eq. 1 peak, proven optimal unless a budget stops the search.

    Best-first search over the sets of scheduled ops (the live bytes are a function of the set),
    ordered by ``max(peak so far, lower_bound)``, deeper states first on ties. States are int
    bitmasks, each expanded at most once. A greedy incumbent prunes every state whose key
    reaches its peak; periodic greedy completions can improve the incumbent.

    Dominance rule: from a state S with key k, if a ready op o has step memory <= k and running
    it does not increase the live bytes, o is run at once (no branching). Safe because moving o
    to the front of any completion of S does not raise any later step (the bytes o frees can
    only grow as more ops run, and o's output is read only after o) and o's own step is <= k,
    which is <= the peak of every completion of S.

    When ``max_states`` expansions or ``time_limit`` seconds are reached, the best order found
    so far is returned with ``optimal=False`` and a lower bound: the smallest key on the open
    frontier (never below :func:`lower_bound`).
    """
    t0 = time.perf_counter()
    c = _compile(problem)
    n = c.n
    seq, ub = _greedy(c)
    lb = _lower_bound(c)
    best_seq = seq

    def result(order_idx: Sequence[int], peak_bytes: int, low: int, states: int) -> ScheduleResult:
        return ScheduleResult(
            order=tuple(c.names[i] for i in order_idx),
            peak_bytes=peak_bytes,
            optimal=low >= peak_bytes,
            lower_bound_bytes=min(low, peak_bytes),
            states_explored=states,
            seconds=time.perf_counter() - t0,
        )

    if n == 0 or ub <= lb:
        return result(best_seq, ub, lb, 0)

    full = (1 << n) - 1
    step_add = c.step_add
    # parent[S] = (previous closed state, ops run from it to reach S); membership = closed.
    parent: dict[int, tuple[int, tuple[int, ...]]] = {}
    best_key: dict[int, int] = {0: lb}
    # Heap entry: (key, -depth, live, S, parent's ready set, peak so far, parent, op run).
    heap: list[tuple[int, int, int, int, int, int, int, int]] = [
        (lb, 0, c.live0, 0, _initial_ready(c), 0, -1, -1)
    ]
    explored = 0
    deadline = None if time_limit is None else t0 + time_limit

    def prefix(state: int) -> list[int]:
        ops: list[int] = []
        while state:
            state, run = parent[state]
            ops.extend(reversed(run))
        ops.reverse()
        return ops

    while heap:
        if explored >= max_states or (
            deadline is not None and explored % _CHECK_EVERY == 0 and time.perf_counter() > deadline
        ):
            while heap and heap[0][3] in parent:
                heapq.heappop(heap)
            low = max(lb, heap[0][0]) if heap else ub
            return result(best_seq, ub, low, explored)
        key, negdepth, live, state, ready, g, par, op = heapq.heappop(heap)
        if key >= ub:
            break  # every open state is at least as bad as the incumbent
        if state in parent:
            continue
        if op >= 0:
            parent[state] = (par, (op,))
            ready = _ready_after(c, ready, state, op)
        else:
            parent[state] = (par, ())
        explored += 1

        # Dominance rule: run memory-non-increasing ops that fit under the key, no branching.
        chain: list[int] = []
        start = state
        moved = True
        while moved:
            moved = False
            for o in _bits(ready):
                step = live + step_add[o]
                if step > key:
                    continue
                done2, live2 = _advance(c, state, live, o)
                if live2 <= live:
                    g = max(g, step)
                    chain.append(o)
                    state, live = done2, live2
                    ready = _ready_after(c, ready, state, o)
                    moved = True
                    break
        if chain:
            if state in parent:
                continue
            parent[state] = (start, tuple(chain))
        if state == full:
            return result(prefix(state), g, g, explored)

        if explored % _DIVE_EVERY == 0:
            tail, worst = _greedy_from(c, state, live, ready)
            worst = max(worst, g)
            if worst < ub:
                ub, best_seq = worst, prefix(state) + tail

        depth = -negdepth + len(chain) + 1
        for o in _bits(ready):
            g2 = max(g, live + step_add[o])
            key2 = g2 if g2 > lb else lb
            if key2 >= ub:
                continue
            done2, live2 = _advance(c, state, live, o)
            if done2 in parent or best_key.get(done2, ub) <= key2:
                continue
            best_key[done2] = key2
            heapq.heappush(heap, (key2, -depth, live2, done2, ready, g2, state, o))

    # Every state that could beat the incumbent was expanded: the incumbent is optimal.
    return result(best_seq, ub, ub, explored)


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
    c = _compile(problem)
    idx = _order_indices(c, order)
    last = max(len(idx) - 1, 0)
    pos = {o: p for p, o in enumerate(idx)}
    buffers: list[tuple[str, int, int, int]] = []  # (name, bytes, first step, last step)
    for t, name in enumerate(c.names):
        start = pos[t] if t < c.n else 0
        if c.is_output[t]:
            end = last
        else:
            end = max((pos[r] for r in _bits(c.readers[t])), default=start)
        buffers.append((name, c.size[t], start, max(start, end)))
    for o in range(c.n):
        ws = c.step_add[o] - c.size[o]
        if ws:
            buffers.append((f"{c.names[o]}#ws", ws, pos[o], pos[o]))
    buffers.sort(key=lambda b: (-b[1], b[2], b[0]))

    offsets: dict[str, int] = {}
    placed: list[tuple[int, int, int, int]] = []  # (offset, end offset, first step, last step)
    arena = 0
    for name, nbytes, start, end in buffers:
        if nbytes == 0:
            offsets[name] = 0
            continue
        busy = sorted((lo, hi) for lo, hi, s, e in placed if s <= end and start <= e)
        at = 0
        for lo, hi in busy:
            if at + nbytes <= lo:
                break
            if hi > at:
                at = -(-hi // alignment) * alignment
        offsets[name] = at
        placed.append((at, at + nbytes, start, end))
        arena = max(arena, at + nbytes)
    live_bound = max(_steps(c, idx), default=0)
    return Placement(offsets=offsets, arena_bytes=arena, live_bound_bytes=live_bound)
