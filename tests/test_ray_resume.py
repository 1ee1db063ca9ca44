"""Streaming and resuming a sweep (no Ray needed): the journal in the output folder, a sweep
interrupted after k variants and run again, a torn last line, a changed sweep refused, a folder
another sweep holds; the side-by-side count of timing tasks; the progress line."""

from __future__ import annotations

import functools
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from archspec.cli import main
from archspec.output import Progress
from archspec.variants.engine import ANALYSIS, Work, evaluate, local_engine
from archspec.variants.evaluation import evaluate_point
from archspec.variants.journal import JOURNAL, Journal, fingerprint
from archspec.variants.manifest import manifest_rows
from archspec.variants.model import Outcome, Point, SpaceDef
from archspec.variants.space import Space
from archspec.variants.timing import REGISTRY_ENV, SIDE_BY_SIDE, side_by_side

ROOT = Path(__file__).resolve().parent.parent

BASE = """\
name: small
input: {resolution: 32, channels: 3}
num_classes: 10
layers:
  - {op: conv2d, name: stem, c: 16, k: 3, s: 2}
  - {op: bottleneck, name: b1, t: 4, c: 24, n: 2, s: 2}
  - {op: bottleneck, name: b2, t: 4, c: 32, n: 1, s: 2}
  - {op: avgpool, global: true}
  - {op: fc, name: head, c: num_classes}
"""
# 3 x 2 x 3 = 18 points; b2.k = 4 is illegal (even kernel): 12 in the manifest, 6 skipped
CHOICES = """\
choices:
  width_multiplier: [0.5, 0.75, 1.0]
  resolution: [32, 48]
  rows:
    - {row: b2, k: [3, 4, 5]}
"""


def write_space(folder: Path) -> Path:
    (folder / "base.yaml").write_text(BASE)
    path = folder / "space.yaml"
    path.write_text("name: resume_space\nbase: base.yaml\n" + CHOICES)
    return path


def tree(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(["variants", *argv])
    return code, capsys.readouterr().err


class Stop(KeyboardInterrupt):
    """An interruption (Ctrl-C) after a number of journaled variants."""


def interrupt_after(monkeypatch: pytest.MonkeyPatch, k: int) -> list[str]:
    """Make the k+1-th journal append raise an interruption (the first k are written)."""
    seen: list[str] = []
    append = Journal.append

    def stopping(self: Journal, outcome: object) -> None:
        if len(seen) == k:
            raise Stop
        seen.append(outcome.id)  # type: ignore[attr-defined]
        append(self, outcome)  # type: ignore[arg-type]

    monkeypatch.setattr(Journal, "append", stopping)
    return seen


def count_appends(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    seen: list[str] = []
    append = Journal.append

    def counting(self: Journal, outcome: object) -> None:
        seen.append(outcome.id)  # type: ignore[attr-defined]
        append(self, outcome)  # type: ignore[arg-type]

    monkeypatch.setattr(Journal, "append", counting)
    return seen


@pytest.fixture
def space(tmp_path: Path) -> Path:
    return write_space(tmp_path)


@pytest.fixture
def reference(tmp_path: Path, space: Path, capsys: pytest.CaptureFixture[str]) -> dict:
    out = tmp_path / "reference"
    code, _ = run(capsys, str(space), "-o", str(out), "--csv")
    assert code == 0
    files = tree(out)
    assert JOURNAL not in files and len(files["manifest.jsonl"].splitlines()) == 12
    return files


@pytest.mark.parametrize("k", [0, 5, 17])
@pytest.mark.parametrize("jobs", ["1", "2"])
def test_an_interrupted_sweep_resumes_to_the_same_files(
    tmp_path, space, reference, capsys, monkeypatch, k, jobs
):
    out = tmp_path / "out"
    with monkeypatch.context() as patch:
        done = interrupt_after(patch, k)
        code, err = run(capsys, str(space), "-o", str(out), "--csv", "--jobs", jobs)
    assert code == 130 and "rerun the same command to resume" in err
    # only the journal: the header and the k outcomes, each a whole line; no final file
    assert sorted(tree(out)) == [JOURNAL]
    lines = (out / JOURNAL).read_text().splitlines()
    assert len(lines) == 1 + k and [json.loads(x)["id"] for x in lines[1:]] == done
    again = count_appends(monkeypatch)
    code, err = run(capsys, str(space), "-o", str(out), "--csv", "--jobs", jobs)
    assert code == 0
    assert len(again) == 18 - k and not set(again) & set(done)  # nothing evaluated twice
    assert (f"resuming: {k} of 18 variants" in err) == (k > 0)
    assert tree(out) == reference


def test_a_torn_last_line_is_dropped_and_redone(tmp_path, space, reference, capsys, monkeypatch):
    out = tmp_path / "out"
    with monkeypatch.context() as patch:
        interrupt_after(patch, 7)
        assert run(capsys, str(space), "-o", str(out), "--csv")[0] == 130
    journal = out / JOURNAL
    whole = journal.read_bytes()
    last = whole.splitlines(keepends=True)[-1]
    journal.write_bytes(whole[: -len(last)] + last[: len(last) // 2])  # a crash mid-write
    again = count_appends(monkeypatch)
    code, err = run(capsys, str(space), "-o", str(out), "--csv")
    assert code == 0 and "resuming: 6 of 18 variants" in err and "torn last line dropped" in err
    assert len(again) == 12 and json.loads(last)["id"] in again
    assert tree(out) == reference


def test_a_whole_last_line_that_does_not_parse_is_torn_too(tmp_path, space, reference, capsys):
    out = tmp_path / "out"
    out.mkdir()
    s = Space.load(space)
    variants = s.grid()
    key = fingerprint(s, variants, ANALYSIS)
    header = {"archspec_sweep": 1, "space": s.name, "fingerprint": key}
    (out / JOURNAL).write_text(json.dumps(header) + '\n{"id": "x", "metr\n')
    code, err = run(capsys, str(space), "-o", str(out), "--csv")
    assert code == 0 and "torn last line dropped" in err
    assert tree(out) == reference


def test_where_and_pareto_may_change_on_resume(tmp_path, space, capsys, monkeypatch):
    out, fresh = tmp_path / "out", tmp_path / "fresh"
    with monkeypatch.context() as patch:
        interrupt_after(patch, 9)
        assert run(capsys, str(space), "-o", str(out))[0] == 130
    argv = ["--where", "madds < 2e6", "--pareto", "params,madds:max"]
    assert run(capsys, str(space), "-o", str(out), *argv)[0] == 0
    assert run(capsys, str(space), "-o", str(fresh), *argv)[0] == 0
    assert tree(out) == tree(fresh)


@pytest.mark.parametrize(
    "first, second",
    [
        (["--n", "10", "--seed", "1"], ["--n", "10", "--seed", "2"]),
        (["--n", "10"], ["--n", "11"]),
        ([], ["--n", "5"]),
    ],
)
def test_a_changed_sweep_is_refused_or_restarted(
    tmp_path, space, capsys, monkeypatch, first, second
):
    out, fresh = tmp_path / "out", tmp_path / "fresh"
    with monkeypatch.context() as patch:
        interrupt_after(patch, 3)
        assert run(capsys, str(space), "-o", str(out), *first)[0] == 130
    before = tree(out)
    code, err = run(capsys, str(space), "-o", str(out), *second)
    assert code == 2 and "Traceback" not in err
    assert f"{out / JOURNAL}: -o: holds a partial sweep of 'resume_space'" in err
    assert "--restart" in err
    assert tree(out) == before  # refused before any work: the journal is kept as it was
    assert run(capsys, str(space), "-o", str(out), *second, "--restart")[0] == 0
    assert run(capsys, str(space), "-o", str(fresh), *second)[0] == 0
    assert tree(out) == tree(fresh)


def test_changed_memory_settings_are_a_changed_sweep(tmp_path, space, capsys, monkeypatch):
    out = tmp_path / "out"
    with monkeypatch.context() as patch:
        interrupt_after(patch, 3)
        assert run(capsys, str(space), "-o", str(out))[0] == 130
    space.write_text(space.read_text() + "memory: {dtype: float16}\n")
    code, err = run(capsys, str(space), "-o", str(out))
    assert code == 2 and "holds a partial sweep" in err


def test_an_edited_journal_is_a_located_error(tmp_path, space, capsys, monkeypatch):
    out = tmp_path / "out"
    with monkeypatch.context() as patch:
        interrupt_after(patch, 4)
        assert run(capsys, str(space), "-o", str(out))[0] == 130
    lines = (out / JOURNAL).read_text().splitlines(keepends=True)
    lines[2] = '{"id": 3}\n'
    (out / JOURNAL).write_text("".join(lines))
    code, err = run(capsys, str(space), "-o", str(out))
    assert code == 2 and f"{out / JOURNAL}:3:1: -o: is not a sweep record" in err
    (out / JOURNAL).write_text("not json\n" + "".join(lines[1:]))
    code, err = run(capsys, str(space), "-o", str(out))
    assert code == 2 and f"{out / JOURNAL}:1:1: -o: is not a sweep record" in err


def test_a_folder_another_sweep_holds_is_refused(tmp_path, space, capsys):
    out = tmp_path / "out"
    s = Space.load(space)
    held = Journal.open(out, s, "someone-else")
    try:
        code, err = run(capsys, str(space), "-o", str(out))
    finally:
        held.close()
    assert code == 2 and "another archspec sweep is writing into this folder" in err
    assert not (out / "manifest.jsonl").exists()


def test_the_journal_is_never_written_through_a_symlink(tmp_path, space, capsys):
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere.jsonl"
    out.mkdir()
    (out / JOURNAL).symlink_to(elsewhere)
    code, err = run(capsys, str(space), "-o", str(out))
    assert code == 2 and "is a symbolic link; refusing to write through it" in err
    assert not elsewhere.exists() and sorted(p.name for p in out.iterdir()) == [JOURNAL]


def test_a_killed_sweep_resumes(tmp_path, space, reference):
    # a real crash: SIGKILL in the middle of a sweep (a slow evaluation makes room for it)
    out = tmp_path / "out"
    script = (
        "import sys, time\n"
        "import archspec.variants.evaluation as ev\n"
        "measure = ev.measure\n"
        "def slow(*a, **k):\n"
        "    time.sleep(0.05)\n"
        "    return measure(*a, **k)\n"
        "ev.measure = slow\n"
        "from archspec.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    argv = [sys.executable, "-c", script, "variants", str(space), "-o", str(out), "--csv"]
    proc = subprocess.Popen(argv, cwd=ROOT, stderr=subprocess.DEVNULL)
    journal = out / JOURNAL
    try:
        while proc.poll() is None:
            if journal.exists() and len(journal.read_bytes().splitlines()) >= 6:
                proc.kill()
                break
            time.sleep(0.01)
    finally:
        proc.wait()
    assert proc.returncode == -9, "the sweep finished before it could be killed"
    code = subprocess.run(argv[:1] + ["-m", "archspec", *argv[3:]], cwd=ROOT).returncode
    assert code == 0
    assert tree(out) == reference


def test_no_journal_without_an_output_folder(tmp_path, space, capsys):
    code = main(["variants", str(space)])
    out, _ = capsys.readouterr()
    assert code == 0 and len(out.splitlines()) == 12
    assert sorted(p.name for p in tmp_path.iterdir()) == ["base.yaml", "space.yaml"]


# -- side by side ----------------------------------------------------------------------------


def test_side_by_side_counts_the_most_tasks_running_at_once(tmp_path: Path) -> None:
    registry = tmp_path / "registry.json"
    with side_by_side(registry) as first:
        with side_by_side(registry) as second, side_by_side(registry) as third:
            pass
        with side_by_side(registry) as fourth:
            pass
    with side_by_side(registry) as alone:
        pass
    assert (first.most, second.most, third.most, fourth.most, alone.most) == (3, 3, 3, 2, 1)
    assert json.loads(registry.read_text()) == {}


def test_side_by_side_forgets_tasks_whose_process_died(tmp_path: Path) -> None:
    registry = tmp_path / "registry.json"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], stdout=-1)
    pid = int(dead.stdout)
    registry.write_text(json.dumps({"gone": [pid, 1], "me": [os.getpid(), 1]}))
    with side_by_side(registry) as seen:
        pass
    assert seen.most == 2  # itself and the live entry, not the dead one
    registry.write_text("{torn")
    with side_by_side(registry) as seen:
        pass
    assert seen.most == 1


# -- progress --------------------------------------------------------------------------------


def test_progress_line_shows_rate_and_eta(monkeypatch: pytest.MonkeyPatch) -> None:
    bar = Progress(100, "variants", enabled=False, start=20)
    assert bar.line("abc", now=bar.began + 5) == "variants 20/100  abc"
    bar.done = 70  # 50 done in 10 s: 5/s, 30 left: 6 s
    assert bar.line("", now=bar.began + 10) == "variants 70/100  5.0/s  ETA 0:06"
    bar.done = 21
    assert bar.line("", now=bar.began + 3700) == "variants 21/100  0.0/s  ETA 81:11:40"
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    shown = Progress(3, "x", enabled=True)
    for _ in range(3):
        shown.step("id")
    shown.close()
    text = err.getvalue()
    # drawn at the first step and the last; the second came within 0.1 s of the first
    assert text.startswith("\rx 1/3  ") and text.count("\r") == 2
    assert "\rx 3/3  " in text and text.endswith("  id\n")


def _sleepy(space: SpaceDef, point: Point, seconds: float) -> Outcome:
    """A timing task stand-in: evaluate, then hold the core a while."""
    time.sleep(seconds)
    return evaluate_point(space, point)


@pytest.mark.parametrize("jobs, threads, most", [(1, 1, 1), (2, 1, 2), (8, 2, 1)])
def test_local_timing_tasks_never_outnumber_the_cores(
    tmp_path, space, monkeypatch, jobs, threads, most
):
    monkeypatch.setenv(REGISTRY_ENV, str(tmp_path / "registry.json"))
    monkeypatch.setattr(os, "cpu_count", lambda: 2)  # this machine's two cores, anywhere
    s = Space.load(space)
    variants = s.grid()[:6]
    work = Work(functools.partial(_sleepy, seconds=0.3), threads=threads)
    evaluated, _ = evaluate(s, variants, engine=local_engine(jobs), work=work)
    counts = [e.metrics[SIDE_BY_SIDE] for e in evaluated]
    assert len(counts) == 4 and all(1 <= c <= most for c in counts) and max(counts) == most
    rows = manifest_rows(evaluated, [False] * len(evaluated))
    assert [r[SIDE_BY_SIDE] for r in rows] == counts
    assert SIDE_BY_SIDE not in manifest_rows(evaluate(s, variants)[0], [False] * 4)[0]
