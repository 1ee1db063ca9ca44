"""The C target's plan walker: the memory plan's steps as kernel calls on arena buffers.

Every op of the plan becomes a step: it takes its output (and workspace) buffers, calls its
kernel, and gives back the buffers no later step reads, exactly as the planner counted them
(Eq. 1), so that the generated program can measure its own high-water mark.
"""

from __future__ import annotations

from typing import Any

from archspec.activations import ACTIVATION_TABLE
from archspec.analysis.memory import FusedOp, MemoryPlan
from archspec.errors import SpecError
from archspec.graph import Graph
from archspec.ops import BLOCK_KINDS, GRAPH_OPS
from archspec.targets.c.kernels import Kernel, KernelSet

FLOAT_BYTES = 4


def _shape(h: int, w: int, c: int) -> str:
    return f"{h}x{w}x{c}"


def buffer_enum(tensor: str) -> str:
    """The enum constant of a tensor's arena buffer."""
    return f"T_{tensor}"


def ws_enum(op: str) -> str:
    """The enum constant of an op's workspace buffer."""
    return f"WS_{op}"


class Program:
    """Walks the memory plan and collects kernels, steps, buffers and allocation events.

    Buffer offsets and sizes are in arena elements of `unit` bytes (float32 here; the int8
    program, `archspec.targets.c.int8`, counts bytes)."""

    unit = FLOAT_BYTES

    def __init__(self, graph: Graph, plan: MemoryPlan, split: int | str) -> None:
        self.graph = graph
        self.plan = plan
        self.split = split
        self.kernels = KernelSet()
        self.fused = {fo.name: fo for fo in plan.fused_ops}
        problem = plan.problem
        # Which Problem tensor holds each graph node's tensor (inner nodes of fused ops: none).
        self.tensor_of: dict[str, str] = {name: name for name in problem.graph_inputs}
        for fo in plan.fused_ops:
            self.tensor_of[fo.output_node] = fo.name
        self.node_of = {t: n for n, t in self.tensor_of.items()}

    def tensor_arg(self, node_name: str) -> str:
        """The arena address of the tensor a graph node produced."""
        tensor = self.tensor_of.get(node_name)
        if tensor is None:  # the plan fused away a tensor that another op reads: a planner bug
            raise RuntimeError(f"tensor {node_name!r} is not materialised by the memory plan")
        return f"A({buffer_enum(tensor)})"

    @staticmethod
    def weight_args(nodes: tuple[str, ...] | list[str]) -> list[str]:
        """The weight and bias arguments of `nodes`, in order."""
        return [f"w->{n}_{s}" for n in nodes for s in ("w", "b")]

    # -- steps -----------------------------------------------------------------------------

    def op_step(self, fo: FusedOp) -> tuple[Kernel, dict[str, Any]]:
        """One unfused graph node: its op's C context (from its module) and fragment."""
        node = self.graph.node(fo.nodes[0])
        ins = self.graph.input_shapes(node)
        params = GRAPH_OPS[node.op].targets["c"](node.attrs, ins, node.shape)
        helpers = params.pop("helpers", ())
        has_weights = params.pop("weights", False)
        act = node.attrs.get("act")
        post = None
        if act is not None:
            params["act"] = act
            post = ACTIVATION_TABLE[act].render["c"]["post"]
        info = {"ins": ins, "out": node.shape}
        kernel = self.kernels.add(node.op, node.name, params, helpers, info)
        step = {
            "inputs": [self.tensor_arg(i) for i in node.inputs],
            "weights": self.weight_args([node.name]) if has_weights else [],
            "comment": f"{node.name} ({node.op})",
            "post": {"expr": post, "size": node.shape.numel} if post else None,
        }
        return kernel, step

    def block_step(self, fo: FusedOp) -> tuple[Kernel, dict[str, Any]]:
        """A fused block (with its stem under the first-layer trick), through its kind's
        declaration: the members that must be linear, its kernel, its workspace layout."""
        block = next(b for b in self.graph.blocks if b.name == fo.block)
        kind = BLOCK_KINDS[block.kind]
        members = block.members(self.graph)
        stem = self.graph.node(fo.nodes[0]) if fo.kind == "stem_block" else None
        if kind.c_kernel is None:
            raise SpecError(
                f"the c target cannot run {block.kind} blocks fused ({fo.name})",
                self.graph.node(block.output).loc,
                "op",
            )
        for role in kind.linear_roles:
            node = members.get(role)
            if node is not None and node.attrs["act"] != "linear":
                raise SpecError(
                    f"the c target fuses {fo.name} but {node.name} has activation "
                    f"{node.attrs['act']!r}; a fused block accumulates a linear projection",
                    node.loc,
                    "act",
                    "use act: linear on the projection and the residual add",
                )
        for node in [*members.values(), *([stem] if stem else [])]:
            act = node.attrs.get("act", "linear")
            if not ACTIVATION_TABLE[act].is_clamp:
                raise SpecError(
                    f"the c target fuses {fo.name} but {node.name} has activation {act!r}; "
                    "a fused block's kernels apply clamp activations (relu, relu6, linear) only",
                    node.loc,
                    "act",
                )
        source = stem.inputs[0] if stem is not None else block.input
        x = self.graph.node(source).shape
        out = self.graph.node(fo.output_node).shape
        desc = kind.c_kernel(fo, block, members, stem, x, out, self.split)
        info = {"ws_bytes": fo.workspace_elems * FLOAT_BYTES}
        kernel = self.kernels.add(desc["kind"], fo.name, desc["params"], desc["helpers"], info)
        self.check_workspace(fo, desc["workspace"])
        what = (
            f"stem conv fused with the t = 1 block: {', '.join(fo.nodes)}"
            if stem is not None
            else f"fused block: {', '.join(fo.nodes)}"
        )
        step = {
            "inputs": [self.tensor_arg(source)],
            "weights": self.weight_args(desc["weights"]),
            "comment": f"{fo.name} ({what})",
            "post": None,
        }
        return kernel, step

    def check_workspace(self, fo: FusedOp, parts: list[tuple[str, int]]) -> None:
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
        """Steps, buffers, kernel kinds, graph inputs and outputs of the whole program."""
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

        unit = self.unit

        def add_buffer(enum: str, key: str, nbytes: int, desc: str) -> None:
            if nbytes % unit or offsets[key] % unit:
                raise RuntimeError(f"buffer {key!r} is not element-aligned in the plan")
            buffers.append(
                {
                    "enum": enum,
                    "offset": offsets[key] // unit,
                    "floats": nbytes // unit,
                    "desc": desc,
                }
            )

        for t in problem.graph_inputs:
            add_buffer(buffer_enum(t), t, problem.size[t], f"{t}: network input")
        steps: list[dict[str, Any]] = []
        used_kinds: list[str] = []
        for i, op in enumerate(order):
            fo = self.fused[op]
            shape = self.graph.node(fo.output_node).shape
            add_buffer(
                buffer_enum(op), op, problem.size[op], f"{op}: {_shape(shape.h, shape.w, shape.c)}"
            )
            ws_bytes = problem.workspace.get(op, 0)
            if ws_bytes:
                add_buffer(ws_enum(op), f"{op}#ws", ws_bytes, f"{op}: workspace")
            kernel, step = self.op_step(fo) if fo.kind == "op" else self.block_step(fo)
            if kernel.kind not in used_kinds:
                used_kinds.append(kernel.kind)
            take = [buffer_enum(op)] + ([ws_enum(op)] if ws_bytes else [])
            give = [ws_enum(op)] if ws_bytes else []
            for t in dict.fromkeys(problem.inputs.get(op, ())):
                if t not in outputs and last_read[t] == i:
                    give.append(buffer_enum(t))
            if op not in readers and op not in outputs:
                give.append(buffer_enum(op))
            step.update(
                {
                    "kind": kernel.kind,
                    "fn": kernel.fn,
                    "output": f"A({buffer_enum(op)})",
                    "ws": f"A({ws_enum(op)})" if ws_bytes else "",
                    "take": take,
                    "give": give,
                }
            )
            steps.append(step)

        graph_inputs = []
        for t in problem.graph_inputs:
            shape = self.graph.node(self.node_of[t]).shape
            if t in readers or t in outputs:
                graph_inputs.append(
                    {"enum": buffer_enum(t), "C": shape.c, "pixels": shape.h * shape.w, "offset": 0}
                )
        out_list = []
        offset = 0
        for name in self.graph.outputs:
            tensor = self.tensor_of[name]
            shape = self.graph.node(name).shape
            out_list.append(
                {
                    "enum": buffer_enum(tensor),
                    "C": shape.c,
                    "pixels": shape.h * shape.w,
                    "offset": offset,
                    "node": name,
                }
            )
            offset += shape.numel
        final_give = list(dict.fromkeys(buffer_enum(t) for t in problem.outputs))
        return {
            "steps": steps,
            "buffers": buffers,
            "kinds": used_kinds,
            "graph_inputs": graph_inputs,
            "outputs": out_list,
            "output_size": offset,
            "final_give": final_give,
        }
