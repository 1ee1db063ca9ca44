"""Latency tables: every distinct unit (`archspec.latency.units`) of a set of graphs timed once as
a one-unit graph, and predictions from them.

A table file is JSON, one entry per line::

    {"format": "archspec-latency-table", "version": 1, "runtime": "ort",
     "runtime_version": "onnxruntime 1.23.2", "machine": {"cpu": ..., "cores": 2, "flags": [...]},
     "threads": 1, "repeats": 30, "warmup": 3, "split": 1, "row_tile": null, "source": "mcu",
     "overhead": {"median_ms": ..., "iqr_ms": ..., "min_ms": ..., "repeats": 30},
     "calibration": {"factor": 1.12, "variants": [{"id": ..., "measured_ms": ...,
                     "units_ms": ...}, ...]},
     "entries": [
      {"id": <16 hex>, "kind": "block", "what": "bottleneck", "input_shape": [C, H, W],
       "output_shape": [C, H, W], "median_ms": ..., "iqr_ms": ..., "min_ms": ..., "repeats": 30,
       "graph": <the unit graph's signature, whose digest is the id>},
      ...]}

Prediction: a graph's latency is the overhead plus the context factor times the sum over its
units of (entry median − overhead). Every entry was timed as a whole inference and so carries one
per-inference overhead, which the whole graph pays once, not once per unit. A unit timed alone
in a loop finds its weights and input in the private caches; inside a whole network the units
before it ran in between and evicted them. The context factor, measured when the table is built,
is the median over a few calibration variants (measured whole) of (whole − overhead) / (sum of
their units net of overhead); `--calibrate 0` leaves it at 1. A unit missing from the table is
reported (its id), never guessed. The same table and graph always give the same prediction.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from archspec.errors import Location, SpecError
from archspec.graph import Graph
from archspec.latency.machine import MACHINE_KEYS, machine_info
from archspec.latency.measure import runtime_version, time_graphs, time_overhead
from archspec.latency.timing import MAX_REPEATS, MAX_THREADS, RUNTIMES, MeasureSettings, Timing
from archspec.latency.units import (
    Unit,
    describe,
    digest_of,
    graph_digest,
    signature,
    units_of,
)
from archspec.yamlsrc import Node, read_yaml_file
from archspec.yamlsrc import describe as described

FORMAT = "archspec-latency-table"
VERSION = 1
TIMING_KEYS = ("median_ms", "iqr_ms", "min_ms", "repeats")
ENTRY_KEYS = ("id", "kind", "what", "input_shape", "output_shape", *TIMING_KEYS, "graph")
HEADER_KEYS = (
    "format",
    "version",
    "runtime",
    "runtime_version",
    "machine",
    "threads",
    "repeats",
    "warmup",
    "split",
    "row_tile",
    "source",
    "overhead",
    "calibration",
    "entries",
)
CALIBRATION_KEYS = ("factor", "variants")
CALIBRATION_VARIANT_KEYS = ("id", "measured_ms", "units_ms")
MAX_CALIBRATION = 1000
_ID = re.compile(r"^[0-9a-f]{16}$")


@dataclass(frozen=True)
class Entry:
    """One timed unit."""

    id: str
    kind: str
    what: str
    input_shape: tuple[int, int, int]
    output_shape: tuple[int, int, int]
    timing: Timing
    graph: Mapping[str, Any]


@dataclass(frozen=True)
class LatencyTable:
    """A table: how it was measured, the per-inference overhead, and its entries by id."""

    runtime: str
    runtime_version: str
    machine: Mapping[str, Any]
    threads: int
    repeats: int
    warmup: int
    split: int | str
    row_tile: int | None
    source: str
    overhead: Timing
    entries: Mapping[str, Entry] = field(repr=False)
    factor: float = 1.0  # the context factor (see the module docstring)
    calibration: tuple[tuple[str, float, float], ...] = field(default=(), repr=False)

    def __repr__(self) -> str:
        # short and stable: a sweep's description of its work quotes it (resume checks it)
        return (
            f"LatencyTable({self.runtime!r}, {self.source!r}, {len(self.entries)} entries, "
            f"sha256 {digest_of(render_table(self))})"
        )

    def settings(self) -> MeasureSettings:
        """The measure settings the table was built with."""
        return MeasureSettings(
            self.runtime, self.threads, self.repeats, self.warmup, self.split, self.row_tile
        )


@dataclass(frozen=True)
class Prediction:
    """A predicted latency: the sum of medians (None when a unit is missing), each unit's share,
    the ids of the units the table lacks, and the same sum over the fastest runs (`min_ms`: the
    entries' and the overhead's minima, no context factor), which a loaded machine disturbs
    least."""

    latency_ms: float | None
    units: tuple[tuple[str, str, float | None], ...]  # (unit op name, id, ms net of overhead)
    missing: tuple[str, ...]
    min_ms: float | None = None


# -- building ---------------------------------------------------------------------------------


def distinct_units(graphs: Iterable[Graph], split: int | str) -> dict[str, Unit]:
    """Every distinct unit of `graphs` by digest, in first-seen order."""
    found: dict[str, Unit] = {}
    for g in graphs:
        for u in units_of(g, split):
            found.setdefault(u.digest, u)
    return found


def build_table(
    graphs: Sequence[Graph],
    settings: MeasureSettings,
    source: str,
    progress: Callable[[int], None] | None = None,
    calibrate: int = 0,
) -> LatencyTable:
    """Time every distinct unit of `graphs` once (and the runtime's overhead), and measure
    `calibrate` of the graphs whole (evenly spaced in `graphs`) for the context factor."""
    units = distinct_units(graphs, settings.split)
    items = list(units.values())
    timings: list[Timing] = []
    step = 24
    for start in range(0, len(items), step):
        batch = items[start : start + step]
        timings += time_graphs([u.graph for u in batch], settings)
        if progress is not None:
            progress(len(batch))
    entries = {}
    for u, t in zip(items, timings, strict=True):
        d = describe(u)
        entries[u.digest] = Entry(
            u.digest,
            d["kind"],
            d["what"],
            tuple(d["input_shape"]),
            tuple(d["output_shape"]),
            t,
            signature(u.graph),
        )
    table = LatencyTable(
        settings.runtime,
        runtime_version(settings.runtime),
        machine_info(),
        settings.threads,
        settings.repeats,
        settings.warmup,
        settings.split,
        settings.row_tile,
        source,
        time_overhead(settings),
        entries,
    )
    k = min(calibrate, len(graphs))
    if k == 0:
        return table
    picked = list({id(g): g for g in (graphs[i * len(graphs) // k] for i in range(k))}.values())
    whole = time_graphs(picked, settings)
    rows = []
    for g, t in zip(picked, whole, strict=True):
        net = predict(table, g).latency_ms
        assert net is not None  # every unit of `graphs` is in the table
        rows.append((graph_digest(g), t.median_ms, round(net - table.overhead.median_ms, 6)))
    return dataclasses.replace(
        table, factor=context_factor(rows, table.overhead.median_ms), calibration=tuple(rows)
    )


def context_factor(rows: Sequence[tuple[str, float, float]], overhead: float) -> float:
    """The median of (measured − overhead) / units over the calibration rows (rounded to 1e-4
    so that the file holds it exactly)."""
    ratios = [(m - overhead) / u for _, m, u in rows if u > 0]
    return round(statistics.median(ratios), 4) if ratios else 1.0


def render_table(table: LatencyTable) -> str:
    """The table as JSON text, one entry per line (stable: same table, same text)."""
    head = {
        "format": FORMAT,
        "version": VERSION,
        "runtime": table.runtime,
        "runtime_version": table.runtime_version,
        "machine": dict(table.machine),
        "threads": table.threads,
        "repeats": table.repeats,
        "warmup": table.warmup,
        "split": table.split,
        "row_tile": table.row_tile,
        "source": table.source,
        "overhead": table.overhead.as_dict(),
        "calibration": {
            "factor": table.factor,
            "variants": [
                {"id": i, "measured_ms": m, "units_ms": u} for i, m, u in table.calibration
            ],
        },
    }
    lines = ["{"]
    for key, value in head.items():
        lines.append(f" {json.dumps(key)}: {json.dumps(value)},")
    lines.append(' "entries": [')
    rows = []
    for e in table.entries.values():
        row = {
            "id": e.id,
            "kind": e.kind,
            "what": e.what,
            "input_shape": list(e.input_shape),
            "output_shape": list(e.output_shape),
            **e.timing.as_dict(),
            "graph": e.graph,
        }
        rows.append("  " + json.dumps(row))
    lines.append(",\n".join(rows))
    lines.append(" ]")
    lines.append("}")
    return "\n".join(line for line in lines if line) + "\n"


# -- prediction -------------------------------------------------------------------------------


def predict(table: LatencyTable, graph: Graph) -> Prediction:
    """A graph's predicted latency from `table` (see the module docstring)."""
    overhead = table.overhead.median_ms
    shares: list[tuple[str, str, float | None]] = []
    missing: list[str] = []
    for u in units_of(graph, table.split):
        entry = table.entries.get(u.digest)
        if entry is None:
            missing.append(u.digest)
            shares.append((u.op.name, u.digest, None))
        else:
            shares.append((u.op.name, u.digest, max(0.0, entry.timing.median_ms - overhead)))
    if missing:
        return Prediction(None, tuple(shares), tuple(dict.fromkeys(missing)))
    net = math.fsum(s for _, _, s in shares if s is not None)
    low = table.overhead.min_ms
    fastest = low + math.fsum(
        max(0.0, table.entries[uid].timing.min_ms - low) for _, uid, _ in shares
    )
    return Prediction(round(overhead + table.factor * net, 6), tuple(shares), (), round(fastest, 6))


# -- reading and validation -------------------------------------------------------------------


def _fail(message: str, node: Node | Location, field: str, hint: str | None = None) -> SpecError:
    loc = node.loc if isinstance(node, Node) else node
    return SpecError(message, loc, field, hint)


def _mapping(node: Node, field: str, keys: Sequence[str], what: str) -> dict[str, Node]:
    if not isinstance(node.value, dict):
        raise _fail(f"found {described(node.plain())}; expected {what} (a mapping)", node, field)
    items = {k: v for k, (_, v) in node.value.items()}
    for key, (kloc, _) in node.value.items():
        if key not in keys:
            raise _fail(
                f"unknown key {key!r} in {what}; expected only {', '.join(keys)}",
                kloc,
                f"{field}.{key}" if field else key,
            )
    for key in keys:
        if key not in items:
            raise _fail(f"missing key {key!r} in {what}", node, f"{field}.{key}" if field else key)
    return items


def _int(node: Node, field: str, low: int, high: int) -> int:
    v = node.value
    if isinstance(v, bool) or not isinstance(v, int) or not low <= v <= high:
        raise _fail(
            f"found {described(node.plain())}; expected an integer {low} to {high}", node, field
        )
    return v


def _text(node: Node, field: str, limit: int = 200) -> str:
    v = node.value
    if not isinstance(v, str) or len(v) > limit:
        raise _fail(
            f"found {described(node.plain())}; expected text of at most {limit} characters",
            node,
            field,
        )
    return v


def _ms(node: Node, field: str, positive: bool) -> float:
    v = node.value
    ok = isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
    if not ok or v < 0 or (positive and v <= 0) or v > 3.6e6:
        bound = "above 0" if positive else "at least 0"
        raise _fail(
            f"found {described(node.plain())}; expected milliseconds {bound} (at most an hour)",
            node,
            field,
        )
    return float(v)


def _timing(items: Mapping[str, Node], field: str) -> Timing:
    median = _ms(items["median_ms"], f"{field}.median_ms", True)
    iqr = _ms(items["iqr_ms"], f"{field}.iqr_ms", False)
    low = _ms(items["min_ms"], f"{field}.min_ms", True)
    repeats = _int(items["repeats"], f"{field}.repeats", 1, MAX_REPEATS)
    if low > median:
        raise _fail(
            f"min_ms {low} is above median_ms {median}; expected min <= median",
            items["min_ms"],
            f"{field}.min_ms",
        )
    return Timing(median, median - iqr / 2, median + iqr / 2, low, repeats)


def _shape(node: Node, field: str) -> tuple[int, int, int]:
    if not isinstance(node.value, list) or len(node.value) != 3:
        raise _fail(f"found {described(node.plain())}; expected [C, H, W]", node, field)
    c, h, w = (_int(n, field, 1, 1 << 31) for n in node.value)
    return (c, h, w)


def _machine(node: Node) -> dict[str, Any]:
    items = _mapping(node, "machine", MACHINE_KEYS, "the machine")
    cpu = _text(items["cpu"], "machine.cpu")
    cores = _int(items["cores"], "machine.cores", 1, 1 << 16)
    flags_node = items["flags"]
    if not isinstance(flags_node.value, list) or len(flags_node.value) > 64:
        raise _fail("expected a list of CPU flags", flags_node, "machine.flags")
    flags = [_text(f, "machine.flags", 40) for f in flags_node.value]
    return {"cpu": cpu, "cores": cores, "flags": flags}


def read_table(path: str) -> LatencyTable:
    """Read and validate a table file; every problem is a located `SpecError`."""
    root = read_yaml_file(path)
    # what the file is and its version first: another version may have other keys
    head = root.value if isinstance(root.value, dict) else {}
    fmt = head["format"][1] if "format" in head else None
    if fmt is not None and fmt.value != FORMAT:
        raise _fail(f"found {described(fmt.plain())}; expected {FORMAT!r}", fmt, "format")
    version = head["version"][1] if "version" in head else None
    if version is not None and (version.value != VERSION or isinstance(version.value, bool)):
        raise _fail(
            f"found version {described(version.plain())}; this archspec reads version {VERSION}",
            version,
            "version",
            "rebuild the table with `archspec latency-table`",
        )
    items = _mapping(root, "", HEADER_KEYS, "a latency table")
    runtime = items["runtime"]
    if runtime.value not in RUNTIMES:
        raise _fail(
            f"found {described(runtime.plain())}; expected one of {', '.join(RUNTIMES)}",
            runtime,
            "runtime",
        )
    split_node = items["split"]
    split = split_node.value
    if split != "n" and (isinstance(split, bool) or not isinstance(split, int) or split < 1):
        raise _fail(
            f"found {described(split_node.plain())}; expected a positive integer or n",
            split_node,
            "split",
        )
    tile_node = items["row_tile"]
    row_tile = None if tile_node.value is None else _int(tile_node, "row_tile", 1, 1 << 20)
    overhead_node = items["overhead"]
    overhead = _timing(_mapping(overhead_node, "overhead", TIMING_KEYS, "the overhead"), "overhead")
    factor, calibration = _calibration(items["calibration"], overhead.median_ms)
    entries_node = items["entries"]
    if not isinstance(entries_node.value, list):
        raise _fail("expected a list of entries", entries_node, "entries")
    entries: dict[str, Entry] = {}
    for i, node in enumerate(entries_node.value):
        entry = _entry(node, f"entries[{i}]")
        if entry.id in entries:
            raise _fail(f"duplicate entry id {entry.id}", node, f"entries[{i}].id")
        entries[entry.id] = entry
    return LatencyTable(
        runtime.value,
        _text(items["runtime_version"], "runtime_version"),
        _machine(items["machine"]),
        _int(items["threads"], "threads", 1, MAX_THREADS),
        _int(items["repeats"], "repeats", 1, MAX_REPEATS),
        _int(items["warmup"], "warmup", 0, MAX_REPEATS),
        split,
        row_tile,
        _text(items["source"], "source"),
        overhead,
        entries,
        factor,
        calibration,
    )


def _calibration(node: Node, overhead: float) -> tuple[float, tuple[tuple[str, float, float], ...]]:
    items = _mapping(node, "calibration", CALIBRATION_KEYS, "the calibration")
    variants = items["variants"]
    if not isinstance(variants.value, list) or len(variants.value) > MAX_CALIBRATION:
        raise _fail(
            f"expected a list of at most {MAX_CALIBRATION} calibration variants",
            variants,
            "calibration.variants",
        )
    rows = []
    for i, v in enumerate(variants.value):
        field_ = f"calibration.variants[{i}]"
        vi = _mapping(v, field_, CALIBRATION_VARIANT_KEYS, "a calibration variant")
        vid = vi["id"]
        if not isinstance(vid.value, str) or not _ID.match(vid.value):
            raise _fail("expected 16 lowercase hex digits", vid, f"{field_}.id")
        rows.append(
            (
                vid.value,
                _ms(vi["measured_ms"], f"{field_}.measured_ms", True),
                _ms(vi["units_ms"], f"{field_}.units_ms", False),
            )
        )
    fnode = items["factor"]
    expected = context_factor(rows, overhead)
    if fnode.value != expected or isinstance(fnode.value, bool):
        raise _fail(
            f"found {described(fnode.plain())}; the calibration variants give {expected}",
            fnode,
            "calibration.factor",
            "the factor is the median of (measured_ms - overhead) / units_ms",
        )
    return expected, tuple(rows)


def _entry(node: Node, field: str) -> Entry:
    items = _mapping(node, field, ENTRY_KEYS, "a table entry")
    id_node = items["id"]
    if not isinstance(id_node.value, str) or not _ID.match(id_node.value):
        raise _fail(
            f"found {described(id_node.plain())}; expected 16 lowercase hex digits",
            id_node,
            f"{field}.id",
        )
    graph_node = items["graph"]
    if not isinstance(graph_node.value, dict):
        raise _fail("expected the unit's graph (a mapping)", graph_node, f"{field}.graph")
    graph = graph_node.plain()
    if digest_of(graph) != id_node.value:
        raise _fail(
            f"id {id_node.value} is not the digest of this entry's graph (the entry was edited "
            "or belongs to another archspec version)",
            id_node,
            f"{field}.id",
            "rebuild the table with `archspec latency-table`",
        )
    kind = _text(items["kind"], f"{field}.kind", 20)
    if kind not in ("op", "block", "stem_block"):
        raise _fail(
            f"found {kind!r}; expected op, block or stem_block", items["kind"], f"{field}.kind"
        )
    return Entry(
        id_node.value,
        kind,
        _text(items["what"], f"{field}.what", 40),
        _shape(items["input_shape"], f"{field}.input_shape"),
        _shape(items["output_shape"], f"{field}.output_shape"),
        _timing(items, field),
        graph,
    )


def check_machine(table: LatencyTable, path: str) -> None:
    """Refuse a table measured on another machine (CPU model, cores or flags differ): its
    predictions would describe that machine, not this one."""
    here = machine_info()
    for key in MACHINE_KEYS:
        if table.machine[key] != here[key]:
            raise SpecError(
                f"the table was measured on another machine ({key} {table.machine[key]!r}; "
                f"this machine: {here[key]!r})",
                _machine_loc(path, key),
                f"machine.{key}",
                "rebuild the table here, or pass --foreign-table to predict for the table's "
                "machine",
            )


def _machine_loc(path: str, key: str) -> Location:
    root = read_yaml_file(path)
    machine = root.value["machine"][1]
    return machine.value[key][1].loc
