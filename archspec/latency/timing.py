"""Measurement settings and results as plain data (picklable: a remote task receives the settings
and returns the timing).

Spread: the interquartile range (75th minus 25th percentile, numpy's linear interpolation) of the
timed runs, and their minimum; the median is the reported latency.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from archspec.errors import Location, SpecError
from archspec.options import Split

RUNTIMES = ("ort", "c")
DEFAULT_REPEATS = 30
MAX_REPEATS = 100_000
MAX_THREADS = 256


@dataclass(frozen=True)
class MeasureSettings:
    """How to time a graph: runtime (`ort` or `c`), threads (ORT's intra- and inter-op pools;
    the C target is single-threaded), timed runs, warm-up runs, and the C target's split and
    row tile."""

    runtime: str
    threads: int = 1
    repeats: int = DEFAULT_REPEATS
    warmup: int = 3
    split: Split = 1
    row_tile: int | None = None

    def __post_init__(self) -> None:
        if self.runtime not in RUNTIMES:
            raise SpecError(
                f"found {self.runtime!r}; expected one of {', '.join(RUNTIMES)}",
                Location("--measure"),
            )
        for name, value, top in (
            ("--threads", self.threads, MAX_THREADS),
            ("--repeats", self.repeats, MAX_REPEATS),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= top:
                raise SpecError(f"found {value!r}; expected 1 to {top}", Location(name))

    def key(self) -> tuple[Any, ...]:
        """What makes two measurements of one graph comparable (the cache key's settings)."""
        return (self.runtime, self.threads, self.repeats, self.warmup, self.split, self.row_tile)


@dataclass(frozen=True)
class Timing:
    """The timed runs of one graph, summarised in milliseconds."""

    median_ms: float
    p25_ms: float
    p75_ms: float
    min_ms: float
    repeats: int

    @property
    def iqr_ms(self) -> float:
        """Interquartile range of the runs."""
        return self.p75_ms - self.p25_ms

    def as_dict(self) -> dict[str, float | int]:
        """JSON-ready fields (rounded to nanoseconds)."""
        return {
            "median_ms": round(self.median_ms, 6),
            "iqr_ms": round(self.iqr_ms, 6),
            "min_ms": round(self.min_ms, 6),
            "repeats": self.repeats,
        }


def summarise(samples_ns: Sequence[int | float]) -> Timing:
    """Median, quartiles and minimum of run times given in nanoseconds."""
    a = np.asarray(samples_ns, dtype=np.float64) / 1e6
    if a.size == 0 or not np.all(np.isfinite(a)):
        raise RuntimeError("no finite timings")
    p25, med, p75 = (round(float(v), 6) for v in np.percentile(a, [25, 50, 75]))
    return Timing(med, p25, p75, round(float(a.min()), 6), int(a.size))
