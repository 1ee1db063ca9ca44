"""What `--quantize int8` needs before any target renders: the activation parameters.

They come from a qparams file (`--qparams`, `archspec.quant.qfile`) or from calibration: the
float network's tensor ranges over calibration inputs, either a `.npy` file of (N, C, H, W)
inputs (`--calibration`, read header first and validated like a weights file: shape, dtype,
finite values within float32, size) or `--calibration-count` seeded standard-normal inputs
(default `DEFAULT_CALIBRATION_COUNT`, seed `CALIBRATION_SEED`: `verify` draws its test inputs
from another stream, so the SQNR it reports is measured on inputs calibration never saw).
"""

from __future__ import annotations

import argparse
import ast
import inspect
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import IO

import numpy as np

from archspec.errors import Location, SpecError
from archspec.graph import Graph
from archspec.output import nonnegative_int
from archspec.quant.params import QParams, check_supported

QUANTIZE_CHOICES = ("int8",)
DEFAULT_CALIBRATION_COUNT = 8
CALIBRATION_SEED = 20_190_321  # the MobileNetV2 paper's arXiv v4 date; any fixed value will do
MAX_CALIBRATION_VALUES = 1 << 27  # 512 MiB as float32, like verify's activation budget
MAX_NPY_HEADER = 10_000
CALIBRATION_OPTION = "--calibration"


@dataclass(frozen=True)
class QuantizeOptions:
    """The `--quantize` options of one command (checked for consistency by `check`)."""

    mode: str | None = None
    qparams: str | None = None
    calibration: str | None = None
    calibration_count: int | None = None

    def check(self) -> None:
        """Refuse options that need `--quantize` without it, and contradictory sources."""
        given = [
            (flag, value)
            for flag, value in (
                ("--qparams", self.qparams),
                ("--calibration", self.calibration),
                ("--calibration-count", self.calibration_count),
            )
            if value is not None
        ]
        if self.mode is None:
            for flag, _ in given[:1]:
                raise SpecError("applies to int8 builds only", None, flag, "add --quantize int8")
        if self.qparams is not None and len(given) > 1:
            raise SpecError(
                "the qparams file already fixes every activation parameter; give either it or "
                "calibration inputs",
                None,
                given[1][0],
            )
        if self.calibration is not None and self.calibration_count is not None:
            raise SpecError(
                "counts the seeded calibration inputs; a --calibration file gives its own",
                None,
                "--calibration-count",
            )
        if self.calibration_count is not None and self.calibration_count < 1:
            raise SpecError(
                f"found {self.calibration_count}; expected at least 1 input",
                None,
                "--calibration-count",
            )


def _refuse(message: str, path: str) -> SpecError:
    return SpecError(message, Location(path), CALIBRATION_OPTION)


def _npy_header(handle: IO[bytes], path: str) -> tuple[tuple[int, ...], np.dtype, bool, int]:
    """(shape, dtype, fortran order, data offset) of an open `.npy` file, data unread."""
    magic = handle.read(8)
    if len(magic) < 8 or magic[:6] != b"\x93NUMPY":
        raise _refuse("not a .npy array file; expected inputs saved with numpy.save", path)
    if magic[6] not in (1, 2, 3):
        raise _refuse(f".npy format version {magic[6]}; expected 1 to 3", path)
    size_bytes = 2 if magic[6] == 1 else 4
    raw_len = handle.read(size_bytes)
    header_len = int.from_bytes(raw_len, "little")
    if len(raw_len) != size_bytes or header_len > MAX_NPY_HEADER:
        raise _refuse("unreadable .npy header", path)
    text = handle.read(header_len)
    try:
        fields = ast.literal_eval(text.decode("latin1"))
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        raise _refuse("unreadable .npy header", path) from None
    if not isinstance(fields, dict) or set(fields) != {"descr", "fortran_order", "shape"}:
        raise _refuse("unreadable .npy header", path)
    shape, descr = fields["shape"], fields["descr"]
    if not isinstance(shape, tuple) or not all(
        isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape
    ):
        raise _refuse("unreadable shape in the .npy header", path)
    if not isinstance(descr, str):
        raise _refuse("the array holds records or Python objects; expected float32", path)
    try:
        dtype = np.dtype(descr)
    except (TypeError, ValueError):
        raise _refuse(f"unknown dtype {descr[:20]!r}; expected float32", path) from None
    return shape, dtype, bool(fields["fortran_order"]), 8 + size_bytes + header_len


def read_calibration(path: str, graph: Graph) -> np.ndarray:
    """Calibration inputs from a `.npy` file: shape (N, C, H, W) with (C, H, W) the network's
    input, N >= 1, a float dtype, finite values within float32, at most
    `MAX_CALIBRATION_VALUES` values; the header is judged before any data is read."""
    x = graph.input.shape
    want = f"(N, {x.c}, {x.h}, {x.w})"
    try:
        size = os.stat(path).st_size
        with open(path, "rb") as handle:
            shape, dtype, fortran, offset = _npy_header(handle, path)
            if dtype.kind != "f" or dtype.hasobject:
                raise _refuse(f"inputs of dtype {dtype}; expected float32", path)
            if len(shape) != 4 or tuple(shape[1:]) != (x.c, x.h, x.w) or shape[0] < 1:
                raise _refuse(f"inputs of shape {list(shape)}; expected {want}", path)
            count = math.prod(shape)
            if count > MAX_CALIBRATION_VALUES:
                raise _refuse(
                    f"{count:,} input values; calibration reads at most {MAX_CALIBRATION_VALUES:,}",
                    path,
                )
            if size != offset + count * dtype.itemsize:
                raise _refuse(
                    f"the file holds {max(0, size - offset):,} bytes of data; its header "
                    f"claims {count * dtype.itemsize:,}",
                    path,
                )
            raw = handle.read(count * dtype.itemsize)
    except OSError as exc:
        raise _refuse(f"cannot read calibration inputs: {exc.strerror}", path) from None
    values = np.frombuffer(raw, dtype=dtype).reshape(shape, order="F" if fortran else "C")
    finite = np.isfinite(values)
    if not finite.all():
        at = tuple(int(i) for i in np.unravel_index(int(np.argmax(~finite)), shape))
        raise _refuse(f"the inputs hold NaN or infinite values (first at {at})", path)
    if values.size and np.abs(values).max() > np.finfo(np.float32).max:
        raise _refuse("the inputs hold values beyond float32's range", path)
    return np.ascontiguousarray(values, dtype=np.float32)


def resolve_qparams(
    graph: Graph, weights: Mapping[str, np.ndarray], options: QuantizeOptions
) -> QParams:
    """The network's int8 parameters for `options` (mode set): the activations from the qparams
    file or from calibration, the weights quantized for them."""
    from archspec.quant.calibrate import (
        activation_ranges,
        calibration_inputs,
        choose_activations,
        quantize,
    )
    from archspec.quant.qfile import read_qparams

    options.check()
    check_supported(graph)
    if options.qparams is not None:
        return quantize(graph, weights, read_qparams(options.qparams, graph))
    if options.calibration is not None:
        inputs = read_calibration(options.calibration, graph)
    else:
        count = options.calibration_count or DEFAULT_CALIBRATION_COUNT
        values = count * graph.input.shape.numel
        if values > MAX_CALIBRATION_VALUES:
            raise SpecError(
                f"{count:,} inputs of {graph.input.shape.numel:,} values exceed the "
                f"{MAX_CALIBRATION_VALUES:,} values calibration holds",
                None,
                "--calibration-count",
            )
        inputs = calibration_inputs(graph, count, CALIBRATION_SEED)
    activations = choose_activations(graph, activation_ranges(graph, weights, inputs))
    return quantize(graph, weights, activations)


def add_quantize_arguments(p: argparse.ArgumentParser, command: str) -> None:
    """The `--quantize` options of `build` or `verify`."""
    p.add_argument(
        "--quantize",
        choices=QUANTIZE_CHOICES,
        default=None,
        help="int8 post-training quantization: "
        + (
            "the onnx target writes a QDQ model, the c target int8 kernels, each with "
            "<name>.qparams.json beside it"
            if command == "build"
            else "verify the int8 network (ONNX Runtime layer by layer within 1 step of the "
            "integer ops, C int8 bit-identical to them; SQNR against float32)"
        ),
    )
    p.add_argument(
        "--qparams",
        metavar="FILE.json",
        help="int8: take the activation scales and zero points from this qparams file "
        "instead of calibrating",
    )
    p.add_argument(
        "--calibration",
        metavar="FILE.npy",
        help="int8: calibrate on these (N, C, H, W) float32 inputs",
    )
    p.add_argument(
        "--calibration-count",
        type=nonnegative_int,
        default=None,
        metavar="N",
        help=f"int8: calibrate on N seeded standard-normal inputs (default "
        f"{DEFAULT_CALIBRATION_COUNT})",
    )


def quantize_options(args: argparse.Namespace) -> QuantizeOptions:
    """The parsed `--quantize` options, checked (before any work)."""
    options = QuantizeOptions(args.quantize, args.qparams, args.calibration, args.calibration_count)
    options.check()
    return options


def describe_source(options: QuantizeOptions) -> str:
    """Where the activation parameters come from, for messages."""
    if options.qparams is not None:
        return f"the qparams file {options.qparams}"
    if options.calibration is not None:
        return f"calibration on {options.calibration}"
    count = options.calibration_count or DEFAULT_CALIBRATION_COUNT
    return f"calibration on {count} seeded inputs"


def target_options(
    target: str, graph: Graph, weights: Mapping[str, np.ndarray], options: QuantizeOptions
) -> dict[str, object]:
    """The render options of an int8 build of `target`: `quantize` and the `QParams` (for
    targets whose render takes them: the onnx target, and the c target once it does)."""
    if options.mode is None:
        return {}
    import importlib

    render = importlib.import_module(f"archspec.targets.{target}").render
    accepted = inspect.signature(render).parameters
    if "quantize" not in accepted:
        raise SpecError(f"the {target} target has no int8 build", None, "--quantize")
    if "qparams" not in accepted:
        if options != QuantizeOptions(options.mode):
            raise SpecError(
                f"the {target} target calibrates itself; this option applies to the onnx target",
                None,
                "--qparams" if options.qparams else "--calibration",
            )
        return {"quantize": options.mode}
    return {"quantize": options.mode, "qparams": resolve_qparams(graph, weights, options)}
