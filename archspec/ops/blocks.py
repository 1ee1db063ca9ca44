"""Fusable blocks: a row kind that lowers to several graph ops which may run as one.

A fused block keeps its inner tensors disposable (the paper's §5.1): its expansion channels are
processed in groups (a `split`), so that only one group of each inner tensor exists at a time,
and optionally in bands of output rows (a `row_tile`). The memory model
(`archspec.analysis.memory`) and the C target handle fused blocks only through a `BlockKind`:
which roles its members play, which node's channels are split, which node's window sets the rows
a band reads, what the workspace of one group holds, and whether the first-layer trick (a stem
conv playing a missing member) applies.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from archspec.ops.base import Role


def band_rows(dw: Any, in_rows: int, row_tile: int | None) -> int:
    """Rows of the depthwise input that one band of `row_tile` output rows of `dw` reads.

    ``(R - 1)·s + dilation·(k - 1) + 1``, at most `in_rows`; all `in_rows` when untiled or when
    R covers the whole output (one band is the whole tensor).
    """
    if row_tile is None or row_tile >= dw.shape.h:
        return in_rows
    a = dw.attrs
    return min(in_rows, (row_tile - 1) * a["s"] + a["dilation"] * (a["k"] - 1) + 1)


@dataclass(frozen=True)
class WorkspacePart:
    """One group of one member's output, held while the group is computed.

    `rows` says how many rows of it a row-tiled band needs: ``"input"``, the rows of the banded
    op's input that one band of output rows reads (this member feeds the banded op); ``"output"``,
    the band's own output rows (this member is the banded op).
    """

    role: Role
    rows: str


@dataclass(frozen=True)
class BlockKind:
    """The declaration of a fusable block, made by its row kind's module.

    Attributes:
        name: the row kind (and the `Block.kind` of its blocks).
        roles: every role a member may play, in execution order.
        split_role: the member whose output channels a split divides into groups.
        band_role: the spatial member whose kernel, stride and dilation set a band's input rows.
        workspace: the parts of one group's workspace, in layout order.
        linear_roles: members that must be linear, since the fused op accumulates their
            outputs group by group.
        stem_role: the role a stem conv plays under the first-layer trick (None: no trick);
            the trick applies to a block with no member of that role.
        c_kernel: the C target's kernel description of a fused op of this kind (see
            `archspec.targets.c`); None if the C target cannot run it fused.
    """

    name: str
    roles: tuple[Role, ...]
    split_role: Role
    band_role: Role
    workspace: tuple[WorkspacePart, ...]
    linear_roles: tuple[Role, ...]
    stem_role: Role | None
    c_kernel: Callable[..., Mapping[str, Any]] | None = None

    def __post_init__(self) -> None:
        for role in (self.split_role, self.band_role, *self.linear_roles):
            if role not in self.roles:
                raise ValueError(f"block kind {self.name}: role {role} is not one of its roles")
        for part in self.workspace:
            if part.role not in self.roles or part.rows not in ("input", "output"):
                raise ValueError(f"block kind {self.name}: bad workspace part {part}")
