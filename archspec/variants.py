"""Search spaces: a base spec plus choices → many resolved Specs, their costs, and hand-offs to
search engines (Optuna define-by-run, Ray Tune `param_space`).

A space file (YAML)::

    name: mnv2_small                    # letters, digits, `_`, `.`, `-`
    base: ../mnv2_1.0.yaml              # a spec file (relative to this file), or an inline spec
    sampling: auto                      # auto | grid | random (auto: grid up to 10,000 points)
    samples: 1000                       # how many points `random` draws (CLI: --n)
    seed: 0                             # CLI: --seed
    memory: {dtype: float32, fused_split: 4, first_layer_trick: true}
    pareto: madds,params:max            # default Pareto axes (CLI: --pareto)
    choices:                            # one grid: the product of every list below
      width_multiplier: [0.75, 1.0]
      resolution: [160, 224]
      num_classes: [1000]
      rows:                             # per row (a Table 2 row is a stage of n blocks)
        - {row: 2, t: [4, 6], n: [2, 3]}             # by index into `layers`
        - {row: last_conv, c_scale: [0.75, 1.0]}     # by name
        - {row: [4, 5], k: [3, 5], label: mid}       # several rows share one choice
    include:                            # more grids (same syntax), e.g. a single extra point
      - {width_multiplier: 1.4, resolution: 224}

Row choice keys: `t`, `n`, `k`, `s`, `c` (base channels, before the width multiplier) and
`c_scale` (multiplies the row's base channels: c = max(1, round_half_up(c · scale)); the width
multiplier and channel rounding then apply as usual). A key must be a field of the row's kind.
Each choice is labelled `width_multiplier`, `resolution`, `num_classes`, or `<rows>.<key>` where
`<rows>` is the label, the row's name, or `row<index>` (joined by `_` for several rows).

Values are checked against the spec schema when the space is loaded (bad values are bad input,
exit 2). Combinations that only fail when lowered (a stride that shrinks a map below one pixel, an
even kernel, ...) are skipped and counted with their reason.

A variant's id is the first 12 hex digits of the SHA-256 of the canonical JSON of its resolved spec
(`spec_to_dict`, keys sorted) without `name` and `description`, so two choices that give the same
architecture collapse into one variant (the first one generated keeps its choices).

Memory: `peak_bytes_op` is the Eq. 1 peak over the best op order (ops one at a time, every tensor
materialised); `peak_bytes_fused` is the peak with every bottleneck block fused and its inner
tensor split `fused_split` ways (default 4: the paper suggests "a small constant between 2 and 5";
`n` keeps one channel), with the first-layer trick unless disabled. Both in the space's activation
dtype (default float32).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import difflib
import hashlib
import io
import json
import math
import multiprocessing
import os
import random
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, TextIO

import yaml

from archspec.analysis.cost import analyze_cost
from archspec.analysis.memory import DTYPE_BYTES, memory_problem
from archspec.analysis.schedule import optimal_order
from archspec.errors import Location, SpecError
from archspec.graph import Graph
from archspec.lower import lower
from archspec.names import SPEC_NAME, identifier_problem
from archspec.ops import LAYER_KINDS
from archspec.ops.base import Field
from archspec.output import Progress, nonnegative_int, write_file, write_tree
from archspec.pareto import Axis, front_mask, parse_axes
from archspec.spec import (
    HEADER_FIELDS,
    INPUT_FIELDS,
    MAX_CHANNELS,
    Spec,
    check_value,
    spec_from_node,
    spec_to_dict,
)
from archspec.where import Condition, constraint_keys, constraint_values, parse
from archspec.yamlsrc import Node, load_yaml, read_yaml_file

METRICS = ("madds", "params", "params_with_bn", "peak_bytes_op", "peak_bytes_fused")
GLOBAL_KEYS = ("width_multiplier", "resolution", "num_classes")
ROW_KEYS = ("t", "n", "k", "s", "c", "c_scale")
DTYPES = tuple(DTYPE_BYTES)
SAMPLING = ("auto", "grid", "random")
AUTO_GRID_LIMIT = 10_000
MAX_POINTS = 1_000_000
DEFAULT_SAMPLES = 1000
DEFAULT_SPLIT = 4
DEFAULT_PARETO = "madds,params:max"
MEMORY_TIME_LIMIT = 0.05  # seconds per order search: chains are solved at once, DAGs bounded
MEMORY_MAX_STATES = 200_000
C_SCALE = Field(
    "c_scale",
    "number",
    "Multiplier of the row's base channels.",
    required=True,
    minimum=0.01,
    maximum=16.0,
)
_GLOBAL_FIELDS = {
    "width_multiplier": next(f for f in HEADER_FIELDS if f.name == "width_multiplier"),
    "num_classes": next(f for f in HEADER_FIELDS if f.name == "num_classes"),
    "resolution": next(f for f in INPUT_FIELDS if f.name == "resolution"),
}
_SPACE_KEYS = (
    "name",
    "description",
    "base",
    "sampling",
    "samples",
    "seed",
    "memory",
    "pareto",
    "choices",
    "include",
)
_MEMORY_KEYS = ("dtype", "fused_split", "first_layer_trick")


# --------------------------------------------------------------------------------------------
# The space


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
    """A variant whose choices make an illegal network, and why."""

    id: str
    choices: Mapping[str, Any]
    reason: str


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


def _param_value(shown: Any) -> Any:
    if isinstance(shown, list):
        return f"{shown[0]}x{shown[1]}"
    return shown


def _found(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return repr(value)


def _mapping(node: Node, path: str) -> dict[str, tuple[Location, Node]]:
    if not isinstance(node.value, dict):
        raise SpecError(f"found {_found(node.value)}; expected a mapping", node.loc, path)
    return node.value


def _check_keys(
    items: Mapping[str, tuple[Location, Node]], allowed: Sequence[str], path: str, what: str
) -> None:
    for key, (key_loc, _) in items.items():
        if key not in allowed:
            near = difflib.get_close_matches(key, list(allowed), n=1)
            raise SpecError(
                f"unknown key {key!r} for {what}; expected one of: {', '.join(allowed)}",
                key_loc,
                f"{path}.{key}" if path else key,
                f"did you mean {near[0]!r}?" if near else None,
            )


def _values(node: Node, path: str) -> list[Node]:
    """A choice's value list (a scalar is a list of one); empty lists are refused."""
    if isinstance(node.value, list):
        if not node.value:
            raise SpecError(
                "found an empty list; expected one or more values to choose from", node.loc, path
            )
        return node.value
    if isinstance(node.value, dict):
        raise SpecError("found a mapping; expected a list of values", node.loc, path)
    return [node]


def _check_choice_values(f: Field, nodes: list[Node], path: str) -> tuple[list[Any], list[Any]]:
    values, shown = [], []
    seen: dict[Any, Location] = {}
    for i, item in enumerate(nodes):
        if f.kind == "resolution" and isinstance(item.value, list):
            value = check_value(f, item, f"{path}[{i}]")
        elif isinstance(item.value, list | dict):
            raise SpecError(
                f"found {_found(item.value)}; expected a single value", item.loc, f"{path}[{i}]"
            )
        else:
            value = check_value(f, item, f"{path}[{i}]")
        # equal values (1 and 1.0, 224 and [224, 224]) would be the same choice twice
        if value in seen:
            raise SpecError(
                f"duplicate value {item.plain()!r} (already listed at line {seen[value].line}, "
                f"column {seen[value].column})",
                item.loc,
                f"{path}[{i}]",
            )
        seen[value] = item.loc
        values.append(value)
        shown.append(item.plain())
    return values, shown


class Space:
    """A search space: a base Spec and grids of choices over it."""

    def __init__(self, root: Node, origin: tuple[str, ...]) -> None:
        self._origin = origin
        items = _mapping(root, "")
        _check_keys(items, _SPACE_KEYS, "", "a search space")
        file = root.loc.file

        def get(key: str) -> Node | None:
            return items[key][1] if key in items else None

        name_node = get("name")
        if name_node is None:
            raise SpecError("missing required key 'name' for a search space", root.loc, "name")
        name = name_node.value
        if not isinstance(name, str) or not SPEC_NAME.match(name) or len(name) > 50:
            raise SpecError(
                f"found {_found(name)}; expected a name of letters, digits, `_`, `.` or `-` "
                "starting with a letter (at most 50 characters)",
                name_node.loc,
                "name",
            )
        self.name: str = name
        desc = get("description")
        if desc is not None and not isinstance(desc.value, str):
            raise SpecError(f"found {_found(desc.value)}; expected text", desc.loc, "description")
        self.description: str = "" if desc is None else desc.value
        self.file = file
        self.base: Spec = self._load_base(get("base"), root.loc)
        try:
            lower(self.base)
        except SpecError as exc:
            raise SpecError(
                f"{exc.message} (the base spec does not lower)", exc.location, exc.field, exc.hint
            ) from None

        self.sampling: str = self._scalar(get("sampling"), "sampling", "auto", choices=SAMPLING)
        self.samples: int = self._scalar(
            get("samples"),
            "samples",
            DEFAULT_SAMPLES,
            Field("samples", "int", "", minimum=1, maximum=MAX_POINTS),
        )
        self.seed: int = self._scalar(
            get("seed"), "seed", 0, Field("seed", "int", "", minimum=0, maximum=2**63 - 1)
        )
        self.dtype = "float32"
        self.fused_split: int | str = DEFAULT_SPLIT
        self.first_layer_trick = True
        mem = get("memory")
        if mem is not None:
            mitems = _mapping(mem, "memory")
            _check_keys(mitems, _MEMORY_KEYS, "memory", "memory")
            if "dtype" in mitems:
                self.dtype = self._scalar(
                    mitems["dtype"][1], "memory.dtype", "float32", choices=DTYPES
                )
            if "fused_split" in mitems:
                node = mitems["fused_split"][1]
                if node.value != "n":
                    check_value(
                        Field("fused_split", "int", "", minimum=1, maximum=MAX_CHANNELS),
                        node,
                        "memory.fused_split",
                    )
                self.fused_split = node.value
            if "first_layer_trick" in mitems:
                self.first_layer_trick = check_value(
                    Field("first_layer_trick", "bool", ""),
                    mitems["first_layer_trick"][1],
                    "memory.first_layer_trick",
                )

        grids: list[Grid] = []
        choices_node = get("choices")
        if choices_node is not None:
            grids.append(self._grid(choices_node, "choices"))
        include = get("include")
        if include is not None:
            if not isinstance(include.value, list) or not include.value:
                raise SpecError(
                    f"found {_found(include.value)}; expected a non-empty list of "
                    "grids (mappings like `choices`)",
                    include.loc,
                    "include",
                )
            for i, item in enumerate(include.value):
                grids.append(self._grid(item, f"include[{i}]"))
        if not grids:
            grids.append(Grid((), root.loc))
        self.grids: tuple[Grid, ...] = tuple(grids)
        labels: dict[str, Choice] = {}
        for grid in self.grids:
            for choice in grid.choices:
                first = labels.setdefault(choice.label, choice)
                if (first.key, first.rows) != (choice.key, choice.rows):
                    raise SpecError(
                        f"label {choice.label!r} already names another choice "
                        f"(line {first.locs[0].line})",
                        choice.locs[0],
                        choice.label,
                        "give the row choice a distinct `label`",
                    )
        self.labels: tuple[str, ...] = tuple(labels)
        self.base_values: dict[str, Any] = {
            label: self._base_value(choice) for label, choice in labels.items()
        }
        pareto_node = get("pareto")
        self.pareto: str = DEFAULT_PARETO
        if pareto_node is not None:
            text = pareto_node.value
            if isinstance(text, list):
                text = ",".join(str(v.value) for v in text)
            if not isinstance(text, str):
                raise SpecError(
                    f"found {_found(text)}; expected `metric,metric`, e.g. {DEFAULT_PARETO!r}",
                    pareto_node.loc,
                    "pareto",
                )
            parse_axes(text, self.metric_names(), pareto_node.loc)
            self.pareto = text

    # -- loading -------------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Space:
        """Read a space file; raises a located `SpecError` on bad input."""
        return cls(read_yaml_file(str(path)), ("path", os.path.abspath(path)))

    @classmethod
    def from_text(cls, text: str, file: str = "<space>") -> Space:
        """A space from YAML text (a relative `base` path is taken from the current folder)."""
        return cls(load_yaml(text, file), ("text", text, file, os.getcwd()))

    @classmethod
    def _reload(cls, origin: tuple[str, ...]) -> Space:
        if origin[0] == "path":
            return cls.load(origin[1])
        _, text, file, cwd = origin
        here = os.getcwd()
        os.chdir(cwd)
        try:
            return cls.from_text(text, file)
        finally:
            os.chdir(here)

    def _load_base(self, node: Node | None, where: Location) -> Spec:
        if node is None:
            raise SpecError(
                "missing required key 'base' (a spec file or an inline spec)", where, "base"
            )
        if isinstance(node.value, dict):
            return spec_from_node(node)
        if not isinstance(node.value, str):
            raise SpecError(
                f"found {_found(node.value)}; expected a spec file path or an inline spec mapping",
                node.loc,
                "base",
            )
        folder = (
            Path(self._origin[1]).parent if self._origin[0] == "path" else Path(self._origin[3])
        )
        path = folder / node.value
        if not path.is_file():
            raise SpecError(
                f"no spec file {str(path)!r}",
                node.loc,
                "base",
                "paths are relative to the space file",
            )
        return spec_from_node(read_yaml_file(str(path)))

    def _scalar(
        self,
        node: Node | None,
        path: str,
        default: Any,
        f: Field | None = None,
        choices: Sequence[str] = (),
    ) -> Any:
        if node is None:
            return default
        if f is not None:
            return check_value(f, node, path)
        if node.value not in choices:
            raise SpecError(
                f"found {_found(node.value)}; expected one of: {', '.join(choices)}", node.loc, path
            )
        return node.value

    def _row_index(self, node: Node, path: str) -> int:
        v = node.value
        rows = self.base.rows
        if isinstance(v, bool) or not isinstance(v, int | str):
            raise SpecError(
                f"found {_found(v)}; expected a row index or a row name", node.loc, path
            )
        if isinstance(v, int):
            if not 0 <= v < len(rows):
                raise SpecError(
                    f"row {v} does not exist; the base spec has rows 0 to {len(rows) - 1}",
                    node.loc,
                    path,
                )
            return v
        for row in rows:
            if row.name == v:
                return row.index
        named = [r.name for r in rows if r.name]
        near = difflib.get_close_matches(v, named, n=1)
        raise SpecError(
            f"no row named {v!r} in the base spec",
            node.loc,
            path,
            (f"did you mean {near[0]!r}? " if near else "")
            + f"named rows: {', '.join(named) or 'none'}; or give an index into `layers` "
            "(0 is the first)",
        )

    def _grid(self, node: Node, path: str) -> Grid:
        items = _mapping(node, path)
        _check_keys(items, (*GLOBAL_KEYS, "rows"), path, "a grid of choices")
        choices: list[Choice] = []
        for key in GLOBAL_KEYS:
            if key in items:
                sub = f"{path}.{key}"
                nodes = _values(items[key][1], sub)
                values, shown = _check_choice_values(_GLOBAL_FIELDS[key], nodes, sub)
                choices.append(
                    Choice(key, key, (), tuple(values), tuple(shown), tuple(n.loc for n in nodes))
                )
        if "rows" in items:
            rows_node = items["rows"][1]
            if not isinstance(rows_node.value, list):
                raise SpecError(
                    f"found {_found(rows_node.value)}; expected a list of row "
                    "choices like `{row: 2, t: [4, 6]}`",
                    rows_node.loc,
                    f"{path}.rows",
                )
            taken: dict[tuple[int, str], Location] = {}
            for i, entry in enumerate(rows_node.value):
                choices.extend(self._row_choices(entry, f"{path}.rows[{i}]", taken))
        return Grid(tuple(choices), node.loc)

    def _row_choices(
        self, entry: Node, path: str, taken: dict[tuple[int, str], Location]
    ) -> list[Choice]:
        items = _mapping(entry, path)
        _check_keys(items, ("row", "label", *ROW_KEYS), path, "a row choice")
        if "row" not in items:
            raise SpecError(
                "missing key 'row' (a row index or name, or a list of them)",
                entry.loc,
                f"{path}.row",
            )
        row_node = items["row"][1]
        targets = row_node.value if isinstance(row_node.value, list) else [row_node]
        if not targets:
            raise SpecError(
                "found an empty list; expected one or more rows", row_node.loc, f"{path}.row"
            )
        indices = [self._row_index(t, f"{path}.row") for t in targets]
        if len(set(indices)) != len(indices):
            raise SpecError("a row is listed twice", row_node.loc, f"{path}.row")
        if "label" in items:
            label_node = items["label"][1]
            prefix = label_node.value
            problem = identifier_problem(prefix) if isinstance(prefix, str) else "not text"
            if problem:
                raise SpecError(
                    f"{prefix!r} cannot be a label: {problem}", label_node.loc, f"{path}.label"
                )
        else:
            prefix = "_".join(self.base.rows[i].name or f"row{i}" for i in indices)
        keys = [k for k in ROW_KEYS if k in items]
        if not keys:
            raise SpecError(
                f"no choice given; expected one or more of: {', '.join(ROW_KEYS)}", entry.loc, path
            )
        if "c" in keys and "c_scale" in keys:
            raise SpecError(
                "choose `c` or `c_scale`, not both", items["c_scale"][0], f"{path}.c_scale"
            )
        out = []
        for key in keys:
            key_loc, value_node = items[key]
            sub = f"{path}.{key}"
            target = "c" if key == "c_scale" else key
            f = C_SCALE
            for i in indices:
                row = self.base.rows[i]
                kind = LAYER_KINDS[row.kind]
                if target not in kind.field_index:
                    has = [
                        k for k in ROW_KEYS if (k if k != "c_scale" else "c") in kind.field_index
                    ]
                    raise SpecError(
                        f"a {row.kind} row (row {i}) has no {target!r}; it can choose: "
                        f"{', '.join(has) or 'nothing'}",
                        key_loc,
                        sub,
                    )
                if key == "c_scale" and not isinstance(row.fields["c"], int):
                    raise SpecError(
                        f"row {i}'s c is {row.fields['c']!r}; c_scale needs a number of channels",
                        key_loc,
                        sub,
                    )
                if (i, target) in taken:
                    raise SpecError(
                        f"row {i}'s {target} is already chosen at line {taken[(i, target)].line}",
                        key_loc,
                        sub,
                    )
                taken[(i, target)] = key_loc
                if key != "c_scale":
                    f = kind.field_index[target]
            nodes = _values(value_node, sub)
            values, shown = _check_choice_values(f, nodes, sub)
            if key == "c_scale":
                for v, n in zip(values, nodes, strict=True):
                    for i in indices:
                        c = _scaled(self.base.rows[i].fields["c"], v)
                        if c > MAX_CHANNELS:
                            raise SpecError(
                                f"row {i} would have {c} base channels; expected "
                                f"at most {MAX_CHANNELS}",
                                n.loc,
                                sub,
                            )
            out.append(
                Choice(
                    f"{prefix}.{key}",
                    key,
                    tuple(indices),
                    tuple(values),
                    tuple(shown),
                    tuple(n.loc for n in nodes),
                )
            )
        return out

    def _base_value(self, choice: Choice) -> Any:
        base = self.base
        if choice.key == "width_multiplier":
            return base.width_multiplier
        if choice.key == "num_classes":
            return base.num_classes
        if choice.key == "resolution":
            h, w = base.resolution
            return h if h == w else [h, w]
        if choice.key == "c_scale":
            return 1.0
        values = {base.rows[i].fields[choice.key] for i in choice.rows}
        return values.pop() if len(values) == 1 else None

    # -- points and variants ---------------------------------------------------------------------
    @property
    def size(self) -> int:
        """Number of points over all grids (duplicates included)."""
        return sum(g.size for g in self.grids)

    def point(self, index: int) -> Point:
        """The index-th point in grid order (first choice varies slowest, like a nested loop)."""
        if not 0 <= index < self.size:
            raise IndexError(index)
        for g, grid in enumerate(self.grids):
            if index < grid.size:
                picks = []
                for choice in reversed(grid.choices):
                    index, r = divmod(index, len(choice.values))
                    picks.append(r)
                return Point(g, tuple(reversed(picks)))
            index -= grid.size
        raise AssertionError("unreachable")

    def choices_of(self, point: Point) -> dict[str, Any]:
        """Every label of the space with its value at `point` (the base's where not chosen)."""
        out = dict(self.base_values)
        grid = self.grids[point.grid]
        for choice, pick in zip(grid.choices, point.picks, strict=True):
            out[choice.label] = choice.shown[pick]
        return out

    def variant(self, point: Point) -> Variant:
        """The resolved spec at a point, with its content id."""
        grid = self.grids[point.grid]
        base = self.base
        header: dict[str, Any] = {}
        locs = dict(base.locs)
        row_fields: dict[int, dict[str, Any]] = {}
        row_locs: dict[int, dict[str, Location]] = {}
        for choice, pick in zip(grid.choices, point.picks, strict=True):
            value, loc = choice.values[pick], choice.locs[pick]
            if not choice.rows:
                header[choice.key] = value
                locs["input" if choice.key == "resolution" else choice.key] = loc
                continue
            for i in choice.rows:
                row = base.rows[i]
                fields = row_fields.setdefault(i, dict(row.fields))
                where = row_locs.setdefault(i, dict(row.field_locs))
                if choice.key == "c_scale":
                    fields["c"] = _scaled(row.fields["c"], value)
                    where["c"] = loc
                else:
                    fields[choice.key] = value
                    where[choice.key] = loc
        rows = tuple(
            dataclasses.replace(
                row,
                fields=MappingProxyType(row_fields[row.index]),
                field_locs=MappingProxyType(row_locs[row.index]),
            )
            if row.index in row_fields
            else row
            for row in base.rows
        )
        if "width_multiplier" in header:
            header["width_multiplier"] = float(header["width_multiplier"])
        spec = dataclasses.replace(base, rows=rows, locs=MappingProxyType(locs), **header)
        data = spec_to_dict(spec)
        data.pop("name")
        data.pop("description", None)
        canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        vid = hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:12]
        choices = self.choices_of(point)
        described = ", ".join(f"{k}={v}" for k, v in choices.items())
        spec = dataclasses.replace(
            spec,
            name=f"{self.name}-{vid}",
            description=f"Variant {vid} of {base.name} in space {self.name}: {described}",
        )
        return Variant(vid, point, MappingProxyType(choices), spec)

    def _unique(self, points: Iterable[Point]) -> tuple[list[Variant], int, int]:
        seen: set[str] = set()
        out: list[Variant] = []
        total = 0
        for p in points:
            total += 1
            v = self.variant(p)
            if v.id not in seen:
                seen.add(v.id)
                out.append(v)
        return out, total, total - len(out)

    def grid(self) -> list[Variant]:
        """Every point of every grid, duplicates collapsed, in grid order."""
        self._check_grid_size()
        return self._unique(self.point(i) for i in range(self.size))[0]

    def _check_grid_size(self) -> None:
        if self.size > MAX_POINTS:
            raise SpecError(
                f"the space has {self.size:,} points; a full grid is limited to {MAX_POINTS:,}",
                Location(self.file),
                "sampling",
                "sample it instead (--n N)",
            )

    def sample_points(self, n: int, seed: int) -> list[Point]:
        """`n` distinct points drawn uniformly (the whole grid when n ≥ size), in grid order.
        The same seed gives the same points."""
        size = self.size
        if n >= size:
            return [self.point(i) for i in range(size)]
        rng = random.Random(seed)
        if size <= sys.maxsize:
            indices = rng.sample(range(size), n)
        else:
            chosen: set[int] = set()
            while len(chosen) < n:
                chosen.add(rng.randrange(size))
            indices = list(chosen)
        return [self.point(i) for i in sorted(indices)]

    def sample(self, n: int, seed: int = 0) -> list[Variant]:
        """A random sample of `n` points (duplicates collapsed)."""
        return self._unique(self.sample_points(n, seed))[0]

    def plan(self, n: int | None = None, seed: int | None = None) -> tuple[str, list[Point]]:
        """The points a sweep visits: `n` → random sample; else the space's `sampling` rule.
        Returns (description, points)."""
        seed = self.seed if seed is None else seed
        mode = self.sampling
        if n is not None:
            mode = "random"
        elif mode == "auto":
            mode = "grid" if self.size <= AUTO_GRID_LIMIT else "random"
        if mode == "grid":
            self._check_grid_size()
            return f"grid of {self.size:,} points", [self.point(i) for i in range(self.size)]
        count = self.samples if n is None else n
        if count > MAX_POINTS:
            raise SpecError(
                f"found {count:,}; at most {MAX_POINTS:,} variants per sweep", Location("--n")
            )
        points = self.sample_points(count, seed)
        return (f"random sample of {len(points):,} of {self.size:,} points (seed {seed})", points)

    # -- metrics ---------------------------------------------------------------------------------
    def metric_names(self) -> list[str]:
        """Names usable in `--where` and `--pareto`: the metrics and every numeric choice."""
        numeric = [
            label
            for label in self.labels
            if all(
                _is_number(v)
                for g in self.grids
                for c in g.choices
                if c.label == label
                for v in c.shown
            )
            and _is_number(self.base_values[label])
        ]
        return [*METRICS, *numeric]

    def metrics(self, spec: Spec) -> dict[str, Any]:
        """Lower a spec and measure it: MAdds, params, params with BN, and the op-mode and
        fused-mode peaks (`memory_exact` says whether both peaks are proven optimal).
        Raises `SpecError` when the spec does not lower."""
        graph = lower(spec)
        cost = analyze_cost(graph)
        op, op_exact = self._peak(graph, "op", 1)
        fused, fused_exact = self._peak(graph, "fused", self.fused_split)
        return {
            "madds": cost.madds,
            "params": cost.params,
            "params_with_bn": cost.params_with_bn,
            "peak_bytes_op": op,
            "peak_bytes_fused": fused,
            "memory_exact": op_exact and fused_exact,
        }

    def _peak(self, graph: Graph, mode: str, split: int | str) -> tuple[int, bool]:
        # The scheduling problem and its order search only: `plan_memory` also places buffers
        # and keeps per-step tables a sweep never reads (and costs several times more).
        problem, _ = memory_problem(
            graph, mode, split, self.first_layer_trick, DTYPE_BYTES[self.dtype]
        )
        result = optimal_order(problem, max_states=MEMORY_MAX_STATES, time_limit=MEMORY_TIME_LIMIT)
        return result.peak_bytes, result.optimal

    def evaluate(
        self, variants: Sequence[Variant], jobs: int = 1, progress: bool | None = None
    ) -> tuple[list[Evaluated], list[Skipped]]:
        """Measure each variant; illegal ones are skipped with their reason. Output order is
        the input order whatever `jobs` is."""
        bar = Progress(len(variants), "variants", progress)
        evaluated: list[Evaluated] = []
        skipped: list[Skipped] = []
        if jobs > 1 and len(variants) > 1:
            ctx = multiprocessing.get_context(
                "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
            )
            chunk = max(1, min(64, len(variants) // (jobs * 8)))
            with ctx.Pool(jobs, initializer=_init_worker, initargs=(self._origin,)) as pool:
                results: Iterable[tuple[str, Any]] = pool.imap(
                    _work, [v.point for v in variants], chunksize=chunk
                )
                for v, result in zip(variants, results, strict=True):
                    _collect(v, result, evaluated, skipped)
                    bar.step(v.id)
        else:
            for v in variants:
                _collect(v, self._measure(v.spec), evaluated, skipped)
                bar.step(v.id)
        bar.close()
        return evaluated, skipped

    def _measure(self, spec: Spec) -> tuple[str, Any]:
        try:
            return "ok", self.metrics(spec)
        except SpecError as exc:
            return "skip", _reason(exc)

    def sweep(
        self,
        n: int | None = None,
        seed: int | None = None,
        jobs: int = 1,
        progress: bool | None = None,
    ) -> Sweep:
        """Generate (per `plan`), de-duplicate and evaluate the variants."""
        _, points = self.plan(n, seed)
        variants, total, dups = self._unique(points)
        evaluated, skipped = self.evaluate(variants, jobs, progress)
        return Sweep(total, dups, evaluated, skipped)

    # -- search engines --------------------------------------------------------------------------
    def _param_name(self, grid: int, choice: Choice) -> str:
        return choice.label if grid == 0 else f"include{grid}.{choice.label}"

    def suggest(self, trial: Any) -> Spec:
        """Optuna define-by-run: one `trial.suggest_categorical` per choice of the grid the
        trial picks (a `grid` parameter when the space has several); returns the Spec."""
        g = 0
        if len(self.grids) > 1:
            g = trial.suggest_categorical("grid", list(range(len(self.grids))))
        picks = []
        for choice in self.grids[g].choices:
            options = choice.param_values()
            value = trial.suggest_categorical(self._param_name(g, choice), options)
            picks.append(options.index(value))
        return self.variant(Point(g, tuple(picks))).spec

    def point_from_params(self, params: Mapping[str, Any]) -> Point:
        """The point for a parameter dict as Optuna's `trial.params` or a Ray Tune config
        (parameters of grids other than the chosen one are ignored)."""
        g = params.get("grid", 0)
        if isinstance(g, bool) or not isinstance(g, int) or not 0 <= g < len(self.grids):
            raise SpecError(
                f"found grid {g!r}; expected 0 to {len(self.grids) - 1}",
                Location("<params>"),
                "grid",
            )
        picks = []
        for choice in self.grids[g].choices:
            name = self._param_name(g, choice)
            if name not in params:
                raise SpecError(f"missing parameter {name!r}", Location("<params>"), name)
            options = choice.param_values()
            if params[name] not in options:
                raise SpecError(
                    f"found {params[name]!r}; expected one of {options}", Location("<params>"), name
                )
            picks.append(options.index(params[name]))
        return Point(g, tuple(picks))

    def spec_from_params(self, params: Mapping[str, Any]) -> Spec:
        """The Spec for a parameter dict (see `point_from_params`)."""
        return self.variant(self.point_from_params(params)).spec

    def record(
        self, trial: Any, spec: Spec, constraints: Constraints | None = None
    ) -> dict[str, Any]:
        """Measure `spec` and store the metrics on an Optuna trial (`trial.set_user_attr`, one
        attribute per metric, plus `archspec_id`); with `constraints`, also set each constraint
        value with `trial.set_constraint` (Optuna ≥ 5). An illegal spec stores its reason in
        `archspec_illegal` and raises `optuna.TrialPruned`."""
        try:
            metrics = self.metrics(spec)
        except SpecError as exc:
            import optuna

            trial.set_user_attr("archspec_illegal", _reason(exc))
            raise optuna.TrialPruned(_reason(exc)) from None
        trial.set_user_attr("archspec_id", spec.name.rsplit("-", 1)[-1])
        for key, value in metrics.items():
            trial.set_user_attr(key, value)
        if constraints is not None:
            point = self.point_from_params(trial.params)
            values = constraints.values({**self.choices_of(point), **metrics})
            for key, value in zip(constraints.keys, values, strict=True):
                trial.set_constraint(key, value)
        return metrics

    def constraints(self, condition: str | None = None, **upper_bounds: float) -> Constraints:
        """Constraints from `and`-joined comparisons and/or `metric=upper bound` keywords, e.g.
        `space.constraints("peak_bytes_fused <= 512e3", madds=300e6)`; values ≤ 0 are feasible.

        Two ways to give them to Optuna: pass them to `record(trial, spec, constraints)`, which
        calls `trial.set_constraint` (Optuna ≥ 5), or use the object as a sampler's
        `constraints_func` (older Optuna): it reads the metrics `record` stored on the trial,
        or measures the trial's parameters when it has none."""
        parts = [condition] if condition else []
        names = self.metric_names()
        for key, bound in upper_bounds.items():
            if key not in names:
                raise SpecError(
                    f"unknown metric {key!r}; expected one of: {', '.join(names)}",
                    Location("<constraints>"),
                    key,
                )
            parts.append(f"{key} <= {float(bound)!r}")
        if not parts:
            raise SpecError("no constraint given", Location("<constraints>"))
        text = " and ".join(f"({p})" for p in parts)
        cond = parse(text, names)
        cond.comparisons()  # refuse or/not now rather than inside the study
        return Constraints(self, cond)

    def ray_param_space(self, plain: bool = False) -> dict[str, Any]:
        """A Ray Tune `param_space`: `tune.choice` per choice (and a `grid` choice when the space
        has several grids). Without Ray installed, or with `plain=True`, each domain is the plain
        dict `{"choice": [values]}`. Turn a sampled config into a Spec with `spec_from_params`."""
        choice = _choice_factory(plain)
        out: dict[str, Any] = {}
        if len(self.grids) > 1:
            out["grid"] = choice(list(range(len(self.grids))))
        for g, grid in enumerate(self.grids):
            for c in grid.choices:
                out[self._param_name(g, c)] = choice(c.param_values())
        return out


class Constraints:
    """An Optuna `constraints_func`: one value per comparison, ≤ 0 when satisfied."""

    def __init__(self, space: Space, condition: Condition) -> None:
        self.space = space
        self.condition = condition

    def values(self, metrics: Mapping[str, Any]) -> list[float]:
        """Constraint values for a metrics dict."""
        return constraint_values(self.condition, metrics)

    def __call__(self, trial: Any) -> list[float]:
        attrs = trial.user_attrs
        point = self.space.point_from_params(trial.params)
        if all(m in attrs for m in METRICS):
            metrics = {m: attrs[m] for m in METRICS}
        else:
            try:
                metrics = self.space.metrics(self.space.variant(point).spec)
            except SpecError:
                return [math.inf] * self.count
        return self.values({**self.space.choices_of(point), **metrics})

    @property
    def count(self) -> int:
        """How many values the function returns."""
        return len(self.keys)

    @property
    def keys(self) -> list[str]:
        """A name per value, e.g. `peak_bytes_fused <= 48000` (for `trial.set_constraint`)."""
        return constraint_keys(self.condition)


def _choice_factory(plain: bool) -> Callable[[list[Any]], Any]:
    if not plain:
        try:
            from ray import tune  # type: ignore[import-not-found]

            return tune.choice
        except ImportError:
            pass
    return lambda values: {"choice": list(values)}


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _scaled(c: int, scale: float) -> int:
    return max(1, math.floor(c * scale + 0.5))


def _reason(exc: SpecError) -> str:
    return f"{exc.field}: {exc.message}" if exc.field else exc.message


def _collect(
    v: Variant, result: tuple[str, Any], evaluated: list[Evaluated], skipped: list[Skipped]
) -> None:
    status, payload = result
    if status == "ok":
        evaluated.append(Evaluated(v, MappingProxyType(payload)))
    else:
        skipped.append(Skipped(v.id, v.choices, payload))


_WORKER: Space | None = None


def _init_worker(origin: tuple[str, ...]) -> None:
    global _WORKER
    _WORKER = Space._reload(origin)


def _work(point: Point) -> tuple[str, Any]:
    assert _WORKER is not None
    return _WORKER._measure(_WORKER.variant(point).spec)


# --------------------------------------------------------------------------------------------
# Manifest


def value_of(e: Evaluated, name: str) -> Any:
    """A metric or a choice of an evaluated variant, by name."""
    return e.metrics[name] if name in e.metrics else e.variant.choices[name]


def values_for(e: Evaluated) -> dict[str, Any]:
    """Every name `--where` may use, with its value for this variant."""
    return {**e.variant.choices, **e.metrics}


def pareto_mask(evaluated: Sequence[Evaluated], axes: tuple[Axis, Axis]) -> list[bool]:
    """Which variants are on the Pareto front of the two axes."""
    points = [(value_of(e, axes[0].metric), value_of(e, axes[1].metric)) for e in evaluated]
    return front_mask(points, (axes[0].sense, axes[1].sense))


def manifest_rows(evaluated: Sequence[Evaluated], mask: Sequence[bool]) -> list[dict[str, Any]]:
    """One JSON-ready row per variant: id, name, choices, metrics and the Pareto flag."""
    rows = []
    for e, on_front in zip(evaluated, mask, strict=True):
        row: dict[str, Any] = {
            "id": e.variant.id,
            "name": e.variant.spec.name,
            "choices": dict(e.variant.choices),
        }
        row.update({m: e.metrics[m] for m in METRICS})
        row["memory_exact"] = e.metrics["memory_exact"]
        row["pareto"] = on_front
        rows.append(row)
    return rows


def render_jsonl(rows: Sequence[Mapping[str, Any]]) -> str:
    """JSON Lines, keys in manifest order."""
    return "".join(json.dumps(r, separators=(", ", ": ")) + "\n" for r in rows)


def render_csv(rows: Sequence[Mapping[str, Any]], labels: Sequence[str]) -> str:
    """CSV with one column per choice label (non-numbers as JSON) and per metric."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    flags = ("memory_exact", "pareto")
    writer.writerow(["id", "name", *labels, *METRICS, *flags])
    for r in rows:
        shown = [
            v if _is_number(v) else json.dumps(v) for v in (r["choices"][label] for label in labels)
        ]
        writer.writerow(
            [
                r["id"],
                r["name"],
                *shown,
                *(r[m] for m in METRICS),
                *(str(r[f]).lower() for f in flags),
            ]
        )
    return buf.getvalue()


# --------------------------------------------------------------------------------------------
# Command line: `archspec variants SPACE ...` (wired in archspec/cli.py)


def add_cli_arguments(p: argparse.ArgumentParser) -> None:
    """The options of `archspec variants`."""
    p.add_argument("space", metavar="SPACE", help="search-space file (YAML)")
    p.add_argument(
        "-o",
        "--output",
        metavar="DIR",
        help="write DIR/manifest.jsonl, DIR/specs/<id>.yaml, DIR/summary.json and "
        "DIR/skipped.jsonl (default: the manifest on stdout)",
    )
    p.add_argument(
        "--n",
        type=nonnegative_int,
        default=None,
        metavar="N",
        help="draw N random points instead of the space's sampling rule",
    )
    p.add_argument(
        "--seed",
        type=nonnegative_int,
        default=None,
        metavar="S",
        help="random-sampling seed (default: the space's, else 0)",
    )
    p.add_argument(
        "--where",
        metavar="EXPR",
        help="keep variants satisfying EXPR, e.g. 'madds <= 300e6 and peak_bytes_fused < 512e3'",
    )
    p.add_argument(
        "--jobs",
        type=nonnegative_int,
        default=1,
        metavar="J",
        help="worker processes (0: one per core; default 1)",
    )
    p.add_argument(
        "--csv",
        action="store_true",
        help="CSV too (DIR/manifest.csv), or CSV instead of JSON Lines on stdout",
    )
    p.add_argument(
        "--pareto",
        metavar="X,Y",
        help="Pareto axes, each `metric` or `metric:max` (default: the space's, "
        f"else {DEFAULT_PARETO})",
    )
    p.add_argument(
        "--plot", metavar="FILE", help="draw the variants and the front to FILE.png or FILE.svg"
    )


def run_cli(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """`archspec variants`: every check happens before any work or any write."""
    out = out or sys.stdout
    err = err or sys.stderr
    space = Space.load(args.space)
    names = space.metric_names()
    condition = parse(args.where, names) if args.where is not None else None
    axes = parse_axes(
        args.pareto or space.pareto, names, "--pareto" if args.pareto else Location(space.file)
    )
    plot_format = None
    if args.plot:
        plot_format = Path(args.plot).suffix.lower().lstrip(".")
        if plot_format not in ("png", "svg"):
            raise SpecError(
                f"found {args.plot!r}; expected a file name ending in .png or .svg",
                Location("--plot"),
            )
        if not Path(args.plot).resolve().parent.is_dir():
            raise SpecError("the plot's folder does not exist", Location(args.plot), "--plot")
    if args.output and Path(args.output).exists() and not Path(args.output).is_dir():
        raise SpecError("exists and is not a folder", Location(args.output), "-o")
    if args.n == 0:
        raise SpecError("found 0; expected at least one variant", Location("--n"))
    jobs = args.jobs or os.cpu_count() or 1

    how, points = space.plan(args.n, args.seed)
    variants, total, dups = space._unique(points)
    evaluated, skipped = space.evaluate(variants, jobs=jobs)
    kept = evaluated
    if condition is not None:
        kept = [e for e in evaluated if condition.evaluate(values_for(e))]
    mask = pareto_mask(kept, axes)
    rows = manifest_rows(kept, mask)
    sweep = Sweep(total, dups, evaluated, skipped)
    summary = {
        "space": space.name,
        "base": space.base.name,
        "sampling": how,
        "points": total,
        "duplicates": dups,
        "variants": len(variants),
        "skipped": len(skipped),
        "skip_reasons": [{"reason": r, "count": c} for r, c in sweep.skip_reasons()],
        "where": args.where,
        "filtered_out": len(evaluated) - len(kept),
        "manifest": len(rows),
        "pareto": [str(axes[0]), str(axes[1])],
        "pareto_front": sum(mask),
        "memory": {
            "dtype": space.dtype,
            "fused_split": space.fused_split,
            "first_layer_trick": space.first_layer_trick,
        },
    }
    plot_bytes = None
    if plot_format:
        from archspec.pareto import plot

        pts = [(value_of(e, axes[0].metric), value_of(e, axes[1].metric)) for e in kept]
        # name the front's points by their choices when there are few (Figure 5: "0.35/96")
        labels = (
            ["/".join(str(v) for v in e.variant.choices.values()) for e in kept]
            if 0 < len(space.labels) <= 2
            else None
        )
        plot_bytes = plot(pts, mask, axes, plot_format, title=space.name, labels=labels)

    if args.output:
        files: dict[str, str | bytes] = {"manifest.jsonl": render_jsonl(rows)}
        if args.csv:
            files["manifest.csv"] = render_csv(rows, space.labels)
        for e in kept:
            files[f"specs/{e.variant.id}.yaml"] = e.variant.spec_yaml()
        files["summary.json"] = json.dumps(summary, indent=2) + "\n"
        files["skipped.jsonl"] = "".join(
            json.dumps({"id": s.id, "choices": dict(s.choices), "reason": s.reason}) + "\n"
            for s in skipped
        )
        write_tree(args.output, files)
    else:
        out.write(render_csv(rows, space.labels) if args.csv else render_jsonl(rows))
    if plot_bytes is not None:
        write_file(args.plot, plot_bytes)

    err.write(
        f"{space.name}: {how} -> {len(variants)} variants ({dups} duplicates collapsed), "
        f"{len(skipped)} skipped as illegal"
        + (f", {len(evaluated) - len(kept)} filtered out by --where" if condition else "")
        + f"; {len(rows)} in the manifest\n"
    )
    front = sum(mask)
    err.write(f"Pareto front ({axes[0]}, {axes[1]}): {front} variant{'' if front == 1 else 's'}\n")
    if skipped:
        err.write(f"skipped {len(skipped)} illegal variants:\n")
        for reason, count in sweep.skip_reasons()[:10]:
            err.write(f"  {count} x {reason}\n")
        more = len(sweep.skip_reasons()) - 10
        if more > 0:
            err.write(
                f"  ... and {more} other reasons"
                + (f" (see {args.output}/skipped.jsonl)" if args.output else "")
                + "\n"
            )
    if args.output:
        err.write(f"wrote {len(rows)} specs and the manifest to {args.output}\n")
    return 0
