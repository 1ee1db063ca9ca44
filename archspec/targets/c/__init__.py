"""The C target: portable C99 that runs the whole spec in one static arena.

`render(graph, weights, env, split=..., row_tile=...)` asks the memory planner for the fused plan
(every fusable block one op, a stem conv fused with a block where the first-layer trick applies,
the split channels in groups; with `row_tile=R`, every fused block computed in bands of R output
rows with the planner's row-tiled workspace) and returns five files:

* `<ident>.h`: the API (`<ident>_run`, the arena size, the predicted peak, the measured
  high-water mark) and the weights table type;
* `<ident>.c`: the arena at the planner's offsets, one kernel per distinct configuration, the
  steps in the planner's order, instrumented to measure the live bytes;
* `<ident>_weights.c`: the BatchNorm-folded weights as `static const float` arrays;
* `run.c` and a `Makefile`.

Activations are HWC inside the arena (see `templates/c/network.c.j2` and docs/c_target.md);
the input and output use the ONNX model's NCHW float32 layout, a classifier output is its
`classes` values and several graph outputs follow each other in `graph.outputs` order.

The package's parts: `weights` (BatchNorm folding, weight layouts), `kernels` (kernel
configurations and shared helpers), `program` (the plan walker), `render` (the files). What a
kernel computes for one op comes from the op's module (`GraphOp.targets["c"]`) and, for a fused
block, from its kind's declaration (`BlockKind.c_kernel`); the templates only format it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jinja2
import numpy as np

from archspec.boards import Board
from archspec.graph import Graph
from archspec.options import Split
from archspec.quant.params import QParams
from archspec.targets.c.board import render_for_board
from archspec.targets.c.int8 import render_int8
from archspec.targets.c.render import render_files

__all__ = ["render"]


def render(
    graph: Graph,
    weights: Mapping[str, np.ndarray],
    env: jinja2.Environment,
    *,
    split: Split = 1,
    row_tile: int | None = None,
    board: Board | None = None,
    quantize: str | None = None,
    qparams: QParams | None = None,
    **options: Any,
) -> dict[str, str | bytes]:
    """Render the C sources of `graph` with `weights` for a `split`-way split (int or "n") and
    an optional row tile (checked values: the CLI parses them with `archspec.options`). With a
    `board` (archspec.boards), refuse a network that does not fit it and add the cross build's
    files (archspec.targets.c.board). `quantize="int8"`: the int8 build
    (archspec.targets.c.int8) with `qparams` (default: calibrated on the default seeded
    inputs), and the qparams file `<ident>.qparams.json` beside it."""
    from archspec.errors import SpecError

    for key in options:
        raise SpecError(f"option --{key} does not apply to the c target", None, f"--{key}")

    if quantize not in (None, "int8"):
        raise SpecError(f"the c target has no {quantize} build; expected int8", None, "--quantize")
    if qparams is not None and quantize is None:
        raise SpecError("applies to int8 builds only", None, "--qparams", "add --quantize int8")
    if quantize == "int8" and qparams is None:
        qparams = default_qparams(graph, weights)

    # The host build's renderer and its element type; a board build wraps whichever it is.
    def host(host_env: jinja2.Environment) -> dict[str, str | bytes]:
        if qparams is not None:
            from archspec.names import spec_identifier
            from archspec.quant.qfile import qparams_filename, write_qparams

            files = render_int8(
                graph, weights, host_env, split=split, row_tile=row_tile, qparams=qparams
            )
            # the activation parameters beside the build, as the onnx target writes them
            files[qparams_filename(spec_identifier(graph.name))] = write_qparams(graph, qparams)
            return files
        return render_files(graph, weights, host_env, split, row_tile)

    dtype = "float32" if quantize is None else "int8"
    if board is not None:
        return render_for_board(
            graph, board, env, host, split=split, row_tile=row_tile, dtype=dtype
        )
    return host(env)


def default_qparams(graph: Graph, weights: Mapping[str, np.ndarray]) -> QParams:
    """The int8 parameters of `graph` calibrated on the default seeded inputs (as
    `archspec build --quantize int8` without --qparams or --calibration)."""
    from archspec.quant.calibrate import calibrate, calibration_inputs
    from archspec.quantize import CALIBRATION_SEED, DEFAULT_CALIBRATION_COUNT

    inputs = calibration_inputs(graph, DEFAULT_CALIBRATION_COUNT, CALIBRATION_SEED)
    return calibrate(graph, weights, inputs)
