"""Running the CLI on hostile input and checking the README's promise for a refusal: exit 2, the
message, no traceback, no warning, nothing written or left behind, within a time bound."""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from archspec.cli import main

BASE = """name: hostile
input: {resolution: 32, channels: 3}
num_classes: 10
layers:
  - {op: conv2d, c: 16, s: 2}
  - {op: avgpool, global: true}
  - {op: fc, c: num_classes}
"""


PSEUDO = {("/", "proc"), ("/", "sys"), ("/", "dev")}  # nothing is written there; never walked


@dataclass
class CliResult:
    """What one in-process CLI run did."""

    code: int
    out: str
    err: str
    seconds: float
    warned: list[str]
    created: set[str] = field(default_factory=set)
    removed: set[str] = field(default_factory=set)


def _snapshot(roots: list[Path]) -> set[str]:
    seen: set[str] = set()
    for root in roots:
        for folder, dirs, files in os.walk(root):
            for name in dirs + files:
                seen.add(os.path.join(folder, name))
    return seen


def _watched(args: list[str], extra: list[Path]) -> list[Path]:
    roots = list(extra)
    for arg in args:
        if os.sep in arg:
            path = Path(arg)
            for candidate in (path, path.parent):
                if candidate.parts[:2] in PSEUDO or candidate == Path("/"):
                    break
                if candidate.is_dir() and candidate not in roots:
                    roots.append(candidate)
                    break
    return roots


def run_cli(capsys, args: list[str], watch: list[Path] | None = None) -> CliResult:
    """Run `archspec ARGS` in this process; record stdout, stderr, warnings, time and the files
    created or removed in the folders the arguments point into (and `watch`)."""
    roots = _watched(args, watch or [])
    before = _snapshot(roots)
    capsys.readouterr()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        start = time.monotonic()
        code = main(args)
        seconds = time.monotonic() - start
    captured = capsys.readouterr()
    after = _snapshot(roots)
    return CliResult(
        code,
        captured.out,
        captured.err,
        seconds,
        [str(w.message) for w in caught],
        after - before,
        before - after,
    )


def assert_refused(result: CliResult, needle: str, seconds: float) -> None:
    """Exit 2 with `needle` in the message, no traceback, no warning, nothing on stdout, nothing
    created or removed, within `seconds`."""
    assert result.code == 2, result.err
    assert needle in result.err, result.err
    assert result.err.startswith("error: "), result.err
    assert "Traceback" not in result.err
    assert "internal error" not in result.err
    assert "Warning" not in result.err, result.err
    assert result.warned == [], result.warned
    assert result.out == ""
    assert result.created == set(), result.created
    assert result.removed == set(), result.removed
    assert result.seconds < seconds, f"took {result.seconds:.1f} s"
