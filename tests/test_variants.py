"""Search spaces: loading (and its located errors), grid and random sampling, content ids and
de-duplication, skipped illegal variants, metrics against a direct analysis of each spec, the
manifest, `--where`, the Pareto front and its plot, and the `archspec variants` command."""

from __future__ import annotations

import ast
import json
import pickle
import random
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
import yaml

from archspec import analyze_cost, load_spec, load_spec_text, lower
from archspec.analysis.memory import plan_memory
from archspec.cli import main
from archspec.errors import SpecError
from archspec.pareto import Axis, brute_force_mask, front_mask, parse_axes, plot
from archspec.spec import spec_to_dict
from archspec.variants import (
    Outcome,
    Space,
    SpaceDef,
    Variant,
    evaluate,
    evaluate_point,
    read_source,
)

ROOT = Path(__file__).resolve().parent.parent
BASE = ROOT / "specs" / "mnv2_1.0.yaml"
FIGURE5 = ROOT / "specs" / "spaces" / "mnv2_figure5.yaml"
MCU = ROOT / "specs" / "spaces" / "mnv2_mcu.yaml"

# A small base (4 rows) keeps the many-variant tests fast.
SMALL = """\
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


def write_space(tmp_path: Path, body: str, base: str = SMALL) -> Path:
    (tmp_path / "base.yaml").write_text(base)
    path = tmp_path / "space.yaml"
    path.write_text("name: test_space\nbase: base.yaml\n" + body)
    return path


# --------------------------------------------------------------------------------------------
# Figure 5


def test_figure5_has_the_21_networks_of_the_paper() -> None:
    space = Space.load(FIGURE5)
    variants = space.grid()
    pairs = [(v.choices["width_multiplier"], v.choices["resolution"]) for v in variants]
    expected = [(w, r) for w in (0.35, 0.5, 0.75, 1.0) for r in (96, 128, 160, 192, 224)]
    assert pairs == [*expected, (1.4, 224)]
    assert len({v.id for v in variants}) == 21


def test_figure5_metrics_match_a_direct_analysis_of_each_network() -> None:
    space = Space.load(FIGURE5)
    evaluated, skipped = space.evaluate(space.grid())
    assert not skipped and len(evaluated) == 21
    for e in evaluated:
        w, r = e.variant.choices["width_multiplier"], e.variant.choices["resolution"]
        # the independent path: the base file with --set overrides, lowered and analysed
        graph = lower(load_spec(str(BASE), [f"width_multiplier={w}", f"resolution={r}"]))
        cost = analyze_cost(graph)
        assert e.metrics["madds"] == cost.madds
        assert e.metrics["params"] == cost.params
        assert e.metrics["params_with_bn"] == cost.params_with_bn
        op = plan_memory(graph, mode="op", dtype="float32", time_limit=5)
        fused = plan_memory(graph, mode="fused", split=4, dtype="float32", time_limit=5)
        assert e.metrics["peak_bytes_op"] == op.peak_bytes
        assert e.metrics["peak_bytes_fused"] == fused.peak_bytes
        assert e.metrics["memory_exact"] is True
    by_pair = {
        (e.variant.choices["width_multiplier"], e.variant.choices["resolution"]): e
        for e in evaluated
    }
    assert by_pair[(1.0, 224)].metrics["madds"] == 300_774_272
    assert by_pair[(1.0, 224)].metrics["params"] == 3_470_760


def test_resolved_spec_file_round_trips_to_the_same_id_and_costs(tmp_path: Path) -> None:
    space = Space.load(FIGURE5)
    variant = space.grid()[7]
    text = variant.spec_yaml()
    reloaded = load_spec_text(text, "variant.yaml")
    assert spec_to_dict(reloaded) == variant.spec_dict()
    data = yaml.safe_load(text)
    assert data["width_multiplier"] == variant.choices["width_multiplier"]
    assert all("t" in row for row in data["layers"] if row["op"] == "bottleneck")
    assert all("k" in row and "s" in row for row in data["layers"] if row["op"] == "conv2d")
    assert analyze_cost(lower(reloaded)).madds == analyze_cost(lower(variant.spec)).madds
    # the id is the content hash: a space whose base is the written file has the same id
    (tmp_path / "v.yaml").write_text(text)
    again = Space.from_text(f"name: again\nbase: {json.dumps(str(tmp_path / 'v.yaml'))}\n")
    assert again.grid()[0].id == variant.id


# --------------------------------------------------------------------------------------------
# Row choices, sampling, determinism, ids


def test_row_choices_reach_the_graph(tmp_path: Path) -> None:
    space = Space.load(
        write_space(
            tmp_path,
            """\
choices:
  rows:
    - {row: b1, t: [2, 6], n: [1, 3]}
    - {row: 2, k: [3, 5], c_scale: [0.5, 1.0]}
""",
        )
    )
    assert space.labels == ("b1.t", "b1.n", "b2.k", "b2.c_scale")
    variants = space.grid()
    assert len(variants) == 16
    for v in variants:
        g = lower(v.spec)
        c = v.choices
        blocks = [b for b in g.blocks if b.row == 1]
        assert len(blocks) == c["b1.n"]
        expand = g.node(f"{blocks[0].name}_expand")
        assert expand.shape.c == 16 * c["b1.t"]
        b2 = next(b for b in g.blocks if b.row == 2)
        assert g.node(f"{b2.name}_dw").attrs["k"] == c["b2.k"]
        assert g.node(f"{b2.name}_project").shape.c == (16 if c["b2.c_scale"] == 0.5 else 32)


def test_shared_row_choice_and_label(tmp_path: Path) -> None:
    space = Space.load(
        write_space(
            tmp_path,
            """\
choices:
  rows:
    - {row: [b1, 2], t: [3, 5], label: both}
""",
        )
    )
    assert space.labels == ("both.t",)
    for v in space.grid():
        assert v.spec.rows[1].fields["t"] == v.spec.rows[2].fields["t"] == v.choices["both.t"]


def test_grid_order_and_ids_are_deterministic() -> None:
    first = [(v.id, dict(v.choices)) for v in Space.load(MCU).sample(40, seed=3)]
    second = [(v.id, dict(v.choices)) for v in Space.load(MCU).sample(40, seed=3)]
    assert first == second
    other = [v.id for v in Space.load(MCU).sample(40, seed=4)]
    assert other != [i for i, _ in first]


def test_random_sample_is_uniform_over_all_grids_and_without_repeats(tmp_path: Path) -> None:
    space = Space.load(
        write_space(
            tmp_path,
            """\
choices:
  resolution: [32, 48, 64]
  rows:
    - {row: b1, t: [2, 3, 4, 5]}
include:
  - {resolution: 96}
""",
        )
    )
    assert space.size == 13
    points = space.sample_points(13, seed=0)
    assert len(set(points)) == 13  # n >= size: the whole space
    counts = {0: 0, 1: 0}
    for seed in range(300):
        for p in space.sample_points(4, seed):
            counts[p.grid] += 1
    # 1 of 13 points is in the include grid: about 4/13 per draw of 4
    assert 60 < counts[1] < 130, counts
    assert len(space.sample_points(5, 1)) == len(set(space.sample_points(5, 1))) == 5


def test_duplicates_collapse_by_content_hash(tmp_path: Path) -> None:
    # c = 24: c_scale 1.0 and 1.01 both round to 24 channels, the same architecture; width
    # multipliers are kept in the spec, so 1.0 and 1.01 stay distinct
    space = Space.load(
        write_space(
            tmp_path,
            """\
choices:
  rows:
    - {row: b1, c_scale: [1.0, 1.01, 0.5]}
include:
  - {rows: [{row: b1, c: 24}]}
  - {width_multiplier: 1.01}
""",
        )
    )
    assert space.size == 5
    variants = space.grid()
    assert len(variants) == 3  # 1.0 / 1.01 / c: 24 collapse; 0.5 and width 1.01 differ
    assert [v.choices["b1.c_scale"] for v in variants[:2]] == [1.0, 0.5]
    assert variants[2].choices["width_multiplier"] == 1.01
    sweep = space.sweep()
    assert (sweep.points, sweep.duplicates, len(sweep.evaluated)) == (5, 2, 3)
    ids = {v.id for v in variants}
    assert len(ids) == 3 and all(len(i) == 12 for i in ids)


def test_illegal_variants_are_skipped_and_counted(tmp_path: Path) -> None:
    # At 8x8 the stem leaves 4x4, where b1's stride 8 is illegal; an even kernel is illegal
    # at any resolution. Only the lowering finds these, so they are skipped, not fatal.
    space = Space.load(
        write_space(
            tmp_path,
            """\
choices:
  resolution: [8, 32]
  rows:
    - {row: b1, s: [2, 8]}
    - {row: b2, k: [3, 4]}
""",
        )
    )
    evaluated, skipped = space.evaluate(space.grid())
    assert len(evaluated) + len(skipped) == 8
    legal = {(e.variant.choices["resolution"], e.variant.choices["b1.s"]) for e in evaluated}
    assert legal == {(8, 2), (32, 2), (32, 8)}
    assert all(e.variant.choices["b2.k"] == 3 for e in evaluated)
    # the first problem in row order is the reason: b1's stride before b2's kernel
    assert sum(1 for s in skipped if "stride 8 on a 4×4" in s.reason) == 2
    assert sum(1 for s in skipped if "kernel size 4 is even" in s.reason) == 3
    for s in skipped:
        with pytest.raises(SpecError):
            lower(next(v for v in space.grid() if v.id == s.id).spec)


# --------------------------------------------------------------------------------------------
# Bad spaces


BAD_SPACES = [
    ("nmae: x\n", "unknown key 'nmae'", (1, 1)),
    ("choices: {widht_multiplier: [1.0]}\n", "did you mean 'width_multiplier'", (3, 11)),
    ("choices: {resolution: []}\n", "empty list", (3, 23)),
    ("choices: {resolution: [32, 0]}\n", "expected a positive integer", (3, 28)),
    ("choices: {resolution: [32, 32]}\n", "duplicate value", (3, 28)),
    ("choices: {resolution: [32, [32, 32]]}\n", "duplicate value", (3, 28)),
    ("choices: {width_multiplier: [1, 1.0]}\n", "duplicate value", (3, 33)),
    ("description: [1]\n", "expected text", (3, 14)),
    ("choices: {rows: [{row: b1, t: [2], label: 2x}]}\n", "cannot be a label", (3, 43)),
    ("choices: {rows: [{row: 0, c: [8]}, {row: 0, c_scale: [2]}]}\n", "already chosen", (3, 45)),
    ("choices: {width_multiplier: [0.5, 'a']}\n", "expected a number", (3, 35)),
    ("choices: {rows: [{row: stem, t: [2]}]}\n", "has no 't'", (3, 30)),
    ("choices: {rows: [{row: b1, q: [2]}]}\n", "unknown key 'q'", (3, 28)),
    ("choices: {rows: [{row: b1, t: []}]}\n", "empty list", (3, 31)),
    ("choices: {rows: [{row: b1, t: [0]}]}\n", "expected an integer from 1 to 64", (3, 32)),
    ("choices: {rows: [{row: 9, t: [2]}]}\n", "row 9 does not exist", (3, 24)),
    ("choices: {rows: [{row: bl, t: [2]}]}\n", "named rows: stem, b1, b2, head", (3, 24)),
    ("choices: {rows: [{row: head, c_scale: [2]}]}\n", "c_scale needs a number", (3, 30)),
    ("choices: {rows: [{row: b1, c: [8], c_scale: [2]}]}\n", "not both", (3, 36)),
    ("choices: {rows: [{row: b1}]}\n", "no choice given", (3, 18)),
    ("choices: {rows: [{t: [2]}]}\n", "missing key 'row'", (3, 18)),
    ("choices: {rows: [{row: b1, t: [2]}, {row: 1, t: [3]}]}\n", "already chosen", (3, 46)),
    ("include: []\n", "non-empty list", (3, 10)),
    ("memory: {dtype: float64}\n", "expected one of: float32", (3, 17)),
    ("memory: {fused_split: 0}\n", "expected an integer", (3, 23)),
    ("sampling: sometimes\n", "expected one of: auto", (3, 11)),
    ("pareto: madds,accuracy\n", "unknown metric 'accuracy'", (3, 9)),
]


@pytest.mark.parametrize("body, words, where", BAD_SPACES)
def test_bad_spaces_are_located(
    tmp_path: Path, body: str, words: str, where: tuple[int, int]
) -> None:
    path = write_space(tmp_path, body)
    with pytest.raises(SpecError) as info:
        Space.load(path)
    err = info.value
    assert words in err.render()
    assert err.location is not None
    if where[0] == 1:  # the error is about the space as a whole or its first key
        assert err.location.file == str(path)
    else:
        assert (err.location.file, err.location.line, err.location.column) == (str(path), *where)


def test_bad_base_is_located_in_the_base_file(tmp_path: Path) -> None:
    path = write_space(tmp_path, "", base=SMALL.replace("t: 4, c: 24", "t: 4, c: 24, z: 1"))
    with pytest.raises(SpecError) as info:
        Space.load(path)
    assert info.value.location is not None
    assert info.value.location.file.endswith("base.yaml")
    assert info.value.location.line == 6
    missing = tmp_path / "other.yaml"
    missing.write_text("name: x\nbase: nowhere.yaml\n")
    with pytest.raises(SpecError, match="no spec file"):
        Space.load(missing)


def test_inline_base(tmp_path: Path) -> None:
    indented = "\n".join("  " + line for line in SMALL.splitlines())
    path = tmp_path / "inline.yaml"
    path.write_text(f"name: inline\nbase:\n{indented}\nchoices: {{resolution: [32, 64]}}\n")
    assert [v.choices["resolution"] for v in Space.load(path).grid()] == [32, 64]


# --------------------------------------------------------------------------------------------
# Pareto


@pytest.mark.parametrize("senses", [("min", "min"), ("min", "max"), ("max", "min"), ("max", "max")])
def test_pareto_front_matches_brute_force_on_random_points(senses: tuple[str, str]) -> None:
    rng = random.Random(11)
    for _ in range(300):
        n = rng.randint(0, 60)
        spread = rng.choice([3, 10, 1000])  # small spreads force ties and duplicates
        points = [(rng.randint(0, spread), rng.randint(0, spread)) for _ in range(n)]
        assert front_mask(points, senses) == brute_force_mask(points, senses)
        floats = [(rng.random(), rng.random()) for _ in range(n)]
        assert front_mask(floats, senses) == brute_force_mask(floats, senses)


def test_pareto_front_examples() -> None:
    points = [(1, 5), (2, 2), (3, 3), (5, 1), (2, 2), (1, 6)]
    assert front_mask(points) == [True, True, False, True, True, False]
    assert front_mask(points, ("min", "max")) == [False, False, False, False, False, True]


def test_parse_axes() -> None:
    metrics = ["madds", "params"]
    assert parse_axes("madds,params:max", metrics) == (Axis("madds"), Axis("params", "max"))
    for bad in ("madds", "madds,madds", "madds,params:up", "madds,accuracy", "madds,,params"):
        with pytest.raises(SpecError):
            parse_axes(bad, metrics)


def test_plot_is_deterministic_and_in_the_requested_format() -> None:
    points = [(1.0, 3.0), (2.0, 1.0), (3.0, 3.5)]
    mask = front_mask(points)
    axes = (Axis("madds"), Axis("params", "max"))
    svg = plot(points, mask, axes, "svg", title="t")
    assert svg == plot(points, mask, axes, "svg", title="t")
    assert svg.lstrip().startswith(b"<?xml") and b"<svg" in svg
    png = plot(points, mask, axes, "png")
    assert png.startswith(b"\x89PNG") and png == plot(points, mask, axes, "png")


# --------------------------------------------------------------------------------------------
# The command


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["variants", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_manifest_on_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, str(FIGURE5), "--where", "madds <= 300e6 and resolution >= 160")
    assert code == 0
    rows = [json.loads(line) for line in out.splitlines()]
    assert len(rows) == 11  # 4 widths x 3 resolutions, minus 1.0 at 224 (300.8M); not 1.4
    assert all(r["madds"] <= 300e6 and r["choices"]["resolution"] >= 160 for r in rows)
    assert list(rows[0]) == [
        "id",
        "name",
        "choices",
        "madds",
        "params",
        "params_with_bn",
        "peak_bytes_op",
        "peak_bytes_fused",
        "memory_exact",
        "pareto",
    ]
    # the front (madds:min, params:max) among the kept rows, by brute force
    pts = [(r["madds"], r["params"]) for r in rows]
    assert [r["pareto"] for r in rows] == brute_force_mask(pts, ("min", "max"))
    assert "10 filtered out by --where; 11 in the manifest" in err


def test_cli_writes_specs_manifest_csv_and_plot(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_dir = tmp_path / "out"
    plot_file = tmp_path / "front.svg"
    code, out, err = run(
        capsys,
        str(FIGURE5),
        "-o",
        str(out_dir),
        "--csv",
        "--pareto",
        "peak_bytes_fused,madds:max",
        "--plot",
        str(plot_file),
    )
    assert code == 0 and out == ""
    rows = [json.loads(x) for x in (out_dir / "manifest.jsonl").read_text().splitlines()]
    assert len(rows) == 21
    for r in rows:
        spec = load_spec(str(out_dir / "specs" / f"{r['id']}.yaml"))
        assert analyze_cost(lower(spec)).madds == r["madds"]
    csv_lines = (out_dir / "manifest.csv").read_text().splitlines()
    assert csv_lines[0].startswith("id,name,width_multiplier,resolution,madds,")
    assert len(csv_lines) == 22
    summary = json.loads((out_dir / "summary.json").read_text())
    assert summary["pareto"] == ["peak_bytes_fused:min", "madds:max"]
    assert summary["pareto_front"] == sum(r["pareto"] for r in rows) > 0
    assert plot_file.read_bytes().lstrip().startswith(b"<?xml")


def test_cli_output_is_identical_across_runs_and_jobs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trees = []
    for i, jobs in enumerate(("1", "2", "1")):
        out_dir = tmp_path / f"out{i}"
        code, _, _ = run(
            capsys,
            str(MCU),
            "--n",
            "24",
            "--seed",
            "5",
            "--jobs",
            jobs,
            "-o",
            str(out_dir),
            "--csv",
            "--plot",
            str(tmp_path / f"p{i}.svg"),
        )
        assert code == 0
        trees.append(
            {
                p.relative_to(out_dir).as_posix(): p.read_bytes()
                for p in sorted(out_dir.rglob("*"))
                if p.is_file()
            }
        )
        trees[-1]["plot"] = (tmp_path / f"p{i}.svg").read_bytes()
    assert trees[0] == trees[1] == trees[2]
    assert len([k for k in trees[0] if k.startswith("specs/")]) > 10


def test_cli_reports_skipped_variants(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    space = write_space(tmp_path, "choices:\n  rows:\n    - {row: b2, k: [3, 4, 5]}\n")
    out_dir = tmp_path / "out"
    code, _, err = run(capsys, str(space), "-o", str(out_dir))
    assert code == 0
    assert "1 skipped as illegal" in err and "even" in err
    skipped = [json.loads(x) for x in (out_dir / "skipped.jsonl").read_text().splitlines()]
    assert len(skipped) == 1 and skipped[0]["choices"]["b2.k"] == 4
    summary = json.loads((out_dir / "summary.json").read_text())
    assert summary["skipped"] == 1 and summary["skip_reasons"][0]["count"] == 1


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--where", "madds <= 300e6 and"], "--where:1:19"),
        (["--where", "__import__('os').system('true')"], "--where:1:12"),
        (["--where", "accuracy > 0.7"], "unknown metric 'accuracy'"),
        (["--pareto", "madds"], "expected two metrics"),
        (["--plot", "front.pdf"], ".png or .svg"),
        (["--n", "0"], "at least one"),
    ],
)
def test_cli_bad_input_exits_2_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], words: str
) -> None:
    out_dir = tmp_path / "out"
    code, out, err = run(capsys, str(FIGURE5), "-o", str(out_dir), *argv)
    assert code == 2
    assert words in err and "Traceback" not in err
    assert not out_dir.exists() and out == ""


def test_cli_bad_space_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    space = write_space(tmp_path, "choices: {resolution: []}\n")
    code, _, err = run(capsys, str(space))
    assert code == 2 and f"{space}:3:23" in err and "empty list" in err


# --------------------------------------------------------------------------------------------
# Structure: one-way imports, and one point evaluated by a pure function

# The package's modules, each allowed to import only those before it.
MODULE_ORDER = (
    "checks",
    "model",
    "parse",
    "sampling",
    "evaluation",
    "timing",
    "engine",
    "ray_engine",
    "journal",
    "search",
    "manifest",
    "space",
    "streaming",
    "command",
)


def _package_imports(path: Path) -> set[str]:
    """Modules of archspec.variants that a source file imports, at any depth."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "archspec.variants":
                found.update(a.name for a in node.names)
            elif node.module.startswith("archspec.variants."):
                found.add(node.module.split(".")[2])
        elif isinstance(node, ast.Import):
            found.update(
                a.name.split(".")[2] for a in node.names if a.name.startswith("archspec.variants.")
            )
    return found


def test_package_modules_import_one_way_and_define_no_mixins() -> None:
    folder = ROOT / "archspec" / "variants"
    modules = sorted(p.stem for p in folder.glob("*.py") if p.stem != "__init__")
    assert sorted(MODULE_ORDER) == modules
    for i, name in enumerate(MODULE_ORDER):
        imported = _package_imports(folder / f"{name}.py")
        assert imported <= set(MODULE_ORDER[:i]), (name, imported - set(MODULE_ORDER[:i]))
        tree = ast.parse((folder / f"{name}.py").read_text(encoding="utf-8"))
        for cls in (n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)):
            bases = {b.id for b in cls.bases if isinstance(b, ast.Name)}
            assert bases <= {"SpaceDef"}, (name, cls.name, bases)


def test_evaluate_point_is_a_pure_function_of_plain_data(tmp_path: Path) -> None:
    path = write_space(
        tmp_path,
        """\
choices:
  resolution: [8, 32]
  rows:
    - {row: b1, s: [2, 8]}
""",
    )
    space = Space.load(path)
    again = read_source(pickle.loads(pickle.dumps(space.source)))
    evaluated, skipped = space.evaluate(space.grid())
    by_id = {e.variant.id: dict(e.metrics) for e in evaluated}
    reasons = {s.id: s.reason for s in skipped}
    assert len(by_id) == 3 and len(reasons) == 1
    for i in range(space.size):
        point = space.point(i)
        outcome = evaluate_point(again, point)
        assert pickle.loads(pickle.dumps(outcome)) == outcome
        assert outcome == evaluate_point(space, point)
        assert (outcome.point, outcome.id) == (point, space.variant(point).id)
        if outcome.metrics is None:
            assert outcome.reason == reasons[outcome.id]
        else:
            assert dict(outcome.metrics) == by_id[outcome.id] and outcome.reason is None


def test_an_engine_can_run_points_elsewhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # an engine that, like a remote one, gets only the space's source and the points, reads the
    # space again in another folder, and finishes the points out of order
    def elsewhere(space: SpaceDef, variants: Sequence[Variant]) -> Iterator[Outcome]:
        monkeypatch.chdir(ROOT)
        remote = read_source(pickle.loads(pickle.dumps(space.source)))
        points = [pickle.loads(pickle.dumps(v.point)) for v in variants]
        done = {p: evaluate_point(remote, p) for p in reversed(points)}
        return iter([done[p] for p in points])

    write_space(tmp_path, "")
    monkeypatch.chdir(tmp_path)  # a text space takes its relative base from this folder
    space = Space.from_text(
        "name: s\nbase: base.yaml\nchoices:\n  width_multiplier: [0.5, 1.0]\n"
        "  rows: [{row: b2, k: [3, 4, 5]}]\n"
    )
    variants = space.grid()
    local = evaluate(space, variants)
    remote = evaluate(space, variants, engine=elsewhere)
    assert [(e.variant.id, dict(e.metrics)) for e in local[0]] == [
        (e.variant.id, dict(e.metrics)) for e in remote[0]
    ]
    assert local[1] == remote[1] and len(local[0]) == 4 and len(local[1]) == 2
