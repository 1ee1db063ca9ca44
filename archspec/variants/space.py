"""`Space`: the Python face of a search space. It is its `SpaceDef` (the checked file), with one
method per operation of the modules below, each a call of their functions:

    checks, model -> parse, sampling -> evaluation -> engine, search -> space -> command

(`parse` reads a file, `sampling` resolves points, `evaluation` measures one, `engine` runs many,
`search` hands off to Optuna and Ray Tune). No module imports one to its right."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from archspec.graph import Graph
from archspec.spec import Spec
from archspec.variants import engine, evaluation, parse, sampling, search
from archspec.variants.model import (
    Evaluated,
    Point,
    Skipped,
    SpaceDef,
    Sweep,
    Variant,
    metric_names,
)
from archspec.variants.parse import (
    C_SCALE,
    DEFAULT_PARETO,
    DEFAULT_SAMPLES,
    DEFAULT_SPLIT,
    DTYPES,
    GLOBAL_KEYS,
    ROW_KEYS,
    SAMPLING,
)

__all__ = [
    "C_SCALE",
    "DEFAULT_PARETO",
    "DEFAULT_SAMPLES",
    "DEFAULT_SPLIT",
    "DTYPES",
    "GLOBAL_KEYS",
    "ROW_KEYS",
    "SAMPLING",
    "Space",
]


@dataclasses.dataclass(frozen=True)
class Space(SpaceDef):
    """A search space: a base Spec and grids of choices over it."""

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Space:
        """Read a space file; raises a located `SpecError` on bad input."""
        return cls._of(parse.load_space(path))

    @classmethod
    def from_text(cls, text: str, file: str = "<space>") -> Space:
        """A space from YAML text (a relative `base` path is taken from the current folder)."""
        return cls._of(parse.space_from_text(text, file))

    @classmethod
    def _of(cls, space: SpaceDef) -> Space:
        return cls(**{f.name: getattr(space, f.name) for f in dataclasses.fields(SpaceDef)})

    # -- memory settings ---------------------------------------------------------------------
    @property
    def dtype(self) -> str:
        """Activation dtype of the peak-memory metrics."""
        return self.memory.dtype

    @property
    def fused_split(self) -> int | str:
        """Split of the fused-mode peak (`n` keeps one channel)."""
        return self.memory.fused_split

    @property
    def first_layer_trick(self) -> bool:
        """Whether the fused-mode peak uses the first-layer trick."""
        return self.memory.first_layer_trick

    # -- points and variants (archspec.variants.sampling) -------------------------------------
    def point(self, index: int) -> Point:
        """The index-th point in grid order (first choice varies slowest, like a nested loop)."""
        return sampling.point_at(self, index)

    def choices_of(self, point: Point) -> dict[str, Any]:
        """Every label of the space with its value at `point` (the base's where not chosen)."""
        return sampling.choices_of(self, point)

    def variant(self, point: Point) -> Variant:
        """The resolved spec at a point, with its content id."""
        return sampling.resolve(self, point)

    def grid(self) -> list[Variant]:
        """Every point of every grid, duplicates collapsed, in grid order."""
        return sampling.grid_variants(self)

    def sample_points(self, n: int, seed: int) -> list[Point]:
        """`n` distinct points drawn uniformly (the whole grid when n ≥ size), in grid order."""
        return sampling.sample_points(self, n, seed)

    def sample(self, n: int, seed: int = 0) -> list[Variant]:
        """A random sample of `n` points (duplicates collapsed)."""
        return sampling.sample_variants(self, n, seed)

    def plan(self, n: int | None = None, seed: int | None = None) -> tuple[str, list[Point]]:
        """The points a sweep visits, and their description (see `sampling.plan`)."""
        return sampling.plan(self, n, seed)

    def _unique(self, points: Iterable[Point]) -> tuple[list[Variant], int, int]:
        # used by benchmarks/bench_variants.py
        return sampling.unique(self, points)

    # -- measuring (archspec.variants.evaluation and .engine) ---------------------------------
    def metric_names(self) -> list[str]:
        """Names usable in `--where` and `--pareto`: the metrics and every numeric choice."""
        return metric_names(self)

    def metrics(self, spec: Spec) -> dict[str, Any]:
        """MAdds, params, params with BN, op- and fused-mode peaks and `memory_exact` of a spec
        under this space's memory settings; raises `SpecError` when it does not lower."""
        return evaluation.measure(spec, self.memory)

    def _peak(self, graph: Graph, mode: str, split: int | str) -> tuple[int, bool]:
        # used by benchmarks/bench_variants.py
        return evaluation.peak(graph, mode, split, self.memory)

    def evaluate(
        self, variants: Sequence[Variant], jobs: int = 1, progress: bool | None = None
    ) -> tuple[list[Evaluated], list[Skipped]]:
        """Measure each variant; illegal ones are skipped with their reason. Output order is
        the input order whatever `jobs` is."""
        return engine.evaluate(self, variants, jobs, progress)

    def sweep(
        self,
        n: int | None = None,
        seed: int | None = None,
        jobs: int = 1,
        progress: bool | None = None,
    ) -> Sweep:
        """Generate (per `plan`), de-duplicate and evaluate the variants."""
        return engine.sweep(self, n, seed, jobs, progress)

    # -- search engines (archspec.variants.search) --------------------------------------------
    def suggest(self, trial: Any) -> Spec:
        """Optuna define-by-run: the Spec of the choices `trial` suggests."""
        return search.suggest(self, trial)

    def point_from_params(self, params: Mapping[str, Any]) -> Point:
        """The point for Optuna's `trial.params` or a Ray Tune config."""
        return search.point_from_params(self, params)

    def spec_from_params(self, params: Mapping[str, Any]) -> Spec:
        """The Spec for a parameter dict (see `point_from_params`)."""
        return search.spec_from_params(self, params)

    def record(
        self,
        trial: Any,
        spec: Spec,
        constraints: search.Constraints | None = None,
        latency: Any = None,
    ) -> dict[str, Any]:
        """Measure `spec` and store its metrics (and constraint values) on an Optuna trial; with
        `latency` (measure settings or a latency table), `latency_ms` too."""
        return search.record(self, trial, spec, constraints, latency)

    def constraints(
        self, condition: str | None = None, **upper_bounds: float
    ) -> search.Constraints:
        """Constraints for Optuna from comparisons and/or `metric=upper bound` keywords."""
        return search.constraints(self, condition, **upper_bounds)

    def ray_param_space(self, plain: bool = False) -> dict[str, Any]:
        """A Ray Tune `param_space` (plain dicts without Ray or with `plain=True`)."""
        return search.ray_param_space(self, plain)
