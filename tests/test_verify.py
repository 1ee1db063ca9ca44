"""`archspec build` and `archspec verify`: every target computes the same function, builds are
byte-identical, bad weights are refused before anything is written."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from archspec import verify as verify_module
from archspec.cli import main
from archspec.lower import lower
from archspec.spec import load_spec
from archspec.verify import RUNNERS, Runner, verify
from archspec.weights import init_weights, save_weights

ROOT = Path(__file__).resolve().parent.parent
MNV2 = str(ROOT / "specs" / "mnv2_1.0.yaml")
ASPP = ROOT / "specs" / "mnv2_aspp.yaml"

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")


def test_verify_mnv2_passes_across_all_runtimes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", MNV2]) == 0
    out = capsys.readouterr().out
    for pair in ("pytorch vs reference", "onnx vs reference", "pytorch vs onnx"):
        assert pair in out
    assert "verify: pass" in out
    header = out.split("output ")[0]
    assert "keras" in header  # ran, or skipped with a reason
    if importlib.util.find_spec("keras") is not None and "keras.py" in _target_files():
        assert "keras vs reference" in out and "pytorch vs keras" in out


def _target_files() -> set[str]:
    return {p.name for p in (ROOT / "archspec" / "targets").iterdir()}


@pytest.mark.skipif(not ASPP.exists(), reason="specs/mnv2_aspp.yaml not present")
def test_verify_branching_example_spec_passes() -> None:
    graph = lower(load_spec(str(ASPP)))
    result = verify(graph, init_weights(graph, 0), batch=1)
    assert result.passed, verify_module.render_result(result)
    ran = set(result.runtimes)
    assert {"pytorch", "onnx"} <= ran
    pairs = {(c.a, c.b) for c in result.comparisons}
    assert ("pytorch", "onnx") in pairs and ("onnx", "reference") in pairs


def test_verify_small_branching_spec_with_three_outputs(branching_graph) -> None:
    result = verify(branching_graph, init_weights(branching_graph, 5), batch=3)
    assert result.passed, verify_module.render_result(result)
    assert {c.output for c in result.comparisons} == {"seg", "logits", "gate"}
    # the C program is compiled and run too, its concatenated outputs split back per output
    assert "c" in result.runtimes
    assert {(c.a, c.b) for c in result.comparisons if c.output == "seg"} >= {("onnx", "c")}


def test_verify_fails_when_a_target_disagrees(
    branching_graph, monkeypatch: pytest.MonkeyPatch
) -> None:
    honest = RUNNERS["onnx"]

    def off_by_a_little(folder, graph, x):
        outs = honest.run(folder, graph, x)
        outs[1] = outs[1] + np.float32(1e-2)
        return outs

    monkeypatch.setitem(RUNNERS, "onnx", Runner(honest.runtime, off_by_a_little))
    result = verify(branching_graph, init_weights(branching_graph, 0), targets=("pytorch", "onnx"))
    assert not result.passed
    text = verify_module.render_result(result)
    assert "onnx vs reference" in text and "FAIL" in text
    failing = {(c.output, c.a, c.b) for c in result.comparisons if c.relative > result.tolerance}
    assert failing == {("logits", "onnx", "reference"), ("logits", "pytorch", "onnx")}


def test_nan_output_fails(branching_graph, monkeypatch: pytest.MonkeyPatch) -> None:
    honest = RUNNERS["pytorch"]

    def nan_somewhere(folder, graph, x):
        outs = honest.run(folder, graph, x)
        outs[0][0, 0, 0, 0] = np.nan
        return outs

    monkeypatch.setitem(RUNNERS, "pytorch", Runner(honest.runtime, nan_somewhere))
    result = verify(branching_graph, init_weights(branching_graph, 0), targets=("pytorch",))
    assert not result.passed


def test_verify_exit_status_1_above_tolerance(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "tiny.yaml"
    spec.write_text(
        "name: tiny\ninput: {resolution: 8, channels: 3}\nlayers:\n"
        "  - {op: conv2d, name: stem, c: 8, s: 2}\n  - {op: avgpool, global: true}\n"
        "  - {op: fc, name: logits, c: 4}\n"
    )
    honest = RUNNERS["pytorch"]
    monkeypatch.setitem(
        RUNNERS,
        "pytorch",
        Runner(honest.runtime, lambda f, g, x: [o * 1.01 for o in honest.run(f, g, x)]),
    )
    assert main(["verify", str(spec), "--tolerance", "1e-4"]) == 1
    assert "verify: FAIL" in capsys.readouterr().out
    assert main(["verify", str(spec), "--tolerance", "0.5"]) == 0


def test_missing_runtime_is_skipped_with_a_note(branching_graph, monkeypatch) -> None:
    def missing() -> str:
        raise ImportError("No module named 'onnxruntime'")

    monkeypatch.setitem(RUNNERS, "onnx", Runner(missing, RUNNERS["onnx"].run))
    result = verify(branching_graph, init_weights(branching_graph, 0), targets=("pytorch", "onnx"))
    assert "onnx" in result.skipped and "not importable" in result.skipped["onnx"]
    assert result.passed
    assert "onnx     skipped: runtime not importable" in verify_module.render_result(result)


# -- build -------------------------------------------------------------------------------------


@pytest.mark.parametrize("target", ["pytorch", "onnx"])
def test_build_is_byte_identical_and_self_contained(target: str, tmp_path: Path, capsys) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["build", MNV2, "--target", target, "-o", str(a)]) == 0
    assert main(["build", MNV2, "--target", target, "-o", str(b), "--seed", "0"]) == 0
    assert str(a) in capsys.readouterr().out
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(p.name for p in b.iterdir())
    assert "weights.npz" in names and len(names) == 2
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    graph = lower(load_spec(MNV2))
    assert (a / "weights.npz").read_bytes() == save_weights(init_weights(graph, 0))


def test_build_with_weights_file_uses_it(tmp_path: Path) -> None:
    graph = lower(load_spec(MNV2))
    weights_file = tmp_path / "trained.npz"
    weights_file.write_bytes(save_weights(init_weights(graph, 42)))
    out = tmp_path / "out"
    assert (
        main(["build", MNV2, "--target", "onnx", "-o", str(out), "--weights", str(weights_file)])
        == 0
    )
    assert (out / "weights.npz").read_bytes() == weights_file.read_bytes()


def test_default_output_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["build", MNV2, "--target", "onnx"]) == 0
    folder = tmp_path / "out" / "mobilenet_v2_1_0_224" / "onnx"
    assert sorted(p.name for p in folder.iterdir()) == ["mobilenet_v2_1_0_224.onnx", "weights.npz"]


def _bad_weights(tmp_path: Path, kind: str) -> Path:
    graph = lower(load_spec(MNV2))
    weights = init_weights(graph, 0)
    if kind == "missing":
        del weights["block3_dw.bn_var"]
    else:
        weights["classifier.weight"] = np.zeros((1000, 1281), np.float32)
    path = tmp_path / f"{kind}.npz"
    path.write_bytes(save_weights(weights))
    return path


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("missing", "missing array 'block3_dw.bn_var' of shape [144]"),
        ("shape", "array 'classifier.weight' has shape [1000, 1281]; expected [1000, 1280]"),
    ],
)
def test_bad_weights_exit_2_and_write_nothing(
    kind: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _bad_weights(tmp_path, kind)
    out = tmp_path / "out"
    assert main(["build", MNV2, "--target", "pytorch", "-o", str(out), "--weights", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}: --weights: {message}" in err
    assert "Traceback" not in err
    assert not out.exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["--target", "pytorch", "--split", "2"],
        ["--target", "onnx", "--seed", "1", "--weights", "w.npz"],
        ["--target", "tensorflow"],
        ["--target", "onnx", "--seed", "-1"],
        ["--target", "onnx", "--weights", "does-not-exist.npz"],
    ],
)
def test_build_usage_errors_exit_2(argv: list[str], tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    try:
        code = main(["build", MNV2, "-o", str(out), *argv])
    except SystemExit as exc:  # argparse's own usage errors
        code = exc.code
    assert code == 2
    assert "Traceback" not in capsys.readouterr().err
    assert not out.exists()
