"""The JSON Schema of spec files, generated from the same field tables the loader uses.

`specs/archspec.schema.json` is this function's output (a test keeps them equal); editors with the
YAML language server pick it up from the `# yaml-language-server: $schema=...` line of a spec.
"""

from __future__ import annotations

import json
from typing import Any

from archspec import expr
from archspec.compose import MAX_REPEATS
from archspec.ops import LAYER_KINDS
from archspec.ops.base import Field
from archspec.spec import (
    CHANNEL_NAMES,
    HEADER_FIELDS,
    INPUT_FIELDS,
    MAX_CHANNELS,
    MAX_RESOLUTION,
    ROUNDING_FIELDS,
    ROW_NOTE,
)

_NAME = {"type": "string", "pattern": "^[A-Za-z][A-Za-z0-9_]{0,62}$"}
# A reference: a row name, or `<block>.<part>` for a tensor inside a block (archspec.compose).
_REF = {"type": "string", "pattern": "^[A-Za-z][A-Za-z0-9_]{0,62}(\\.[A-Za-z][A-Za-z0-9_]{0,62})?$"}


def _field_schema(f: Field) -> dict[str, Any]:
    out: dict[str, Any]
    if f.kind in ("int", "number"):
        out = {"type": "integer" if f.kind == "int" else "number"}
        if f.minimum is not None:
            out["minimum"] = f.minimum
        if f.maximum is not None:
            out["maximum"] = f.maximum
        if f.default is None and not f.required:
            out = {"oneOf": [out, {"type": "null"}]}
    elif f.kind == "bool":
        out = {"type": "boolean"} if f.default is not None else {"type": ["boolean", "null"]}
    elif f.kind == "choice":
        out = {"enum": list(f.choices)}
    elif f.kind == "name":
        out = dict(_NAME)
    elif f.kind == "ref":
        out = dict(_REF)
    elif f.kind == "names":
        out = {"oneOf": [_NAME, {"type": "array", "items": _NAME, "minItems": 1}]}
    elif f.kind == "refs":
        out = {"oneOf": [_REF, {"type": "array", "items": _REF, "minItems": 1}]}
    elif f.kind == "channels":
        out = {
            "oneOf": [
                {"type": "integer", "minimum": 1, "maximum": MAX_CHANNELS},
                {
                    "type": "string",
                    "maxLength": expr.MAX_CHARS,
                    "pattern": "^[A-Za-z0-9_ ()+*/-]+$",
                    "description": "`num_classes` or an integer expression of "
                    + ", ".join(CHANNEL_NAMES)
                    + " with +, -, *, // (a count: never width-scaled nor rounded).",
                },
            ]
        }
    elif f.kind == "resolution":
        size = {"type": "integer", "minimum": 1, "maximum": MAX_RESOLUTION}
        out = {"oneOf": [size, {"type": "array", "items": size, "minItems": 2, "maxItems": 2}]}
    else:
        out = {"type": "string"}
    out["description"] = f.doc
    if f.default is not None:
        out["default"] = f.default
    return out


def _object(fields: tuple[Field, ...], extra: dict[str, Any] | None = None) -> dict[str, Any]:
    props = {f.name: _field_schema(f) for f in fields}
    if extra:
        props.update(extra)
    required = [f.name for f in fields if f.required]
    out: dict[str, Any] = {"type": "object", "properties": props, "additionalProperties": False}
    if required:
        out["required"] = required
    return out


def _unit_use() -> dict[str, Any]:
    """A row using a unit: its own keys, plus the unit's parameters (any names)."""
    refs = {"oneOf": [_REF, {"type": "array", "items": _REF, "minItems": 1}]}
    return {
        "type": "object",
        "title": "unit",
        "required": ["unit"],
        "not": {"required": ["op"]},
        "properties": {
            "unit": {**_NAME, "description": "The unit to use (a name under `units:`)."},
            "name": {**_NAME, "description": "Name of the use: its result, and its rows' prefix."},
            "from": {**refs, "description": "The unit's inputs, in order."},
            "part": {**_NAME, "description": "The part of every row of the use that names none."},
            "n": {
                "type": "integer",
                "minimum": 1,
                "maximum": MAX_REPEATS,
                "description": "Repeats, chained: each reads the one before.",
            },
        },
    }


def _composition() -> dict[str, Any]:
    """The header keys of `archspec.compose`: `base`, `trim_after`, `units`."""
    body_row = {"type": "object", "anyOf": [{"required": ["op"]}, {"required": ["unit"]}]}
    unit = {
        "type": "object",
        "required": ["layers"],
        "additionalProperties": False,
        "properties": {
            "description": {"type": "string"},
            "params": {
                "type": "object",
                "propertyNames": _NAME,
                "description": "Parameter names and defaults (null: required).",
            },
            "inputs": {"oneOf": [_NAME, {"type": "array", "items": _NAME, "minItems": 1}]},
            "layers": {"type": "array", "minItems": 1, "items": body_row},
            "output": {**_NAME, "description": "The row whose result is the unit's result."},
        },
    }
    return {
        "base": {
            "type": "string",
            "pattern": "\\.ya?ml$",
            "description": "A spec file this one extends (relative to this file's folder).",
        },
        "trim_after": {**_NAME, "description": "Keep the base's rows up to this row."},
        "units": {
            "type": "object",
            "propertyNames": _NAME,
            "additionalProperties": unit,
            "description": "Row groups defined once, used by rows `{unit: NAME, ...}`.",
        },
    }


def spec_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) for archspec spec files."""
    rows = []
    for kind in LAYER_KINDS.values():
        row = _object(
            kind.fields,
            {"op": {"const": kind.name, "description": kind.doc}, "note": _field_schema(ROW_NOTE)},
        )
        row["required"] = ["op", *row.get("required", [])]
        row["title"] = kind.name
        rows.append(row)
    header = _object(HEADER_FIELDS)
    header["properties"]["input"] = _object(INPUT_FIELDS)
    header["properties"]["rounding"] = _object(ROUNDING_FIELDS)
    header["properties"]["layers"] = {
        "type": "array",
        "minItems": 1,
        "items": {"oneOf": [*rows, _unit_use()]},
        "description": "The rows, in the style of the paper's Table 2.",
    }
    header["properties"].update(_composition())
    # With a base, every required header field may come from the base.
    header["anyOf"] = [{"required": ["base"]}, {"required": header.pop("required")}]
    header["properties"]["name"]["pattern"] = "^[A-Za-z][A-Za-z0-9_.\\-]{0,62}$"
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "archspec.schema.json",
        "title": "archspec architecture spec",
        **header,
    }


def schema_text() -> str:
    """The schema as the text of `specs/archspec.schema.json`."""
    return json.dumps(spec_schema(), indent=2, ensure_ascii=False) + "\n"
