"""The qparams file (archspec/quant/qfile.py) and its JSON reader (archspec/jsonsrc.py): round
trip, and every hostile or mismatched file refused with the file, the line and the field."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from archspec.errors import SpecError
from archspec.jsonsrc import load_json
from archspec.lower import lower
from archspec.quant.calibrate import calibrate, calibration_inputs
from archspec.quant.qfile import (
    MAX_QPARAMS_BYTES,
    read_qparams,
    tensor_names,
    write_qparams,
)
from archspec.spec import load_spec_text
from archspec.weights import init_weights

SPEC = """\
name: q-file.v1
input: {resolution: 12, channels: 3}
num_classes: 4
layers:
  - {op: conv2d, name: stem, c: 24, s: 2, k: 3}
  - {op: shuffle_unit, name: su, c: 24, groups: 3, s: 1}
  - {op: maxpool, name: mp, k: 3, s: 2}
  - {op: avgpool, name: gap, global: true}
  - {op: fc, name: logits, c: num_classes}
"""


@pytest.fixture(scope="module")
def graph():
    return lower(load_spec_text(SPEC, "qfile.yaml"))


@pytest.fixture(scope="module")
def qparams(graph):
    weights = init_weights(graph, 3)
    return calibrate(graph, weights, calibration_inputs(graph, 2, 5))


@pytest.fixture(scope="module")
def text(graph, qparams) -> str:
    return write_qparams(graph, qparams)


def _write(tmp_path: Path, content: str | bytes, name: str = "q.json") -> str:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return str(path)


def _refused(tmp_path: Path, graph, content: str | bytes) -> SpecError:
    path = _write(tmp_path, content)
    with pytest.raises(SpecError) as err:
        read_qparams(path, graph)
    assert err.value.location is not None and err.value.location.file == path
    return err.value


def _line_of(text: str, needle: str) -> int:
    return text[: text.index(needle)].count("\n") + 1


def test_round_trip_is_exact(tmp_path, graph, qparams, text) -> None:
    got = read_qparams(_write(tmp_path, text), graph)
    assert list(got) == tensor_names(graph)
    assert got == dict(qparams.activations)
    for tq in got.values():
        assert tq.scale == float(np.float32(tq.scale)) and isinstance(tq.zero_point, int)
    data = json.loads(text)  # plain JSON that any tool reads
    assert data["network"] == graph.name and data["version"] == 1
    assert set(data["weight_scales"]) == set(qparams.weights)
    assert len(data["weight_scales"]["stem"]) == 24


def test_weight_scales_are_informative_only(tmp_path, graph, qparams, text) -> None:
    data = json.loads(text)
    data["weight_scales"] = {}
    assert read_qparams(_write(tmp_path, json.dumps(data)), graph) == dict(qparams.activations)
    del data["weight_scales"]
    assert read_qparams(_write(tmp_path, json.dumps(data)), graph) == dict(qparams.activations)


def _edit(text: str, tensor: str, field: str, value: str) -> str:
    """The file with one activation field's literal replaced (same line)."""
    lines = text.splitlines(keepends=True)
    for i, line in enumerate(lines):
        if line.lstrip().startswith(f'"{tensor}":'):
            head, rest = line.split(f'"{field}": ', 1)
            end = rest.index("," if field == "scale" else "}")
            lines[i] = f'{head}"{field}": {value}{rest[end:]}'
            return "".join(lines)
    raise AssertionError(tensor)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("scale", "NaN", "expected a JSON value"),
        ("scale", "Infinity", "expected a JSON value"),
        ("scale", "1e999", "expected a finite number"),
        ("scale", "-0.5", "expected a scale in"),
        ("scale", "0", "expected a scale in"),
        ("scale", "0.0", "expected a scale in"),
        ("scale", "1e-300", "expected a scale in"),
        ("scale", "1e300", "expected a scale in"),
        ("scale", '"0.1"', "expected a positive number"),
        ("scale", "true", "expected a positive number"),
        ("scale", "null", "expected a positive number"),
        ("scale", "[0.1]", "expected a positive number"),
        ("zero_point", "128", "expected a zero point in [-128, 127]"),
        ("zero_point", "-129", "expected a zero point in [-128, 127]"),
        ("zero_point", "3.0", "expected an integer"),
        ("zero_point", "false", "expected an integer"),
        ("zero_point", '"3"', "expected an integer"),
        ("zero_point", "9" * 41, "at most 40 digits"),
    ],
)
def test_hostile_values_are_located(tmp_path, graph, text, field, value, message) -> None:
    bad = _edit(text, "su_gconv1", field, value)
    err = _refused(tmp_path, graph, bad)
    assert message in err.message
    assert err.location.line == _line_of(bad, '"su_gconv1":')
    if "JSON value" not in message:
        assert err.field == f"activations.su_gconv1.{field}"


def test_missing_and_extra_tensors(tmp_path, graph, text) -> None:
    data = json.loads(text)
    del data["activations"]["su_dw"]
    err = _refused(tmp_path, graph, json.dumps(data, indent=1))
    assert "missing tensor 'su_dw'" in err.message and err.field == "activations"
    data = json.loads(text)
    data["activations"]["ghost"] = {"scale": 0.5, "zero_point": 0}
    dumped = json.dumps(data, indent=1)
    err = _refused(tmp_path, graph, dumped)
    assert "tensor 'ghost' is not in the network" in err.message
    assert err.location.line == _line_of(dumped, '"ghost"')
    data = json.loads(text)
    data["activations"]["stem"]["offset"] = 1
    err = _refused(tmp_path, graph, json.dumps(data, indent=1))
    assert "unknown field 'offset'" in err.message and err.field == "activations.stem"
    data = json.loads(text)
    del data["activations"]["stem"]["zero_point"]
    err = _refused(tmp_path, graph, json.dumps(data, indent=1))
    assert "missing field 'zero_point'" in err.message


def test_pass_through_ops_keep_their_inputs_parameters(tmp_path, graph, text) -> None:
    data = json.loads(text)
    assert data["activations"]["mp"] == data["activations"]["su_add"]
    data["activations"]["mp"]["zero_point"] += 1
    dumped = json.dumps(data, indent=1)
    err = _refused(tmp_path, graph, dumped)
    assert "maxpool 'mp' only moves values" in err.message and err.field == "activations.mp"
    assert err.location.line == _line_of(dumped, '"mp"')


@pytest.mark.parametrize(
    ("change", "message", "field"),
    [
        (lambda d: d.update(network="resnet"), "for the network 'resnet'", "network"),
        (lambda d: d.update(format="onnx"), "expected 'archspec-qparams'", "format"),
        (lambda d: d.update(version=2), "expected version 1", "version"),
        (lambda d: d.update(version=True), "expected version 1", "version"),
        (lambda d: d.update(extra=1), "unknown field 'extra'", None),
        (lambda d: d.pop("activations"), "missing field 'activations'", "activations"),
        (lambda d: d.update(activations=[1, 2]), "expected an object", "activations"),
        (lambda d: d.update(weight_scales=3), "expected an object", "weight_scales"),
    ],
)
def test_wrong_file_or_network(tmp_path, graph, text, change, message, field) -> None:
    data = json.loads(text)
    change(data)
    err = _refused(tmp_path, graph, json.dumps(data, indent=1))
    assert message in err.message and err.field == field


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "the file is empty"),
        ("[1, 2]", "expected an object"),
        ('{"format": "archspec-qparams",', "expected a quoted key"),
        ('{"format": "archspec-qparams", "format": 1}', "duplicate key 'format'"),
        ("{'format': 1}", "expected a quoted key"),
        ('{"a": 1} {"b": 2}', "after the document"),
        ("[" * 100 + "]" * 100, "nests deeper"),
        ('{"a": "unterminated}', "Unterminated string"),
        (b"\xff\xfe{}", "not valid UTF-8"),
    ],
)
def test_malformed_files(tmp_path, graph, content, message) -> None:
    err = _refused(tmp_path, graph, content)
    assert message in err.message


def test_truncated_file_is_located_at_its_end(tmp_path, graph, text) -> None:
    cut = text[: len(text) // 2]
    err = _refused(tmp_path, graph, cut)
    assert err.location.line == cut.count("\n") + 1


def test_huge_file_is_refused_before_parsing(tmp_path, graph, text) -> None:
    big = text[:-2] + " " * MAX_QPARAMS_BYTES + "}\n"
    err = _refused(tmp_path, graph, big)
    assert "larger than" in err.message


def test_unreadable_path(tmp_path, graph) -> None:
    with pytest.raises(SpecError, match="cannot read file"):
        read_qparams(str(tmp_path / "missing.json"), graph)
    with pytest.raises(SpecError, match="cannot read file"):
        read_qparams(str(tmp_path), graph)


def test_json_reader_values_and_positions() -> None:
    node = load_json('{\n  "a": [1, -2.5e-3, true, null, "x\\u00e9"],\n  "b": {}\n}', "f.json")
    assert node.plain() == {"a": [1, -0.0025, True, None, "xé"], "b": {}}
    key_loc, value = node.value["a"]
    assert (key_loc.line, key_loc.column) == (2, 3)
    assert (value.value[1].loc.line, value.value[1].loc.column) == (2, 12)
    assert math.isclose(value.value[1].value, -0.0025)


def test_same_network_other_graph_is_refused(tmp_path, graph, text) -> None:
    other = lower(load_spec_text(SPEC.replace("resolution: 12", "resolution: 16"), "qfile.yaml"))
    assert other.name == graph.name
    path = _write(tmp_path, text)
    with pytest.raises(SpecError) as err:
        read_qparams(path, other)
    assert "another graph of the network" in err.value.message and err.value.field == "graph"
    assert err.value.location.line == _line_of(text, '"graph"')
    data = json.loads(text)
    del data["graph"]
    assert "missing field 'graph'" in _refused(tmp_path, graph, json.dumps(data)).message
