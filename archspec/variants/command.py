"""`archspec variants SPACE ...`: sweep a space and write its manifest, specs and summary (the
options are defined in archspec/cli.py)."""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
from pathlib import Path
from typing import TextIO

from archspec.errors import Location, SpecError
from archspec.latency.sweep import (
    LATENCY_METRIC,
    LatencyRequest,
    check_complete,
    latency_work,
    request_from_args,
)
from archspec.latency.sweep import metric_names as latency_names
from archspec.latency.sweep import summary as latency_summary
from archspec.output import (
    FileOutput,
    TreeOutput,
    check_file_destination,
    check_tree_destination,
    write_outputs,
)
from archspec.pareto import parse_axes
from archspec.variants.engine import ANALYSIS, Work
from archspec.variants.evaluation import (
    BOARD_METRICS,
    FITS,
    BoardRequest,
    evaluate_point,
)
from archspec.variants.manifest import (
    manifest_rows,
    pareto_mask,
    render_csv,
    render_jsonl,
    value_of,
    values_for,
)
from archspec.variants.model import Sweep
from archspec.variants.sampling import unique
from archspec.variants.space import Space
from archspec.variants.streaming import engine_from_args, run_sweep
from archspec.where import parse


def run_variants(
    args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    """`archspec variants`: every check happens before any work or any write."""
    out = out or sys.stdout
    err = err or sys.stderr
    space = Space.load(args.space)
    latency = request_from_args(args)  # flags checked and a table read before any work
    board = board_request(args, space.fused_split)
    names = [*space.metric_names(), *latency_names(latency)]
    names += list(BOARD_METRICS) if board is not None else []
    condition = parse(args.where, names) if args.where is not None else None
    default_axes = BOARD_PARETO if board is not None else space.pareto
    axes = parse_axes(
        args.pareto or default_axes,
        names,
        "--pareto" if args.pareto else ("--board" if board else Location(space.file)),
    )
    plot_format = None
    if args.plot:
        plot_format = Path(args.plot).suffix.lower().lstrip(".")
        if plot_format not in ("png", "svg"):
            raise SpecError(
                f"found {args.plot!r}; expected a file name ending in .png or .svg",
                Location("--plot"),
            )
        check_file_destination(args.plot, "--plot")
    if args.output is not None:  # '' is refused, not taken as "no folder"
        names = ["manifest.jsonl", "summary.json", "skipped.jsonl", "specs/a.yaml"]
        check_tree_destination(args.output, names + (["manifest.csv"] if args.csv else []))
    if args.n == 0:
        raise SpecError("found 0; expected at least one variant", Location("--n"))
    jobs = args.jobs or os.cpu_count() or 1
    engine = engine_from_args(args, jobs)

    how, points = space.plan(args.n, args.seed)
    variants, total, dups = unique(space, points)
    # streamed into the output folder's journal as they complete (a rerun resumes)
    work = sweep_work(latency, board)
    streamed = run_sweep(
        space, variants, engine, args.output, work, getattr(args, "restart", False), err=err
    )
    evaluated, skipped = streamed.evaluated, streamed.skipped
    failed = [s for s in skipped if s.failed]
    uses_latency = LATENCY_METRIC in {a.metric for a in axes} | (
        condition.names if condition else set()
    )
    check_complete([e.metrics for e in evaluated], uses_latency, args.latency_table or "")
    fitting = evaluated
    if board is not None:
        fitting = [e for e in evaluated if e.metrics[FITS]]
    kept = fitting
    if condition is not None:
        kept = [e for e in evaluated if condition.evaluate(values_for(e))]
    mask = pareto_mask(kept, axes)
    rows = manifest_rows(kept, mask)
    sweep = Sweep(total, dups, evaluated, skipped)
    summary = {
        "space": space.name,
        "base": space.base.name,
        "sampling": how,
        "points": total,
        "duplicates": dups,
        "variants": len(variants),
        "skipped": len(skipped),
        "failed": len(failed),
        "skip_reasons": [{"reason": r, "count": c} for r, c in sweep.skip_reasons()],
        "where": args.where,
        "filtered_out": len(fitting) - len(kept),
        "manifest": len(rows),
        "pareto": [str(axes[0]), str(axes[1])],
        "pareto_front": sum(mask),
        "memory": {
            "dtype": space.dtype,
            "fused_split": space.fused_split,
            "first_layer_trick": space.first_layer_trick,
        },
    }
    if latency is not None:
        summary["latency"] = latency_summary(latency)
    if board is not None:
        summary["board"] = {
            "name": board.board.name,
            "sram": board.board.sram.size,
            "flash": board.board.flash.size,
            "split": board.split,
            "row_tile": board.row_tile,
            "did_not_fit": len(evaluated) - len(fitting),
        }
    plot_bytes = None
    if plot_format:
        from archspec.pareto import plot

        pts = [(value_of(e, axes[0].metric), value_of(e, axes[1].metric)) for e in kept]
        # name the front's points by their choices when there are few (Figure 5: "0.35/96")
        labels = (
            ["/".join(str(v) for v in e.variant.choices.values()) for e in kept]
            if 0 < len(space.labels) <= 2
            else None
        )
        plot_bytes = plot(pts, mask, axes, plot_format, title=space.name, labels=labels)

    if args.output:
        files: dict[str, str | bytes] = {"manifest.jsonl": render_jsonl(rows)}
        if args.csv:
            files["manifest.csv"] = render_csv(rows, space.labels)
        for e in kept:
            files[f"specs/{e.variant.id}.yaml"] = e.variant.spec_yaml()
        files["summary.json"] = json.dumps(summary, indent=2) + "\n"
        files["skipped.jsonl"] = "".join(
            json.dumps(
                {"id": s.id, "choices": dict(s.choices), "reason": s.reason}
                | ({"failed": True} if s.failed else {})
            )
            + "\n"
            for s in skipped
        )
    else:
        out.write(render_csv(rows, space.labels) if args.csv else render_jsonl(rows))
    # the manifest folder and the plot are written together, or neither
    written = [TreeOutput(args.output, files)] if args.output else []
    if plot_bytes is not None:
        written.append(FileOutput(args.plot, plot_bytes, "--plot"))
    try:
        write_outputs(written)
    except BaseException:
        if streamed.journal is not None:
            streamed.journal.close()  # kept: a rerun resumes from it
        raise
    if streamed.journal is not None:
        streamed.journal.finish()  # the final files are in place

    err.write(
        f"{space.name}: {how} -> {len(variants)} variants ({dups} duplicates collapsed), "
        f"{len(skipped) - len(failed)} skipped as illegal"
        + (f", {len(failed)} failed (workers died; a rerun tries them again)" if failed else "")
        + (
            f", {len(evaluated) - len(fitting)} do not fit {board.board.name}"
            if board is not None
            else ""
        )
        + (f", {len(fitting) - len(kept)} filtered out by --where" if condition else "")
        + f"; {len(rows)} in the manifest\n"
    )
    front = sum(mask)
    err.write(f"Pareto front ({axes[0]}, {axes[1]}): {front} variant{'' if front == 1 else 's'}\n")
    if skipped:
        err.write(f"skipped {len(skipped)} illegal variants:\n")
        for reason, count in sweep.skip_reasons()[:10]:
            err.write(f"  {count} x {reason}\n")
        more = len(sweep.skip_reasons()) - 10
        if more > 0:
            err.write(
                f"  ... and {more} other reasons"
                + (f" (see {args.output}/skipped.jsonl)" if args.output else "")
                + "\n"
            )
    if args.output:
        err.write(f"wrote {len(rows)} specs and the manifest to {args.output}\n")
    return 0


BOARD_PARETO = "sram_bytes,madds:max"  # the default front with --board: most compute per byte


def board_request(args: argparse.Namespace, split: int | str) -> BoardRequest | None:
    """`--board NAME [--boards FILE] [--row-tile R]`: the board each variant's int8 C build is
    checked against (with the space's fused split), or None. Checked before any work."""
    from archspec.boards import get_board

    if args.board is None:
        for flag, value in (("--boards", args.boards), ("--row-tile", args.row_tile)):
            if value is not None:
                raise SpecError("applies with --board only", None, flag, "add --board NAME")
        return None
    return BoardRequest(get_board(args.board, args.boards), split, args.row_tile)


def sweep_work(latency: LatencyRequest | None, board: BoardRequest | None) -> Work:
    """What evaluating one variant means: costs and memory, plus the latency and the board fit
    when asked for (a timing task keeps its threads)."""
    if board is None:
        return latency_work(latency) if latency is not None else ANALYSIS
    threads = latency_work(latency).threads if latency is not None else 0
    return Work(functools.partial(evaluate_point, latency=latency, board=board), threads)
