"""Weights files and input-derived sizes (issue 14 classes 3, 5, 8 and 10): refused by array name
and reason in every target and in verify, headers judged before any data is inflated, sizes
checked before anything is allocated, and no numpy warning on the way."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from archspec import load_spec_text, lower
from archspec.weights import MAX_WEIGHT_VALUES, init_weights, save_weights
from tests.hostile import BASE, assert_refused, run_cli

SECONDS = 10.0
ROOT = Path(__file__).resolve().parents[1]
TARGETS = ["pytorch", "keras", "onnx", "c"]
SPEC = BASE.replace("- {op: conv2d, c: 16, s: 2}", "- {op: conv2d, name: stem, c: 16, s: 2}")


def _graph():
    return lower(load_spec_text(SPEC, "net.yaml"))


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, allow_pickle=True)
    return buffer.getvalue()


def _npz(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def _good_members() -> dict[str, bytes]:
    return {f"{k}.npy": _npy(v) for k, v in init_weights(_graph(), 0).items()}


def _with(key: str, data: bytes | None, name: str | None = None) -> bytes:
    members = _good_members()
    members.pop(f"{key}.npy")
    if data is not None:
        members[name or f"{key}.npy"] = data
    return _npz(members)


def _array(key: str, change) -> bytes:
    weights = init_weights(_graph(), 0)
    return _with(key, _npy(change(weights[key])))


def _bn_var_key() -> str:
    return next(k for k in init_weights(_graph(), 0) if k.endswith("var"))


BAD_FILES = {
    "raw_bytes": (lambda: _with("stem.weight", b"just some bytes"), "is not a .npy array"),
    "not_npy_name": (
        lambda: _with("stem.weight", b"\x00" * 64, "stem.weight.bin"),
        "member 'stem.weight.bin' is not a .npy array (raw bytes)",
    ),
    "pickle": (
        lambda: _with("stem.weight", _npy(np.array([{"evil": 1}], dtype=object))),
        "array 'stem.weight' holds Python objects (a pickle)",
    ),
    "record_dtype": (
        lambda: _with("stem.weight", _npy(np.zeros(3, dtype=[("a", "<f4"), ("b", "<i4")]))),
        "array 'stem.weight' holds records or Python objects",
    ),
    "beyond_float32": (
        lambda: _array("stem.weight", lambda a: np.full(a.shape, 1e39, dtype=np.float64)),
        "array 'stem.weight' holds 1e+39 at (0, 0, 0, 0), beyond float32's range",
    ),
    "negative_variance": (
        lambda: _array(_bn_var_key(), lambda a: -np.abs(a) - 0.5),
        "holds the negative BatchNorm variance",
    ),
    "nan": (
        lambda: _array("stem.weight", lambda a: np.where(a > 0, np.nan, a)),
        "array 'stem.weight' holds NaN or infinite values",
    ),
    "integers": (
        lambda: _array("stem.weight", lambda a: a.astype(np.int64)),
        "array 'stem.weight' has dtype int64; expected float32",
    ),
    "truncated_data": (
        lambda: _with("stem.weight", _npy(init_weights(_graph(), 0)["stem.weight"])[:-8]),
        "array 'stem.weight' claims shape [16, 3, 3, 3]",
    ),
    "not_a_zip": (lambda: b"PK\x03\x04 this is not really a zip file", "cannot read weights"),
}


@pytest.fixture
def spec(tmp_path):
    path = tmp_path / "net.yaml"
    path.write_text(SPEC)
    return path


@pytest.mark.parametrize("case", sorted(BAD_FILES))
@pytest.mark.parametrize("command", [*TARGETS, "verify"])
def test_bad_weights_are_refused_by_name_in_every_target(tmp_path, capsys, spec, case, command):
    make, needle = BAD_FILES[case]
    weights = tmp_path / "w.npz"
    weights.write_bytes(make())
    out = tmp_path / "out"
    if command == "verify":
        args = ["verify", str(spec), "--weights", str(weights)]
    else:
        args = ["build", str(spec), "--target", command, "--weights", str(weights), "-o", str(out)]
    result = run_cli(capsys, args, watch=[tmp_path])
    assert_refused(result, f"{weights}: --weights: ", SECONDS)
    assert needle in result.err
    assert not out.exists()


def test_good_weights_still_load(tmp_path, capsys, spec):
    weights = tmp_path / "w.npz"
    weights.write_bytes(_npz(_good_members()))
    out = tmp_path / "out"
    result = run_cli(
        capsys, ["build", str(spec), "--target", "onnx", "--weights", str(weights), "-o", str(out)]
    )
    assert result.code == 0, result.err
    assert result.warned == []


def test_float64_weights_within_range_are_accepted(tmp_path, capsys, spec):
    weights = tmp_path / "w.npz"
    weights.write_bytes(_array("stem.weight", lambda a: a.astype(np.float64) * 1e30))
    out = tmp_path / "out"
    result = run_cli(
        capsys,
        ["build", str(spec), "--target", "pytorch", "--weights", str(weights), "-o", str(out)],
    )
    assert result.code == 0, result.err


# -- headers before data: a bomb costs nothing -------------------------------------------------


def _bomb(path: Path, name: str, shape: tuple[int, ...]) -> None:
    """A member whose header claims `shape` of float32 zeros, deflated (a few hundred KB)."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f4", "fortran_order": False, "shape": shape}
    )
    chunk = bytes(1 << 20)
    total = int(np.prod(shape)) * 4
    with (
        zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf,
        zf.open(name, "w", force_zip64=True) as stream,
    ):
        stream.write(header.getvalue())
        for _ in range(total // len(chunk)):
            stream.write(chunk)


PEAK_SCRIPT = """
import resource, sys
from archspec import load_spec_text, lower
from archspec.errors import SpecError
from archspec.weights import load_weights
graph = lower(load_spec_text(open(sys.argv[1]).read(), sys.argv[1]))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    load_weights(sys.argv[2], graph)
except SpecError as exc:
    print(exc.render())
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)
"""


@pytest.mark.parametrize(
    ("name", "needle"),
    [
        ("stem.weight.npy", "array 'stem.weight' has shape [134217728]; expected [16, 3, 3, 3]"),
        ("intruder.npy", "unexpected array 'intruder'"),
    ],
)
def test_inflating_members_are_refused_from_their_headers(tmp_path, spec, name, needle):
    bomb = tmp_path / "bomb.npz"
    _bomb(bomb, name, (1 << 27,))  # 512 MiB inflated
    assert bomb.stat().st_size < 2 * 1024 * 1024
    done = subprocess.run(
        [sys.executable, "-c", PEAK_SCRIPT, str(spec), str(bomb)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    message, grown = done.stdout.strip().rsplit("\n", 1)
    assert needle in message
    assert int(grown) < 50 * 1024, f"resident memory grew by {int(grown) // 1024} MiB"


def test_a_header_claiming_a_trillion_elements_is_refused_by_its_size(tmp_path, capsys, spec):
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f4", "fortran_order": False, "shape": (16, 3, 3, 10**12)}
    )
    weights = tmp_path / "w.npz"
    weights.write_bytes(_with("stem.weight", header.getvalue() + bytes(64)))
    result = run_cli(capsys, ["verify", str(spec), "--weights", str(weights)])
    assert_refused(result, "has shape [16, 3, 3, 1000000000000]; expected [16, 3, 3, 3]", SECONDS)


# -- sizes checked before allocation ------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [
        ["resolution=8192"],
        ["resolution=[8192,4096]", "width_multiplier=2"],
        ["resolution=4096", "num_classes=65536"],
    ],
)
def test_verify_refuses_huge_test_inputs_before_allocating(tmp_path, capsys, spec, overrides):
    sets = [x for o in overrides for x in ("--set", o)]
    result = run_cli(capsys, ["verify", str(spec), *sets])
    assert_refused(result, "verify would hold", SECONDS)
    assert "it runs networks of at most 134,217,728" in result.err


WIDE = """name: wide
input: {resolution: 8, channels: 3}
layers:
  - {op: conv2d, c: 16384, k: 1}
  - {op: conv2d, c: 16384, k: 1}
  - {op: conv2d, c: 16384, k: 1}
"""


@pytest.mark.parametrize("command", [*TARGETS, "verify"])
def test_weights_beyond_the_budget_are_refused_before_allocating(tmp_path, capsys, command):
    spec = tmp_path / "wide.yaml"
    spec.write_text(WIDE)
    out = tmp_path / "out"
    if command == "verify":
        args = ["verify", str(spec)]
    else:
        args = ["build", str(spec), "--target", command, "-o", str(out)]
    result = run_cli(capsys, args, watch=[tmp_path])
    assert_refused(result, f"build and verify materialise at most {MAX_WEIGHT_VALUES:,}", SECONDS)
    assert "the largest array is 'conv1.weight' of shape [16384, 16384, 1, 1]" in result.err


# -- no numpy warning before a refusal (a real process, its real stderr) ------------------------


def _folding_overflow(tmp_path: Path) -> Path:
    weights = init_weights(_graph(), 0)
    var = _bn_var_key()
    weights[var.replace("var", "gamma")] = np.full_like(weights[var], 3e38)
    weights[var] = np.zeros_like(weights[var])
    path = tmp_path / "fold.npz"
    path.write_bytes(save_weights(weights))
    return path


@pytest.mark.parametrize(
    ("target", "make", "needle"),
    [
        ("c", _folding_overflow, "error: "),
        ("pytorch", lambda t: _write(t, BAD_FILES["beyond_float32"][0]()), "beyond float32"),
        ("onnx", lambda t: _write(t, BAD_FILES["negative_variance"][0]()), "negative BatchNorm"),
    ],
)
def test_no_warning_reaches_stderr_before_the_message(tmp_path, spec, target, make, needle):
    weights = make(tmp_path)
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-W", "default", "-m", "archspec", "build", str(spec), "--target",
         target, "--weights", str(weights), "-o", str(out)],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
        env=dict(os.environ, PYTHONWARNINGS="default"),
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("error: "), done.stderr
    assert needle in done.stderr
    assert "Warning" not in done.stderr and "Traceback" not in done.stderr
    assert not out.exists()


def _write(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "w.npz"
    path.write_bytes(data)
    return path
