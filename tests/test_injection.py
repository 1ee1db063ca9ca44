"""Code injection is impossible: names pass a strict check or the build stops with a located exit 2;
free text (the description, the spec's file name) lands inert in docstrings, comments and
`doc_string` fields; weights reach generated code as numbers only; generated modules never
evaluate anything."""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from archspec.cli import main
from archspec.emit import emit
from archspec.lower import lower
from archspec.names import identifier_problem
from archspec.spec import load_spec_text
from archspec.verify import import_module_file
from archspec.weights import init_weights
from tests.conftest import BRANCHING_SPEC

os.environ.setdefault("KERAS_BACKEND", "torch")

GCC = shutil.which("gcc")
NM = shutil.which("nm")
CFLAGS = ("-std=c99", "-Wall", "-Wextra", "-Werror")
SENTINEL = "PWNED"
PYTHON_TARGETS = ("pytorch", "keras")
ALL_TARGETS = ("pytorch", "keras", "onnx", "c")


def _q(text: str) -> str:
    """`text` as a YAML double-quoted scalar (JSON strings are valid YAML)."""
    return json.dumps(text)


def _located(err: str, path: Path) -> tuple[int, int]:
    match = re.search(re.escape(str(path)) + r":(\d+):(\d+): ", err)
    assert match, f"no {path}:line:col in {err!r}"
    return int(match.group(1)), int(match.group(2))


# -- 1. hostile names ---------------------------------------------------------------------------

HOSTILE_NAMES = {
    "double_quote": 'a"b',
    "single_quote": "a'b",
    "triple_quote": 'x"""; import os; """',
    "newline": "a\nimport os",
    "trailing_newline": "stem\n",
    "carriage_return": "a\rb",
    "hash_comment": "a#b",
    "cpp_comment": "a//b",
    "c_comment_open": "a/*b",
    "c_comment_close": "a*/b",
    "backslash": "a\\b",
    "trailing_backslash": "ab\\",
    "dunder_import": "__import__('os').system('x')",
    "jinja_expression": "{{ 7*7 }}",
    "jinja_statement": "{% raw %}x",
    "semicolon": "a;b",
    "space": "a b",
    "dash": "a-b",
    "dot": "a.b",
    "slash": "a/b",
    "leading_digit": "1abc",
    "leading_underscore": "_private",
    "empty": "",
    "python_keyword": "class",
    "python_soft_keyword": "match",
    "python_constant": "None",
    "c_keyword": "volatile",
    "c_type": "int",
    "both_keyword": "while",
    "c_main": "main",
    "dunder_init": "__init__",
    "dunder_class": "__class__",
    "shadows_module_var": "torch",
    "builtin_exec": "exec",
    "cyrillic_e": "st\u0435m",
    "fullwidth": "\uff53tem",
    "zero_width_space": "stem\u200b",
    "nbsp": "stem\u00a0",
    "greek_omicron": "c\u03bfnv",
    "too_long": "a" * 64,
    "very_long": "b" * 5000,
}


def test_hostile_names_fail_the_strict_check():
    for key, name in HOSTILE_NAMES.items():
        assert identifier_problem(name), key
    assert identifier_problem("a" * 63) is None
    assert identifier_problem("stem_2") is None


def _name_spec(where: str, hostile: str) -> tuple[str, int]:
    """A spec with `hostile` in one place; returns the text and the line the error must name."""
    value = _q(hostile)
    header = ["name: probe", "input: {resolution: 16, channels: 3}"]
    rows = [
        "  - {op: conv2d, name: stem, c: 8, s: 2}",
        "  - {op: conv2d, name: side, from: stem, c: 8}",
        "  - {op: upsample, name: up, from: side, like: stem}",
    ]
    if where == "network_name":
        header[0] = f"name: {value}"
        line = 1
    elif where == "row_name":
        rows[1] = f"  - {{op: conv2d, name: {value}, from: stem, c: 8}}"
        line = 4 + 1
    elif where == "from":
        rows[1] = f"  - {{op: conv2d, name: side, from: {value}, c: 8}}"
        line = 4 + 1
    elif where == "from_list":
        rows.append(f"  - {{op: add, name: both, from: [up, {value}]}}")
        line = 4 + 3
    elif where == "like":
        rows[2] = f"  - {{op: upsample, name: up, from: side, like: {value}}}"
        line = 4 + 2
    else:  # outputs
        header.append(f"outputs: [up, {value}]")
        line = 3
    return "\n".join([*header, "layers:", *rows]) + "\n", line


# Valid network names: `.` and `-` are allowed, and so are module names Python does not reserve.
NETWORK_OK = {"dash", "dot", "python_soft_keyword", "builtin_exec"}
PLACES = ("network_name", "row_name", "from", "from_list", "like", "outputs")


@pytest.mark.parametrize("place", PLACES)
@pytest.mark.parametrize("key", sorted(HOSTILE_NAMES))
def test_hostile_name_is_a_located_exit_2(tmp_path, capsys, place, key):
    if place == "network_name" and key in NETWORK_OK:
        pytest.skip("a valid network name")
    text, line = _name_spec(place, HOSTILE_NAMES[key])
    spec = tmp_path / "hostile.yaml"
    spec.write_text(text, encoding="utf-8")
    out = tmp_path / "out"
    assert main(["build", str(spec), "--target", "pytorch", "-o", str(out)]) == 2
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    assert captured.out == ""
    assert _located(captured.err, spec)[0] == line, captured.err
    assert "name" in captured.err
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hostile.yaml"]


def test_network_name_with_dots_and_dashes_becomes_a_safe_identifier(tmp_path, capsys):
    spec = tmp_path / "s.yaml"
    spec.write_text(_name_spec("network_name", "my-net.v2")[0])
    out = tmp_path / "out"
    assert main(["build", str(spec), "--target", "pytorch", "-o", str(out)]) == 0
    assert [p.name for p in sorted(out.iterdir())] == ["my_net_v2.py", "weights.npz"]
    capsys.readouterr()


# -- 2. free text reaches generated files inert ------------------------------------------------

PAYLOAD = f'__import__("pathlib").Path("{SENTINEL}").touch()'
DESCRIPTIONS = {
    "plain": "An ordinary description.",
    "close_docstring": f'"""; import os; os.system("touch {SENTINEL}"); """',
    "close_single_docstring": f"'''; {PAYLOAD}; '''",
    "docstring_at_end": f'{PAYLOAD} """',
    "quote_runs": f'""""{PAYLOAD}""""" "" " """""" ends with quotes""',
    "escaped_quotes": f'\\"""; {PAYLOAD}; \\"""',
    "c_comment": "*/ int pwned_fn(void){return 1;} /*",
    "c_line_comment": "// */ int pwned_fn(void){return 1;}\n#define PWNED 1",
    "trailing_backslash": "line continues \\",
    "backslash_newline": f"one \\\n{PAYLOAD}\n\\",
    "comment_and_import": f"\n# comment\nimport os\n{PAYLOAD}\n",
    "jinja": "{% raw %}{{ x }}{% endraw %} {{ 7*7 }} {% include 'x' %} {# c #}",
    "control_chars": f'\x01\x07\x08\x0b\x0c\x1b[31m\x7f\x85\u2028\u2029\r"""\r\n{PAYLOAD}',
    "unicode_quotes": f"\u201c\u201d\u201c {PAYLOAD} \uff02\uff02\uff02",
    "shebang_and_encoding": f"#!/bin/sh\n# -*- coding: latin-1 -*-\n{PAYLOAD}",
    "long": "word " * 2000,
}
SMALL_SPEC = """name: probe
description: {description}
input: {{resolution: 12, channels: 3}}
num_classes: 5
layers:
  - {{op: conv2d, name: stem, c: 8, s: 2}}
  - {{op: bottleneck, name: b1, t: 2, c: 8, n: 1, s: 1}}
  - {{op: avgpool, name: gpool, global: true}}
  - {{op: fc, name: logits, c: num_classes}}
"""


def _build(tmp: Path, description: str, target: str, spec_name: str = "probe.yaml") -> Path:
    spec = tmp / spec_name
    spec.write_text(SMALL_SPEC.format(description=_q(description)), encoding="utf-8")
    out = tmp / f"out_{target}"
    assert main(["build", str(spec), "--target", target, "-o", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def baseline(tmp_path_factory) -> dict[str, Path]:
    """Every target built with the plain description."""
    tmp = tmp_path_factory.mktemp("baseline")
    return {t: _build(tmp, DESCRIPTIONS["plain"], t) for t in ALL_TARGETS}


def _code_without_docstring(path: Path) -> tuple[str, str]:
    """(the AST of everything but the module docstring, the docstring)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    doc = ast.get_docstring(tree, clean=False)
    assert doc is not None
    first = tree.body[0]
    assert isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
    return ast.dump(ast.Module(tree.body[1:], [])), doc


def _no_sentinel(*folders: Path) -> None:
    for folder in folders:
        assert not (folder / SENTINEL).exists(), f"{SENTINEL} created in {folder}"


@pytest.mark.parametrize("target", PYTHON_TARGETS)
@pytest.mark.parametrize("key", sorted(DESCRIPTIONS))
def test_description_stays_in_the_python_docstring(
    tmp_path, monkeypatch, capsys, baseline, key, target
):
    monkeypatch.chdir(tmp_path)
    out = _build(tmp_path, DESCRIPTIONS[key], target)
    module_file = out / "probe.py"
    code, doc = _code_without_docstring(module_file)
    expected, _ = _code_without_docstring(baseline[target] / "probe.py")
    assert code == expected, "the description changed the module's code"
    for word in re.findall(r"[A-Za-z]{4,}", DESCRIPTIONS[key])[:20]:
        assert word in doc, f"{word!r} missing from the docstring"
    module = import_module_file(module_file)
    model = module.build_model(str(out / "weights.npz"))
    assert model is not None
    _no_sentinel(tmp_path, out)
    capsys.readouterr()


@pytest.mark.parametrize(
    "file_name",
    [
        f'e"""; {PAYLOAD}; """.yaml',
        "e'''; x'''.yaml",
        "trailing\\.yaml",
        "new\nline # x.yaml",
        "{{ 7*7 }}.yaml",
    ],
)
@pytest.mark.parametrize("target", PYTHON_TARGETS)
def test_spec_file_name_stays_in_the_docstring(tmp_path, monkeypatch, capsys, file_name, target):
    monkeypatch.chdir(tmp_path)
    out = _build(tmp_path, "plain", target, spec_name=file_name)
    tree = ast.parse((out / "probe.py").read_text(encoding="utf-8"))
    body_kinds = [type(s).__name__ for s in tree.body]
    assert body_kinds[0] == "Expr"
    assert "Expr" not in body_kinds[1:], "a statement outside the docstring evaluates something"
    if target == "keras":  # the Keras module names its source file
        doc = " ".join(ast.get_docstring(tree, clean=False).split())
        assert " ".join(file_name.split()) in doc
    import_module_file(out / "probe.py").build_model(str(out / "weights.npz"))
    _no_sentinel(tmp_path, out)
    capsys.readouterr()


def test_undecodable_spec_file_name_is_escaped_in_the_docstring(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    name = os.fsdecode(b"bad\xff.yaml")  # a surrogate escape: not writable as UTF-8 text
    out = _build(tmp_path, "plain", "keras", spec_name=name)
    doc = ast.get_docstring(ast.parse((out / "probe.py").read_text(encoding="utf-8")))
    assert "bad\\udcff.yaml" in doc
    capsys.readouterr()


@pytest.mark.parametrize(
    ("text", "code"), [("a\0b", "U+0000"), ("x\ud800y", "U+D800"), ("\udfff", "U+DFFF")]
)
@pytest.mark.parametrize("command", ["validate", "build"])
def test_unwritable_description_is_a_located_exit_2(tmp_path, capsys, text, code, command):
    spec = tmp_path / "probe.yaml"
    # YAML's own escapes (\0, \ud800) are the only way to write these characters in a spec.
    escaped = text.encode("unicode_escape", "backslashreplace").decode("ascii")
    spec.write_text(SMALL_SPEC.format(description=f'"{escaped}"'), encoding="utf-8")
    out = tmp_path / "out"
    extra = ["--target", "pytorch", "-o", str(out)] if command == "build" else []
    assert main([command, str(spec), *extra]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert f"{spec}:2:14: description: found the character {code}" in err
    assert not out.exists()


@pytest.mark.parametrize("key", sorted(DESCRIPTIONS))
def test_description_is_only_the_onnx_doc_string(tmp_path, capsys, baseline, key):
    onnx = pytest.importorskip("onnx")
    out = _build(tmp_path, DESCRIPTIONS[key], "onnx")
    model = onnx.load(str(out / "probe.onnx"))
    onnx.checker.check_model(model, full_check=True)
    assert model.doc_string == f"probe: {DESCRIPTIONS[key]}".strip()
    model.doc_string = ""
    reference = onnx.load(str(baseline["onnx"] / "probe.onnx"))
    reference.doc_string = ""
    assert model.SerializeToString(deterministic=True) == reference.SerializeToString(
        deterministic=True
    )
    capsys.readouterr()


def _compile(folder: Path, sources: list[Path]) -> list[Path]:
    objects = []
    for source in sources:
        obj = folder / (source.stem + ".o")
        done = subprocess.run(
            [GCC, *CFLAGS, "-c", str(source), "-o", str(obj)], capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        objects.append(obj)
    return objects


@pytest.mark.skipif(GCC is None or NM is None, reason="needs gcc and nm")
@pytest.mark.parametrize("key", ["plain", "c_comment", "c_line_comment", "backslash_newline"])
def test_description_cannot_reach_c_code(tmp_path, capsys, key):
    out = _build(tmp_path, DESCRIPTIONS[key], "c")
    sources = sorted(out.glob("*.c"))
    objects = _compile(out, sources)
    symbols = subprocess.run([NM, *map(str, objects)], capture_output=True, text=True, check=True)
    assert "pwned_fn" not in symbols.stdout
    for source in sources:
        pre = subprocess.run(
            [GCC, "-std=c99", "-E", "-P", str(source)],
            capture_output=True,
            text=True,
            check=True,
            cwd=out,
        ).stdout
        assert "pwned_fn" not in pre and SENTINEL not in pre
    capsys.readouterr()


# -- 3. weights reach generated code as numbers only -------------------------------------------

C_FLOAT = re.compile(r"-?(\d+\.\d*|\.\d+|\d+)([eE][-+]?\d+)?f")
C_ARRAY = re.compile(r"static const float (\w+)\[(\d+)\] = \{(.*?)\};", re.S)


def _c_arrays(text: str) -> dict[str, list[str]]:
    arrays = {}
    for name, size, body in C_ARRAY.findall(text):
        tokens = [t.strip() for t in body.split(",") if t.strip()]
        assert len(tokens) == int(size), name
        arrays[name] = tokens
    return arrays


def test_c_weights_file_holds_float_literals_only():
    graph = lower(load_spec_text(BRANCHING_SPEC, "branching.yaml"))
    files = emit(graph, "c", init_weights(graph, 0))
    name = next(k for k in files if k.endswith("_weights.c"))
    text = files[name]
    arrays = _c_arrays(text)
    assert arrays
    for symbol, tokens in arrays.items():
        bad = [t for t in tokens if not C_FLOAT.fullmatch(t)]
        assert not bad, f"{symbol}: {bad[:3]}"
    # Outside the arrays: comments, the include, and the struct of array names only.
    rest = C_ARRAY.sub("", text)
    rest = re.sub(r"/\*.*?\*/", "", rest, flags=re.S)
    struct = re.search(r"const struct \w+ \w+ = \{(.*?)\};", rest, re.S)
    assert struct is not None
    assert {t.strip() for t in struct.group(1).split(",") if t.strip()} == set(arrays)
    leftover = re.sub(r"const struct \w+ \w+ = \{.*?\};", "", rest, flags=re.S)
    assert re.fullmatch(r'\s*#include "\w+\.h"\s*', leftover), leftover


@pytest.mark.skipif(GCC is None, reason="needs gcc")
def test_extreme_float32_weights_are_exact_literals(tmp_path):
    spec = (
        "name: extreme\ninput: {resolution: 4, channels: 2}\nlayers:\n"
        "  - {op: conv2d, name: conv, c: 8, k: 1, bn: false, bias: true, act: linear}\n"
    )
    graph = lower(load_spec_text(spec, "extreme.yaml"))
    weights = init_weights(graph, 0)
    f32 = np.finfo(np.float32)
    special = np.array(
        [f32.max, -f32.max, f32.tiny, f32.smallest_subnormal, -0.0, 0.0, 1 / 3, -1e-30],
        dtype=np.float32,
    )
    weights["conv.bias"] = special
    weights["conv.weight"] = np.resize(special[::-1], weights["conv.weight"].shape)
    files = emit(graph, "c", weights)
    text = files["extreme_weights.c"]
    values = [t for tokens in _c_arrays(text).values() for t in tokens]
    assert all(C_FLOAT.fullmatch(t) for t in values)
    parsed = np.array([float(t[:-1]) for t in values], dtype=np.float32)
    expected = np.concatenate([weights["conv.weight"].ravel(), weights["conv.bias"]])
    # Bit patterns, so that -0.0 and 0.0 differ; the C layout permutes, so compare as multisets.
    assert sorted(parsed.view(np.uint32)) == sorted(expected.view(np.uint32))
    (tmp_path / "extreme.h").write_text(files["extreme.h"])
    source = tmp_path / "extreme_weights.c"
    source.write_text(text)
    _compile(tmp_path, [source])


# -- 4. generated modules evaluate nothing -----------------------------------------------------

FORBIDDEN_CALLS = {
    "eval",
    "exec",
    "compile",
    "__import__",
    "open",
    "getattr",
    "setattr",
    "delattr",
    "globals",
    "locals",
    "vars",
    "input",
    "breakpoint",
    "system",
    "popen",
    "loads",
    "import_module",
}
ALLOWED_IMPORTS = {
    "pytorch": {"__future__", "collections.abc", "os", "numpy", "torch"},
    "keras": {"__future__", "collections.abc", "os", "keras", "numpy"},
}
# Calls the templates own whose final name is on the forbidden list: (receiver, attribute).
ALLOWED_OWN_CALLS = {("model", "eval")}


def _dotted(node: ast.AST) -> list[str]:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return parts[::-1]


@pytest.mark.parametrize("target", PYTHON_TARGETS)
@pytest.mark.parametrize("spec", ["branching", "mnv2"])
def test_generated_module_evaluates_nothing(target, spec):
    if spec == "branching":
        graph = lower(load_spec_text(BRANCHING_SPEC, "branching.yaml"))
    else:
        from archspec.spec import load_spec

        root = Path(__file__).resolve().parent.parent
        graph = lower(load_spec(str(root / "specs" / "mnv2_1.0.yaml")))
    files = emit(graph, target, init_weights(graph, 0))
    (text,) = [v for k, v in files.items() if k.endswith(".py")]
    tree = ast.parse(text)
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module or "")
        elif isinstance(node, ast.Call):
            name = _dotted(node.func)
            if not name:
                continue
            pair = (name[-2] if len(name) > 1 else "", name[-1])
            if name[-1] in FORBIDDEN_CALLS:
                assert pair in ALLOWED_OWN_CALLS, f"generated code calls {'.'.join(name)}"
            if name[-1] == "load":
                assert name == ["np", "load"]
                flags = {k.arg: k.value for k in node.keywords}
                assert isinstance(flags.get("allow_pickle"), ast.Constant)
                assert flags["allow_pickle"].value is False
        elif isinstance(node, ast.Name):
            assert node.id not in {"eval", "exec", "__import__", "compile", "__builtins__"}
    assert imported == ALLOWED_IMPORTS[target]
