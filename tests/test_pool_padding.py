"""Pools pad like convs (issue 15): SAME by default, `valid` on request, averages over real
pixels unless `count_pad`; and a merge of mismatched sizes names the rows that made them."""

from __future__ import annotations

import math

import numpy as np
import pytest

from archspec.errors import SpecError
from archspec.lower import lower
from archspec.ops import GRAPH_OPS
from archspec.spec import load_spec_text

HEAD = "name: pools\ninput: {resolution: 7, channels: 2}\nlayers:\n"


def _graph(*rows: str):
    return lower(load_spec_text(HEAD + "".join(f"  - {r}\n" for r in rows), "pools.yaml"))


@pytest.mark.parametrize("op", ["avgpool", "maxpool"])
@pytest.mark.parametrize(("k", "s"), [(3, 1), (3, 2), (5, 2), (3, 3)])
def test_same_padding_matches_a_conv(op: str, k: int, s: int) -> None:
    graph = _graph(
        f"{{op: {op}, name: p, k: {k}, s: {s}}}",
        f"{{op: conv2d, name: c, from: input, c: 2, k: {k}, s: {s}, scale: none}}",
        "{op: add, from: [p, c]}",
    )
    assert graph.node("p").shape.h == graph.node("c").shape.h == math.ceil(7 / s)


@pytest.mark.parametrize("op", ["avgpool", "maxpool"])
def test_valid_padding(op: str) -> None:
    graph = _graph(f"{{op: {op}, name: p, k: 3, s: 2, padding: valid}}")
    assert graph.node("p").shape.h == (7 - 3) // 2 + 1


def _by_hand(x: np.ndarray, k: int, s: int, pad: int, reduce: str, count_pad: bool) -> np.ndarray:
    c, h, w = x.shape
    ho, wo = (h + 2 * pad - k) // s + 1, (w + 2 * pad - k) // s + 1
    out = np.zeros((c, ho, wo))
    for i in range(ho):
        for j in range(wo):
            r0, c0 = i * s - pad, j * s - pad
            rows = range(max(r0, 0), min(r0 + k, h))
            cols = range(max(c0, 0), min(c0 + k, w))
            window = x[:, rows][:, :, cols]
            if reduce == "max":
                out[:, i, j] = window.max(axis=(1, 2))
            else:
                out[:, i, j] = window.sum(axis=(1, 2)) / (
                    k * k if count_pad else len(rows) * len(cols)
                )
    return out


@pytest.mark.parametrize(("k", "s"), [(3, 1), (3, 2), (5, 2)])
@pytest.mark.parametrize("count_pad", [False, True])
def test_references_against_a_loop(k: int, s: int, count_pad: bool) -> None:
    x = np.random.default_rng(0).standard_normal((2, 7, 6)) - 3.0  # negatives: padding must lose
    attrs = {"global": False, "k": k, "s": s, "padding": "same", "count_pad": count_pad}
    pad = (k - 1) // 2
    avg = GRAPH_OPS["avgpool"].reference(attrs, [x], {})
    np.testing.assert_allclose(avg, _by_hand(x, k, s, pad, "avg", count_pad))
    mx = GRAPH_OPS["maxpool"].reference(attrs, [x], {})
    np.testing.assert_allclose(mx, _by_hand(x, k, s, pad, "max", False))


def test_a_merge_of_mismatched_sizes_names_their_rows() -> None:
    with pytest.raises(SpecError) as info:
        lower(
            load_spec_text(
                "name: m\ninput: {resolution: 56, channels: 8}\nlayers:\n"
                "  - {op: conv2d, name: conv, c: 8, s: 2}\n"
                "  - {op: avgpool, name: pool, from: input, k: 3, s: 2, padding: valid}\n"
                "  - {op: add, from: [conv, pool]}\n",
                "m.yaml",
            )
        )
    message = info.value.message
    assert "cannot add tensors of shapes 28²×8 and 27²×8" in message
    assert "conv is 28×28 since conv (conv2d, k 3, s 2, dilation 1; line 4)" in message
    assert "pool is 27×27 since pool (avgpool, k 3, s 2, padding valid; line 5)" in message
    assert info.value.field == "layers[2].from"
