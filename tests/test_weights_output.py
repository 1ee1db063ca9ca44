"""Weights files are read without pickle and checked against the graph; output is all-or-nothing
and never leaves its folder."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest

from archspec import SpecError, load_spec, lower
from archspec.output import write_file, write_tree
from archspec.weights import expected_weights, init_weights, load_weights, save_weights

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def graph():
    return lower(load_spec(str(ROOT / "specs" / "mnv2_1.0.yaml"), ["width_multiplier=0.35"]))


def _save(path: Path, arrays: dict) -> Path:
    np.savez(path, **arrays)
    return path


def test_round_trip_and_determinism(graph, tmp_path):
    weights = init_weights(graph, seed=3)
    assert save_weights(weights) == save_weights(init_weights(graph, seed=3))
    assert save_weights(weights) != save_weights(init_weights(graph, seed=4))
    path = tmp_path / "w.npz"
    path.write_bytes(save_weights(weights))
    loaded = load_weights(str(path), graph)
    assert list(loaded) == list(expected_weights(graph))
    assert all(np.array_equal(loaded[k], weights[k]) for k in weights)


def test_pickled_object_arrays_are_refused(graph, tmp_path):
    weights = dict(init_weights(graph))
    key = next(iter(weights))
    weights[key] = np.array([{"evil": "pickle"}], dtype=object)
    path = tmp_path / "w.npz"
    buffer = io.BytesIO()
    np.savez(buffer, **weights)
    path.write_bytes(buffer.getvalue())
    with pytest.raises(SpecError, match="cannot read weights"):
        load_weights(str(path), graph)


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ("drop", "missing array"),
        ("extra", "unexpected array 'not_a_layer.weight'"),
        ("shape", "has shape"),
        ("dtype", "expected float32"),
        ("nan", "NaN or infinite"),
    ],
)
def test_first_mismatch_is_named(graph, tmp_path, change, needle):
    weights = dict(init_weights(graph))
    key = "block3_dw.weight"
    if change == "drop":
        del weights[key]
    elif change == "extra":
        weights["not_a_layer.weight"] = np.zeros(3, np.float32)
    elif change == "shape":
        weights[key] = np.zeros((1, 2, 3), np.float32)
    elif change == "dtype":
        weights[key] = weights[key].astype(np.int32)
    else:
        weights[key] = weights[key].copy()
        weights[key].flat[0] = np.nan
    path = _save(tmp_path / "w.npz", weights)
    with pytest.raises(SpecError) as err:
        load_weights(str(path), graph)
    assert needle in str(err.value)
    assert str(path) in str(err.value)


def test_not_a_zip_file(graph, tmp_path):
    path = tmp_path / "w.npz"
    path.write_bytes(b"garbage" * 10)
    with pytest.raises(SpecError, match="cannot read weights"):
        load_weights(str(path), graph)


@pytest.mark.parametrize("bad", ["../escape.txt", "/abs.txt", "a/../../b.txt", "./x.txt", ""])
def test_write_tree_never_leaves_its_folder(tmp_path, bad):
    out = tmp_path / "out"
    with pytest.raises(ValueError):
        write_tree(out, {"ok.txt": "fine", bad: "evil"})
    assert not (tmp_path / "escape.txt").exists()
    assert not out.exists() or list(out.iterdir()) == []


def test_write_tree_is_all_or_nothing(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "model.py").write_text("old")

    class Boom(str):
        def encode(self, *args, **kwargs):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_tree(out, {"model.py": "new", "weights.npz": Boom("x")})
    assert (out / "model.py").read_text() == "old"
    assert sorted(p.name for p in out.iterdir()) == ["model.py"]
    write_tree(out, {"model.py": "new", "sub/weights.npz": b"\x00"})
    assert (out / "model.py").read_text() == "new"
    assert (out / "sub" / "weights.npz").read_bytes() == b"\x00"


def test_write_file_replaces_whole(tmp_path):
    target = tmp_path / "r.txt"
    target.write_text("old report")
    write_file(target, "new")
    assert target.read_text() == "new"
    mask = os.umask(0)
    os.umask(mask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~mask
    assert [p.name for p in tmp_path.iterdir()] == ["r.txt"]
