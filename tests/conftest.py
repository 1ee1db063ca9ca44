"""Shared test switches and helpers.

`pytest --update-golden` rewrites the golden files under tests/golden/ from the current output
instead of comparing against them; review the diff before committing it.
"""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest

GOLDEN = Path(__file__).parent / "golden"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        default=False,
        help="rewrite tests/golden/ from the current output instead of comparing",
    )


@pytest.fixture
def golden(request: pytest.FixtureRequest):
    """`golden(relpath, text)`: compare `text` with tests/golden/<relpath> (or rewrite it)."""
    update = request.config.getoption("--update-golden")

    def check(relpath: str, text: str) -> None:
        path = GOLDEN / relpath
        if update:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            return
        if not path.exists():
            pytest.fail(f"no golden file {path}; run pytest --update-golden and review it")
        expected = path.read_text(encoding="utf-8")
        if text != expected:
            diff = "".join(
                difflib.unified_diff(
                    expected.splitlines(keepends=True),
                    text.splitlines(keepends=True),
                    f"golden/{relpath}",
                    "generated",
                    n=2,
                )
            )
            pytest.fail(
                f"output differs from golden/{relpath} (pytest --update-golden to accept):\n"
                + diff[:6000]
            )

    return check


# A small, non-square network that uses every graph op and every layout change the targets
# make: residual and 3-way adds, dilated depthwise, grouped conv with bias, windowed and global
# pooling (padded max and average pools, counting padding or not), bilinear and nearest resizes
# (up, down, non-integer ratios, from 1×1), concat, chained
# fc layers, adds and concats of flat fc outputs, a conv reading a flat tensor, three outputs.
BRANCHING_SPEC = """
name: tiny-branching.v1
description: Every op once; used by the target tests.
input: {resolution: [20, 14], channels: 3}
num_classes: 7
bn_eps: 0.001
outputs: [seg, logits, gate]
layers:
  - {op: conv2d, name: stem, c: 16, s: 2, k: 3}
  - {op: bottleneck, name: b1, t: 1, c: 16, n: 1, s: 1}
  - {op: bottleneck, name: b2, t: 6, c: 24, n: 2, s: 2}
  - {op: dwconv, name: dil, k: 3, dilation: 2, act: relu}
  - {op: conv2d, name: grouped, c: 24, k: 3, groups: 4, act: linear, bn: false}
  - {op: add, name: merge, from: [b2, dil, grouped], act: relu6}
  - {op: avgpool, name: window, k: 2, s: 1}
  - {op: upsample, name: up_near, from: merge, factor: 2, mode: nearest}
  - {op: upsample, name: near_back, like: window, mode: nearest}
  - {op: add, name: mix, from: [window, near_back]}
  - {op: upsample, name: up_lin, like: merge, mode: bilinear}
  - {op: avgpool, name: gpool, from: merge, global: true}
  - {op: upsample, name: up_one, like: merge}
  - {op: act, name: pre, from: merge, act: relu}
  - {op: shuffle, name: shuffled, groups: 4}
  - {op: sepconv, name: sep, c: 24, k: 3, n: 2}
  - {op: shuffle_unit, name: su, c: 24, groups: 3}
  - {op: maxpool, name: mpool, k: 3, s: 2}
  - {op: avgpool, name: apool, k: 3, s: 1, count_pad: true}
  - {op: avgpool, name: apool_real, from: merge, k: 3, s: 2}
  - {op: add, name: pools, from: [apool, apool_real]}
  - {op: upsample, name: up_pools, like: merge, mode: nearest}
  - {op: shift, name: shifted_px, from: merge}
  - {op: concat, name: cat, from: [merge, up_lin, up_one, up_pools, shifted_px]}
  - {op: conv2d, name: seg, c: 5, k: 1, act: linear, bn: false}
  - {op: conv2d, name: pool_proj, from: gpool, c: 16, k: 1}
  - {op: fc, name: hidden, c: 12, act: relu}
  - {op: fc, name: logits, c: num_classes}
  - {op: fc, name: gate_a, from: hidden, c: 12, bias: false, act: relu6}
  - {op: act, name: gate_a6, act: relu6}
  - {op: add, name: gate_sum, from: [hidden, gate_a6]}
  - {op: concat, name: gate_cat, from: [gate_sum, hidden]}
  - {op: conv2d, name: gate, c: 4, k: 1}
"""


@pytest.fixture(scope="session")
def branching_graph():
    """The lowered BRANCHING_SPEC."""
    from archspec.lower import lower
    from archspec.spec import load_spec_text

    return lower(load_spec_text(BRANCHING_SPEC, "tiny_branching.yaml"))


# Resize cases: (input h, w, rows after the input, outputs). Sizes from 1×1, integer and
# non-integer up- and down-sampling ratios, non-square maps.
RESIZES = {
    "from_1x1": ([1, 1], ["{op: upsample, name: up, factor: 7, mode: MODE}"], "[up]"),
    "up_3x5_to_4x7": (
        [3, 5],
        [
            "{op: upsample, name: big, factor: 3, mode: nearest}",
            "{op: avgpool, name: ref, k: 3, s: 2}",
            "{op: upsample, name: up, from: input, like: ref, mode: MODE}",
        ],
        "[up, ref]",
    ),
    "down_7x10_to_5x8": (
        [7, 10],
        [
            "{op: avgpool, name: ref, k: 3, s: 1}",
            "{op: upsample, name: up, from: input, like: ref, mode: MODE}",
        ],
        "[up, ref]",
    ),
    "up_14_to_224": ([14, 14], ["{op: upsample, name: up, factor: 16, mode: MODE}"], "[up]"),
}


def resize_graph(case: str, mode: str):
    """A lowered spec that resizes its input as RESIZES[case] says, in `mode`."""
    from archspec.lower import lower
    from archspec.spec import load_spec_text

    hw, rows, outputs = RESIZES[case]
    text = (
        f"name: resize\ninput: {{resolution: {hw}, channels: 2}}\noutputs: {outputs}\nlayers:\n"
        + "".join(f"  - {r.replace('MODE', mode)}\n" for r in rows)
    )
    return lower(load_spec_text(text, "resize.yaml"))
