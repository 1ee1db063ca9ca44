"""Safe YAML reading that keeps the source position of every value.

The document is composed into a node tree from PyYAML's SafeLoader events without recursion
(`archspec.yamlcompose`; nothing is constructed), then converted by hand: every mapping, sequence
and scalar becomes a `Node` carrying its line and column. Tags outside YAML's core schema,
duplicate keys, non-text keys, alias bombs, nesting deeper than `MAX_DEPTH`, integers of more than
`MAX_INT_DIGITS` digits and huge documents are refused with a located `SpecError` that names the
field (`layers[2].c`) where there is one.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import yaml

from archspec.errors import Location, SpecError
from archspec.yamlcompose import compose, mark_location

MAX_DOCUMENT_BYTES = 4 * 1024 * 1024
MAX_NODES = 200_000
MAX_DEPTH = 64
MAX_INT_DIGITS = 40  # far beyond any count in a spec, far below Python's 4300-digit limit

_CORE = "tag:yaml.org,2002:"
_INT = re.compile(r"^[-+]?(0|[1-9][0-9_]*)$")


@dataclass(frozen=True)
class Node:
    """A YAML value with its position: `value` is a python scalar, list of Node, or dict."""

    value: Any
    loc: Location

    def plain(self) -> Any:
        """The value with positions stripped, recursively."""
        if isinstance(self.value, list):
            return [item.plain() for item in self.value]
        if isinstance(self.value, dict):
            return {key: item.plain() for key, (_, item) in self.value.items()}
        return self.value


_loc = mark_location


def describe(value: Any) -> str:
    """A short description of a converted value for messages (never an internal object)."""
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    if value is None:
        return "nothing (null)"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _integer(text: str, where: Location, path: str | None) -> int:
    cleaned = text.replace("_", "")
    digits = cleaned.lstrip("+-")
    if digits[:2].lower() in ("0x", "0b", "0o"):
        digits = digits[2:]
    if len(digits) > MAX_INT_DIGITS:
        raise SpecError(
            f"found an integer of {len(digits)} digits; expected at most {MAX_INT_DIGITS} digits",
            where,
            path,
        )
    if _INT.match(text):
        return int(cleaned)
    try:
        return int(cleaned, 0)
    except ValueError:
        raise SpecError(f"cannot read {text!r} as an integer", where, path) from None


def _scalar(node: yaml.ScalarNode, file: str, path: str | None = None) -> Any:
    tag = node.tag
    text = node.value
    where = _loc(file, node.start_mark)
    if tag == _CORE + "str":
        return text
    if tag == _CORE + "null":
        return None
    if tag == _CORE + "bool":
        return text.lower() in ("true", "yes", "on")
    if tag == _CORE + "int":
        return _integer(text, where, path)
    if tag == _CORE + "float":
        shown = describe(text)
        lowered = text.lower()
        if lowered in (".nan", ".inf", "-.inf", "+.inf"):
            raise SpecError(f"found {shown}; expected a finite number", where, path)
        try:
            value = float(text.replace("_", ""))
        except ValueError:
            raise SpecError(f"cannot read {shown} as a number", where, path) from None
        if not math.isfinite(value):
            raise SpecError(f"found {shown}; expected a finite number", where, path)
        return value
    raise SpecError(
        f"YAML tag {describe(tag)} is not allowed",
        where,
        path,
        hint="specs use plain YAML values only; tags that construct objects are refused",
    )


def _key_path(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


class _Converter:
    """PyYAML nodes → `Node`s. Recursion is bounded: the composer refuses nesting beyond
    `MAX_DEPTH`, and aliases (which can nest a tree inside itself) are counted here."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.count = 0
        self.depth = 0
        self.seen: set[int] = set()
        self.written_at: list[yaml.Mark] = []  # marks of nodes met for the first time (not aliases)

    def convert(self, node: yaml.Node, path: str = "") -> Node:
        self.count += 1
        if self.count > MAX_NODES or self.depth > MAX_DEPTH:
            # Point at the innermost place written out in the file, not at the anchor.
            mark = self.written_at[-1] if self.written_at else node.start_mark
            raise SpecError(
                f"the document expands to more than {MAX_NODES} values or nests deeper than "
                f"{MAX_DEPTH} levels",
                _loc(self.file, mark),
                hint="aliases that expand exponentially are refused",
            )
        first_time = id(node) not in self.seen
        self.seen.add(id(node))
        if first_time:
            self.written_at.append(node.start_mark)
        self.depth += 1
        try:
            return self._convert(node, path)
        finally:
            self.depth -= 1
            if first_time:
                self.written_at.pop()

    def _convert(self, node: yaml.Node, path: str) -> Node:
        where = _loc(self.file, node.start_mark)
        field = path or None
        if isinstance(node, yaml.ScalarNode):
            return Node(_scalar(node, self.file, field), where)
        if isinstance(node, yaml.SequenceNode):
            if node.tag != _CORE + "seq":
                raise SpecError(f"YAML tag {describe(node.tag)} is not allowed", where, field)
            return Node(
                [self.convert(item, f"{path}[{i}]") for i, item in enumerate(node.value)], where
            )
        if isinstance(node, yaml.MappingNode):
            if node.tag != _CORE + "map":
                raise SpecError(f"YAML tag {describe(node.tag)} is not allowed", where, field)
            return Node(self._mapping(node, path), where)
        raise SpecError("unsupported YAML node", where, field)

    def _mapping(self, node: yaml.MappingNode, path: str) -> dict[str, tuple[Location, Node]]:
        out: dict[str, tuple[Location, Node]] = {}
        for key_node, value_node in node.value:
            key_loc = _loc(self.file, key_node.start_mark)
            if key_node.tag == _CORE + "merge":
                raise SpecError("YAML merge keys (<<) are not supported", key_loc, path or None)
            if not isinstance(key_node, yaml.ScalarNode):
                kind = "a list" if isinstance(key_node, yaml.SequenceNode) else "a mapping"
                raise SpecError(
                    f"found {kind} as a key; expected a text key",
                    key_loc,
                    path or None,
                    hint="keys are field names such as `op` or `c`; `? ` starts a complex key",
                )
            key = self.convert(key_node, path)
            if not isinstance(key.value, str):
                raise SpecError(
                    f"found key {describe(key.value)}; expected a text key", key.loc, path or None
                )
            if key.value in out:
                first = out[key.value][0]
                raise SpecError(
                    f"duplicate key {describe(key.value)} (first at line {first.line})",
                    key.loc,
                    _key_path(path, key.value),
                )
            out[key.value] = (key.loc, self.convert(value_node, _key_path(path, key.value)))
        return out


def load_yaml(text: str, file: str) -> Node:
    """Parse one YAML document safely into located nodes, or raise a located `SpecError`."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_DOCUMENT_BYTES:
        raise SpecError(
            f"file is larger than {MAX_DOCUMENT_BYTES // (1024 * 1024)} MiB", Location(file)
        )
    try:
        root = compose(text, file, MAX_DEPTH, MAX_NODES)
    except yaml.MarkedYAMLError as exc:
        problem = exc.problem or "invalid YAML"
        mark = exc.problem_mark or exc.context_mark
        hint = None
        if exc.context and exc.context_mark and exc.context.startswith("while parsing a flow"):
            # An unclosed [ or { is reported where parsing gave up; the user's mistake is
            # where the bracket opened.
            where = _loc(file, exc.problem_mark)
            hint = f"the bracket opened here is not closed before {where}"
            mark = exc.context_mark
        raise SpecError(f"YAML syntax error: {problem}", _loc(file, mark), hint=hint) from None
    except yaml.reader.ReaderError as exc:
        pos = exc.position
        line = text.count("\n", 0, pos) + 1
        column = pos - (text.rfind("\n", 0, pos) + 1) + 1
        character = chr(exc.character) if isinstance(exc.character, int) else exc.character
        raise SpecError(
            f"control character {character!r} is not allowed in YAML",
            Location(file, line, column),
        ) from None
    except yaml.YAMLError as exc:
        raise SpecError(f"YAML error: {exc}", Location(file)) from None
    if root is None:
        raise SpecError("the file is empty; expected a mapping", Location(file, 1, 1))
    return _Converter(file).convert(root)


def read_yaml_file(path: str) -> Node:
    """Read and parse a YAML file; unreadable or non-UTF-8 files are located errors too."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_DOCUMENT_BYTES + 1)
    except OSError as exc:
        raise SpecError(f"cannot read file: {exc.strerror}", Location(path)) from None
    if len(raw) > MAX_DOCUMENT_BYTES:
        raise SpecError(
            f"file is larger than {MAX_DOCUMENT_BYTES // (1024 * 1024)} MiB", Location(path)
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise SpecError("file is not valid UTF-8 text", Location(path, line, 1)) from None
    return load_yaml(text, path)
