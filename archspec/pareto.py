"""Pareto fronts of two metrics, and their plot.

A point is on the front when no other point is at least as good on both metrics and strictly
better on one ("good" is smaller for a `min` metric, larger for a `max` metric). Equal points do
not dominate each other, so duplicates are on the front together.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass

from archspec.errors import Location, SpecError

SENSES = ("min", "max")


@dataclass(frozen=True)
class Axis:
    """A metric and whether smaller (`min`) or larger (`max`) is better."""

    metric: str
    sense: str = "min"

    def __str__(self) -> str:
        return f"{self.metric}:{self.sense}"


def parse_axes(
    text: str, metrics: Sequence[str], where: Location | str = "--pareto"
) -> tuple[Axis, Axis]:
    """Parse `X,Y` where each item is `metric` or `metric:min|max` (default min); errors are
    located at `where` (the option, or the place in a space file)."""
    where = where if isinstance(where, Location) else Location(where)
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 2 or not all(parts):
        raise SpecError(f"found {text!r}; expected two metrics, e.g. `madds,params:max`", where)
    axes = []
    for part in parts:
        name, _, sense = part.partition(":")
        sense = sense or "min"
        if sense not in SENSES:
            raise SpecError(f"found sense {sense!r} for {name!r}; expected min or max", where)
        if name not in metrics:
            raise SpecError(
                f"unknown metric {name!r}; expected one of: {', '.join(metrics)}", where
            )
        axes.append(Axis(name, sense))
    if axes[0].metric == axes[1].metric:
        raise SpecError("the two Pareto metrics must differ", where)
    return axes[0], axes[1]


def _key(value: float, sense: str) -> float:
    return value if sense == "min" else -value


def front_mask(
    points: Sequence[tuple[float, float]], senses: tuple[str, str] = ("min", "min")
) -> list[bool]:
    """For each point, whether it is on the Pareto front (O(n log n) sweep)."""
    keyed = [(_key(x, senses[0]), _key(y, senses[1])) for x, y in points]
    for x, y in keyed:
        if math.isnan(x) or math.isnan(y):
            raise ValueError("Pareto front of NaN values")
    order = sorted(range(len(keyed)), key=lambda i: keyed[i])
    mask = [False] * len(keyed)
    best_y = math.inf  # smallest y among points with a strictly smaller x
    i = 0
    while i < len(order):
        x = keyed[order[i]][0]
        j = i
        while j < len(order) and keyed[order[j]][0] == x:
            j += 1
        group_min_y = keyed[order[i]][1]  # sorted: the group's first point has its smallest y
        for k in range(i, j):
            y = keyed[order[k]][1]
            # dominated by a point with smaller x and y <= this y, or by an equal-x point with
            # smaller y
            mask[order[k]] = y < best_y and y == group_min_y
        best_y = min(best_y, group_min_y)
        i = j
    return mask


def brute_force_mask(
    points: Sequence[tuple[float, float]], senses: tuple[str, str] = ("min", "min")
) -> list[bool]:
    """The O(n²) definition of the front (the oracle of the tests)."""
    keyed = [(_key(x, senses[0]), _key(y, senses[1])) for x, y in points]

    def dominates(a: tuple[float, float], b: tuple[float, float]) -> bool:
        return a[0] <= b[0] and a[1] <= b[1] and a != b

    return [not any(dominates(q, p) for q in keyed) for p in keyed]


def plot(
    points: Sequence[tuple[float, float]],
    mask: Sequence[bool],
    axes: tuple[Axis, Axis],
    fmt: str,
    title: str = "",
    labels: Sequence[str] | None = None,
) -> bytes:
    """Scatter of all points with the front highlighted (and joined as a staircase); PNG or SVG
    bytes. Deterministic: fixed SVG hash salt and no date or version metadata."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    if fmt not in ("png", "svg"):
        raise SpecError(f"found {fmt!r}; expected a .png or .svg file name", Location("--plot"))
    with matplotlib.rc_context({"svg.hashsalt": "archspec", "svg.fonttype": "path"}):
        fig = Figure(figsize=(7.0, 4.8), dpi=100)
        ax = fig.add_subplot(1, 1, 1)
        rest = [p for p, m in zip(points, mask, strict=True) if not m]
        front = sorted(p for p, m in zip(points, mask, strict=True) if m)
        if rest:
            ax.scatter(
                [p[0] for p in rest],
                [p[1] for p in rest],
                s=18,
                color="#9a9a9a",
                label=f"variants ({len(rest)})",
                zorder=2,
            )
        if front:
            # the boundary of the dominated region: for x in a gap the best y is the left point's
            # when smaller x is better, the right point's when larger x is better
            step = "steps-post" if axes[0].sense == "min" else "steps-pre"
            ax.plot(
                [p[0] for p in front],
                [p[1] for p in front],
                drawstyle=step,
                color="#d62728",
                lw=1.2,
                zorder=3,
            )
            ax.scatter(
                [p[0] for p in front],
                [p[1] for p in front],
                s=30,
                color="#d62728",
                label=f"Pareto front ({len(front)})",
                zorder=4,
            )
        if labels is not None:
            for p, m, text in zip(points, mask, labels, strict=True):
                if m and text:
                    ax.annotate(text, p, textcoords="offset points", xytext=(4, 4), fontsize=7)
        ax.set_xlabel(
            f"{axes[0].metric} ({'lower' if axes[0].sense == 'min' else 'higher'} is better)"
        )
        ax.set_ylabel(
            f"{axes[1].metric} ({'lower' if axes[1].sense == 'min' else 'higher'} is better)"
        )
        if title:
            ax.set_title(title)
        ax.grid(True, alpha=0.3)
        if points:
            ax.legend(loc="best", fontsize=8)
        fig.tight_layout()
        buf = io.BytesIO()
        metadata = {"Date": None, "Creator": None} if fmt == "svg" else {"Software": None}
        fig.savefig(buf, format=fmt, metadata=metadata)
    return buf.getvalue()
