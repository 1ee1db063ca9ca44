"""The HTML report: one self-contained file (inline CSS and SVG plots, no scripts, no links).

It renders the same report data as the text formats (`report_data`), so the numbers agree.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from archspec.analysis.memory_report import Section, memory_sections
from archspec.analysis.report import (
    TABLE2_HEADERS,
    layer_table,
    shape_text,
    table2_rows,
)

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 72em; color: #222; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 1.8em; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.88em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.6em; }
th { background: #f0f0f0; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.peak td { background: #fde2e1; font-weight: 600; }
figure { margin: 1em 0; } figure svg { max-width: 100%; height: auto; }
p.note { color: #555; }
"""


def _is_num(text: str) -> bool:
    return text.replace(",", "").replace(" ", "").lstrip("-").isdigit()


def _table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], marked: Sequence[bool] = ()
) -> str:
    out = ["<table>", "<tr>" + "".join(f"<th>{escape(h)}</th>" for h in headers) + "</tr>"]
    for k, row in enumerate(rows):
        cls = ' class="peak"' if k < len(marked) and marked[k] else ""
        cells = "".join(
            f'<td class="num">{escape(c)}</td>' if _is_num(c) else f"<td>{escape(c)}</td>"
            for c in row
        )
        out.append(f"<tr{cls}>{cells}</tr>")
    out.append("</table>")
    return "\n".join(out)


def _section(section: Section) -> str:
    parts = [f"<h2>{escape(section.title)}</h2>"]
    parts += [f"<p>{escape(line)}</p>" for line in section.lines]
    if section.headers:
        parts.append(_table(section.headers, section.rows))
    return "\n".join(parts)


def _svg(svg: bytes | str) -> str:
    """An SVG document made inline: the XML prolog and doctype removed."""
    text = svg.decode("utf-8") if isinstance(svg, bytes) else svg
    start = text.find("<svg")
    return text[start:] if start >= 0 else text


def render_html(data: Mapping[str, Any], plots: Mapping[str, bytes | str]) -> str:
    """The full report as one HTML page; `plots` maps ``timeline`` / ``madds`` to SVG."""
    name = escape(str(data["name"]))
    out = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f"<title>{name}: archspec report</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        f"<h1>{name}</h1>",
        f"<p>input {escape(shape_text(data['input_shape']))}, width multiplier "
        f"{escape(str(data['width_multiplier']))}, {data['num_classes']} classes, counting "
        f"profile <code>{escape(str(data['profile']))}</code>: {data['madds']:,} MAdds, "
        f"{data['params']:,} params.</p>",
        "<h2>Table 2 view (one row per spec row)</h2>",
    ]
    out.append(_table(TABLE2_HEADERS, table2_rows(data)))

    memory = data.get("memory")
    if memory:
        sections = memory_sections(memory)
        out.append(_section(sections[0]))
        if "timeline" in plots:
            out.append(
                "<figure>"
                + _svg(plots["timeline"])
                + "<figcaption>Bytes live at each step of the optimal order, one line per "
                "memory model; ▼ marks each peak.</figcaption></figure>"
            )
        out += [_section(s) for s in sections[1:]]

    if "madds" in plots:
        out.append("<h2>MAdds per layer</h2>")
        out.append("<figure>" + _svg(plots["madds"]) + "</figure>")

    out.append("<h2>Layers (one row per graph op)</h2>")
    headers, rows = layer_table(dict(data))
    has_memory = headers[-1] == "Memory (bytes)"
    marked = [has_memory and "peak" in cells[-1] for cells in rows]
    out.append(_table(headers, rows, marked if has_memory else ()))
    out.append("</body>")
    out.append("</html>")
    return "\n".join(out) + "\n"
