"""The `--where` expression language: valid expressions against Python's own evaluation of the
same text (a trusted oracle here, since the tests write the expressions), invalid ones refused
with the column of the offending token, and nothing ever reaching `eval`."""

from __future__ import annotations

import ast
import builtins
import random

import pytest

from archspec.errors import SpecError
from archspec.where import constraint_keys, constraint_values, parse, tokenize

NAMES = ("madds", "params", "peak_bytes_fused", "stem.c_scale")
METRICS = {"madds": 250e6, "params": 3.4e6, "peak_bytes_fused": 400e3, "stem.c_scale": 0.75}


@pytest.mark.parametrize(
    "text, expected",
    [
        ("madds <= 300e6 and peak_bytes_fused < 512e3", True),
        ("madds <= 300e6 and peak_bytes_fused < 256e3", False),
        ("madds > 300e6 or params < 4e6", True),
        ("not madds > 300e6", True),
        ("not (madds > 300e6 or params < 4e6)", False),
        ("100e6 < madds <= 250e6", True),
        ("100e6 < madds < 250e6", False),
        ("peak_bytes_fused / 1024 < 400", True),
        ("peak_bytes_fused / 1024 < 390", False),
        ("-madds < -1e6", True),
        ("madds - 2 * params > 0", True),
        ("stem.c_scale == 0.75", True),
        ("stem.c_scale != 0.75", False),
        ("1_000_000 < params", True),
        (".5 < stem.c_scale", True),
        ("madds >= 250_000_000.0", True),
        ("(((madds > 1)))", True),
        ("madds > 1 and params > 1 or madds < 0", True),
        ("madds < 0 and params > 1 or madds > 1", True),
    ],
)
def test_valid_expressions(text: str, expected: bool) -> None:
    cond = parse(text, NAMES)
    assert cond.evaluate(METRICS) is expected


def _python_value(text: str, metrics: dict[str, float]) -> bool:
    # The oracle: the same text as Python, with dotted names made plain identifiers.
    env = {k.replace(".", "__"): v for k, v in metrics.items()}
    code = text.replace("stem.c_scale", "stem__c_scale")
    return bool(builtins.eval(code, {"__builtins__": {}}, env))  # test oracle only


def _random_expression(rng: random.Random, depth: int = 0) -> str:
    atoms = [*NAMES, "1e6", "3.5e5", "2", "0.75", "400_000"]
    if depth > 2 or rng.random() < 0.3:
        left = rng.choice(atoms)
        if rng.random() < 0.3:
            left = f"({left} {rng.choice(['+', '-', '*', '/'])} {rng.choice(atoms[:4])})"
        op = rng.choice(["<", "<=", ">", ">=", "==", "!="])
        return f"{left} {op} {rng.choice(atoms)}"
    kind = rng.random()
    if kind < 0.4:
        return f"{_random_expression(rng, depth + 1)} and {_random_expression(rng, depth + 1)}"
    if kind < 0.8:
        return f"{_random_expression(rng, depth + 1)} or {_random_expression(rng, depth + 1)}"
    return f"not ({_random_expression(rng, depth + 1)})"


def test_random_expressions_agree_with_python() -> None:
    rng = random.Random(7)
    for _ in range(400):
        text = _random_expression(rng)
        metrics = {k: rng.choice([0.75, 2.0, 4e5, 1e6, 3.4e6]) for k in NAMES}
        assert parse(text, NAMES).evaluate(metrics) == _python_value(text, metrics), text


@pytest.mark.parametrize(
    "text, column, words",
    [
        ("__import__('os')", 12, "unexpected character"),
        ("__import__(os) < 1", 1, "unknown metric '__import__'"),
        ("madds(1) < 1", 6, "no function calls"),
        ("madds < 3 or __import__('os').system('true')", 25, "unexpected character"),
        ("madds.__class__ < 1", 1, "unknown metric"),
        ("madds < len(x)", 9, "unknown metric 'len'"),
        ("madds = 3", 7, "unexpected character '='"),
        ("madds < 3 && params < 4", 11, "unexpected character '&'"),
        ("madds < 'a'", 9, "unexpected character"),
        ("madds", 1, "expected a condition"),
        ("madds and params", 1, "`and` needs conditions"),
        ("madds < 3 and params", 15, "`and` needs conditions"),
        ("not madds", 5, "`not` needs a condition"),
        ("(madds < 3", 11, "expected ')'"),
        ("madds < 3)", 10, "unexpected ')'"),
        ("madds <", 8, "unexpected end of expression"),
        ("", 1, "empty expression"),
        ("madds < 3 params", 11, "unexpected 'params'"),
        ("madd < 3", 1, "did you mean 'madds'"),
        ("1e < madds", 2, "after a number"),
        ("300M > madds", 4, "after a number"),
        ("(madds < 3) + 1 > 0", 1, "expected a number or a metric"),
        ("madds < 3 < (params > 1)", 13, "expected a number or a metric"),
        ("and madds < 3", 1, "needs a condition before"),
    ],
)
def test_invalid_expressions_are_located(text: str, column: int, words: str) -> None:
    with pytest.raises(SpecError) as info:
        parse(text, NAMES)
    err = info.value
    assert err.location is not None and err.location.file == "--where"
    assert err.location.column == column, err.render()
    assert words in err.render()


def test_error_shows_a_caret_under_the_column() -> None:
    with pytest.raises(SpecError) as info:
        parse("madds <= 300e6 and peak_bytes_fused << 512e3", NAMES)
    lines = info.value.render().splitlines()
    assert lines[-1].index("^") - 2 == 37


def test_never_calls_eval(monkeypatch: pytest.MonkeyPatch) -> None:
    # `ast.parse` is `compile(..., flags=PyCF_ONLY_AST)`: a compile that makes a tree is allowed,
    # one that would make code (no PyCF_ONLY_AST) is refused, like eval and exec.
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("eval or exec was called")

    real_compile = builtins.compile
    modes: list[str] = []

    def tree_only(source: str, filename: str, mode: str, flags: int = 0, **kw: int) -> object:
        if not flags & ast.PyCF_ONLY_AST:
            raise AssertionError("compile to code was called")
        modes.append(mode)
        return real_compile(source, filename, mode, flags, **kw)

    monkeypatch.setattr(builtins, "eval", refuse)
    monkeypatch.setattr(builtins, "exec", refuse)
    monkeypatch.setattr(builtins, "compile", tree_only)
    assert parse("madds <= 300e6 and not params > 4e6", NAMES).evaluate(METRICS)
    assert modes == ["eval"]  # one expression tree, never a statement
    with pytest.raises(SpecError):
        parse("__import__('os').system('echo owned')", NAMES)


def test_deep_nesting_is_refused_not_a_recursion_error() -> None:
    with pytest.raises(SpecError, match="nested deeper"):
        parse("(" * 500 + "madds < 1" + ")" * 500, NAMES)
    with pytest.raises(SpecError, match="nested deeper"):
        parse("not " * 100 + "madds < 1", NAMES)


def test_names_used_are_recorded() -> None:
    assert parse("madds < 1 or stem.c_scale > 0", NAMES).names == {"madds", "stem.c_scale"}


def test_tokens_carry_columns() -> None:
    toks = tokenize("madds<=3e6")
    assert [(t.kind, t.text, t.column) for t in toks] == [
        ("name", "madds", 1),
        ("op", "<=", 6),
        ("number", "3e6", 8),
        ("end", "", 11),
    ]


def test_constraint_values() -> None:
    cond = parse("madds <= 300e6 and peak_bytes_fused > 500e3 and 1 < params < 3e6", NAMES)
    assert constraint_values(cond, METRICS) == [
        250e6 - 300e6,
        500e3 - 400e3,
        1 - 3.4e6,
        3.4e6 - 3e6,
    ]
    with pytest.raises(SpecError, match="and` only"):
        parse("madds < 1 or params < 1", NAMES).comparisons()
    with pytest.raises(SpecError, match="!="):
        constraint_values(parse("madds != 1", NAMES), METRICS)


def test_constraint_keys_render_each_comparison() -> None:
    cond = parse("madds <= 300e6 and (1 < params < 3.5e6) and -peak_bytes_fused / 2 > -1e3", NAMES)
    assert constraint_keys(cond) == [
        "madds <= 300000000",
        "1 < params",
        "params < 3500000",
        "(-peak_bytes_fused / 2) > -1000",
    ]
    # rendering is faithful: the rendered text parses to the same values
    again = parse(" and ".join(constraint_keys(cond)), NAMES)
    assert constraint_values(again, METRICS) == constraint_values(cond, METRICS)
