"""The `tf1` counting profile: dilated stride-1 SAME convs counted on TF 1.x's space-to-batch grid.

The grid is checked three ways: against a numpy re-enactment of `tf.nn.convolution`'s
space-to-batch path (pad, split into rate × rate sub-grids, VALID conv, interleave, crop), which
must both reproduce the true convolution and compute exactly the counted number of outputs;
against hand-derived values of the paper's Table 7 sizes; and in whole-spec totals.
"""

from __future__ import annotations

import numpy as np
import pytest

from archspec import analyze_cost, lower
from archspec.cli import main
from archspec.ops.base import COUNTING_PROFILES
from archspec.ops.conv2d import convolve, tf1_grid
from archspec.spec import load_spec_text


def _space_to_batch_conv(x: np.ndarray, weight: np.ndarray, rate: int) -> tuple[np.ndarray, int]:
    """A stride-1 SAME conv dilated by `rate`, computed as TF 1.x does it; returns the cropped
    output and the number of output pixels the VALID convs computed (before the crop)."""
    c, h, w = x.shape
    k = weight.shape[-1]
    total = (k - 1) * rate  # SAME padding of the dilated kernel
    start, end = total // 2, total - total // 2
    extra_h = -(h + total) % rate  # padded up to a multiple of the rate, at the end
    extra_w = -(w + total) % rate
    xp = np.pad(x, ((0, 0), (start, end + extra_h), (start, end + extra_w)))
    hp, wp = xp.shape[1:]
    out = np.zeros((weight.shape[0], hp - (k - 1) * rate, wp - (k - 1) * rate))
    computed = 0
    for i in range(rate):
        for j in range(rate):
            sub = xp[:, i::rate, j::rate]  # one sub-grid of the batch
            sh, sw = sub.shape[1] - (k - 1), sub.shape[2] - (k - 1)  # VALID, undilated kernel
            y = np.zeros((weight.shape[0], sh, sw))
            for a in range(k):
                for b in range(k):
                    y += np.einsum(
                        "oc,chw->ohw", weight[:, :, a, b], sub[:, a : a + sh, b : b + sw]
                    )
            out[:, i::rate, j::rate] = y  # batch_to_space
            computed += sh * sw
    return out[:, :h, :w], computed  # the crop drops the extra rows and columns


@pytest.mark.parametrize(
    ("h", "w", "k", "rate"),
    [(33, 33, 3, 2), (33, 33, 3, 6), (9, 7, 3, 3), (10, 10, 3, 2), (5, 6, 1, 2), (17, 12, 5, 4)],
)
def test_grid_is_what_space_to_batch_computes(h, w, k, rate):
    rng = np.random.default_rng(h * 100 + rate)
    x = rng.standard_normal((2, h, w))
    weight = rng.standard_normal((3, 2, k, k))
    y, computed = _space_to_batch_conv(x, weight, rate)
    np.testing.assert_allclose(y, convolve(x, weight, 1, 1, rate), atol=1e-9)
    assert computed == tf1_grid(h, k, rate) * tf1_grid(w, k, rate)


def test_table7_sizes_by_hand():
    # 513 at output stride 16 is 33. Rate 2, k 3: pad 4 -> 37, up to 38 = 19 per sub-grid,
    # VALID 3x3 leaves 17, times 2 = 34. Rate 6: 33 + 12 = 45 -> 48 = 8 × 6, 8 - 2 = 6, × 6 = 36.
    # Rate 12: 33 + 24 = 57 -> 60 = 5 × 12, 3 × 12 = 36. Rate 18: 33 + 36 = 69 -> 72, 2 × 18 = 36.
    assert [tf1_grid(33, 3, r) for r in (2, 6, 12, 18)] == [34, 36, 36, 36]
    # an even side at rate 2 needs no extra padding: the true grid
    assert tf1_grid(14, 3, 2) == 14
    for n in range(1, 80):
        for r in range(2, 9):
            assert n <= tf1_grid(n, 3, r) < n + r


SPEC = """
name: dilated
input: {resolution: [9, 7], channels: 4}
layers:
  - {op: conv2d, name: plain, c: 8, k: 3}
  - {op: conv2d, name: dil, c: 8, k: 3, dilation: 2}
  - {op: dwconv, name: dw, dilation: 3}
  - {op: conv2d, name: strided, c: 8, k: 3, s: 2, dilation: 2}
  - {op: avgpool, global: true}
  - {op: fc, c: 5}
"""


def test_profile_adds_only_the_larger_grid():
    graph = lower(load_spec_text(SPEC, "dilated.yaml"))
    slim, tf1 = analyze_cost(graph), analyze_cost(graph, "tf1")
    # by hand: dil (rate 2, 9x7): sides 9 -> 10, 7 -> 8, so 80 outputs instead of 63, each
    # 8 channels × 8 inputs × 9; dw (rate 3): 9 + 6 = 15 -> 5 - 2 = 3 × 3 = 9, 7 + 6 = 13 -> 15,
    # 5 - 2 = 3 × 3 = 9: 81 outputs instead of 63, 8 channels × 9 each
    extra = (80 - 63) * 8 * 8 * 9 + (81 - 63) * 8 * 9
    assert tf1.terms["space_to_batch"] == extra
    assert tf1.madds == slim.madds + extra
    assert {k: v for k, v in tf1.terms.items() if k != "space_to_batch"} == dict(slim.terms)
    extra_by_layer = {x.name: x.terms.get("space_to_batch", 0) for x in tf1.layers}
    assert extra_by_layer["plain"] == extra_by_layer["strided"] == 0
    assert (tf1.params, tf1.params_with_bn) == (slim.params, slim.params_with_bn)
    assert sum(p.madds for p in tf1.parts.values()) == tf1.madds


def test_cli_profile_tf1(capsys, tmp_path):
    assert "tf1" in COUNTING_PROFILES
    spec = tmp_path / "dilated.yaml"
    spec.write_text(SPEC)
    assert main(["report", str(spec), "--profile", "tf1"]) == 0
    out = capsys.readouterr().out
    assert "counting profile `tf1`" in out and "space_to_batch MAdds" in out
    assert main(["report", str(spec)]) == 0
    assert "space_to_batch" not in capsys.readouterr().out  # the default stays slim
