"""The HTML report rendered from `templates/report/`: well-formed, complete, and escaped."""

from __future__ import annotations

import copy
from html.parser import HTMLParser
from pathlib import Path

import pytest

from archspec.analysis.cost import analyze_cost
from archspec.analysis.html import render_html
from archspec.analysis.memory_report import memory_sections
from archspec.analysis.memory_summary import analyze_memory
from archspec.analysis.report import layer_table, report_data, table2_rows
from archspec.lower import lower
from archspec.spec import load_spec

ROOT = Path(__file__).resolve().parent.parent
VOID = {"meta", "br", "img", "hr", "input", "link"}
HOSTILE = "<script>alert('x')</script> & \"q\""


class _Page(HTMLParser):
    """Collects the tables (cells as unescaped text), headings, paragraphs and nesting errors."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.tables: list[list[list[str]]] = []
        self.headings: list[str] = []
        self.paragraphs: list[str] = []
        self.peak_rows = 0
        self.scripts = 0
        self._text: list[str] | None = None
        self._svg_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "script":
            self.scripts += 1
        if tag in VOID:
            return
        self.stack.append(tag)
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
            self.peak_rows += ("class", "peak") in attrs
        elif tag in ("td", "th", "h1", "h2", "p"):
            self._text = []

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        pass  # self-closed SVG elements

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
            return
        self.stack.pop()
        if tag in ("td", "th") and self._text is not None:
            self.tables[-1][-1].append("".join(self._text))
        elif tag in ("h1", "h2"):
            self.headings.append("".join(self._text or []))
        elif tag == "p" and self._text is not None:
            self.paragraphs.append("".join(self._text))
        if tag in ("td", "th", "h1", "h2", "p"):
            self._text = None

    def handle_data(self, data: str) -> None:
        if self._text is not None:
            self._text.append(data)


def _data(spec: str, **memory: object) -> dict:
    graph = lower(load_spec(str(ROOT / spec)))
    mem = analyze_memory(graph, **memory).data if memory else None  # type: ignore[arg-type]
    return report_data(graph, analyze_cost(graph), mem)


def _parse(text: str) -> _Page:
    page = _Page()
    page.feed(text)
    page.close()
    assert not page.errors and page.stack == [], (page.errors, page.stack)
    return page


@pytest.fixture(scope="module")
def fused() -> dict:
    return _data("specs/mnv2_1.0.yaml", mode="fused", split=4, dtype="float16")


def test_every_table_cell_is_rendered_in_order(fused):
    page = _parse(render_html(fused, {}))
    headers, rows = layer_table(fused)
    layers = page.tables[-1]
    assert layers[0] == headers and layers[1:] == rows
    assert len(layers) - 1 == len(fused["layers"])
    assert [r[0] for r in layers[1:]] == [x["name"] for x in fused["layers"]]
    assert page.tables[0][1:] == table2_rows(fused)
    sections = memory_sections(fused["memory"])
    tabled = [s for s in sections if s.headers]
    for section, table in zip(tabled, page.tables[1:-1], strict=True):
        assert table == [list(section.headers), *map(list, section.rows)]
    assert [h for h in page.headings if h in {s.title for s in sections}] == [
        s.title for s in sections
    ]
    assert page.peak_rows == sum("peak" in r[-1] for r in rows) > 0


def test_op_report_without_memory_or_plots():
    data = _data("specs/paper/shufflenet_g3_2x.yaml")
    page = _parse(render_html(data, {}))
    assert len(page.tables) == 2 and page.peak_rows == 0
    assert len(page.tables[-1]) - 1 == len(data["layers"])
    assert page.headings[0] == data["name"]


def test_numbers_align_right_and_text_left(fused):
    text = render_html(fused, {})
    assert f'<td class="num">{fused["layers"][0]["madds"]:,}</td>' in text
    assert f"<td>{fused['layers'][0]['name']}</td>" in text


def test_spec_text_is_escaped(fused):
    data = copy.deepcopy(fused)
    data["name"] = HOSTILE
    data["profile"] = HOSTILE
    data["layers"][0]["name"] = HOSTILE
    data["rows"][0]["op"] = HOSTILE
    data["memory"]["live_at_peak"][0]["tensor"] = HOSTILE
    text = render_html(data, {"madds": '<?xml version="1.0"?>\n<svg><text>1</text></svg>'})
    page = _parse(text)
    assert page.scripts == 0 and "<script" not in text
    assert text.count("&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; &quot;q&quot;") == 6
    assert page.headings[0] == HOSTILE
    assert page.tables[-1][1][0] == HOSTILE
    # the inline plot is archspec's own markup: kept, with its XML prolog removed
    assert "<figure><svg><text>1</text></svg></figure>" in text and "<?xml" not in text


def test_plots_are_inlined_where_the_report_places_them(fused):
    timeline = '<?xml version="1.0"?>\n<!DOCTYPE svg>\n<svg id="t"></svg>'
    text = render_html(fused, {"timeline": timeline, "madds": b'<svg id="m"></svg>'})
    first_section = memory_sections(fused["memory"])[1].title
    assert text.index('<svg id="t">') < text.index(f"<h2>{first_section}</h2>")
    assert text.index("<h2>MAdds per layer</h2>") < text.index('<svg id="m">')
    assert text.index('<svg id="m">') < text.index("<h2>Layers (one row per graph op)</h2>")
