"""The machine a latency was measured on: CPU model, core count and the instruction-set flags that
change what the kernels compile to or run as (from /proc/cpuinfo where there is one)."""

from __future__ import annotations

import os
import platform
from functools import lru_cache
from typing import Any

# Vector extensions that decide the speed of the C kernels and of ONNX Runtime's MLAS kernels.
FLAGS = (
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512bw",
    "avx512_vnni",
    "avx512_bf16",
    "amx_tile",
    "asimd",
    "asimddp",
    "sve",
)
MACHINE_KEYS = ("cpu", "cores", "flags")


def _cpuinfo() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            return f.read(1 << 20)
    except OSError:
        return ""


@lru_cache(maxsize=1)
def machine_info() -> dict[str, Any]:
    """`{"cpu": model name, "cores": logical CPUs, "flags": the FLAGS this CPU has}`."""
    model = ""
    flags: set[str] = set()
    for line in _cpuinfo().splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("model name", "cpu model", "hardware") and not model:
            model = value.strip()
        elif key in ("flags", "features") and not flags:
            flags = set(value.split())
    return {
        "cpu": model or platform.processor() or platform.machine() or "unknown",
        "cores": os.cpu_count() or 1,
        "flags": [f for f in FLAGS if f in flags],
    }
