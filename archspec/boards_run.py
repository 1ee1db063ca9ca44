"""Instructions per inference on the emulated core: build for a board, run `make qemu`, parse.

`count_instructions(graph, board, weights, split=..., row_tile=...)` writes the C build for
`board` into a temporary folder, cross-compiles it and runs it once on QEMU in its deterministic
`-icount shift=0` mode (one instruction = 1 ns of virtual time). The board's profile.c reads
QEMU's 25 MHz CMSDK timer before and after every step of the memory plan, so a count has a
resolution of one tick (`tick_instructions`, 40 instructions) per interval; the counts are the
same on every run (the emulation is deterministic). MACs per instruction (MAdds / instructions)
shows how far the kernels are from the core's limit (the Cortex-M7's DSP extension does two
16-bit MACs in one SMLAD instruction). `qemu_seconds` is the wall time of `make qemu`.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from archspec.analysis.cost import analyze_cost
from archspec.boards import Board
from archspec.boards_fit import board_fit
from archspec.errors import SpecError
from archspec.graph import Graph
from archspec.options import Split
from archspec.output import write_tree

TOOLS = ("arm-none-eabi-gcc", "qemu-system-arm", "make")
APT_HINT = "apt-get install -y gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm"
RUN_TIMEOUT = 600.0
PREFIX = "archspec-profile: "


@dataclass(frozen=True)
class StepCount:
    """One step of the memory plan on the emulated core."""

    name: str
    nodes: tuple[str, ...]
    madds: int
    instructions: int

    @property
    def macs_per_instruction(self) -> float:
        """MAdds divided by the step's instructions (0 when no instruction was counted)."""
        return self.madds / self.instructions if self.instructions else 0.0


@dataclass(frozen=True)
class InstructionCount:
    """Instructions of one inference, per step, with the input and output conversions."""

    board: str
    machine: str
    dtype: str
    tick_instructions: int
    input: int
    output: int
    total: int
    steps: tuple[StepCount, ...]
    madds: int
    qemu_seconds: float
    stack_bytes: int  # the run's stack use (painted stack) and its heap (newlib's _sbrk)
    heap_bytes: int

    @property
    def macs_per_instruction(self) -> float:
        """The whole inference's MAdds divided by its instructions."""
        return self.madds / self.total if self.total else 0.0

    def summary(self) -> dict[str, Any]:
        """Plain data (the JSON report's `board.instructions`)."""
        return {
            "machine": self.machine,
            "dtype": self.dtype,
            "resolution_instructions": self.tick_instructions,
            "total": self.total,
            "input": self.input,
            "output": self.output,
            "madds": self.madds,
            "macs_per_instruction": round(self.macs_per_instruction, 4),
            "qemu_seconds": round(self.qemu_seconds, 3),
            "stack_bytes": self.stack_bytes,
            "heap_bytes": self.heap_bytes,
            "steps": [
                {
                    "name": s.name,
                    "nodes": list(s.nodes),
                    "madds": s.madds,
                    "instructions": s.instructions,
                    "macs_per_instruction": round(s.macs_per_instruction, 4),
                }
                for s in self.steps
            ],
        }


def missing_tools() -> list[str]:
    """The tools `make arm` / `make qemu` need that are not on PATH."""
    return [tool for tool in TOOLS if shutil.which(tool) is None]


def parse_profile(text: str, steps: int) -> dict[str, Any]:
    """The profile lines of a run: tick size, input, per-step, output and total ticks."""
    out: dict[str, Any] = {"steps": {}}
    for line in text.splitlines():
        if not line.startswith(PREFIX):
            continue
        words = line[len(PREFIX) :].split()
        if words[0] == "tick":
            out["tick"] = int(words[1])
        elif words[0] == "step":
            out["steps"][int(words[1])] = int(words[2])
        else:
            out[words[0]] = int(words[1])
    complete = all(key in out for key in ("tick", "input", "output", "total", "stack", "heap"))
    if not complete or sorted(out["steps"]) != list(range(steps)):
        raise RuntimeError(f"the QEMU run printed no complete profile:\n{text}")
    return out


def run_qemu(folder: Path, input_bytes: bytes) -> tuple[str, float]:
    """`make qemu` in a board build folder on one input; its stdout and QEMU's wall time."""
    (folder / "input.bin").write_bytes(input_bytes)
    build = subprocess.run(
        ["make", "-s", "qemu-elf"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
    )
    if build.returncode != 0:
        raise RuntimeError(f"make qemu-elf failed:\n{build.stdout}{build.stderr}")
    start = time.perf_counter()
    run = subprocess.run(
        ["make", "-s", "qemu", "IN=input.bin", "OUT=output.bin"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
    )
    seconds = time.perf_counter() - start
    if run.returncode != 0:
        raise RuntimeError(f"make qemu failed ({run.returncode}):\n{run.stdout}{run.stderr}")
    return run.stdout, seconds


def count_instructions(
    graph: Graph,
    board: Board,
    weights: Mapping[str, np.ndarray],
    *,
    split: Split = 1,
    row_tile: int | None = None,
    dtype: str = "int8",
    seed: int = 0,
    keep: str | None = None,
) -> InstructionCount:
    """Build `graph` for `board` (`dtype`: the int8 build, calibrated on the default seeded
    inputs, or the float32 one), run it once on QEMU, and count its instructions per step.

    The input is seeded noise (`seed`: int8 values, or standard normal float32). `keep`: build
    in this folder (kept) instead of a temporary one."""
    from archspec.verify import target_files

    missing = missing_tools()
    if missing:
        raise SpecError(
            f"counting instructions needs {', '.join(missing)} on PATH",
            None,
            "--instructions",
            APT_HINT,
        )
    fit = board_fit(graph, board, split, row_tile, dtype)
    rng = np.random.default_rng(seed)
    numel = graph.input.shape.numel
    options: dict[str, object] = {"split": split, "row_tile": row_tile, "board": board}
    if dtype == "int8":
        options["quantize"] = "int8"  # calibrated on the default seeded inputs
        x = rng.integers(-128, 128, size=numel, dtype=np.int8)
    else:
        x = rng.standard_normal(numel).astype("<f4")
    files = target_files(graph, "c", weights, **options)
    with tempfile.TemporaryDirectory(prefix="archspec-qemu-") as tmp:
        folder = Path(keep) if keep is not None else Path(tmp) / "build"
        write_tree(folder, files)
        stdout, seconds = run_qemu(folder, x.tobytes())
    profile = parse_profile(stdout, len(fit.plan.order))
    tick = profile["tick"]
    madds = {layer.name: layer.madds for layer in analyze_cost(graph).layers}
    fused = {fo.name: fo for fo in fit.plan.fused_ops}
    steps = []
    for i, name in enumerate(fit.plan.order):
        nodes = fused[name].nodes
        steps.append(
            StepCount(name, nodes, sum(madds.get(n, 0) for n in nodes), profile["steps"][i] * tick)
        )
    return InstructionCount(
        board=board.name,
        machine="mps2-an500",
        dtype=dtype,
        tick_instructions=tick,
        input=profile["input"] * tick,
        output=profile["output"] * tick,
        total=profile["total"] * tick,
        steps=tuple(steps),
        madds=sum(madds.values()),
        qemu_seconds=seconds,
        stack_bytes=profile["stack"],
        heap_bytes=profile["heap"],
    )


def instructions_text(count: InstructionCount, markdown: bool = False) -> str:
    """The per-step table of a count, for text and markdown reports."""
    head = (
        f"Instructions on QEMU {count.machine} ({count.dtype} build for {count.board}, "
        f"-icount shift=0; resolution {count.tick_instructions} instructions per interval; "
        f"stack used {count.stack_bytes:,} B, heap {count.heap_bytes:,} B)"
    )
    rows = [("input (NCHW -> HWC)", "", "", f"{count.input:,}", "")]
    for s in count.steps:
        rows.append(
            (
                s.name,
                ", ".join(s.nodes) if len(s.nodes) <= 3 else f"{s.nodes[0]} .. {s.nodes[-1]}",
                f"{s.madds:,}",
                f"{s.instructions:,}",
                f"{s.macs_per_instruction:.3f}",
            )
        )
    rows.append(("output (HWC -> NCHW)", "", "", f"{count.output:,}", ""))
    rows.append(
        (
            "total",
            "",
            f"{count.madds:,}",
            f"{count.total:,}",
            f"{count.macs_per_instruction:.3f}",
        )
    )
    header = ("step", "nodes", "MAdds", "instructions", "MACs/instr")
    if markdown:
        lines = [f"## {head}", "", "| " + " | ".join(header) + " |", "|---|---|---:|---:|---:|"]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
    else:
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        fmt = [str.ljust, str.ljust, str.rjust, str.rjust, str.rjust]
        lines = [head, ""]
        for r in [header, *rows]:
            lines.append("  ".join(f(v, w) for f, v, w in zip(fmt, r, widths, strict=True)))
    return "\n".join(lines) + "\n"
