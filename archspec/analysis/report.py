"""Report data (one JSON-ready dict) and its text, markdown and JSON renderings.

`report_data` gathers the numbers; the renderers only format them, so the three formats always
agree.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from archspec.analysis.cost import CostReport
from archspec.analysis.memory_report import memory_sections
from archspec.graph import Graph
from archspec.lower import resolve_channels
from archspec.ops.conv2d import term as conv_term

TABLE2_FIELDS = ("t", "c", "n", "s")


def _row_entries(graph: Graph, cost: CostReport) -> list[dict[str, Any]]:
    by_row: dict[int, list] = {}
    for layer in cost.layers:
        by_row.setdefault(layer.row, []).append(layer)
    entries = []
    for row in graph.spec.rows:
        layers = by_row.get(row.index, [])
        first = graph.node(layers[0].name) if layers else None
        out = graph.node(graph.row_outputs[row.index]).shape
        in_shapes = [graph.node(i).shape.hwc() for i in first.inputs] if first else []
        count = resolve_channels(graph.spec, row) if "c" in row.fields else None
        entries.append(
            {
                "row": row.index,
                "name": row.name or graph.row_outputs[row.index],
                "spec_name": row.name,
                "op": row.kind,
                "input_shape": in_shapes[0] if len(in_shapes) == 1 else in_shapes,
                "t": row.fields.get("t"),
                "c": out.c if count else None,
                "c_written": count.written if count else None,
                "rounded_from": count.rounded_from if count else None,
                "n": row.fields.get("n"),
                "s": row.fields.get("s"),
                "output_shape": out.hwc(),
                "output": graph.row_outputs[row.index] in graph.outputs,
                "note": row.note,
                "madds": sum(x.madds for x in layers),
                "params": sum(x.params for x in layers),
                "params_with_bn": sum(x.params_with_bn for x in layers),
            }
        )
    return entries


def _conv_kind(graph: Graph, name: str) -> str | None:
    """depthwise, pointwise or conv for a conv2d node (its breakdown term), else None."""
    node = graph.node(name)
    if node.op != "conv2d":
        return None
    return conv_term(node.attrs, graph.input_shapes(node)[0].c)


def report_data(graph: Graph, cost: CostReport, memory: dict[str, Any] | None = None) -> dict:
    """Everything a report shows, as plain JSON-ready data (the contract of `--format json`)."""
    spec = graph.spec
    data: dict[str, Any] = {
        "name": spec.name,
        "input_shape": graph.input.shape.hwc(),
        "shape_layout": "HWC",
        "width_multiplier": spec.width_multiplier,
        "resolution": list(spec.resolution),
        "num_classes": spec.num_classes,
        "rounding": {"divisor": spec.divisor, "min": spec.min_channels},
        "profile": cost.profile,
        "madds": cost.madds,
        "flops": 2 * cost.madds,
        "params": cost.params,
        "params_with_bn": cost.params_with_bn,
        "keras_count_params": cost.keras_count_params,
        "madds_breakdown": dict(cost.terms),
        "parts": {
            name: {"madds": p.madds, "params": p.params, "params_with_bn": p.params_with_bn}
            for name, p in cost.parts.items()
        },
        "outputs": list(graph.outputs),
        "rows": _row_entries(graph, cost),
        "layers": [
            {
                "name": x.name,
                "op": x.op,
                "row": x.row,
                "block": x.block,
                "role": x.role,
                "part": x.part,
                "conv_kind": _conv_kind(graph, x.name),
                "input_shape": [s.hwc() for s in x.input_shapes],
                "output_shape": x.output_shape.hwc(),
                "madds": x.madds,
                "params": x.params,
                "params_with_bn": x.params_with_bn,
                "terms": dict(x.terms),
            }
            for x in cost.layers
        ],
    }
    if memory is not None:
        data["memory"] = memory
    return data


def shape_text(shape: Sequence[Any]) -> str:
    """A shape [h, w, c] (or a list of them) as the paper writes it: 112²×32."""
    if not shape:
        return "-"
    if isinstance(shape[0], list):
        return " + ".join(shape_text(s) for s in shape)
    h, w, c = shape
    return f"{h}²×{c}" if h == w else f"{h}×{w}×{c}"


def format_cell(value: Any) -> str:
    """A table cell: thousands separators for ints, '-' for None."""
    if value is None:
        return "-"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], markdown: bool) -> str:
    # free text (a row's note) stays on its line, and inside its markdown cell
    rows = [[" ".join(c.splitlines()) for c in r] for r in rows]
    if markdown:
        rows = [[c.replace("|", "\\|") for c in r] for r in rows]
        lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(lines)
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    numeric = [
        all(r[i].replace(",", "").replace("-", "").isdigit() for r in rows if r[i] != "-")
        for i in range(len(headers))
    ]

    def fmt(cells: Sequence[str]) -> str:
        return "  ".join(
            c.rjust(w) if num else c.ljust(w)
            for c, w, num in zip(cells, widths, numeric, strict=True)
        ).rstrip()

    return "\n".join([fmt(headers), "  ".join("-" * w for w in widths), *(fmt(r) for r in rows)])


def memory_column(data: dict) -> dict[str, str]:
    """Per-layer memory cells (the peak marked) from the report's memory steps."""
    memory = data.get("memory")
    if not memory or "steps" not in memory:
        return {}
    peak = memory.get("peak_step")
    column = {}
    for s in memory["steps"]:
        # A fused op (a whole block) shows its step on each of its nodes' rows, named.
        nodes = s.get("nodes") or [s["op"]]
        tag = f" [{s['op']}]" if len(nodes) > 1 or nodes[0] != s["op"] else ""
        for node in nodes:
            column[node] = f"{s['bytes']:,}{tag}" + (" ◀ peak" if s["op"] == peak else "")
    return column


TABLE2_HEADERS = ["Input", "Operator", "t", "c", "n", "s", "Output", "MAdds", "Params"]


def _number(value: float) -> str:
    return f"{value:,}" if isinstance(value, int) else f"{value:,.4g}"


def _table2_cell(r: dict, key: str) -> str:
    """A Table 2 cell; a `c` that rounding changed shows the value it was rounded from."""
    cell = format_cell(r[key])
    if key == "c" and r.get("rounded_from") is not None:
        cell += f" ({_number(r['rounded_from'])} rounded)"
    return cell


def rounding_legend(data: dict) -> str | None:
    """One line explaining the rounded `c` cells of the Table 2 view (None when there are none)."""
    rounded = [r for r in data["rows"] if r.get("rounded_from") is not None]
    if not rounded:
        return None
    rows = ", ".join(f"{r['name']} {_number(r['rounded_from'])} → {r['c']}" for r in rounded)
    return (
        f"Rounding changed the channels of {len(rounded)} row{'s' if len(rounded) > 1 else ''} "
        f"({rows}): c × width multiplier, rounded to a multiple of {data['rounding']['divisor']} "
        f"(at least {data['rounding']['min']}). A count (classes, boxes) stays exact when written "
        "as `num_classes`, an expression of it, or with `scale: none`."
    )


def table2_rows(data: dict) -> list[list[str]]:
    """Cells of the Table-2-shaped view (one row per spec row) and its total row."""
    rows = [
        [
            shape_text(r["input_shape"]),
            (f"{r['op']} ({r['spec_name']})" if r.get("spec_name") else r["op"])
            + (" [output]" if r.get("output") else ""),
            *(_table2_cell(r, k) for k in TABLE2_FIELDS),
            shape_text(r["output_shape"]),
            format_cell(r["madds"]),
            format_cell(r["params"]),
        ]
        for r in data["rows"]
    ]
    rows.append(
        ["total", "", "", "", "", "", "", format_cell(data["madds"]), format_cell(data["params"])]
    )
    return rows


def _layer_op(x: dict) -> str:
    """A layer's op with its part: its role in a block, or `depthwise` for a depthwise conv of
    its own (a `dwconv` row, a separable conv's first half)."""
    part = x["role"] or (x.get("conv_kind") if x.get("conv_kind") == "depthwise" else None)
    return x["op"] + (f" ({part})" if part else "")


def _first_layer_notes(data: dict) -> dict[str, str]:
    """Each row's `note`, keyed by the first layer of the row (empty when no row has a note)."""
    notes = {r["row"]: r["note"] for r in data["rows"] if r.get("note")}
    first: dict[str, str] = {}
    for x in data["layers"]:
        if x["row"] in notes:
            first[x["name"]] = notes.pop(x["row"])
    return first


def layer_table(data: dict) -> tuple[list[str], list[list[str]]]:
    """Headers and cells of the per-layer table (a memory column when the report has one)."""
    memcol = memory_column(data)
    notes = _first_layer_notes(data)
    headers = ["Layer", "Op", "Output", "MAdds", "Params", "Params+BN"]
    if notes:
        headers.append("Note")
    if memcol:
        headers.append("Memory (bytes)")
    rows = []
    for x in data["layers"]:
        cells = [
            x["name"],
            _layer_op(x),
            shape_text(x["output_shape"]),
            format_cell(x["madds"]),
            format_cell(x["params"]),
            format_cell(x["params_with_bn"]),
        ]
        if notes:
            cells.append(notes.get(x["name"], ""))
        if memcol:
            cells.append(memcol.get(x["name"], "-"))
        rows.append(cells)
    return headers, rows


PART_HEADERS = ["Part", "MAdds", "Params", "Params+BN"]


def part_rows(data: dict) -> list[list[str]]:
    """Cells of the per-part subtotals (none when the whole network is one part)."""
    parts = data.get("parts") or {}
    if len(parts) < 2:
        return []
    return [
        [name, format_cell(p["madds"]), format_cell(p["params"]), format_cell(p["params_with_bn"])]
        for name, p in parts.items()
    ]


def render_text(data: dict, markdown: bool = False) -> str:
    """The Table-2-shaped report plus per-layer detail, as aligned text or markdown."""
    out: list[str] = []
    h1 = "# " if markdown else ""
    h2 = "## " if markdown else ""
    out.append(f"{h1}{data['name']}")
    out.append("")
    out.append(
        f"input {shape_text(data['input_shape'])}, width multiplier "
        f"{data['width_multiplier']}, {data['num_classes']} classes, counting profile "
        f"`{data['profile']}`"
    )
    out.append("")
    out.append(f"{h2}Table 2 view (one row per spec row)")
    out.append("")
    headers = list(TABLE2_HEADERS)
    rows = table2_rows(data)
    if any(r.get("note") for r in data["rows"]):
        headers.append("Note")
        notes = [r.get("note") or "" for r in data["rows"]]
        rows = [[*cells, note] for cells, note in zip(rows, [*notes, ""], strict=True)]
    out.append(_table(headers, rows, markdown))
    legend = rounding_legend(data)
    if legend:
        out += ["", legend]
    out.append("")
    out.append(f"{h2}Layers (one row per graph op)")
    out.append("")
    headers, rows = layer_table(data)
    out.append(_table(headers, rows, markdown))
    out.append("")
    out.append(f"{h2}Totals")
    out.append("")
    totals = [
        ["MAdds", format_cell(data["madds"])],
        ["FLOPs (2 × MAdds)", format_cell(data["flops"])],
        *[[f"  {k} MAdds", format_cell(v)] for k, v in data["madds_breakdown"].items()],
        ["params (deployed: conv/FC weights and biases)", format_cell(data["params"])],
        ["params_with_bn (+ BatchNorm γ, β; PyTorch)", format_cell(data["params_with_bn"])],
        ["Keras count_params (+ BN moving stats)", format_cell(data["keras_count_params"])],
    ]
    out.append(_table(["Quantity", "Value"], totals, markdown))
    parts = part_rows(data)
    if parts:
        out += ["", f"{h2}Subtotals per part", ""]
        out.append(_table(PART_HEADERS, parts, markdown))
    if data.get("memory"):
        for section in memory_sections(data["memory"]):
            out += ["", f"{h2}{section.title}", ""]
            out += [*section.lines]
            if section.headers:
                out += ["", _table(section.headers, section.rows, markdown)]
    memory_text = data.get("memory_text")
    if memory_text:
        out.append("")
        out.append(memory_text)
    return "\n".join(out) + "\n"


def render_json(data: dict) -> str:
    """Stable JSON (sorted keys are avoided so the contract's order reads naturally)."""
    return json.dumps({k: v for k, v in data.items() if k != "memory_text"}, indent=2) + "\n"
