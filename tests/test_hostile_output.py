"""Output destinations (issue 14 classes 4 and 9): checked before any work, written all or
nothing, never through a link, cleaned up on SIGTERM, locked against a second run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from archspec.errors import SpecError
from archspec.output import FileOutput, TreeOutput, write_outputs, write_tree
from tests.hostile import BASE, assert_refused, run_cli

SECONDS = 10.0
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def spec(tmp_path):
    path = tmp_path / "net.yaml"
    path.write_text(BASE)
    return path


@pytest.fixture
def afile(tmp_path):
    path = tmp_path / "afile"
    path.write_text("keep me\n")
    return path


def _leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.rglob(".archspec-*")]


# -- refused before any work -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("where", "needle"),
    [
        ("", "-o: found an empty path; expected a folder"),
        (" ", "-o: found an empty path; expected a folder"),
        ("{afile}", "-o: exists and is not a folder"),
        ("{afile}/sub", "lies under {afile}, which is a file, not a folder"),
        ("{afile}/sub/deeper", "lies under {afile}, which is a file, not a folder"),
        ("/proc/archspec-out", "cannot create files in /proc"),
        ("/proc/self/archspec-out", "cannot create files in /proc/self"),
    ],
)
@pytest.mark.parametrize("target", ["pytorch", "onnx", "c"])
def test_build_refuses_a_bad_destination(tmp_path, capsys, spec, afile, where, needle, target):
    out = where.format(afile=afile)
    args = ["build", str(spec), "--target", target, "-o", out]
    result = run_cli(capsys, args, watch=[tmp_path])
    assert_refused(result, needle.format(afile=afile), SECONDS)
    assert afile.read_text() == "keep me\n"


def test_destination_is_checked_before_the_spec_is_read(tmp_path, capsys, afile):
    missing = tmp_path / "does-not-exist.yaml"
    result = run_cli(capsys, ["build", str(missing), "--target", "onnx", "-o", str(afile)])
    assert_refused(result, "exists and is not a folder", SECONDS)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["-o", ""], "-o: found an empty path; expected a file name"),
        (["-o", "{tmp}"], "-o: is a folder; expected a file name"),
        (["-o", "{afile}/r.txt"], "lies under {afile}, which is a file"),
        (["-o", "{tmp}/missing/r.txt"], "-o: the folder {tmp}/missing does not exist"),
        (["-o", "/proc/r.txt"], "cannot create files in /proc"),
        (["-o", "/dev/null"], "-o: exists and is not a regular file"),
        (["--plot", ""], "--plot: found an empty path"),
        (["--plot", "{tmp}/d.svg"], "--plot: is a folder; expected a file name"),
        (["--plot", "{afile}/p.svg"], "lies under {afile}, which is a file"),
        (["--plot", "/proc/p.png"], "cannot create files in /proc"),
        (["-o", "{tmp}/same.svg", "--plot", "{tmp}/same.svg"], "--plot: is also the -o file"),
    ],
)
def test_report_refuses_a_bad_destination(tmp_path, capsys, spec, afile, args, needle):
    (tmp_path / "d.svg").mkdir()
    formatted = [a.format(tmp=tmp_path, afile=afile) for a in args]
    result = run_cli(capsys, ["report", str(spec), *formatted], watch=[tmp_path])
    assert_refused(result, needle.format(tmp=tmp_path, afile=afile), SECONDS)


@pytest.mark.parametrize("where", ["", "{tmp}", "{afile}/s.json", "/proc/s.json"])
def test_schema_refuses_a_bad_destination(tmp_path, capsys, afile, where):
    result = run_cli(capsys, ["schema", "-o", where.format(tmp=tmp_path, afile=afile)])
    assert_refused(result, "error: ", SECONDS)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_folder_is_refused(tmp_path, capsys, spec):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        result = run_cli(capsys, ["build", str(spec), "--target", "onnx", "-o", str(locked)])
        assert_refused(result, f"cannot create files in {locked}: permission denied", SECONDS)
    finally:
        locked.chmod(0o755)


# -- inside an existing folder ------------------------------------------------------------------


def test_a_folder_where_a_file_must_go_is_refused_before_anything_moves(tmp_path, capsys, spec):
    out = tmp_path / "out"
    out.mkdir()
    (out / "hostile.onnx").write_text("old model\n")
    (out / "weights.npz").mkdir()
    result = run_cli(capsys, ["build", str(spec), "--target", "onnx", "-o", str(out)])
    assert_refused(result, "is a folder where the file weights.npz must go", SECONDS)
    assert (out / "hostile.onnx").read_text() == "old model\n"
    assert _leftovers(tmp_path) == []


def test_a_symlink_inside_the_output_folder_is_never_followed(tmp_path):
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    (out / "specs").symlink_to(elsewhere)
    files = {"manifest.jsonl": "{}\n", "specs/v1.yaml": "name: v1\n"}
    with pytest.raises(SpecError) as info:
        write_tree(out, files)
    assert "is a symbolic link; refusing to write through it" in info.value.render()
    assert list(elsewhere.iterdir()) == []
    assert sorted(p.name for p in out.iterdir()) == ["specs"]


def test_a_file_where_a_folder_must_go_is_refused(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "specs").write_text("not a folder\n")
    with pytest.raises(SpecError) as info:
        write_tree(out, {"a.txt": "a", "specs/v1.yaml": "x"})
    assert "is a file where the folder of specs/v1.yaml must go" in info.value.render()
    assert sorted(p.name for p in out.iterdir()) == ["specs"]


def test_a_failure_midway_puts_the_folder_back(tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.txt").write_text("old a\n")
    (out / "b.txt").write_text("old b\n")
    real = os.replace
    calls = []

    def failing(src, dst):
        calls.append(dst)
        if str(dst).endswith("c.txt"):
            raise OSError(28, "No space left on device", str(dst))
        return real(src, dst)

    monkeypatch.setattr(os, "replace", failing)
    with pytest.raises(SpecError) as info:
        write_tree(out, {"a.txt": "new a", "b.txt": "new b", "c.txt": "new c"})
    monkeypatch.undo()
    assert "cannot write: no space left on device" in info.value.render()
    assert (out / "a.txt").read_text() == "old a\n"
    assert (out / "b.txt").read_text() == "old b\n"
    assert sorted(p.name for p in out.iterdir()) == ["a.txt", "b.txt"]


def test_report_and_plot_are_written_together_or_not_at_all(tmp_path, monkeypatch):
    report, plot = tmp_path / "r.txt", tmp_path / "p.svg"
    report.write_text("old report\n")
    real = os.replace

    def failing(src, dst):
        if str(dst) == str(plot):
            raise OSError(5, "Input/output error", str(dst))
        return real(src, dst)

    monkeypatch.setattr(os, "replace", failing)
    with pytest.raises(SpecError):
        write_outputs([FileOutput(report, "new report\n"), FileOutput(plot, "<svg/>", "--plot")])
    monkeypatch.undo()
    assert report.read_text() == "old report\n"
    assert not plot.exists()
    assert _leftovers(tmp_path) == []


def test_a_new_folder_appears_whole(tmp_path):
    out = tmp_path / "a" / "b" / "c"
    write_outputs([TreeOutput(out, {"x.txt": "x", "sub/y.txt": "y"})])
    assert (out / "x.txt").read_text() == "x"
    assert (out / "sub" / "y.txt").read_text() == "y"
    assert _leftovers(tmp_path) == []
    assert oct((out / "x.txt").stat().st_mode & 0o777) == oct(0o666 & ~_umask())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# -- SIGTERM and two runs at once ---------------------------------------------------------------


def test_sigterm_while_writing_leaves_nothing(tmp_path, capsys, spec, monkeypatch):
    import archspec.output as output

    real = output._write_staged
    count = []

    def interrupted(path, data):
        count.append(path)
        if len(count) == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return real(path, data)

    monkeypatch.setattr(output, "_write_staged", interrupted)
    out = tmp_path / "out"
    result = run_cli(capsys, ["build", str(spec), "--target", "c", "-o", str(out)])
    assert result.code == 143
    assert "terminated; nothing was written" in result.err
    assert "Traceback" not in result.err
    assert not out.exists()
    assert _leftovers(tmp_path) == []


def _cli(*args: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONWARNINGS="default")
    return subprocess.Popen(
        [sys.executable, "-m", "archspec", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize("delay", [0.5, 1.5, 3.0])
def test_sigterm_at_any_moment_leaves_all_or_nothing(tmp_path, delay):
    spec = ROOT / "specs" / "mnv2_1.0.yaml"
    out = tmp_path / "out"
    proc = _cli("build", str(spec), "--target", "c", "-o", str(out))
    time.sleep(delay)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert "Traceback" not in err
    assert _leftovers(tmp_path) == []
    complete = sorted(
        ["Makefile", "run.c", "weights.npz"]
        + [f"mobilenet_v2_1_0_224{end}" for end in (".c", ".h", "_weights.c")]
    )
    if proc.returncode != 0:
        assert proc.returncode in (143, -signal.SIGTERM), err
    # all or nothing: a signal after the folder was put in place may still end the process
    # with 143, but the folder it leaves is the whole build
    assert not out.exists() or sorted(p.name for p in out.iterdir()) == complete
    if proc.returncode == 0:
        assert out.exists()


def test_two_builds_into_one_folder_do_not_mix(tmp_path, spec):
    expected = {}
    for classes in ("10", "12"):
        folder = tmp_path / f"ref{classes}"
        proc = _cli(
            "build", str(spec), "--target", "pytorch", "-o", str(folder), "--set",
            f"num_classes={classes}",
        )  # fmt: skip
        assert proc.wait(timeout=120) == 0
        expected[classes] = {p.name: p.read_bytes() for p in folder.iterdir()}
    out = tmp_path / "shared"
    for _ in range(3):
        procs = [
            _cli(
                "build",
                str(spec),
                "--target",
                "pytorch",
                "-o",
                str(out),
                "--set",
                f"num_classes={classes}",
            )  # fmt: skip
            for classes in ("10", "12")
        ]
        for proc in procs:
            _, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err
        got = {p.name: p.read_bytes() for p in out.iterdir()}
        assert got in (expected["10"], expected["12"])
        assert _leftovers(tmp_path) == []


def test_variants_never_writes_through_a_symlink_in_its_folder(tmp_path, capsys):
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    (out / "specs").symlink_to(elsewhere)
    space = ROOT / "specs" / "spaces" / "mnv2_mcu.yaml"
    result = run_cli(capsys, ["variants", str(space), "-o", str(out), "--n", "3"], watch=[tmp_path])
    assert_refused(result, f"{out / 'specs'}: -o: is a symbolic link; refusing to write", 60.0)
    assert list(elsewhere.iterdir()) == []
