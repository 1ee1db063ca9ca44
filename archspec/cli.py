"""The `archspec` command line: argument parsing and file writing only.

Exit status: 0 success, 1 internal error (a bug: the traceback is printed), 2 bad input (a located
message, no traceback, nothing written).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import traceback
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from archspec import __version__
from archspec.activations import TARGETS
from archspec.analysis.cost import PROFILES, analyze_cost
from archspec.analysis.report import render_json, render_text, report_data
from archspec.boards_cli import add_build_arguments as add_build_board_arguments
from archspec.boards_cli import add_report_arguments as add_report_board_arguments
from archspec.boards_cli import build_board, report_board
from archspec.errors import Location, SpecError
from archspec.lower import lower
from archspec.options import DTYPE_BYTES, MEMORY_MODES, parse_row_tile, parse_split
from archspec.output import (
    FileOutput,
    Progress,
    check_dir_destination,
    check_file_destination,
    nonnegative_int,
    write_file,
    write_outputs,
)
from archspec.quantize import add_quantize_arguments, quantize_options, target_options
from archspec.spec import load_spec


def _add_spec_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", metavar="SPEC", help="architecture spec (YAML)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a global field before lowering, e.g. width_multiplier=0.5, "
        "resolution=160, num_classes=1001, rounding.divisor=4 (repeatable)",
    )


def _emit_text(text: str, output: str | None) -> None:
    if output is not None:
        write_file(output, text)
    else:
        sys.stdout.write(text)


def _check_file_outputs(*given: tuple[str | None, str]) -> None:
    """Every `(path, option)` given is a writable file destination, and no two are the same."""
    seen: dict[str, str] = {}
    for path, option in given:
        if path is None:
            continue
        target = check_file_destination(path, option)
        key = str(target.resolve())
        if key in seen:
            raise SpecError(f"is also the {seen[key]} file", Location(path), option)
        seen[key] = option


def cmd_validate(args: argparse.Namespace) -> int:
    """Load and lower a spec; report success in one line."""
    graph = lower(load_spec(args.spec, args.overrides))
    ops = sum(1 for _ in graph.ops())
    print(
        f"{args.spec}: ok ({graph.name}: {len(graph.spec.rows)} rows, {ops} ops, "
        f"{len(graph.blocks)} bottleneck blocks)"
    )
    return 0


def _split_arg(text: str) -> int | str:
    try:
        return parse_split(text)
    except SpecError as exc:
        raise argparse.ArgumentTypeError(exc.message) from None


def _row_tile_arg(text: str) -> int:
    try:
        return parse_row_tile(text)
    except SpecError as exc:
        raise argparse.ArgumentTypeError(exc.message) from None


def _memory_options(args: argparse.Namespace) -> tuple[int | str, bool, str | None]:
    """(split, first-layer trick, plot format) of `report`, checked before any work."""
    if args.memory_mode == "op":
        for flag, value in (
            ("--split", args.split),
            ("--first-layer-trick", args.trick),
            ("--row-tile", args.row_tile),
        ):
            if value is not None:
                raise SpecError(
                    "applies to the fused memory model only",
                    None,
                    flag,
                    "add --memory-mode fused",
                )
    _check_file_outputs((args.output, "-o"), (args.plot, "--plot"))
    plot_fmt = None
    if args.plot is not None:
        plot_fmt = Path(args.plot).suffix.lower().lstrip(".")
        if plot_fmt not in ("png", "svg"):
            raise SpecError(
                f"cannot write a plot as {Path(args.plot).suffix or 'a file without extension'}",
                Location(args.plot),
                "--plot",
                "name the file .png or .svg",
            )
    split = 1 if args.split is None else args.split
    return split, True if args.trick is None else args.trick, plot_fmt


def cmd_report(args: argparse.Namespace) -> int:
    """Costs and activation memory of a spec in the chosen format (and the timeline plot)."""
    from archspec.analysis.memory import DEFAULT_SPLITS
    from archspec.analysis.memory_report import plan_label
    from archspec.analysis.memory_summary import analyze_memory, plan_steps

    split, trick, plot_fmt = _memory_options(args)
    latency_table = None
    if args.latency_table is not None or args.foreign_table:
        from archspec.latency.report import table_for_report

        latency_table = table_for_report(args.latency_table, args.foreign_table, args.format)
    graph = lower(load_spec(args.spec, args.overrides))
    cost = analyze_cost(graph, args.profile)
    extra = args.memory_mode == "fused" and split not in DEFAULT_SPLITS
    progress = Progress(1 + len(DEFAULT_SPLITS) + extra, "memory plans")
    memory = analyze_memory(
        graph,
        mode=args.memory_mode,
        split=split,
        dtype=args.activation_dtype,
        first_layer_trick=trick,
        progress=progress.step,
        row_tile=args.row_tile,
    )
    progress.close()
    data = report_data(graph, cost, memory.data)
    board_text = report_board(args, graph, data, split)
    if args.paper:
        from archspec.paper import report_paper

        data["paper"] = report_paper(args.spec, graph)
    if latency_table is not None:
        from archspec.latency.report import latency_data

        data["latency"] = latency_data(graph, latency_table, data["rows"])
    plots: dict[str, bytes] = {}
    if args.format == "html" or plot_fmt:
        from archspec.analysis.plots import madds_plot, timeline_plot

        series = [(plan_label(p), plan_steps(p)) for p in memory.timeline_plans()]
        title = f"{graph.name}: activation memory per step (Eq. 1, {args.activation_dtype})"
        if args.format == "html":
            plots["timeline"] = timeline_plot(series, "svg", title)
            plots["madds"] = madds_plot(data["layers"], "svg")
        if plot_fmt:
            plot = timeline_plot(series, plot_fmt, title)
    if args.format == "json":
        text = render_json(data)
    elif args.format == "html":
        from archspec.analysis.html import render_html

        text = render_html(data, plots)
    else:
        text = render_text(data, markdown=args.format == "markdown")
        if args.paper:
            from archspec.paper import report_paper_text

            text += "\n" + report_paper_text(data["paper"], args.format == "markdown")
        if latency_table is not None:
            from archspec.latency.report import render_latency_text

            text += "\n" + render_latency_text(data["latency"], args.format == "markdown")
        text += board_text
    outputs = [FileOutput(args.output, text)] if args.output is not None else []
    if plot_fmt:
        outputs.append(FileOutput(args.plot, plot, "--plot"))
    write_outputs(outputs)  # the report and its plot together, or neither
    if args.output is None:
        sys.stdout.write(text)
    return 0


def cmd_paper(args: argparse.Namespace) -> int:
    """The paper's Tables 3–7 reconstructed from the shipped specs, ours vs the paper's."""
    from archspec.paper import paper_tables, render_paper

    root = Path(args.specs) if args.specs else None
    if root is not None and not root.is_dir():
        raise SpecError("not a folder", Location(args.specs), "--specs")
    _emit_text(render_paper(paper_tables(root), args.format), args.output)
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    """Print (or write) the JSON Schema of spec files."""
    from archspec.schema import schema_text

    _check_file_outputs((args.output, "-o"))
    _emit_text(schema_text(), args.output)
    return 0


def _positive_int(text: str) -> int:
    value = nonnegative_int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _default_build_dir(name: str, target: str) -> Path:
    from archspec.names import spec_identifier

    return Path("out") / spec_identifier(name) / target


def cmd_build(args: argparse.Namespace) -> int:
    """Generate a target's files and the canonical weights file, written as one unit."""
    from archspec.output import write_tree
    from archspec.verify import resolve_weights, target_files

    if args.row_tile is not None and args.target != "c":
        raise SpecError(
            f"applies to the c target only, not {args.target}",
            None,
            "--row-tile",
            "add --target c",
        )
    board = build_board(args)
    quantize = quantize_options(args)
    if args.output is not None:
        check_dir_destination(args.output, "-o")
    graph = lower(load_spec(args.spec, args.overrides))
    if args.output is None:
        check_dir_destination(_default_build_dir(graph.name, args.target), "-o")
    weights = resolve_weights(graph, args.weights, args.seed)
    options = {} if args.split is None else {"split": args.split}
    if args.row_tile is not None:
        options["row_tile"] = args.row_tile
    if board is not None:
        options["board"] = board
    options.update(target_options(args.target, graph, weights, quantize))
    files = target_files(graph, args.target, weights, **options)
    out = Path(
        args.output if args.output is not None else _default_build_dir(graph.name, args.target)
    )
    write_tree(out, files)
    print(f"{graph.name}: wrote {args.target} to {out}/: {', '.join(sorted(files))}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    """Build every available target, run all on one input, compare; 1 above the tolerance."""
    from archspec.verify import check_verify_budget, render_result, resolve_weights, verify

    quantize = quantize_options(args)
    graph = lower(load_spec(args.spec, args.overrides))
    check_verify_budget(graph, args.batch)  # before the weights or the input are allocated
    weights = resolve_weights(graph, args.weights, args.seed)
    if quantize.mode is not None:
        from archspec.quantize import describe_source, resolve_qparams
        from archspec.verify_int8 import render_int8_result, verify_int8

        int8 = verify_int8(
            graph,
            weights,
            resolve_qparams(graph, weights, quantize),
            calibration=describe_source(quantize),
            batch=args.batch,
            input_seed=0 if args.seed is None else args.seed,
        )
        sys.stdout.write(render_int8_result(int8))
        return 0 if int8.passed else 1
    result = verify(
        graph,
        weights,
        tolerance=args.tolerance,
        batch=args.batch,
        input_seed=0 if args.seed is None else args.seed,
    )
    sys.stdout.write(render_result(result))
    return 0 if result.passed else 1


def cmd_variants(args: argparse.Namespace) -> int:
    """Generate, measure, filter and rank the variants of a search space."""
    from archspec.variants.command import run_variants

    return run_variants(args)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (every sub-command's --help comes from here)."""
    parser = argparse.ArgumentParser(
        prog="archspec",
        description="Compile architecture specs (MobileNetV2-style YAML) into exact costs, "
        "memory plans and runnable models.",
    )
    parser.add_argument("--version", action="version", version=f"archspec {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "validate",
        help="check a spec without building anything",
        description="Check a spec (schema, names, references, shapes).",
    )
    _add_spec_args(p)
    p.set_defaults(handler=cmd_validate)

    p = sub.add_parser(
        "report",
        help="per-layer MAdds, params (and memory) of a spec",
        description="Per-layer table in the shape of the paper's Table 2, extended with output "
        "shapes, MAdds and params, and totals.",
    )
    _add_spec_args(p)
    p.add_argument(
        "--format",
        choices=("text", "markdown", "json", "html"),
        default="text",
        help="output format (default: text; html is one self-contained file with plots)",
    )
    p.add_argument(
        "--activation-dtype",
        choices=tuple(DTYPE_BYTES),
        default="float32",
        help="bytes per activation element: 4, 2 or 1 (default: float32)",
    )
    p.add_argument(
        "--memory-mode",
        choices=MEMORY_MODES,
        default="op",
        help="op: one op per graph node; fused: each bottleneck block is one op with a "
        "disposable inner tensor (paper §5.1) (default: op)",
    )
    p.add_argument(
        "--split",
        type=_split_arg,
        default=None,
        metavar="T|n",
        help="fused mode: process the expansion channels in T groups of ceil(n/T) channels; "
        "n keeps one channel (default: 1)",
    )
    p.add_argument(
        "--first-layer-trick",
        dest="trick",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="fused mode: fuse the stem conv with the first t=1 block, split over the stem's "
        "output channels (default: on)",
    )
    p.add_argument(
        "--row-tile",
        type=_row_tile_arg,
        default=None,
        metavar="R",
        help="fused mode: blocks work in bands of R output rows, so the workspace holds only "
        "the rows a band needs (default: off, the whole spatial extent)",
    )
    p.add_argument(
        "--plot",
        metavar="FILE",
        help="also write the memory timeline plot here (.png or .svg)",
    )
    p.add_argument(
        "--profile",
        choices=tuple(PROFILES),
        default="slim",
        help="MAdds counting profile (default: slim, the paper's convention)",
    )
    p.add_argument(
        "--paper",
        action="store_true",
        help="also show the paper's published figures for this spec (matched by file name) "
        "next to ours, with the difference and the explanation (JSON: a `paper` list)",
    )
    add_report_board_arguments(p)
    p.add_argument(
        "--latency-table",
        metavar="FILE",
        help="also show each row's predicted latency from this table (archspec latency-table)",
    )
    p.add_argument(
        "--foreign-table",
        action="store_true",
        help="accept a --latency-table measured on another machine",
    )
    p.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")
    p.set_defaults(handler=cmd_report)

    p = sub.add_parser(
        "paper",
        help="the paper's Tables 3-7 reconstructed from the shipped specs, ours vs the paper's",
        description="Every published figure of the MobileNetV2 paper's Tables 3-7 next to ours, "
        "computed from the specs under specs/ (a spec not shipped yet shows as such), flagged "
        "when more than 2% off, with the explanation where ours cannot match.",
    )
    p.add_argument(
        "--format", choices=("text", "markdown", "html"), default="text", help="(default: text)"
    )
    p.add_argument("--specs", metavar="DIR", help="the specs folder (default: the shipped one)")
    p.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")
    p.set_defaults(handler=cmd_paper)

    p = sub.add_parser(
        "schema",
        help="print the JSON Schema of spec files",
        description="The JSON Schema that editors (YAML language server) use; "
        "generated from the loader's own field tables.",
    )
    p.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")
    p.set_defaults(handler=cmd_schema)

    p = sub.add_parser(
        "build",
        help="generate a runnable model (PyTorch, Keras, ONNX or C) and its weights file",
        description="Generate a target's files plus the canonical weights.npz beside them. "
        "Without --weights or --seed the weights are the deterministic seed-0 initialisation.",
    )
    _add_spec_args(p)
    p.add_argument(
        "--target",
        required=True,
        choices=TARGETS,
        help="what to generate",
    )
    p.add_argument(
        "-o",
        "--output",
        metavar="DIR",
        help="output folder (default: out/<spec name, . and - as _>/<target>)",
    )
    source = p.add_mutually_exclusive_group()
    source.add_argument(
        "--seed",
        type=nonnegative_int,
        default=None,
        metavar="N",
        help="initialise the weights deterministically from N (default: 0)",
    )
    source.add_argument(
        "--weights",
        metavar="FILE.npz",
        help="canonical weights file (arrays keyed <node>.<weight>)",
    )
    p.add_argument(
        "--split",
        type=_split_arg,
        default=None,
        metavar="T|n",
        help="c target: process each block's expansion in T channel groups; n keeps one channel",
    )
    p.add_argument(
        "--row-tile",
        type=_row_tile_arg,
        default=None,
        metavar="R",
        help="c target: run each fused block in bands of R output rows (less workspace; "
        "default: off)",
    )
    add_build_board_arguments(p)
    add_quantize_arguments(p, "build")
    p.set_defaults(handler=cmd_build)

    p = sub.add_parser(
        "verify",
        help="build every available target and check they compute the same function",
        description="Build PyTorch, Keras (torch backend), ONNX (ONNX Runtime) and C (gcc) with "
        "the same weights (random BatchNorm statistics included), run them and the numpy "
        "reference on one random input in inference mode, and print the largest difference of "
        "every pair. Exit status 1 when one exceeds the tolerance.",
    )
    _add_spec_args(p)
    source = p.add_mutually_exclusive_group()
    source.add_argument(
        "--seed",
        type=nonnegative_int,
        default=None,
        metavar="N",
        help="weights and input seed (default: 0)",
    )
    source.add_argument("--weights", metavar="FILE.npz", help="canonical weights file")
    p.add_argument(
        "--tolerance",
        type=_positive_float,
        default=1e-4,
        metavar="X",
        help="largest allowed max|a-b| / max(1, max|reference|) (default: 1e-4)",
    )
    p.add_argument(
        "--batch", type=_positive_int, default=2, metavar="N", help="input batch size (default: 2)"
    )
    add_quantize_arguments(p, "verify")
    p.set_defaults(handler=cmd_verify)

    from archspec.variants.space import DEFAULT_PARETO

    p = sub.add_parser(
        "variants",
        help="sweep a search space: resolved specs, costs, memory, filter, Pareto front",
        description="Generate the variants of a search space (grid or random sample), measure "
        "each (MAdds, params, op and fused peak memory), keep those satisfying --where, mark the "
        "Pareto front of two metrics, and write a manifest (JSON Lines, optionally CSV) with one "
        "resolved spec per variant.",
    )
    p.add_argument("space", metavar="SPACE", help="search-space file (YAML)")
    p.add_argument(
        "-o",
        "--output",
        metavar="DIR",
        help="write DIR/manifest.jsonl, DIR/specs/<id>.yaml, DIR/summary.json and "
        "DIR/skipped.jsonl (default: the manifest on stdout)",
    )
    p.add_argument(
        "--n",
        type=nonnegative_int,
        default=None,
        metavar="N",
        help="draw N random points instead of the space's sampling rule",
    )
    p.add_argument(
        "--seed",
        type=nonnegative_int,
        default=None,
        metavar="S",
        help="random-sampling seed (default: the space's, else 0)",
    )
    p.add_argument(
        "--where",
        metavar="EXPR",
        help="keep variants satisfying EXPR, e.g. 'madds <= 300e6 and peak_bytes_fused < 512e3'",
    )
    p.add_argument(
        "--jobs",
        type=nonnegative_int,
        default=1,
        metavar="J",
        help="worker processes (0: one per core; default 1)",
    )
    p.add_argument(
        "--csv",
        action="store_true",
        help="CSV too (DIR/manifest.csv), or CSV instead of JSON Lines on stdout",
    )
    p.add_argument(
        "--pareto",
        metavar="X,Y",
        help="Pareto axes, each `metric` or `metric:max` (default: the space's, "
        f"else {DEFAULT_PARETO})",
    )
    p.add_argument(
        "--plot", metavar="FILE", help="draw the variants and the front to FILE.png or FILE.svg"
    )
    p.add_argument(
        "--board",
        metavar="NAME",
        help="keep only variants whose int8 C build fits this microcontroller (SRAM: arena, io, "
        "stack and heap; flash: weights and code), with sram_bytes and flash_bytes as metrics "
        "(default Pareto axes then: sram_bytes,madds:max)",
    )
    p.add_argument(
        "--boards",
        metavar="FILE",
        help="extra boards (YAML, the shape of archspec/boards.yaml; default: $ARCHSPEC_BOARDS)",
    )
    p.add_argument(
        "--row-tile",
        type=_row_tile_arg,
        default=None,
        metavar="R",
        help="with --board: the C build computes fused blocks in bands of R output rows",
    )
    from archspec.variants.streaming import add_engine_arguments

    add_engine_arguments(p)
    p.add_argument(
        "--restart",
        action="store_true",
        help="discard the partial sweep an interrupted run left in DIR instead of resuming it",
    )
    from archspec.latency.command import add_latency_table_parser, add_variants_arguments

    add_variants_arguments(p)
    p.set_defaults(handler=cmd_variants)
    add_latency_table_parser(sub)
    return parser


class Terminated(BaseException):
    """SIGTERM, raised where the program was so that cleanup (staging folders) runs."""


def _terminate(signum: int, frame: object) -> None:
    raise Terminated


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `archspec` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if in_main_thread else None
    try:
        # Floating-point trouble is refused by explicit checks with a message; numpy's own
        # RuntimeWarnings would only show internals before it.
        with np.errstate(all="ignore"):
            return args.handler(args)
    except Terminated:
        print("terminated; nothing was written", file=sys.stderr)
        return 143
    except SpecError as exc:
        print(f"error: {exc.render()}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception:
        traceback.print_exc()
        print("archspec: internal error (a bug; please report it with the spec)", file=sys.stderr)
        return 1
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
