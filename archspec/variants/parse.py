"""A search-space file parsed and checked against its base spec into a `SpaceDef` (the file
format is described in archspec/variants/__init__.py). Every check happens here, so the modules
above take a `SpaceDef` as given."""

from __future__ import annotations

import dataclasses
import difflib
import os
from collections.abc import Sequence
from typing import Any

from archspec.analysis.memory import DTYPE_BYTES
from archspec.errors import Location, SpecError
from archspec.lower import lower
from archspec.names import SPEC_NAME, identifier_problem
from archspec.ops import LAYER_KINDS
from archspec.ops.base import Field
from archspec.pareto import parse_axes
from archspec.spec import (
    HEADER_FIELDS,
    INPUT_FIELDS,
    MAX_CHANNELS,
    Spec,
    check_value,
    spec_from_node,
)
from archspec.variants.checks import (
    check_choice_values,
    check_keys,
    described,
    mapping_items,
    value_nodes,
)
from archspec.variants.model import (
    MAX_POINTS,
    Choice,
    Grid,
    MemorySettings,
    SpaceDef,
    SpaceSource,
    metric_names,
    scaled_channels,
)
from archspec.yamlsrc import Node, load_yaml, read_yaml_file

GLOBAL_KEYS = ("width_multiplier", "resolution", "num_classes")
ROW_KEYS = ("t", "n", "k", "s", "c", "c_scale")
DTYPES = tuple(DTYPE_BYTES)
SAMPLING = ("auto", "grid", "random")
DEFAULT_SAMPLES = 1000
DEFAULT_SPLIT = 4
DEFAULT_PARETO = "madds,params:max"
C_SCALE = Field(
    "c_scale",
    "number",
    "Multiplier of the row's base channels.",
    required=True,
    minimum=0.01,
    maximum=16.0,
)
_GLOBAL_FIELDS = {
    "width_multiplier": next(f for f in HEADER_FIELDS if f.name == "width_multiplier"),
    "num_classes": next(f for f in HEADER_FIELDS if f.name == "num_classes"),
    "resolution": next(f for f in INPUT_FIELDS if f.name == "resolution"),
}
_SPACE_KEYS = (
    "name",
    "description",
    "base",
    "sampling",
    "samples",
    "seed",
    "memory",
    "pareto",
    "choices",
    "include",
)
_MEMORY_KEYS = ("dtype", "fused_split", "first_layer_trick")


def load_space(path: str | os.PathLike[str]) -> SpaceDef:
    """Read a space file; raises a located `SpecError` on bad input."""
    return parse_space(read_yaml_file(str(path)), SpaceSource(path=os.path.abspath(path)))


def space_from_text(text: str, file: str = "<space>") -> SpaceDef:
    """A space from YAML text (a relative `base` path is taken from the current folder)."""
    return parse_space(load_yaml(text, file), SpaceSource(text=text, file=file, cwd=os.getcwd()))


def read_source(source: SpaceSource) -> SpaceDef:
    """The space `source` names, read again (in a worker process, say)."""
    if source.path is not None:
        return parse_space(read_yaml_file(source.path), source)
    assert source.text is not None
    return parse_space(load_yaml(source.text, source.file), source)


def parse_space(root: Node, source: SpaceSource) -> SpaceDef:
    """Check a space file's YAML tree against its base spec; `source` says where it is from."""
    items = mapping_items(root, "")
    check_keys(items, _SPACE_KEYS, "", "a search space")

    def get(key: str) -> Node | None:
        return items[key][1] if key in items else None

    name_node = get("name")
    if name_node is None:
        raise SpecError("missing required key 'name' for a search space", root.loc, "name")
    name = name_node.value
    if not isinstance(name, str) or not SPEC_NAME.match(name) or len(name) > 50:
        raise SpecError(
            f"found {described(name)}; expected a name of letters, digits, `_`, `.` or `-` "
            "starting with a letter (at most 50 characters)",
            name_node.loc,
            "name",
        )
    desc = get("description")
    if desc is not None and not isinstance(desc.value, str):
        raise SpecError(f"found {described(desc.value)}; expected text", desc.loc, "description")
    base = _load_base(get("base"), root.loc, source)
    try:
        lower(base)
    except SpecError as exc:
        raise SpecError(
            f"{exc.message} (the base spec does not lower)", exc.location, exc.field, exc.hint
        ) from None

    sampling: str = _scalar(get("sampling"), "sampling", "auto", choices=SAMPLING)
    samples: int = _scalar(
        get("samples"),
        "samples",
        DEFAULT_SAMPLES,
        Field("samples", "int", "", minimum=1, maximum=MAX_POINTS),
    )
    seed: int = _scalar(
        get("seed"), "seed", 0, Field("seed", "int", "", minimum=0, maximum=2**63 - 1)
    )
    memory = _memory(get("memory"))

    grids: list[Grid] = []
    choices_node = get("choices")
    if choices_node is not None:
        grids.append(_grid(base, choices_node, "choices"))
    include = get("include")
    if include is not None:
        if not isinstance(include.value, list) or not include.value:
            raise SpecError(
                f"found {described(include.value)}; expected a non-empty list of "
                "grids (mappings like `choices`)",
                include.loc,
                "include",
            )
        for i, item in enumerate(include.value):
            grids.append(_grid(base, item, f"include[{i}]"))
    if not grids:
        grids.append(Grid((), root.loc))
    labels: dict[str, Choice] = {}
    for grid in grids:
        for choice in grid.choices:
            first = labels.setdefault(choice.label, choice)
            if (first.key, first.rows) != (choice.key, choice.rows):
                raise SpecError(
                    f"label {choice.label!r} already names another choice "
                    f"(line {first.locs[0].line})",
                    choice.locs[0],
                    choice.label,
                    "give the row choice a distinct `label`",
                )
    space = SpaceDef(
        source=source,
        name=name,
        description="" if desc is None else desc.value,
        file=root.loc.file,
        base=base,
        sampling=sampling,
        samples=samples,
        seed=seed,
        memory=memory,
        grids=tuple(grids),
        labels=tuple(labels),
        base_values={label: _base_value(base, choice) for label, choice in labels.items()},
        pareto=DEFAULT_PARETO,
    )
    pareto_node = get("pareto")
    if pareto_node is None:
        return space
    text = pareto_node.value
    if isinstance(text, list):
        text = ",".join(str(v.value) for v in text)
    if not isinstance(text, str):
        raise SpecError(
            f"found {described(text)}; expected `metric,metric`, e.g. {DEFAULT_PARETO!r}",
            pareto_node.loc,
            "pareto",
        )
    parse_axes(text, metric_names(space), pareto_node.loc)
    return dataclasses.replace(space, pareto=text)


def _memory(node: Node | None) -> MemorySettings:
    dtype, split, trick = "float32", DEFAULT_SPLIT, True
    if node is None:
        return MemorySettings(dtype, split, trick)
    mitems = mapping_items(node, "memory")
    check_keys(mitems, _MEMORY_KEYS, "memory", "memory")
    if "dtype" in mitems:
        dtype = _scalar(mitems["dtype"][1], "memory.dtype", "float32", choices=DTYPES)
    if "fused_split" in mitems:
        split_node = mitems["fused_split"][1]
        if split_node.value != "n":
            check_value(
                Field("fused_split", "int", "", minimum=1, maximum=MAX_CHANNELS),
                split_node,
                "memory.fused_split",
            )
        split = split_node.value
    if "first_layer_trick" in mitems:
        trick = check_value(
            Field("first_layer_trick", "bool", ""),
            mitems["first_layer_trick"][1],
            "memory.first_layer_trick",
        )
    return MemorySettings(dtype, split, trick)


def _load_base(node: Node | None, where: Location, source: SpaceSource) -> Spec:
    if node is None:
        raise SpecError(
            "missing required key 'base' (a spec file or an inline spec)", where, "base"
        )
    if isinstance(node.value, dict):
        return spec_from_node(node)
    if not isinstance(node.value, str):
        raise SpecError(
            f"found {described(node.value)}; expected a spec file path or an inline spec mapping",
            node.loc,
            "base",
        )
    path = source.folder / node.value
    if not path.is_file():
        raise SpecError(
            f"no spec file {str(path)!r}",
            node.loc,
            "base",
            "paths are relative to the space file",
        )
    return spec_from_node(read_yaml_file(str(path)))


def _scalar(
    node: Node | None,
    path: str,
    default: Any,
    f: Field | None = None,
    choices: Sequence[str] = (),
) -> Any:
    if node is None:
        return default
    if f is not None:
        return check_value(f, node, path)
    if node.value not in choices:
        raise SpecError(
            f"found {described(node.value)}; expected one of: {', '.join(choices)}",
            node.loc,
            path,
        )
    return node.value


def _row_index(base: Spec, node: Node, path: str) -> int:
    v = node.value
    rows = base.rows
    if isinstance(v, bool) or not isinstance(v, int | str):
        raise SpecError(f"found {described(v)}; expected a row index or a row name", node.loc, path)
    if isinstance(v, int):
        if not 0 <= v < len(rows):
            raise SpecError(
                f"row {v} does not exist; the base spec has rows 0 to {len(rows) - 1}",
                node.loc,
                path,
            )
        return v
    for row in rows:
        if row.name == v:
            return row.index
    named = [r.name for r in rows if r.name]
    near = difflib.get_close_matches(v, named, n=1)
    raise SpecError(
        f"no row named {v!r} in the base spec",
        node.loc,
        path,
        (f"did you mean {near[0]!r}? " if near else "")
        + f"named rows: {', '.join(named) or 'none'}; or give an index into `layers` "
        "(0 is the first)",
    )


def _grid(base: Spec, node: Node, path: str) -> Grid:
    items = mapping_items(node, path)
    check_keys(items, (*GLOBAL_KEYS, "rows"), path, "a grid of choices")
    choices: list[Choice] = []
    for key in GLOBAL_KEYS:
        if key in items:
            sub = f"{path}.{key}"
            nodes = value_nodes(items[key][1], sub)
            values, shown = check_choice_values(_GLOBAL_FIELDS[key], nodes, sub)
            choices.append(
                Choice(key, key, (), tuple(values), tuple(shown), tuple(n.loc for n in nodes))
            )
    if "rows" in items:
        rows_node = items["rows"][1]
        if not isinstance(rows_node.value, list):
            raise SpecError(
                f"found {described(rows_node.value)}; expected a list of row "
                "choices like `{row: 2, t: [4, 6]}`",
                rows_node.loc,
                f"{path}.rows",
            )
        taken: dict[tuple[int, str], Location] = {}
        for i, entry in enumerate(rows_node.value):
            choices.extend(_row_choices(base, entry, f"{path}.rows[{i}]", taken))
    return Grid(tuple(choices), node.loc)


def _row_choices(
    base: Spec, entry: Node, path: str, taken: dict[tuple[int, str], Location]
) -> list[Choice]:
    items = mapping_items(entry, path)
    check_keys(items, ("row", "label", *ROW_KEYS), path, "a row choice")
    if "row" not in items:
        raise SpecError(
            "missing key 'row' (a row index or name, or a list of them)",
            entry.loc,
            f"{path}.row",
        )
    row_node = items["row"][1]
    targets = row_node.value if isinstance(row_node.value, list) else [row_node]
    if not targets:
        raise SpecError(
            "found an empty list; expected one or more rows", row_node.loc, f"{path}.row"
        )
    indices = [_row_index(base, t, f"{path}.row") for t in targets]
    if len(set(indices)) != len(indices):
        raise SpecError("a row is listed twice", row_node.loc, f"{path}.row")
    if "label" in items:
        label_node = items["label"][1]
        prefix = label_node.value
        problem = identifier_problem(prefix) if isinstance(prefix, str) else "not text"
        if problem:
            raise SpecError(
                f"{prefix!r} cannot be a label: {problem}", label_node.loc, f"{path}.label"
            )
    else:
        prefix = "_".join(base.rows[i].name or f"row{i}" for i in indices)
    keys = [k for k in ROW_KEYS if k in items]
    if not keys:
        raise SpecError(
            f"no choice given; expected one or more of: {', '.join(ROW_KEYS)}", entry.loc, path
        )
    if "c" in keys and "c_scale" in keys:
        raise SpecError("choose `c` or `c_scale`, not both", items["c_scale"][0], f"{path}.c_scale")
    out = []
    for key in keys:
        key_loc, value_node = items[key]
        sub = f"{path}.{key}"
        target = "c" if key == "c_scale" else key
        f = C_SCALE
        for i in indices:
            row = base.rows[i]
            kind = LAYER_KINDS[row.kind]
            if target not in kind.field_index:
                has = [k for k in ROW_KEYS if (k if k != "c_scale" else "c") in kind.field_index]
                raise SpecError(
                    f"a {row.kind} row (row {i}) has no {target!r}; it can choose: "
                    f"{', '.join(has) or 'nothing'}",
                    key_loc,
                    sub,
                )
            if key == "c_scale" and not isinstance(row.fields["c"], int):
                raise SpecError(
                    f"row {i}'s c is {row.fields['c']!r}; c_scale needs a number of channels",
                    key_loc,
                    sub,
                )
            if (i, target) in taken:
                raise SpecError(
                    f"row {i}'s {target} is already chosen at line {taken[(i, target)].line}",
                    key_loc,
                    sub,
                )
            taken[(i, target)] = key_loc
            if key != "c_scale":
                f = kind.field_index[target]
        nodes = value_nodes(value_node, sub)
        values, shown = check_choice_values(f, nodes, sub)
        if key == "c_scale":
            for v, n in zip(values, nodes, strict=True):
                for i in indices:
                    c = scaled_channels(base.rows[i].fields["c"], v)
                    if c > MAX_CHANNELS:
                        raise SpecError(
                            f"row {i} would have {c} base channels; expected "
                            f"at most {MAX_CHANNELS}",
                            n.loc,
                            sub,
                        )
        out.append(
            Choice(
                f"{prefix}.{key}",
                key,
                tuple(indices),
                tuple(values),
                tuple(shown),
                tuple(n.loc for n in nodes),
            )
        )
    return out


def _base_value(base: Spec, choice: Choice) -> Any:
    if choice.key == "width_multiplier":
        return base.width_multiplier
    if choice.key == "num_classes":
        return base.num_classes
    if choice.key == "resolution":
        h, w = base.resolution
        return h if h == w else [h, w]
    if choice.key == "c_scale":
        return 1.0
    values = {base.rows[i].fields[choice.key] for i in choice.rows}
    return values.pop() if len(values) == 1 else None
