"""Measured latency and latency tables (issue 13): timing a graph with ONNX Runtime and with the C
target, units, the table's contents, prediction, determinism and the table file's validation.
Timings use tiny networks and few runs; no test asserts on speed."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest

from archspec.analysis.memory import fused_ops
from archspec.errors import SpecError
from archspec.latency import measure as measure_mod
from archspec.latency import ort as ort_mod
from archspec.latency.machine import machine_info
from archspec.latency.table import (
    build_table,
    check_machine,
    predict,
    read_table,
    render_table,
)
from archspec.latency.timing import MeasureSettings
from archspec.latency.units import graph_digest, unit_graph, units_of
from archspec.lower import lower
from archspec.spec import load_spec_text
from archspec.variants.space import Space

TINY = """\
name: tiny
input: {resolution: 16, channels: 3}
width_multiplier: 1.0
num_classes: 10
layers:
  - {op: conv2d, c: 8, s: 2, k: 3}
  - {op: bottleneck, t: 1, c: 8, n: 1, s: 1}
  - {op: bottleneck, t: 4, c: 16, n: 2, s: 2}
  - {op: conv2d, c: 32, k: 1}
  - {op: avgpool, global: true}
  - {op: fc, c: num_classes}
"""

SPACE = """\
name: tinyspace
base: tiny.yaml
sampling: grid
choices:
  width_multiplier: [0.5, 1.0]
  resolution: [16, 24]
  rows:
    - {row: 2, t: [2, 4]}
"""

needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="no gcc on PATH")


@pytest.fixture()
def space_dir(tmp_path: Path) -> Path:
    (tmp_path / "tiny.yaml").write_text(TINY)
    (tmp_path / "space.yaml").write_text(SPACE)
    return tmp_path


def tiny_graph(**overrides: object):
    text = TINY
    for key, value in overrides.items():
        text = text.replace(f"{key}: 1.0", f"{key}: {value}")
    return lower(load_spec_text(text, "tiny.yaml"))


def space_graphs(folder: Path):
    space = Space.load(folder / "space.yaml")
    return [lower(v.spec) for v in space.grid()]


@pytest.fixture(scope="module")
def ort_table_text(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    folder = tmp_path_factory.mktemp("table")
    (folder / "tiny.yaml").write_text(TINY)
    (folder / "space.yaml").write_text(SPACE)
    graphs = space_graphs(folder)
    table = build_table(graphs, MeasureSettings("ort", repeats=3), "tinyspace", calibrate=3)
    path = folder / "table.json"
    path.write_text(render_table(table))
    return folder, path.read_text()


def _check_timing(t) -> None:
    assert math.isfinite(t.median_ms) and t.median_ms > 0
    assert 0 < t.min_ms <= t.median_ms
    assert t.p25_ms <= t.median_ms <= t.p75_ms and t.iqr_ms >= 0


@pytest.mark.parametrize("runtime", ["ort", pytest.param("c", marks=needs_gcc)])
def test_measure_tiny_spec(runtime: str) -> None:
    settings = MeasureSettings(runtime, repeats=4, warmup=1)
    t = measure_mod.time_graph(tiny_graph(), settings)
    _check_timing(t)
    assert t.repeats == 4
    version = measure_mod.runtime_version(runtime)
    assert version.startswith("onnxruntime " if runtime == "ort" else "gcc ")


def test_machine_fields() -> None:
    m = machine_info()
    assert set(m) == {"cpu", "cores", "flags"}
    assert isinstance(m["cpu"], str) and m["cpu"]
    assert isinstance(m["cores"], int) and m["cores"] >= 1
    assert all(isinstance(f, str) for f in m["flags"])


def test_same_graph_is_timed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    measure_mod.clear_cache()
    calls = []
    real = ort_mod.time_graph

    def counting(graph, settings):
        calls.append(graph.name)
        return real(graph, settings)

    monkeypatch.setattr(ort_mod, "time_graph", counting)
    settings = MeasureSettings("ort", repeats=2, warmup=0)
    a = tiny_graph()
    b = lower(load_spec_text(TINY.replace("name: tiny", "name: other"), "other.yaml"))
    assert graph_digest(a) == graph_digest(b)  # names do not count
    first = measure_mod.time_graphs([a, b], settings)
    second = measure_mod.time_graph(a, settings)
    assert len(calls) == 1 and first[0] == first[1] == second
    measure_mod.time_graph(a, MeasureSettings("ort", repeats=3, warmup=0))  # other settings
    assert len(calls) == 2


def test_units_are_one_unit_graphs() -> None:
    g = tiny_graph()
    units = units_of(g)
    assert [u.op.name for u in units] == [f.name for f in fused_ops(g, "fused", 1, True)]
    for u in units:
        again = fused_ops(u.graph, "fused", 1, True)
        assert len(again) == 1 and again[0].kind == u.kind
        assert u.graph.input.shape == g.node(g.node(u.op.nodes[0]).inputs[0]).shape
        assert u.digest == graph_digest(unit_graph(g, u.op))
    # the two t=4 blocks differ (stride, residual): different units
    assert len({u.digest for u in units}) == len(units)


def _config(graph, fo) -> tuple:
    """A unit's configuration computed from the variant graph itself (not from archspec's
    unit graphs): kind, the input shape, and each member's op, attributes and output shape."""
    members = [graph.node(n) for n in fo.nodes]
    inside = set(fo.nodes)
    src = next(i for m in members for i in m.inputs if i not in inside)
    x = graph.node(src).shape
    return (
        fo.kind,
        (x.c, x.h, x.w),
        tuple(
            (m.op, json.dumps(dict(m.attrs), sort_keys=True), (m.shape.c, m.shape.h, m.shape.w))
            for m in members
        ),
    )


def _entry_config(entry) -> tuple:
    nodes = entry.graph["nodes"]
    return (
        entry.kind,
        tuple(entry.input_shape),
        tuple(
            (n["op"], json.dumps(n["attrs"], sort_keys=True), tuple(n["shape"])) for n in nodes[1:]
        ),
    )


def test_table_lists_exactly_the_distinct_units(ort_table_text) -> None:
    folder, text = ort_table_text
    table = read_table(str(folder / "table.json"))
    expected = set()
    for g in space_graphs(folder):
        for fo in fused_ops(g, "fused", 1, True):
            expected.add(_config(g, fo))
    assert {_entry_config(e) for e in table.entries.values()} == expected
    assert len(table.entries) == len(expected)
    for e in table.entries.values():
        _check_timing(e.timing)
    assert table.runtime == "ort" and table.repeats == 3 and table.threads == 1
    assert table.machine == machine_info()


def test_prediction_is_the_sum_of_entries(ort_table_text) -> None:
    folder, _ = ort_table_text
    table = read_table(str(folder / "table.json"))
    by_config = {_entry_config(e): e for e in table.entries.values()}
    overhead = table.overhead.median_ms
    for g in space_graphs(folder):
        ops = fused_ops(g, "fused", 1, True)
        entries = [by_config[_config(g, fo)] for fo in ops]
        net = sum(max(0.0, e.timing.median_ms - overhead) for e in entries)
        expected = overhead + table.factor * net
        p = predict(table, g)
        assert p.missing == ()
        assert p.latency_ms == pytest.approx(expected, abs=2e-6)
        low = table.overhead.min_ms
        fastest = low + sum(max(0.0, e.timing.min_ms - low) for e in entries)
        assert p.min_ms == pytest.approx(fastest, abs=2e-6)
        assert [uid for _, uid, _ in p.units] == [e.id for e in entries]


def test_prediction_is_deterministic_and_the_file_round_trips(ort_table_text) -> None:
    folder, text = ort_table_text
    path = str(folder / "table.json")
    first, second = read_table(path), read_table(path)
    assert render_table(first) == text  # what was read is what was written
    for g in space_graphs(folder):
        assert predict(first, g) == predict(second, g)


def test_context_factor_is_measured(ort_table_text) -> None:
    folder, text = ort_table_text
    table = read_table(str(folder / "table.json"))
    assert len(table.calibration) == 3
    graphs = {graph_digest(g): g for g in space_graphs(folder)}
    overhead = table.overhead.median_ms
    ratios = []
    for vid, measured, units_ms in table.calibration:
        assert vid in graphs and measured > 0
        net = sum(
            max(0.0, table.entries[u.digest].timing.median_ms - overhead)
            for u in units_of(graphs[vid])
        )
        assert units_ms == pytest.approx(net, abs=2e-6)
        ratios.append((measured - overhead) / units_ms)
    assert table.factor == pytest.approx(sorted(ratios)[1], abs=1e-4)  # the median of three


def test_missing_unit_is_reported_not_guessed(ort_table_text, tmp_path: Path) -> None:
    folder, text = ort_table_text
    data = json.loads(text)
    gone = data["entries"].pop(0)
    path = tmp_path / "t.json"
    path.write_text(json.dumps(data))
    table = read_table(str(path))
    graphs = space_graphs(folder)
    lacking = [predict(table, g) for g in graphs if gone["id"] in {u.digest for u in units_of(g)}]
    assert lacking
    for p in lacking:
        assert p.latency_ms is None and p.min_ms is None and gone["id"] in p.missing
        assert [s for _, uid, s in p.units if uid == gone["id"]] == [None]


# -- the table file, validated ----------------------------------------------------------------


def _edit(text: str, how) -> str:
    data = json.loads(text)
    how(data)
    lines = ["{"]
    for key, value in data.items():
        if key != "entries":
            lines.append(f" {json.dumps(key)}: {json.dumps(value)},")
    if "entries" in data:
        lines.append(' "entries": [')
        lines.append(",\n".join("  " + json.dumps(e) for e in data["entries"]))
        lines.append(" ]")
    else:
        lines[-1] = lines[-1].rstrip(",")
    return "\n".join(lines) + "\n}\n"


def _set(path: list, value):
    def how(data):
        target = data
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return how


def _drop(path: list):
    def how(data):
        target = data
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]

    return how


HOSTILE = [
    ("version", _set(["version"], 2), "version"),
    ("format", _set(["format"], "something-else"), "format"),
    ("runtime", _set(["runtime"], "tvm"), "runtime"),
    ("threads", _set(["threads"], 0), "threads"),
    ("repeats bool", _set(["repeats"], True), "repeats"),
    ("machine cores", _set(["machine", "cores"], "two"), "machine.cores"),
    ("machine extra", _set(["machine", "gpu"], "none"), "machine.gpu"),
    ("machine missing", _drop(["machine", "flags"]), "machine.flags"),
    ("machine not a mapping", _set(["machine"], ["AMD"]), "machine"),
    ("unknown key", _set(["extra"], 1), "extra"),
    ("missing entries", _drop(["entries"]), "entries"),
    ("negative median", _set(["entries", 0, "median_ms"], -1.0), "entries[0].median_ms"),
    ("zero median", _set(["entries", 0, "median_ms"], 0), "entries[0].median_ms"),
    ("text median", _set(["entries", 0, "median_ms"], "fast"), "entries[0].median_ms"),
    ("min above median", _set(["entries", 0, "min_ms"], 1e6), "entries[0].min_ms"),
    ("edited graph", _set(["entries", 1, "graph", "outputs"], [0]), "entries[1].id"),
    ("bad id", _set(["entries", 0, "id"], "../../etc/passwd"), "entries[0].id"),
    ("bad kind", _set(["entries", 0, "kind"], "gpu"), "entries[0].kind"),
    ("bad shape", _set(["entries", 0, "input_shape"], [1, 2]), "entries[0].input_shape"),
    ("overhead", _set(["overhead", "median_ms"], None), "overhead.median_ms"),
    ("split", _set(["split"], -3), "split"),
    ("factor", _set(["calibration", "factor"], 0.5), "calibration.factor"),
    ("factor text", _set(["calibration", "factor"], "1"), "calibration.factor"),
    (
        "calibration id",
        _set(["calibration", "variants", 0, "id"], "x"),
        "calibration.variants[0].id",
    ),
    (
        "calibration measured",
        _set(["calibration", "variants", 0, "measured_ms"], -2),
        "calibration.variants[0].measured_ms",
    ),
]


@pytest.mark.parametrize("name,how,field", HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_table_is_a_located_error(ort_table_text, tmp_path, name, how, field) -> None:
    _, text = ort_table_text
    path = tmp_path / "bad.json"
    path.write_text(_edit(text, how))
    with pytest.raises(SpecError) as info:
        read_table(str(path))
    err = info.value
    assert err.location is not None and err.location.file == str(path)
    assert err.location.line >= 1
    assert err.field == field


def test_duplicate_entry_is_refused(ort_table_text, tmp_path: Path) -> None:
    _, text = ort_table_text
    path = tmp_path / "dup.json"
    path.write_text(_edit(text, lambda d: d["entries"].append(d["entries"][0])))
    with pytest.raises(SpecError, match="duplicate entry") as info:
        read_table(str(path))
    lines = path.read_text().splitlines()
    start = next(i for i, line in enumerate(lines, 1) if line.startswith(' "entries"'))
    assert info.value.location.line == start + 1 + len(json.loads(text)["entries"])


@pytest.mark.parametrize(
    "content",
    [
        "",
        "[1, 2, 3]",
        "not json at all: [",
        "\x00\x01binary",
        '{"format": !!python/object:os.system x}',
        "a: &a [*a, *a]\n",
    ],
    ids=["empty", "list", "syntax", "binary", "tag", "alias"],
)
def test_garbage_is_a_located_error(tmp_path: Path, content: str) -> None:
    path = tmp_path / "g.json"
    path.write_text(content)
    with pytest.raises(SpecError) as info:
        read_table(str(path))
    assert info.value.location is not None and info.value.location.file == str(path)


def test_truncated_table_is_a_located_error(ort_table_text, tmp_path: Path) -> None:
    _, text = ort_table_text
    for cut in (len(text) // 3, len(text) // 2, len(text) - 3):
        path = tmp_path / f"cut{cut}.json"
        path.write_text(text[:cut])
        with pytest.raises(SpecError) as info:
            read_table(str(path))
        assert info.value.location.line >= 1


def test_huge_and_missing_files(tmp_path: Path) -> None:
    big = tmp_path / "big.json"
    big.write_text("[" + "1," * (3 << 20) + "1]")
    with pytest.raises(SpecError, match="larger than"):
        read_table(str(big))
    with pytest.raises(SpecError, match="cannot read"):
        read_table(str(tmp_path / "absent.json"))


def test_another_machine_is_refused_at_its_line(ort_table_text, tmp_path: Path) -> None:
    _, text = ort_table_text
    path = tmp_path / "other.json"
    path.write_text(_edit(text, _set(["machine", "cpu"], "Some Other CPU")))
    table = read_table(str(path))  # a well-formed table
    with pytest.raises(SpecError) as info:
        check_machine(table, str(path))
    assert info.value.field == "machine.cpu"
    line = next(i for i, t in enumerate(path.read_text().splitlines(), 1) if "Some Other" in t)
    assert info.value.location.line == line


@needs_gcc
def test_c_table_and_prediction(space_dir: Path) -> None:
    g = tiny_graph()
    settings = MeasureSettings("c", repeats=3, warmup=1, split=2)
    table = build_table([g], settings, "tiny")
    assert len(table.entries) == len(fused_ops(g, "fused", 2, True))
    path = space_dir / "c.json"
    path.write_text(render_table(table))
    again = read_table(str(path))
    assert again.split == 2 and again.runtime == "c"
    p = predict(again, g)
    assert p.latency_ms is not None and p.latency_ms > 0 and p.missing == ()
