"""A small, safe expression language for filtering variants: `--where EXPR`.

    madds <= 300e6 and peak_bytes_fused < 512e3
    not (resolution < 128) or 100e6 <= madds <= 200e6
    peak_bytes_fused / 1024 < 500

The language is the part of Python's expression grammar made of numbers, metric names (optionally
dotted, `stem.c_scale`), `+ - * /`, unary `-`, comparisons (chained as in Python), `and`, `or`,
`not` and parentheses, with Python's precedence. Names must be in the set of metrics given to
`parse`; numbers accept `_` separators and exponents (`300e6`, `1_000`).

Nothing is ever passed to `eval`. `parse` works in three linear passes:

1. `tokenize` splits the text into the language's tokens (any other character is refused), and one
   left-to-right scan checks that operands and operators alternate, parentheses match, names are
   known, and the size stays within `MAX_EXPRESSION_CHARS`, `MAX_DEPTH` (parentheses, `not` and
   unary `-` nested) and `MAX_OPERATORS` (`+ - * /`, which Python's parser nests one level each).
   These bounds keep `ast.parse`, which recurses in C, far from the interpreter's recursion limit.
2. `ast.parse` builds the tree (Python's precedence and associativity) from the text with each
   number masked as `0` and each name as `___`, so the tree holds only structure; a whitelist of
   node types (`BoolOp`, `UnaryOp` `not`/`-`, `BinOp` `+ - * /`, `Compare`, `Name`, `Constant`)
   is accepted, anything else refused.
3. An explicit-stack walk of that tree checks types (a comparison yields a truth value, arithmetic
   needs numbers), so `madds and params` or a bare `madds` is refused before any variant is
   looked at, and builds the evaluation tree, whose chains (`a + b + ...`, `a < b < c`,
   `x and y and ...`) are flat nodes. Evaluation and rendering walk it with a stack too, so no
   step recurses and a chain of a thousand terms costs a few milliseconds.

Every error is a `SpecError` at line 1 of `--where`, with the column of the offending token and a
caret under it; syntax errors are reported before type errors.
"""

from __future__ import annotations

import ast
import difflib
import math
import re
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from archspec.errors import Location, SpecError

T = TypeVar("T")

MAX_EXPRESSION_CHARS = 10_000
MAX_DEPTH = 64
MAX_OPERATORS = 1_000

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
_ARITH = ("+", "-", "*", "/")
_HINTS = {
    "=": "compare with `==`",
    "&": "write `and`",
    "|": "write `or`",
    "!": "write `not`, or `!=` to compare",
    "'": "there are no strings; compare metrics with numbers",
    '"': "there are no strings; compare metrics with numbers",
}
# The ast whitelist: operator node types and the text each stands for.
_AST_COMPARE = {
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.Eq: "==",
    ast.NotEq: "!=",
}
_AST_ARITH = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}
_AST_BOOL = {ast.And: "and", ast.Or: "or"}
_SAME_LEVEL = ({ast.Add, ast.Sub}, {ast.Mult, ast.Div})
_NEED_BOOL_HINT = "compare it first, e.g. `madds <= 300e6`"
_NEED_NUM_HINT = "put parentheses around conditions joined by and/or"


@dataclass(frozen=True)
class Token:
    """One token: its kind (number, name, op, keyword, end), its text and 1-based column."""

    kind: str
    text: str
    column: int


# The evaluation tree: tuples tagged by their first item. Chains are flat, left-associative:
#   ("num", value)  ("name", name)  ("neg", x)  ("not", x)  ("and", xs)  ("or", xs)
#   ("arith", operands, ops, cols)  ("cmp", operands, ops, cols)   (cols: 1-based operator columns)


@dataclass(frozen=True)
class Condition:
    """A parsed `--where` expression; call `evaluate(metrics)` for a truth value."""

    text: str
    tree: tuple
    names: frozenset[str]

    def evaluate(self, metrics: Mapping[str, float]) -> bool:
        """The truth value of the expression for one variant's metrics."""
        return bool(_fold(self.tree, lambda node, args: _eval_node(node, args, metrics)))

    def __call__(self, metrics: Mapping[str, float]) -> bool:
        return self.evaluate(metrics)

    def comparisons(self) -> list[tuple]:
        """The conjuncts of an `and`-only expression, as ("cmp", ...) trees, left to right.

        Used to turn a condition into Optuna constraint values; raises `SpecError` when the
        expression uses `or` or `not` (those have no ≤ 0 form).
        """
        out: list[tuple] = []
        stack = [self.tree]
        while stack:
            node = stack.pop()
            if node[0] == "and":
                stack.extend(reversed(node[1]))
            elif node[0] == "cmp":
                out.append(node)
            else:
                raise SpecError(
                    "constraints take comparisons joined by `and` only",
                    Location("--where", 1, 1),
                    hint=f"got {self.text!r}",
                )
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


@dataclass
class _Level:
    """One parenthesis level of the scan: where it opened, and the `not`s and unary `-`s pending."""

    open_column: int
    nots: int = 0
    minus: int = 0


def _describe(token: Token) -> str:
    return "end of expression" if token.kind == "end" else repr(token.text)


def _scan(text: str, tokens: list[Token], names: Collection[str]) -> dict[int, int]:
    """Check the token sequence in one pass (see the module docstring); return, for each '('
    (0-based offset), the offset of its ')'."""
    if tokens[0].kind == "end":
        raise _error(text, tokens[0].column, "empty expression", "e.g. `madds <= 300e6`")
    levels = [_Level(0)]
    close_of: dict[int, int] = {}
    depth = operators = 0
    operand = True  # whether an operand (or a prefix operator) comes next
    prev: Token | None = None
    for i, tok in enumerate(tokens):
        level = levels[-1]
        after = tokens[min(i + 1, len(tokens) - 1)]
        if operand:
            if tok.kind in ("number", "name"):
                _check_operand(text, tok, after, names)
                operand = False
                depth, level.minus = depth - level.minus, 0
            elif tok.text == "(" and tok.kind == "op":
                levels.append(_Level(tok.column))
                depth = _deeper(text, depth, tok)
            elif tok.text == "-" and tok.kind == "op":
                level.minus += 1
                depth = _deeper(text, depth, after)
            elif tok.text == "not" and (prev is None or prev.text == "(" or prev.kind == "keyword"):
                level.nots += 1
                depth = _deeper(text, depth, after)
            elif tok.kind == "keyword":
                message = "unexpected `not`" if tok.text == "not" else None
                raise _error(
                    text, tok.column, message or f"`{tok.text}` needs a condition before it"
                )
            else:
                raise _error(
                    text,
                    tok.column,
                    f"unexpected {_describe(tok)}",
                    "expected a number, a metric or '('",
                )
        elif tok.kind == "op" and (tok.text in _COMPARE or tok.text in _ARITH):
            operand = True
            operators += tok.text in _ARITH
            if operators > MAX_OPERATORS:
                raise _error(
                    text,
                    tok.column,
                    f"more than {MAX_OPERATORS} arithmetic operators (+ - * /)",
                    "Python's parser nests each one a level deeper; write a shorter expression",
                )
        elif tok.text in ("and", "or") and tok.kind == "keyword":
            operand = True
            depth, level.nots = depth - level.nots, 0
        elif tok.text == ")" and tok.kind == "op" and len(levels) > 1:
            levels.pop()
            close_of[level.open_column - 1] = tok.column - 1
            depth -= 1 + level.nots
            depth, levels[-1].minus = depth - levels[-1].minus, 0
        elif len(levels) > 1:
            raise _error(
                text,
                tok.column,
                f"expected ')' to close the '(' at column {level.open_column}, "
                f"found {_describe(tok)}",
            )
        elif tok.kind != "end":
            hint = None
            if tok.text == "(":
                hint = "there are no function calls; only metrics, numbers and operators"
            elif tok.kind in ("name", "number"):
                hint = "join conditions with `and` / `or`"
            raise _error(text, tok.column, f"unexpected {_describe(tok)}", hint)
        prev = tok
    return close_of


def _deeper(text: str, depth: int, token: Token) -> int:
    if depth + 1 > MAX_DEPTH:
        raise _error(text, token.column, f"expression nested deeper than {MAX_DEPTH} levels")
    return depth + 1


def _value(token: Token) -> float:
    """A number token's value (`_` separators anywhere; too many digits give infinity)."""
    return float(token.text.replace("_", ""))


def _check_operand(text: str, tok: Token, after: Token, names: Collection[str]) -> None:
    """A number must be finite; a name must be a metric and not called."""
    if tok.kind == "number":
        if not math.isfinite(_value(tok)):
            raise _error(text, tok.column, f"{tok.text!r} is too large")
        return
    if tok.text not in names:
        near = difflib.get_close_matches(tok.text, list(names), n=1)
        known = ", ".join(sorted(names))
        hint = f"did you mean {near[0]!r}? " if near else ""
        raise _error(text, tok.column, f"unknown metric {tok.text!r}", f"{hint}known: {known}")
    if after.text == "(" and after.kind == "op":
        raise _error(
            text,
            after.column,
            "unexpected '('",
            "there are no function calls; only metrics, numbers and operators",
        )


@dataclass(frozen=True)
class _Item:
    """A built sub-tree: its tree, type ("num" or "bool") and text span including the
    parentheses around it (0-based, end exclusive)."""

    tree: tuple
    kind: str
    start: int
    end: int


class _Builder:
    """Turn the ast of a scanned expression into the evaluation tree: node types checked against
    the whitelist, operand types checked, with an explicit stack instead of recursion."""

    def __init__(
        self,
        source: str,
        text: str,
        close_of: dict[int, int],
        operands: dict[int, tuple],
        shift: int,
    ) -> None:
        self.source = source  # as the user wrote it, for the messages
        self.text = text  # what `ast.parse` read (see `parse`)
        self.close_of = close_of
        self.operands = operands  # offset of each number or name -> its leaf tree
        self.shift = shift  # offset of the parsed text (leading blanks removed) in `text`
        n = len(text)
        self.prev_solid = [-1] * (n + 1)  # last non-blank offset before i
        self.next_solid = [n] * (n + 1)  # first non-blank offset at or after i
        for i in range(1, n + 1):
            self.prev_solid[i] = i - 1 if not text[i - 1].isspace() else self.prev_solid[i - 1]
        for i in range(n - 1, -1, -1):
            self.next_solid[i] = i if not text[i].isspace() else self.next_solid[i + 1]
        self.first: tuple[int, SpecError] | None = None  # the error a left-to-right reader meets
        self.used: set[str] = set()
        self.chains: dict[int, tuple[list[ast.expr], list[str]]] = {}

    def build(self, root: ast.Expression) -> tuple:
        """The evaluation tree of a whole expression, which must be a condition."""
        results: list[_Item] = []
        stack: list[tuple[ast.expr, bool]] = [(root.body, False)]
        while stack:
            node, ready = stack.pop()
            parts = self.parts(node)
            if parts and not ready:
                stack.append((node, True))
                stack.extend((part, False) for part in reversed(parts))
                continue
            items = results[len(results) - len(parts) :]
            del results[len(results) - len(parts) :]
            results.append(self.combine(node, items))
        (top,) = results
        if top.kind != "bool":
            first = self.next_solid[0]
            message = "expected a condition, found a number"
            self.note(len(self.text), first, message, "compare it, e.g. `madds <= 300e6`")
        if self.first is not None:
            raise self.first[1]
        return top.tree

    def note(self, detected: int, offset: int, message: str, hint: str) -> None:
        """Record an error found at `detected`; the earliest one is reported."""
        if self.first is None or detected < self.first[0]:
            self.first = detected, _error(self.source, offset + 1, message, hint)

    def refuse(self, node: ast.AST) -> SpecError:
        start = getattr(node, "col_offset", 0) + self.shift
        return _error(
            self.source,
            start + 1,
            f"{type(node).__name__} is not part of the --where language",
            "only metrics, numbers, + - * /, comparisons, and, or, not and parentheses",
        )

    def parts(self, node: ast.expr) -> list[ast.expr]:
        """The operands of a node, in source order; a chain `a + b - c` is one node's operands."""
        if isinstance(node, ast.BoolOp):
            return list(node.values)
        if isinstance(node, ast.UnaryOp):
            return [node.operand]
        if isinstance(node, ast.Compare):
            return [node.left, *node.comparators]
        if isinstance(node, ast.BinOp):
            if id(node) not in self.chains:
                level = next((s for s in _SAME_LEVEL if type(node.op) in s), None)
                if level is None:
                    raise self.refuse(node)
                rights: list[ast.expr] = []
                ops: list[str] = []
                left: ast.expr = node
                while isinstance(left, ast.BinOp) and type(left.op) in level:
                    rights.append(left.right)
                    ops.append(_AST_ARITH[type(left.op)])
                    left = left.left
                self.chains[id(node)] = [left, *reversed(rights)], ops[::-1]
            return self.chains[id(node)][0]
        return []

    def span(self, node: ast.expr) -> tuple[int, int]:
        """A node's text span widened over the parentheses that enclose exactly it."""
        start = node.col_offset + self.shift
        end = (node.end_col_offset or 0) + self.shift
        while True:
            before, after = self.prev_solid[start], self.next_solid[end]
            if before < 0 or self.close_of.get(before) != after:
                return start, end
            start, end = before, after + 1

    def operator_columns(self, items: list[_Item]) -> tuple[int, ...]:
        """1-based column of the operator after each operand but the last."""
        return tuple(self.next_solid[item.end] + 1 for item in items[:-1])

    def need(self, items: list[_Item], kind: str, message: str, hint: str) -> None:
        """Each operand must be of `kind`: the first is judged at its operator, others at their
        end (as a reader going left to right meets them)."""
        for k, item in enumerate(items):
            if item.kind != kind:
                detected = self.next_solid[item.end] if k == 0 and len(items) > 1 else item.end
                self.note(detected, item.start, message, hint)

    def combine(self, node: ast.expr, items: list[_Item]) -> _Item:
        start, end = self.span(node)
        if isinstance(node, ast.BoolOp) and type(node.op) in _AST_BOOL:
            word = _AST_BOOL[type(node.op)]
            message = f"`{word}` needs conditions on both sides; found a number"
            self.need(items, "bool", message, _NEED_BOOL_HINT)
            return _Item((word, tuple(i.tree for i in items)), "bool", start, end)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            message = "`not` needs a condition after it; found a number"
            self.need(items, "bool", message, "compare it first, e.g. `not madds <= 300e6`")
            return _Item(("not", items[0].tree), "bool", start, end)
        numeric_message = "expected a number or a metric here, found a condition"
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            self.need(items, "num", numeric_message, _NEED_NUM_HINT)
            return _Item(("neg", items[0].tree), "num", start, end)
        if isinstance(node, ast.Compare) and all(type(op) in _AST_COMPARE for op in node.ops):
            self.need(items, "num", numeric_message, _NEED_NUM_HINT)
            ops = tuple(_AST_COMPARE[type(op)] for op in node.ops)
            tree = ("cmp", tuple(i.tree for i in items), ops, self.operator_columns(items))
            return _Item(tree, "bool", start, end)
        if isinstance(node, ast.BinOp):
            self.need(items, "num", numeric_message, _NEED_NUM_HINT)
            ops = tuple(self.chains[id(node)][1])
            tree = ("arith", tuple(i.tree for i in items), ops, self.operator_columns(items))
            return _Item(tree, "num", start, end)
        return self.leaf(node, start, end)

    def leaf(self, node: ast.expr, start: int, end: int) -> _Item:
        """A number or a metric name (a `0` or an identifier where the text has one); anything
        else is refused."""
        leaf = self.operands.get(node.col_offset + self.shift)
        kind = None
        if isinstance(node, ast.Constant) and type(node.value) is int and node.value == 0:
            kind = "num"
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            kind = "name"
        if leaf is None or leaf[0] != kind:
            raise self.refuse(node)
        if leaf[0] == "name":
            self.used.add(leaf[1])
        return _Item(leaf, "num", start, end)


def parse(text: str, names: Collection[str]) -> Condition:
    """Parse a `--where` expression over the metric `names`; raises a located `SpecError`."""
    known = frozenset(names)
    tokens = tokenize(text)
    close_of = _scan(text, tokens, known)
    # What `ast.parse` reads has the text's offsets: one ASCII blank per blank, each number a `0`
    # padded with blanks and each (dotted) name an identifier of underscores, so the tree holds
    # only structure; numbers and names are the tokens' (Python's stricter literal syntax, its
    # integer-size limits and its keywords never meet the user's text).
    chars = list(re.sub(r"\s", " ", text))
    operands: dict[int, tuple] = {}
    for tok in tokens:
        if tok.kind in ("number", "name"):
            start, end = tok.column - 1, tok.column - 1 + len(tok.text)
            if tok.kind == "number":
                operands[start] = ("num", _value(tok))
                chars[start:end] = "0".ljust(len(tok.text))
            else:
                operands[start] = ("name", tok.text)
                chars[start:end] = "_" * len(tok.text)
    plain = "".join(chars)
    body = plain.lstrip(" ")
    try:
        root = ast.parse(body, "--where", mode="eval")
    except (RecursionError, MemoryError):
        # Only when called from deep in a program's stack: Python's ast construction nests once
        # per operator and, at the default recursion limit, allows about 3000 levels less three
        # per frame of the caller (a chain of 1000 operators works from up to ~600 frames deep).
        raise _error(
            text,
            1,
            "expression too deep for Python's parser at this point of the program",
            f"it allows {MAX_OPERATORS} operators from the command line",
        ) from None
    builder = _Builder(text, plain, close_of, operands, len(plain) - len(body))
    tree = builder.build(root)
    return Condition(text, tree, frozenset(builder.used))


def _children(node: tuple) -> tuple:
    tag = node[0]
    if tag in ("num", "name"):
        return ()
    if tag in ("neg", "not"):
        return (node[1],)
    return node[1]  # and, or: the operands; arith, cmp: the operands


def _fold(node: tuple, combine: Callable[[tuple, list[T]], T]) -> T:
    """Post-order fold of an evaluation tree with an explicit stack: `combine(node, values of
    its children)`."""
    values: list[T] = []
    stack: list[tuple[tuple, bool]] = [(node, False)]
    while stack:
        current, ready = stack.pop()
        kids = _children(current)
        if kids and not ready:
            stack.append((current, True))
            stack.extend((kid, False) for kid in reversed(kids))
            continue
        args = values[len(values) - len(kids) :]
        del values[len(values) - len(kids) :]
        values.append(combine(current, args))
    return values[0]


def _divide(x: float, y: float) -> float:
    return x / y if y != 0 else math.copysign(math.inf, x) if x else math.nan


def _eval_node(node: tuple, args: list, m: Mapping[str, float]) -> float | bool:
    tag = node[0]
    if tag == "num":
        return node[1]
    if tag == "name":
        return m[node[1]]
    if tag == "neg":
        return -args[0]
    if tag == "not":
        return not args[0]
    if tag == "and":
        return all(args)
    if tag == "or":
        return any(args)
    if tag == "arith":
        value = args[0]
        for op, right in zip(node[2], args[1:], strict=True):
            if op == "+":
                value = value + right
            elif op == "-":
                value = value - right
            elif op == "*":
                value = value * right
            else:
                value = _divide(value, right)
        return value
    return all(_COMPARE[op](a, b) for op, a, b in zip(node[2], args, args[1:], strict=False))


def evaluate_number(node: tuple, metrics: Mapping[str, float]) -> float:
    """Evaluate a numeric sub-tree (an operand of a comparison)."""
    return float(_fold(node, lambda n, args: _eval_node(n, args, metrics)))


def _render_node(node: tuple, args: list[str]) -> str:
    tag = node[0]
    if tag == "num":
        value = node[1]
        return repr(int(value)) if value.is_integer() and abs(value) < 1e16 else repr(value)
    if tag == "name":
        return node[1]
    if tag == "neg":
        return f"-{args[0]}" if node[1][0] in ("num", "name", "neg") else f"-({args[0]})"
    if tag == "not":
        return f"not ({args[0]})"
    if tag == "arith":  # left-associative, every step parenthesised
        return "(" * (len(args) - 1) + args[0] + "".join(_joined(node[2], args[1:], ")"))
    if tag == "cmp":
        return args[0] + "".join(_joined(node[2], args[1:], ""))
    text = args[0]
    for arg in args[1:]:
        text = f"({text}) {tag} ({arg})"
    return text


def _joined(ops: Iterable[str], operands: Iterable[str], close: str) -> Iterable[str]:
    return (f" {op} {operand}{close}" for op, operand in zip(ops, operands, strict=True))


def render(node: tuple) -> str:
    """A parsed (sub-)tree as text again, fully parenthesised where precedence needs it."""
    return _fold(node, _render_node)


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
