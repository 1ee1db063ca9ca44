"""Composition, before validation: `base:` (extend another spec file) and `units:` (row groups
defined once and used many times).

Both work on the located YAML tree, so every row they produce keeps the file, line and column it
was written at; a row that came out of a unit also says which use of the unit it belongs to
(`UnitLocation`). What they produce is an ordinary spec tree: the loader validates its rows with
the normal row schema afterwards, so a value substituted from a unit parameter is checked exactly
like a value written in place. The language is described in `docs/spec_language.md`.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from archspec.errors import Location, SpecError
from archspec.names import identifier_problem
from archspec.ops import LAYER_KINDS
from archspec.yamlsrc import Node, describe, read_yaml_file

MAX_UNIT_DEPTH = 4  # a unit used inside a unit used inside ... at most this deep
MAX_BASE_DEPTH = 8  # a base of a base of ... at most this deep
MAX_UNITS = 100
MAX_PARAMS = 32
MAX_INPUTS = 8
MAX_REPEATS = 64
SPEC_SUFFIXES = (".yaml", ".yml")
TREE_MARKER = "archspec.schema.json"  # the folder holding it is the root of a spec tree
_PARAM = re.compile(r"\$([A-Za-z][A-Za-z0-9_]*)")
_WORD = re.compile(r"[A-Za-z0-9_]+")
COMPOSE_KEYS = ("base", "trim_after", "units")
INSTANCE_KEYS = ("unit", "name", "from", "n", "part")
UNIT_KEYS = ("description", "params", "inputs", "layers", "output")


@dataclass(frozen=True)
class UnitLocation(Location):
    """A place in a unit's definition, reached through one or more uses of units."""

    via: str = ""

    def __str__(self) -> str:
        return f"{Location.__str__(self)} ({self.via})"


@dataclass(frozen=True)
class Unit:
    """A unit definition: parameters with their defaults (None: required), inputs, rows."""

    name: str
    params: Mapping[str, Node | None]
    inputs: tuple[str, ...]
    rows: tuple[Node, ...]
    output: int  # index of the row whose result is the unit's result
    loc: Location


def _hint(word: str, choices: list[str]) -> str | None:
    near = difflib.get_close_matches(word, choices, n=1)
    return f"did you mean {near[0]!r}?" if near else None


def _items(node: Node, what: str, path: str) -> dict[str, tuple[Location, Node]]:
    if not isinstance(node.value, dict):
        raise SpecError(f"found {describe(node.value)}; expected {what}", node.loc, path)
    return node.value


def _ident(node: Node, path: str, what: str) -> str:
    """A name that must be an identifier (unit, parameter, input and instance names)."""
    v = node.value
    if not isinstance(v, str):
        raise SpecError(f"found {describe(v)}; expected {what}", node.loc, path)
    problem = identifier_problem(v)
    if problem:
        raise SpecError(f"{v!r} cannot be {what}: {problem}", node.loc, path)
    return v


# -- entry point ----------------------------------------------------------------------------------
def compose(root: Node, max_rows: int) -> Node:
    """Resolve `base:` and expand `units:` in a spec tree; return a tree without either.

    A tree that uses neither is returned unchanged. Raises a located `SpecError` on bad input.
    """
    items = root.value
    if not isinstance(items, dict):
        return root
    layers = items.get("layers", (None, Node(None, root.loc)))[1].value
    uses = isinstance(layers, list) and any(
        isinstance(r.value, dict) and "unit" in r.value for r in layers
    )
    if not uses and not any(k in items for k in COMPOSE_KEYS):
        return root
    folder = os.path.dirname(root.loc.file) or "."
    tree = spec_tree(folder)
    top = os.path.realpath(root.loc.file)
    items = _with_base(root, tree, (top,) if os.path.isfile(top) else ())
    units = _parse_units(items.pop("units", None))
    if "layers" in items:
        loc, node = items["layers"]
        if isinstance(node.value, list):
            rows = _Expander(units, max_rows).top(node.value)
            items["layers"] = (loc, Node(rows, node.loc))
    return Node(items, root.loc)


def spec_tree(folder: str) -> str:
    """The root of the spec tree holding `folder`: the nearest folder at or above it that holds
    `archspec.schema.json`, else `folder` itself (symlinks resolved)."""
    start = os.path.realpath(folder)
    here = start
    while True:
        if os.path.isfile(os.path.join(here, TREE_MARKER)):
            return here
        parent = os.path.dirname(here)
        if parent == here:
            return start
        here = parent


# -- base: ----------------------------------------------------------------------------------------
def _with_base(root: Node, tree: str, chain: tuple[str, ...]) -> dict[str, tuple[Location, Node]]:
    """The header of `root` merged over its base's (recursively); layers concatenated."""
    items = dict(_items(root, "a mapping (a spec)", ""))
    if "base" not in items:
        if "trim_after" in items:
            loc = items["trim_after"][0]
            raise SpecError("`trim_after` needs a `base` spec to trim", loc, "trim_after")
        return items
    _, base_node = items.pop("base")
    path, real = _base_path(base_node, root.loc.file, tree, chain)
    base_root = read_yaml_file(path)
    if not isinstance(base_root.value, dict) or "layers" not in base_root.value:
        raise SpecError(
            "the base is not a spec; expected a mapping with `name`, `input` and `layers`",
            base_node.loc,
            "base",
        )
    base = _with_base(base_root, tree, (*chain, real))
    trim = items.pop("trim_after", None)
    if trim is not None:
        base["layers"] = (base["layers"][0], _trimmed(base["layers"][1], trim[1]))
    merged = dict(base)
    for key, (loc, node) in items.items():
        old = merged.get(key)
        if key in ("input", "rounding") and old is not None:
            if isinstance(old[1].value, dict) and isinstance(node.value, dict):
                node = Node({**old[1].value, **node.value}, node.loc)
        elif key == "layers" and old is not None:
            if isinstance(old[1].value, list) and isinstance(node.value, list):
                node = Node([*old[1].value, *node.value], node.loc)
        elif key == "units" and old is not None:
            node = _merged_units(old[1], node)
        merged[key] = (loc, node)
    return merged


def _base_path(node: Node, owner: str, tree: str, chain: tuple[str, ...]) -> tuple[str, str]:
    """(path to show, real path to read) of a `base:` value, or a located error. The file must be
    a `.yaml` spec inside the spec tree, reached without leaving it through a symlink."""
    v = node.value
    if not isinstance(v, str) or not v:
        raise SpecError(f"found {describe(v)}; expected the path of a spec file", node.loc, "base")
    if "\0" in v or os.path.isabs(v) or v.startswith("~"):
        raise SpecError(
            "expected a path relative to this spec's folder",
            node.loc,
            "base",
            "absolute paths are refused: a base lies in the same spec tree",
        )
    if not v.endswith(SPEC_SUFFIXES):
        raise SpecError("expected a spec file ending in .yaml or .yml", node.loc, "base")
    joined = os.path.join(os.path.dirname(owner), v)
    real = os.path.realpath(joined)
    shown = os.path.normpath(joined)
    if os.path.realpath(shown) != real:  # `..` after a symlink: only the joined path is right
        shown = joined
    if os.path.commonpath([real, tree]) != tree:
        raise SpecError(
            f"{v!r} lies outside the spec tree {tree}",
            node.loc,
            "base",
            f"the spec tree is the nearest folder above the spec holding {TREE_MARKER} "
            "(else the spec's own folder); symlinks are followed before this check",
        )
    if not os.path.isfile(real):
        raise SpecError(
            f"no spec file {shown!r}",
            node.loc,
            "base",
            "paths are relative to the folder of the spec that names them",
        )
    if real in chain:
        raise SpecError(
            f"{v!r} is a base of itself (a cycle of `base:` references)", node.loc, "base"
        )
    if len(chain) >= MAX_BASE_DEPTH:
        raise SpecError(f"bases nest deeper than {MAX_BASE_DEPTH} levels", node.loc, "base")
    return shown, real


def _trimmed(layers: Node, trim: Node) -> Node:
    """The base's rows up to and including the row named `trim`."""
    name = trim.value
    if not isinstance(name, str):
        raise SpecError(f"found {describe(name)}; expected a row name", trim.loc, "trim_after")
    names = []
    for i, row in enumerate(layers.value if isinstance(layers.value, list) else ()):
        entry = row.value.get("name") if isinstance(row.value, dict) else None
        if entry is not None and isinstance(entry[1].value, str):
            if entry[1].value == name:
                return Node(layers.value[: i + 1], layers.loc)
            names.append(entry[1].value)
    raise SpecError(
        f"the base has no row named {name!r}", trim.loc, "trim_after", _hint(name, names)
    )


def _merged_units(old: Node, new: Node) -> Node:
    if not isinstance(old.value, dict) or not isinstance(new.value, dict):
        return new
    for key, (loc, _) in new.value.items():
        if key in old.value:
            first = old.value[key][0]
            raise SpecError(
                f"unit {key!r} is already defined by the base (at {first})", loc, f"units.{key}"
            )
    return Node({**old.value, **new.value}, new.loc)


# -- units: ---------------------------------------------------------------------------------------
def _parse_units(entry: tuple[Location, Node] | None) -> dict[str, Unit]:
    if entry is None:
        return {}
    items = _items(entry[1], "a mapping of unit names to units", "units")
    if len(items) > MAX_UNITS:
        raise SpecError(f"found {len(items)} units; expected at most {MAX_UNITS}", entry[1].loc)
    return {name: _unit(name, loc, node) for name, (loc, node) in items.items()}


def _unit(name: str, key_loc: Location, node: Node) -> Unit:
    path = f"units.{name}"
    _ident(Node(name, key_loc), path, "a unit name")
    items = _items(node, "a unit (a mapping with `layers`)", path)
    for key, (loc, _) in items.items():
        if key not in UNIT_KEYS:
            raise SpecError(
                f"unknown field {key!r} for a unit; expected one of: {', '.join(UNIT_KEYS)}",
                loc,
                f"{path}.{key}",
                _hint(key, list(UNIT_KEYS)),
            )
    if "layers" not in items:
        raise SpecError("missing required field 'layers' for a unit", key_loc, f"{path}.layers")
    params: dict[str, Node | None] = {}
    if "params" in items:
        given = _items(items["params"][1], "a mapping of parameter names to defaults", path)
        if len(given) > MAX_PARAMS:
            raise SpecError(
                f"found {len(given)} parameters; expected at most {MAX_PARAMS}",
                items["params"][1].loc,
                f"{path}.params",
            )
        for key, (loc, default) in given.items():
            _ident(Node(key, loc), f"{path}.params.{key}", "a parameter name")
            if key in INSTANCE_KEYS:
                raise SpecError(
                    f"{key!r} cannot be a parameter name: a unit row uses it itself",
                    loc,
                    f"{path}.params.{key}",
                )
            params[key] = None if default.value is None else default
    inputs: tuple[str, ...] = ("x",)
    if "inputs" in items:
        inode = items["inputs"][1]
        listed = inode.value if isinstance(inode.value, list) else [inode]
        if not listed or len(listed) > MAX_INPUTS:
            raise SpecError(
                f"expected from 1 to {MAX_INPUTS} input names", inode.loc, f"{path}.inputs"
            )
        inputs = tuple(_ident(n, f"{path}.inputs", "an input name") for n in listed)
        if len(set(inputs)) != len(inputs):
            raise SpecError("an input name is listed twice", inode.loc, f"{path}.inputs")
    lnode = items["layers"][1]
    if not isinstance(lnode.value, list) or not lnode.value:
        raise SpecError(
            f"found {describe(lnode.value) if lnode.value != [] else 'an empty list'}; "
            "expected a list of one or more rows",
            lnode.loc,
            f"{path}.layers",
        )
    rows = tuple(lnode.value)
    local: dict[str, int] = {}
    for i, row in enumerate(rows):
        row_items = _items(row, "a row (a mapping)", f"{path}.layers[{i}]")
        if "name" in row_items:
            rname = _ident(row_items["name"][1], f"{path}.layers[{i}].name", "a row name")
            if rname in local or rname in inputs:
                raise SpecError(
                    f"{rname!r} is used twice in unit {name!r} (row and input names are one "
                    "namespace)",
                    row_items["name"][1].loc,
                    f"{path}.layers[{i}].name",
                )
            local[rname] = i
    output = len(rows) - 1
    if "output" in items:
        onode = items["output"][1]
        if onode.value not in local:
            raise SpecError(
                f"found {describe(onode.value)}; expected the name of one of the unit's rows",
                onode.loc,
                f"{path}.output",
                _hint(str(onode.value), list(local)),
            )
        output = local[onode.value]
    return Unit(name, params, inputs, rows, output, key_loc)


@dataclass(frozen=True)
class _Scope:
    """One use of a unit, while its rows are expanded."""

    unit: Unit
    args: Mapping[str, Node]
    inputs: Mapping[str, Node | None]  # input name -> the tensor it reads (None: previous row)
    names: Mapping[str, str]  # local row name -> expanded row name
    via: str
    part: Node | None  # the use's `part`, given to every row that names none itself


class _Expander:
    """Expands unit rows into plain rows, within the bounds of depth and row count."""

    def __init__(self, units: dict[str, Unit], max_rows: int) -> None:
        self.units = units
        self.max_rows = max_rows
        self.rows: list[Node] = []
        self.counters: dict[str, int] = {}
        self.used = False
        self.at: Location | None = None  # the spec row being expanded (where a bomb is reported)

    def top(self, rows: list[Node]) -> list[Node]:
        """The expanded rows of the spec's `layers`."""
        last: Node | None = Node("input", Location("<input>"))  # what an unnamed `from` reads
        for i, row in enumerate(rows):
            self.at = row.loc
            if isinstance(row.value, dict) and "unit" in row.value:
                name_entry = row.value.get("name")
                if name_entry is not None:
                    name = _ident(name_entry[1], f"layers[{i}].name", "a row name")
                else:
                    unit = row.value["unit"][1].value
                    key = unit if isinstance(unit, str) else "unit"
                    name = f"{key}{self.counters.get(key, 0)}"
                    self.counters[key] = self.counters.get(key, 0) + 1
                self._use(row, name, f"layers[{i}]", (), last)
                last = Node(name, row.loc)
            else:
                self._add(row, row.loc)
                entry = row.value.get("name") if isinstance(row.value, dict) else None
                last = entry[1] if entry is not None and isinstance(entry[1].value, str) else None
        if self.used:
            self._check_unique()
        return self.rows

    def _add(self, row: Node, at: Location) -> None:
        if len(self.rows) >= self.max_rows:
            raise SpecError(
                f"the spec expands to more than {self.max_rows} rows",
                self.at or at,
                hint="units used inside units multiply: check the repeats `n` of the unit rows",
            )
        self.rows.append(row)

    def _use(
        self,
        row: Node,
        name: str,
        path: str,
        stack: tuple[str, ...],
        previous: Node | None,
    ) -> None:
        """Expand one unit row named `name` (its `from` already rewired); without `from`, its
        input is `previous` (None: the row above, which has no name)."""
        self.used = True
        items = row.value
        if "op" in items:
            raise SpecError(
                "a row has either `op` or `unit`, not both", items["op"][0], f"{path}.op"
            )
        unit_node = items["unit"][1]
        uname = unit_node.value
        if not isinstance(uname, str) or uname not in self.units:
            known = ", ".join(self.units) or "none (the spec has no `units:`)"
            raise SpecError(
                f"unknown unit {describe(uname)}; the units defined are: {known}",
                unit_node.loc,
                f"{path}.unit",
                _hint(str(uname), list(self.units)),
            )
        unit = self.units[uname]
        if uname in stack:
            cycle = " → ".join((*stack[stack.index(uname) :], uname))
            raise SpecError(f"unit {uname!r} uses itself ({cycle})", unit_node.loc, f"{path}.unit")
        if len(stack) >= MAX_UNIT_DEPTH:
            raise SpecError(
                f"units nest deeper than {MAX_UNIT_DEPTH} levels ({' → '.join((*stack, uname))})",
                unit_node.loc,
                f"{path}.unit",
            )
        args = self._args(unit, items, path, row.loc)
        n = self._repeats(items, path)
        sources = self._sources(unit, items, path, row.loc, previous)
        where = (
            f"line {row.loc.line}"
            if row.loc.file == unit.loc.file
            else str(Location(row.loc.file, row.loc.line, row.loc.column))
        )
        via = f"in unit {uname} used at {where}"
        if isinstance(row.loc, UnitLocation):
            via += ", " + row.loc.via
        for i in range(n):
            prefix = name if n == 1 else f"{name}_{i}"
            out = name if i == n - 1 else prefix
            names: dict[str, str] = {}
            for j, urow in enumerate(unit.rows):
                local = urow.value.get("name")
                if j == unit.output:
                    names[f"#{j}"] = out
                elif local is not None:
                    names[f"#{j}"] = f"{prefix}_{local[1].value}"
                else:
                    names[f"#{j}"] = f"{prefix}_{_auto_prefix(urow)}{j}"
                if local is not None:
                    names[local[1].value] = names[f"#{j}"]
            inputs = dict(zip(unit.inputs, sources, strict=True))
            scope = _Scope(unit, args, inputs, names, via, items.get("part", (None, None))[1])
            for j, urow in enumerate(unit.rows):
                self._unit_row(urow, j, scope, (*stack, uname))
            sources = [Node(out, row.loc), *sources[:-1]]

    def _unit_row(self, urow: Node, j: int, scope: _Scope, stack: tuple[str, ...]) -> None:
        """Substitute, rename and rewire one row of a unit's body, then add or expand it."""
        items = urow.value
        at = _at(urow.loc, scope.via)
        out: dict[str, tuple[Location, Node]] = {}
        kind_key = "unit" if "unit" in items else "op"
        if kind_key in items:
            loc, node = items[kind_key]
            out[kind_key] = (_at(loc, scope.via), _substituted(node, scope))
        kind = out.get("op", (None, Node(None, at)))[1].value
        refs = {"from"}
        if kind_key == "op" and isinstance(kind, str) and kind in LAYER_KINDS:
            refs = {f.name for f in LAYER_KINDS[kind].fields if f.kind in ("ref", "refs")}
        for key, (loc, node) in items.items():
            if key in (kind_key, "name"):
                continue
            kloc = _at(loc, scope.via)
            if key in refs:
                out[key] = (kloc, _rewired(node, scope))
            else:
                out[key] = (kloc, _substituted(node, scope))
        if "part" not in out and scope.part is not None:
            out["part"] = (at, scope.part)
        first = scope.inputs[scope.unit.inputs[0]]
        if j == 0 and "from" not in out and first is not None:
            out["from"] = (at, first)
        name = scope.names[f"#{j}"]
        name_loc = _at(items["name"][1].loc, scope.via) if "name" in items else at
        out["name"] = (name_loc, Node(name, name_loc))
        row = Node(out, at)
        if kind_key == "unit":
            previous = first if j == 0 else Node(scope.names[f"#{j - 1}"], at)
            path = f"units.{scope.unit.name}.layers[{j}]"
            self._use(row, name, path, stack, previous)
        else:
            self._add(row, at)

    def _args(
        self, unit: Unit, items: dict[str, tuple[Location, Node]], path: str, at: Location
    ) -> dict[str, Node]:
        args: dict[str, Node] = {}
        for key, (loc, node) in items.items():
            if key in INSTANCE_KEYS:
                continue
            if key not in unit.params:
                expected = ", ".join(unit.params) or "none"
                raise SpecError(
                    f"unknown parameter {key!r} for unit {unit.name!r}; its parameters: {expected}",
                    loc,
                    f"{path}.{key}",
                    _hint(key, list(unit.params)),
                )
            args[key] = node
        for key, default in unit.params.items():
            if key not in args:
                if default is None:
                    raise SpecError(
                        f"missing parameter {key!r} for unit {unit.name!r} (it has no default)",
                        at,
                        f"{path}.{key}",
                    )
                args[key] = default
        return args

    @staticmethod
    def _repeats(items: dict[str, tuple[Location, Node]], path: str) -> int:
        if "n" not in items:
            return 1
        node = items["n"][1]
        v = node.value
        if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= MAX_REPEATS:
            raise SpecError(
                f"found {describe(v)}; expected an integer from 1 to {MAX_REPEATS}",
                node.loc,
                f"{path}.n",
            )
        return v

    @staticmethod
    def _sources(
        unit: Unit,
        items: dict[str, tuple[Location, Node]],
        path: str,
        at: Location,
        previous: Node | None,
    ) -> list[Node | None]:
        """The tensors feeding the unit's inputs, in order (None: the unnamed row above)."""
        if "from" not in items:
            if len(unit.inputs) > 1:
                raise SpecError(
                    f"unit {unit.name!r} takes {len(unit.inputs)} inputs "
                    f"({', '.join(unit.inputs)}); expected them listed in `from`",
                    at,
                    f"{path}.from",
                )
            return [previous]
        node = items["from"][1]
        listed = node.value if isinstance(node.value, list) else [node]
        for item in listed:
            if not isinstance(item.value, str):
                raise SpecError(
                    f"found {describe(item.value)}; expected a row name", item.loc, f"{path}.from"
                )
        if len(listed) != len(unit.inputs):
            raise SpecError(
                f"found {len(listed)} input(s); unit {unit.name!r} takes {len(unit.inputs)} "
                f"({', '.join(unit.inputs)})",
                node.loc,
                f"{path}.from",
            )
        return list(listed)

    def _check_unique(self) -> None:
        seen: dict[str, Location] = {}
        for row in self.rows:
            entry = row.value.get("name") if isinstance(row.value, dict) else None
            if entry is None or not isinstance(entry[1].value, str):
                continue
            name, loc = entry[1].value, entry[1].loc
            if name in seen:
                raise SpecError(
                    f"duplicate row name {name!r} after expanding units (also the name of the "
                    f"row at {seen[name]})",
                    loc,
                    "name",
                    "rows of a unit are named <use>_<row>, and the unit's result <use>",
                )
            seen[name] = loc


def _auto_prefix(row: Node) -> str:
    """How an unnamed row of a unit body is named: its kind's prefix (or `unit`/`row`)."""
    items = row.value
    if "unit" in items:
        v = items["unit"][1].value
        return v if isinstance(v, str) else "unit"
    v = items.get("op", (None, Node(None, row.loc)))[1].value
    if isinstance(v, str) and v in LAYER_KINDS:
        return LAYER_KINDS[v].auto_prefix or "row"
    return "row"


def _at(loc: Location, via: str) -> Location:
    if isinstance(loc, UnitLocation):
        return loc
    return UnitLocation(loc.file, loc.line, loc.column, via)


def _substituted(node: Node, scope: _Scope) -> Node:
    """`$param` replaced by the use's argument: a whole value by the argument itself (which keeps
    its own place), a `$param` inside text (`c: $anchors * 4`) by the argument's text."""
    v = node.value
    if isinstance(v, str) and "$" in v:
        whole = _PARAM.fullmatch(v)
        if whole:
            return scope.args[_param(whole, node, scope)]
        return Node(_PARAM.sub(lambda m: _inserted(m, node, scope), v), _at(node.loc, scope.via))
    if isinstance(v, list):
        return Node([_substituted(i, scope) for i in v], _at(node.loc, scope.via))
    if isinstance(v, dict):
        return Node(
            {k: (_at(loc, scope.via), _substituted(i, scope)) for k, (loc, i) in v.items()},
            _at(node.loc, scope.via),
        )
    return Node(v, _at(node.loc, scope.via))


def _param(match: re.Match[str], node: Node, scope: _Scope) -> str:
    key = match.group(1)
    if key not in scope.args:
        expected = ", ".join(f"${p}" for p in scope.unit.params) or "none"
        raise SpecError(
            f"unknown parameter ${key} in unit {scope.unit.name!r}; its parameters: {expected}",
            _at(node.loc, scope.via),
            hint=_hint(f"${key}", [f"${p}" for p in scope.unit.params]),
        )
    return key


def _inserted(match: re.Match[str], node: Node, scope: _Scope) -> str:
    """The text of an argument inside a longer value: a number, or text in parentheses."""
    arg = scope.args[_param(match, node, scope)]
    v = arg.value
    if isinstance(v, int | float) and not isinstance(v, bool):
        return str(v)
    if isinstance(v, str) and "$" not in v:
        return v if _WORD.fullmatch(v) else f"({v})"
    raise SpecError(
        f"found {describe(v)} for ${match.group(1)}, used inside {node.value!r}; expected a "
        "number or text",
        arg.loc,
    )


def _rewired(node: Node, scope: _Scope) -> Node:
    """A reference inside a unit, made to name the expanded rows (or the use's inputs)."""
    v = node.value
    if isinstance(v, list):
        return Node([_rewired(i, scope) for i in v], _at(node.loc, scope.via))
    at = _at(node.loc, scope.via)
    if not isinstance(v, str):
        return Node(v, at)
    head, dot, part = v.partition(".")
    if head in scope.inputs:
        source = scope.inputs[head]
        if source is None:
            raise SpecError(
                f"unit {scope.unit.name!r} reads its input {head!r} by name, but its use "
                "has no `from` (and the row above the use may be unnamed)",
                at,
                hint="give the unit row `from:` naming its input",
            )
        if dot and "." in str(source.value):
            raise SpecError(f"{v!r} names a part of a part; expected <row>.<part>", at)
        return Node(f"{source.value}{dot}{part}", source.loc if not dot else at)
    if head in scope.names:
        return Node(f"{scope.names[head]}{dot}{part}", at)
    if v == "input":
        return Node(v, at)
    choices = [*scope.unit.inputs, *(k for k in scope.names if not k.startswith("#"))]
    raise SpecError(
        f"unknown name {v!r} in unit {scope.unit.name!r}; expected one of its inputs or rows: "
        + ", ".join(choices),
        at,
        hint=_hint(head, choices),
    )


# -- inner tensors: `<block>.<part>` ---------------------------------------------------------------
def inner_ref_problem(ref: str) -> str | None:
    """Why `ref` cannot be a `<block>.<part>` reference, or None (names checked like row names)."""
    block, _, part = ref.partition(".")
    for piece in (block, part):
        problem = identifier_problem(piece)
        if problem:
            return f"expected <block>.<part> (e.g. block13.expand), each a name: {problem}"
    return None


def inner_tensor(ref: str, nodes: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(graph node, None) for `<block>.<part>`: the node `<block>_<part>` of block `<block>`
    among `nodes` (name -> node with a `.block`), or (None, why not)."""
    block, _, part = ref.partition(".")
    node = nodes.get(f"{block}_{part}")
    if node is not None and node.block == block:
        return node.name, None
    members = [n.name for n in nodes.values() if n.block == block]
    if not members:
        blocks = list(dict.fromkeys(n.block for n in nodes.values() if n.block))
        near = difflib.get_close_matches(block, blocks, n=1)
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        return None, f"no block named {block!r} above this row{hint}"
    parts = ", ".join(m[len(block) + 1 :] for m in members)
    return None, f"block {block!r} has no part {part!r}; its parts: {parts}"
