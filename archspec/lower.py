"""Spec → Graph: repeats, strides, the t = 1 and residual rules, channel rounding, shapes.

Width multiplier, rounding and `num_classes` are applied here, once; every later stage sees
concrete channel counts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, NoReturn

from archspec import expr
from archspec.compose import inner_tensor
from archspec.errors import SpecError
from archspec.graph import INPUT, Block, GNode, Graph
from archspec.names import identifier_problem
from archspec.ops import GRAPH_OPS, LAYER_KINDS
from archspec.ops.base import Role, Shape, ShapeError
from archspec.ops.common import DEFAULT_PART
from archspec.spec import CHANNEL_NAMES, MAX_CHANNELS, Row, Spec

MAX_NODES = 20_000
MAX_TENSOR_ELEMENTS = 1 << 31  # any one tensor: the network input, an activation, a weight array
MAX_WEIGHT_ELEMENTS = 1 << 31  # all weight arrays together (8 GiB as float32)


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round to the nearest multiple of `divisor` (at least `min_value`); if that lost more
    than 10 %, go one divisor up. The rule of the TF-slim and torchvision references."""
    min_value = divisor if min_value is None else min_value
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


@dataclass(frozen=True)
class ChannelCount:
    """How a row's `c` became a channel count.

    `written` is the spec's value; `scaled` is written × width multiplier before rounding (None
    when the row is not width-scaled: `num_classes`, an expression, `scale: none`); `value` is
    the channel count the graph uses."""

    written: int | str
    scaled: float | None
    value: int

    @property
    def rounded_from(self) -> float | None:
        """The unrounded width-scaled value, when rounding changed it (else None)."""
        if self.scaled is None or self.scaled == self.value:
            return None
        return int(self.scaled) if float(self.scaled).is_integer() else self.scaled


def resolve_channels(spec: Spec, row: Row, value: int | str | None = None) -> ChannelCount:
    """A row's `c` (or `value`): a count (`num_classes` or an expression of the header's integer
    fields) is exact, never width-scaled nor rounded, whatever `scale` says; a width is scaled
    by the rule the row's `scale` picks, then rounded by the spec's rounding. Raises
    `expr.ExprError` for a bad expression."""
    value = row.fields["c"] if value is None else value
    if isinstance(value, str):
        names = {name: getattr(spec, name) for name in CHANNEL_NAMES}
        return ChannelCount(value, None, expr.evaluate(value, names))
    scale = row.fields.get("scale", "width")
    width = spec.width_multiplier
    if scale == "last_layer":
        rule = spec.last_layer
        apply = rule == "always" or (rule == "above_one" and width > 1.0)
        scale = "width" if apply else "none"
    if scale != "width":
        return ChannelCount(value, None, int(value))
    scaled = value * width
    return ChannelCount(value, scaled, make_divisible(scaled, spec.divisor, spec.min_channels))


class _Lowering:
    """The context layer kinds lower through (their only way to add nodes)."""

    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self.nodes: dict[str, GNode] = {}
        self.blocks: list[Block] = []
        self.block_members: dict[str, list[str]] = {}
        self.row_outputs: dict[int, str] = {}
        self.row_names: dict[str, int] = {}
        self.block_count = 0
        self.counts: dict[int, ChannelCount] = {}
        self.weight_elements = 0
        h, w = spec.resolution
        if spec.in_channels * h * w > MAX_TENSOR_ELEMENTS:
            raise SpecError(
                f"the input would hold {spec.in_channels * h * w:,} elements "
                f"({spec.in_channels}×{h}×{w}); expected at most {MAX_TENSOR_ELEMENTS:,}",
                spec.locs.get("input", spec.rows[0].loc),
                "input",
                "lower the resolution or the channels",
            )
        self.nodes[INPUT] = GNode(
            INPUT,
            "input",
            (),
            Shape(spec.in_channels, h, w),
            MappingProxyType({"c": spec.in_channels, "h": h, "w": w}),
            -1,
            None,
            None,
            spec.locs.get("input", spec.rows[0].loc),
        )
        self.prev = INPUT

    # -- helpers for layer kinds -------------------------------------------------------------
    def fail(self, row: Row, field: str, message: str) -> NoReturn:
        """Raise a located error about a field of `row`."""
        raise SpecError(message, row.where(field), f"layers[{row.index}].{field}")

    def make_divisible(self, value: float) -> int:
        """The spec's rounding rule."""
        return make_divisible(value, self.spec.divisor, self.spec.min_channels)

    def channels(self, row: Row, value: int | str) -> int:
        """Resolve a row's `c` (see `resolve_channels`); record how, for errors and reports."""
        try:
            count = resolve_channels(self.spec, row, value)
        except expr.ExprError as exc:
            self.fail(row, "c", f"c: {value!r}: {exc}")
        if count.value > MAX_CHANNELS or count.value < 1:
            after = "after scaling" if count.scaled is not None else f"from {value!r}"
            self.fail(row, "c", f"{count.value} channels {after}; expected 1 to {MAX_CHANNELS}")
        self.counts[row.index] = count
        return count.value

    def resolve(self, row: Row, name: str, field: str = "from") -> str:
        """The tensor a row name refers to (only rows above this one can be referenced)."""
        if name == INPUT:
            return INPUT
        if "." in name:  # `<block>.<part>`: a tensor inside a block above (archspec.compose)
            found, why_not = inner_tensor(name, self.nodes)
            if found is None:
                self.fail(row, field, f"unknown tensor {name!r}: {why_not}")
            return found
        if name not in self.row_names:
            later = [r for r in self.spec.rows[row.index :] if r.name == name]
            why = (
                "it is defined later (references must point upwards; cycles are impossible)"
                if later
                else "no row has that name"
            )
            self.fail(row, field, f"unknown row {name!r}: {why}")
        return self.row_outputs[self.row_names[name]]

    def source(self, row: Row) -> str:
        """The single input tensor of a row: `from`, or the previous row."""
        return self.resolve(row, row.inputs[0]) if row.inputs else self.prev

    def sources(self, row: Row) -> list[str]:
        """All input tensors of a merging row."""
        return [self.resolve(row, name) for name in row.inputs]

    def shape(self, tensor: str) -> Shape:
        """The inferred shape of a tensor."""
        return self.nodes[tensor].shape

    def repeat_name(self, row: Row, i: int) -> str:
        """Node name for repeat i of a row (the row's name when it has a single node)."""
        base = row.name or f"{LAYER_KINDS[row.kind].auto_prefix}{row.index}"
        return base if row.fields.get("n", 1) == 1 else f"{base}_{i}"

    def block_name(self, row: Row, i: int) -> str:
        """Name of repeat i of a bottleneck row: numbered over the network unless named."""
        if row.name:
            return row.name if row.fields["n"] == 1 else f"{row.name}_{i}"
        name = f"block{self.block_count}"
        self.block_count += 1
        return name

    def emit(
        self,
        name: str,
        op: str,
        inputs: Sequence[str],
        attrs: Mapping[str, Any],
        *,
        row: Row,
        block: str | None = None,
        role: Role | None = None,
    ) -> str:
        """Add one graph node; its shape is inferred here and every problem is located."""
        if name in self.nodes:
            raise SpecError(
                f"duplicate name {name!r} (the graph already has a node of that name)",
                row.where("name"),
                f"layers[{row.index}].name",
            )
        if len(self.nodes) >= MAX_NODES:
            raise SpecError(
                f"the graph would have more than {MAX_NODES} nodes",
                row.loc,
                f"layers[{row.index}]",
                "this row crosses the limit; lower its `n` (or the rows that repeat) or split "
                "the network into smaller specs",
            )
        full = dict(attrs)
        graph_op = GRAPH_OPS[op]
        try:
            shape = graph_op.infer(full, [self.nodes[i].shape for i in inputs])
        except ShapeError as exc:
            field = exc.field or ("from" if graph_op.max_inputs is None else "op")
            message = str(exc)
            if len(inputs) > 1:
                message += self.size_origins(inputs)
            raise SpecError(message, row.where(field), f"layers[{row.index}].{field}") from None
        if shape.numel > MAX_TENSOR_ELEMENTS:
            raise SpecError(
                f"{name} would hold {shape.numel:,} elements; expected at most "
                f"{MAX_TENSOR_ELEMENTS:,}",
                row.loc,
                f"layers[{row.index}]",
            )
        ins = [self.nodes[i].shape for i in inputs]
        weight_specs = tuple(graph_op.weights(full, ins, shape))
        for weight in weight_specs:
            count = math.prod(weight.shape)
            self.weight_elements += count
            if count > MAX_TENSOR_ELEMENTS or self.weight_elements > MAX_WEIGHT_ELEMENTS:
                raise SpecError(
                    f"{name}.{weight.name} would hold {count:,} weights (the network "
                    f"{self.weight_elements:,} so far); expected at most {MAX_TENSOR_ELEMENTS:,} "
                    f"in one array and {MAX_WEIGHT_ELEMENTS:,} in all",
                    row.loc,
                    f"layers[{row.index}]",
                    "lower the channels, the kernel size or the width multiplier",
                )
        if block is not None:
            self.block_members.setdefault(block, []).append(name)
        part = row.fields.get("part") or DEFAULT_PART
        self.nodes[name] = GNode(
            name,
            op,
            tuple(inputs),
            shape,
            MappingProxyType(full),
            row.index,
            block,
            role,
            row.loc,
            part,
            weight_specs,
        )
        return name

    def size_origins(self, inputs: Sequence[str]) -> str:
        """Where each input of a merge got its spatial size: the nearest row up its chain whose
        stride or padding changed it (what to fix when a merge's sizes differ)."""
        sizes = {(self.nodes[i].shape.h, self.nodes[i].shape.w) for i in inputs}
        if len(sizes) < 2:
            return ""
        parts = []
        for tensor in dict.fromkeys(inputs):
            node = self.nodes[tensor]
            while node.inputs and (node.shape.h, node.shape.w) == (
                self.nodes[node.inputs[0]].shape.h,
                self.nodes[node.inputs[0]].shape.w,
            ):
                node = self.nodes[node.inputs[0]]
            h, w = node.shape.h, node.shape.w
            if not node.inputs:
                parts.append(f"{tensor} is {h}×{w} from the network input")
                continue
            a = node.attrs
            how = ", ".join(
                f"{key} {a[key]}" for key in ("k", "s", "padding", "dilation") if key in a
            )
            parts.append(
                f"{tensor} is {h}×{w} since {node.name} ({node.op}, {how}; line {node.loc.line})"
            )
        return " (" + "; ".join(parts) + ")"

    def add_block(
        self, name: str, row: Row, src: str, out: str, *, kind: str, t: int, residual: bool
    ) -> None:
        """Record a fusable block of `kind` (its nodes are those emitted with `block=name`)."""
        members = tuple(self.block_members.pop(name, ()))
        self.blocks.append(Block(name, row.index, src, out, members, t, residual, kind))

    def finish(self, row: Row, out: str) -> None:
        """Mark `out` as the row's output; later rows read it by the row's name."""
        if row.name:
            if row.name in self.row_names:
                first = self.spec.rows[self.row_names[row.name]]
                raise SpecError(
                    f"duplicate row name {row.name!r} (first used at line {first.loc.line})",
                    row.where("name"),
                    f"layers[{row.index}].name",
                )
            self.row_names[row.name] = row.index
        self.row_outputs[row.index] = out
        self.prev = out


def lower(spec: Spec) -> Graph:
    """Lower a Spec into a frozen compute graph with every shape inferred."""
    ctx = _Lowering(spec)
    for row in spec.rows:
        if row.name:
            problem = identifier_problem(row.name)
            if problem:  # already checked by the loader; kept as a guard for built-in-memory specs
                ctx.fail(row, "name", f"{row.name!r} cannot be a name: {problem}")
        LAYER_KINDS[row.kind].lower(ctx, row)
    last = spec.rows[-1]
    if spec.outputs:
        try:
            outputs = tuple(ctx.resolve(last, name, "outputs") for name in spec.outputs)
        except SpecError as exc:  # name the `outputs:` line, not the last row's
            where = spec.locs.get("outputs", exc.location)
            raise SpecError(exc.message, where, "outputs", exc.hint) from None
        repeated = sorted({n for n in spec.outputs if spec.outputs.count(n) > 1})
        if repeated:
            raise SpecError(
                f"output {repeated[0]!r} is listed twice; expected each output once",
                spec.locs["outputs"],
                "outputs",
            )
    else:
        outputs = (ctx.row_outputs[last.index],)
    readers: dict[str, list[str]] = {}
    for node in ctx.nodes.values():
        for src in dict.fromkeys(node.inputs):
            readers.setdefault(src, []).append(node.name)
    _check_all_used(spec, ctx, outputs)
    return Graph(
        spec,
        tuple(ctx.nodes.values()),
        tuple(ctx.blocks),
        outputs,
        MappingProxyType(dict(ctx.row_outputs)),
        MappingProxyType(dict(ctx.nodes)),
        MappingProxyType({k: tuple(v) for k, v in readers.items()}),
    )


def _check_all_used(spec: Spec, ctx: _Lowering, outputs: Sequence[str]) -> None:
    """A row whose result reaches no output is almost always a mistake in `from` or a forgotten
    `outputs:`. The error names the dangling end of an unused chain: the row whose output no row
    reads (the rows feeding it are unused only because it is)."""
    needed = set(outputs)
    for node in reversed(list(ctx.nodes.values())):  # spec order is topological
        if node.name in needed:
            needed.update(node.inputs)
    read = {src for node in ctx.nodes.values() for src in node.inputs}
    unused = [row for row in spec.rows if ctx.row_outputs[row.index] not in needed]
    if not unused:
        return
    ends = [row for row in unused if ctx.row_outputs[row.index] not in read]
    row = (ends or unused)[0]
    upstream: set[str] = set()
    stack = [ctx.row_outputs[row.index]]
    while stack:
        for src in ctx.nodes[stack.pop()].inputs:
            if src not in needed and src not in upstream:
                upstream.add(src)
                stack.append(src)
    feeding = sum(ctx.row_outputs[r.index] in upstream for r in unused)
    chain = f" (it ends a chain of {feeding + 1} unused rows)" if feeding else ""
    listed = "the network's outputs" if spec.outputs else "the last row, the default output"
    raise SpecError(
        f"the output of this {row.kind} row is never used{chain}",
        row.loc,
        f"layers[{row.index}]",
        f"list it under `outputs:` (now only {listed}), or read it with `from:` in a later row",
    )
