"""`archspec report SPEC --latency-table T`: predicted latency per spec row beside its MAdds.

A unit is counted in the row of the node it outputs (a stem conv fused with the first block
under the first-layer trick is counted in that block's row), net of the per-inference overhead
and scaled by the table's context factor; the overhead is its own line, so the rows and the
overhead sum to the prediction.
"""

from __future__ import annotations

from typing import Any

from archspec.errors import Location, SpecError
from archspec.graph import Graph
from archspec.latency.table import LatencyTable, check_machine, predict, read_table
from archspec.latency.units import graph_units


def table_for_report(path: str | None, foreign: bool, fmt: str) -> LatencyTable:
    """The `--latency-table` of `report`, read and checked before any work."""
    if path is None:
        raise SpecError("applies to --latency-table only", Location("--foreign-table"))
    if fmt == "html":
        raise SpecError(
            "the html report does not show latency yet",
            Location("--latency-table"),
            hint="use --format text, markdown or json",
        )
    table = read_table(path)
    if not foreign:
        check_machine(table, path)
    return table


def latency_data(graph: Graph, table: LatencyTable, row_entries: list[dict[str, Any]]) -> dict:
    """JSON-ready: the table's provenance, the prediction, and one entry per spec row (with
    the row's MAdds from the report's `rows`)."""
    madds_by_row = {r["row"]: r["madds"] for r in row_entries}
    p = predict(table, graph)
    units = graph_units(graph, table.split)
    rows_of = {fo.name: graph.node(fo.output_node).row for fo in units}
    # a row whose nodes all run inside another row's unit (the stem under the first-layer trick)
    home = {n: graph.node(fo.output_node).row for fo in units for n in fo.nodes}
    per_row: dict[int, list[tuple[str, str, float | None]]] = {}
    for share in p.units:
        per_row.setdefault(rows_of[share[0]], []).append(share)
    rows = []
    for row in graph.spec.rows:
        shares = per_row.get(row.index, [])
        known = [s for _, _, s in shares if s is not None]
        rows.append(
            {
                "row": row.index,
                "name": row.name or graph.row_outputs[row.index],
                "op": row.kind,
                "madds": madds_by_row.get(row.index, 0),
                "units": [u for u, _, _ in shares],
                "latency_ms": round(table.factor * sum(known), 6)
                if len(known) == len(shares)
                else None,
                "counted_in": None if shares else home.get(graph.row_outputs[row.index]),
            }
        )
    return {
        "predicted": True,
        "runtime": table.runtime_version,
        "machine": dict(table.machine),
        "table_source": table.source,
        "overhead_ms": table.overhead.median_ms,
        "context_factor": table.factor,
        "latency_ms": p.latency_ms,
        "missing": list(p.missing),
        "rows": rows,
    }


def render_latency_text(data: dict[str, Any], markdown: bool = False) -> str:
    """The per-row table as text (or markdown)."""
    head = ("row", "name", "op", "MAdds", "latency ms", "share")
    total = data["latency_ms"]
    body = []
    for r in data["rows"]:
        ms = r["latency_ms"]
        share = f"{100 * ms / total:.1f}%" if ms is not None and total and r["units"] else "-"
        body.append(
            (
                str(r["row"]),
                r["name"],
                r["op"],
                f"{r['madds']:,}",
                "missing"
                if ms is None
                else f"in row {r['counted_in']}"
                if r["counted_in"] is not None
                else f"{ms:.4f}",
                share,
            )
        )
    overhead = data["overhead_ms"]
    body.append(("", "(per inference)", "overhead", "", f"{overhead:.4f}", ""))
    body.append(("", "total", "", "", "missing" if total is None else f"{total:.4f}", ""))
    title = (
        f"Predicted latency ({data['runtime']} on {data['machine']['cpu']}, "
        f"{data['machine']['cores']} cores; table of {data['table_source']})"
    )
    if markdown:
        lines = [f"### {title}", "", "| " + " | ".join(head) + " |"]
        lines.append("|" + "|".join("---" for _ in head) + "|")
        lines += ["| " + " | ".join(r) + " |" for r in body]
    else:
        widths = [max(len(x[i]) for x in [head, *body]) for i in range(len(head))]
        lines = [title]
        lines.append(
            "  ".join(
                h.rjust(w) if i >= 3 else h.ljust(w)
                for i, (h, w) in enumerate(zip(head, widths, strict=True))
            )
        )
        for r in body:
            lines.append(
                "  ".join(
                    c.rjust(w) if i >= 3 else c.ljust(w)
                    for i, (c, w) in enumerate(zip(r, widths, strict=True))
                ).rstrip()
            )
    if data["missing"]:
        lines.append(f"units missing from the table: {', '.join(data['missing'])}")
    return "\n".join(lines) + "\n"
