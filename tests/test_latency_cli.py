"""The latency flags end to end: `archspec latency-table`, `archspec variants --measure` and
`--latency-table`, `archspec report --latency-table`; bad input exits 2 with nothing written."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from archspec.cli import main
from archspec.latency.machine import machine_info
from tests.test_latency import SPACE, TINY

needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="no gcc on PATH")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    (tmp_path / "tiny.yaml").write_text(TINY)
    (tmp_path / "space.yaml").write_text(SPACE)
    return tmp_path


def rows_of(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_table_then_predicted_sweep(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    table = folder / "table.json"
    code, _, err = run(
        capsys, "latency-table", str(folder / "space.yaml"), "--measure", "ort",
        "--repeats", "3", "-o", str(table),
    )  # fmt: skip
    assert code == 0, err
    data = json.loads(table.read_text())
    assert data["runtime"] == "ort" and data["repeats"] == 3 and data["entries"]
    out_dir = folder / "sweep"
    code, _, err = run(
        capsys, "variants", str(folder / "space.yaml"), "--latency-table", str(table),
        "--where", "latency_ms > 0", "--pareto", "latency_ms,madds:max", "--csv",
        "-o", str(out_dir),
    )  # fmt: skip
    assert code == 0, err
    rows = rows_of(out_dir / "manifest.jsonl")
    assert len(rows) == 8
    for r in rows:
        assert r["latency_predicted"] is True and r["latency_ms"] > 0
        assert 0 < r["latency_min_ms"] <= r["latency_ms"] * 1.5
        assert r["latency_runtime"] == data["runtime_version"]
        assert r["latency_machine"] == data["machine"] and r["latency_missing"] == []
    summary = json.loads((out_dir / "summary.json").read_text())
    assert summary["latency"]["measured"] is False
    assert summary["pareto"] == ["latency_ms:min", "madds:max"]
    header = (out_dir / "manifest.csv").read_text().splitlines()[0].split(",")
    assert "latency_ms" in header
    # the same table gives the same predictions
    again = folder / "again"
    run(capsys, "variants", str(folder / "space.yaml"), "--latency-table", str(table),
        "-o", str(again))  # fmt: skip
    assert [r["latency_ms"] for r in rows_of(again / "manifest.jsonl")] == [
        r["latency_ms"] for r in rows
    ]


@pytest.mark.parametrize("runtime", ["ort", pytest.param("c", marks=needs_gcc)])
def test_measured_sweep(folder: Path, capsys: pytest.CaptureFixture[str], runtime: str) -> None:
    (folder / "one.yaml").write_text(
        SPACE.replace("[0.5, 1.0]", "[0.5]").replace("[16, 24]", "[16]")
    )
    out_dir = folder / "out"
    code, _, err = run(
        capsys, "variants", str(folder / "one.yaml"), "--measure", runtime, "--repeats", "3",
        "--where", "latency_ms < 1e9", "-o", str(out_dir),
    )  # fmt: skip
    assert code == 0, err
    rows = rows_of(out_dir / "manifest.jsonl")
    assert len(rows) == 2
    for r in rows:
        assert r["latency_predicted"] is False
        assert r["latency_ms"] > 0 and r["latency_min_ms"] <= r["latency_ms"]
        assert r["latency_iqr_ms"] >= 0 and r["latency_repeats"] == 3
        assert r["latency_runtime"].startswith("onnxruntime" if runtime == "ort" else "gcc")
        assert r["latency_machine"] == machine_info()


def test_report_shows_predicted_latency_per_row(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table = folder / "table.json"
    run(capsys, "latency-table", str(folder / "space.yaml"), "--measure", "ort",
        "--repeats", "2", "-o", str(table))  # fmt: skip
    code, out, err = run(
        capsys, "report", str(folder / "tiny.yaml"), "--latency-table", str(table),
        "--format", "json",
    )  # fmt: skip
    assert code == 0, err
    lat = json.loads(out)["latency"]
    known = [r["latency_ms"] for r in lat["rows"] if r["latency_ms"] is not None]
    assert lat["latency_ms"] == pytest.approx(sum(known) + lat["overhead_ms"], abs=1e-5)
    assert lat["rows"][0]["counted_in"] == 1  # the stem runs fused with the first block
    code, out, _ = run(capsys, "report", str(folder / "tiny.yaml"), "--latency-table", str(table))
    assert code == 0 and "Predicted latency" in out and "MAdds" in out


def _bad(folder: Path) -> Path:
    bad = folder / "bad.json"
    bad.write_text('{"format": "archspec-latency-table", "version": 99}\n')
    return bad


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["variants", "{space}", "--threads", "2", "-o", "{out}"], "--threads"),
        (["variants", "{space}", "--repeats", "2", "-o", "{out}"], "--repeats"),
        (["variants", "{space}", "--measure", "c", "--threads", "2", "-o", "{out}"], "one thread"),
        (
            ["variants", "{space}", "--measure", "ort", "--latency-table", "{bad}", "-o", "{out}"],
            "one of them",
        ),
        (["variants", "{space}", "--latency-table", "{bad}", "-o", "{out}"], "version"),
        (["variants", "{space}", "--foreign-table", "-o", "{out}"], "--foreign-table"),
        (["variants", "{space}", "--where", "latency_ms < 1", "-o", "{out}"], "latency_ms"),
        (["report", "{tiny}", "--latency-table", "{bad}", "-o", "{out}"], "version"),
        (["report", "{tiny}", "--latency-table", "{missing}", "-o", "{out}"], "cannot read"),
        (["latency-table", "{space}", "--measure", "ort", "--n", "0", "-o", "{out}"], "--n"),
        (["latency-table", "{space}", "--measure", "ort", "--split", "2", "-o", "{out}"], "c only"),
        (["latency-table", "{missing}", "--measure", "ort", "-o", "{out}"], "missing"),
        (
            ["latency-table", "{space}", "--measure", "ort", "--row-tile", "2", "-o", "{out}"],
            "c only",
        ),
        (["latency-table", "{space}", "--measure", "ort", "-o", "{folder}"], "-o"),
    ],
)
def test_errors_exit_2_with_nothing_written(
    folder: Path, capsys: pytest.CaptureFixture[str], argv: list[str], needle: str
) -> None:
    names = {
        "space": str(folder / "space.yaml"),
        "tiny": str(folder / "tiny.yaml"),
        "bad": str(_bad(folder)),
        "missing": str(folder / "missing.json"),
        "out": str(folder / "out"),
        "folder": str(folder),
    }
    before = sorted(p.name for p in folder.iterdir())
    code, out, err = run(capsys, *(a.format(**names) for a in argv))
    assert code == 2
    assert needle in err and "Traceback" not in err
    assert sorted(p.name for p in folder.iterdir()) == before


def test_argparse_refuses_bad_numbers(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for flag, value in (("--repeats", "0"), ("--threads", "0"), ("--repeats", "x")):
        with pytest.raises(SystemExit) as info:
            main(["variants", str(folder / "space.yaml"), "--measure", "ort", flag, value])
        assert info.value.code == 2
    capsys.readouterr()


def test_optuna_objective_and_constraint_on_latency(folder: Path) -> None:
    optuna = pytest.importorskip("optuna")
    from archspec.latency.table import build_table, read_table, render_table
    from archspec.latency.timing import MeasureSettings
    from archspec.lower import lower
    from archspec.variants.space import Space

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = Space.load(folder / "space.yaml")
    graphs = [lower(v.spec) for v in space.grid()]
    path = folder / "t.json"
    path.write_text(render_table(build_table(graphs, MeasureSettings("ort", repeats=2), "t")))
    table = read_table(str(path))
    limit = sorted(predict_all(table, graphs))[len(graphs) // 2]
    cons = space.constraints(latency_ms=limit)

    def objective(trial):
        spec = space.suggest(trial)
        metrics = space.record(trial, spec, cons, latency=table)
        return metrics["latency_ms"], -metrics["madds"]

    sampler = optuna.samplers.NSGAIISampler(seed=0, population_size=4)
    study = optuna.create_study(directions=["minimize", "minimize"], sampler=sampler)
    study.optimize(objective, n_trials=6)
    assert len(study.trials) == 6
    for t in study.trials:
        assert t.user_attrs["latency_predicted"] is True
        assert t.values[0] == t.user_attrs["latency_ms"] > 0
        assert cons(t) == [pytest.approx(t.user_attrs["latency_ms"] - limit)]


def predict_all(table, graphs) -> list[float]:
    from archspec.latency.table import predict

    return [predict(table, g).latency_ms for g in graphs]


def test_table_timed_by_worker_processes(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--jobs 2 sends one task per variant that brings new units to the engine's workers: the
    same entries as in this process."""
    one, two = folder / "one.json", folder / "two.json"
    for path, jobs in ((one, "1"), (two, "2")):
        code, _, err = run(
            capsys, "latency-table", str(folder / "space.yaml"), "--measure", "ort",
            "--repeats", "2", "--jobs", jobs, "-o", str(path),
        )  # fmt: skip
        assert code == 0, err
    ids = [{e["id"] for e in json.loads(p.read_text())["entries"]} for p in (one, two)]
    assert ids[0] == ids[1] and ids[0]
