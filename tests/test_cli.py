"""The command line: contracts of `report`/`validate`/`schema`, exit codes, output files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from archspec.cli import build_parser, main

ROOT = Path(__file__).resolve().parent.parent
MNV2 = str(ROOT / "specs" / "mnv2_1.0.yaml")


def test_report_json_contract(capsys):
    assert main(["report", MNV2, "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    for key in ("name", "input_shape", "madds", "params", "params_with_bn", "layers"):
        assert key in data
    assert data["madds"] == 300_774_272
    assert data["input_shape"] == [224, 224, 3]
    for row in data["layers"]:
        assert {"name", "op", "output_shape", "madds", "params"} <= set(row)
    assert sum(row["madds"] for row in data["layers"]) == data["madds"]
    assert sum(row["params"] for row in data["layers"]) == data["params"]
    assert [r["t"] for r in data["rows"] if r["op"] == "bottleneck"] == [1, 6, 6, 6, 6, 6, 6]


def test_report_set_overrides(capsys):
    assert main(["report", MNV2, "--format", "json", "--set", "num_classes=1001"]) == 0
    assert json.loads(capsys.readouterr().out)["params"] == 3_472_041


@pytest.mark.parametrize("fmt", ["text", "markdown"])
def test_report_text_formats_show_table2_and_totals(capsys, fmt):
    assert main(["report", MNV2, "--format", fmt]) == 0
    out = capsys.readouterr().out
    assert "300,774,272" in out and "3,470,760" in out and "3,504,872" in out
    assert "bottleneck" in out and "112²×32" in out
    if fmt == "markdown":
        assert "| Input | Operator | t | c | n | s |" in out


def test_report_writes_file_atomically(tmp_path, capsys):
    out = tmp_path / "r.json"
    assert main(["report", MNV2, "--format", "json", "-o", str(out)]) == 0
    assert json.loads(out.read_text())["params_with_bn"] == 3_504_872
    assert capsys.readouterr().out == ""
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_report_is_deterministic(tmp_path):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    main(["report", MNV2, "-o", str(a)])
    main(["report", MNV2, "-o", str(b)])
    assert a.read_bytes() == b.read_bytes()


def test_report_into_missing_folder_is_bad_input(tmp_path, capsys):
    assert main(["report", MNV2, "-o", str(tmp_path / "no" / "r.txt")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_validate_ok(capsys):
    assert main(["validate", MNV2]) == 0
    assert "17 bottleneck blocks" in capsys.readouterr().out


def test_schema_command(capsys):
    assert main(["schema"]) == 0
    assert json.loads(capsys.readouterr().out)["title"] == "archspec architecture spec"


def test_every_command_has_help():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, command in sub.choices.items():
        text = command.format_help()
        assert command.description or command.format_usage(), name
        for action in command._actions:
            if action.dest != "help" and action.option_strings:
                assert action.help, f"{name} {action.option_strings} has no help"
        assert "usage:" in text


def test_usage_error_exits_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["report"])
    assert exc.value.code == 2


def test_python_dash_m_and_console_script_agree():
    proc = subprocess.run(
        [sys.executable, "-m", "archspec", "report", MNV2, "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(proc.stdout)["madds"] == 300_774_272
    script = Path(sys.executable).parent / "archspec"
    proc = subprocess.run([str(script), "validate", MNV2], capture_output=True, text=True)
    assert proc.returncode == 0


def test_real_process_bad_spec_exit_2_without_traceback(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ninput: {resolution: 32}\nlayers:\n  - {op: conv3d, c: 8}\n")
    proc = subprocess.run(
        [sys.executable, "-m", "archspec", "validate", str(bad)], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert f"{bad}:4:" in proc.stderr and "did you mean 'conv2d'?" in proc.stderr
