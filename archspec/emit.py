"""Code generation: the target table and the one Jinja environment.

`emit(graph, target, weights, **options)` returns `{relative path: text or bytes}`; the CLI writes
it atomically. Each target lives in `archspec/targets/<name>.py` (what its templates are given)
and `templates/<name>/` (one fragment per op, `ops/<op>.<ext>.j2`). Templates format; they compute
nothing an op or an analysis owns.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
import numpy as np

from archspec.graph import Graph

Files = dict[str, str | bytes]


@dataclass(frozen=True)
class Target:
    """One code-generation target."""

    name: str
    description: str
    render: Callable[..., Files]  # render(graph, weights, env, **options) -> Files


def templates_root() -> Path:
    """The `templates/` folder: beside the package in a checkout, `_templates` in a wheel."""
    checkout = Path(__file__).resolve().parent.parent / "templates"
    if checkout.is_dir():
        return checkout
    return Path(str(resources.files("archspec") / "_templates"))


def _py_literal(value: Any) -> str:
    """A Python literal for plain numbers, booleans and (already validated) strings."""
    if isinstance(value, bool) or value is None:
        return repr(value)
    if isinstance(value, int | float | np.integer | np.floating):
        return repr(value.item() if hasattr(value, "item") else value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return (
            "(" + ", ".join(_py_literal(v) for v in value) + ("," if len(value) == 1 else "") + ")"
        )
    raise TypeError(f"no literal for {type(value).__name__}")


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
    env.filters["py"] = _py_literal
    return env


def _targets() -> Mapping[str, Target]:
    # One explicit import line per target; imported lazily so `report` never pays for them.
    registry: dict[str, Target] = {}
    from archspec.targets import c, keras, onnx, pytorch

    registry["pytorch"] = Target("pytorch", "a PyTorch module (NCHW)", pytorch.render)
    registry["keras"] = Target("keras", "a Keras 3 functional model (NHWC)", keras.render)
    registry["onnx"] = Target("onnx", "an ONNX model (opset 18, NCHW)", onnx.render)
    registry["c"] = Target("c", "portable C99, one static arena (fused blocks)", c.render)
    return registry


def target_names() -> list[str]:
    """Names of the available targets."""
    return list(_targets())


def emit(graph: Graph, target: str, weights: Mapping[str, np.ndarray], **options: Any) -> Files:
    """Render `graph` with `weights` for `target`: `{relative path: content}`."""
    targets = _targets()
    if target not in targets:
        raise KeyError(f"unknown target {target!r}; expected one of {sorted(targets)}")
    return targets[target].render(graph, weights, environment(), **options)
