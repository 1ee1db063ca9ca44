"""The C target's files: the memory plan walked into a program, rendered by the templates."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jinja2
import numpy as np

from archspec import __version__
from archspec.analysis.memory import MemoryPlan, plan_memory
from archspec.errors import Location, SpecError
from archspec.graph import Graph
from archspec.names import spec_identifier
from archspec.options import Split, check_row_tile, check_split
from archspec.targets import fragment
from archspec.targets.c.kernels import helper_texts
from archspec.targets.c.program import FLOAT_BYTES, Program
from archspec.targets.c.weights import array_lines, weight_arrays


def number_lines(values: list[int], per_line: int = 10) -> list[str]:
    """`values` as C initializer lines of `per_line` numbers, each ending with a comma."""
    items = [str(v) for v in values]
    return [", ".join(items[i : i + per_line]) + "," for i in range(0, len(items), per_line)]


def _plan_desc(plan: MemoryPlan, split: Split) -> str:
    rows = "" if plan.row_tile is None else f", row tile {plan.row_tile}"
    return (
        f"fused bottleneck blocks (first-layer trick), split {split}{rows}, float32 "
        f"activations, {len(plan.order)} steps"
    )


# Static data the generated program may hold (arena, weights, run.c's input and output
# buffers): what x86-64's default small code model links (2 GiB), less room for the code. The
# kernels index within one tensor with int, which lowering's per-tensor limit keeps in range.
MAX_STATIC_BYTES = 2**31 - 2**24


def check_static_size(graph: Graph, plan: MemoryPlan) -> None:
    """Refuse, before any rendering, a network whose static data the C program cannot link."""
    x = graph.input.shape
    outputs = sum(graph.node(o).shape.numel for o in graph.outputs)
    weights = plan.weights_params * FLOAT_BYTES
    io = (x.numel + outputs) * FLOAT_BYTES
    total = plan.placement.arena_bytes + weights + io
    if total > MAX_STATIC_BYTES:
        raise SpecError(
            f"the c target's static data would be {total:,} bytes (arena "
            f"{plan.placement.arena_bytes:,}, weights {weights:,}, input and output {io:,}); "
            f"the default code model links at most {MAX_STATIC_BYTES:,}",
            Location(graph.spec.rows[0].loc.file),
            None,
            "lower the resolution or the width multiplier",
        )


def _fragment_path(kind: str) -> str:
    # graph ops' fragments and the kernel kinds fusable blocks declare share one folder
    return fragment("c", kind)


def network_context(
    plan: MemoryPlan,
    program: Mapping[str, Any],
    split: Split,
    row_tile: int | None,
    *,
    int8: bool,
    arena_unit: int,
) -> dict[str, Any]:
    """The network.c context both the float and the int8 builds share: the plan's summary, the
    buffers' offsets and sizes, the steps, and the spellings the element type decides (the
    arena's unit `arena_unit` in bytes, the size array, the kernel macro, the weight batch)."""
    buffers = program["buffers"]
    return {
        "split_option": ("" if split == 1 else f" --split {split}")
        + ("" if row_tile is None else f" --row-tile {row_tile}"),
        "optimal": plan.optimal,
        "lower_bound_bytes": plan.lower_bound_bytes,
        "arena_units": max(1, -(-plan.placement.arena_bytes // arena_unit)),
        "buffers": buffers,
        "max_enum": max(len(b["enum"]) for b in buffers),
        "buffer_offset_lines": number_lines([b["offset"] for b in buffers]),
        # the program's sizes are in the plan's element units: bytes at int8
        "buffer_size_lines": number_lines([b["floats"] for b in buffers]),
        "size_array": "buffer_bytes" if int8 else "buffer_floats",
        "size_scale": "" if int8 else " * sizeof(float)",
        "kernel_macro": "kernel_int8" if int8 else "kernel",
        # weight, bias (float) or weight, bias, multiplier, shift (int8) per call line
        "weight_batch": 4 if int8 else 2,
        "steps": program["steps"],
        "graph_inputs": program["graph_inputs"],
        "final_give": program["final_give"],
        "uses_math": any(s["post"] for s in program["steps"]),
    }


def c_files(
    env: jinja2.Environment,
    common: Mapping[str, Any],
    network: Mapping[str, Any],
    weights: list[dict[str, Any]],
    *,
    int8: bool,
) -> dict[str, str | bytes]:
    """The five files of a C build from the context every file shares (`common`), network.c's
    own (`network`) and the weight arrays; `int8` picks the element type's spellings."""
    ident = common["ident"]
    ctx = {
        **common,
        "int8": int8,
        "elem": "int8_t" if int8 else "float",
        "elem_size": "1" if int8 else "sizeof(float)",
        "ext": "i8" if int8 else "f32",
    }
    return {
        f"{ident}.h": env.get_template("c/network.h.j2").render(**ctx, weights=weights),
        f"{ident}.c": env.get_template("c/network.c.j2").render(
            **ctx, **network, has_weights=bool(weights)
        ),
        f"{ident}_weights.c": env.get_template("c/weights.c.j2").render(**ctx, weights=weights),
        "run.c": env.get_template("c/run.c.j2").render(**ctx),
        "Makefile": env.get_template("c/Makefile.j2").render(**ctx),
    }


def render_files(
    graph: Graph,
    weights: Mapping[str, np.ndarray],
    env: jinja2.Environment,
    split: Split,
    row_tile: int | None,
) -> dict[str, str | bytes]:
    """The five files of the C build of `graph` (see the package docstring)."""
    split = check_split(split)
    row_tile = check_row_tile(row_tile)
    plan = plan_memory(graph, mode="fused", split=split, dtype="float32", row_tile=row_tile)
    if plan.dtype_bytes != FLOAT_BYTES:
        raise RuntimeError("the c target needs a float32 memory plan")
    check_static_size(graph, plan)
    ident = spec_identifier(graph.name)
    builder = Program(graph, plan, split)
    program = builder.build()
    arrays = weight_arrays(graph, weights)

    max_taps = max((n.attrs["k"] ** 2 for n in graph.ops() if n.op == "conv2d"), default=1)
    helpers, helper_text = helper_texts(env, builder.kernels, max_taps)
    fragments = {kind: env.get_template(_fragment_path(kind)).module for kind in program["kinds"]}
    kernels = [k.context(fragments[k.kind].describe) for k in builder.kernels]

    x = graph.input.shape
    outs = program["outputs"]
    out_desc = ", then ".join(
        f"{o['node']} ({o['C']})"
        if o["pixels"] == 1
        else f"{o['node']} {o['C']}x{graph.node(o['node']).shape.h}x{graph.node(o['node']).shape.w}"
        for o in outs
    )
    common = {
        "ident": ident,
        "IDENT": ident.upper(),
        "version": __version__,
        "spec_name": graph.name,
        "input_desc": f"{x.c}x{x.h}x{x.w}",
        "output_desc": out_desc
        + " float32"
        + (" (NCHW)" if any(o["pixels"] > 1 for o in outs) else ""),
        "input_size": x.numel,
        "output_size": program["output_size"],
        "arena_bytes": plan.placement.arena_bytes,
        "peak_bytes": plan.peak_bytes,
        "plan_desc": _plan_desc(plan, split),
        "outputs": outs,
    }
    weights_ctx = [
        {
            "field": a.field,
            "symbol": a.symbol,
            "comment": a.comment,
            "ctype": "float",
            "size": a.values.size,
            "lines": array_lines(a.values),
        }
        for a in arrays
    ]
    network = {
        **network_context(plan, program, split, row_tile, int8=False, arena_unit=FLOAT_BYTES),
        "helper_texts": [helper_text[name] for name in helpers],
        "kernels": kernels,
        "fragments": fragments,
    }
    return c_files(env, common, network, weights_ctx, int8=False)
