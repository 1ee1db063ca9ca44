"""The activations: one table, with the numpy reference and each target's rendering of each.

An op's `act` field takes one of these names. Every target renders every activation; the table
is checked when this module is imported (a missing rendering is an error naming the activation
and the target), and the test suite builds every op under every activation for every target.

Renderings are plain values the targets' templates format:

* ``pytorch``: the module expression (a submodule after a conv) and the function expression
  (applied to a sum), None for the identity;
* ``keras``: the layer class and its keyword arguments (None for the identity);
* ``onnx``: the operator and any constant inputs after `x` (None for the identity);
* ``c``: the clamp bounds (lo, hi) the kernels apply as they store a value, and ``post``, a C
  expression of ``v`` applied after the clamp where the activation is not a clamp.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np

TARGETS = ("pytorch", "keras", "onnx", "c")


@dataclass(frozen=True)
class Activation:
    """One activation: its numpy reference and each target's rendering."""

    name: str
    doc: str
    reference: Callable[[np.ndarray], np.ndarray]
    render: Mapping[str, Mapping[str, Any]]

    @property
    def is_clamp(self) -> bool:
        """True when the activation is min(max(x, lo), hi) (C kernels fuse it into the store)."""
        return self.render["c"]["post"] is None


def _hardswish(x: np.ndarray) -> np.ndarray:
    return x * np.clip(x + 3.0, 0.0, 6.0) / 6.0


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # exact sigmoid without overflow for large |x|


_TABLE = (
    Activation(
        "relu",
        "max(x, 0).",
        lambda x: np.maximum(x, 0),
        {
            "pytorch": {"module": "nn.ReLU(inplace=True)", "function": "torch.relu"},
            "keras": {"layer": "ReLU", "options": {}},
            "onnx": {"op": "Relu", "constants": ()},
            "c": {"lo": "0.0f", "hi": "FLT_MAX", "post": None},
        },
    ),
    Activation(
        "relu6",
        "min(max(x, 0), 6): the paper's non-linearity.",
        lambda x: np.clip(x, 0, 6),
        {
            "pytorch": {
                "module": "nn.ReLU6(inplace=True)",
                "function": "torch.nn.functional.relu6",
            },
            "keras": {"layer": "ReLU", "options": {"max_value": 6.0}},
            "onnx": {"op": "Clip", "constants": ("const/zero", "const/six")},
            "c": {"lo": "0.0f", "hi": "6.0f", "post": None},
        },
    ),
    Activation(
        "linear",
        "Identity (no activation): the paper's linear bottleneck.",
        lambda x: x,
        {
            "pytorch": {"module": None, "function": None},
            "keras": {"layer": None, "options": {}},
            "onnx": {"op": None, "constants": ()},
            "c": {"lo": "-FLT_MAX", "hi": "FLT_MAX", "post": None},
        },
    ),
    Activation(
        "hardswish",
        "x · relu6(x + 3) / 6 (MobileNetV3).",
        _hardswish,
        {
            "pytorch": {
                "module": "nn.Hardswish()",
                "function": "torch.nn.functional.hardswish",
            },
            "keras": {"layer": "Activation", "options": {"activation": "hard_swish"}},
            "onnx": {"op": "HardSwish", "constants": ()},
            "c": {
                "lo": "-FLT_MAX",
                "hi": "FLT_MAX",
                "post": "v * fminf(fmaxf(v + 3.0f, 0.0f), 6.0f) * (1.0f / 6.0f)",
            },
        },
    ),
    Activation(
        "sigmoid",
        "1 / (1 + exp(−x)).",
        _sigmoid,
        {
            "pytorch": {"module": "nn.Sigmoid()", "function": "torch.sigmoid"},
            "keras": {"layer": "Activation", "options": {"activation": "sigmoid"}},
            "onnx": {"op": "Sigmoid", "constants": ()},
            "c": {"lo": "-FLT_MAX", "hi": "FLT_MAX", "post": "1.0f / (1.0f + expf(-v))"},
        },
    ),
)

ACTIVATION_TABLE: Mapping[str, Activation] = MappingProxyType({a.name: a for a in _TABLE})
ACTIVATIONS: tuple[str, ...] = tuple(ACTIVATION_TABLE)


def _check_table() -> None:
    for act in _TABLE:
        for target in TARGETS:
            if target not in act.render:
                raise RuntimeError(f"activation {act.name!r} has no rendering for target {target}")


_check_table()


def activate(x: np.ndarray, act: str) -> np.ndarray:
    """The numpy reference of the activation `act`."""
    return ACTIVATION_TABLE[act].reference(x)


def rendering(act: str, target: str) -> Mapping[str, Any]:
    """How `target` renders the activation `act`."""
    return ACTIVATION_TABLE[act].render[target]
