"""Every user-facing error message is triggered by a test: through the CLI (exit 2, the message,
its location, no traceback, nothing written) wherever a user can reach it, else through the
function whose guard it is. The other messages are covered by tests/bad_specs.py and the tests
of each module; this file holds the rest."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
import yaml

from archspec.cli import main
from archspec.emit import emit
from archspec.errors import Location, SpecError
from archspec.lower import MAX_NODES, lower
from archspec.pareto import Axis, parse_axes, plot
from archspec.spec import load_spec_text
from archspec.variants import Space
from archspec.verify import resolve_weights
from archspec.weights import init_weights
from archspec.yamlsrc import MAX_DOCUMENT_BYTES
from tests.bad_specs import marked_line, rows

ROOT = Path(__file__).resolve().parent.parent
MNV2 = str(ROOT / "specs" / "mnv2_1.0.yaml")
FIGURE5 = str(ROOT / "specs" / "spaces" / "mnv2_figure5.yaml")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    """Exit status and stderr of one CLI run that must not print a traceback or any output."""
    code = main(list(argv))
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    if code == 2:
        assert captured.out == ""
    return code, captured.err


def assert_located(err: str, path: Path, line: int) -> None:
    match = re.search(re.escape(str(path)) + r":(\d+):(\d+): ", err)
    assert match, f"no {path}:line:col in {err!r}"
    assert int(match.group(1)) == line, err
    assert int(match.group(2)) >= 1


# -- spec files through `validate`, `report` and `build` ---------------------------------------

SPEC_CASES = [
    (
        "yaml_merge_key",
        "name: x\ninput: {resolution: 32}\nlayers:\n  - &c {op: conv2d, c: 8}\n"
        "  - {<<: *c, name: b}  #<-\n",
        "YAML merge keys (<<) are not supported",
    ),
    (
        "number_key",
        rows("- {op: conv2d, c: 8, 3: x}  #<-"),
        "found key 3; expected a text key",
    ),
    (
        "row_name_not_text",
        rows("- {op: conv2d, name: 5, c: 16}  #<-"),
        "layers[0].name: found 5; expected a row name",
    ),
    (
        "row_name_keyword",
        rows("- {op: conv2d, name: lambda, c: 16}  #<-"),
        "layers[0].name: 'lambda' cannot be a name: it is a Python keyword",
    ),
    (
        "reference_reserved",
        rows("- {op: conv2d, name: a, c: 16}", "- {op: conv2d, from: self, c: 16}  #<-"),
        "layers[1].from: 'self' cannot be a name: it is reserved by the generated code",
    ),
    (
        "one_input_op_with_two",
        rows(
            "- {op: conv2d, name: a, c: 16}",
            "- {op: conv2d, name: b, c: 16}",
            "- {op: conv2d, from: [a, b], c: 16}  #<-",
        ),
        "found 2 inputs; a conv2d row takes one (use `add` or `concat` to merge)",
    ),
    (
        "node_name_taken_by_a_block",
        rows("- {op: bottleneck, name: b, t: 6, c: 16}", "- {op: conv2d, name: b_dw, c: 16}  #<-"),
        "layers[1].name: duplicate name 'b_dw' (the graph already has a node of that name)",
    ),
    (
        "row_name_twice",
        rows("- {op: bottleneck, name: a, t: 6, c: 16}", "- {op: conv2d, name: a, c: 16}  #<-"),
        "layers[1].name: duplicate row name 'a' (first used at line 5)",
    ),
    (
        "output_twice",
        "name: x\ninput: {resolution: 32}\noutputs: [b, a, b]  #<-\nlayers:\n"
        "  - {op: conv2d, name: a, c: 8}\n  - {op: conv2d, name: b, c: 8}\n",
        "outputs: output 'b' is listed twice; expected each output once",
    ),
    (
        "unused_row",
        rows(
            "- {op: conv2d, name: a, c: 16}",
            "- {op: dwconv, name: side}  #<-",
            "- {op: conv2d, from: a, c: 8}",
        ),
        "layers[1]: the output of this dwconv row is never used",
    ),
    (
        "tensor_too_large",
        "name: x\ninput: {resolution: 8192, channels: 3}\nlayers:\n"
        "  - {op: conv2d, name: wide, c: 65536, k: 1}  #<-\n",
        "wide would hold 4,398,046,511,104 elements; expected at most 2,147,483,648",
    ),
    (
        "too_many_rows",
        "name: x\ninput: {resolution: 32}\nlayers:\n  - {op: conv2d, c: 8}  #<-\n"
        + "  - {op: conv2d, c: 8}\n" * 1000,
        "layers: found 1001 rows; expected at most 1000",
    ),
    (
        "description_with_nul",
        'name: x\ndescription: "a\\0b"  #<-\ninput: {resolution: 32}\nlayers:\n'
        "  - {op: conv2d, c: 8}\n",
        "description: found the character U+0000 at position 2; expected text without NUL",
    ),
]


def _too_many_nodes() -> tuple[str, int]:
    # Bottlenecks of n=64 repeats add 255 nodes (the first, t=2 from 3 channels: no residual
    # add) then 256 per row; the input node counts too.
    text = "name: x\ninput: {resolution: 4}\nlayers:\n" + (
        "  - {op: bottleneck, t: 2, c: 8, n: 64}\n" * 100
    )
    failing_row = next(r for r in range(100) if 1 + 255 + 256 * r >= MAX_NODES)
    return text, 4 + failing_row


@pytest.mark.parametrize(("case", "text", "message"), SPEC_CASES, ids=[c[0] for c in SPEC_CASES])
@pytest.mark.parametrize("command", ["validate", "report", "build"])
def test_spec_error_is_located(tmp_path, capsys, case, text, message, command):
    spec = tmp_path / f"{case}.yaml"
    spec.write_text(text, encoding="utf-8")
    out = tmp_path / "out"
    extra = {
        "validate": [],
        "report": ["-o", str(out)],
        "build": ["--target", "onnx", "-o", str(out)],
    }
    code, err = run(capsys, command, str(spec), *extra[command])
    assert code == 2
    assert message in err, err
    assert_located(err, spec, marked_line(text))
    assert not out.exists()


def test_graph_node_limit(tmp_path, capsys):
    text, line = _too_many_nodes()
    spec = tmp_path / "nodes.yaml"
    spec.write_text(text)
    code, err = run(capsys, "validate", str(spec))
    assert code == 2
    assert f"the graph would have more than {MAX_NODES} nodes" in err
    assert_located(err, spec, line)


def test_keras_layer_name_clash_is_located(tmp_path, capsys):
    text = rows("- {op: conv2d, name: a, c: 16}", "- {op: conv2d, name: a_bn, c: 16}  #<-")
    spec = tmp_path / "clash.yaml"
    spec.write_text(text)
    out = tmp_path / "out"
    code, err = run(capsys, "build", str(spec), "--target", "keras", "-o", str(out))
    assert code == 2
    assert "the Keras target would name two layers 'a_bn' (one for node 'a', one for node " in err
    assert "hint: rename one of the rows" in err
    assert_located(err, spec, marked_line(text))
    assert not out.exists()
    # The same spec is fine for a target without layer-name suffixes.
    assert run(capsys, "build", str(spec), "--target", "pytorch", "-o", str(out))[0] == 0


# -- YAML reading limits ------------------------------------------------------------------------


def test_file_larger_than_the_limit(tmp_path, capsys):
    spec = tmp_path / "huge.yaml"
    spec.write_bytes(b"name: x\n" + b"# padding\n" * (MAX_DOCUMENT_BYTES // 10 + 1))
    code, err = run(capsys, "validate", str(spec))
    assert code == 2
    assert f"error: {spec}: file is larger than 4 MiB" in err


def test_text_larger_than_the_limit():
    with pytest.raises(SpecError) as info:
        load_spec_text("name: x\n" + "#" * MAX_DOCUMENT_BYTES, "big.yaml")
    assert info.value.render() == "big.yaml: file is larger than 4 MiB"


def test_other_yaml_errors_are_bad_input(tmp_path, capsys, monkeypatch):
    # PyYAML's composer raises only marked errors and reader errors (both tested in
    # bad_specs); any other YAMLError must still be a clean exit 2.
    def broken(*args, **kwargs):
        raise yaml.YAMLError("the parser gave up")

    monkeypatch.setattr("archspec.yamlsrc.compose", broken)
    spec = tmp_path / "s.yaml"
    spec.write_text("name: x\n")
    code, err = run(capsys, "validate", str(spec))
    assert code == 2
    assert f"error: {spec}: YAML error: the parser gave up" in err


def test_unknown_yaml_node_kind_is_refused():
    from archspec.yamlsrc import _Converter

    mark = yaml.Mark("f.yaml", 0, 2, 4, None, None)
    with pytest.raises(SpecError) as info:
        _Converter("f.yaml").convert(yaml.Node("tag:yaml.org,2002:str", "x", mark, mark))
    assert info.value.render() == "f.yaml:3:5: unsupported YAML node"


# -- command-line options -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("plot_name", "shown"), [("plot.pdf", ".pdf"), ("plot", "a file without extension")]
)
def test_report_plot_needs_png_or_svg(tmp_path, capsys, plot_name, shown):
    target = tmp_path / plot_name
    out = tmp_path / "r.txt"
    code, err = run(capsys, "report", MNV2, "--plot", str(target), "-o", str(out))
    assert code == 2
    assert f"error: {target}: --plot: cannot write a plot as {shown}" in err
    assert "hint: name the file .png or .svg" in err
    assert not target.exists() and not out.exists()


def test_weights_and_seed_together_are_refused():
    graph = lower(load_spec_text(rows("- {op: conv2d, c: 16}"), "s.yaml"))
    with pytest.raises(SpecError) as info:
        resolve_weights(graph, "w.npz", 3)
    assert info.value.render() == "w.npz: --weights: give either --weights or --seed, not both"


def test_cli_refuses_weights_and_seed_together(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["build", MNV2, "--target", "onnx", "--seed", "1", "--weights", "w.npz"])
    assert exc.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


# -- search spaces: `archspec variants` ----------------------------------------------------------

BASE = """\
name: small
input: {resolution: 32, channels: 3}
num_classes: 10
layers:
  - {op: conv2d, name: stem, c: 16, k: 3, s: 2}
  - {op: bottleneck, name: b1, t: 4, c: 24, n: 2, s: 2}
  - {op: bottleneck, name: b2, t: 4, c: 32, n: 1, s: 2}
  - {op: avgpool, global: true}
  - {op: fc, name: head, c: num_classes}
"""
WIDE_BASE = BASE.replace("name: stem, c: 16", "name: stem, c: 8192")
UNUSED_BASE = BASE.replace(
    "  - {op: avgpool, global: true}",
    "  - {op: conv2d, name: side, from: b1, c: 8}\n  - {op: avgpool, from: b2, global: true}",
)
BIG_GRID = (
    "sampling: grid\nchoices:\n"
    f"  width_multiplier: [{', '.join(str(round(0.2 + i / 100, 2)) for i in range(101))}]\n"
    f"  resolution: [{', '.join(str(32 + i) for i in range(101))}]\n"
    f"  num_classes: [{', '.join(str(2 + i) for i in range(101))}]\n"
)

# (case, space text after the header with #<- on the line the error names, base, message)
SPACE_CASES = [
    (
        "choice_value_list",
        "choices: {width_multiplier: [0.5, [1]]}  #<-\n",
        BASE,
        "choices.width_multiplier[1]: found a list; expected a single value",
    ),
    (
        "space_name",
        "choices: {}\n",
        BASE,
        "name: found 'bad name'; expected a name of letters, digits, `_`, `.` or `-` starting",
    ),
    (
        "description_not_text",
        "description: [1]  #<-\n",
        BASE,
        "description: found a list; expected text",
    ),
    (
        "base_does_not_lower",
        "",
        UNUSED_BASE,
        "the output of this conv2d row is never used (the base spec does not lower)",
    ),
    (
        "label_names_two_choices",
        "choices:\n  rows:\n    - {row: b1, t: [2, 4], label: mid}\n"
        "    - {row: b2, t: [2, 4], label: mid}  #<-\n",
        BASE,
        "mid.t: label 'mid.t' already names another choice (line 5)",
    ),
    (
        "pareto_not_text",
        "pareto: 5  #<-\n",
        BASE,
        "pareto: found 5; expected `metric,metric`, e.g. 'madds,params:max'",
    ),
    (
        "base_not_a_path",
        "",
        BASE,
        "base: found 5; expected a spec file path or an inline spec mapping",
    ),
    (
        "row_index_float",
        "choices: {rows: [{row: 1.5, t: [2]}]}  #<-\n",
        BASE,
        "choices.rows[0].row: found 1.5; expected a row index or a row name",
    ),
    (
        "row_name_unknown",
        "choices: {rows: [{row: stme, t: [2]}]}  #<-\n",
        BASE,
        "choices.rows[0].row: no row named 'stme' in the base spec\n  hint: did you mean 'stem'?",
    ),
    (
        "row_listed_twice",
        "choices: {rows: [{row: [b1, 1], t: [2]}]}  #<-\n",
        BASE,
        "choices.rows[0].row: a row is listed twice",
    ),
    (
        "c_and_c_scale",
        "choices: {rows: [{row: b1, c: [8], c_scale: [2]}]}  #<-\n",
        BASE,
        "choices.rows[0].c_scale: choose `c` or `c_scale`, not both",
    ),
    (
        "row_has_no_such_field",
        "choices: {rows: [{row: stem, t: [2]}]}  #<-\n",
        BASE,
        "choices.rows[0].t: a conv2d row (row 0) has no 't'; it can choose: n, k, s, c, c_scale",
    ),
    (
        "c_scale_too_wide",
        "choices: {rows: [{row: stem, c_scale: [1.0, 16]}]}  #<-\n",
        WIDE_BASE,
        "choices.rows[0].c_scale: row 0 would have 131072 base channels; expected at most 65536",
    ),
    (
        "grid_too_large",
        BIG_GRID,
        BASE,
        "sampling: the space has 1,030,301 points; a full grid is limited to 1,000,000",
    ),
]


def _space_file(tmp_path: Path, case: str, body: str, base: str) -> tuple[Path, str]:
    (tmp_path / "base.yaml").write_text(base)
    name = "'bad name'" if case == "space_name" else "test_space"
    base_ref = "5  #<-" if case == "base_not_a_path" else "base.yaml"
    text = f"name: {name}{'  #<-' if case == 'space_name' else ''}\nbase: {base_ref}\n{body}"
    path = tmp_path / "space.yaml"
    path.write_text(text)
    return path, text


@pytest.mark.parametrize(
    ("case", "body", "base", "message"), SPACE_CASES, ids=[c[0] for c in SPACE_CASES]
)
def test_space_error_is_located(tmp_path, capsys, case, body, base, message):
    path, text = _space_file(tmp_path, case, body, base)
    out = tmp_path / "out"
    code, err = run(capsys, "variants", str(path), "-o", str(out))
    assert code == 2
    assert message in err, err
    if case == "base_does_not_lower":  # located in the base file
        assert_located(
            err,
            tmp_path / "base.yaml",
            UNUSED_BASE.splitlines().index("  - {op: conv2d, name: side, from: b1, c: 8}") + 1,
        )
    elif case == "grid_too_large":  # the space as a whole
        assert f"error: {path}: sampling: the space has" in err
        assert "hint: sample it instead (--n N)" in err
    else:
        assert_located(err, path, marked_line(text))
    assert not out.exists()


def test_full_grid_of_a_huge_space_is_refused(tmp_path):
    path, _ = _space_file(tmp_path, "grid_too_large", BIG_GRID.replace("grid", "random"), BASE)
    space = Space.load(path)
    assert space.size == 101**3
    with pytest.raises(SpecError) as info:
        space.grid()
    assert info.value.message == (
        "the space has 1,030,301 points; a full grid is limited to 1,000,000"
    )
    assert info.value.location == Location(str(path))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--n", "2000000"], "error: --n: found 2,000,000; at most 1,000,000 variants per sweep"),
        (
            ["--plot", "front.pdf"],
            "error: --plot: found 'front.pdf'; expected a file name ending in .png or .svg",
        ),
        (
            ["--pareto", "madds:up,params"],
            "error: --pareto: found sense 'up' for 'madds'; expected min or max",
        ),
        (["--pareto", "madds,madds:max"], "error: --pareto: the two Pareto metrics must differ"),
    ],
)
def test_variants_option_errors(tmp_path, capsys, argv, message):
    out = tmp_path / "out"
    code, err = run(capsys, "variants", FIGURE5, "-o", str(out), *argv)
    assert code == 2
    assert message in err, err
    assert not out.exists()


def test_variants_output_must_be_a_folder(tmp_path, capsys):
    out = tmp_path / "manifest"
    out.write_text("keep me")
    code, err = run(capsys, "variants", FIGURE5, "-o", str(out))
    assert code == 2
    assert f"error: {out}: -o: exists and is not a folder" in err
    assert out.read_text() == "keep me"


def test_pareto_errors_are_located():
    where = Location("space.yaml", 3, 9)
    with pytest.raises(SpecError) as info:
        parse_axes("madds:best,params", ["madds", "params"], where)
    assert info.value.location == where
    assert info.value.message == "found sense 'best' for 'madds'; expected min or max"
    with pytest.raises(SpecError) as info:
        parse_axes("params,params:max", ["madds", "params"])
    assert info.value.location == Location("--pareto")


def test_plot_format_guard():
    with pytest.raises(SpecError) as info:
        plot([(1.0, 2.0)], [True], (Axis("madds"), Axis("params")), "pdf")
    assert info.value.render() == "--plot: found 'pdf'; expected a .png or .svg file name"


@pytest.fixture(scope="module")
def small_space(tmp_path_factory) -> Space:
    tmp = tmp_path_factory.mktemp("space")
    path, _ = _space_file(
        tmp,
        "search",
        "choices: {width_multiplier: [0.5, 1.0]}\ninclude:\n  - {resolution: [24, 32]}\n",
        BASE,
    )
    return Space.load(path)


def test_search_engine_parameters_are_checked(small_space):
    with pytest.raises(SpecError) as info:
        small_space.point_from_params({"grid": 2, "width_multiplier": 0.5})
    assert info.value.render() == "<params>: grid: found grid 2; expected 0 to 1"
    with pytest.raises(SpecError) as info:
        small_space.point_from_params({"grid": 1})
    assert info.value.render() == (
        "<params>: include1.resolution: missing parameter 'include1.resolution'"
    )


def test_constraints_need_something_and_only_and(small_space):
    with pytest.raises(SpecError) as info:
        small_space.constraints()
    assert info.value.render() == "<constraints>: no constraint given"
    with pytest.raises(SpecError) as info:
        small_space.constraints("madds <= 1e6 or params <= 1e5")
    assert info.value.message == "constraints take comparisons joined by `and` only"
    assert info.value.location == Location("--where", 1, 1)
    assert "or params" in (info.value.hint or "")


# -- the C target -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("channels", "arena"),
    [
        # 32 x 8192 x 8192 floats is the largest tensor a spec may have (2^31 elements)
        (32, 9_395_240_960),
        # under the int-indexing cap the first round allowed (8 GiB), over what links (2 GiB)
        (8, 2_952_790_016),
    ],
)
def test_c_target_refuses_static_data_it_cannot_link(tmp_path, capsys, channels, arena):
    spec = tmp_path / "huge.yaml"
    spec.write_text(
        "name: huge\ninput: {resolution: 8192, channels: 3}\nlayers:\n"
        f"  - {{op: conv2d, name: wide, c: {channels}, k: 1}}\n"
    )
    out = tmp_path / "out"
    code, err = run(capsys, "build", str(spec), "--target", "c", "-o", str(out))
    assert code == 2
    assert f"error: {spec}: the c target's static data would be " in err
    assert f"(arena {arena:,}, " in err
    assert "the default code model links at most 2,130,706,432" in err
    assert "hint: lower the resolution or the width multiplier" in err
    assert "Traceback" not in err
    assert not out.exists()


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
def test_c_target_refuses_weights_that_fold_to_infinity(tmp_path, capsys):
    from archspec.spec import load_spec
    from archspec.weights import save_weights

    text = rows("- {op: conv2d, name: a, c: 16}  #<-")
    spec = tmp_path / "s.yaml"
    spec.write_text(text)
    graph = lower(load_spec(str(spec)))
    weights = init_weights(graph, 0)
    weights["a.weight"][:] = 100.0
    weights["a.bn_gamma"][:] = 3e38  # finite in float32; times the weights it is not
    (tmp_path / "w.npz").write_bytes(save_weights(weights))
    out = tmp_path / "out"
    argv = ["build", str(spec), "--weights", str(tmp_path / "w.npz"), "-o", str(out)]
    code, err = run(capsys, *argv, "--target", "c")
    assert code == 2
    assert "weights: folding BatchNorm into a gives non-finite values" in err
    assert_located(err, spec, marked_line(text))
    assert not out.exists()


def test_c_target_fuses_linear_projections_only():
    from types import MappingProxyType

    text = rows("- {op: conv2d, name: stem, c: 16}", "- {op: bottleneck, name: b, t: 6, c: 16}")
    graph = lower(load_spec_text(text, "s.yaml"))
    project = graph.node("b_project")
    node = dataclasses.replace(project, attrs=MappingProxyType({**project.attrs, "act": "relu6"}))
    nodes = tuple(node if n.name == node.name else n for n in graph.nodes)
    odd = dataclasses.replace(graph, nodes=nodes, by_name={n.name: n for n in nodes})
    with pytest.raises(SpecError) as info:
        emit(odd, "c", init_weights(graph, 0))
    assert "b_project has activation 'relu6'; a fused block accumulates a linear projection" in (
        info.value.message
    )
    assert info.value.location == project.loc
