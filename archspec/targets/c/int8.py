"""The C target in int8 (issue 12, DESIGN.md §4b): the same plan walker and files as the float
build, with int8 activations, int8 weights, int32 biases and TFLite's fixed-point arithmetic.

`render_int8(graph, weights, env, split=..., row_tile=..., qparams=...)` asks the planner for the
fused plan at dtype int8 (1 byte per element; a fused block with more than one group also holds
the int32 sums of its projection, `archspec.analysis.memory.accumulator_bytes`), placed at
4-byte alignment so that those sums are aligned. Each op's int8 kernel is the `kernel_int8`
macro of its fragment (`templates/c/ops/<kind>.c.j2`), its parameters the op's own C context
(`GraphOp.targets["c"]`) plus the zero points, clamps and multipliers computed here from
`QParams`, exactly as `archspec.quant.reference.int8_forward` computes them: the C output is
bit-identical to it. The shared integer loops live in `templates/c/ops/int8.c.j2`.

Files: `<ident>.h` (`int <ident>_run(const int8_t *input, int8_t *output)`, the input's and
outputs' scales and zero points), `<ident>.c`, `<ident>_weights.c` (int8 weights, int32
biases, multipliers and shifts), `run.c` (raw int8 files, NCHW) and the float build's Makefile.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jinja2
import numpy as np

from archspec import __version__
from archspec.analysis.memory import (
    ACCUMULATOR_BYTES,
    FusedOp,
    MemoryPlan,
    int8_band,
    plan_memory,
)
from archspec.errors import SpecError
from archspec.graph import GNode, Graph
from archspec.names import spec_identifier
from archspec.ops import GRAPH_OPS, Role
from archspec.ops.conv2d import c_variant, pad_of
from archspec.ops.pool import pad_of as pool_pad
from archspec.options import Split, check_row_tile, check_split
from archspec.quant.fixedpoint import quantize_multiplier
from archspec.quant.params import QParams, TensorQ, activation_bounds, check_supported
from archspec.quant.reference import add_multipliers, avgpool_multipliers, conv_multipliers
from archspec.targets import fragment
from archspec.targets.c.kernels import Kernel
from archspec.targets.c.program import Program
from archspec.targets.c.render import c_files, network_context
from archspec.targets.c.weights import conv_layout
from archspec.templating import c_float

ARENA_ALIGNMENT = 4  # the int32 accumulators in fused blocks' workspaces
# The shared loops (templates/c/ops/int8.c.j2) each kernel kind calls.
NEEDS = {
    "fc": ("pointwise",),
    "bottleneck": ("add2", "pointwise", "accumulate", "depthwise", "direct"),
    "stem_block": ("add2", "pointwise", "accumulate", "depthwise", "direct"),
    "shuffle_unit": ("add2", "pointwise", "accumulate", "depthwise"),
}
HELPER_ORDER = ("add2", "tiles", "pointwise", "accumulate", "depthwise", "direct")
# Fused kinds whose generic function lives in a fragment's `int8_helpers()` macro.
BLOCK_HELPERS = {
    "bottleneck": "bottleneck",
    "stem_block": "bottleneck",
    "shuffle_unit": "shuffle_unit",
}


def _requant(src: TensorQ, dst: TensorQ) -> tuple[int, int, int] | None:
    """(source zero point, multiplier, shift) of a requantization, None when none is needed."""
    if src == dst:
        return None
    m, s = quantize_multiplier(src.scale / dst.scale)
    return (src.zero_point, m, s)


def _conv_needs(attrs: Mapping[str, Any], c_in: int) -> tuple[str, ...]:
    if c_variant(attrs, c_in) == "depthwise":
        return ("depthwise",)
    if attrs["k"] == 1 and attrs["s"] == 1:
        return ("pointwise",)
    return ("direct",)


class QProgram(Program):
    """The plan walker with int8 kernels: buffers in bytes, parameters from `QParams`."""

    unit = 1

    def __init__(self, graph: Graph, plan: MemoryPlan, split: Split, qparams: QParams) -> None:
        super().__init__(graph, plan, split)
        self.q = qparams
        self.needs: set[str] = set()
        self.comments: dict[str, str] = {}

    def tq(self, name: str) -> TensorQ:
        """The parameters of a tensor."""
        return self.q.activations[name]

    @staticmethod
    def weight_args(nodes: tuple[str, ...] | list[str]) -> list[str]:
        """Weights, biases, multipliers and shifts of `nodes`, in order."""
        return [f"w->{n}_{s}" for n in nodes for s in ("w", "b", "m", "s")]

    def _op_params(self, node: GNode) -> dict[str, Any]:
        """The int8 parameters of one unfused node, beside its op's own C context."""
        tx, ty = self.tq(node.inputs[0]), self.tq(node.name)
        if node.op in ("conv2d", "fc"):
            lo, hi = activation_bounds(node.attrs["act"], ty)
            if node.op == "conv2d":
                self.needs.update(_conv_needs(node.attrs, self.graph.input_shapes(node)[0].c))
            return {"zx": tx.zero_point, "zy": ty.zero_point, "qlo": lo, "qhi": hi}
        if node.op == "add":
            tins = [self.tq(i) for i in node.inputs]
            ins, out = add_multipliers([t.scale for t in tins], ty.scale)
            lo, hi = activation_bounds(node.attrs["act"], ty)
            qins = [(t.zero_point, m, s) for t, (m, s) in zip(tins, ins, strict=True)]
            return {"qins": qins, "qout": out, "zy": ty.zero_point, "qlo": lo, "qhi": hi}
        if node.op == "concat":
            return {"qins": [_requant(self.tq(i), ty) for i in node.inputs], "zy": ty.zero_point}
        if node.op == "avgpool":
            table = avgpool_multipliers(node, self.graph, self.q)
            if node.attrs["global"]:
                ((m, s),) = table.values()
                qm, qs = [m], [s]
            else:
                taps = node.attrs["k"] ** 2
                qm = [table.get(n, (0, 0))[0] for n in range(taps + 1)]
                qs = [table.get(n, (0, 0))[1] for n in range(taps + 1)]
            return {
                "zx": tx.zero_point,
                "zy": ty.zero_point,
                "qm": qm,
                "qs": qs,
                "qpad": 0 if node.attrs["global"] else pool_pad(node.attrs),
                "qcount": bool(node.attrs.get("count_pad")),
            }
        return {"q": _requant(tx, ty), "zy": ty.zero_point}  # maxpool, shuffle

    def op_step(self, fo: FusedOp) -> tuple[Kernel, dict[str, Any]]:
        """One unfused graph node: its op's C context and its int8 parameters."""
        node = self.graph.node(fo.nodes[0])
        ins = self.graph.input_shapes(node)
        params = GRAPH_OPS[node.op].targets["c"](node.attrs, ins, node.shape)
        params.pop("helpers", ())
        has_weights = params.pop("weights", False)
        if "act" in node.attrs:
            params["act"] = node.attrs["act"]
        params.update(self._op_params(node))
        self.needs.update(NEEDS.get(node.op, ()))
        kernel = self.kernels.add(node.op, node.name, params, (), {"ins": ins, "out": node.shape})
        step = {
            "inputs": [self.tensor_arg(i) for i in node.inputs],
            "weights": self.weight_args([node.name]) if has_weights else [],
            "comment": f"{node.name} ({node.op})",
            "post": None,
        }
        return kernel, step

    def block_step(self, fo: FusedOp) -> tuple[Kernel, dict[str, Any]]:
        """A fused block in int8 (bottleneck, stem block, ShuffleNet unit)."""
        block = next(b for b in self.graph.blocks if b.name == fo.block)
        members = block.members(self.graph)
        stem = self.graph.node(fo.nodes[0]) if fo.kind == "stem_block" else None
        dw = members[Role.DWISE]
        out = self.graph.node(fo.output_node).shape
        proj = members[Role.PROJECT].shape
        if (fo.groups or 1) > 1:  # int32 sums of one band (archspec.analysis.memory.int8_band)
            rows, extra, parts = int8_band(self.graph, fo)
            acc = ACCUMULATOR_BYTES * rows * proj.w * proj.c
        else:  # one group: each sum requantized at once
            rows = dw.shape.h if fo.row_tile is None else min(fo.row_tile, dw.shape.h)
            extra, acc, parts = 0, 0, tuple(n for _, n in fo.workspace_parts)
        planned = self.plan.problem.workspace.get(fo.name, 0)
        if planned != fo.workspace_elems + extra or acc + sum(parts) > planned:
            raise RuntimeError(f"{fo.name}: the int8 workspace differs from the plan's")
        common = {
            "H": self.graph.input_shapes(dw)[0].h,
            "W": self.graph.input_shapes(dw)[0].w,
            "Ho": dw.shape.h,
            "Wo": dw.shape.w,
            "Cout": out.c,
            "gs": fo.group_channels,
            "groups": fo.groups,
            "ksize": dw.attrs["k"],
            "s": dw.attrs["s"],
            "d": dw.attrs["dilation"],
            "pad": pad_of(dw.attrs),
            "R": rows,
            "acc_bytes": acc,
            "e_bytes": parts[0] if len(parts) == 2 else 0,
        }
        if block.kind == "shuffle_unit":
            kind, params = "shuffle_unit", self._shuffle_unit(block, members)
            weights = (members[Role.EXPAND].name, dw.name, members[Role.PROJECT].name)
        elif block.kind == "bottleneck":
            kind = "stem_block" if stem is not None else "bottleneck"
            params = self._bottleneck(block, members, stem)
            first = stem if stem is not None else members.get(Role.EXPAND)
            weights = ((first.name,) if first is not None else ()) + (
                dw.name,
                members[Role.PROJECT].name,
            )
        else:
            raise SpecError(
                f"int8 does not support fused {block.kind} blocks yet ({fo.name})",
                self.graph.node(block.output).loc,
                "op",
            )
        params = {**common, **params}
        self.needs.update(NEEDS[kind])
        desc = (
            f"{fo.name}: fused {kind.replace('_', ' ')} ({', '.join(fo.nodes)}), split {self.split}"
            f" ({fo.groups} group{'s' if fo.groups != 1 else ''} of {fo.group_channels}), "
            f"bands of {rows} output rows{' (row tile)' if fo.row_tile is not None else ''}, int32 "
            f"sums {acc} bytes, workspace {planned} bytes"
        )
        kernel = self.kernels.add(kind, fo.name, params, (), {"desc": desc})
        source = stem.inputs[0] if stem is not None else block.input
        step = {
            "inputs": [self.tensor_arg(source)],
            "weights": self.weight_args(list(weights)),
            "comment": f"{fo.name} (fused: {', '.join(fo.nodes)})",
            "post": None,
        }
        return kernel, step

    def _bottleneck(
        self, block: Any, members: Mapping[Role, GNode], stem: GNode | None
    ) -> dict[str, Any]:
        dw, proj = members[Role.DWISE], members[Role.PROJECT]
        expand, res = members.get(Role.EXPAND), members.get(Role.RESIDUAL)
        first = stem if stem is not None else expand
        mode = 2 if stem is not None else (1 if expand is not None else 0)
        source = stem.inputs[0] if stem is not None else block.input
        tx, td, tp = self.tq(source), self.tq(dw.name), self.tq(proj.name)
        te = self.tq(first.name) if first is not None else tx
        elo, ehi = activation_bounds(first.attrs["act"], te) if first is not None else (0, 0)
        dlo, dhi = activation_bounds(dw.attrs["act"], td)
        for node in (proj, res):
            if node is not None and node.attrs["act"] != "linear":
                raise SpecError(
                    f"int8 fuses {block.name} but {node.name} has activation "
                    f"{node.attrs['act']!r}; a fused block's projection and add are linear",
                    node.loc,
                    "act",
                )
        stem_geo = [0] * 9
        if stem is not None:
            x = self.graph.input_shapes(stem)[0]
            a = stem.attrs
            g = a["groups"]
            stem_geo = [x.h, x.w, x.c, a["k"], a["s"], a["dilation"], pad_of(a)]
            stem_geo += [x.c // g, stem.shape.c // g]
        radd = [0] * 6
        zr = zo = olo = ohi = 0
        if res is not None:
            if tuple(res.inputs) not in ((block.input, proj.name), (proj.name, block.input)):
                raise RuntimeError(f"{res.name}: expected the block input and the projection")
            tr, to = self.tq(block.input), self.tq(res.name)
            ins, out = add_multipliers([tr.scale, tp.scale], to.scale)
            radd = [*ins[0], *ins[1], *out]
            zr, zo = tr.zero_point, to.zero_point
            olo, ohi = activation_bounds(res.attrs["act"], to)
        return {
            "Cin": self.graph.input_shapes(dw)[0].c
            if mode == 2
            else self.graph.node(source).shape.c,
            "hidden": dw.shape.c,
            "mode": mode,
            "stem": stem_geo,
            "residual": res is not None,
            "zs": [tx.zero_point, te.zero_point, elo, ehi, td.zero_point, dlo, dhi]
            + [tp.zero_point, zr, zo, olo, ohi],
            "radd": radd,
        }

    def _shuffle_unit(self, block: Any, members: Mapping[Role, GNode]) -> dict[str, Any]:
        g1, dw, g2 = members[Role.EXPAND], members[Role.DWISE], members[Role.PROJECT]
        merge, shuffle, pool = (
            members[Role.RESIDUAL],
            members.get(Role.SHUFFLE),
            members.get(Role.SHORTCUT),
        )
        x = self.graph.node(block.input).shape
        tx, te, td, tb = (self.tq(n) for n in (block.input, g1.name, dw.name, g2.name))
        to = self.tq(merge.name)
        if shuffle is not None and self.tq(shuffle.name) != te:
            raise SpecError(
                f"int8 fuses {block.name}: {shuffle.name} must keep {g1.name}'s parameters",
                shuffle.loc,
                "op",
            )
        if dw.attrs["act"] != "linear":
            raise SpecError(f"int8 fuses {block.name}: {dw.name} must be linear", dw.loc, "act")
        sg = shuffle.attrs["groups"] if shuffle is not None else 1
        elo, ehi = activation_bounds(g1.attrs["act"], te)
        blo, bhi = activation_bounds(g2.attrs["act"], tb)
        residual = merge.op == "add"
        olo, ohi = activation_bounds(merge.attrs.get("act", "linear"), to)
        radd, pool_q, cat = [0] * 6, [0] * 3, [0] * 6
        pk = ps = ppad = 0
        if residual:
            ins, out = add_multipliers([tx.scale, tb.scale], to.scale)
            radd = [*ins[0], *ins[1], *out]
        else:
            if pool is None or not pool.attrs["count_pad"] or pool.attrs["global"]:
                raise RuntimeError(f"{block.name}: expected a windowed pool counting padding")
            tpool = self.tq(pool.name)
            ((mpool, spool),) = (
                v
                for n, v in avgpool_multipliers(pool, self.graph, self.q).items()
                if n == pool.attrs["k"] ** 2
            )
            pool_q = [tpool.zero_point, mpool, spool]
            pk, ps, ppad = pool.attrs["k"], pool.attrs["s"], pool_pad(pool.attrs)
            rp, rb = _requant(tpool, to), _requant(tb, to)
            cat = [1, rp[1], rp[2]] if rp else [0, 0, 0]
            cat += [1, rb[1], rb[2]] if rb else [0, 0, 0]
        ga, gb = g1.attrs["groups"], g2.attrs["groups"]
        mid = dw.shape.c
        shape2 = [sg, x.c // ga, mid // ga, mid // gb, g2.shape.c // gb, g2.shape.c]
        shape2 += [out_c - g2.shape.c for out_c in (self.graph.node(merge.name).shape.c,)]
        shape2 += [1 if residual else 0, pk, ps, ppad]
        return {
            "Cin": x.c,
            "mid": mid,
            "shape2": shape2,
            "zs": [tx.zero_point, te.zero_point, elo, ehi, td.zero_point, tb.zero_point, blo, bhi]
            + [to.zero_point, olo, ohi],
            "radd": radd,
            "pool": pool_q,
            "cat": cat,
        }


# -- weights ----------------------------------------------------------------------------------


def weight_arrays_int8(graph: Graph, qparams: QParams) -> list[dict[str, Any]]:
    """Every conv2d / fc node's int8 weights (the float build's layouts), int32 biases,
    multipliers and shifts, as the weights file's arrays."""
    arrays = []
    for node in graph.ops():
        if node.op not in ("conv2d", "fc"):
            continue
        wq = qparams.weights[node.name]
        c_in = graph.input_shapes(node)[0].c
        if node.op == "fc":
            w, layout = wq.weight.T, f"[{c_in}][{node.shape.c}]"
        else:
            w, layout = conv_layout(node, c_in, wq.weight)
        tx, ty = qparams.activations[node.inputs[0]], qparams.activations[node.name]
        m, s = conv_multipliers(tx.scale, wq.scale, ty.scale)
        for suffix, ctype, values, what in (
            ("w", "int8_t", w, f"int8 weight {layout}"),
            ("b", "int32_t", wq.bias, "int32 bias (scale: input scale x weight scale)"),
            ("m", "int32_t", m, "Q31 multiplier of input scale x weight scale / output scale"),
            ("s", "int32_t", s, "shift of the multiplier"),
        ):
            flat = np.ascontiguousarray(values).ravel().astype(np.int64)
            items = [str(v) for v in flat.tolist()]
            arrays.append(
                {
                    "field": f"{node.name}_{suffix}",
                    "symbol": f"{suffix}_{node.name}",
                    "ctype": ctype,
                    "comment": f"{node.name}: {what}",
                    "size": flat.size,
                    "lines": [", ".join(items[i : i + 16]) + "," for i in range(0, len(items), 16)],
                }
            )
    return arrays


# -- the files --------------------------------------------------------------------------------


def _describe(env: jinja2.Environment, kind: str) -> Callable[[dict[str, Any]], str]:
    if kind in ("bottleneck", "stem_block", "shuffle_unit"):
        return lambda ctx: ctx["desc"]
    macro = env.get_template(fragment("c", kind)).module.describe
    return lambda ctx: str(macro(ctx))


def render_int8(
    graph: Graph,
    weights: Mapping[str, np.ndarray],
    env: jinja2.Environment,
    *,
    split: Split = 1,
    row_tile: int | None = None,
    qparams: QParams,
) -> dict[str, str | bytes]:
    """The five files of the int8 C build of `graph` with `qparams` (see the module docstring);
    `weights` are not read again: `qparams.weights` holds the quantized ones."""
    del weights  # the quantized weights are in qparams
    check_supported(graph)
    split = check_split(split)
    row_tile = check_row_tile(row_tile)
    plan = plan_memory(
        graph, mode="fused", split=split, dtype="int8", row_tile=row_tile, alignment=ARENA_ALIGNMENT
    )
    ident = spec_identifier(graph.name)
    builder = QProgram(graph, plan, split, qparams)
    program = builder.build()
    fragments = {kind: env.get_template(fragment("c", kind)).module for kind in program["kinds"]}
    kernels = [k.context(_describe(env, k.kind)) for k in builder.kernels]
    helper_module: Any = env.get_template("c/ops/int8.c.j2").module
    needs = set(builder.needs)
    if needs & {"pointwise", "accumulate", "direct"}:
        needs.add("tiles")
    helper_text = str(helper_module.helpers([h for h in HELPER_ORDER if h in needs]))
    block_text = [
        str(env.get_template(fragment("c", b)).module.int8_helpers())
        for b in dict.fromkeys(BLOCK_HELPERS[k] for k in program["kinds"] if k in BLOCK_HELPERS)
    ]
    arrays = weight_arrays_int8(graph, qparams)
    x = graph.input.shape
    tin = qparams.activations[graph.input.name]
    outs = program["outputs"]
    for o in outs:
        tq = qparams.activations[o["node"]]
        o.update(scale=c_float(tq.scale), zero_point=tq.zero_point)
    rows = "" if row_tile is None else f", row tile {row_tile}"
    common = {
        "ident": ident,
        "IDENT": ident.upper(),
        "version": __version__,
        "spec_name": graph.name,
        "input_desc": f"{x.c}x{x.h}x{x.w}",
        "output_desc": ", then ".join(f"{o['node']} ({o['C']}x{o['pixels']} pixels)" for o in outs),
        "input_size": x.numel,
        "output_size": program["output_size"],
        "input_scale": c_float(tin.scale),
        "input_zero_point": tin.zero_point,
        "outputs": outs,
        "arena_bytes": plan.placement.arena_bytes,
        "peak_bytes": plan.peak_bytes,
        "plan_desc": (
            f"fused blocks (first-layer trick), split {split}{rows}, int8 activations "
            f"(int32 accumulators of split blocks counted), {len(plan.order)} steps"
        ),
    }
    network = {
        **network_context(plan, program, split, row_tile, int8=True, arena_unit=ARENA_ALIGNMENT),
        "helper_texts": [helper_text, *block_text],
        "kernels": kernels,
        "fragments": fragments,
    }
    return c_files(env, common, network, arrays, int8=True)
