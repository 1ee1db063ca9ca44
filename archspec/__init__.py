"""archspec: architecture specs in, exact costs and runnable models out.

The pipeline runs one way: `load_spec` → `lower` → `analyze` → `emit`.
"""

from __future__ import annotations

from archspec.analysis.cost import CostReport, analyze_cost
from archspec.errors import SpecError
from archspec.graph import Graph
from archspec.lower import lower, make_divisible
from archspec.spec import Spec, load_spec, load_spec_text

__all__ = [
    "CostReport",
    "Graph",
    "Spec",
    "SpecError",
    "analyze_cost",
    "load_spec",
    "load_spec_text",
    "lower",
    "make_divisible",
]
__version__ = "0.1.0"
