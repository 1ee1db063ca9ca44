"""The Ray engine: variants as Ray tasks, on a local Ray instance or on a cluster.

`RayEngine(address)` implements the `Engine` seam (`archspec.variants.engine`). The space goes
to the cluster once (`ray.put` of its `SpaceSource`; each worker process reads it again, once),
and each task evaluates a batch of points with `run_point`, returning plain `Outcome`s, consumed
as they complete. Analysis batches hold a few points (a Ray task costs about a millisecond, an
analysis a few); timing tasks hold one.

- Without an address, a local Ray instance is started for the sweep (as many CPUs as the
  machine has, no dashboard, warnings only) and stopped after it; with one (`host:port`, or
  `auto`), the engine joins that cluster and leaves it running. Every node needs archspec
  installed and the space's files at the same paths (the space is read again from its source).
- A task whose worker dies is retried by Ray (`retries` times). A batch that still fails is split
  into single points, each retried in the same way; a point that still fails comes back as a
  failed `Outcome` (its reason and attempts), which the command lists in `skipped.jsonl` and a
  resumed sweep tries again. An exception inside a task is a bug and is raised as in a local run.
- Timing tasks (`Work.threads` > 0) each hold `threads` units of the custom resource
  `archspec_timing`, which a local instance gets as many of as the machine has cores: no more
  timing tasks run at once than there are cores. On a cluster whose nodes lack the resource
  (`ray start --resources '{"archspec_timing": CORES}'` adds it), they hold CPUs only.

Test hook: the environment variable `ARCHSPEC_TEST_WORKER_EXIT` makes a worker process exit
without a word (as a killed one does): `once:MARKER` on the first evaluation anywhere (the one
that creates the file MARKER), `always:ID` on every evaluation of variant ID.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from types import ModuleType
from typing import Any

from archspec.errors import Location, SpecError
from archspec.variants.engine import ANALYSIS, Failed, Work, run_point
from archspec.variants.model import Outcome, Point, SpaceDef, SpaceSource, Variant
from archspec.variants.parse import read_source
from archspec.variants.sampling import resolve

RESOURCE = "archspec_timing"
DEFAULT_RETRIES = 2
FAULT_ENV = "ARCHSPEC_TEST_WORKER_EXIT"
INSTALL_HINT = "install it with `pip install 'archspec[ray]'`, or use --engine local"


def require_ray() -> ModuleType:
    """The `ray` module, or a `SpecError` (exit 2) saying how to install it."""
    try:
        import ray
    except ImportError as exc:
        raise SpecError(
            f"the Ray engine needs the package 'ray', which cannot be imported ({exc})",
            Location("--engine"),
            hint=INSTALL_HINT,
        ) from None
    return ray


class RayEngine:
    """Evaluate variants as Ray tasks (see the module docstring)."""

    def __init__(
        self,
        address: str | None = None,
        retries: int = DEFAULT_RETRIES,
        batch: int | None = None,
    ) -> None:
        self.ray = require_ray()
        self.address = address
        self.retries = retries
        self.batch = batch
        self.started_here = False  # this engine started Ray (and stops it)
        self.joined = False  # this engine connected (and disconnects)
        self._remote: Any = None

    # -- connection ---------------------------------------------------------------------------
    def start(self) -> None:
        """Connect: join the cluster at `address`, or start a local instance; a Ray already
        initialised in this process (a test's cluster) is used as it is."""
        ray = self.ray
        if self.address and not self.joined:
            _probe(self.address)
        if ray.is_initialized() or self.joined:
            return
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        quiet = {"logging_level": logging.ERROR, "log_to_driver": False}
        if self.address:
            try:
                ray.init(address=self.address, **quiet)
            except (ConnectionError, ValueError, RuntimeError) as exc:
                raise SpecError(
                    f"cannot join a Ray cluster at {self.address!r}: {_first_line(exc)}",
                    Location("--address"),
                    hint="give the address `ray start --head` printed (host:port), or leave "
                    "--address out to start a local instance",
                ) from None
        else:
            cores = os.cpu_count() or 1
            ray.init(
                num_cpus=cores,
                resources={RESOURCE: cores},
                include_dashboard=False,
                **quiet,
            )
            self.started_here = True
        self.joined = True

    def stop(self) -> None:
        """Disconnect (and stop the local instance this engine started)."""
        if self.joined:
            self.ray.shutdown()
        self.joined = self.started_here = False

    def cpus(self) -> int:
        """CPUs of the cluster."""
        return max(1, int(self.ray.cluster_resources().get("CPU", 1)))

    # -- the Engine seam ----------------------------------------------------------------------
    def __call__(
        self, space: SpaceDef, variants: Sequence[Variant], work: Work = ANALYSIS
    ) -> Iterator[Outcome]:
        """Each variant's outcome, as the tasks complete."""
        return self._run(space, list(variants), work)

    def _run(self, space: SpaceDef, variants: list[Variant], work: Work) -> Iterator[Outcome]:
        if not variants:
            return
        connected_here = not self.joined and not self.ray.is_initialized()
        self.start()
        try:
            yield from self._stream(space, variants, work)
        finally:
            if connected_here:
                self.stop()

    def _options(self, threads: int) -> dict[str, Any]:
        options: dict[str, Any] = {"max_retries": self.retries, "num_cpus": 1}
        if threads:
            options["num_cpus"] = threads
            if self.ray.cluster_resources().get(RESOURCE, 0) >= threads:
                options["resources"] = {RESOURCE: threads}
            else:
                sys.stderr.write(
                    f"warning: the Ray cluster has no {RESOURCE!r} resource; timing tasks hold "
                    f"{threads} CPU each instead (ray start --resources "
                    f"'{{\"{RESOURCE}\": CORES}}' bounds them by cores)\n"
                )
        return options

    def _batch_size(self, count: int, work: Work) -> int:
        if work.threads:
            return 1
        if self.batch:
            return self.batch
        return max(1, min(32, count // (self.cpus() * 8)))

    def _stream(self, space: SpaceDef, variants: list[Variant], work: Work) -> Iterator[Outcome]:
        ray = self.ray
        if self._remote is None:
            self._remote = ray.remote(_evaluate_batch)
        task = self._remote.options(**self._options(work.threads))
        source = ray.put(space.source)  # sent once, as is the work (a latency table is large)
        shipped = ray.put(work)
        fault = os.environ.get(FAULT_ENV) or None
        size = self._batch_size(len(variants), work)
        units = [variants[i : i + size] for i in range(0, len(variants), size)]

        def submit(batch: list[Variant]) -> Any:
            return task.remote(source, [v.point for v in batch], shipped, fault)

        for batch, outcomes in self._drive(units, submit):
            if isinstance(outcomes, Exception):
                yield self._failed(batch[0], outcomes)
            else:
                yield from outcomes

    def map(
        self, func: Callable[[Any], Any], items: Sequence[Any], threads: int = 0
    ) -> Iterator[tuple[int, Any]]:
        """`(index, func(item))` for each item, as the tasks complete (one item per task): any
        picklable function, e.g. a latency-table entry timed; `threads` > 0 marks timing tasks
        (held to the `archspec_timing` resource). An item whose task killed its worker on every
        attempt gives a `Failed` with the reason."""
        return self._map(func, list(items), threads)

    def _map(self, func: Callable[[Any], Any], items: list[Any], threads: int) -> Iterator[Any]:
        if not items:
            return
        connected_here = not self.joined and not self.ray.is_initialized()
        self.start()
        try:
            task = self.ray.remote(_call).options(**self._options(threads))
            shipped = self.ray.put(func)

            def submit(unit: list[int]) -> Any:
                return task.remote(shipped, items[unit[0]])

            for unit, value in self._drive([[i] for i in range(len(items))], submit):
                if isinstance(value, Exception):
                    value = Failed(self._reason(value))
                yield unit[0], value
        finally:
            if connected_here:
                self.stop()

    def _drive(
        self, units: list[list[Any]], submit: Callable[[list[Any]], Any]
    ) -> Iterator[tuple[list[Any], Any]]:
        """Run one task per unit, a few per CPU in flight; yield `(unit, result)` as they
        complete. A unit of several items whose worker died on every attempt is split and each
        item run alone; a single item that still fails gives `(unit, the exception)`."""
        ray = self.ray
        from ray.exceptions import RayError, RayTaskError

        queue = deque(units)
        window = 4 * self.cpus()
        pending: dict[Any, list[Any]] = {}
        try:
            while queue or pending:
                while queue and len(pending) < window:
                    unit = queue.popleft()
                    pending[submit(unit)] = unit
                ready, _ = ray.wait(list(pending), num_returns=1)
                for ref in ready:
                    unit = pending.pop(ref)
                    try:
                        result = ray.get(ref)
                    except RayTaskError as exc:  # the task raised: a bug, as in a local run
                        raise exc.as_instanceof_cause() from None
                    except RayError as exc:  # the worker died on every attempt
                        if len(unit) > 1:  # find which item: each on its own
                            queue.extendleft([x] for x in reversed(unit))
                        else:
                            yield unit, exc
                        continue
                    yield unit, result
        finally:
            for ref in pending:
                ray.cancel(ref, force=True)

    def _reason(self, exc: Exception) -> str:
        attempts = self.retries + 1
        return (
            f"evaluation failed {attempts} time{'s' if attempts > 1 else ''}: "
            f"{type(exc).__name__}: {_first_line(exc)}"
        )

    def _failed(self, variant: Variant, exc: Exception) -> Outcome:
        return Outcome(variant.point, variant.id, None, self._reason(exc), failed=True)


def _probe(address: str, seconds: float = 5.0) -> None:
    """Refuse at once a `host:port` nobody listens on (Ray itself would retry for minutes)."""
    host, sep, port = address.rpartition(":")
    if not sep or "://" in address or not port.isdigit():
        return  # `auto`, `ray://...`: Ray's own lookup
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=seconds).close()
    except (OSError, ValueError, OverflowError) as exc:
        raise SpecError(
            f"cannot join a Ray cluster at {address!r}: {_first_line(exc)}",
            Location("--address"),
            hint="give the address `ray start --head` printed (host:port), or leave --address "
            "out to start a local instance",
        ) from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


# -- in the worker ---------------------------------------------------------------------------

_SPACES: dict[SpaceSource, SpaceDef] = {}


def _space(source: SpaceSource) -> SpaceDef:
    """The space of `source`, read once per worker process."""
    if source not in _SPACES:
        _SPACES[source] = read_source(source)
    return _SPACES[source]


def _call(func: Callable[[Any], Any], item: Any) -> Any:
    """A Ray task of `RayEngine.map`."""
    return func(item)


def _evaluate_batch(
    source: SpaceSource, points: list[Point], work: Work, fault: str | None
) -> list[Outcome]:
    """A Ray task: evaluate `points` of the space read from `source`."""
    space = _space(source)
    outcomes = []
    for point in points:
        if fault:
            _inject(fault, space, point)
        outcomes.append(run_point(space, point, work))
    return outcomes


def _inject(fault: str, space: SpaceDef, point: Point) -> None:
    """The test hook (see the module docstring): exit this worker process without a word."""
    kind, _, arg = fault.partition(":")
    if kind == "once":
        try:
            os.close(os.open(arg, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return
        os._exit(1)
    if kind == "always" and resolve(space, point).id == arg:
        os._exit(1)
