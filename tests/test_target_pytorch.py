"""The PyTorch target: golden text, torchvision's parameter count and state-dict shapes, numerics
against the numpy reference, fvcore's MAdds, ruff-cleanliness and standalone-ness."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from archspec.analysis.cost import analyze_cost
from archspec.emit import emit, environment
from archspec.errors import SpecError
from archspec.lower import lower
from archspec.ops import GRAPH_OPS
from archspec.spec import load_spec, load_spec_text
from archspec.targets import pytorch as target
from archspec.verify import import_module_file
from archspec.weights import init_weights, reference_forward
from tests.conftest import RESIZES, resize_graph

torch = pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parent.parent
MNV2 = ROOT / "specs" / "mnv2_1.0.yaml"
# A copy of torchvision.models.mobilenet_v2().state_dict()'s shapes (torchvision itself cannot be
# installed here); the file records how it was produced.
TORCHVISION_SHAPES = (
    ROOT / "tests" / "golden" / "pytorch" / "torchvision_mnv2_1.0_state_dict_shapes.json"
)
WIDTHS = ("0.35", "0.5", "0.75", "1.0", "1.3", "1.4")


def _module(graph, tmp_path: Path):
    path = tmp_path / "generated.py"
    path.write_text(target.render_module(graph, environment()), encoding="utf-8")
    return import_module_file(path)


def _run(model, x: np.ndarray) -> list[np.ndarray]:
    with torch.no_grad():
        out = model(torch.from_numpy(x))
    return [o.numpy() for o in (out if isinstance(out, tuple) else (out,))]


def _reference(graph, weights, x: np.ndarray) -> dict[str, np.ndarray]:
    refs = [reference_forward(graph, weights, xi) for xi in x]
    return {name: np.stack([r[name] for r in refs]) for name in graph.outputs}


@pytest.fixture(scope="module")
def mnv2():
    return lower(load_spec(str(MNV2)))


def test_golden_mnv2(mnv2, golden) -> None:
    golden("pytorch/mnv2_1.0.py", target.render_module(mnv2, environment()))


def test_output_is_deterministic_and_named_after_the_spec(mnv2) -> None:
    weights = init_weights(mnv2, 0)
    first = emit(mnv2, "pytorch", weights)
    second = emit(mnv2, "pytorch", init_weights(mnv2, 0))
    assert list(first) == ["mobilenet_v2_1_0_224.py"]
    assert first == second


@pytest.mark.parametrize("width", WIDTHS)
def test_parameter_count_is_params_with_bn(width: str, tmp_path: Path) -> None:
    graph = lower(load_spec(str(MNV2), [f"width_multiplier={width}"]))
    model = _module(graph, tmp_path).build_model()
    count = sum(p.numel() for p in model.parameters())
    assert count == analyze_cost(graph).params_with_bn
    if width == "1.0":
        assert count == 3_504_872  # torchvision's mobilenet_v2()


def test_state_dict_shapes_match_torchvision_in_order(mnv2, tmp_path: Path) -> None:
    reference = json.loads(TORCHVISION_SHAPES.read_text())
    expected = [tuple(e["shape"]) for e in reference["entries"]]
    state = _module(mnv2, tmp_path).build_model().state_dict()
    assert len(state) == reference["n_entries"] == 314
    assert [tuple(t.shape) for t in state.values()] == expected
    # Buffers line up too: BatchNorm running statistics sit where torchvision's do.
    kinds = [k.rsplit(".", 1)[1] for k in state]
    assert kinds == [e["key"].rsplit(".", 1)[1] for e in reference["entries"]]


def test_torchvision_state_dict_loads_through_the_key_mapping(mnv2, tmp_path: Path) -> None:
    """A state dict with torchvision's keys and shapes (random values) loads through
    `from_torchvision_state_dict` and computes what the same values do loaded as canonical
    archspec weights (paired with torchvision's entries by order, BatchNorm counters aside)."""
    reference = json.loads(TORCHVISION_SHAPES.read_text())["entries"]
    rng = np.random.default_rng(11)
    tv = {}
    for e in reference:
        if e["key"].endswith("num_batches_tracked"):
            tv[e["key"]] = torch.tensor(5, dtype=torch.int64)
        elif e["key"].endswith("running_var"):
            tv[e["key"]] = torch.from_numpy(rng.uniform(0.5, 1.5, e["shape"]).astype(np.float32))
        else:
            tv[e["key"]] = torch.from_numpy(
                rng.standard_normal(e["shape"]).astype(np.float32) * 0.1
            )
    canonical_keys = list(init_weights(mnv2, 0))
    values = [v.numpy() for k, v in tv.items() if not k.endswith("num_batches_tracked")]
    canonical = dict(zip(canonical_keys, values, strict=True))
    module = _module(mnv2, tmp_path)
    model = module.Network()
    result = model.load_state_dict(module.from_torchvision_state_dict(tv), strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    model.eval()
    x = np.random.default_rng(5).standard_normal((2, 3, 224, 224)).astype(np.float32)
    (ours,) = _run(model, x)
    (expected,) = _run(module.build_model(canonical), x)
    np.testing.assert_array_equal(ours, expected)
    assert len(module.TORCHVISION_MODULES) == 53


def test_torchvision_mapping_only_for_its_layout(branching_graph) -> None:
    mnv1 = lower(load_spec(str(ROOT / "specs" / "paper" / "mnv1_1.0.yaml")))  # no blocks
    for graph in (branching_graph, mnv1):
        text = target.render_module(graph, environment())
        assert "from_torchvision_state_dict" not in text and "NODE_MODULES" in text


def test_block_classes_and_stages(mnv2) -> None:
    """One class per block kind, the bottleneck rows as Sequential stages, a short forward."""
    text = target.render_module(mnv2, environment())
    tree = ast.parse(text)
    classes = [n.name for n in tree.body if isinstance(n, ast.ClassDef)]
    assert classes == ["ConvBN", "InvertedResidual", "Network"]
    assert text.count("nn.Sequential(") == 5
    network = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Network")
    forward = next(
        f for f in network.body if isinstance(f, ast.FunctionDef) and f.name == "forward"
    )
    assert len(forward.body) == 12


def test_mnv2_matches_numpy_reference(mnv2, tmp_path: Path) -> None:
    weights = init_weights(mnv2, 7)
    model = _module(mnv2, tmp_path).build_model(weights)
    assert not model.training
    x = np.random.default_rng(3).standard_normal((2, 3, 224, 224)).astype(np.float32)
    (out,) = _run(model, x)
    ref = _reference(mnv2, weights, x)["classifier"].reshape(2, 1000)
    assert out.shape == (2, 1000)
    assert np.abs(out - ref).max() <= 1e-4 * max(1.0, np.abs(ref).max())


def test_branching_spec_matches_numpy_reference(branching_graph, tmp_path: Path) -> None:
    graph = branching_graph
    assert {n.op for n in graph.ops()} == set(GRAPH_OPS) - {"input"}
    weights = init_weights(graph, 1)
    model = _module(graph, tmp_path).build_model(weights)
    x = np.random.default_rng(4).standard_normal((3, 3, 20, 14)).astype(np.float32)
    outs = _run(model, x)
    ref = _reference(graph, weights, x)
    assert [o.shape for o in outs] == [(3, 8, 5, 4), (3, 7), (3, 8, 1, 1)]
    for name, out in zip(graph.outputs, outs, strict=True):
        expected = ref[name].reshape(out.shape)
        assert np.abs(out - expected).max() <= 1e-4 * max(1.0, np.abs(expected).max()), name


@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
@pytest.mark.parametrize("case", sorted(RESIZES))
def test_resize_matches_the_numpy_oracle(case: str, mode: str, tmp_path: Path) -> None:
    graph = resize_graph(case, mode)
    x = np.random.default_rng(8).standard_normal((2, *graph.input.shape)).astype(np.float32)
    outs = _run(_module(graph, tmp_path).build_model({}), x)
    ref = _reference(graph, {}, x)
    for name, out in zip(graph.outputs, outs, strict=True):
        np.testing.assert_allclose(out, ref[name], rtol=0, atol=1e-5, err_msg=name)


def test_weights_load_from_file_mapping_and_default(branching_graph, tmp_path: Path) -> None:
    from archspec.weights import save_weights

    weights = init_weights(branching_graph, 2)
    path = tmp_path / "weights.npz"
    path.write_bytes(save_weights(weights))
    module = _module(branching_graph, tmp_path)
    x = np.random.default_rng(0).standard_normal((1, 3, 20, 14)).astype(np.float32)
    from_file = _run(module.build_model(str(path)), x)
    from_dict = _run(module.build_model(weights), x)
    for a, b in zip(from_file, from_dict, strict=True):
        np.testing.assert_array_equal(a, b)
    untrained = module.build_model()
    assert not untrained.training
    assert not np.allclose(_run(untrained, x)[1], from_file[1])


def test_bad_weights_are_named(branching_graph, tmp_path: Path) -> None:
    module = _module(branching_graph, tmp_path)
    weights = init_weights(branching_graph, 0)
    with pytest.raises(KeyError, match="stem.weight"):
        module.build_model({k: v for k, v in weights.items() if k != "stem.weight"})
    with pytest.raises(KeyError, match="stem.nonsense"):
        module.build_model({**weights, "stem.nonsense": np.zeros(3)})
    with pytest.raises(ValueError, match="logits.bias.*shape \\[3\\]; expected \\[7\\]"):
        module.build_model({**weights, "logits.bias": np.zeros(3, np.float32)})


# 60-odd-character names (the longest legal) and a description that is hostile to docstrings:
# the layout must still be what `ruff format` would write.
LONG_NAMES_SPEC = """
name: long-names.spec
description: 'Tricky \"\"\" docstring \\ text, and a sentence that runs on and on beyond the line length
  limit of one hundred characters.'
input: {resolution: 16, channels: 3}
outputs: [a_very_long_name_for_the_classifier_layer_that_goes_on_and_onx, long_merge_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx]
layers:
  - {op: conv2d, name: a_very_long_name_for_the_stem_convolution_layer_that_goes_on_x, c: 16, s: 2, k: 3, dilation: 3}
  - {op: bottleneck, name: a_very_long_name_for_the_bottleneck_layer_that_goes_on_and_on, t: 6, c: 16, n: 2}
  - {op: conv2d, name: b_very_long_name_for_the_second_branch_conv_that_goes_on_and_o, from: a_very_long_name_for_the_stem_convolution_layer_that_goes_on_x, c: 16, k: 3, groups: 16}
  - {op: add, name: long_merge_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx, from: [a_very_long_name_for_the_bottleneck_layer_that_goes_on_and_on, b_very_long_name_for_the_second_branch_conv_that_goes_on_and_o, a_very_long_name_for_the_stem_convolution_layer_that_goes_on_x], act: relu6}
  - {op: upsample, name: up_very_long_name_for_the_upsample_layer_that_goes_on_and_onxx, like: input}
  - {op: concat, name: cat_very_long_name_for_the_concat_layer_that_goes_on_and_onxxx, from: [up_very_long_name_for_the_upsample_layer_that_goes_on_and_onxx, input]}
  - {op: avgpool, name: pool_very_long_name_for_the_global_pool_layer_that_goes_onxxx, global: true}
  - {op: fc, name: a_very_long_name_for_the_classifier_layer_that_goes_on_and_onx, c: 10, act: relu6}
"""  # noqa: E501


@pytest.mark.parametrize("which", ["mnv2", "branching", "long_names"])
def test_generated_code_is_ruff_clean_and_standalone(
    which: str, mnv2, branching_graph, tmp_path: Path
) -> None:
    if which == "long_names":
        graph = lower(load_spec_text(LONG_NAMES_SPEC, "long.yaml"))
    else:
        graph = mnv2 if which == "mnv2" else branching_graph
    text = target.render_module(graph, environment())
    path = tmp_path / "generated.py"
    path.write_text(text, encoding="utf-8")
    config = str(ROOT / "pyproject.toml")
    ruff = [sys.executable, "-m", "ruff"]
    check = subprocess.run(
        [*ruff, "check", "--config", config, "--no-cache", str(path)],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    fmt = subprocess.run(
        [*ruff, "format", "--check", "--diff", "--config", config, "--no-cache", str(path)],
        capture_output=True,
        text=True,
    )
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr
    imported = set()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add((node.module or "").split(".")[0])
    assert imported == {"__future__", "collections", "os", "numpy", "torch"}
    if which == "long_names":
        model = import_module_file(path).build_model(init_weights(graph, 0))
        outs = _run(model, np.zeros((1, 3, 16, 16), np.float32))
        assert [o.shape for o in outs] == [(1, 10), (1, 16, 8, 8)]


def test_fvcore_counts_our_madds(mnv2, branching_graph, tmp_path: Path) -> None:
    fvcore = pytest.importorskip("fvcore.nn")
    for graph in (mnv2, branching_graph):
        model = _module(graph, tmp_path).build_model()
        x = torch.zeros((1, *graph.input.shape))
        counts = fvcore.FlopCountAnalysis(model, x)
        counts.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        by_op = counts.by_operator()
        assert by_op["conv"] + by_op["linear"] == analyze_cost(graph, "slim").madds
        assert counts.total() == analyze_cost(graph, "fvcore").madds, dict(by_op)
    assert analyze_cost(mnv2, "slim").madds == 300_774_272


def test_module_attribute_list_matches_torch() -> None:
    import re

    names = {n for n in dir(torch.nn.Module) if re.match("^[A-Za-z]", n)}
    names |= {n for n in vars(torch.nn.Module()) if re.match("^[A-Za-z]", n)}
    assert names <= target.MODULE_ATTRIBUTES


def test_node_named_like_a_module_method_is_refused() -> None:
    text = """
name: clash
input: {resolution: 8, channels: 3}
layers:
  - {op: conv2d, name: train, c: 8, k: 3}
"""
    graph = lower(load_spec_text(text, "clash.yaml"))
    with pytest.raises(SpecError, match="torch.nn.Module") as info:
        emit(graph, "pytorch", init_weights(graph))
    assert info.value.location is not None and info.value.location.line == 5


def test_block_named_like_a_module_method_is_refused() -> None:
    text = """
name: clash
input: {resolution: 8, channels: 3}
layers:
  - {op: conv2d, name: stem, c: 8, k: 3}
  - {op: bottleneck, name: train, t: 6, c: 8, n: 1}
"""
    graph = lower(load_spec_text(text, "clash.yaml"))
    with pytest.raises(SpecError, match="'train' cannot name a PyTorch submodule"):
        emit(graph, "pytorch", init_weights(graph))


def test_a_row_with_several_stages_names_them_apart(branching_graph) -> None:
    text = target.render_module(branching_graph, environment())
    assert "self.sep = nn.Sequential(" in text and "self.sep_1 = nn.Sequential(" in text


def test_pyformat_lays_statements_out_like_ruff(tmp_path: Path) -> None:
    """Statements of every shape the targets write, at lengths around the line limit, laid out by
    `pyformat` and left unchanged by `ruff format`."""
    from archspec.targets import pyformat

    texts = []
    for n in (5, 20, 35, 60):
        a, b, c = ("a" * n, "b" * n, "c" * n)
        texts += [
            f"ConvBN({a.count('a')}, 16, 3, stride=2, padding=1, act=nn.ReLU6)",
            f"torch.nn.functional.relu6({a} + {b} + {c})",
            f"torch.cat(({a}, {b}, {c}), 1)",
            f"keras.layers.Add(name='{a}')([{a}, {b}, {c}])",
            f"self.{a}(torch.flatten({b}, 1))",
            f"{a}.unflatten(1, (4, 6)).transpose(1, 2).flatten(1, 2)",
        ]
    body = []
    for i, text in enumerate(texts):
        expr = pyformat.parse(text.replace("'", '"'))
        assert pyformat.flat(expr) == text.replace("'", '"')
        body.append(pyformat.assign(1, f"v{i}", expr))
    source = "def f():\n" + "\n".join(body) + "\n"
    path = tmp_path / "laid_out.py"
    path.write_text(source, encoding="utf-8")
    config = str(ROOT / "pyproject.toml")
    fmt = subprocess.run(
        [
            sys.executable,
            "-m",
            "ruff",
            "format",
            "--check",
            "--diff",
            "--config",
            config,
            str(path),
        ],
        capture_output=True,
        text=True,
    )
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr
