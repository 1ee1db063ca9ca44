"""The memory analysis as report text: titled tables and short labels.

`archspec.analysis.memory_summary` gathers the numbers (the report's ``memory`` object and the
plans);
this module only words and tabulates them. Text, markdown and HTML reports all render the same
`memory_sections`, so the formats always agree.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from archspec.analysis.memory import MemoryPlan

__all__ = ["Section", "memory_sections", "plan_label", "splitting_matters"]


@dataclass(frozen=True)
class Section:
    """One titled part of the memory report: lines of prose, then an optional table."""

    title: str
    lines: tuple[str, ...]
    headers: tuple[str, ...] = ()
    rows: tuple[tuple[str, ...], ...] = ()


def _n(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def splitting_matters(tradeoff: Sequence[Mapping[str, Any]]) -> bool:
    """Whether the split changes anything: the peak, where it is or its workspace. A network
    without a fusable block (or one whose peak no block reaches) gives identical rows, which
    the report leaves out."""
    keys = {
        (r["peak_bytes"], r["peak_step"], r["group_channels_at_peak"], r["workspace_at_peak_bytes"])
        for r in tradeoff
    }
    return len(keys) > 1


def memory_sections(memory: Mapping[str, Any]) -> list[Section]:
    """The report's memory object as titled tables, shared by every report format."""
    m = memory
    model = (
        "op mode"
        if m["mode"] == "op"
        else f"fused mode, split {m['split']}, first-layer trick "
        f"{'on' if m['first_layer_trick'] else 'off'}"
        + ("" if m.get("row_tile") is None else f", row tile {m['row_tile']}")
    )
    status = (
        "proven optimal"
        if m["optimal"]
        else (f"best found, not proven (lower bound {m['lower_bound_bytes']:,} B)")
    )
    sections = [
        Section(
            f"Activation memory ({m['dtype']}, {model})",
            (
                f"Peak (Eq. 1: live tensors + the op's output + its workspace): "
                f"{m['peak_bytes']:,} B at {m['peak_step']}, order {status}.",
                f"Weights (stored apart, not counted above): {m['weights_params']:,} values, "
                f"{m['weights_bytes']:,} B ({m['weights_note']}).",
            ),
            ("Live at the peak", "Kind", "Bytes"),
            tuple((x["tensor"], x["kind"], _n(x["bytes"])) for x in m["live_at_peak"]),
        ),
    ]
    o = m["orders"]
    sections.append(
        Section(
            "Execution orders",
            ("Peak of the spec's own order, of the greedy heuristic, and of the optimum.",),
            ("Order", "Peak (bytes)", "Saving vs spec order"),
            (
                ("spec", _n(o["spec"]["peak_bytes"]), "0"),
                (
                    "greedy",
                    _n(o["greedy"]["peak_bytes"]),
                    _n(o["spec"]["peak_bytes"] - o["greedy"]["peak_bytes"]),
                ),
                (
                    "optimal" + ("" if o["optimal"]["proven"] else " (best found)"),
                    _n(o["optimal"]["peak_bytes"]),
                    _n(o["saving_vs_spec_bytes"]),
                ),
            ),
        )
    )
    p = m["placement"]
    sections.append(
        Section(
            "Buffer placement (one arena, greedy by size, best fit)",
            (
                f"Arena {p['arena_bytes']:,} B against the live-sum bound "
                f"{p['live_bound_bytes']:,} B: fragmentation {p['fragmentation_bytes']:,} B "
                f"(alignment {p['alignment']}).",
            ),
        )
    )
    if splitting_matters(m.get("split_tradeoff") or ()):
        op_peak = m.get("op_mode_peak_bytes")
        lines = [
            "Fused bottleneck blocks, the expansion split into groups of ceil(n / T) "
            "channels (T = n: one channel); the peak of the optimal order per split."
        ]
        if op_peak is not None:
            lines.append(f"Op mode (no fusion) peaks at {op_peak:,} B.")
        sections.append(
            Section(
                f"Memory against split ({m['dtype']})",
                tuple(lines),
                (
                    "Split T",
                    "Peak (bytes)",
                    "Peak at",
                    "Group channels",
                    "Workspace (bytes)",
                    "Saving vs op mode",
                ),
                tuple(
                    (
                        str(r["split"]),
                        _n(r["peak_bytes"]) + ("" if r["optimal"] else " *"),
                        r["peak_step"],
                        _n(r["group_channels_at_peak"]),
                        _n(r["workspace_at_peak_bytes"]),
                        _n(r["saving_vs_op_bytes"]),
                    )
                    for r in m["split_tradeoff"]
                ),
            )
        )
    rows = m.get("table3") or []
    if rows:
        paper = "paper_channels" in rows[0]
        blocks = any(r["bottleneck_tensor"] is not None for r in rows)
        headers = ["Size", "Largest tensor", "Channels", "Bytes"]
        if blocks:
            headers += ["Bottleneck tensor", "Channels", "Bytes"]
        if paper:
            headers += ["Paper (ch / K)", "Note"]
        body = []
        for r in rows:
            h, w = r["resolution"]
            cells = [
                f"{h}×{w}",
                r["tensor"],
                _n(r["channels"]),
                _n(r["bytes"]),
            ]
            if blocks:
                cells += [
                    r["bottleneck_tensor"] or "-",
                    _n(r["bottleneck_channels"]),
                    _n(r["bottleneck_bytes"]),
                ]
            if paper:
                mark = "" if r["agrees_with_paper"] else " ≠"
                cells += [f"{r['paper_channels']} / {r['paper_kb']}K{mark}", r["note"] or "-"]
            body.append(tuple(cells))
        bottleneck = (
            " and the largest bottleneck tensor (one a block reads or writes)" if blocks else ""
        )
        lines = [
            "Single tensors, not an Eq. 2 peak: per spatial size, the largest tensor the fused "
            f"model materialises (the network input excluded){bottleneck}, at 16-bit. "
            f"Max {m['table3_max_bytes']:,} B.",
        ]
        if paper:
            lines.append(
                "The paper's MobileNetV2 column counts bottleneck tensors; where its channels "
                "differ from Table 2's (marked ≠), the note says where Table 2 has them."
            )
        sections.append(
            Section(
                "Table 3 (largest materialised tensor per size)",
                tuple(lines),
                tuple(headers),
                tuple(body),
            )
        )
    return sections


def plan_label(plan: MemoryPlan) -> str:
    """A short legend label: ``op mode`` or ``fused, split 2``."""
    if plan.mode == "op":
        return "op mode"
    rows = "" if plan.row_tile is None else f", rows {plan.row_tile}"
    return f"fused, split {plan.split}{rows}"
