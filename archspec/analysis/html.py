"""The HTML report: one self-contained file (inline CSS and SVG plots, no scripts, no links).

It renders the same report data as the text formats (`report_data`), so the numbers agree. This
module gathers the cells, sections and plots; `templates/report/` lays them out. The environment
autoescapes every value with `html.escape` (the entities the report has always used); only the
inline SVG plots, which archspec drew itself, are passed as markup.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any

import jinja2
from markupsafe import Markup

from archspec.analysis.memory_report import Section, memory_sections
from archspec.analysis.report import (
    TABLE2_HEADERS,
    format_cell,
    layer_table,
    shape_text,
    table2_rows,
)
from archspec.templating import templates_root

__all__ = ["html_environment", "render_html"]


def _escaped(value: Any) -> Any:
    """Every printed value as markup: kept if it already is, else `html.escape`d."""
    if isinstance(value, Markup):
        return value
    return Markup(html.escape(str(value)))


def _is_num(text: str) -> bool:
    """A cell that holds a (possibly grouped, possibly negative) integer: right-aligned."""
    return text.replace(",", "").replace(" ", "").lstrip("-").isdigit()


@cache
def html_environment() -> jinja2.Environment:
    """The Jinja environment of HTML output: autoescape on, strict undefined, `templates/`."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_root())),
        undefined=jinja2.StrictUndefined,
        autoescape=True,
        finalize=_escaped,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.tests["numeric"] = _is_num
    return env


def _table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], marked: Sequence[bool] = ()
) -> dict[str, Any]:
    flags = [k < len(marked) and bool(marked[k]) for k in range(len(rows))]
    return {"headers": list(headers), "rows": [list(r) for r in rows], "marked": flags}


def _section(section: Section) -> dict[str, Any]:
    table = _table(section.headers, section.rows) if section.headers else None
    return {"title": section.title, "lines": list(section.lines), "table": table}


def _svg(svg: bytes | str) -> Markup:
    """An SVG document made inline (the XML prolog and doctype removed); archspec drew it."""
    text = svg.decode("utf-8") if isinstance(svg, bytes) else svg
    start = text.find("<svg")
    return Markup(text[start:] if start >= 0 else text)


def render_html(data: Mapping[str, Any], plots: Mapping[str, bytes | str]) -> str:
    """The full report as one HTML page; `plots` maps ``timeline`` / ``madds`` to SVG."""
    memory = data.get("memory")
    headers, rows = layer_table(dict(data))
    has_memory = headers[-1] == "Memory (bytes)"
    marked = [has_memory and "peak" in cells[-1] for cells in rows]
    context = {
        "name": str(data["name"]),
        "input_shape": shape_text(data["input_shape"]),
        "width_multiplier": data["width_multiplier"],
        "num_classes": data["num_classes"],
        "profile": data["profile"],
        "madds": format_cell(data["madds"]),
        "params": format_cell(data["params"]),
        "table2": _table(TABLE2_HEADERS, table2_rows(dict(data))),
        "memory": [_section(s) for s in memory_sections(memory)] if memory else [],
        "timeline": _svg(plots["timeline"]) if "timeline" in plots else None,
        "madds_plot": _svg(plots["madds"]) if "madds" in plots else None,
        "layers": _table(headers, rows, marked),
    }
    return html_environment().get_template("report/report.html.j2").render(context)
