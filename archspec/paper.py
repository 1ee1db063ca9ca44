"""The paper view: our figures next to the paper's (Tables 3–7), from the shipped specs.

`report_paper` gives, for one report, the published figures of that spec (matched by the spec's
file name and its header settings); `paper_tables` reconstructs Tables 3–7 from every spec of
`archspec.paper_figures` that is shipped (a spec not shipped yet is a cell saying so, never an
error); `render_paper` prints them as text, markdown or HTML. A cell is flagged when ours is off
the printed figure by more than 2 %, with the table's explanation where there is one.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from archspec.analysis.cost import analyze_cost
from archspec.analysis.table3 import table3
from archspec.errors import SpecError
from archspec.graph import Graph
from archspec.lower import lower
from archspec.paper_figures import (
    FIGURES,
    TABLE3,
    TABLE_TITLES,
    TOLERANCE,
    Figure,
    printed_value,
)
from archspec.spec import Spec, load_spec

NOT_SHIPPED = "spec not shipped"


def specs_root() -> Path:
    """The `specs/` folder of this checkout (where the paper's specs live)."""
    return Path(__file__).resolve().parent.parent / "specs"


def compare(ours: float | None, printed: str) -> dict[str, Any]:
    """One cell: ours, the paper's printed figure and its value, the difference, the flag."""
    paper = printed_value(printed)
    cell: dict[str, Any] = {"ours": ours, "paper": printed, "paper_value": paper}
    if ours is None or paper is None:
        cell.update(diff=None, pct=None, flagged=False)
        return cell
    diff = ours - paper
    pct = 100.0 * diff / paper
    cell.update(diff=diff, pct=round(pct, 2), flagged=abs(pct) > 100 * TOLERANCE)
    return cell


def _figure_entry(fig: Figure, graph: Graph | None, status: str) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "table": fig.table,
        "row": fig.row,
        "spec": fig.spec,
        "sets": list(fig.sets),
        "profile": fig.profile,
        "params_key": fig.params_key,
        "part": fig.part,
        "status": status,
    }
    ours_params = ours_madds = None
    if graph is not None:
        cost = analyze_cost(graph, fig.profile)
        if fig.part is None:
            ours_params, ours_madds = getattr(cost, fig.params_key), cost.madds
        elif fig.part in cost.parts:
            part = cost.parts[fig.part]
            ours_params, ours_madds = getattr(part, fig.params_key), part.madds
        else:
            entry["status"] = f"the spec has no part {fig.part!r} (parts: {', '.join(cost.parts)})"
    entry["params"] = compare(ours_params, fig.params)
    entry["madds"] = compare(ours_madds, fig.madds)
    entry["flagged"] = entry["params"]["flagged"] or entry["madds"]["flagged"]
    entry["note"] = fig.note
    return entry


def _load(path: Path, sets: Sequence[str]) -> tuple[Graph | None, str]:
    if not path.is_file():
        return None, NOT_SHIPPED
    try:
        return lower(load_spec(str(path), list(sets))), "ok"
    except SpecError as exc:
        return None, f"spec error: {exc.render()}"


def _same_settings(a: Spec, b: Spec) -> bool:
    keys = ("width_multiplier", "resolution", "num_classes", "in_channels")
    return all(getattr(a, k) == getattr(b, k) for k in keys)


def report_paper(spec_path: str, graph: Graph, root: Path | None = None) -> list[dict[str, Any]]:
    """The paper's figures for the spec at `spec_path` (matched by file name, then by the
    header settings the figure needs: `--set width_multiplier=1.4` picks the 1.4 row), each with
    ours computed on `graph` under the figure's profile. Empty when the paper has none."""
    root = specs_root() if root is None else root
    name = Path(spec_path).name
    found = []
    for fig in FIGURES:
        if Path(fig.spec).name != name:
            continue
        try:
            expected = load_spec(spec_path, list(fig.sets))
        except SpecError:
            continue
        if _same_settings(expected, graph.spec):
            found.append(_figure_entry(fig, graph, "ok"))
    return found


def paper_tables(root: Path | None = None) -> list[dict[str, Any]]:
    """Tables 3–7 reconstructed from the specs under `root` (default: the shipped `specs/`)."""
    root = specs_root() if root is None else root
    tables = [{"table": "3", "title": TABLE_TITLES["3"], "columns": _table3(root)}]
    for number in ("4", "5", "6", "7"):
        rows = []
        for fig in FIGURES:
            if fig.table == number:
                graph, status = _load(root / fig.spec, fig.sets)
                rows.append(_figure_entry(fig, graph, status))
        tables.append({"table": number, "title": TABLE_TITLES[number], "rows": rows})
    return tables


def _table3(root: Path) -> list[dict[str, Any]]:
    columns = []
    for col in TABLE3:
        graph, status = _load(root / col.spec, ())
        cells = []
        ours_rows = {}
        if graph is not None:
            ours_rows = {r["resolution"][0]: r for r in table3(graph, "float16") if r}
        ours_max = 0
        for size, channels, kb in col.cells:
            r = ours_rows.get(size)
            ours_c = ours_kb = None
            if r is not None:
                bottleneck = r["bottleneck_channels"] is not None
                ours_c = r["bottleneck_channels"] if bottleneck else r["channels"]
                ours_kb = r["bottleneck_bytes"] if bottleneck else r["bytes"]  # bytes
                ours_max = max(ours_max, ours_kb)
            kb_cell = compare(ours_kb, f"{kb}K")
            if kb_cell["diff"] is not None:  # printed to the whole K: half a K is no difference
                kb_cell["flagged"] = abs(kb_cell["diff"]) > max(TOLERANCE * kb * 1000, 500)
            cells.append(
                {
                    "size": size,
                    "channels": {"ours": ours_c, "paper": channels},
                    "kb": kb_cell,
                    "flagged": kb_cell["flagged"] or (ours_c is not None and ours_c != channels),
                }
            )
        columns.append(
            {
                "network": col.network,
                "spec": col.spec,
                "status": status,
                "cells": cells,
                "max": compare(ours_max if graph is not None else None, f"{col.max_kb}K"),
                # the fixed explanation, else what table3 computes about MobileNetV2's column
                "note": col.note
                or "; ".join(r["note"] for r in ours_rows.values() if r.get("note")),
            }
        )
    return columns


# -- rendering -----------------------------------------------------------------------------


def _short(value: float | None) -> str:
    if value is None:
        return "-"
    for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.3f}{unit}"
    return f"{value:g}"


def cell_text(cell: dict[str, Any]) -> str:
    """`ours vs paper (±x.x%)`, with `!` when flagged."""
    if cell["paper_value"] is None:
        return _short(cell["ours"])
    if cell["ours"] is None:
        return f"- vs {cell['paper']}"
    mark = " !" if cell["flagged"] else ""
    return f"{_short(cell['ours'])} vs {cell['paper']} ({cell['pct']:+.1f}%){mark}"


def _rows(table: dict[str, Any], notes: list[str]) -> tuple[list[str], list[list[str]]]:
    """Headers and cells of one table; explanations are numbered into `notes`."""

    def ref(text: str) -> str:
        if not text:
            return ""
        if text not in notes:
            notes.append(text)
        return f"[{notes.index(text) + 1}]"

    if table["table"] == "3":
        sizes = [c["size"] for c in table["columns"][0]["cells"]]
        headers = ["Size", *(c["network"] + " " + ref(c["note"]) for c in table["columns"])]
        headers = [h.strip() for h in headers]
        rows = []
        for i, size in enumerate(sizes):
            line = [f"{size}x{size}"]
            for col in table["columns"]:
                if col["status"] != "ok":
                    line.append(col["status"])
                    continue
                c = col["cells"][i]
                ours = f"{c['channels']['ours']}/{c['kb']['ours'] / 1000:.0f}K"
                paper = f"{c['channels']['paper']}/{c['kb']['paper']}"
                line.append(f"{ours} vs {paper}" + (" !" if c["flagged"] else ""))
            rows.append(line)
        rows.append(
            ["max"]
            + [
                cell_text(c["max"]) if c["status"] == "ok" else c["status"]
                for c in table["columns"]
            ]
        )
        return headers, rows
    headers = ["Network", "Spec", "Params (ours vs paper)", "MAdds (ours vs paper)", "Note"]
    rows = []
    for r in table["rows"]:
        spec = r["spec"] + "".join(f" --set {s}" for s in r["sets"])
        if r["status"] != "ok":
            rows.append(
                [r["row"], spec, r["status"], f"paper {r['madds']['paper']}", ref(r["note"])]
            )
            continue
        rows.append([r["row"], spec, cell_text(r["params"]), cell_text(r["madds"]), ref(r["note"])])
    return headers, rows


def _text_table(headers: Sequence[str], rows: Sequence[Sequence[str]], markdown: bool) -> str:
    if markdown:
        esc = [[c.replace("|", "\\|") for c in r] for r in [headers, *rows]]
        lines = ["| " + " | ".join(esc[0]) + " |", "|" + "|".join("---" for _ in headers) + "|"]
        return "\n".join([*lines, *("| " + " | ".join(r) + " |" for r in esc[1:])])
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]

    def fmt(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    return "\n".join([fmt(headers), "  ".join("-" * w for w in widths), *(fmt(r) for r in rows)])


LEGEND = (
    "Each cell: ours vs the paper's printed figure (difference); `!` marks more than 2 % off. "
    "Profiles and params conventions as each table uses them (Table 7: profile tf1, params with "
    "BatchNorm γ and β; the others: slim, params without BatchNorm)."
)


def render_paper(tables: list[dict[str, Any]], fmt: str = "text") -> str:
    """Tables 3–7 as aligned text, markdown or one self-contained HTML page."""
    notes: list[str] = []
    built = [(t["title"], *_rows(t, notes)) for t in tables]
    if fmt == "html":
        return _html(built, notes)
    markdown = fmt == "markdown"
    out = ["# The MobileNetV2 paper's tables, reconstructed" if markdown else "Paper view", ""]
    out += [LEGEND, ""]
    for title, headers, rows in built:
        out += [f"## {title}" if markdown else title, ""]
        out += [_text_table(headers, rows, markdown), ""]
    out += ["## Notes" if markdown else "Notes", ""]
    out += [f"[{i}] {n}" for i, n in enumerate(notes, 1)]
    return "\n".join(out) + "\n"


def _html(built: list[tuple[str, list[str], list[list[str]]]], notes: list[str]) -> str:
    e = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        "<title>The MobileNetV2 paper's tables, reconstructed</title>",
        "<style>body{font-family:sans-serif}table{border-collapse:collapse;margin:1em 0}"
        "td,th{border:1px solid #bbb;padding:2px 6px}td.off{background:#fdd}</style>",
        "</head><body>",
        "<h1>The MobileNetV2 paper's tables, reconstructed</h1>",
        f"<p>{e(LEGEND)}</p>",
    ]
    for title, headers, rows in built:
        parts.append(f"<h2>{e(title)}</h2><table>")
        parts.append("<tr>" + "".join(f"<th>{e(h)}</th>" for h in headers) + "</tr>")
        for r in rows:
            cells = "".join(
                f'<td class="off">{e(c)}</td>' if c.endswith(" !") else f"<td>{e(c)}</td>"
                for c in r
            )
            parts.append(f"<tr>{cells}</tr>")
        parts.append("</table>")
    parts.append("<h2>Notes</h2><ol>" + "".join(f"<li>{e(n)}</li>" for n in notes) + "</ol>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def report_paper_text(entries: list[dict[str, Any]], markdown: bool = False) -> str:
    """The `--paper` section of a text or markdown report."""
    head = "## The paper's figures for this spec" if markdown else "The paper's figures"
    if not entries:
        return f"{head}\n\nThe paper prints no figure for this spec (matched by file name).\n"
    rows = []
    notes: list[str] = []
    for r in entries:
        note = ""
        if r["note"]:
            notes.append(r["note"])
            note = f"[{len(notes)}]"
        rows.append(
            [
                f"Table {r['table']}: {r['row']}",
                f"{r['profile']}, {r['params_key']}" + (f", part {r['part']}" if r["part"] else ""),
                cell_text(r["params"]) if r["status"] == "ok" else r["status"],
                cell_text(r["madds"]) if r["status"] == "ok" else "-",
                note,
            ]
        )
    headers = ["Figure", "Counted as", "Params (ours vs paper)", "MAdds (ours vs paper)", "Note"]
    out = [head, "", _text_table(headers, rows, markdown)]
    out += ["", *(f"[{i}] {n}" for i, n in enumerate(notes, 1))] if notes else []
    return "\n".join(out) + "\n"
