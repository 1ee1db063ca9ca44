"""The one Jinja environment of the code-generation targets, and where templates live."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
import numpy as np


def templates_root() -> Path:
    """The `templates/` folder: beside the package in a checkout, `_templates` in a wheel."""
    checkout = Path(__file__).resolve().parent.parent / "templates"
    if checkout.is_dir():
        return checkout
    return Path(str(resources.files("archspec") / "_templates"))


def py_literal(value: Any) -> str:
    """A Python literal for plain numbers, booleans and (already validated) strings."""
    if isinstance(value, bool) or value is None:
        return repr(value)
    if isinstance(value, int | float | np.integer | np.floating):
        return repr(value.item() if hasattr(value, "item") else value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return (
            "(" + ", ".join(py_literal(v) for v in value) + ("," if len(value) == 1 else "") + ")"
        )
    raise TypeError(f"no literal for {type(value).__name__}")


def c_float(value: float) -> str:
    """A C float literal that reads back as exactly this float32 value."""
    text = f"{float(value):.9g}"
    if "." not in text and "e" not in text:
        text += ".0"
    return text + "f"


@cache
def environment() -> jinja2.Environment:
    """The single Jinja environment: strict undefined, no autoescape (code, not HTML)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_root())),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["py"] = py_literal
    env.filters["cfloat"] = c_float
    return env
