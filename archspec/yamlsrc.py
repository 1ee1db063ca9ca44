"""Safe YAML reading that keeps the source position of every value.

The document is composed into a node tree with PyYAML's SafeLoader (nothing is constructed), then
converted by hand: every mapping, sequence and scalar becomes a `Located*` value carrying its line
and column. Tags outside YAML's core schema, duplicate keys, alias bombs and huge documents are
refused with a located `SpecError`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import yaml

from archspec.errors import Location, SpecError

MAX_DOCUMENT_BYTES = 4 * 1024 * 1024
MAX_NODES = 200_000
MAX_DEPTH = 64

_CORE = "tag:yaml.org,2002:"
_INT = re.compile(r"^[-+]?(0|[1-9][0-9_]*)$")
_FLOAT = re.compile(r"^[-+]?(\.[0-9]+|[0-9][0-9_]*(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")


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


def _loc(file: str, mark: yaml.Mark | None) -> Location:
    if mark is None:
        return Location(file)
    return Location(file, mark.line + 1, mark.column + 1)


def _scalar(node: yaml.ScalarNode, file: str) -> Any:
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
        cleaned = text.replace("_", "")
        if _INT.match(text):
            return int(cleaned)
        try:
            return int(cleaned, 0)
        except ValueError as exc:
            raise SpecError(f"cannot read {text!r} as an integer", where) from exc
    if tag == _CORE + "float":
        lowered = text.lower()
        if lowered in (".nan", ".inf", "-.inf", "+.inf"):
            raise SpecError(f"found {text!r}; expected a finite number", where)
        try:
            value = float(text.replace("_", ""))
        except ValueError as exc:
            raise SpecError(f"cannot read {text!r} as a number", where) from exc
        if not math.isfinite(value):
            raise SpecError(f"found {text!r}; expected a finite number", where)
        return value
    raise SpecError(
        f"YAML tag {tag!r} is not allowed",
        where,
        hint="specs use plain YAML values only; tags that construct objects are refused",
    )


class _Converter:
    def __init__(self, file: str) -> None:
        self.file = file
        self.count = 0
        self.depth = 0
        self.seen: set[int] = set()
        self.written_at: list[yaml.Mark] = []  # marks of nodes met for the first time (not aliases)

    def convert(self, node: yaml.Node) -> Node:
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
            return self._convert(node)
        finally:
            self.depth -= 1
            if first_time:
                self.written_at.pop()

    def _convert(self, node: yaml.Node) -> Node:
        where = _loc(self.file, node.start_mark)
        if isinstance(node, yaml.ScalarNode):
            return Node(_scalar(node, self.file), where)
        if isinstance(node, yaml.SequenceNode):
            if node.tag != _CORE + "seq":
                raise SpecError(f"YAML tag {node.tag!r} is not allowed", where)
            return Node([self.convert(item) for item in node.value], where)
        if isinstance(node, yaml.MappingNode):
            if node.tag != _CORE + "map":
                raise SpecError(f"YAML tag {node.tag!r} is not allowed", where)
            out: dict[str, tuple[Location, Node]] = {}
            for key_node, value_node in node.value:
                if key_node.tag == _CORE + "merge":
                    raise SpecError("YAML merge keys (<<) are not supported", where)
                key = self.convert(key_node)
                if not isinstance(key.value, str):
                    raise SpecError(f"found key {key.value!r}; expected a text key", key.loc)
                if key.value in out:
                    first = out[key.value][0]
                    raise SpecError(
                        f"duplicate key {key.value!r} (first at line {first.line})",
                        key.loc,
                        key.value,
                    )
                out[key.value] = (key.loc, self.convert(value_node))
            return Node(out, where)
        raise SpecError("unsupported YAML node", where)


def load_yaml(text: str, file: str) -> Node:
    """Parse one YAML document safely into located nodes, or raise a located `SpecError`."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_DOCUMENT_BYTES:
        raise SpecError(
            f"file is larger than {MAX_DOCUMENT_BYTES // (1024 * 1024)} MiB", Location(file)
        )
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
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
        raise SpecError(
            f"control character {exc.character!r} is not allowed in YAML",
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
