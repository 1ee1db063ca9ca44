"""Strict JSON reading that keeps the source position of every value (the JSON twin of
`archspec.yamlsrc`).

Python's `json` module returns values without positions, so a file that parses but holds a bad
value could only be refused as a whole. This small recursive-descent reader follows RFC 8259
(no NaN, no Infinity, no comments, no trailing commas) and returns `yamlsrc.Node`s: scalars,
lists of Nodes, and mappings `{key: (key location, Node)}`. Duplicate keys, nesting deeper than
`MAX_DEPTH`, more than `MAX_VALUES` values, integers of more than `MAX_INT_DIGITS` digits, numbers
beyond float64 and files larger than the caller's limit are refused with a located `SpecError`.
"""

from __future__ import annotations

import bisect
import json
import math
import re

from archspec.errors import Location, SpecError
from archspec.yamlsrc import Node, describe

MAX_DEPTH = 64
MAX_VALUES = 1_000_000
MAX_INT_DIGITS = 40

_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?")
_WHITESPACE = re.compile(r"[ \t\n\r]*")
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_./:-]{1,80}")
_LITERALS = {"true": True, "false": False, "null": None}


class _Reader:
    """One document being read: the text, where line starts are, and the value count."""

    def __init__(self, text: str, file: str) -> None:
        self.text = text
        self.file = file
        self.line_starts = [0] + [m.end() for m in re.finditer("\n", text)]
        self.count = 0

    def loc(self, pos: int) -> Location:
        line = bisect.bisect_right(self.line_starts, pos)
        return Location(self.file, line, pos - self.line_starts[line - 1] + 1)

    def fail(self, pos: int, message: str, field: str | None) -> SpecError:
        return SpecError(message, self.loc(pos), field)

    def skip(self, pos: int) -> int:
        match = _WHITESPACE.match(self.text, pos)
        return match.end() if match else pos

    def found(self, pos: int) -> str:
        if pos >= len(self.text):
            return "the end of the file"
        return describe(self.text[pos : pos + 12])

    def value(self, pos: int, path: str, depth: int) -> tuple[Node, int]:
        self.count += 1
        field = path or None
        if self.count > MAX_VALUES or depth > MAX_DEPTH:
            field = None  # the path itself may be as long as the nesting
            raise self.fail(
                pos,
                f"the document holds more than {MAX_VALUES} values or nests deeper than "
                f"{MAX_DEPTH} levels",
                field,
            )
        pos = self.skip(pos)
        char = self.text[pos : pos + 1]
        if char == "{":
            return self.mapping(pos, path, depth)
        if char == "[":
            return self.sequence(pos, path, depth)
        if char == '"':
            text, end = self.string(pos, field)
            return Node(text, self.loc(pos)), end
        for word, literal in _LITERALS.items():
            if self.text.startswith(word, pos):
                return Node(literal, self.loc(pos)), pos + len(word)
        match = _NUMBER.match(self.text, pos)
        if match:
            return Node(self.number(match, pos, field), self.loc(pos)), match.end()
        raise self.fail(pos, f"found {self.found(pos)}; expected a JSON value", field)

    def number(self, match: re.Match[str], pos: int, field: str | None) -> int | float:
        text = match.group(0)
        if match.group(1) is None and match.group(2) is None:
            if len(text.lstrip("-")) > MAX_INT_DIGITS:
                raise self.fail(
                    pos,
                    f"found an integer of {len(text.lstrip('-'))} digits; expected at most "
                    f"{MAX_INT_DIGITS} digits",
                    field,
                )
            return int(text)
        value = float(text)
        if not math.isfinite(value):
            raise self.fail(pos, f"found {describe(text)}; expected a finite number", field)
        return value

    def string(self, pos: int, field: str | None) -> tuple[str, int]:
        try:
            text, end = json.decoder.scanstring(self.text, pos + 1, True)  # type: ignore[attr-defined]
        except json.JSONDecodeError as exc:
            raise self.fail(exc.pos, f"JSON syntax error: {exc.msg}", field) from None
        return text, end

    def mapping(self, pos: int, path: str, depth: int) -> tuple[Node, int]:
        start = pos
        out: dict[str, tuple[Location, Node]] = {}
        pos = self.skip(pos + 1)
        if self.text.startswith("}", pos):
            return Node(out, self.loc(start)), pos + 1
        while True:
            pos = self.skip(pos)
            if not self.text.startswith('"', pos):
                raise self.fail(
                    pos, f"found {self.found(pos)}; expected a quoted key", path or None
                )
            key_loc = self.loc(pos)
            key, pos = self.string(pos, path or None)
            shown = key if _PLAIN_KEY.fullmatch(key) else describe(key)
            child = f"{path}.{shown}" if path else shown
            if key in out:
                first = out[key][0]
                raise SpecError(
                    f"duplicate key {describe(key)} (first at line {first.line})", key_loc, child
                )
            pos = self.skip(pos)
            if not self.text.startswith(":", pos):
                raise self.fail(pos, f"found {self.found(pos)}; expected ':'", child)
            node, pos = self.value(pos + 1, child, depth + 1)
            out[key] = (key_loc, node)
            pos = self.skip(pos)
            if self.text.startswith(",", pos):
                pos += 1
                continue
            if self.text.startswith("}", pos):
                return Node(out, self.loc(start)), pos + 1
            raise self.fail(pos, f"found {self.found(pos)}; expected ',' or '}}'", path or None)

    def sequence(self, pos: int, path: str, depth: int) -> tuple[Node, int]:
        start = pos
        items: list[Node] = []
        pos = self.skip(pos + 1)
        if self.text.startswith("]", pos):
            return Node(items, self.loc(start)), pos + 1
        while True:
            node, pos = self.value(pos, f"{path}[{len(items)}]", depth + 1)
            items.append(node)
            pos = self.skip(pos)
            if self.text.startswith(",", pos):
                pos += 1
                continue
            if self.text.startswith("]", pos):
                return Node(items, self.loc(start)), pos + 1
            raise self.fail(pos, f"found {self.found(pos)}; expected ',' or ']'", path or None)


def load_json(text: str, file: str) -> Node:
    """Parse one JSON document into located nodes, or raise a located `SpecError`."""
    reader = _Reader(text, file)
    node, end = reader.value(0, "", 0)
    end = reader.skip(end)
    if end != len(text):
        raise reader.fail(
            end, f"found {reader.found(end)} after the document; expected nothing", None
        )
    return node


def read_json_file(path: str, max_bytes: int, option: str | None = None) -> Node:
    """Read and parse a JSON file of at most `max_bytes`; unreadable, oversized or non-UTF-8
    files are located errors (naming `option`, the command-line option that gave the path)."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read(max_bytes + 1)
    except OSError as exc:
        raise SpecError(f"cannot read file: {exc.strerror}", Location(path), option) from None
    if len(raw) > max_bytes:
        raise SpecError(f"the file is larger than {max_bytes:,} bytes", Location(path), option)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise SpecError("file is not valid UTF-8 text", Location(path, line, 1), option) from None
    if not text.strip():
        raise SpecError("the file is empty; expected a JSON object", Location(path, 1, 1), option)
    return load_json(text, path)
