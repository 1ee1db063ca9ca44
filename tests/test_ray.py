"""The Ray engine on a local two-CPU Ray cluster started once for the test session: the same
manifest as the local engine, a killed worker loses and duplicates nothing, a variant that kills
every worker is recorded in skipped.jsonl and done by a rerun, timing tasks never outnumber the
cores, `--address` joins a running cluster, and a missing Ray is exit 2 with a message."""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from archspec.cli import main
from archspec.variants.engine import Work, evaluate, local_engine
from archspec.variants.evaluation import evaluate_point
from archspec.variants.journal import JOURNAL
from archspec.variants.model import Outcome, Point, SpaceDef
from archspec.variants.ray_engine import FAULT_ENV, RESOURCE, RayEngine
from archspec.variants.space import Space
from archspec.variants.streaming import map_in_order
from archspec.variants.timing import REGISTRY_ENV

# one Ray cluster for the whole run: under `pytest -n 2 --dist loadgroup` these tests share a worker
pytestmark = pytest.mark.xdist_group("ray")

ROOT = Path(__file__).resolve().parent.parent
FIGURE5 = ROOT / "specs" / "spaces" / "mnv2_figure5.yaml"

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
# 18 points: 12 legal, 6 with an even kernel (illegal)
CHOICES = """\
choices:
  width_multiplier: [0.5, 0.75, 1.0]
  resolution: [32, 48]
  rows:
    - {row: b2, k: [3, 4, 5]}
"""


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A local Ray instance with 2 CPUs (and 2 timing slots) for the session; its address."""
    ray = pytest.importorskip("ray", reason="ray is not installed: pip install 'archspec[ray]'")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # the workers count side-by-side timing tasks in a registry of this session's own
    folder = tmp_path_factory.mktemp("timing")
    os.environ[REGISTRY_ENV] = str(folder / "registry.json")
    context = ray.init(
        num_cpus=2,
        resources={RESOURCE: 2},
        include_dashboard=False,
        logging_level=logging.ERROR,
        log_to_driver=False,
    )
    yield context.address_info["gcs_address"]
    ray.shutdown()
    del os.environ[REGISTRY_ENV]


@pytest.fixture
def space(tmp_path: Path) -> Path:
    (tmp_path / "base.yaml").write_text(BASE)
    path = tmp_path / "space.yaml"
    path.write_text("name: ray_space\nbase: base.yaml\n" + CHOICES)
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


def test_ray_gives_the_manifest_of_the_local_engine(ray_cluster, tmp_path, space, capsys):
    for path in (space, FIGURE5):
        local, remote = tmp_path / f"local-{path.stem}", tmp_path / f"ray-{path.stem}"
        assert run(capsys, str(path), "-o", str(local), "--csv")[0] == 0
        code, err = run(capsys, str(path), "-o", str(remote), "--csv", "--engine", "ray")
        assert code == 0, err
        assert tree(remote) == tree(local)
    assert len((tmp_path / "ray-space" / "skipped.jsonl").read_text().splitlines()) == 6


@pytest.mark.parametrize("batch", [1, 4])
def test_ray_engine_outcomes_equal_local_ones(ray_cluster, space, batch):
    s = Space.load(space)
    variants = s.grid()
    local = evaluate(s, variants)
    seen: list[str] = []
    remote = evaluate(
        s, variants, engine=RayEngine(batch=batch), on_outcome=lambda o: seen.append(o.id)
    )
    assert sorted(seen) == sorted(v.id for v in variants)  # each exactly once
    assert [(e.variant.id, dict(e.metrics)) for e in remote[0]] == [
        (e.variant.id, dict(e.metrics)) for e in local[0]
    ]
    assert remote[1] == local[1] and len(remote[0]) == 12


@pytest.mark.parametrize("batch", [1, 5])
def test_a_killed_worker_loses_and_duplicates_no_row(
    ray_cluster, tmp_path, space, monkeypatch, batch
):
    s = Space.load(space)
    variants = s.grid()
    local = evaluate(s, variants)
    marker = tmp_path / "killed"
    monkeypatch.setenv(FAULT_ENV, f"once:{marker}")
    seen: list[str] = []
    remote = evaluate(
        s, variants, engine=RayEngine(batch=batch), on_outcome=lambda o: seen.append(o.id)
    )
    assert marker.exists()  # a worker did exit in the middle of its task
    assert sorted(seen) == sorted(v.id for v in variants)
    assert [(e.variant.id, dict(e.metrics)) for e in remote[0]] == [
        (e.variant.id, dict(e.metrics)) for e in local[0]
    ]
    assert remote[1] == local[1]


def test_a_killed_worker_in_a_cli_sweep(ray_cluster, tmp_path, space, capsys, monkeypatch):
    local, remote = tmp_path / "local", tmp_path / "ray"
    assert run(capsys, str(space), "-o", str(local))[0] == 0
    monkeypatch.setenv(FAULT_ENV, f"once:{tmp_path / 'killed'}")
    code, err = run(capsys, str(space), "-o", str(remote), "--engine", "ray")
    assert code == 0, err
    assert (tmp_path / "killed").exists()
    assert tree(remote) == tree(local)


def test_a_variant_that_kills_every_worker_is_skipped_then_redone(
    ray_cluster, tmp_path, space, capsys, monkeypatch
):
    local, remote = tmp_path / "local", tmp_path / "ray"
    assert run(capsys, str(space), "-o", str(local))[0] == 0
    victim = json.loads((local / "manifest.jsonl").read_text().splitlines()[3])["id"]
    monkeypatch.setenv(FAULT_ENV, f"always:{victim}")
    code, err = run(capsys, str(space), "-o", str(remote), "--engine", "ray")
    assert code == 0, err
    assert "1 failed (workers died; a rerun tries them again)" in err
    rows = [json.loads(x) for x in (remote / "manifest.jsonl").read_text().splitlines()]
    assert len(rows) == 11 and victim not in {r["id"] for r in rows}
    skipped = [json.loads(x) for x in (remote / "skipped.jsonl").read_text().splitlines()]
    failed = [s for s in skipped if s.get("failed")]
    assert [s["id"] for s in failed] == [victim]
    assert failed[0]["reason"].startswith("evaluation failed 3 times: ")
    assert json.loads((remote / "summary.json").read_text())["failed"] == 1
    # the failed variant is not journaled: a run stopped before its final files keeps the
    # others, and its rerun (workers healthy again) evaluates the failed variant alone
    stopped = tmp_path / "stopped"
    with monkeypatch.context() as patch:
        patch.setattr("archspec.variants.command.write_outputs", _interrupt)
        code, err = run(capsys, str(space), "-o", str(stopped), "--engine", "ray")
    assert code == 130 and "rerun the same command to resume" not in err
    journaled = [json.loads(x) for x in (stopped / JOURNAL).read_text().splitlines()[1:]]
    assert len(journaled) == 17 and victim not in {r["id"] for r in journaled}
    monkeypatch.delenv(FAULT_ENV)
    code, err = run(capsys, str(space), "-o", str(stopped), "--engine", "ray")
    assert code == 0 and "resuming: 17 of 18 variants" in err
    assert tree(stopped) == tree(local)


def _interrupt(*args: object) -> None:
    raise KeyboardInterrupt


def _factorial_mod(modulus: int, x: int) -> int:
    return math.factorial(x) % modulus


def _sleepy(space: SpaceDef, point: Point, seconds: float) -> Outcome:
    """A timing task stand-in: evaluate, then hold the CPU slot a while."""
    time.sleep(seconds)
    return evaluate_point(space, point)


@pytest.mark.parametrize("threads, most", [(1, 2), (2, 1)])
def test_timing_tasks_never_outnumber_the_cores(ray_cluster, space, threads, most):
    s = Space.load(space)
    variants = s.grid()[:6]
    work = Work(functools.partial(_sleepy, seconds=0.5), threads=threads)
    evaluated, _ = evaluate(s, variants, engine=RayEngine(), work=work)
    counts = [e.metrics["side_by_side"] for e in evaluated]
    # two cores: two one-thread tasks at once (and they do run side by side), or one two-thread
    assert len(counts) == 4 and all(1 <= c <= most for c in counts) and max(counts) == most


def test_address_joins_a_running_cluster(ray_cluster, tmp_path, space, capsys):
    local, remote = tmp_path / "local", tmp_path / "ray"
    assert run(capsys, str(space), "-o", str(local))[0] == 0
    argv = ["variants", str(space), "-o", str(remote), "--engine", "ray", "--address", ray_cluster]
    proc = subprocess.run(
        [sys.executable, "-m", "archspec", *argv], cwd=ROOT, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert tree(remote) == tree(local)


def test_an_address_without_ray_engine_is_refused(tmp_path, space, capsys):
    out = tmp_path / "out"
    code, err = run(capsys, str(space), "-o", str(out), "--address", "localhost:1")
    assert code == 2 and "--address: found 'localhost:1'; an address only makes sense" in err
    assert not out.exists()


def test_ray_absent_exits_2_with_a_message(tmp_path, space, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    out = tmp_path / "out"
    code, err = run(capsys, str(space), "-o", str(out), "--engine", "ray")
    assert code == 2 and "Traceback" not in err
    assert "--engine: the Ray engine needs the package 'ray'" in err
    assert "pip install 'archspec[ray]'" in err
    assert not out.exists()


@pytest.mark.parametrize("threads", [0, 1])
def test_map_runs_any_function_on_every_engine(ray_cluster, threads):
    items = list(range(30))
    expected = [math.factorial(x) % 1009 for x in items]
    for engine in (local_engine(1), local_engine(2), RayEngine()):
        got = map_in_order(engine, functools.partial(_factorial_mod, 1009), items, threads)
        assert got == expected


def test_an_address_nobody_listens_on_is_refused_at_once(tmp_path, space, capsys):
    pytest.importorskip("ray", reason="ray is not installed: pip install 'archspec[ray]'")
    with socket.socket() as free:  # a port that was free a moment ago
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    out = tmp_path / "out"
    began = time.monotonic()
    code, err = run(
        capsys, str(space), "-o", str(out), "--engine", "ray", "--address", f"127.0.0.1:{port}"
    )
    assert code == 2 and "Traceback" not in err
    assert f"--address: cannot join a Ray cluster at '127.0.0.1:{port}'" in err
    assert not out.exists() and time.monotonic() - began < 30


# -- measured latency on Ray: the same rows and table entries as the local engine ---------------

TIMING_FIELDS = ("latency_ms", "latency_iqr_ms", "latency_min_ms", "side_by_side")


def _without_timings(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING_FIELDS and k != "pareto"} for r in rows]


def test_measured_sweep_on_ray_equals_local(ray_cluster, tmp_path, space, capsys):
    rows = {}
    for engine in ("local", "ray"):
        out = tmp_path / engine
        code, err = run(
            capsys, str(space), "--measure", "ort", "--repeats", "2", "--engine", engine,
            "-o", str(out),
        )  # fmt: skip
        assert code == 0, err
        lines = (out / "manifest.jsonl").read_text().splitlines()
        rows[engine] = [json.loads(line) for line in lines]
    assert len(rows["ray"]) == 12
    assert _without_timings(rows["ray"]) == _without_timings(rows["local"])
    for r in rows["ray"]:
        assert r["latency_ms"] > 0 and 1 <= r["side_by_side"] <= 2


def test_latency_table_on_ray_has_the_local_entries(ray_cluster, tmp_path, space, capsys):
    entries = {}
    for engine in ("local", "ray"):
        path = tmp_path / f"{engine}.json"
        code = main(
            ["latency-table", str(space), "--measure", "ort", "--repeats", "2"]
            + ["--engine", engine, "-o", str(path)]
        )
        assert code == 0, capsys.readouterr().err
        table = json.loads(path.read_text())
        entries[engine] = {e["id"]: (e["kind"], e["what"], e["graph"]) for e in table["entries"]}
    assert entries["ray"] == entries["local"] and entries["local"]
