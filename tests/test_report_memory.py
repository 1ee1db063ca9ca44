"""`archspec report` with memory: options, JSON `memory`, text/markdown sections, HTML, plots."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from archspec.cli import main

ROOT = Path(__file__).resolve().parent.parent
MNV2 = str(ROOT / "specs" / "mnv2_1.0.yaml")
ASPP = str(ROOT / "specs" / "mnv2_aspp.yaml")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _json(capsys, *args):
    assert main(["report", MNV2, "--format", "json", *args]) == 0
    return json.loads(capsys.readouterr().out)


def test_json_memory_op_mode_float16(capsys):
    m = _json(capsys, "--activation-dtype", "float16")["memory"]
    assert (m["mode"], m["dtype_bytes"], m["peak_bytes"], m["peak_step"]) == (
        "op",
        2,
        3_010_560,
        "block1_dw",
    )
    assert {x["tensor"]: x["bytes"] for x in m["live_at_peak"]} == {
        "block1_expand": 112 * 112 * 96 * 2,
        "block1_dw": 56 * 56 * 96 * 2,
    }
    assert m["optimal"] is True and m["lower_bound_bytes"] == m["peak_bytes"]
    assert m["order"][0] == "stem" and m["order"][-1] == "classifier"
    assert m["orders"]["spec"]["peak_bytes"] >= m["orders"]["optimal"]["peak_bytes"]
    assert m["table3_max_bytes"] == 401_408
    assert [r["split"] for r in m["split_tradeoff"]] == [1, 2, 3, 4, 5, 6, "n"]
    assert m["op_mode_peak_bytes"] == m["peak_bytes"]
    assert m["weights_bytes"] == 2 * m["weights_params"]


def test_json_memory_default_dtype_is_float32(capsys):
    m = _json(capsys)["memory"]
    assert (m["dtype"], m["dtype_bytes"], m["peak_bytes"]) == ("float32", 4, 2 * 3_010_560)


def test_json_memory_fused_mode(capsys):
    m = _json(capsys, "--memory-mode", "fused", "--split", "n", "--activation-dtype", "int8")[
        "memory"
    ]
    assert (m["mode"], m["split"], m["first_layer_trick"]) == ("fused", "n", True)
    assert m["steps"][0]["op"] == "stem_block0" and m["steps"][0]["kind"] == "stem_block"
    assert m["steps"][0]["nodes"] == ["stem", "block0_dw", "block0_project"]
    row = next(r for r in m["split_tradeoff"] if r["split"] == "n")
    assert row["peak_bytes"] == m["peak_bytes"]
    off = _json(
        capsys,
        "--memory-mode",
        "fused",
        "--split",
        "n",
        "--activation-dtype",
        "int8",
        "--no-first-layer-trick",
    )["memory"]
    assert off["first_layer_trick"] is False and off["peak_bytes"] > m["peak_bytes"]
    assert off["steps"][0]["op"] == "stem"


def test_json_memory_branching_spec(capsys):
    assert main(["report", ASPP, "--format", "json"]) == 0
    m = json.loads(capsys.readouterr().out)["memory"]
    assert m["optimal"] is True
    assert m["peak_bytes"] <= min(
        m["orders"]["greedy"]["peak_bytes"], m["orders"]["spec"]["peak_bytes"]
    )
    assert "paper_channels" not in m["table3"][0]


def test_text_report_marks_the_peak_row(capsys):
    assert main(["report", MNV2, "--activation-dtype", "float16"]) == 0
    out = capsys.readouterr().out
    peak_rows = [line for line in out.splitlines() if "◀ peak" in line]
    assert len(peak_rows) == 1 and peak_rows[0].startswith("block1_dw")
    assert "3,010,560" in peak_rows[0]
    for title in (
        "Activation memory",
        "Execution orders",
        "Buffer placement",
        "Memory against split",
        "Table 3",
    ):
        assert title in out
    assert "not an Eq. 2 peak" in out


def test_markdown_fused_report_names_blocks_on_their_rows(capsys):
    assert (
        main(["report", MNV2, "--format", "markdown", "--memory-mode", "fused", "--split", "4"])
        == 0
    )
    out = capsys.readouterr().out
    rows = {
        line.split("|")[1].strip(): line
        for line in out.splitlines()
        if line.startswith("| block1_")
    }
    assert set(rows) == {"block1_expand", "block1_dw", "block1_project"}
    assert all("[block1]" in line and "◀ peak" in line for line in rows.values())
    assert "## Table 3" in out and "≠" in out  # the rows where the paper's channels differ


def test_html_is_self_contained_and_deterministic(tmp_path):
    a, b = tmp_path / "a.html", tmp_path / "b.html"
    for path in (a, b):
        assert (
            main(
                [
                    "report",
                    MNV2,
                    "--format",
                    "html",
                    "--activation-dtype",
                    "float16",
                    "-o",
                    str(path),
                ]
            )
            == 0
        )
    text = a.read_text(encoding="utf-8")
    assert a.read_bytes() == b.read_bytes()
    assert text.startswith("<!DOCTYPE html>") and text.rstrip().endswith("</html>")
    assert text.count("<svg") == 2
    assert not re.search(r"<script|<link|\ssrc=|@import|url\((?!#)", text, re.IGNORECASE)
    assert "3,010,560" in text and "401,408" in text
    assert '<tr class="peak">' in text
    # The inline SVGs are well-formed XML.
    for svg in re.findall(r"<svg.*?</svg>", text, re.DOTALL):
        ET.fromstring(svg)


@pytest.mark.parametrize("ext", ["svg", "png"])
def test_plot_written_and_deterministic(tmp_path, ext, capsys):
    a, b = tmp_path / f"a.{ext}", tmp_path / f"b.{ext}"
    for path in (a, b):
        assert (
            main(
                [
                    "report",
                    MNV2,
                    "--memory-mode",
                    "fused",
                    "--split",
                    "2",
                    "--plot",
                    str(path),
                    "-o",
                    str(tmp_path / "r.txt"),
                ]
            )
            == 0
        )
    assert a.read_bytes() == b.read_bytes()
    if ext == "png":
        assert a.read_bytes().startswith(PNG_MAGIC)
    else:
        root = ET.fromstring(a.read_bytes())
        assert root.tag.endswith("svg")
        assert b"<dc:date>" not in a.read_bytes()
        assert b"fused, split 2" in a.read_bytes() and b"op mode" in a.read_bytes()


@pytest.mark.parametrize(
    "args",
    [
        ["--plot", "timeline.pdf"],
        ["--plot", "timeline"],
        ["--split", "2"],
        ["--no-first-layer-trick"],
        ["--memory-mode", "fused", "--split", "0"],
        ["--memory-mode", "fused", "--split", "two"],
        ["--activation-dtype", "bfloat16"],
    ],
)
def test_bad_memory_options_exit_2_and_write_nothing(tmp_path, args, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "r.txt"
    try:
        code = main(["report", MNV2, "-o", str(out), *args])
    except SystemExit as exc:  # argparse rejects malformed values itself
        code = exc.code
    assert code == 2
    assert list(tmp_path.iterdir()) == []
    assert "Traceback" not in capsys.readouterr().err


def test_plot_into_missing_folder_is_bad_input(tmp_path, capsys):
    out = tmp_path / "r.txt"
    assert main(["report", MNV2, "-o", str(out), "--plot", str(tmp_path / "no" / "t.svg")]) == 2
    assert not out.exists()
    assert "--plot" in capsys.readouterr().err


def test_plot_functions_are_deterministic_and_refuse_other_formats():
    from archspec.analysis.plots import madds_plot, timeline_plot

    series = [
        ("op mode", [{"op": "a", "bytes": 10}, {"op": "b", "bytes": 30}]),
        ("fused", [{"op": "ab", "bytes": 20, "nodes": ["a", "b"]}]),
    ]
    one, two = timeline_plot(series, "svg"), timeline_plot(series, "svg")
    assert one == two and b"peak 30 B at b" in one and b"peak 20 B at ab" in one
    layers = [{"name": "c", "madds": 5, "terms": {"conv": 5}}, {"name": "p", "madds": 0}]
    assert madds_plot(layers, "png") == madds_plot(layers, "png")
    with pytest.raises(ValueError, match="format"):
        timeline_plot(series, "pdf")
