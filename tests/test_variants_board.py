"""`archspec variants SPACE --board NAME`: only variants whose int8 C build fits the board are
kept, each with its SRAM and flash needs (checked against `board_fit` of the variant's own spec,
read back from the written specs), the default front is MAdds against SRAM, and the options are
checked before any work."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from archspec import load_spec_text, lower
from archspec.boards import get_board
from archspec.boards_fit import board_fit
from archspec.cli import main
from archspec.pareto import brute_force_mask
from archspec.variants.engine import Work, evaluate, local_engine
from archspec.variants.evaluation import BoardRequest, evaluate_point
from archspec.variants.space import Space

ROOT = Path(__file__).resolve().parent.parent
MCU = ROOT / "specs" / "spaces" / "mnv2_mcu.yaml"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["variants", *argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("board") / "sweep"
    code = main(
        ["variants", str(MCU), "--board", "stm32f746", "--n", "40", "--seed", "3"]
        + ["--row-tile", "2", "-o", str(folder)]
    )
    assert code == 0
    return folder


def rows_of(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "manifest.jsonl").read_text().splitlines()]


def test_kept_variants_fit_and_their_needs_are_board_fit_of_their_spec(sweep_dir: Path) -> None:
    board = get_board("stm32f746")
    rows = rows_of(sweep_dir)
    assert rows
    for row in rows:
        text = (sweep_dir / "specs" / f"{row['id']}.yaml").read_text()
        graph = lower(load_spec_text(text, "variant.yaml"))
        fit = board_fit(graph, board, 4, 2, "int8")  # the space's fused_split, --row-tile 2
        assert fit.fits
        assert row["sram_bytes"] == fit.sram_bytes <= board.sram.size
        assert row["flash_bytes"] == fit.flash_bytes <= board.flash.size


def test_the_variants_left_out_are_exactly_those_that_do_not_fit(sweep_dir: Path) -> None:
    summary = json.loads((sweep_dir / "summary.json").read_text())
    space = Space.load(str(MCU))
    _, points = space.plan(40, 3)
    from archspec.variants.sampling import unique

    variants, _, _ = unique(space, points)
    board = get_board("stm32f746")
    fitting, too_big = set(), 0
    for v in variants:
        try:
            graph = lower(v.spec)
        except Exception:  # an illegal variant: skipped, counted elsewhere
            continue
        if board_fit(graph, board, 4, 2, "int8").fits:
            fitting.add(v.id)
        else:
            too_big += 1
    assert {r["id"] for r in rows_of(sweep_dir)} == fitting
    assert summary["board"]["did_not_fit"] == too_big > 0
    assert summary["board"]["name"] == "stm32f746"
    assert summary["pareto"] == ["sram_bytes:min", "madds:max"]


def test_the_default_front_is_madds_against_sram(sweep_dir: Path) -> None:
    rows = rows_of(sweep_dir)
    points = [(r["sram_bytes"], r["madds"]) for r in rows]
    expected = brute_force_mask(points, ("min", "max"))
    assert [r["pareto"] for r in rows] == expected


def test_board_metrics_in_where_and_pareto(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys,
        str(MCU),
        "--board",
        "stm32h743",
        "--n",
        "20",
        "--where",
        "sram_bytes <= 200e3 and flash_bytes < 1e6",
        "--pareto",
        "flash_bytes,madds:max",
    )
    assert code == 0
    rows = [json.loads(line) for line in out.splitlines()]
    assert rows and all(r["sram_bytes"] <= 200e3 and r["flash_bytes"] < 1e6 for r in rows)


def test_worker_processes_give_the_same_outcomes() -> None:
    space = Space.load(str(MCU))
    _, points = space.plan(12, 5)
    from archspec.variants.sampling import unique

    variants, _, _ = unique(space, points)
    request = BoardRequest(get_board("stm32f746"), space.fused_split, None)
    import functools

    work = Work(functools.partial(evaluate_point, board=request))
    one = evaluate(space, variants, engine=local_engine(1), work=work)
    two = evaluate(space, variants, engine=local_engine(2), work=work)
    assert one == two
    assert all("sram_bytes" in e.metrics for e in one[0])


@pytest.mark.parametrize(
    ("argv", "field"),
    [
        (["--boards", "x.yaml"], "--boards"),
        (["--row-tile", "2"], "--row-tile"),
        (["--board", "no_such_board"], "--board"),
        (["--board", "stm32f746", "--where", "sram_bytes < 1 and latency_ms < 2"], "--where"),
    ],
)
def test_bad_board_options_exit_2_with_nothing_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], field: str
) -> None:
    out = tmp_path / "out"
    code, _, err = run(capsys, str(MCU), "--n", "5", "-o", str(out), *argv)
    assert code == 2
    assert field in err and "Traceback" not in err
    assert not out.exists()


def test_a_user_board_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    board = yaml.safe_load((ROOT / "archspec" / "boards.yaml").read_text())["boards"]["stm32f746"]
    tiny = dict(board, sram=dict(board["sram"], size="64K"), description="a small part")
    path = tmp_path / "boards.yaml"
    path.write_text(yaml.safe_dump({"boards": {"tiny_m7": tiny}}))
    code, out, err = run(capsys, str(MCU), "--n", "30", "--board", "tiny_m7", "--boards", str(path))
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert all(r["sram_bytes"] <= 64 * 1024 for r in rows)
    assert "do not fit tiny_m7" in err


def test_an_n_that_covers_the_space_is_called_its_grid(capsys: pytest.CaptureFixture[str]) -> None:
    space = Space.load(str(MCU))
    from archspec.variants.sampling import plan

    how, points = plan(space, space.size, 0)
    assert how == f"grid of {space.size:,} points (--n {space.size:,} covers it)"
    assert len(points) == space.size
    how, points = plan(space, 10, 0)
    assert how.startswith("random sample of 10 of") and len(points) == 10
