"""Points of a space and the variants they resolve to: grid order, random samples, content ids
and de-duplication. Functions of a `SpaceDef`."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
import sys
from collections.abc import Iterable
from types import MappingProxyType
from typing import Any

from archspec.errors import Location, SpecError
from archspec.spec import spec_to_dict
from archspec.variants.model import MAX_POINTS, Point, SpaceDef, Variant, scaled_channels

AUTO_GRID_LIMIT = 10_000


def point_at(space: SpaceDef, index: int) -> Point:
    """The index-th point in grid order (first choice varies slowest, like a nested loop)."""
    if not 0 <= index < space.size:
        raise IndexError(index)
    for g, grid in enumerate(space.grids):
        if index < grid.size:
            picks = []
            for choice in reversed(grid.choices):
                index, r = divmod(index, len(choice.values))
                picks.append(r)
            return Point(g, tuple(reversed(picks)))
        index -= grid.size
    raise AssertionError("unreachable")


def choices_of(space: SpaceDef, point: Point) -> dict[str, Any]:
    """Every label of the space with its value at `point` (the base's where not chosen)."""
    out = dict(space.base_values)
    grid = space.grids[point.grid]
    for choice, pick in zip(grid.choices, point.picks, strict=True):
        out[choice.label] = choice.shown[pick]
    return out


def resolve(space: SpaceDef, point: Point) -> Variant:
    """The resolved spec at a point, with its content id."""
    grid = space.grids[point.grid]
    base = space.base
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
                fields["c"] = scaled_channels(row.fields["c"], value)
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
    choices = choices_of(space, point)
    described = ", ".join(f"{k}={v}" for k, v in choices.items())
    spec = dataclasses.replace(
        spec,
        name=f"{space.name}-{vid}",
        description=f"Variant {vid} of {base.name} in space {space.name}: {described}",
    )
    return Variant(vid, point, MappingProxyType(choices), spec)


def unique(space: SpaceDef, points: Iterable[Point]) -> tuple[list[Variant], int, int]:
    seen: set[str] = set()
    out: list[Variant] = []
    total = 0
    for p in points:
        total += 1
        v = resolve(space, p)
        if v.id not in seen:
            seen.add(v.id)
            out.append(v)
    return out, total, total - len(out)


def grid_variants(space: SpaceDef) -> list[Variant]:
    """Every point of every grid, duplicates collapsed, in grid order."""
    _check_grid_size(space)
    return unique(space, (point_at(space, i) for i in range(space.size)))[0]


def _check_grid_size(space: SpaceDef) -> None:
    if space.size > MAX_POINTS:
        raise SpecError(
            f"the space has {space.size:,} points; a full grid is limited to {MAX_POINTS:,}",
            Location(space.file),
            "sampling",
            "sample it instead (--n N)",
        )


def sample_points(space: SpaceDef, n: int, seed: int) -> list[Point]:
    """`n` distinct points drawn uniformly (the whole grid when n ≥ size), in grid order.
    The same seed gives the same points."""
    size = space.size
    if n >= size:
        return [point_at(space, i) for i in range(size)]
    rng = random.Random(seed)
    if size <= sys.maxsize:
        indices = rng.sample(range(size), n)
    else:
        chosen: set[int] = set()
        while len(chosen) < n:
            chosen.add(rng.randrange(size))
        indices = list(chosen)
    return [point_at(space, i) for i in sorted(indices)]


def sample_variants(space: SpaceDef, n: int, seed: int = 0) -> list[Variant]:
    """A random sample of `n` points (duplicates collapsed)."""
    return unique(space, sample_points(space, n, seed))[0]


def plan(space: SpaceDef, n: int | None = None, seed: int | None = None) -> tuple[str, list[Point]]:
    """The points a sweep visits: `n` → random sample; else the space's `sampling` rule.
    Returns (description, points)."""
    seed = space.seed if seed is None else seed
    mode = space.sampling
    if n is not None:
        mode = "random"
    elif mode == "auto":
        mode = "grid" if space.size <= AUTO_GRID_LIMIT else "random"
    if mode == "grid":
        _check_grid_size(space)
        return f"grid of {space.size:,} points", [point_at(space, i) for i in range(space.size)]
    count = space.samples if n is None else n
    if count > MAX_POINTS:
        raise SpecError(
            f"found {count:,}; at most {MAX_POINTS:,} variants per sweep", Location("--n")
        )
    points = sample_points(space, count, seed)
    if len(points) == space.size:  # --n of at least the space's size: the whole grid, not drawn
        return f"grid of {space.size:,} points (--n {count:,} covers it)", points
    return (f"random sample of {len(points):,} of {space.size:,} points (seed {seed})", points)
