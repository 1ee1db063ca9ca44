"""`--where` against hostile input (issue 14, class 1): long operator chains, long `and`/`or`
and comparison chains, deep nesting, huge numbers and random token soup either work or end in a
located `SpecError`, never a `RecursionError`, and always well under a second."""

from __future__ import annotations

import ast
import builtins
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

from archspec import where
from archspec.cli import main
from archspec.errors import SpecError
from archspec.where import (
    MAX_DEPTH,
    MAX_EXPRESSION_CHARS,
    MAX_OPERATORS,
    constraint_keys,
    constraint_values,
    parse,
)

NAMES = ("madds", "params", "stem.c_scale")
METRICS = {"madds": 250e6, "params": 3.4e6, "stem.c_scale": 0.75}
FIGURE5 = Path(__file__).resolve().parents[1] / "specs" / "spaces" / "mnv2_figure5.yaml"
BOUND_S = 1.0  # every parse (and evaluation) below must finish within this
T = TypeVar("T")


def timed(call: Callable[[], T]) -> T:
    start = time.perf_counter()
    result = call()
    assert time.perf_counter() - start < BOUND_S
    return result


def refused(text: str) -> SpecError:
    start = time.perf_counter()
    with pytest.raises(SpecError) as info:
        parse(text, NAMES)
    assert time.perf_counter() - start < BOUND_S
    assert info.value.location is not None and info.value.location.file == "--where"
    return info.value


def python_value(text: str, metrics: dict[str, float]) -> object:
    # The oracle: the same (test-written) text as Python, dotted names made plain identifiers.
    env = {k.replace(".", "__"): v for k, v in metrics.items()}
    code = text.replace("stem.c_scale", "stem__c_scale")
    return builtins.eval(code, {"__builtins__": {}}, env)  # test oracle only


def test_a_thousand_term_chain_parses_evaluates_and_renders() -> None:
    terms = MAX_OPERATORS  # terms - 1 additions and one product: the limit exactly
    text = " + ".join(["madds"] * terms) + f" > {terms - 1} * madds"
    assert len(text) <= MAX_EXPRESSION_CHARS
    cond = timed(lambda: parse(text, NAMES))
    assert timed(lambda: cond.evaluate(METRICS)) is True
    (key,) = constraint_keys(cond)
    assert key.startswith("(" * (terms - 1) + "madds + madds)") and key.count("+") == terms - 1
    (value,) = constraint_values(cond, METRICS)
    assert value == pytest.approx(-METRICS["madds"])


@pytest.mark.parametrize("ops", ["+-", "*/", "+-*/"])
def test_long_mixed_chains_agree_with_python(ops: str) -> None:
    rng = random.Random(ops)
    atoms = ["madds", "params", "stem.c_scale", "3", "0.5", "2e3", "(madds - 1)"]
    parts = [rng.choice(atoms)]
    while len(parts) < MAX_OPERATORS:  # at most 2 operators per step: the limit is respected
        parts += [rng.choice(ops), rng.choice(atoms)]
    text = " ".join(parts) + " < madds"
    assert sum(text.count(op) for op in "+-*/") <= MAX_OPERATORS
    cond = timed(lambda: parse(text, NAMES))
    assert cond.evaluate(METRICS) == python_value(text, METRICS)


def test_one_operator_too_many_is_refused_at_that_operator() -> None:
    text = "+".join(["1"] * (MAX_OPERATORS + 2)) + " < madds"
    err = refused(text)
    assert err.location is not None and err.location.column == 2 * MAX_OPERATORS + 2
    assert f"more than {MAX_OPERATORS} arithmetic operators" in err.render()
    assert err.render().splitlines()[-1].index("^") == 2 + 2 * MAX_OPERATORS + 1


def test_long_and_or_and_comparison_chains() -> None:
    conjuncts = ["madds > 1", "params < 4e6", "0 < stem.c_scale <= 1"] * 150
    cond = timed(lambda: parse(" and ".join(conjuncts), NAMES))
    assert cond.evaluate(METRICS) is True
    assert len(cond.comparisons()) == 450
    assert len(constraint_values(cond, METRICS)) == 600
    either = timed(lambda: parse(" or ".join(["madds < 1"] * 700 + ["params > 1"]), NAMES))
    assert either.evaluate(METRICS) is True
    chain = "0 " + "<= madds " * 1000
    assert timed(lambda: parse(chain, NAMES)).evaluate(METRICS) is True
    assert timed(lambda: parse(chain + "< 1", NAMES)).evaluate(METRICS) is False
    mixed = " and ".join(f"(madds > {i} or not params < {i})" for i in range(200))
    assert timed(lambda: parse(mixed, NAMES)).evaluate(METRICS) == python_value(mixed, METRICS)


@pytest.mark.parametrize(
    "opening, closing, column",
    [
        ("(", ")", MAX_DEPTH + 1),  # at the '(' that goes too deep
        ("-", "", MAX_DEPTH + 2),  # at the token after the '-'
        ("not ", "", 4 * MAX_DEPTH + 5),  # at the token after the `not`
        ("-(", ")", 2 * (MAX_DEPTH // 2) + 2),  # a '-' is the one too deep: the '(' after it
        ("(not ", ")", 5 * (MAX_DEPTH // 2) + 1),
    ],
)
def test_nesting_is_bounded_and_located(opening: str, closing: str, column: int) -> None:
    per_level = 2 if opening in ("-(", "(not ") else 1
    inner = "madds < 1" if "not" in opening else "madds"
    tail = "" if "not" in opening else " < 1"
    ok = opening * (MAX_DEPTH // per_level) + inner + closing * (MAX_DEPTH // per_level) + tail
    assert timed(lambda: parse(ok, NAMES)).evaluate(METRICS) == python_value(ok, METRICS)
    deep = opening * 1000 + inner + closing * 1000 + tail
    err = refused(deep)
    assert err.location is not None and err.location.column == column, err.render()
    assert f"nested deeper than {MAX_DEPTH} levels" in err.message


def test_too_long_is_refused_before_any_work() -> None:
    err = refused("madds < 1 and " * 1000 + "madds < 1")
    assert err.location is not None and err.location.column == 1
    assert f"longer than {MAX_EXPRESSION_CHARS} chars" in err.message


def test_huge_numbers_are_located_not_conversion_errors() -> None:
    err = refused("madds < " + "9" * 5000)
    assert err.location is not None and err.location.column == 9 and "too large" in err.message
    assert refused("1e400 > madds").message == "'1e400' is too large"
    # digits Python's own literals would refuse or limit are read as numbers, as before
    assert parse("0" * 5000 + " < madds", NAMES).evaluate(METRICS)
    assert parse("0." + "0" * 5000 + "1 < madds", NAMES).evaluate(METRICS)
    assert parse("madds > 0_1__0", NAMES).evaluate(METRICS)
    assert refused("0x10 < madds").message == "unexpected 'x' after a number"


def _deep_call(depth: int, call: Callable[[], T]) -> T:
    return call() if depth == 0 else _deep_call(depth - 1, call)


def test_nothing_recurses_on_the_caller_s_stack() -> None:
    """Evaluation, rendering and type checks use explicit stacks: they work with only a few
    frames left. Python's own ast construction needs its budget; where it runs out, the answer
    is a located SpecError, not a RecursionError."""
    nested = "(" * (MAX_DEPTH - 1) + "-madds * 2 + 1 < params" + ")" * (MAX_DEPTH - 1)
    long = " + ".join(["madds"] * 300) + " > 0 and " + nested
    cond = parse(long, NAMES)
    spare = sys.getrecursionlimit() - len(_stack()) - 25
    assert _deep_call(spare, lambda: cond.evaluate(METRICS)) is True
    assert _deep_call(spare, lambda: constraint_values(cond, METRICS))[1] < 0
    assert _deep_call(spare, lambda: len(constraint_keys(cond))) == 2
    chain = " + ".join(["madds"] * (MAX_OPERATORS + 1)) + " > 0"
    for depth in (spare // 2, spare):
        try:
            assert _deep_call(depth, lambda: parse(chain, NAMES)).evaluate(METRICS)
        except SpecError as err:
            assert "too deep for Python's parser" in err.message


def _stack() -> list[object]:
    frame, frames = sys._getframe(), []
    while frame is not None:
        frames.append(frame)
        frame = frame.f_back
    return frames


def test_whitelist_refuses_any_other_node(monkeypatch: pytest.MonkeyPatch) -> None:
    # Unreachable through the token scan; the whitelist is the guarantee behind it.
    real_parse = ast.parse
    monkeypatch.setattr(where.ast, "parse", lambda *a, **k: real_parse("_____(0) < 0", mode="eval"))
    err = refused("madds < 1")
    assert "Call is not part of the --where language" in err.message


def test_random_token_soup_is_refused_or_parsed_quickly() -> None:
    rng = random.Random(14)
    vocabulary = [
        *NAMES, "1", "2.5e3", "1_0", "(", ")", "+", "-", "*", "/", "<", "<=", "==", "!=",
        "and", "or", "not", "x", "=", "**", "[", "'", "lambda", "if", "0x1", "1j",
    ]  # fmt: skip
    outcomes = {"parsed": 0, "refused": 0}
    for _ in range(300):
        size = rng.choice([3, 30, 300, 2500])
        text = " ".join(rng.choice(vocabulary) for _ in range(size))[:MAX_EXPRESSION_CHARS]
        start = time.perf_counter()
        try:
            parse(text, NAMES).evaluate(METRICS)
            outcomes["parsed"] += 1
        except SpecError as err:
            assert err.location is not None and err.location.file == "--where"
            outcomes["refused"] += 1
        assert time.perf_counter() - start < BOUND_S, text[:80]
    assert outcomes["refused"] > 0


@pytest.mark.parametrize(
    "text, words",
    [
        ("+".join(["1"] * (MAX_OPERATORS + 2)) + " < madds", "arithmetic operators"),
        ("(" * 500 + "madds < 1" + ")" * 500, "nested deeper"),
        ("not " * 500 + "madds < 1", "nested deeper"),
        ("madds < " + "9" * 5000, "too large"),
        ("madds < 1 and " * 1000 + "madds < 1", "longer than"),
    ],
)
def test_cli_refuses_hostile_where_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, words: str
) -> None:
    out_dir = tmp_path / "out"
    start = time.perf_counter()
    code = main(["variants", str(FIGURE5), "-o", str(out_dir), "--where", text])
    elapsed = time.perf_counter() - start
    out, err = capsys.readouterr()
    assert code == 2 and words in err and "--where:1:" in err
    assert "Traceback" not in err and "RecursionError" not in err
    assert out == "" and not out_dir.exists()
    assert elapsed < 5 * BOUND_S  # loading the space included
