"""Composing a YAML event stream into PyYAML nodes without recursion.

PyYAML's own composer calls itself once per nesting level, so a document of a few hundred nested
`[` reaches Python's recursion limit before anything can refuse it. This composer keeps the open
collections on an explicit stack and refuses a document as soon as it opens more than
`max_depth` of them, so the parser never reads further than the first level too deep.

Tags are resolved as PyYAML's SafeLoader resolves them (YAML 1.1), with one addition: a plain
scalar written as a YAML 1.2 float without a dot (`1e-5`, `2E3`), which YAML 1.1 reads as text,
is a float, since that is what people mean when they write it.
"""

from __future__ import annotations

import re

import yaml

from archspec.errors import Location, SpecError

# libyaml's parser when PyYAML was built with it (ten times faster), else the pure-Python one;
# both produce the same events. Syntax errors are reported by the pure-Python one (`compose`).
Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_FLOAT_12 = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)[eE][-+]?[0-9]+$")
_STR = "tag:yaml.org,2002:str"
_FLOAT = "tag:yaml.org,2002:float"


def mark_location(file: str, mark: yaml.Mark | None) -> Location:
    """A PyYAML mark as a 1-based `Location` in `file`."""
    if mark is None:
        return Location(file)
    return Location(file, mark.line + 1, mark.column + 1)


def _scalar_tag(loader: yaml.SafeLoader, event: yaml.ScalarEvent) -> str:
    if event.tag is not None and event.tag != "!":
        return event.tag
    tag = loader.resolve(yaml.ScalarNode, event.value, event.implicit)
    if tag == _STR and not event.style and _FLOAT_12.match(event.value):
        return _FLOAT
    return tag


def _collection_tag(loader: yaml.SafeLoader, event: yaml.CollectionStartEvent) -> str:
    if event.tag is not None and event.tag != "!":
        return event.tag
    kind = yaml.SequenceNode if isinstance(event, yaml.SequenceStartEvent) else yaml.MappingNode
    return loader.resolve(kind, None, event.implicit)


class _Open:
    """A collection being composed; a mapping keeps its key until the value arrives."""

    def __init__(self, node: yaml.CollectionNode) -> None:
        self.node = node
        self.key: yaml.Node | None = None

    def add(self, child: yaml.Node) -> None:
        if isinstance(self.node, yaml.SequenceNode):
            self.node.value.append(child)
        elif self.key is None:
            self.key = child
        else:
            self.node.value.append((self.key, child))
            self.key = None


def compose(text: str, file: str, max_depth: int, max_nodes: int) -> yaml.Node | None:
    """The single document of `text` as a PyYAML node tree (None when empty).

    Raises `SpecError` for nesting beyond `max_depth`, more than `max_nodes` values written out
    (parsing stops there, so a large file costs no more than `max_nodes` values), undefined or
    duplicate anchors and more than one document; syntax errors propagate as PyYAML's
    `MarkedYAMLError`.
    """
    try:
        return _compose_with(Loader, text, file, max_depth, max_nodes)
    except yaml.YAMLError:
        if Loader is yaml.SafeLoader:
            raise
    # Refused by libyaml: parse again with PyYAML's own parser, whose messages (and positions
    # counted in characters) the error reports are written for. Only bad documents pay for it.
    return _compose_with(yaml.SafeLoader, text, file, max_depth, max_nodes)


def _compose_with(
    loader_class: type, text: str, file: str, max_depth: int, max_nodes: int
) -> yaml.Node | None:
    loader = loader_class(text)
    try:
        return _compose(loader, file, max_depth, max_nodes)
    finally:
        loader.dispose()


def _compose(
    loader: yaml.SafeLoader, file: str, max_depth: int, max_nodes: int
) -> yaml.Node | None:
    loader.get_event()  # StreamStartEvent
    if loader.check_event(yaml.StreamEndEvent):
        return None
    loader.get_event()  # DocumentStartEvent
    anchors: dict[str, yaml.Node] = {}
    stack: list[_Open] = []
    root: yaml.Node | None = None
    count = 0
    while root is None:
        event = loader.get_event()
        node: yaml.Node | None = None
        count += isinstance(event, yaml.ScalarEvent | yaml.CollectionStartEvent)
        if count > max_nodes:
            raise SpecError(
                f"the document has more than {max_nodes} values",
                mark_location(file, event.start_mark),
            )
        if isinstance(event, yaml.AliasEvent):
            if event.anchor not in anchors:
                raise SpecError(
                    f"found undefined alias *{event.anchor}",
                    mark_location(file, event.start_mark),
                    hint="an alias must follow the &anchor it names",
                )
            node = anchors[event.anchor]
        elif isinstance(event, yaml.ScalarEvent):
            node = yaml.ScalarNode(
                _scalar_tag(loader, event),
                event.value,
                event.start_mark,
                event.end_mark,
                style=event.style,
            )
        elif isinstance(event, yaml.CollectionStartEvent):
            if len(stack) >= max_depth:
                raise SpecError(
                    f"the document nests deeper than {max_depth} levels",
                    mark_location(file, event.start_mark),
                    hint=f"lists and mappings may nest at most {max_depth} levels; nothing in "
                    "a spec needs more",
                )
            kind = (
                yaml.SequenceNode
                if isinstance(event, yaml.SequenceStartEvent)
                else yaml.MappingNode
            )
            opened = kind(
                _collection_tag(loader, event),
                [],
                event.start_mark,
                None,
                flow_style=event.flow_style,
            )
            _anchor(anchors, event, opened, file)
            stack.append(_Open(opened))
            continue
        else:  # SequenceEndEvent or MappingEndEvent
            closed = stack.pop().node
            closed.end_mark = event.end_mark
            node = closed
        if isinstance(event, yaml.ScalarEvent):
            _anchor(anchors, event, node, file)
        if stack:
            stack[-1].add(node)
        else:
            root = node
    loader.get_event()  # DocumentEndEvent
    if not loader.check_event(yaml.StreamEndEvent):
        extra = loader.get_event()
        raise SpecError(
            "found a second YAML document; expected a single document",
            mark_location(file, extra.start_mark),
            hint="remove the `---` line or split the file",
        )
    return root


def _anchor(
    anchors: dict[str, yaml.Node], event: yaml.NodeEvent, node: yaml.Node, file: str
) -> None:
    if event.anchor is None:
        return
    if event.anchor in anchors:
        first = anchors[event.anchor].start_mark
        raise SpecError(
            f"duplicate anchor &{event.anchor} (first at line {first.line + 1})",
            mark_location(file, event.start_mark),
        )
    anchors[event.anchor] = node
