"""Python statements laid out the way `ruff format` lays them out, for the generated modules.

The PyTorch and Keras targets say what a statement is (calls, chained calls such as
`keras.layers.Dense(10)(x)`, sums, tuple and list displays of names); this module only splits it
within `LINE_LENGTH`, as ruff (black's right-hand split) would: the whole statement on one line;
else split at the last bracket pair whose opening still fits, the arguments on one line or one per
line with a trailing comma, each split again if need be; else the right-hand side inside added
parentheses. A call marked `magic` keeps one argument per line (ruff's magic trailing comma). A
line that still cannot fit (an unbreakable name of 60-odd characters) gets `# noqa: E501`.

Only these expression shapes are handled; everything else is an atom (a string laid out as is).
"""

from __future__ import annotations

import ast
import textwrap
from dataclasses import dataclass

LINE_LENGTH = 100
INDENT = "    "


@dataclass(frozen=True)
class Call:
    """`func(args)`; `func` may itself be a call (`f(a)(b)`). `magic`: one argument per line,
    with a trailing comma, even when they would fit on one."""

    func: Expr
    args: tuple[Expr, ...]
    magic: bool = False


@dataclass(frozen=True)
class Sum:
    """`a + b + ...`."""

    terms: tuple[Expr, ...]


@dataclass(frozen=True)
class Seq:
    """A tuple display `(a, b)` or, with `brackets="[]"`, a list display `[a, b]`."""

    items: tuple[Expr, ...]
    brackets: str = "()"


@dataclass(frozen=True)
class Chain:
    """A method chain `base.f(a).g(b)`: `links` are the calls after `base` (`.f(a)`, `.g(b)`)
    as text. Split, it takes ruff's fluent layout: `base.f(a)`, then one `.g(b)` a line."""

    base: str
    links: tuple[str, ...]


Expr = str | Call | Sum | Seq | Chain


def call(func: Expr, *args: Expr, magic: bool = False) -> Call:
    """`func(*args)`."""
    return Call(func, tuple(args), magic)


def flat(e: Expr) -> str:
    """`e` on one line."""
    if isinstance(e, Call):
        return f"{flat(e.func)}({', '.join(flat(a) for a in e.args)})"
    if isinstance(e, Sum):
        return " + ".join(flat(t) for t in e.terms)
    if isinstance(e, Chain):
        return e.base + "".join(e.links)
    if isinstance(e, Seq):
        comma = "," if len(e.items) == 1 and e.brackets == "()" else ""
        return e.brackets[0] + ", ".join(flat(i) for i in e.items) + comma + e.brackets[1]
    return e


def fits(line: str) -> bool:
    """Whether `line` is within the line length."""
    return len(line) <= LINE_LENGTH


def lines(e: Expr, indent: int, prefix: str = "", suffix: str = "") -> list[str]:
    """`e` as lines at `indent` levels, the first starting with `prefix`, the last ending in
    `suffix`."""
    pad = INDENT * indent
    one = f"{pad}{prefix}{flat(e)}{suffix}"
    if fits(one) and not (isinstance(e, Call) and e.magic):
        return [one]
    if isinstance(e, Call):
        return _call_lines(e, indent, prefix, suffix)
    if isinstance(e, Seq):
        body = [line for i in e.items for line in lines(i, indent + 1, suffix=",")]
        return [f"{pad}{prefix}{e.brackets[0]}", *body, f"{pad}{e.brackets[1]}{suffix}"]
    if isinstance(e, Chain):
        rest = [f"{pad}{link}" for link in e.links[1:]]
        return [f"{pad}{prefix}{e.base}{e.links[0]}", *rest[:-1], f"{rest[-1]}{suffix}"]
    if isinstance(e, Sum):  # inside brackets: one term per line, operators first
        last = len(e.terms) - 1
        out: list[str] = []
        for i, term in enumerate(e.terms):
            out += lines(term, indent, prefix if i == 0 else "+ ", suffix if i == last else "")
        return out
    return [one]


def _call_lines(e: Call, indent: int, prefix: str, suffix: str) -> list[str]:
    pad = INDENT * indent
    if not isinstance(e.func, Call):
        return [f"{pad}{prefix}{e.func}(", *arguments(e, indent + 1), f"{pad}){suffix}"]
    head = f"{pad}{prefix}{flat(e.func)}("
    if fits(head) and not e.func.magic:  # split at the last bracket pair
        return [head, *arguments(e, indent + 1), f"{pad}){suffix}"]
    # split inside the first call's brackets; the trailing call follows its closing bracket
    first = _call_lines(e.func, indent, prefix, "")
    tail = f"{pad})({', '.join(flat(a) for a in e.args)}){suffix}"
    if fits(tail):
        return [*first[:-1], tail]
    return [*first[:-1], f"{pad})(", *arguments(e, indent + 1), f"{pad}){suffix}"]


def arguments(e: Call, indent: int) -> list[str]:
    """A call's arguments inside its brackets: on one line when they fit (and the call is not
    magic), a sole argument split on its own, else one per line with a trailing comma."""
    if not e.magic:
        joined = INDENT * indent + ", ".join(flat(a) for a in e.args)
        if fits(joined):
            return [joined]
        if len(e.args) == 1:
            return lines(e.args[0], indent)
    return [line for a in e.args for line in lines(a, indent, suffix=",")]


def _opening(e: Expr) -> str | None:
    """The text up to the first opening bracket of a bracketed expression (None: no bracket)."""
    if isinstance(e, Call):
        return f"{e.func}(" if isinstance(e.func, str) else _opening(e.func)
    return e.brackets[0] if isinstance(e, Seq) else None


def _magic(e: Expr) -> bool:
    return isinstance(e, Call) and (e.magic or _magic(e.func))


def noqa(text_lines: list[str]) -> str:
    """The lines joined, each one still too long marked for ruff's E501."""
    return "\n".join(line if fits(line) else f"{line}  # noqa: E501" for line in text_lines)


def statement(indent: int, head: str, rhs: Expr) -> str:
    """`head rhs` (head is `x =` or `return`), split like ruff: whole; at the right-hand side's
    brackets; or inside added parentheses."""
    pad = INDENT * indent
    if fits(f"{pad}{head} {flat(rhs)}") and not _magic(rhs):
        return f"{pad}{head} {flat(rhs)}"
    opening = _opening(rhs)
    if opening is not None and (_magic(rhs) or fits(f"{pad}{head} {opening}")):
        return noqa(lines(rhs, indent, f"{head} "))
    return noqa([f"{pad}{head} (", *lines(rhs, indent + 1), f"{pad})"])


def assign(indent: int, target: str, rhs: Expr) -> str:
    """`target = rhs`, laid out."""
    return statement(indent, f"{target} =", rhs)


def wrap(text: str, indent: str = INDENT) -> str:
    """Text wrapped to the line length (long words are kept whole)."""
    wrapped = textwrap.wrap(
        text,
        LINE_LENGTH,
        initial_indent=indent,
        subsequent_indent=indent,
        break_long_words=False,
        break_on_hyphens=False,
    )
    return "\n".join(wrapped)


def comment(text: str, indent: str = INDENT) -> str:
    """A comment, wrapped to the line length."""
    return wrap(text, indent + "# ")


def parse(text: str) -> Expr:
    """One Python expression's text as an `Expr`, so that it can be laid out: calls (keyword
    arguments and non-call functions kept as written), sums, tuple and list displays; anything
    else is an atom."""
    tree = ast.parse(text.strip(), mode="eval")
    return _expr(tree.body, text.strip())


def _expr(node: ast.expr, text: str) -> Expr:
    links = _links(node, text)
    if links is not None:
        return links
    if isinstance(node, ast.Call) and _plain_call(node):
        func = (
            _expr(node.func, text) if isinstance(node.func, ast.Call) else _source(node.func, text)
        )
        args: list[Expr] = [_expr(a, text) for a in node.args]
        args += [f"{k.arg}={_source(k.value, text)}" for k in node.keywords]
        return Call(func, tuple(args))
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left = _expr(node.left, text)
        terms = left.terms if isinstance(left, Sum) else (left,)
        return Sum((*terms, _expr(node.right, text)))
    if isinstance(node, ast.Tuple | ast.List) and _bracketed(node, text):
        brackets = "()" if isinstance(node, ast.Tuple) else "[]"
        return Seq(tuple(_expr(e, text) for e in node.elts), brackets)
    return _source(node, text)


def _links(node: ast.expr, text: str) -> Chain | None:
    """`node` as a method chain of two calls or more (None if it is not one)."""
    links: list[str] = []
    while isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        call_text = _source(node, text)
        inner = _source(node.func.value, text)
        links.append(call_text[len(inner) :])
        node = node.func.value
    if len(links) < 2:
        return None
    return Chain(_source(node, text), tuple(reversed(links)))


def _plain_call(node: ast.Call) -> bool:
    """A call laid out as such: no `**kwargs`, and not the end of a method chain (`a.f().g()`),
    which ruff lays out in its fluent style (kept an atom here)."""
    if any(k.arg is None for k in node.keywords):
        return False
    func = node.func
    while isinstance(func, ast.Attribute):
        func = func.value
    return not isinstance(func, ast.Call) or func is node.func


def _bracketed(node: ast.expr, text: str) -> bool:
    return _source(node, text)[:1] in "([" and bool(node.elts)  # type: ignore[attr-defined]


def _source(node: ast.expr, text: str) -> str:
    segment = ast.get_source_segment(text, node)
    assert segment is not None
    return segment
