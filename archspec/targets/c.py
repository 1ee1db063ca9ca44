"""The C target: portable C99 that runs the whole spec in one static arena.

`render(graph, weights, env, split=...)` asks the memory planner for the fused plan (every
inverted-residual block one op, the stem conv fused with the first t = 1 block, the expansion
channels split into groups; with `row_tile=R`, every fused block computed in bands of R output
rows with the planner's row-tiled workspace) and returns five files:

* `<ident>.h`: the API (`<ident>_run`, the arena size, the predicted peak, the measured
  high-water mark) and the weights table type;
* `<ident>.c`: the arena at the planner's offsets, one kernel per distinct configuration, the
  steps in the planner's order, instrumented to measure the live bytes;
* `<ident>_weights.c`: the BatchNorm-folded weights as `static const float` arrays;
* `run.c` and a `Makefile`.

Activations are HWC inside the arena (see `templates/c/network.c.j2` and docs/c_target.md);
the input and output use the ONNX model's NCHW float32 layout, a classifier output is its
`classes` values and several graph outputs follow each other in `graph.outputs` order. This
module computes everything (folded weights, layouts, shapes, offsets, the allocation events);
the templates in `templates/c/` only format it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jinja2
import numpy as np

from archspec import __version__
from archspec.errors import Location, SpecError
from archspec.graph import GNode, Graph, weight_key
from archspec.names import spec_identifier
from archspec.ops.base import Shape
from archspec.ops.upsample import source_index

# Register tiles of the pointwise and direct kernels as (columns, rows), widest first, per
# instruction set (a preprocessor condition; None: anything else). Columns are output channels
# (the vector loop), rows are pixels sharing each weight load: enough independent sums to hide
# the FMA latency without running out of vector registers (16 with SSE2/AVX2). Measured with
# benchmarks/bench_c.py on AVX-512, AVX2 and SSE2 builds.
TILE_SETS: tuple[tuple[str | None, tuple[tuple[int, int], ...]], ...] = (
    ("defined(__AVX2__) || defined(__AVX512F__)", ((16, 6), (8, 8), (4, 8), (2, 8), (1, 8))),
    (None, ((8, 4), (4, 8), (2, 8), (1, 8))),
)  # each set ends with a one-column tile, so that every channel count is covered
ACT_BOUNDS = {
    "relu6": ("0.0f", "6.0f"),
    "relu": ("0.0f", "FLT_MAX"),
    "linear": ("-FLT_MAX", "FLT_MAX"),
}
FLOAT_BYTES = 4
MAX_FLOATS = 2**31 - 1  # the kernels index with int
OP_KERNELS = ("conv2d", "avgpool", "fc", "add", "concat", "upsample")
# Shared helper functions each kernel calls (an unused static function fails -Werror), keyed by
# kernel kind, and by kind/variant for conv2d.
HELPER_NEEDS = {
    "conv2d/pointwise": ("clamp", "pointwise"),
    "conv2d/depthwise": ("clamp", "taps", "depthwise"),
    "conv2d/direct": ("clamp", "taps", "direct"),
    "bottleneck": ("clamp", "taps", "pointwise", "depthwise"),
    "stem_block": ("clamp", "taps", "pointwise", "depthwise", "direct"),
    "bottleneck_rows": ("clamp", "taps", "pointwise", "depthwise_rows"),
    "stem_block_rows": ("clamp", "taps", "pointwise", "depthwise_rows", "direct_rows"),
    "fc": ("clamp", "pointwise"),
    "add": ("clamp",),
}
HELPER_ORDER = ("clamp", "taps", "pointwise", "depthwise", "direct")
# The row-tiled kernels' helpers live in the files of their untiled twins (they share code).
ROW_HELPERS = {"depthwise_rows": "depthwise", "direct_rows": "direct"}


def c_float(value: float) -> str:
    """A C float literal that reads back as exactly this float32 value."""
    text = f"{float(value):.9g}"
    if "." not in text and "e" not in text:
        text += ".0"
    return text + "f"


def parse_split(split: Any) -> int | str:
    """The `--split` option: a positive number of groups, or "n" (one channel per group)."""
    if isinstance(split, str):
        text = split.strip().lower()
        if text == "n":
            return "n"
        if text.isdigit():
            split = int(text)
    if isinstance(split, int) and not isinstance(split, bool) and 1 <= split <= 1 << 20:
        return split
    raise SpecError(
        f"found split {split!r}; expected a positive number of channel groups or n",
        None,
        "--split",
        "--split 4 splits every block's expansion channels into 4 groups; --split n keeps one",
    )


def parse_row_tile(row_tile: Any) -> int | None:
    """The `--row-tile` option: None (untiled) or a positive number of output rows per band."""
    if row_tile is None:
        return None
    if isinstance(row_tile, str) and row_tile.strip().isdigit():
        row_tile = int(row_tile.strip())
    if isinstance(row_tile, int) and not isinstance(row_tile, bool) and 1 <= row_tile <= 1 << 20:
        return row_tile
    raise SpecError(
        f"found row tile {row_tile!r}; expected a positive number of output rows",
        None,
        "--row-tile",
        "--row-tile 1 computes each fused block one output row at a time",
    )


# ------------------------------------------------------------------------------------------
# Weights: BatchNorm folded, laid out for the HWC kernels.


@dataclass(frozen=True)
class CArray:
    """One `static const float` array of the weights file."""

    field: str  # member of the weights struct
    symbol: str  # the static array
    comment: str
    values: np.ndarray  # float32, flat


def is_depthwise(node: GNode, c_in: int) -> bool:
    """A conv whose every output channel reads its own input channel (groups == C_in == C_out)."""
    return node.attrs["groups"] == c_in == node.shape.c


def fold_conv(node: GNode, w: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Conv weight (OIHW) and bias with inference BatchNorm folded in, computed in float64."""
    weight = w["weight"].astype(np.float64)
    bias = w["bias"].astype(np.float64) if node.attrs["bias"] else np.zeros(node.shape.c)
    if node.attrs["bn"]:
        scale = w["bn_gamma"].astype(np.float64) / np.sqrt(
            w["bn_var"].astype(np.float64) + node.attrs["bn_eps"]
        )
        weight = weight * scale[:, None, None, None]
        bias = (bias - w["bn_mean"]) * scale + w["bn_beta"]
    return weight, bias


def conv_layout(node: GNode, c_in: int, weight: np.ndarray) -> tuple[np.ndarray, str]:
    """The folded OIHW weight in the kernels' layout: depthwise [k][k][C]; every other conv
    [groups][k][k][C_in/groups][C_out/groups] (a 1x1 conv: [C_in][C_out])."""
    k, groups = node.attrs["k"], node.attrs["groups"]
    if is_depthwise(node, c_in):
        return weight[:, 0].transpose(1, 2, 0), f"[{k}][{k}][{node.shape.c}]"
    c_out = node.shape.c
    cin_g, cout_g = c_in // groups, c_out // groups
    arr = weight.reshape(groups, cout_g, cin_g, k, k).transpose(0, 3, 4, 2, 1)
    if groups == 1 and k == 1:
        return arr, f"[{c_in}][{c_out}]"
    return arr, f"[{groups}][{k}][{k}][{cin_g}][{cout_g}]"


def node_arrays(graph: Graph, node: GNode, weights: Mapping[str, np.ndarray]) -> list[CArray]:
    """The weight and bias arrays of one conv2d or fc node."""
    own = {w.name: weights[weight_key(node.name, w.name)] for w in graph.weights(node)}
    c_in = graph.input_shapes(node)[0].c
    if node.op == "fc":
        arr = own["weight"].astype(np.float64).T
        bias = own["bias"].astype(np.float64) if node.attrs["bias"] else np.zeros(node.shape.c)
        layout, what = f"[{c_in}][{node.shape.c}]", "fc weight (transposed)"
    else:
        folded, bias = fold_conv(node, own)
        arr, layout = conv_layout(node, c_in, folded)
        what = "conv weight, BatchNorm folded" if node.attrs["bn"] else "conv weight"
    out = []
    for suffix, values, desc in (("w", arr, f"{what}, {layout}"), ("b", bias, "bias")):
        flat = np.ascontiguousarray(values, dtype=np.float32).ravel()
        if not np.all(np.isfinite(flat)):
            raise SpecError(
                f"folding BatchNorm into {node.name} gives non-finite values",
                node.loc,
                "weights",
                "check bn_var (it must be > -bn_eps) and the magnitudes of the weights",
            )
        out.append(
            CArray(f"{node.name}_{suffix}", f"{suffix}_{node.name}", f"{node.name}: {desc}", flat)
        )
    return out


def weight_arrays(graph: Graph, weights: Mapping[str, np.ndarray]) -> list[CArray]:
    """Every weights-file array, in graph order. Independent of the split and of fusion."""
    arrays: list[CArray] = []
    for node in graph.ops():
        if node.op in ("conv2d", "fc"):
            arrays.extend(node_arrays(graph, node, weights))
    return arrays


def array_lines(values: np.ndarray, per_line: int = 8) -> list[str]:
    """The initialiser lines of one array."""
    items = [c_float(v) for v in values.astype(np.float64).tolist()]
    return [", ".join(items[i : i + per_line]) + "," for i in range(0, len(items), per_line)]


# ------------------------------------------------------------------------------------------
# Kernels and steps.


@dataclass
class Kernel:
    """One generated kernel function (shared by every step with the same configuration)."""

    kind: str
    fn: str
    params: dict[str, Any]
    users: list[str] = field(default_factory=list)
    describe: Callable[[Kernel], list[str]] | None = None

    def helpers(self) -> tuple[str, ...]:
        """The shared helper functions this kernel calls."""
        key = f"conv2d/{self.params['variant']}" if self.kind == "conv2d" else self.kind
        return HELPER_NEEDS.get(key, ())

    def context(self) -> dict[str, Any]:
        """What the fragment's `kernel(k)` macro reads."""
        lines = self.describe(self) if self.describe else []
        comment = "/* " + "\n * ".join(lines) + " */"
        return {**self.params, "kind": self.kind, "fn": self.fn, "comment": comment}


def _bounds(act: str) -> tuple[str, str]:
    return ACT_BOUNDS[act]


def _users(k: Kernel) -> str:
    others = k.users[1:]
    if not others:
        return k.users[0]
    return f"{k.users[0]} (also {', '.join(others)})"


def _shape(h: int, w: int, c: int) -> str:
    return f"{h}x{w}x{c}"


def _conv_lines(k: Kernel) -> list[str]:
    p = k.params
    what = {
        "pointwise": "pointwise conv",
        "depthwise": f"{p['ksize']}x{p['ksize']} depthwise conv",
        "direct": f"{p['ksize']}x{p['ksize']} conv"
        + (f", {p['groups']} groups" if p["groups"] > 1 else ""),
    }[p["variant"]]
    extra = f", stride {p['s']}" if p["s"] > 1 else ""
    extra += f", dilation {p['d']}" if p["d"] > 1 else ""
    return [
        f"{_users(k)}: {what}{extra}, {_shape(p['H'], p['W'], p['Cin'])} -> "
        f"{_shape(p['Ho'], p['Wo'], p['Cout'])}, {p['act']}."
    ]


def _split_lines(p: Mapping[str, Any], inner: str) -> list[str]:
    groups = math.ceil(p["hidden"] / p["gs"])
    last = p["hidden"] - (groups - 1) * p["gs"]
    tail = f" (the last of {last})" if last != p["gs"] else ""
    label = "n" if p["split"] == "n" else p["split"]
    lines = [
        f"Split {label}: {groups} group{'s' if groups > 1 else ''} of {p['gs']} "
        f"channel{'s' if p['gs'] > 1 else ''}{tail}; "
        f"workspace {inner} floats = {p['ws_elems'] * FLOAT_BYTES} bytes."
    ]
    if "rt" in p:
        lines.insert(
            0,
            f"Row tile {p['row_tile']}: bands of {p['rt']} output row{'s' if p['rt'] > 1 else ''}"
            + (
                f", reading {p['band']} rows of the expansion (kept rows slide down)"
                if p["band"]
                else ""
            )
            + ".",
        )
    return lines


def _block_lines(k: Kernel) -> list[str]:
    p = k.params
    dw = f"{p['ksize']}x{p['ksize']} depthwise stride {p['s']}"
    dw += f" dilation {p['d']}" if p["d"] > 1 else ""
    rows = p.get("rt", p["Ho"])
    if p["t1"]:
        head = f"t = 1 (depthwise on the {p['hidden']} input channels)"
        inner = _shape(rows, p["Wo"], p["gs"])
    else:
        head = f"expansion t = {p['t']} to {p['hidden']} channels ({p['exp_act']})"
        inner = (
            f"{_shape(p.get('band', p['Hin']), p['Win'], p['gs'])} + "
            f"{_shape(rows, p['Wo'], p['gs'])}"
        )
    return [
        f"{_users(k)}: bottleneck {_shape(p['Hin'], p['Win'], p['Cin'])} -> "
        f"{_shape(p['Ho'], p['Wo'], p['Cout'])}, {head},",
        f"{dw} ({p['dw_act']}), linear projection, "
        + ("residual added." if p["residual"] else "no residual."),
        *_split_lines(p, inner),
    ]


def _stem_lines(k: Kernel) -> list[str]:
    p = k.params
    return [
        f"{_users(k)}: stem conv {p['stem_k']}x{p['stem_k']} stride {p['stem_s']} "
        f"{_shape(p['Hin'], p['Win'], p['Cin'])} -> {_shape(p['Hs'], p['Ws'], p['hidden'])} "
        f"({p['exp_act']}) fused with the t = 1 block",
        f"{p['ksize']}x{p['ksize']} depthwise stride {p['s']} ({p['dw_act']}) -> linear "
        f"projection to {_shape(p['Ho'], p['Wo'], p['Cout'])}"
        + (", residual added." if p["residual"] else "."),
        *_split_lines(
            p,
            f"{_shape(p.get('band', p['Hs']), p['Ws'], p['gs'])} + "
            f"{_shape(p.get('rt', p['Ho']), p['Wo'], p['gs'])}",
        ),
    ]


def _simple_lines(k: Kernel) -> list[str]:
    p = k.params
    return [f"{_users(k)}: {p['what']}."]


class _Builder:
    """Walks the memory plan and collects kernels, steps, buffers and allocation events."""

    def __init__(self, graph: Graph, plan: Any, split: int | str, ident: str) -> None:
        self.graph = graph
        self.plan = plan
        self.split = split
        self.ident = ident
        self.kernels: dict[tuple[Any, ...], Kernel] = {}
        self.fused = {fo.name: fo for fo in plan.fused_ops}
        problem = plan.problem
        # Which Problem tensor holds each graph node's tensor (inner nodes of fused ops: none).
        self.tensor_of: dict[str, str] = {name: name for name in problem.graph_inputs}
        for fo in plan.fused_ops:
            self.tensor_of[fo.output_node] = fo.name
        self.node_of = {t: n for n, t in self.tensor_of.items()}

    # -- names -------------------------------------------------------------------------------

    @staticmethod
    def buffer_enum(tensor: str) -> str:
        return f"T_{tensor}"

    @staticmethod
    def ws_enum(op: str) -> str:
        return f"WS_{op}"

    def tensor_arg(self, node_name: str) -> str:
        tensor = self.tensor_of.get(node_name)
        if tensor is None:  # the plan fused away a tensor that another op reads: a planner bug
            raise RuntimeError(f"tensor {node_name!r} is not materialised by the memory plan")
        return f"A({self.buffer_enum(tensor)})"

    def weight_args(self, *nodes: str) -> list[str]:
        return [f"w->{n}_{s}" for n in nodes for s in ("w", "b")]

    # -- kernels -------------------------------------------------------------------------------

    def kernel(
        self, kind: str, user: str, params: dict[str, Any], describe: Callable[[Kernel], list[str]]
    ) -> Kernel:
        key = (kind, tuple(sorted((k, repr(v)) for k, v in params.items() if k != "what")))
        found = self.kernels.get(key)
        if found is None:
            found = Kernel(kind, f"k_{user}", params, describe=describe)
            self.kernels[key] = found
        found.users.append(user)
        return found

    def conv_params(self, node: GNode) -> dict[str, Any]:
        a = node.attrs
        x = self.graph.input_shapes(node)[0]
        k, s, d, groups = a["k"], a["s"], a["dilation"], a["groups"]
        if is_depthwise(node, x.c):
            variant = "depthwise"
        elif k == 1 and s == 1 and groups == 1:
            variant = "pointwise"
        else:
            variant = "direct"
        lo, hi = _bounds(a["act"])
        return {
            "variant": variant,
            "H": x.h,
            "W": x.w,
            "Cin": x.c,
            "Ho": node.shape.h,
            "Wo": node.shape.w,
            "Cout": node.shape.c,
            "ksize": k,
            "s": s,
            "d": d,
            "pad": d * (k - 1) // 2,
            "groups": groups,
            "cin_g": x.c // groups,
            "cout_g": node.shape.c // groups,
            "lo": lo,
            "hi": hi,
            "act": a["act"],
        }

    def op_step(self, fo: Any) -> tuple[Kernel, dict[str, Any]]:
        node = self.graph.node(fo.nodes[0])
        ins = self.graph.input_shapes(node)
        x = ins[0]
        out = node.shape
        weights: list[str] = []
        if node.op == "conv2d":
            params = self.conv_params(node)
            kernel = self.kernel("conv2d", node.name, params, _conv_lines)
            weights = self.weight_args(node.name)
        elif node.op == "fc":
            lo, hi = _bounds(node.attrs["act"])
            params = {
                "Cin": x.c,
                "Cout": out.c,
                "lo": lo,
                "hi": hi,
                "what": f"fully connected {x.c} -> {out.c}, {node.attrs['act']}",
            }
            kernel = self.kernel("fc", node.name, params, _simple_lines)
            weights = self.weight_args(node.name)
        elif node.op == "avgpool":
            glob = bool(node.attrs["global"])
            k, s = node.attrs["k"], node.attrs["s"]
            window = 1 if glob else k * k
            count = x.h * x.w if glob else window
            what = (
                f"global average pool {_shape(x.h, x.w, x.c)} -> {x.c}"
                if glob
                else f"{k}x{k} average pool stride {s}, {_shape(x.h, x.w, x.c)} -> "
                f"{_shape(out.h, out.w, out.c)}"
            )
            params = {
                "global": glob,
                "H": x.h,
                "W": x.w,
                "C": x.c,
                "Ho": out.h,
                "Wo": out.w,
                "ksize": k,
                "s": s,
                "scale": c_float(1.0 / count),
                "what": what,
            }
            kernel = self.kernel("avgpool", node.name, params, _simple_lines)
        elif node.op == "add":
            lo, hi = _bounds(node.attrs["act"])
            params = {
                "n": len(node.inputs),
                "size": out.numel,
                "lo": lo,
                "hi": hi,
                "what": f"sum of {len(node.inputs)} tensors {_shape(out.h, out.w, out.c)}, "
                f"{node.attrs['act']}",
            }
            kernel = self.kernel("add", node.name, params, _simple_lines)
        elif node.op == "concat":
            channels = [s_.c for s_ in ins]
            starts = [sum(channels[:i]) for i in range(len(channels))]
            params = {
                "channels": channels,
                "starts": starts,
                "pixels": out.h * out.w,
                "Cout": out.c,
                "what": f"channel concat of {' + '.join(map(str, channels))} at {out.h}x{out.w}",
            }
            kernel = self.kernel("concat", node.name, params, _simple_lines)
        else:  # upsample
            params = self.upsample_params(node, x)
            kernel = self.kernel("upsample", node.name, params, _simple_lines)
        step = {
            "inputs": [self.tensor_arg(i) for i in node.inputs],
            "weights": weights,
            "comment": f"{node.name} ({node.op})",
        }
        return kernel, step

    def upsample_params(self, node: GNode, x: Shape) -> dict[str, Any]:
        oh, ow, mode = node.attrs["h"], node.attrs["w"], node.attrs["mode"]
        params: dict[str, Any] = {
            "mode": mode,
            "H": x.h,
            "W": x.w,
            "C": x.c,
            "Ho": oh,
            "Wo": ow,
            "what": f"{mode} upsample {_shape(x.h, x.w, x.c)} -> {_shape(oh, ow, x.c)}",
        }
        if mode == "nearest":
            params["r0"] = np.minimum(np.arange(oh) * x.h // oh, x.h - 1).tolist()
            params["c0"] = np.minimum(np.arange(ow) * x.w // ow, x.w - 1).tolist()
        else:
            r0, r1, rw = source_index(oh, x.h)
            c0, c1, cw = source_index(ow, x.w)
            params.update(
                r0=r0.tolist(),
                r1=r1.tolist(),
                c0=c0.tolist(),
                c1=c1.tolist(),
                rw=[c_float(v) for v in rw],
                cw=[c_float(v) for v in cw],
            )
        return params

    def roles(self, fo: Any) -> dict[str, GNode]:
        found = {}
        for name in fo.nodes:
            node = self.graph.node(name)
            if node.role:
                found[node.role] = node
        return found

    def check_linear(self, fo: Any, parts: Mapping[str, GNode]) -> None:
        for role in ("project", "residual"):
            node = parts.get(role)
            if node is not None and node.attrs["act"] != "linear":
                raise SpecError(
                    f"the c target fuses {fo.name} but {node.name} has activation "
                    f"{node.attrs['act']!r}; a fused block accumulates a linear projection",
                    node.loc,
                    "act",
                    "use act: linear on the projection and the residual add",
                )

    def block_common(self, fo: Any, parts: Mapping[str, GNode], hidden: int) -> dict[str, Any]:
        dwn = parts["dwise"]
        a = dwn.attrs
        dlo, dhi = _bounds(a["act"])
        out = self.graph.node(fo.output_node).shape
        return {
            "Ho": dwn.shape.h,
            "Wo": dwn.shape.w,
            "Cout": out.c,
            "hidden": hidden,
            "ksize": a["k"],
            "s": a["s"],
            "d": a["dilation"],
            "pad": a["dilation"] * (a["k"] - 1) // 2,
            "dw_lo": dlo,
            "dw_hi": dhi,
            "dw_act": a["act"],
            "residual": "residual" in parts,
            "gs": fo.group_channels,
            "split": self.split,
            "ws_elems": fo.workspace_elems,
        }

    def block_step(self, fo: Any) -> tuple[Kernel, dict[str, Any]]:
        parts = self.roles(fo)
        self.check_linear(fo, parts)
        block = self.graph.block_of(parts["dwise"].name)
        assert block is not None
        x = self.graph.node(block.input).shape
        t1 = "expand" not in parts
        hidden = parts["dwise"].shape.c
        params = self.block_common(fo, parts, hidden)
        params.update(
            {
                "Hin": x.h,
                "Win": x.w,
                "Cin": x.c,
                "t1": t1,
                "t": block.t,
                "e_elems": 0 if t1 else x.h * x.w * fo.group_channels,
            }
        )
        dw_rows = self.row_params(fo, params, parts["dwise"], 0 if t1 else x.h)
        if not t1 and fo.row_tile is not None:
            params["e_elems"] = params["band"] * x.w * fo.group_channels
        dw_part = (parts["dwise"].name, fo.group_channels * dw_rows * params["Wo"])
        if t1:
            weights = self.weight_args(parts["dwise"].name, parts["project"].name)
            params.update(exp_lo="", exp_hi="", exp_act="")
            self.check_workspace(fo, [dw_part])
        else:
            elo, ehi = _bounds(parts["expand"].attrs["act"])
            params.update(exp_lo=elo, exp_hi=ehi, exp_act=parts["expand"].attrs["act"])
            weights = self.weight_args(
                parts["expand"].name, parts["dwise"].name, parts["project"].name
            )
            self.check_workspace(fo, [(parts["expand"].name, params["e_elems"]), dw_part])
        kind = "bottleneck" if fo.row_tile is None else "bottleneck_rows"
        kernel = self.kernel(kind, fo.name, params, _block_lines)
        step = {
            "inputs": [self.tensor_arg(block.input)],
            "weights": weights,
            "comment": f"{fo.name} (fused block: {', '.join(fo.nodes)})",
        }
        return kernel, step

    def stem_step(self, fo: Any) -> tuple[Kernel, dict[str, Any]]:
        stem = self.graph.node(fo.nodes[0])
        parts = self.roles(fo)
        self.check_linear(fo, parts)
        if stem.op != "conv2d" or "expand" in parts:  # the planner fuses nothing else
            raise RuntimeError(f"{fo.name}: a stem block is a conv2d and a t = 1 block")
        x = self.graph.input_shapes(stem)[0]
        a = stem.attrs
        slo, shi = _bounds(a["act"])
        params = self.block_common(fo, parts, stem.shape.c)
        params.update(
            {
                "Hin": x.h,
                "Win": x.w,
                "Cin": x.c,
                "Hs": stem.shape.h,
                "Ws": stem.shape.w,
                "stem_k": a["k"],
                "stem_s": a["s"],
                "stem_d": a["dilation"],
                "stem_pad": a["dilation"] * (a["k"] - 1) // 2,
                "exp_lo": slo,
                "exp_hi": shi,
                "exp_act": a["act"],
                "e_elems": stem.shape.h * stem.shape.w * fo.group_channels,
                "stem_groups": a["groups"],
                "stem_cin_g": x.c // a["groups"],
                "stem_cout_g": stem.shape.c // a["groups"],
            }
        )
        dw_rows = self.row_params(fo, params, parts["dwise"], stem.shape.h)
        if fo.row_tile is not None:
            params["e_elems"] = params["band"] * stem.shape.w * fo.group_channels
        self.check_workspace(
            fo,
            [
                (stem.name, params["e_elems"]),
                (parts["dwise"].name, fo.group_channels * dw_rows * params["Wo"]),
            ],
        )
        kind = "stem_block" if fo.row_tile is None else "stem_block_rows"
        kernel = self.kernel(kind, fo.name, params, _stem_lines)
        weights = self.weight_args(stem.name, parts["dwise"].name, parts["project"].name)
        step = {
            "inputs": [self.tensor_arg(stem.inputs[0])],
            "weights": weights,
            "comment": f"{fo.name} (stem conv fused with the t = 1 block: {', '.join(fo.nodes)})",
        }
        return kernel, step

    @staticmethod
    def row_params(fo: Any, params: dict[str, Any], dw: GNode, in_rows: int) -> int:
        """Add a row-tiled block's band sizes to `params` (nothing when untiled, so that the
        untiled kernels stay as they were); the depthwise rows of the workspace."""
        if fo.row_tile is None:
            return params["Ho"]
        from archspec.analysis.memory import band_rows

        rows = min(fo.row_tile, params["Ho"])
        params.update(
            row_tile=fo.row_tile,
            rt=rows,
            band=band_rows(dw, in_rows, fo.row_tile) if in_rows else 0,
        )
        return rows

    def check_workspace(self, fo: Any, parts: list[tuple[str, int]]) -> None:
        """The kernel lays its workspace out as `parts` (node, floats): it must be what the
        planner reserved, part by part."""
        elems = sum(n for _, n in parts)
        planned = self.plan.problem.workspace.get(fo.name, 0)
        if (
            elems != fo.workspace_elems
            or planned != elems * FLOAT_BYTES
            or tuple(parts) != tuple(fo.workspace_parts)
        ):
            raise RuntimeError(
                f"{fo.name}: the kernel's workspace {parts} differs from the plan's "
                f"{list(fo.workspace_parts)} ({planned} bytes)"
            )

    # -- the whole program ----------------------------------------------------------------------

    def build(self) -> dict[str, Any]:
        plan, problem = self.plan, self.plan.problem
        order = list(plan.order)
        position = {op: i for i, op in enumerate(order)}
        readers: dict[str, list[int]] = {}
        for op in order:
            for t in dict.fromkeys(problem.inputs.get(op, ())):
                readers.setdefault(t, []).append(position[op])
        outputs = set(problem.outputs)
        last_read = {t: max(r) for t, r in readers.items()}

        offsets = plan.placement.offsets
        buffers: list[dict[str, Any]] = []

        def add_buffer(enum: str, key: str, nbytes: int, desc: str) -> None:
            if nbytes % FLOAT_BYTES or offsets[key] % FLOAT_BYTES:
                raise RuntimeError(f"buffer {key!r} is not float-aligned in the plan")
            buffers.append(
                {
                    "enum": enum,
                    "offset": offsets[key] // FLOAT_BYTES,
                    "floats": nbytes // FLOAT_BYTES,
                    "desc": desc,
                }
            )

        for t in problem.graph_inputs:
            add_buffer(self.buffer_enum(t), t, problem.size[t], f"{t}: network input")
        steps: list[dict[str, Any]] = []
        used_kinds: list[str] = []
        for i, op in enumerate(order):
            fo = self.fused[op]
            node = self.graph.node(fo.output_node)
            shape = node.shape
            add_buffer(
                self.buffer_enum(op),
                op,
                problem.size[op],
                f"{op}: {_shape(shape.h, shape.w, shape.c)}",
            )
            ws_bytes = problem.workspace.get(op, 0)
            if ws_bytes:
                add_buffer(self.ws_enum(op), f"{op}#ws", ws_bytes, f"{op}: workspace")
            if fo.kind == "op":
                kernel, step = self.op_step(fo)
            elif fo.kind == "block":
                kernel, step = self.block_step(fo)
            elif fo.kind == "stem_block":
                kernel, step = self.stem_step(fo)
            else:
                raise RuntimeError(f"unknown fused-op kind {fo.kind!r}")
            if kernel.kind not in used_kinds:
                used_kinds.append(kernel.kind)
            take = [self.buffer_enum(op)] + ([self.ws_enum(op)] if ws_bytes else [])
            give = [self.ws_enum(op)] if ws_bytes else []
            for t in dict.fromkeys(problem.inputs.get(op, ())):
                if t not in outputs and last_read[t] == i:
                    give.append(self.buffer_enum(t))
            if op not in readers and op not in outputs:
                give.append(self.buffer_enum(op))
            step.update(
                {
                    "kind": kernel.kind,
                    "fn": kernel.fn,
                    "output": f"A({self.buffer_enum(op)})",
                    "ws": f"A({self.ws_enum(op)})" if ws_bytes else "",
                    "take": take,
                    "give": give,
                }
            )
            steps.append(step)

        for b in buffers:
            if b["offset"] + b["floats"] > MAX_FLOATS:
                raise SpecError(
                    f"the arena needs {plan.placement.arena_bytes} bytes; the c target indexes "
                    "it with int and supports at most 8 GiB",
                    Location(self.graph.spec.rows[0].loc.file),
                    None,
                    "lower the resolution or the width multiplier",
                )

        graph_inputs = []
        for t in problem.graph_inputs:
            shape = self.graph.node(self.node_of[t]).shape
            if t in readers or t in outputs:
                graph_inputs.append(
                    {
                        "enum": self.buffer_enum(t),
                        "C": shape.c,
                        "pixels": shape.h * shape.w,
                        "offset": 0,
                    }
                )
        out_list = []
        offset = 0
        for name in self.graph.outputs:
            tensor = self.tensor_of[name]
            shape = self.graph.node(name).shape
            out_list.append(
                {
                    "enum": self.buffer_enum(tensor),
                    "C": shape.c,
                    "pixels": shape.h * shape.w,
                    "offset": offset,
                    "node": name,
                }
            )
            offset += shape.numel
        final_give = list(dict.fromkeys(self.buffer_enum(t) for t in problem.outputs))
        return {
            "steps": steps,
            "buffers": buffers,
            "kinds": used_kinds,
            "graph_inputs": graph_inputs,
            "outputs": out_list,
            "output_size": offset,
            "final_give": final_give,
        }


def check_supported(graph: Graph) -> None:
    """Refuse, before any work, a graph with an op the C target has no kernel for."""
    for node in graph.ops():
        if node.op not in OP_KERNELS:
            raise SpecError(
                f"the c target has no kernel for op {node.op!r}",
                node.loc,
                "op",
                f"the c target implements {', '.join(OP_KERNELS)} (and fused bottleneck blocks)",
            )
        if node.op == "upsample" and node.attrs["mode"] not in ("bilinear", "nearest"):
            raise SpecError(
                f"the c target has no {node.attrs['mode']!r} upsampling",
                node.loc,
                "mode",
                "expected bilinear or nearest",
            )


def _number_lines(values: list[int], per_line: int = 10) -> list[str]:
    items = [str(v) for v in values]
    return [", ".join(items[i : i + per_line]) + "," for i in range(0, len(items), per_line)]


def _plan_desc(plan: Any, split: int | str) -> str:
    rows = "" if plan.row_tile is None else f", row tile {plan.row_tile}"
    return (
        f"fused bottleneck blocks (first-layer trick), split {split}{rows}, float32 "
        f"activations, {len(plan.order)} steps"
    )


def render(
    graph: Graph,
    weights: Mapping[str, np.ndarray],
    env: jinja2.Environment,
    *,
    split: Any = 1,
    row_tile: Any = None,
    **options: Any,
) -> dict[str, str | bytes]:
    """Render the C sources of `graph` with `weights` for a `split`-way split (int or "n").

    `row_tile` R (None: untiled) computes every fused block in bands of R output rows, with
    the planner's row-tiled workspace (`archspec.analysis.memory.fused_ops`).
    """
    for key in options:
        raise SpecError(f"option --{key} does not apply to the c target", None, f"--{key}")
    from archspec.analysis.memory import plan_memory

    split = parse_split(split)
    row_tile = parse_row_tile(row_tile)
    check_supported(graph)
    plan = plan_memory(graph, mode="fused", split=split, dtype="float32", row_tile=row_tile)
    if plan.dtype_bytes != FLOAT_BYTES:
        raise RuntimeError("the c target needs a float32 memory plan")
    ident = spec_identifier(graph.name)
    builder = _Builder(graph, plan, split, ident)
    program = builder.build()
    arrays = weight_arrays(graph, weights)

    needed = {h for k in builder.kernels.values() for h in k.helpers()}
    row_needed = {ROW_HELPERS[h] for h in needed if h in ROW_HELPERS}
    helpers = [h for h in HELPER_ORDER if h in needed or h in row_needed]
    max_taps = max((n.attrs["k"] ** 2 for n in graph.ops() if n.op == "conv2d"), default=1)
    helper_args = {
        "clamp": (),
        "taps": (max_taps,),
        "pointwise": (TILE_SETS,),
        "depthwise": (),
        "direct": (TILE_SETS,),
    }
    helper_text = {}
    for h in helpers:
        module: Any = env.get_template(f"c/ops/{h}.c.j2").module
        if h in row_needed:  # the whole-tensor function only if an untiled kernel calls it
            helper_text[h] = module.helpers(*helper_args[h], full=h in needed, banded=True)
        else:
            helper_text[h] = module.helpers(*helper_args[h])
    fragments = {kind: env.get_template(f"c/ops/{kind}.c.j2").module for kind in program["kinds"]}
    kernels = [k.context() for k in builder.kernels.values()]

    x = graph.input.shape
    outs = program["outputs"]
    out_desc = ", then ".join(
        f"{o['node']} ({o['C']})"
        if o["pixels"] == 1
        else f"{o['node']} {o['C']}x{graph.node(o['node']).shape.h}x{graph.node(o['node']).shape.w}"
        for o in outs
    )
    buffers = program["buffers"]
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
    }
    weights_ctx = [
        {
            "field": a.field,
            "symbol": a.symbol,
            "comment": a.comment,
            "size": a.values.size,
            "lines": array_lines(a.values),
        }
        for a in arrays
    ]
    network = env.get_template("c/network.c.j2").render(
        **common,
        has_weights=bool(arrays),
        split_option=("" if split == 1 else f" --split {split}")
        + ("" if row_tile is None else f" --row-tile {row_tile}"),
        optimal=plan.optimal,
        lower_bound_bytes=plan.lower_bound_bytes,
        arena_floats=max(1, plan.placement.arena_bytes // FLOAT_BYTES),
        buffers=buffers,
        max_enum=max(len(b["enum"]) for b in buffers),
        buffer_offset_lines=_number_lines([b["offset"] for b in buffers]),
        buffer_floats_lines=_number_lines([b["floats"] for b in buffers]),
        helpers=helpers,
        helper_text=helper_text,
        kernels=kernels,
        fragments=fragments,
        steps=program["steps"],
        graph_inputs=program["graph_inputs"],
        outputs=outs,
        final_give=program["final_give"],
    )
    return {
        f"{ident}.h": env.get_template("c/network.h.j2").render(**common, weights=weights_ctx),
        f"{ident}.c": network,
        f"{ident}_weights.c": env.get_template("c/weights.c.j2").render(
            **common, weights=weights_ctx
        ),
        "run.c": env.get_template("c/run.c.j2").render(**common),
        "Makefile": env.get_template("c/Makefile.j2").render(**common),
    }
