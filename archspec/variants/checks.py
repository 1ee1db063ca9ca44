"""Checks of a space file's YAML nodes: mappings, known keys and choice value lists."""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from typing import Any

from archspec.errors import Location, SpecError
from archspec.ops.base import Field
from archspec.spec import check_value
from archspec.yamlsrc import Node


def described(value: Any) -> str:
    """A found value for an error message: `a list`, `a mapping` or its repr."""
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return repr(value)


def mapping_items(node: Node, path: str) -> dict[str, tuple[Location, Node]]:
    """The items of a mapping node (key -> (key location, value node)); else a SpecError."""
    if not isinstance(node.value, dict):
        raise SpecError(f"found {described(node.value)}; expected a mapping", node.loc, path)
    return node.value


def check_keys(
    items: Mapping[str, tuple[Location, Node]], allowed: Sequence[str], path: str, what: str
) -> None:
    """Refuse a key not in `allowed` (with a did-you-mean hint); `what` names the mapping."""
    for key, (key_loc, _) in items.items():
        if key not in allowed:
            near = difflib.get_close_matches(key, list(allowed), n=1)
            raise SpecError(
                f"unknown key {key!r} for {what}; expected one of: {', '.join(allowed)}",
                key_loc,
                f"{path}.{key}" if path else key,
                f"did you mean {near[0]!r}?" if near else None,
            )


def value_nodes(node: Node, path: str) -> list[Node]:
    """A choice's value list (a scalar is a list of one); empty lists are refused."""
    if isinstance(node.value, list):
        if not node.value:
            raise SpecError(
                "found an empty list; expected one or more values to choose from", node.loc, path
            )
        return node.value
    if isinstance(node.value, dict):
        raise SpecError("found a mapping; expected a list of values", node.loc, path)
    return [node]


def check_choice_values(f: Field, nodes: list[Node], path: str) -> tuple[list[Any], list[Any]]:
    """Check each value against field `f`, refusing nested lists/mappings and duplicates.
    Returns (checked values, values as written)."""
    values, shown = [], []
    seen: dict[Any, Location] = {}
    for i, item in enumerate(nodes):
        if f.kind == "resolution" and isinstance(item.value, list):
            value = check_value(f, item, f"{path}[{i}]")
        elif isinstance(item.value, list | dict):
            raise SpecError(
                f"found {described(item.value)}; expected a single value", item.loc, f"{path}[{i}]"
            )
        else:
            value = check_value(f, item, f"{path}[{i}]")
        # equal values (1 and 1.0, 224 and [224, 224]) would be the same choice twice
        if value in seen:
            raise SpecError(
                f"duplicate value {item.plain()!r} (already listed at line {seen[value].line}, "
                f"column {seen[value].column})",
                item.loc,
                f"{path}[{i}]",
            )
        seen[value] = item.loc
        values.append(value)
        shown.append(item.plain())
    return values, shown
