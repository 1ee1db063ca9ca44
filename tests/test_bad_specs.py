"""Every bad spec ends in exit status 2 with a located message, no traceback, nothing written."""

from __future__ import annotations

import re

import pytest

from archspec.cli import main
from tests.bad_specs import CASES, marked_line


@pytest.mark.parametrize(("case", "text", "needle"), CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("command", ["validate", "report"])
def test_bad_spec_is_located(tmp_path, capsys, case, text, needle, command):
    spec = tmp_path / f"{case}.yaml"
    spec.write_text(text)
    out = tmp_path / "report.txt"
    args = [command, str(spec)] + (["-o", str(out)] if command == "report" else [])
    assert main(args) == 2
    captured = capsys.readouterr()
    err = captured.err
    assert "Traceback" not in err
    assert needle in err, err
    match = re.search(re.escape(str(spec)) + r":(\d+):(\d+)", err)
    assert match, f"no file:line:col in {err!r}"
    assert int(match.group(1)) == marked_line(text), err
    assert int(match.group(2)) >= 1
    assert not out.exists()
    assert captured.out == ""


def test_catalogue_is_large_enough():
    assert len(CASES) >= 25
    assert len({c[0] for c in CASES}) == len(CASES)


def test_missing_file_is_bad_input(tmp_path, capsys):
    assert main(["validate", str(tmp_path / "nope.yaml")]) == 2
    assert "cannot read file" in capsys.readouterr().err


def test_non_utf8_file_names_the_line(tmp_path, capsys):
    spec = tmp_path / "binary.yaml"
    spec.write_bytes(b"name: x\ninput: {resolution: 32}\n\xff\xfe garbage\n")
    assert main(["validate", str(spec)]) == 2
    assert f"{spec}:3:1: file is not valid UTF-8" in capsys.readouterr().err
