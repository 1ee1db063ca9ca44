"""Report plots: the memory timeline and MAdds per layer (matplotlib, Agg backend).

The plots take plain report data (lists of dicts), so they draw exactly what the JSON says.
Output is deterministic: SVG ids are salted with a constant and no date is written; PNG files
carry no software or date metadata.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

FORMATS = ("svg", "png")
_OP_COLOURS = {
    "conv": "#4c72b0",
    "depthwise": "#dd8452",
    "pointwise": "#55a868",
    "fc": "#c44e52",
    "other": "#8c8c8c",
}


def _save(fig: Figure, fmt: str) -> bytes:
    """Render a figure deterministically to SVG or PNG bytes."""
    if fmt not in FORMATS:
        raise ValueError(f"plot format must be one of {FORMATS}, got {fmt!r}")
    buf = io.BytesIO()
    with plt.rc_context({"svg.hashsalt": "archspec", "svg.fonttype": "path"}):
        if fmt == "svg":
            fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
        else:
            fig.savefig(buf, format="png", dpi=110, metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def timeline_plot(
    series: Sequence[tuple[str, Sequence[Mapping[str, Any]]]],
    fmt: str = "svg",
    title: str = "Activation memory per step (Eq. 1)",
) -> bytes:
    """Live bytes per step, one line per (label, steps); each line's peak is marked.

    ``steps`` are the report's ``memory.steps`` entries (``op``, ``bytes``, optionally
    ``nodes``). The x axis counts graph ops executed, so a fused op spans the graph ops it
    covers and every model lines up with op mode.
    """
    fig, ax = plt.subplots(figsize=(10, 4.8), layout="constrained")
    cmap = matplotlib.colormaps["viridis"]
    for k, (label, steps) in enumerate(series):
        colour = "#c44e52" if k == 0 else cmap(0.1 + 0.8 * (k - 1) / max(len(series) - 2, 1))
        xs: list[float] = []
        ys: list[float] = []
        x = 0
        top, top_x, top_op = -1, 0.0, ""
        for step in steps:
            width = len(step.get("nodes") or [step["op"]])
            xs += [x, x + width]
            ys += [step["bytes"], step["bytes"]]
            if step["bytes"] > top:
                top, top_x, top_op = step["bytes"], x + width / 2, step["op"]
            x += width
        ax.plot(
            xs,
            ys,
            color=colour,
            linewidth=1.6 if k == 0 else 1.2,
            label=f"{label} (peak {top:,.0f} B at {top_op})",
        )
        ax.plot([top_x], [top], marker="v", color=colour, markersize=7)
    ax.set_xlabel("graph ops executed")
    ax.set_ylabel("bytes (live tensors + output + workspace)")
    ax.set_title(title)
    ax.set_ylim(bottom=0)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="upper right")
    return _save(fig, fmt)


def _madds_kind(layer: Mapping[str, Any]) -> str:
    terms = {k: v for k, v in (layer.get("terms") or {}).items() if v}
    if not terms:
        return "other"
    kind = max(sorted(terms), key=terms.__getitem__)
    return kind if kind in _OP_COLOURS else "other"


def madds_plot(layers: Sequence[Mapping[str, Any]], fmt: str = "svg") -> bytes:
    """MAdds per graph op (the report's ``layers``), coloured by the kind of multiply-add."""
    fig, ax = plt.subplots(figsize=(10, 4.2), layout="constrained")
    kinds = [_madds_kind(x) for x in layers]
    xs = range(len(layers))
    ax.bar(xs, [x["madds"] for x in layers], color=[_OP_COLOURS[k] for k in kinds], width=0.85)
    for kind, colour in _OP_COLOURS.items():
        if kind in kinds:
            ax.bar([0], [0], color=colour, label=kind)
    ax.set_xlabel("graph op (spec order)")
    ax.set_ylabel("MAdds")
    ax.set_title(f"MAdds per layer (total {sum(x['madds'] for x in layers):,})")
    ax.set_xlim(-1, len(layers))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, fmt)
