"""The wheel ships the top-level templates/ and works outside the checkout."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    # Build from a copy of the tracked sources: a build in the checkout would leave build/
    # behind, whose stale files a later build could pick up.
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    for name in ("archspec", "templates"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    wheels = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(wheels),
            str(source),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = wheels.glob("archspec-*.whl")
    target = tmp_path_factory.mktemp("site")
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(target)
    return target


def _run(site: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(site), "KERAS_BACKEND": "torch"}
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True)


def test_wheel_contains_every_template(installed):
    shipped = {
        p.relative_to(installed / "archspec" / "_templates")
        for p in (installed / "archspec" / "_templates").rglob("*.j2")
    }
    source = {p.relative_to(ROOT / "templates") for p in (ROOT / "templates").rglob("*.j2")}
    assert source and shipped == source


def test_installed_wheel_runs_outside_the_checkout(installed, tmp_path):
    probe = _run(
        installed,
        tmp_path,
        "-c",
        "import archspec, archspec.emit as e; print(archspec.__file__); print(e.templates_root())",
    )
    assert probe.returncode == 0, probe.stderr
    module_file, templates = probe.stdout.split()
    assert module_file.startswith(str(installed))
    assert templates.startswith(str(installed))
    spec = tmp_path / "mnv2.yaml"
    spec.write_text((ROOT / "specs" / "mnv2_1.0.yaml").read_text())
    report = _run(installed, tmp_path, "-m", "archspec", "report", str(spec), "--format", "json")
    assert report.returncode == 0, report.stderr
    assert '"madds": 300774272' in report.stdout


@pytest.mark.parametrize("target", ["onnx", "pytorch", "keras"])
def test_installed_wheel_builds_every_python_target(installed, tmp_path, target):
    spec = tmp_path / "mnv2.yaml"
    spec.write_text((ROOT / "specs" / "mnv2_1.0.yaml").read_text())
    out = tmp_path / "out"
    build = _run(
        installed,
        tmp_path,
        "-m",
        "archspec",
        "build",
        str(spec),
        "--target",
        target,
        "-o",
        str(out),
        "--set",
        "width_multiplier=0.35",
        "--set",
        "resolution=96",
    )
    assert build.returncode == 0, build.stderr
    assert (out / "weights.npz").is_file()
    files = sorted(p.name for p in out.iterdir())
    assert len(files) == 2, files
