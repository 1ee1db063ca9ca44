"""The detectors and segmenters of the paper's Tables 5, 6 and 7 (specs/paper/).

* Every count the report gives (whole network, part `backbone`, part `head`, the `tf1` profile's
  space-to-batch term) equals an arithmetic of the architecture written out here from its
  published description (`networks.md`: TF Object Detection API, research/deeplab), independent of
  the specs and of the lowering.
* The paper's figures within 2% under the convention each uses (Table 7: `tf1`, params with
  BatchNorm), except Table 5's SSDLite 0.35B MAdds, whose difference is asserted as documented.
* The layout: feature maps, output-stride rule (stride and dilation of every strided or dilated
  conv), outputs; `--set` on a composed spec.
* The order search on the SSDLite and ASPP heads, and the C target running MobileNetV2 + SSDLite
  against ONNX Runtime with the measured arena equal to the planned peak.
"""

from __future__ import annotations

import json
import shutil
from math import ceil
from pathlib import Path

import pytest

from archspec import analyze_cost, load_spec, lower
from archspec.analysis.memory import memory_problem
from archspec.analysis.schedule import Problem, greedy_order, optimal_order, peak
from archspec.cli import main
from archspec.graph import Graph
from archspec.paper_figures import FIGURES, SSDLITE_035, TOLERANCE, printed_value

SPECS = Path(__file__).resolve().parent.parent / "specs"
PAPER = SPECS / "paper"
MINE = (
    "mnv2_ssd_320.yaml",
    "mnv2_ssdlite_320.yaml",
    "mnv1_ssdlite_320.yaml",
    "mnv2_deeplabv3.yaml",
    "mnv2_deeplabv3_aspp.yaml",
    "mnv1_deeplabv3_aspp.yaml",
    "resnet101_deeplabv3_aspp.yaml",
)


def _graph(name: str, *overrides: str) -> Graph:
    return lower(load_spec(str(PAPER / name), list(overrides)))


# ---------------------------------------------------------------------------------------------
# The architectures by hand: (params, BatchNorm γ+β, MAdds) accumulated layer by layer.


class Tally:
    """Params, BatchNorm parameters and MAdds of convs added one by one (SAME padding)."""

    def __init__(self) -> None:
        self.params = 0
        self.bn = 0
        self.madds = 0

    def conv(self, cin: int, cout: int, k: int, n_out: int, *, bn: bool = True) -> None:
        """A full k x k conv to an n_out x n_out map; a bias exactly when there is no BN."""
        self.params += cin * cout * k * k + (0 if bn else cout)
        self.bn += 2 * cout if bn else 0
        self.madds += n_out * n_out * cin * cout * k * k

    def dw(self, c: int, n_out: int) -> None:
        """A 3x3 depthwise conv with BatchNorm."""
        self.params += 9 * c
        self.bn += 2 * c
        self.madds += n_out * n_out * 9 * c


MNV2_STAGES = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1))
MNV2_LATE = ((6, 160, 3, 2), (6, 320, 1, 1))


def mnv2_by_hand(res: int, output_stride: int | None) -> tuple[Tally, dict[str, tuple[int, int]]]:
    """MobileNetV2 (Table 2) without pooling and classifier; with an output stride, TF-slim's rule
    (stride 1 once the stride reached it) and no final 1x1 conv (DeepLab's layer_18). Returns the
    tally and the (channels, size) of the maps SSD and DeepLab read."""
    tally, maps = Tally(), {}
    n = ceil(res / 2)
    tally.conv(3, 32, 3, n)
    cin, stride, index = 32, 2, 0
    for t, c, reps, s in MNV2_STAGES + MNV2_LATE:
        for i in range(reps):
            st = s if i == 0 else 1
            if output_stride is not None and stride == output_stride:
                st = 1
            stride *= st
            hidden = cin * t
            if t != 1:
                tally.conv(cin, hidden, 1, n)
                if index == 13:
                    maps["block13.expand"] = (hidden, n)
            n = ceil(n / st)
            tally.dw(hidden, n)
            tally.conv(hidden, c, 1, n)
            cin, index = c, index + 1
    if output_stride is None:
        tally.conv(cin, 1280, 1, n)
        cin = 1280
    maps["features"] = (cin, n)
    return tally, maps


MNV1_LAYERS = ((1, 64), (2, 128), (1, 128), (2, 256), (1, 256), (2, 512)) + ((1, 512),) * 5
MNV1_LAYERS += ((2, 1024), (1, 1024))


def mnv1_by_hand(res: int, output_stride: int | None) -> tuple[Tally, dict[str, tuple[int, int]]]:
    """MobileNetV1 up to Conv2d_13_pointwise (TF-slim's _CONV_DEFS), with the output-stride rule."""
    tally, maps = Tally(), {}
    n = ceil(res / 2)
    tally.conv(3, 32, 3, n)
    cin, stride = 32, 2
    for i, (s, c) in enumerate(MNV1_LAYERS, 1):
        if output_stride is not None and stride == output_stride:
            s = 1
        stride *= s
        n = ceil(n / s)
        tally.dw(cin, n)
        tally.conv(cin, c, 1, n)
        cin = c
        if i == 11:
            maps["Conv2d_11"] = (cin, n)
    maps["features"] = (cin, n)
    return tally, maps


def resnet101_beta_by_hand(res: int) -> tuple[Tally, tuple[int, int]]:
    """resnet_v1_101_beta at output stride 16: three-conv stem, max pool, blocks of 3, 4, 23, 3
    units with the stride on the last unit's 3x3 (block 3's is 1 at OS 16), projection shortcuts
    where the depth changes."""
    tally = Tally()
    n = ceil(res / 2)
    tally.conv(3, 64, 3, n)
    tally.conv(64, 64, 3, n)
    tally.conv(64, 128, 3, n)
    n, cin = ceil(n / 2), 128
    for mid, units, stride in ((64, 3, 2), (128, 4, 2), (256, 23, 1), (512, 3, 1)):
        out = 4 * mid
        for u in range(units):
            m = ceil(n / (stride if u == units - 1 else 1))
            if cin != out:
                tally.conv(cin, out, 1, n)
            tally.conv(cin, mid, 1, n)
            tally.conv(mid, mid, 3, m)
            tally.conv(mid, out, 1, m)
            cin, n = out, m
    return tally, (cin, n)


EXTRA_DEPTHS = (512, 256, 256, 128)
ANCHORS = (3, 6, 6, 6, 6, 6)
BOX_CODES = 4


def ssd_head_by_hand(maps: list[tuple[int, int]], lite: bool, classes: int = 80) -> Tally:
    """TF OD API's extra layers and convolutional box predictors on two backbone maps."""
    tally, maps = Tally(), list(maps)
    c, n = maps[-1]
    for depth in EXTRA_DEPTHS:
        tally.conv(c, depth // 2, 1, n)
        n = ceil(n / 2)
        if lite:
            tally.dw(depth // 2, n)
            tally.conv(depth // 2, depth, 1, n)
        else:
            tally.conv(depth // 2, depth, 3, n)
        c = depth
        maps.append((c, n))
    for (c, n), anchors in zip(maps, ANCHORS, strict=True):
        for per_anchor in (BOX_CODES, classes + 1):
            if lite:
                tally.dw(c, n)
                tally.conv(c, anchors * per_anchor, 1, n, bn=False)
            else:
                tally.conv(c, anchors * per_anchor, 3, n, bn=False)
    return tally


def deeplab_head_by_hand(cin: int, n: int, aspp: bool, classes: int = 21) -> Tally:
    """Image pooling, a 1x1 branch, (ASPP: three 3x3 branches), projection, logits."""
    tally = Tally()
    tally.conv(cin, 256, 1, 1)  # image pooling's 1x1 conv on the pooled 1x1 map
    tally.conv(cin, 256, 1, n)
    branches = 2
    if aspp:
        for _ in (6, 12, 18):
            tally.conv(cin, 256, 3, n)
        branches += 3
    tally.conv(branches * 256, 256, 1, n)
    tally.conv(256, classes, 1, n, bn=False)
    return tally


def tf1_side(n: int, k: int, rate: int) -> int:
    """Outputs per side TF 1.x computes for a stride-1 SAME conv dilated by `rate` (README)."""
    return (ceil((n + (k - 1) * rate) / rate) - (k - 1)) * rate


def space_to_batch_extra(n: int, rate: int, per_output: int) -> int:
    """MAdds computed beyond the n x n output by a 3x3 conv at `rate` (per_output: MAdds of one
    output position)."""
    return (tf1_side(n, 3, rate) ** 2 - n * n) * per_output


def _by_hand(spec: str) -> tuple[Tally, Tally]:
    """(backbone, head) of a spec, by hand."""
    if spec in ("mnv2_ssd_320.yaml", "mnv2_ssdlite_320.yaml"):
        backbone, maps = mnv2_by_hand(320, None)
        feats = [maps["block13.expand"], maps["features"]]
        return backbone, ssd_head_by_hand(feats, lite="lite" in spec)
    if spec == "mnv1_ssdlite_320.yaml":
        backbone, maps = mnv1_by_hand(320, None)
        return backbone, ssd_head_by_hand([maps["Conv2d_11"], maps["features"]], lite=True)
    if spec.startswith("mnv2_deeplab"):
        backbone, maps = mnv2_by_hand(513, 16)
    elif spec.startswith("mnv1_deeplab"):
        backbone, maps = mnv1_by_hand(513, 16)
    else:
        backbone, feat = resnet101_beta_by_hand(513)
        maps = {"features": feat}
    cin, n = maps["features"]
    return backbone, deeplab_head_by_hand(cin, n, aspp="aspp" in spec)


@pytest.mark.parametrize("spec", MINE)
def test_counts_equal_the_architecture_by_hand(spec: str) -> None:
    cost = analyze_cost(_graph(spec))
    backbone, head = _by_hand(spec)
    assert list(cost.parts) == ["backbone", "head"]
    for part, tally in (("backbone", backbone), ("head", head)):
        got = cost.parts[part]
        assert (got.params, got.params_with_bn, got.madds) == (
            tally.params,
            tally.params + tally.bn,
            tally.madds,
        ), part
    assert cost.madds == backbone.madds + head.madds


def test_detector_backbones_are_the_classifiers_without_their_classifier() -> None:
    """`trim_after` keeps exactly the base's rows up to the named one: the backbone part is the
    classification network at 320² less its pooling and fully connected layer."""
    for detector, base, features in (
        ("mnv2_ssdlite_320.yaml", SPECS / "mnv2_1.0.yaml", 1280),
        ("mnv1_ssdlite_320.yaml", PAPER / "mnv1_1.0.yaml", 1024),
    ):
        classifier = analyze_cost(lower(load_spec(str(base), ["resolution=320"])))
        backbone = analyze_cost(_graph(detector)).parts["backbone"]
        assert backbone.params == classifier.params - (features * 1000 + 1000)
        assert backbone.madds == classifier.madds - features * 1000


# ---------------------------------------------------------------------------------------------
# Layout.


def test_detector_feature_maps_and_outputs() -> None:
    for spec, first, second in (
        ("mnv2_ssdlite_320.yaml", "block13_expand", "last_conv"),
        ("mnv2_ssd_320.yaml", "block13_expand", "last_conv"),
        ("mnv1_ssdlite_320.yaml", "Conv2d_7_11_4_pw", "Conv2d_13_pw"),
    ):
        graph = _graph(spec)
        sources = [first, second, "extra1", "extra2", "extra3", "extra4"]
        sizes = [20, 10, 5, 3, 2, 1]
        assert [graph.node(s).shape.h for s in sources] == sizes
        names = [f"{kind}{i}" for i in range(6) for kind in ("box", "class")]
        assert list(graph.outputs) == names
        for i, anchors in enumerate(ANCHORS):
            assert graph.node(f"box{i}").shape.c == anchors * BOX_CODES
            assert graph.node(f"class{i}").shape.c == anchors * 81
            assert graph.node(f"box{i}").shape.h == sizes[i]
        part = {node.name: node.part for node in graph.ops()}
        assert part[first] == part[second] == "backbone" and part["extra1_reduce"] == "head"


def _strided_or_dilated(graph: Graph) -> list[tuple[str, int, int]]:
    """(name, stride, dilation) of every spatial conv after the output stride reached 16."""
    out = []
    for node in graph.ops():
        if node.op == "conv2d" and node.attrs["k"] > 1 and node.shape.h == 33:
            out.append((node.name, node.attrs["s"], node.attrs["dilation"]))
    return out


def test_output_stride_16_follows_tf_rule() -> None:
    """The first block past stride 16 runs at stride 1 and rate 1; later ones at rate 2 (2, 4, 8
    in ResNet's block 4); the backbone ends at 33x33."""
    mnv2 = _strided_or_dilated(_graph("mnv2_deeplabv3.yaml"))
    assert [(d, s) for name, s, d in mnv2 if name.endswith("_dw")][-4:] == [
        (1, 1),
        (2, 1),
        (2, 1),
        (2, 1),
    ]
    assert mnv2[-4][0] == "block13_dw"  # the first 160-channel block
    mnv1 = _strided_or_dilated(_graph("mnv1_deeplabv3_aspp.yaml"))
    assert mnv1[-5:] == [
        ("Conv2d_12_dw", 1, 1),
        ("Conv2d_13_dw", 1, 2),
        ("aspp1", 1, 6),
        ("aspp2", 1, 12),
        ("aspp3", 1, 18),
    ]
    resnet = _graph("resnet101_deeplabv3_aspp.yaml")
    rates = [(name, d) for name, _, d in _strided_or_dilated(resnet) if d > 1]
    assert rates[:3] == [
        ("block4_unit1_conv2", 2),
        ("block4_unit2_conv2", 4),
        ("features_conv2", 8),
    ]
    strided = [name for name, s, _ in _strided_or_dilated(resnet) if s != 1]
    assert strided == ["block2_unit4_conv2"]  # 65 -> 33; block 3's last unit is not strided
    block3 = [n for n in resnet.ops() if n.name.startswith("block3") and n.name.endswith("conv2")]
    assert len(block3) == 23 and {n.attrs["dilation"] for n in block3} == {1}
    for spec, channels in (
        ("mnv2_deeplabv3_aspp.yaml", 320),
        ("mnv1_deeplabv3_aspp.yaml", 1024),
        ("resnet101_deeplabv3_aspp.yaml", 2048),
    ):
        graph = _graph(spec)
        feature = graph.node("branches").inputs[1]  # the 1x1 branch's input
        assert graph.node(graph.node(feature).inputs[0]).shape.hwc() == [33, 33, channels]
        assert graph.node("logits").shape.hwc() == [33, 33, 21]


def test_set_applies_to_the_composed_detector() -> None:
    """Width scales backbone and extra layers; the predictors' outputs are counts, unscaled."""
    graph = _graph("mnv2_ssdlite_320.yaml", "width_multiplier=0.5", "resolution=288")
    assert graph.node("block13_expand").shape.hwc() == [18, 18, 288]
    assert graph.node("extra4").shape.hwc() == [1, 1, 64]
    assert graph.node("extra1").shape.c == 256
    assert graph.node("box0").shape.c == 3 * 4
    assert graph.node("class1").shape.c == 6 * 81
    assert _graph("mnv2_ssdlite_320.yaml", "num_classes=90").node("class0").shape.c == 3 * 91


# ---------------------------------------------------------------------------------------------
# The paper's figures.

OURS = [f for f in FIGURES if f.spec.removeprefix("paper/") in MINE]


def test_every_row_of_tables_5_6_7_is_one_of_these_specs() -> None:
    assert sorted({f.table for f in OURS}) == ["5", "6", "7"]
    assert {f.spec.removeprefix("paper/") for f in OURS} == set(MINE)
    assert len(OURS) == 8


def _ours(figure) -> tuple[int, int]:
    cost = analyze_cost(_graph(figure.spec.removeprefix("paper/"), *figure.sets), figure.profile)
    part = cost.parts[figure.part] if figure.part else cost
    return getattr(part, figure.params_key), part.madds


@pytest.mark.parametrize("figure", OURS, ids=lambda f: f"table{f.table}-{f.row}")
def test_paper_figures_within_2_percent(figure) -> None:
    params, madds = _ours(figure)
    printed_params = printed_value(figure.params)
    assert abs(params - printed_params) / printed_params < TOLERANCE, params
    if figure.note == SSDLITE_035:
        return  # test_ssdlite_head_madds_differ_as_documented
    printed_madds = printed_value(figure.madds)
    assert abs(madds - printed_madds) / printed_madds < TOLERANCE, madds


def test_ssdlite_head_madds_differ_as_documented() -> None:
    """Table 5's SSDLite head (0.35B) cannot be reproduced: the head is 0.178B MAdds, and Table 6
    (0.8B for the whole detector) agrees with 0.178B, not with 0.35B. The printed figure is within
    2% of twice ours, i.e. of the head's FLOPs, while SSD's 1.25B beside it is MAdds."""
    cost = analyze_cost(_graph("mnv2_ssdlite_320.yaml"))
    head, backbone = cost.parts["head"].madds, cost.parts["backbone"].madds
    assert abs(head - 0.178e9) / 0.178e9 < 0.01
    assert abs(backbone + head - 0.8e9) / 0.8e9 < TOLERANCE
    assert (backbone + 0.35e9 - 0.8e9) / 0.8e9 > 0.15
    assert abs(2 * head - 0.35e9) / 0.35e9 < TOLERANCE
    ssd = analyze_cost(_graph("mnv2_ssd_320.yaml")).parts["head"].madds
    assert abs(ssd - 1.25e9) / 1.25e9 < TOLERANCE


@pytest.mark.parametrize(
    ("spec", "extra"),
    [
        ("mnv2_deeplabv3.yaml", 3 * space_to_batch_extra(33, 2, 9 * 960)),
        (
            "mnv2_deeplabv3_aspp.yaml",
            3 * space_to_batch_extra(33, 2, 9 * 960)
            + sum(space_to_batch_extra(33, r, 9 * 320 * 256) for r in (6, 12, 18)),
        ),
        (
            "mnv1_deeplabv3_aspp.yaml",
            space_to_batch_extra(33, 2, 9 * 1024)
            + sum(space_to_batch_extra(33, r, 9 * 1024 * 256) for r in (6, 12, 18)),
        ),
        (
            "resnet101_deeplabv3_aspp.yaml",
            sum(space_to_batch_extra(33, r, 9 * 512 * 512) for r in (2, 4, 8))
            + sum(space_to_batch_extra(33, r, 9 * 2048 * 256) for r in (6, 12, 18)),
        ),
    ],
)
def test_table7_needs_tf1_space_to_batch(spec: str, extra: int) -> None:
    """`tf1` adds exactly the dilated convs' space-to-batch grid (34² at rate 2, 36² at 4, 6, 12,
    18, 40² at 8); with ASPP, only that brings Table 7's MAdds within 2% (true grid: 6-10% low)."""
    graph = _graph(spec)
    slim, tf1 = analyze_cost(graph), analyze_cost(graph, "tf1")
    assert tf1.terms["space_to_batch"] == extra == tf1.madds - slim.madds
    assert tf1.params_with_bn == slim.params_with_bn
    (figure,) = [f for f in OURS if f.spec == f"paper/{spec}"]
    printed = printed_value(figure.madds)
    assert abs(tf1.madds - printed) / printed < TOLERANCE
    if "aspp" in spec:
        assert (printed - slim.madds) / printed > 0.05


# ---------------------------------------------------------------------------------------------
# Order search on the heads.


def _orders(spec: str, tmp_path: Path) -> dict:
    out = tmp_path / "r.json"
    args = ["report", str(PAPER / spec), "--memory-mode", "op", "--format", "json", "-o", str(out)]
    assert main(args) == 0
    return json.loads(out.read_text(encoding="utf-8"))["memory"]["orders"]


def head_problem(graph: Graph) -> Problem:
    """The op-mode scheduling problem of the part `head` alone: the backbone maps it reads are
    given (live from the start), its outputs stay live."""
    problem, fops = memory_problem(graph, "op")
    part = {node.name: node.part for node in graph.ops()}
    head = [f.name for f in fops if part[f.output_node] == "head"]
    inside = set(head)
    given = sorted({t for op in head for t in problem.inputs.get(op, ()) if t not in inside})
    return Problem(
        ops=tuple(head),
        inputs={op: problem.inputs[op] for op in head},
        size={t: problem.size[t] for t in [*head, *given]},
        graph_inputs=tuple(given),
        outputs=tuple(o for o in problem.outputs if o in inside),
    )


@pytest.mark.parametrize(
    "spec", ["mnv2_ssdlite_320.yaml", "mnv1_ssdlite_320.yaml", "mnv2_deeplabv3_aspp.yaml"]
)
def test_order_search_on_the_heads(spec: str, tmp_path: Path) -> None:
    """Whole network (the report's `memory.orders`): the optimum is proven and no worse than the
    spec and greedy orders (there the backbone's early layers set the peak). The head alone:
    likewise, and the SSDLite heads gain from reordering (the optimum runs the predictors of the
    two backbone maps early, which frees those maps before the extra layers' outputs pile up)."""
    orders = _orders(spec, tmp_path)
    best = orders["optimal"]["peak_bytes"]
    assert orders["optimal"]["proven"]
    assert best <= min(orders["spec"]["peak_bytes"], orders["greedy"]["peak_bytes"])
    assert orders["saving_vs_spec_bytes"] == orders["spec"]["peak_bytes"] - best
    problem = head_problem(_graph(spec))
    result = optimal_order(problem)
    in_spec_order, _ = peak(problem, problem.ops)
    greedy, _ = peak(problem, greedy_order(problem))
    assert result.optimal and peak(problem, result.order)[0] == result.peak_bytes
    assert result.peak_bytes <= min(in_spec_order, greedy)
    if "ssdlite" in spec:
        assert result.peak_bytes < in_spec_order


# ---------------------------------------------------------------------------------------------
# The C target.


def _c_check(resolution: int, split: int | str, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    if shutil.which("gcc") is None:
        pytest.skip("needs gcc")
    from tests.test_target_c import build_and_check

    graph = _graph("mnv2_ssdlite_320.yaml", f"resolution={resolution}")
    assert len(graph.outputs) == 12
    build_and_check(graph, split, tmp_path)  # outputs vs ONNX Runtime; arena == planned peak


@pytest.mark.slow
def test_c_target_runs_mnv2_ssdlite_at_320(tmp_path: Path) -> None:
    """The full 320² network (about 30 s to emit, compile and run): the extra layers need the
    last map at 9x9 or more (a stride-2 conv on a 1x1 map is refused), so no resolution below
    257 builds."""
    _c_check(320, 1, tmp_path)


def test_c_target_runs_mnv2_ssdlite_at_288_split(tmp_path: Path) -> None:
    """The smallest resolution on the 32-pixel grid that builds, with the fused bottlenecks split
    in two groups."""
    _c_check(288, 2, tmp_path)
