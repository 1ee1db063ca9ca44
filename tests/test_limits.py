"""Limits that cover every tensor (issue 14, class 7): the network input and the weight arrays
are held to the same 2^31-element limit as the activations, checked while lowering, so that
`validate` refuses what `build` could never allocate."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from archspec.lower import MAX_TENSOR_ELEMENTS, MAX_WEIGHT_ELEMENTS

C = 16384


def _run(tmp_path: Path, text: str, *args: str) -> tuple[int, str, float]:
    spec = tmp_path / "limits.yaml"
    spec.write_text(text)
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "archspec", *args, str(spec)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    return done.returncode, done.stderr, time.perf_counter() - start


@pytest.mark.parametrize(
    ("channels", "resolution", "ok"),
    [(32, 8192, True), (33, 8192, False), (65536, 8192, False), (65536, [8192, 1], True)],
)
@pytest.mark.parametrize("command", ["validate", "report"])
def test_network_input_is_limited(tmp_path, command, channels, resolution, ok) -> None:
    h, w = (resolution, resolution) if isinstance(resolution, int) else resolution
    assert (channels * h * w <= MAX_TENSOR_ELEMENTS) == ok
    text = (
        f"name: big_in\ninput: {{resolution: {resolution}, channels: {channels}}}\n"
        "layers:\n  - {op: avgpool, global: true}\n"
    )
    args = (command, "-o", str(tmp_path / "r.txt")) if command == "report" else (command,)
    code, err, seconds = _run(tmp_path, text, *args)
    assert "Traceback" not in err and seconds < 30
    if ok:
        assert code == 0, err
    else:
        assert code == 2
        assert f"limits.yaml:2:8: input: the input would hold {channels * h * w:,} elements" in err
        assert not (tmp_path / "r.txt").exists()


@pytest.mark.parametrize(
    ("rows", "needle"),
    [
        # one array of 65536 x 65536 x 15 x 15 weights
        (
            [
                "{op: conv2d, c: 65536, k: 1, scale: none}",
                "{op: conv2d, c: 65536, k: 15, scale: none}",
            ],
            "conv1.weight would hold 966,367,641,600 weights",
        ),
        # arrays each under the limit (16384 x 16384) whose sum is over it by the 9th
        (
            ["{op: conv2d, c: 16384, k: 1, scale: none}" for _ in range(10)],
            # conv0 (3 inputs) and conv1..7 with their BatchNorm arrays, then conv8's weight
            "conv8.weight would hold 268,435,456 weights (the network "
            f"{3 * C + 4 * C + 7 * (C * C + 4 * C) + C * C:,} so far)",
        ),
    ],
)
def test_weights_are_limited(tmp_path, rows, needle) -> None:
    text = "name: big_w\ninput: {resolution: 8, channels: 3}\nlayers:\n" + "".join(
        f"  - {r}\n" for r in rows
    )
    code, err, seconds = _run(tmp_path, text, "validate")
    assert code == 2 and "Traceback" not in err and seconds < 30
    assert needle in err
    assert (
        f"expected at most {MAX_TENSOR_ELEMENTS:,} in one array and {MAX_WEIGHT_ELEMENTS:,}" in err
    )


def _deep_chain(nodes: int) -> str:
    rows = ["  - {op: conv2d, c: 8, k: 1, n: 10}\n"] * (nodes // 10)
    return "name: deep\ninput: {resolution: 4, channels: 3}\nlayers:\n" + "".join(rows)


def test_keras_refuses_a_network_deeper_than_its_functional_api_builds(tmp_path) -> None:
    from archspec.emit import emit
    from archspec.errors import SpecError
    from archspec.lower import lower
    from archspec.spec import load_spec_text
    from archspec.targets.keras import MAX_KERAS_DEPTH

    # conv + BatchNorm + ReLU6: three Keras layers a node, plus the input layer
    ok = lower(load_spec_text(_deep_chain((MAX_KERAS_DEPTH - 1) // 3), "ok.yaml"))
    assert emit(ok, "keras", {})
    deep = lower(load_spec_text(_deep_chain(340), "deep.yaml"))
    with pytest.raises(SpecError) as info:
        emit(deep, "keras", {})
    assert f"would be {3 * 340 + 1} layers deep" in info.value.message
    assert info.value.location is not None and info.value.location.line == 4


@pytest.mark.slow
def test_verify_skips_a_target_that_refuses_the_network_and_runs_the_others() -> None:
    from archspec.lower import lower
    from archspec.spec import load_spec_text
    from archspec.verify import verify
    from archspec.weights import init_weights

    graph = lower(load_spec_text(_deep_chain(340), "deep.yaml"))
    result = verify(graph, init_weights(graph, 0), progress=False, batch=1)
    assert result.skipped["keras"].startswith("the target refuses this network: the Keras model")
    assert {"pytorch", "onnx", "c"} <= set(result.runtimes)


# -- analysis time on the widest and deepest graphs the limits admit (issue 14, class 6) ------


def _wide_chains(chains: int, blocks: int) -> str:
    rows = ["  - {op: conv2d, name: stem, c: 16}\n"]
    rows += [
        f"  - {{op: bottleneck, name: c{i}, from: stem, t: 2, c: 16, n: {blocks}}}\n"
        for i in range(chains)
    ]
    rows.append("  - {op: concat, name: cat, from: [" + ", ".join(f"c{i}" for i in range(chains)))
    rows.append("]}\n")
    return "name: wide\ninput: {resolution: 8, channels: 3}\nlayers:\n" + "".join(rows)


def _deep_blocks(rows: int) -> str:
    body = ["  - {op: conv2d, name: stem, c: 16}\n"]
    body += ["  - {op: bottleneck, t: 2, c: 16, n: 5}\n"] * rows
    return "name: deepblocks\ninput: {resolution: 8, channels: 3}\nlayers:\n" + "".join(body)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("text", "ops"),
    [(_wide_chains(200, 6), 4_802), (_deep_blocks(998), 19_961)],
    ids=["200_chains", "20000_ops"],
)
def test_report_on_the_largest_graphs_is_bounded(tmp_path, text, ops) -> None:
    # Before: 41 s for 200 chains and over 120 s near the node limit (buffer placement scanned
    # every placed buffer in Python for each new one). The README states the bound.
    from archspec.lower import lower
    from archspec.spec import load_spec_text

    assert sum(1 for _ in lower(load_spec_text(text, "big.yaml")).ops()) == ops
    code, err, seconds = _run(tmp_path, text, "report", "-o", str(tmp_path / "r.json"))
    assert code == 0, err
    assert seconds < 90, seconds  # 9 s and 4 s on an idle 2-core machine; CI runs two at once


# -- the variants command's destinations, through archspec.output (issue 14, classes 4 and 9) --

SPACE = Path(__file__).resolve().parent.parent / "specs" / "spaces" / "mnv2_mcu.yaml"


def _a_file(folder: Path) -> Path:
    (folder / "f").write_text("x")
    return folder / "f"


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (lambda d: "", "-o: found an empty path; expected a folder"),
        (lambda d: str(_a_file(d) / "sub"), "which is a file, not a folder"),
        (lambda d: str(_a_file(d)), "-o"),
    ],
    ids=["empty", "under_a_file", "a_file"],
)
def test_variants_checks_its_folder_before_any_work(tmp_path, make, needle) -> None:
    out = make(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    done = subprocess.run(
        [sys.executable, "-m", "archspec", "variants", str(SPACE), "--n", "3", "-o", out],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert needle in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_variants_writes_the_folder_and_the_plot_together(tmp_path) -> None:
    out, plot = tmp_path / "v", tmp_path / "v.svg"
    done = subprocess.run(
        [sys.executable, "-m", "archspec", "variants", str(SPACE), "--n", "3", "-o", str(out)]
        + ["--plot", str(plot)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert (out / "manifest.jsonl").is_file() and plot.read_text().startswith("<?xml")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v", "v.svg"]
