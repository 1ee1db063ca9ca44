"""Hostile input, round 2 (issue 14): every class ends in exit 2 with a located message, no
traceback, no warning, nothing written, in bounded time — or succeeds where the input is valid.

Classes here: deep nesting (1), huge integers (2), and the smaller items (YAML 1.2 floats such as
`bn_eps: 1e-5`, complex keys). Output paths, weights files and sizes have their own files
(tests/test_hostile_output.py, tests/test_hostile_weights.py).
"""

from __future__ import annotations

import pytest

from archspec.yamlsrc import MAX_DEPTH, MAX_INT_DIGITS
from tests.hostile import BASE, assert_refused, run_cli

SECONDS = 5.0  # every refusal here is a parse-time check


def _spec(tmp_path, text: str):
    path = tmp_path / "hostile.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _deep_flow_list(depth: int) -> str:
    return "[" * depth + "]" * depth


def _deep_flow_map(depth: int) -> str:
    return "{a: " * depth + "1" + "}" * depth


def _deep_block_list(depth: int) -> str:
    return "\n" + "".join("  " * i + "-\n" for i in range(1, depth + 1))


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 300, 1000, 50_000])
@pytest.mark.parametrize("shape", [_deep_flow_list, _deep_flow_map, _deep_block_list])
def test_deep_nesting_in_a_spec_is_refused_at_the_level_too_deep(tmp_path, capsys, depth, shape):
    if shape is _deep_block_list and depth > 1000:
        depth = 1000  # block indentation grows quadratically in bytes; 1000 is already 1 MB
    spec = _spec(tmp_path, "name: x\ninput: {resolution: 32}\nlayers: " + shape(depth) + "\n")
    result = run_cli(capsys, ["report", str(spec), "-o", str(tmp_path / "r.txt")])
    assert_refused(result, f"nests deeper than {MAX_DEPTH} levels", SECONDS)
    assert f"{spec}:" in result.err


@pytest.mark.parametrize(
    "value",
    [_deep_flow_list(500), _deep_flow_map(500), "[" * 20_000],
)
def test_deep_nesting_in_a_set_value_is_refused(tmp_path, capsys, value):
    spec = _spec(tmp_path, BASE)
    result = run_cli(capsys, ["validate", str(spec), "--set", f"width_multiplier={value}"])
    assert_refused(result, "error: --set width_multiplier=", SECONDS)
    assert "nests deeper than" in result.err or "YAML syntax error" in result.err
    assert len(result.err) < 400  # the value is not echoed whole


def test_nesting_at_the_limit_still_reads(tmp_path, capsys):
    # A value nested exactly MAX_DEPTH levels is read; the spec check then refuses the field.
    inner = "[" * (MAX_DEPTH - 2) + "1" + "]" * (MAX_DEPTH - 2)
    spec = _spec(tmp_path, BASE.replace("num_classes: 10", f"num_classes: 10\nnote: {inner}"))
    result = run_cli(capsys, ["validate", str(spec)])
    assert result.code == 2
    assert "nests deeper" not in result.err


def test_recursive_alias_nested_deep_is_refused(tmp_path, capsys):
    spec = _spec(tmp_path, "name: x\na: &a [[[[*a]]]]\n")
    result = run_cli(capsys, ["validate", str(spec)])
    assert_refused(result, "nests deeper than", SECONDS)


DIGITS = ["9" * 45, "9" * 4301, "9" * 100_000]


@pytest.mark.parametrize(
    "literal", [*DIGITS, "0x" + "f" * 5000, "0b" + "1" * 20_000, "-" + DIGITS[1]]
)
def test_huge_integer_literal_is_a_located_expected_message(tmp_path, capsys, literal):
    spec = _spec(tmp_path, BASE.replace("c: 16", f"c: {literal}"))
    result = run_cli(capsys, ["report", str(spec), "-o", str(tmp_path / "r.txt")])
    assert_refused(result, f"expected at most {MAX_INT_DIGITS} digits", SECONDS)
    assert f"{spec}:5:21: layers[0].c: found an integer of" in result.err


@pytest.mark.parametrize(
    "text",
    [
        f"'{DIGITS[1]}'",
        f'"{DIGITS[1]} // 2"',
        f"{DIGITS[1]}*2",
        f"{DIGITS[1]}.0",
        f"1.0e+{DIGITS[1]}",
    ],
)
def test_huge_numbers_written_as_text_or_floats_are_refused(tmp_path, capsys, text):
    spec = _spec(tmp_path, BASE.replace("c: 16", f"c: {text}"))
    result = run_cli(capsys, ["validate", str(spec)])
    assert_refused(result, f"{spec}:5:21: layers[0].c: ", SECONDS)
    assert "expected" in result.err


@pytest.mark.parametrize(
    "override",
    [f"resolution={DIGITS[1]}", f"num_classes=0x{'f' * 5000}", f"rounding.divisor={DIGITS[2]}"],
)
def test_huge_integers_in_set_values_are_refused(tmp_path, capsys, override):
    spec = _spec(tmp_path, BASE)
    result = run_cli(capsys, ["validate", str(spec), "--set", override])
    assert_refused(result, "found an integer of", SECONDS)
    assert len(result.err) < 400


@pytest.mark.parametrize("written", ["1e-5", "1E-5", "1.0e-5", "1.e-5", "+1e-05", "0.00001"])
def test_bn_eps_accepts_the_forms_people_write(tmp_path, capsys, written):
    spec = _spec(tmp_path, BASE.replace("num_classes: 10", f"num_classes: 10\nbn_eps: {written}"))
    result = run_cli(capsys, ["validate", str(spec)])
    assert result.code == 0, result.err
    from archspec import load_spec

    assert load_spec(str(spec)).bn_eps == pytest.approx(1e-5)


@pytest.mark.parametrize("written", ["1e-5", "2E3"])
def test_quoted_exponent_numbers_stay_text(tmp_path, capsys, written):
    spec = _spec(tmp_path, BASE.replace("num_classes: 10", f"num_classes: 10\nbn_eps: '{written}'"))
    result = run_cli(capsys, ["validate", str(spec)])
    assert_refused(result, f"bn_eps: found '{written}'; expected a number", SECONDS)


def test_bn_eps_set_override_reads_exponents(tmp_path, capsys):
    spec = _spec(tmp_path, BASE)
    result = run_cli(capsys, ["validate", str(spec), "--set", "bn_eps=1e-3"])
    assert result.code == 0, result.err


@pytest.mark.parametrize(
    ("key", "kind"),
    [
        ("? [a, b]\n: 1", "found a list as a key"),
        ("{a: 1}: 1", "found a mapping as a key"),
        ("? {a: [1, {b: 2}]}\n: 1", "found a mapping as a key"),
        ("[x]: 1", "found a list as a key"),
        ("1: 1", "found key 1"),
        ("null: 1", "found key nothing (null)"),
    ],
)
def test_complex_keys_never_print_internal_objects(tmp_path, capsys, key, kind):
    spec = _spec(tmp_path, BASE.replace("num_classes: 10", f"num_classes: 10\n{key}"))
    result = run_cli(capsys, ["validate", str(spec)])
    assert_refused(result, kind, SECONDS)
    assert f"{spec}:4:" in result.err
    for internal in ("Node(", "Location(", "ScalarNode", "MappingNode", "SequenceNode"):
        assert internal not in result.err


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("a: *nowhere\n", "found undefined alias *nowhere"),
        ("a: &x 1\nb: &x 2\n", "duplicate anchor &x (first at line 1)"),
        ("a: 1\n---\nb: 2\n", "found a second YAML document"),
    ],
)
def test_composer_errors_are_located(tmp_path, capsys, text, needle):
    spec = _spec(tmp_path, text)
    result = run_cli(capsys, ["validate", str(spec)])
    assert_refused(result, needle, SECONDS)
    assert f"{spec}:" in result.err


@pytest.mark.parametrize(("rows", "n"), [(400, 64), (997, 21)])
def test_node_limit_names_the_row_that_crosses_it(tmp_path, capsys, rows, n):
    repeated = f"  - {{op: conv2d, c: 4, n: {n}}}\n" * rows
    spec = _spec(tmp_path, BASE.replace("layers:\n", "layers:\n" + repeated))
    result = run_cli(capsys, ["validate", str(spec)])
    assert_refused(result, "the graph would have more than 20000 nodes", 30.0)
    line = 4 + 20_000 // n + 1  # the row whose nodes go past 20000 (the input is one node)
    assert f"{spec}:{line}:5: layers[{line - 5}]: the graph would" in result.err


@pytest.mark.parametrize(
    "text",
    [
        "a: [" + "1, " * 1_300_000 + "]\n",
        "name: x\nlayers:\n" + "  - {op: conv2d, c: 4, n: 1}\n" * 130_000,
        "a:\n" + "  - x\n" * 600_000,
    ],
)
def test_large_documents_stop_at_the_value_limit_quickly(tmp_path, capsys, text):
    spec = _spec(tmp_path, text[: 4 * 1024 * 1024 - 16])
    result = run_cli(capsys, ["validate", str(spec)])
    assert_refused(result, "the document has more than 200000 values", 15.0)


def test_control_character_after_multibyte_text_is_located_by_character(tmp_path, capsys):
    spec = _spec(tmp_path, 'name: "ééé"\nnote: "x\x01"\n')
    result = run_cli(capsys, ["validate", str(spec)])
    assert_refused(result, f"{spec}:2:9: control character '\\x01' is not allowed", SECONDS)


SECRET = "s3cr3t-token-value"


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (f"root:x:0:0:{SECRET}:/root:/bin/bash\ndaemon:x:1:1::/:/bin/false\n", "found text"),
        (f"root:*:{SECRET}:0:99999:7:::\n", "found a key that is not a field name"),
        (f"{SECRET}\n", "found text"),
        (f"- {SECRET}\n", "found a list"),
        ("12345\n", "found a number"),
    ],
)
@pytest.mark.parametrize("how", ["spec", "space_base"])
def test_a_file_that_is_not_a_spec_is_never_echoed(tmp_path, capsys, content, needle, how):
    secret = tmp_path / "secret.txt"
    secret.write_text(content)
    if how == "spec":
        args = ["validate", str(secret)]
    else:
        space = tmp_path / "space.yaml"
        space.write_text("name: sp\nbase: secret.txt\nchoices: {width_multiplier: [0.5]}\n")
        args = ["variants", str(space)]
    result = run_cli(capsys, args)
    assert_refused(result, f"{secret}:1:1: {needle}", SECONDS)
    assert SECRET not in result.err


@pytest.mark.parametrize(
    "args",
    [
        ["build", "{spec}", "--target", "onnx", "--seed", DIGITS[1]],
        ["verify", "{spec}", "--batch", DIGITS[2]],
        ["verify", "{spec}", "--seed", str(1 << 63)],
        ["build", "{spec}", "--target", "onnx", "--seed", "0x" + "f" * 5000],
    ],
)
def test_huge_integer_options_are_refused_briefly(tmp_path, capsys, args):
    spec = _spec(tmp_path, BASE)
    with pytest.raises(SystemExit) as info:
        run_cli(capsys, [a.format(spec=spec) for a in args])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "expected a non-negative integer" in err or "expected a positive integer" in err
    assert "Traceback" not in err and len(err) < 1000
    assert list(tmp_path.iterdir()) == [spec]
