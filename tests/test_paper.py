"""The paper view: published figures next to ours, from the shipped specs and temporary ones."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from archspec import analyze_cost, load_spec, lower
from archspec.cli import main
from archspec.paper import NOT_SHIPPED, compare, paper_tables, render_paper, report_paper
from archspec.paper_figures import FIGURES, TABLE3, printed_value

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"
MNV2 = str(SPECS / "mnv2_1.0.yaml")

SSDLITE = """
name: toy_ssdlite
input: {resolution: 320, channels: 3}
num_classes: 80
layers:
  - {op: conv2d, name: stem, c: 16, k: 3, s: 2}
  - {op: bottleneck, t: 6, c: 24, s: 2}
  - {op: dwconv, name: box_dw, part: head}
  - {op: conv2d, name: box, c: 12, k: 1, bn: false, act: linear, part: head}
"""


def _rows(tables, number):
    return next(t for t in tables if t["table"] == number)["rows"]


def test_printed_values_and_flags():
    assert printed_value("4.2M") == 4.2e6 and printed_value("0.35B") == 3.5e8
    assert printed_value("") is None
    assert compare(300_774_272, "300M")["flagged"] is False
    cell = compare(3_470_760, "3.4M")  # 2.08 % over the printed 3.4M
    assert cell["flagged"] and cell["pct"] == round(100 * (3_470_760 - 3.4e6) / 3.4e6, 2)
    assert cell["diff"] == 3_470_760 - 3.4e6


def test_shipped_tables_never_crash_and_compute_ours():
    tables = paper_tables()
    assert [t["table"] for t in tables] == ["3", "4", "5", "6", "7"]
    for t in tables[1:]:
        for r in t["rows"]:
            shipped = (SPECS / r["spec"]).is_file()
            assert (r["status"] == NOT_SHIPPED) == (not shipped), r["row"]
    rows = {r["row"]: r for r in _rows(tables, "4")}
    for row, sets in (("MobileNetV2", []), ("MobileNetV2 (1.4)", ["width_multiplier=1.4"])):
        cost = analyze_cost(lower(load_spec(MNV2, sets)))
        assert rows[row]["status"] == "ok"
        assert rows[row]["params"]["ours"] == cost.params
        assert rows[row]["madds"]["ours"] == cost.madds
    assert rows["MobileNetV2 (1.4)"]["params"]["flagged"]  # 6.06M vs the printed 6.9M
    assert rows["MobileNetV2 (1.4)"]["note"]
    # Table 3: the MobileNetV2 column is computed (channels at 112² are Table 2's 16)
    mnv2 = next(c for c in tables[0]["columns"] if c["network"] == "MobileNetV2")
    assert mnv2["status"] == "ok" and mnv2["cells"][0]["channels"]["ours"] == 16
    assert len(tables[0]["columns"]) == len(TABLE3)


@pytest.mark.parametrize("fmt", ["text", "markdown", "html"])
def test_render_formats(fmt, tmp_path):
    out = tmp_path / f"paper.{fmt}"
    assert main(["paper", "--format", fmt, "-o", str(out)]) == 0
    text = out.read_text()
    assert NOT_SHIPPED in text or all((SPECS / f.spec).is_file() for f in FIGURES)
    assert "Table 7" in text and "300M" in text
    if fmt == "html":
        assert text.startswith("<!DOCTYPE html>") and "<script" not in text


def test_temporary_specs_fill_tables_5_and_6(tmp_path):
    (tmp_path / "paper").mkdir()
    shutil.copy(MNV2, tmp_path / "mnv2_1.0.yaml")
    spec = tmp_path / "paper" / "mnv2_ssdlite_320.yaml"
    spec.write_text(SSDLITE)
    (tmp_path / "paper" / "mnv2_ssd_320.yaml").write_text(
        SSDLITE.replace("part: head", "part: extra")
    )
    (tmp_path / "paper" / "mnv1_ssdlite_320.yaml").write_text("name: [broken\n")
    tables = paper_tables(tmp_path)
    cost = analyze_cost(lower(load_spec(str(spec))))
    head = next(r for r in _rows(tables, "5") if r["row"] == "SSDLite")
    assert head["status"] == "ok" and head["madds"]["ours"] == cost.parts["head"].madds
    assert head["params"]["ours"] == cost.parts["head"].params
    whole = next(r for r in _rows(tables, "6") if r["row"] == "MNet V2 + SSDLite")
    assert whole["madds"]["ours"] == cost.madds
    ssd = next(r for r in _rows(tables, "5") if r["row"] == "SSD")
    assert ssd["status"].startswith("the spec has no part 'head'")
    broken = next(r for r in _rows(tables, "6") if r["row"] == "MNet V1 + SSDLite")
    assert broken["status"].startswith("spec error")
    assert _rows(tables, "4")[0]["status"] == NOT_SHIPPED  # no paper/mnv1_1.0.yaml here
    text = render_paper(tables)
    assert "spec error" in text and NOT_SHIPPED in text


def test_report_paper_matches_by_file_name_and_settings(capsys):
    assert main(["report", MNV2, "--paper", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [p["row"] for p in data["paper"]] == ["MobileNetV2"]
    assert data["paper"][0]["madds"]["ours"] == data["madds"]
    assert (
        main(["report", MNV2, "--paper", "--format", "json", "--set", "width_multiplier=1.4"]) == 0
    )
    data = json.loads(capsys.readouterr().out)
    assert [p["row"] for p in data["paper"]] == ["MobileNetV2 (1.4)"]
    assert data["paper"][0]["params"]["paper"] == "6.9M"
    assert main(["report", MNV2, "--paper", "--set", "resolution=160"]) == 0
    assert "prints no figure for this spec" in capsys.readouterr().out
    assert main(["report", MNV2, "--paper"]) == 0
    out = capsys.readouterr().out
    assert "Table 4: MobileNetV2" in out and "truncates" in out


def test_report_paper_uses_the_figures_profile(tmp_path):
    # a stand-in for Table 7's spec: the figure is counted under tf1, params with BatchNorm
    spec = tmp_path / "mnv2_deeplabv3.yaml"
    text = (SPECS / "mnv2_aspp.yaml").read_text()
    spec.write_text(text.replace("resolution: 224", "resolution: 513"))
    graph = lower(load_spec(str(spec)))
    (entry,) = report_paper(str(spec), graph)
    tf1, slim = analyze_cost(graph, "tf1"), analyze_cost(graph)
    assert entry["profile"] == "tf1" and tf1.madds > slim.madds
    assert entry["madds"]["ours"] == tf1.madds
    assert entry["params"]["ours"] == tf1.params_with_bn
    # other settings than the file's (and the figure's) match nothing
    assert report_paper(str(spec), lower(load_spec(str(spec), ["num_classes=20"]))) == []
