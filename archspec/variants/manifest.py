"""The manifest of a sweep: one row per variant (choices, metrics, Pareto flag) as JSON Lines
or CSV."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from typing import Any

from archspec.pareto import Axis, front_mask
from archspec.variants.model import METRICS, Evaluated, is_number
from archspec.variants.timing import SIDE_BY_SIDE


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
        if SIDE_BY_SIDE in e.metrics:  # a measured variant: timing tasks that shared the machine
            row[SIDE_BY_SIDE] = e.metrics[SIDE_BY_SIDE]
        # further metrics (latency_*, with --measure or --latency-table), in their order
        row.update({k: v for k, v in e.metrics.items() if k not in row and k not in METRICS})
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
    # further scalar metrics (latency_ms, ...) as columns after the fixed ones
    fixed = {"id", "name", "choices", *METRICS, *flags}
    extra = [k for k, v in (rows[0] if rows else {}).items() if k not in fixed and _scalar(v)]
    writer.writerow(["id", "name", *labels, *METRICS, *flags, *extra])
    for r in rows:
        shown = [
            v if is_number(v) else json.dumps(v) for v in (r["choices"][label] for label in labels)
        ]
        writer.writerow(
            [
                r["id"],
                r["name"],
                *shown,
                *(r[m] for m in METRICS),
                *(str(r[f]).lower() for f in flags),
                *("" if r.get(k) is None else r[k] for k in extra),
            ]
        )
    return buf.getvalue()


def _scalar(v: Any) -> bool:
    return v is None or isinstance(v, bool | int | float | str)
