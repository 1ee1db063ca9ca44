"""The `archspec` command line: argument parsing and file writing only.

Exit status: 0 success, 1 internal error (a bug: the traceback is printed), 2 bad input (a located
message, no traceback, nothing written).
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Sequence

from archspec import __version__
from archspec.analysis.cost import PROFILES, analyze_cost
from archspec.analysis.report import render_json, render_text, report_data
from archspec.errors import SpecError
from archspec.lower import lower
from archspec.output import write_file
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
    if output:
        write_file(output, text)
    else:
        sys.stdout.write(text)


def cmd_validate(args: argparse.Namespace) -> int:
    """Load and lower a spec; report success in one line."""
    graph = lower(load_spec(args.spec, args.overrides))
    ops = sum(1 for _ in graph.ops())
    print(
        f"{args.spec}: ok ({graph.name}: {len(graph.spec.rows)} rows, {ops} ops, "
        f"{len(graph.blocks)} bottleneck blocks)"
    )
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """Costs (and memory, where implemented) of a spec in the chosen format."""
    graph = lower(load_spec(args.spec, args.overrides))
    cost = analyze_cost(graph, args.profile)
    data = report_data(graph, cost)
    if args.format == "json":
        text = render_json(data)
    else:
        text = render_text(data, markdown=args.format == "markdown")
    _emit_text(text, args.output)
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    """Print (or write) the JSON Schema of spec files."""
    from archspec.schema import schema_text

    _emit_text(schema_text(), args.output)
    return 0


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
        choices=("text", "markdown", "json"),
        default="text",
        help="output format (default: text)",
    )
    p.add_argument(
        "--profile",
        choices=tuple(PROFILES),
        default="slim",
        help="MAdds counting profile (default: slim, the paper's convention)",
    )
    p.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")
    p.set_defaults(handler=cmd_report)

    p = sub.add_parser(
        "schema",
        help="print the JSON Schema of spec files",
        description="The JSON Schema that editors (YAML language server) use; "
        "generated from the loader's own field tables.",
    )
    p.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")
    p.set_defaults(handler=cmd_schema)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `archspec` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
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


if __name__ == "__main__":
    sys.exit(main())
