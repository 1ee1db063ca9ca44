"""The data of a variant sweep: a space's definition (choices, grids, memory settings, where it was
read from), points, resolved variants, their outcomes and metrics. Plain data types only; every
other module of the package builds on this one."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from archspec.errors import Location, SpecError
from archspec.spec import Spec, spec_to_dict

METRICS = ("madds", "params", "params_with_bn", "peak_bytes_op", "peak_bytes_fused")
MAX_POINTS = 1_000_000  # points of a full grid, and variants of a sweep


@dataclass(frozen=True)
class Choice:
    """One decision of a grid: a global field or a field of one or more rows."""

    label: str
    key: str  # width_multiplier | resolution | num_classes | t | n | k | s | c | c_scale
    rows: tuple[int, ...]  # row indices (empty for a global choice)
    values: tuple[Any, ...]  # checked values (resolution as an (h, w) tuple)
    shown: tuple[Any, ...]  # values as written (for the manifest: 224 or [160, 192])
    locs: tuple[Location, ...]  # where each value is written

    def param_values(self) -> list[Any]:
        """The values as Optuna/Ray categorical choices (numbers, or `HxW` text)."""
        return [_param_value(v) for v in self.shown]


@dataclass(frozen=True)
class Grid:
    """The product of its choices' value lists."""

    choices: tuple[Choice, ...]
    loc: Location

    @property
    def size(self) -> int:
        """Number of points (1 for a grid without choices: the base spec)."""
        return math.prod(len(c.values) for c in self.choices)


@dataclass(frozen=True)
class Point:
    """A point of a space: which grid, and the value index of each of its choices."""

    grid: int
    picks: tuple[int, ...]


@dataclass(frozen=True)
class Variant:
    """A resolved spec, its content id and the choices that made it."""

    id: str
    point: Point
    choices: Mapping[str, Any]
    spec: Spec

    def spec_dict(self) -> dict[str, Any]:
        """The resolved spec as plain data (every value concrete)."""
        return spec_to_dict(self.spec)

    def spec_yaml(self) -> str:
        """The resolved spec as a YAML file."""
        return yaml.safe_dump(self.spec_dict(), sort_keys=False)


@dataclass(frozen=True)
class Skipped:
    """A variant whose choices make an illegal network, and why; or (`failed`) one whose
    evaluation kept killing its worker (an engine's retries exhausted), which a resumed sweep
    tries again."""

    id: str
    choices: Mapping[str, Any]
    reason: str
    failed: bool = False


@dataclass(frozen=True)
class Evaluated:
    """A legal variant and its metrics."""

    variant: Variant
    metrics: Mapping[str, Any]


@dataclass
class Sweep:
    """The outcome of generating and evaluating the variants of a space."""

    points: int  # points generated (before de-duplication)
    duplicates: int  # points that collapsed into an earlier variant
    evaluated: list[Evaluated] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)

    def skip_reasons(self) -> list[tuple[str, int]]:
        """Distinct reasons for skipped variants, most frequent first."""
        counts = Counter(s.reason for s in self.skipped)
        return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))


@dataclass(frozen=True)
class SpaceSource:
    """Where a space was read from, as plain (picklable) data, so that a worker process (or a
    remote task) can read the same space again: a file, or YAML text with its folder."""

    path: str | None = None  # an absolute path to the space file
    text: str | None = None  # or YAML text,
    file: str = "<space>"  # named so in messages,
    cwd: str = ""  # whose relative `base` path is taken from this folder

    @property
    def folder(self) -> Path:
        """The folder a relative `base` path is taken from."""
        return Path(self.path).parent if self.path is not None else Path(self.cwd)


@dataclass(frozen=True)
class MemorySettings:
    """How a sweep measures peak memory: activation dtype, fused split, first-layer trick."""

    dtype: str
    fused_split: int | str
    first_layer_trick: bool


@dataclass(frozen=True)
class SpaceDef:
    """A search space as read and checked from its file: a base Spec and grids of choices."""

    source: SpaceSource
    name: str
    description: str
    file: str
    base: Spec
    sampling: str  # auto | grid | random
    samples: int
    seed: int
    memory: MemorySettings
    grids: tuple[Grid, ...]
    labels: tuple[str, ...]  # every choice label, in order of first appearance
    base_values: Mapping[str, Any]  # each label's value in the base spec
    pareto: str  # the default Pareto axes

    @property
    def size(self) -> int:
        """Number of points over all grids (duplicates included)."""
        return sum(g.size for g in self.grids)


@dataclass(frozen=True)
class Outcome:
    """What evaluating one point gives: its variant id and either its metrics or why it is
    illegal. Plain data, so that it can come back from another process."""

    point: Point
    id: str
    metrics: Mapping[str, Any] | None
    reason: str | None = None
    failed: bool = False  # not evaluated: its worker died on every attempt (`reason` says how)


def metric_names(space: SpaceDef) -> list[str]:
    """Names usable in `--where` and `--pareto`: the metrics and every numeric choice."""
    numeric = [
        label
        for label in space.labels
        if all(
            is_number(v)
            for g in space.grids
            for c in g.choices
            if c.label == label
            for v in c.shown
        )
        and is_number(space.base_values[label])
    ]
    return [*METRICS, *numeric]


def scaled_channels(c: int, scale: float) -> int:
    """A row's base channels times `c_scale`, rounded half up, at least 1."""
    return max(1, math.floor(c * scale + 0.5))


def _param_value(shown: Any) -> Any:
    if isinstance(shown, list):
        return f"{shown[0]}x{shown[1]}"
    return shown


def is_number(v: Any) -> bool:
    """True for an int or float that is not a bool."""
    return isinstance(v, int | float) and not isinstance(v, bool)


def skip_reason(exc: SpecError) -> str:
    """Why a variant is illegal, as one line (`field: message`)."""
    return f"{exc.field}: {exc.message}" if exc.field else exc.message
