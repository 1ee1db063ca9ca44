"""A small, safe expression language for filtering variants: `--where EXPR`.

    madds <= 300e6 and peak_bytes_fused < 512e3
    not (resolution < 128) or 100e6 <= madds <= 200e6
    peak_bytes_fused / 1024 < 500

Grammar (Python's precedence; comparisons chain as in Python)::

    expr    := or
    or      := and ("or" and)*
    and     := not ("and" not)*
    not     := "not" not | compare
    compare := sum (("<" | "<=" | ">" | ">=" | "==" | "!=") sum)*
    sum     := product (("+" | "-") product)*
    product := unary (("*" | "/") unary)*
    unary   := "-" unary | atom
    atom    := NUMBER | NAME | "(" expr ")"

Names are identifiers, optionally dotted (`stem.c_scale`), and must be in the set of metrics given
to `parse`. Numbers accept `_` separators and exponents (`300e6`, `1_000`). Nothing is ever passed
to `eval`: the text is tokenised and parsed into a tiny tree that `evaluate` walks. Types are
checked while parsing (a comparison yields a truth value, arithmetic needs numbers), so
`madds and params` or a bare `madds` is refused before any variant is looked at. Every error is a
`SpecError` located at the column of the offending token.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

from archspec.errors import Location, SpecError

MAX_EXPRESSION_CHARS = 2000
MAX_DEPTH = 64

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<number>(?:\d[\d_]*(?:\.[\d_]*)?|\.\d[\d_]*)(?:[eE][+-]?\d+)?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
  | (?P<op><=|>=|==|!=|<|>|\+|-|\*|/|\(|\))
    """,
    re.VERBOSE,
)
_KEYWORDS = ("and", "or", "not")
_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
}
_HINTS = {
    "=": "compare with `==`",
    "&": "write `and`",
    "|": "write `or`",
    "!": "write `not`, or `!=` to compare",
    "'": "there are no strings; compare metrics with numbers",
    '"': "there are no strings; compare metrics with numbers",
}


@dataclass(frozen=True)
class Token:
    """One token: its kind (number, name, op, keyword, end), its text and 1-based column."""

    kind: str
    text: str
    column: int


# The tree: tuples tagged by their first item, each carrying the column of its operator.
#   ("num", value)  ("name", name)  ("neg", x)  ("arith", op, a, b, col)
#   ("cmp", [a, b, ...], [ops...], [cols...])  ("and", a, b)  ("or", a, b)  ("not", a)


@dataclass(frozen=True)
class Condition:
    """A parsed `--where` expression; call `evaluate(metrics)` for a truth value."""

    text: str
    tree: tuple
    names: frozenset[str]

    def evaluate(self, metrics: Mapping[str, float]) -> bool:
        """The truth value of the expression for one variant's metrics."""
        return bool(_eval(self.tree, metrics))

    def __call__(self, metrics: Mapping[str, float]) -> bool:
        return self.evaluate(metrics)

    def comparisons(self) -> list[tuple]:
        """The conjuncts of an `and`-only expression, as ("cmp", ...) trees.

        Used to turn a condition into Optuna constraint values; raises `SpecError` when the
        expression uses `or` or `not` (those have no ≤ 0 form).
        """
        out: list[tuple] = []

        def walk(node: tuple) -> None:
            if node[0] == "and":
                walk(node[1])
                walk(node[2])
            elif node[0] == "cmp":
                out.append(node)
            else:
                raise SpecError(
                    "constraints take comparisons joined by `and` only",
                    Location("--where", 1, 1),
                    hint=f"got {self.text!r}",
                )

        walk(self.tree)
        return out


def _error(text: str, column: int, message: str, hint: str | None = None) -> SpecError:
    caret = f"{text}\n  {' ' * (column - 1)}^"
    full_hint = f"{hint}\n  {caret}" if hint else caret
    return SpecError(message, Location("--where", 1, column), None, full_hint)


def tokenize(text: str) -> list[Token]:
    """Split an expression into tokens; unknown characters are located errors."""
    if len(text) > MAX_EXPRESSION_CHARS:
        raise _error(text[:60] + "...", 1, f"expression longer than {MAX_EXPRESSION_CHARS} chars")
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            ch = text[pos]
            raise _error(text, pos + 1, f"unexpected character {ch!r}", _HINTS.get(ch))
        kind = match.lastgroup or ""
        word = match.group()
        if kind == "name" and word in _KEYWORDS:
            kind = "keyword"
        if (
            kind == "number"
            and match.end() < len(text)
            and re.match(r"[A-Za-z_]", text[match.end()])
        ):
            raise _error(
                text,
                match.end() + 1,
                f"unexpected {text[match.end()]!r} after a number",
                "numbers are written like 300e6 or 512_000",
            )
        if kind != "space":
            tokens.append(Token(kind, word, pos + 1))
        pos = match.end()
    tokens.append(Token("end", "", len(text) + 1))
    return tokens


class _Parser:
    def __init__(self, text: str, names: Collection[str]) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.pos = 0
        self.names = names
        self.used: set[str] = set()
        self.depth = 0

    @property
    def tok(self) -> Token:
        return self.tokens[self.pos]

    def fail(self, token: Token, message: str, hint: str | None = None) -> SpecError:
        return _error(self.text, token.column, message, hint)

    def take(self) -> Token:
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def at(self, kind: str, *texts: str) -> bool:
        return self.tok.kind == kind and (not texts or self.tok.text in texts)

    def describe(self, token: Token) -> str:
        return "end of expression" if token.kind == "end" else repr(token.text)

    # Each parse method returns (tree, type) with type "num" or "bool".
    def parse(self) -> tuple:
        if self.tok.kind == "end":
            raise self.fail(self.tok, "empty expression", "e.g. `madds <= 300e6`")
        tree, kind = self.parse_or()
        if self.tok.kind != "end":
            hint = "join conditions with `and` / `or`" if kind == "bool" else None
            if self.tok.text == "(":
                hint = "there are no function calls; only metrics, numbers and operators"
            raise self.fail(self.tok, f"unexpected {self.describe(self.tok)}", hint)
        if kind != "bool":
            raise self.fail(
                self.tokens[0],
                "expected a condition, found a number",
                "compare it, e.g. `madds <= 300e6`",
            )
        return tree

    def want_bool(self, tree_kind: tuple[tuple, str], token: Token, word: str) -> tuple:
        tree, kind = tree_kind
        if kind != "bool":
            raise self.fail(
                token,
                f"`{word}` needs conditions on both sides; found a number",
                "compare it first, e.g. `madds <= 300e6`",
            )
        return tree

    def parse_or(self) -> tuple[tuple, str]:
        start = self.tok
        left = self.parse_and()
        while self.at("keyword", "or"):
            self.take()
            lhs = self.want_bool(left, start, "or")
            start = self.tok
            rhs = self.want_bool(self.parse_and(), start, "or")
            left = ("or", lhs, rhs), "bool"
        return left

    def parse_and(self) -> tuple[tuple, str]:
        start = self.tok
        left = self.parse_not()
        while self.at("keyword", "and"):
            self.take()
            lhs = self.want_bool(left, start, "and")
            start = self.tok
            rhs = self.want_bool(self.parse_not(), start, "and")
            left = ("and", lhs, rhs), "bool"
        return left

    def parse_not(self) -> tuple[tuple, str]:
        if self.at("keyword", "not"):
            self.take()
            start = self.tok
            self.enter(start)
            tree, kind = self.parse_not()
            if kind != "bool":
                raise self.fail(
                    start,
                    "`not` needs a condition after it; found a number",
                    "compare it first, e.g. `not madds <= 300e6`",
                )
            inner = tree
            self.depth -= 1
            return ("not", inner), "bool"
        return self.parse_compare()

    def parse_compare(self) -> tuple[tuple, str]:
        start = self.tok
        first = self.parse_sum()
        if not (self.tok.kind == "op" and self.tok.text in _COMPARE):
            return first
        operands = [self.want_num(first, start)]
        ops: list[str] = []
        cols: list[int] = []
        while self.tok.kind == "op" and self.tok.text in _COMPARE:
            op = self.take()
            ops.append(op.text)
            cols.append(op.column)
            start = self.tok
            operands.append(self.want_num(self.parse_sum(), start))
        return ("cmp", tuple(operands), tuple(ops), tuple(cols)), "bool"

    def want_num(self, tree_kind: tuple[tuple, str], token: Token) -> tuple:
        tree, kind = tree_kind
        if kind != "num":
            raise self.fail(
                token,
                "expected a number or a metric here, found a condition",
                "put parentheses around conditions joined by and/or",
            )
        return tree

    def parse_sum(self) -> tuple[tuple, str]:
        start = self.tok
        left = self.parse_product()
        while self.tok.kind == "op" and self.tok.text in ("+", "-"):
            op = self.take()
            lhs = self.want_num(left, start)
            start = self.tok
            rhs = self.want_num(self.parse_product(), start)
            left = ("arith", op.text, lhs, rhs, op.column), "num"
        return left

    def parse_product(self) -> tuple[tuple, str]:
        start = self.tok
        left = self.parse_unary()
        while self.tok.kind == "op" and self.tok.text in ("*", "/"):
            op = self.take()
            lhs = self.want_num(left, start)
            start = self.tok
            rhs = self.want_num(self.parse_unary(), start)
            left = ("arith", op.text, lhs, rhs, op.column), "num"
        return left

    def parse_unary(self) -> tuple[tuple, str]:
        if self.tok.kind == "op" and self.tok.text == "-":
            self.take()
            start = self.tok
            self.enter(start)
            inner = self.want_num(self.parse_unary(), start)
            self.depth -= 1
            return ("neg", inner), "num"
        return self.parse_atom()

    def enter(self, token: Token) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.fail(token, f"expression nested deeper than {MAX_DEPTH} levels")

    def parse_atom(self) -> tuple[tuple, str]:
        token = self.tok
        if token.kind == "number":
            self.take()
            try:
                value = float(token.text.replace("_", ""))
            except ValueError:
                raise self.fail(token, f"cannot read {token.text!r} as a number") from None
            if not math.isfinite(value):
                raise self.fail(token, f"{token.text!r} is too large")
            return ("num", value), "num"
        if token.kind == "name":
            self.take()
            if token.text not in self.names:
                near = difflib.get_close_matches(token.text, list(self.names), n=1)
                known = ", ".join(sorted(self.names))
                hint = f"did you mean {near[0]!r}? " if near else ""
                raise self.fail(token, f"unknown metric {token.text!r}", f"{hint}known: {known}")
            if self.tok.kind == "op" and self.tok.text == "(":
                raise self.fail(
                    self.tok,
                    "unexpected '('",
                    "there are no function calls; only metrics, numbers and operators",
                )
            self.used.add(token.text)
            return ("name", token.text), "num"
        if token.kind == "op" and token.text == "(":
            self.take()
            self.enter(token)
            inner = self.parse_or()
            self.depth -= 1
            if not (self.tok.kind == "op" and self.tok.text == ")"):
                raise self.fail(
                    self.tok,
                    f"expected ')' to close the '(' at column "
                    f"{token.column}, found {self.describe(self.tok)}",
                )
            self.take()
            return inner
        if token.kind == "keyword":
            raise self.fail(
                token,
                f"`{token.text}` needs a condition before it"
                if token.text != "not"
                else "unexpected `not`",
            )
        raise self.fail(
            token, f"unexpected {self.describe(token)}", "expected a number, a metric or '('"
        )


def parse(text: str, names: Collection[str]) -> Condition:
    """Parse a `--where` expression over the metric `names`; raises a located `SpecError`."""
    parser = _Parser(text, frozenset(names))
    tree = parser.parse()
    return Condition(text, tree, frozenset(parser.used))


def _eval(node: tuple, m: Mapping[str, float]) -> float | bool:
    tag = node[0]
    if tag == "num":
        return node[1]
    if tag == "name":
        return m[node[1]]
    if tag == "neg":
        return -_eval(node[1], m)
    if tag == "arith":
        _, op, a, b, _col = node
        x, y = _eval(a, m), _eval(b, m)
        if op == "+":
            return x + y
        if op == "-":
            return x - y
        if op == "*":
            return x * y
        return x / y if y != 0 else math.copysign(math.inf, x) if x else math.nan
    if tag == "cmp":
        _, operands, ops, _cols = node
        left = _eval(operands[0], m)
        for op, operand in zip(ops, operands[1:], strict=True):
            right = _eval(operand, m)
            if not _COMPARE[op](left, right):
                return False
            left = right
        return True
    if tag == "and":
        return bool(_eval(node[1], m)) and bool(_eval(node[2], m))
    if tag == "or":
        return bool(_eval(node[1], m)) or bool(_eval(node[2], m))
    if tag == "not":
        return not _eval(node[1], m)
    raise AssertionError(f"unknown node {tag}")


def evaluate_number(node: tuple, metrics: Mapping[str, float]) -> float:
    """Evaluate a numeric sub-tree (an operand of a comparison)."""
    return float(_eval(node, metrics))


def render(node: tuple) -> str:
    """A parsed (sub-)tree as text again, fully parenthesised where precedence needs it."""
    tag = node[0]
    if tag == "num":
        value = node[1]
        return repr(int(value)) if value.is_integer() and abs(value) < 1e16 else repr(value)
    if tag == "name":
        return node[1]
    if tag == "neg":
        inner = render(node[1])
        return f"-{inner}" if node[1][0] in ("num", "name", "neg") else f"-({inner})"
    if tag == "arith":
        _, op, a, b, _col = node
        return f"({render(a)} {op} {render(b)})"
    if tag == "cmp":
        _, operands, ops, _cols = node
        parts = [render(operands[0])]
        for op, operand in zip(ops, operands[1:], strict=True):
            parts += [op, render(operand)]
        return " ".join(parts)
    if tag == "not":
        return f"not ({render(node[1])})"
    return f"({render(node[1])}) {tag} ({render(node[2])})"


def constraint_keys(condition: Condition) -> list[str]:
    """A readable name per value of `constraint_values` (one per comparison link)."""
    keys = []
    for _, operands, ops, _cols in condition.comparisons():
        for i, op in enumerate(ops):
            keys.append(f"{render(operands[i])} {op} {render(operands[i + 1])}")
    return keys


def constraint_values(condition: Condition, metrics: Mapping[str, float]) -> list[float]:
    """Optuna-style constraint values of an `and` of comparisons: ≤ 0 means satisfied.

    `a <= b` and `a < b` give a − b, `a >= b` and `a > b` give b − a; `==` gives |a − b|; a chain
    gives one value per link. Strict and non-strict bounds give the same value (Optuna treats 0 as
    feasible). `!=` has no ≤ 0 form and is refused.
    """
    values: list[float] = []
    for _, operands, ops, cols in condition.comparisons():
        nums = [evaluate_number(o, metrics) for o in operands]
        for i, op in enumerate(ops):
            a, b = nums[i], nums[i + 1]
            if op in ("<", "<="):
                values.append(a - b)
            elif op in (">", ">="):
                values.append(b - a)
            elif op == "==":
                values.append(abs(a - b))
            else:
                raise _error(condition.text, cols[i], "`!=` cannot be a constraint")
    return values
