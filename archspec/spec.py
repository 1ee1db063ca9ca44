"""YAML → Spec: schema, validation with located errors, and `--set` overrides.

A Spec is frozen and fully resolved: defaults filled in, every value type-checked and range-checked.
The schema lives in the field tables (`HEADER_FIELDS` here, each layer kind's `fields` in
`archspec/ops/`); the JSON Schema in `specs/` is generated from the same tables.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from archspec import expr
from archspec.compose import compose, inner_ref_problem
from archspec.errors import Location, SpecError
from archspec.names import SPEC_NAME, identifier_problem, module_name_problem
from archspec.ops import LAYER_KINDS
from archspec.ops.base import Field
from archspec.suggest import closest
from archspec.yamlsrc import Node, describe, load_yaml, read_yaml_file

MAX_CHANNELS = 1 << 16
MAX_RESOLUTION = 8192
MAX_ROWS = 1000

HEADER_FIELDS: tuple[Field, ...] = (
    Field("name", "text", "Network name (letters, digits, `_`, `.`, `-`).", required=True),
    Field("description", "text", "Free text for humans.", default=""),
    Field(
        "input",
        "mapping",
        "Input image: `resolution` (int or [h, w]) and `channels`.",
        required=True,
    ),
    Field(
        "width_multiplier",
        "number",
        "Width multiplier α (paper §4).",
        default=1.0,
        minimum=0.01,
        maximum=16.0,
    ),
    Field(
        "num_classes",
        "int",
        "Classifier outputs; rows may say `c: num_classes`.",
        default=1000,
        minimum=1,
        maximum=1_000_000,
    ),
    Field("rounding", "mapping", "Channel rounding: `divisor` and `min`.", default=None),
    Field(
        "last_layer",
        "choice",
        "Rule for rows with `scale: last_layer`: `above_one` scales them only when the width "
        "multiplier is above 1 (paper §4); `always`; `never`.",
        default="above_one",
        choices=("above_one", "always", "never"),
    ),
    Field("bn_eps", "number", "BatchNorm epsilon.", default=1e-5, minimum=1e-12, maximum=1.0),
    Field("outputs", "refs", "Network outputs (default: the last row).", default=None),
    Field("layers", "list", "The rows, in the style of the paper's Table 2.", required=True),
)
# The names a channel expression may use: the header's integer fields (`c: 3 * num_classes`).
CHANNEL_NAMES: tuple[str, ...] = tuple(f.name for f in HEADER_FIELDS if f.kind == "int")
INPUT_FIELDS: tuple[Field, ...] = (
    Field(
        "resolution", "resolution", "Input size: an int (square) or [height, width].", required=True
    ),
    Field("channels", "int", "Input channels.", default=3, minimum=1, maximum=MAX_CHANNELS),
)
ROUNDING_FIELDS: tuple[Field, ...] = (
    Field(
        "divisor",
        "int",
        "Channels are rounded to multiples of this.",
        default=8,
        minimum=1,
        maximum=1024,
    ),
    Field(
        "min",
        "int",
        "Smallest channel count after rounding (default: the divisor).",
        default=None,
        minimum=1,
        maximum=MAX_CHANNELS,
    ),
)
# Every row kind takes `note` besides its own fields (like `op`).
ROW_NOTE = Field("note", "text", "A remark on the row, shown beside it in every report format.")
OVERRIDE_ALIASES = {
    "resolution": "input.resolution",
    "channels": "input.channels",
    "divisor": "rounding.divisor",
}


@dataclass(frozen=True)
class Row:
    """One row of the spec, validated, with defaults filled in."""

    index: int
    kind: str
    name: str | None
    inputs: tuple[str, ...]
    fields: Mapping[str, Any]
    loc: Location
    field_locs: Mapping[str, Location]
    note: str | None = None  # `note:`, a remark the report shows beside the row

    def where(self, name: str) -> Location:
        """Location of a field of this row (the row itself when the field was defaulted)."""
        return self.field_locs.get(name, self.loc)


@dataclass(frozen=True)
class Spec:
    """A fully resolved architecture spec."""

    name: str
    description: str
    resolution: tuple[int, int]
    in_channels: int
    width_multiplier: float
    num_classes: int
    divisor: int
    min_channels: int
    last_layer: str
    bn_eps: float
    outputs: tuple[str, ...] | None
    rows: tuple[Row, ...]
    source: str
    locs: Mapping[str, Location] = field(default_factory=dict)


def _expected(f: Field) -> str:
    if f.kind == "int":
        rng = _range_text(f)
        return f"an integer{rng}"
    if f.kind == "number":
        return f"a number{_range_text(f)}"
    if f.kind == "bool":
        return "true or false"
    if f.kind == "choice":
        return "one of " + ", ".join(str(c) for c in f.choices)
    if f.kind == "name":
        return "a row name"
    if f.kind in ("names", "refs"):
        return "a row name or a list of row names"
    if f.kind == "ref":
        return "a row name (or `input`)"
    if f.kind == "channels":
        return (
            f"a positive integer (at most {MAX_CHANNELS}), `num_classes`, or an integer "
            "expression of " + ", ".join(CHANNEL_NAMES) + " with +, -, *, // (`3 * num_classes`)"
        )
    if f.kind == "resolution":
        return f"a positive integer or [height, width] (at most {MAX_RESOLUTION})"
    if f.kind == "mapping":
        return "a mapping"
    if f.kind == "list":
        return "a list"
    return "text"


def _range_text(f: Field) -> str:
    if f.minimum is not None and f.maximum is not None:
        return f" from {_num(f.minimum)} to {_num(f.maximum)}"
    if f.minimum is not None:
        return f" of at least {_num(f.minimum)}"
    return ""


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else str(v)


def check_value(f: Field, node: Node, path: str) -> Any:
    """Validate one located value against its field; return the plain python value."""
    v = node.value

    def bad() -> SpecError:
        return SpecError(f"found {describe(v)}; expected {_expected(f)}", node.loc, path)

    if v is None and not f.required and f.default is None:
        return None
    kind = f.kind
    if kind in ("int", "number"):
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise bad()
        if kind == "int" and not isinstance(v, int):
            raise bad()
        if (f.minimum is not None and v < f.minimum) or (f.maximum is not None and v > f.maximum):
            raise bad()
        return v
    if kind == "bool":
        if not isinstance(v, bool):
            raise bad()
        return v
    if kind == "choice":
        if v not in f.choices or isinstance(v, bool):
            raise bad()
        return v
    if kind == "text":
        if not isinstance(v, str):
            raise bad()
        # Text reaches generated files: a NUL makes Python source unreadable, a lone surrogate
        # (YAML's "\ud800") cannot be written as UTF-8.
        for i, ch in enumerate(v):
            if ch == "\0" or "\ud800" <= ch <= "\udfff":
                raise SpecError(
                    f"found the character U+{ord(ch):04X} at position {i + 1}; expected text "
                    "without NUL or unpaired surrogate characters",
                    node.loc,
                    path,
                )
        return v
    if kind == "name":
        return _check_name(node, path)
    if kind == "ref":
        return _check_name(node, path, reference=True)
    if kind == "refs":
        if isinstance(v, list):
            if not v:
                raise SpecError(
                    "found an empty list; expected one or more row names", node.loc, path
                )
            return tuple(
                _check_name(item, f"{path}[{i}]", reference=True) for i, item in enumerate(v)
            )
        return (_check_name(node, path, reference=True),)
    if kind == "channels":
        if isinstance(v, str):
            try:
                expr.parse(v, CHANNEL_NAMES)
            except expr.ExprError as exc:
                raise SpecError(
                    f"found {describe(v)}: {exc}", node.loc, path, f"expected {_expected(f)}"
                ) from None
            return v
        if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= MAX_CHANNELS:
            raise bad()
        return v
    if kind == "resolution":
        items = v if isinstance(v, list) else [node, node]
        if isinstance(v, list) and len(v) != 2:
            raise bad()
        sizes = []
        for item in items:
            iv = item.value
            if isinstance(iv, bool) or not isinstance(iv, int) or not 1 <= iv <= MAX_RESOLUTION:
                raise bad()
            sizes.append(iv)
        return (sizes[0], sizes[1])
    raise AssertionError(f"unknown field kind {kind}")


def _check_name(node: Node, path: str, reference: bool = False) -> str:
    """A row name (strict identifier check); references may also name the network `input`."""
    v = node.value
    if not isinstance(v, str):
        raise SpecError(f"found {describe(v)}; expected a row name", node.loc, path)
    if reference and v == "input":
        return v
    if reference and "." in v:  # `<block>.<part>`: a tensor inside a block (docs/spec_language.md)
        problem = inner_ref_problem(v)
        if problem:
            raise SpecError(f"{v!r} cannot be a reference: {problem}", node.loc, path)
        return v
    problem = identifier_problem(v)
    if problem:
        raise SpecError(f"{v!r} cannot be a name: {problem}", node.loc, path)
    return v


def _mapping(node: Node, path: str) -> dict[str, tuple[Location, Node]]:
    if not isinstance(node.value, dict):
        # A whole file that is not a mapping may not be a spec at all: name its kind, never
        # its first characters.
        found = describe(node.value) if path else _kind(node.value)
        raise SpecError(f"found {found}; expected a mapping", node.loc, path or None)
    return node.value


def _kind(value: Any) -> str:
    if isinstance(value, str):
        return "text"
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, int | float):
        return "a number"
    return describe(value)


_FIELD_LIKE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,39}")


def _fields(
    node: Node, fields: Sequence[Field], path: str, what: str
) -> tuple[dict[str, Any], dict[str, Location]]:
    """Validate a mapping against a field table: unknown keys, missing keys, each value."""
    items = _mapping(node, path)
    index = {f.name: f for f in fields}
    for key, (key_loc, _) in items.items():
        if key not in index:
            near = closest(str(key), index)
            hint = f"did you mean {near!r}?" if near else None
            owners = [k.name for k in LAYER_KINDS.values() if key in k.field_index]
            if owners and path.startswith("layers["):  # an exact field elsewhere: say where
                hint = f"{key!r} is a field of {', '.join(owners)} rows"
            allowed = ", ".join(index)
            if not _FIELD_LIKE.fullmatch(key):  # e.g. a line of a file that is not a spec
                raise SpecError(
                    f"found a key that is not a field name for {what}; expected one of: {allowed}",
                    key_loc,
                    path or None,
                )
            raise SpecError(
                f"unknown field {key!r} for {what}; expected one of: {allowed}",
                key_loc,
                f"{path}.{key}" if path else key,
                hint,
            )
    values: dict[str, Any] = {}
    locs: dict[str, Location] = {}
    for f in fields:
        sub = f"{path}.{f.name}" if path else f.name
        if f.name in items:
            _, value_node = items[f.name]
            locs[f.name] = value_node.loc
            values[f.name] = (
                value_node if f.kind in ("mapping", "list") else check_value(f, value_node, sub)
            )
        elif f.required:
            raise SpecError(f"missing required field {f.name!r} for {what}", node.loc, sub)
        else:
            values[f.name] = f.default
    return values, locs


def _row(index: int, node: Node) -> Row:
    path = f"layers[{index}]"
    items = _mapping(node, path)
    if "op" not in items:
        raise SpecError(
            "missing required field 'op'",
            node.loc,
            f"{path}.op",
            "every row names its operator, e.g. `op: bottleneck`",
        )
    op_loc, op_node = items["op"]
    op = op_node.value
    if not isinstance(op, str) or op not in LAYER_KINDS:
        near = closest(str(op), LAYER_KINDS)
        raise SpecError(
            f"unknown operator {describe(op)}; expected one of: {', '.join(LAYER_KINDS)}",
            op_node.loc,
            f"{path}.op",
            f"did you mean {near!r}?" if near else None,
        )
    kind = LAYER_KINDS[op]
    note = check_value(ROW_NOTE, items["note"][1], f"{path}.note") if "note" in items else None
    rest = Node({k: v for k, v in items.items() if k not in ("op", "note")}, node.loc)
    values, locs = _fields(rest, kind.fields, path, f"a {op} row")
    inputs = values.pop("from") or ()
    name = values.pop("name")
    if not kind.takes_many_inputs and len(inputs) > 1:
        raise SpecError(
            f"found {len(inputs)} inputs; a {op} row takes one (use `add` or `concat` to merge)",
            locs["from"],
            f"{path}.from",
        )
    if kind.takes_many_inputs and len(inputs) < 2:
        raise SpecError(
            f"found {len(inputs)} input(s); expected two or more rows to merge",
            locs.get("from", node.loc),
            f"{path}.from",
        )
    return Row(
        index,
        op,
        name,
        tuple(inputs),
        MappingProxyType(values),
        node.loc,
        MappingProxyType(locs),
        note,
    )


def spec_from_node(root: Node) -> Spec:
    """Validate a located YAML tree into a Spec (after `base:` and `units:` are composed)."""
    root = compose(root, MAX_ROWS)
    header, locs = _fields(root, HEADER_FIELDS, "", "the spec")
    name = header["name"]
    if not SPEC_NAME.match(name):
        raise SpecError(
            f"{name!r} cannot be a network name; expected a letter followed by letters, digits, "
            "`_`, `.` or `-` (at most 63 characters)",
            locs["name"],
            "name",
        )
    problem = module_name_problem(name)
    if problem:
        raise SpecError(f"{name!r} cannot be a network name: {problem}", locs["name"], "name")
    inp, _ = _fields(header["input"], INPUT_FIELDS, "input", "input")
    rounding_node = header["rounding"]
    rounding = (
        _fields(rounding_node, ROUNDING_FIELDS, "rounding", "rounding")[0]
        if rounding_node is not None
        else {"divisor": 8, "min": None}
    )
    layers = header["layers"]
    if not isinstance(layers.value, list):
        raise SpecError(
            f"found {describe(layers.value)}; expected a list of rows", layers.loc, "layers"
        )
    if not layers.value:
        raise SpecError("found an empty list; expected at least one row", layers.loc, "layers")
    if len(layers.value) > MAX_ROWS:
        raise SpecError(
            f"found {len(layers.value)} rows; expected at most {MAX_ROWS}", layers.loc, "layers"
        )
    rows = tuple(_row(i, item) for i, item in enumerate(layers.value))
    return Spec(
        name=name,
        description=header["description"],
        resolution=inp["resolution"],
        in_channels=inp["channels"],
        width_multiplier=float(header["width_multiplier"]),
        num_classes=header["num_classes"],
        divisor=rounding["divisor"],
        min_channels=rounding["min"] or rounding["divisor"],
        last_layer=header["last_layer"],
        bn_eps=float(header["bn_eps"]),
        outputs=header["outputs"],
        rows=rows,
        source=root.loc.file,
        locs=MappingProxyType(locs),
    )


def apply_overrides(root: Node, overrides: Sequence[str]) -> Node:
    """Apply `--set KEY=VALUE` to the header before validation; values are parsed as YAML
    scalars (so `--set resolution=[160,192]` works), keys may be dotted (`rounding.divisor`)."""
    for item in overrides:
        label = item if len(item) <= 60 else item[:57] + "..."
        where = Location(f"--set {label}")
        if "=" not in item:
            raise SpecError("expected KEY=VALUE", where)
        key, _, text = item.partition("=")
        key = OVERRIDE_ALIASES.get(key.strip(), key.strip())
        parts = key.split(".")
        allowed = {f.name: f for f in HEADER_FIELDS if f.name != "layers"}
        if parts[0] not in allowed or len(parts) > 2:
            raise SpecError(
                f"cannot set {key!r}; expected one of: " + ", ".join([*allowed, *OVERRIDE_ALIASES]),
                where,
            )
        value = load_yaml(text if text.strip() else "''", f"--set {label}")
        value = _relocate(value, where)
        root = _with(root, parts, value, where)
    return root


def _relocate(node: Node, where: Location) -> Node:
    if isinstance(node.value, list):
        return Node([_relocate(v, where) for v in node.value], where)
    if isinstance(node.value, dict):
        return Node({k: (where, _relocate(v, where)) for k, (_, v) in node.value.items()}, where)
    return Node(node.value, where)


def _with(root: Node, parts: list[str], value: Node, where: Location) -> Node:
    items = dict(_mapping(root, ""))
    if len(parts) == 1:
        items[parts[0]] = (where, value)
    else:
        inner = items.get(parts[0], (where, Node({}, where)))[1]
        items[parts[0]] = (where, _with(inner, parts[1:], value, where))
    return Node(items, root.loc)


def load_spec(path: str, overrides: Sequence[str] = ()) -> Spec:
    """Read, override and validate a spec file. Raises `SpecError` on bad input."""
    root = read_yaml_file(path)
    return spec_from_node(apply_overrides(root, overrides))


def load_spec_text(text: str, file: str = "<spec>", overrides: Sequence[str] = ()) -> Spec:
    """Like `load_spec`, from text in memory."""
    return spec_from_node(apply_overrides(load_yaml(text, file), overrides))


def spec_to_dict(spec: Spec) -> dict[str, Any]:
    """The spec as plain data in the YAML file's form (every value resolved)."""
    layers = []
    for row in spec.rows:
        entry: dict[str, Any] = {"op": row.kind}
        if row.name:
            entry["name"] = row.name
        if row.inputs:
            entry["from"] = list(row.inputs) if len(row.inputs) > 1 else row.inputs[0]
        entry.update({k: v for k, v in row.fields.items() if v is not None})
        if row.note is not None:
            entry["note"] = row.note
        layers.append(entry)
    out: dict[str, Any] = {
        "name": spec.name,
        "input": {"resolution": list(spec.resolution), "channels": spec.in_channels},
        "width_multiplier": spec.width_multiplier,
        "num_classes": spec.num_classes,
        "rounding": {"divisor": spec.divisor, "min": spec.min_channels},
        "last_layer": spec.last_layer,
        "bn_eps": spec.bn_eps,
    }
    if spec.description:
        out["description"] = spec.description
    if spec.outputs:
        out["outputs"] = list(spec.outputs)
    out["layers"] = layers
    return out
