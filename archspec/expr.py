"""Small integer expressions of spec fields, for channel counts (`c: 3 * num_classes`).

Parsed with `ast` and checked against a whitelist, never `eval`ed: integer literals, the names
the caller allows (integer header fields such as `num_classes`), `+`, `-`, `*`, `//` and
parentheses; at most `MAX_CHARS` characters and `MAX_NODES` syntax nodes, every intermediate
value bounded by `MAX_VALUE`.
"""

from __future__ import annotations

import ast
from collections.abc import Collection, Mapping

MAX_CHARS = 120
MAX_NODES = 64
MAX_VALUE = 1 << 40

_OPS: dict[type[ast.operator], str] = {
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.FloorDiv: "//",
}


class ExprError(ValueError):
    """An expression is malformed or its value is out of bounds; the message says why."""


def parse(text: str, names: Collection[str]) -> ast.expr:
    """The syntax tree of `text`, checked against the whitelist (raises ExprError)."""
    if len(text) > MAX_CHARS:
        raise ExprError(f"it has {len(text)} characters; expected at most {MAX_CHARS}")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        raise ExprError("it is not an integer expression") from None
    for count, node in enumerate(ast.walk(tree.body), 1):
        if count > MAX_NODES:
            raise ExprError(f"it has more than {MAX_NODES} terms and operators")
        _check_node(node, names)
    return tree.body


def _check_node(node: ast.AST, names: Collection[str]) -> None:
    allowed = ", ".join(f"`{n}`" for n in names)
    if isinstance(node, ast.BinOp):
        if type(node.op) not in _OPS:
            raise ExprError("expected only the operators +, -, * and //")
    elif isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, int):
            raise ExprError(f"found {node.value!r}; expected integers and {allowed}")
    elif isinstance(node, ast.Name):
        if node.id not in names:
            raise ExprError(f"unknown name {node.id!r}; expected integers and {allowed}")
    elif not isinstance(node, ast.operator | ast.expr_context):
        raise ExprError(f"expected integers, {allowed}, +, -, * and // (with parentheses)")


def evaluate(text: str, values: Mapping[str, int]) -> int:
    """The value of `text` with the given names bound (raises ExprError)."""
    return _value(parse(text, values), values)


def _value(node: ast.expr, values: Mapping[str, int]) -> int:
    if isinstance(node, ast.Constant):
        result = int(node.value)
    elif isinstance(node, ast.Name):
        result = int(values[node.id])
    else:
        assert isinstance(node, ast.BinOp)
        a, b = _value(node.left, values), _value(node.right, values)
        op = _OPS[type(node.op)]
        if op == "//" and b == 0:
            raise ExprError("it divides by zero")
        result = {"+": a + b, "-": a - b, "*": a * b}[op] if op != "//" else a // b
    if abs(result) > MAX_VALUE:
        raise ExprError(f"an intermediate value exceeds {MAX_VALUE:,}")
    return result
