"""Code generation: the target table and the one Jinja environment.

`emit(graph, target, weights, **options)` returns `{relative path: text or bytes}`; the CLI writes
it atomically. Each target lives in `archspec/targets/<name>.py` (what its templates are given)
and `templates/<name>/` (one fragment per op, `ops/<op>.<ext>.j2`). Templates format; they compute
nothing an op or an analysis owns.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from archspec.files import Files
from archspec.graph import Graph
from archspec.templating import environment, templates_root

__all__ = ["Files", "Target", "emit", "environment", "target_names", "templates_root"]


@dataclass(frozen=True)
class Target:
    """One code-generation target."""

    name: str
    description: str
    render: Callable[..., Files]  # render(graph, weights, env, **options) -> Files


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
