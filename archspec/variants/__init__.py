"""Search spaces: a base spec plus choices → many resolved Specs, their costs, and hand-offs to
search engines (Optuna define-by-run, Ray Tune `param_space`).

A space file (YAML)::

    name: mnv2_small                    # letters, digits, `_`, `.`, `-`
    base: ../mnv2_1.0.yaml              # a spec file (relative to this file), or an inline spec
    sampling: auto                      # auto | grid | random (auto: grid up to 10,000 points)
    samples: 1000                       # how many points `random` draws (CLI: --n)
    seed: 0                             # CLI: --seed
    memory: {dtype: float32, fused_split: 4, first_layer_trick: true}
    pareto: madds,params:max            # default Pareto axes (CLI: --pareto)
    choices:                            # one grid: the product of every list below
      width_multiplier: [0.75, 1.0]
      resolution: [160, 224]
      num_classes: [1000]
      rows:                             # per row (a Table 2 row is a stage of n blocks)
        - {row: 2, t: [4, 6], n: [2, 3]}             # by index into `layers`
        - {row: last_conv, c_scale: [0.75, 1.0]}     # by name
        - {row: [4, 5], k: [3, 5], label: mid}       # several rows share one choice
    include:                            # more grids (same syntax), e.g. a single extra point
      - {width_multiplier: 1.4, resolution: 224}

Row choice keys: `t`, `n`, `k`, `s`, `c` (base channels, before the width multiplier) and
`c_scale` (multiplies the row's base channels: c = max(1, round_half_up(c · scale)); the width
multiplier and channel rounding then apply as usual). A key must be a field of the row's kind.
Each choice is labelled `width_multiplier`, `resolution`, `num_classes`, or `<rows>.<key>` where
`<rows>` is the label, the row's name, or `row<index>` (joined by `_` for several rows).

Values are checked against the spec schema when the space is loaded (bad values are bad input,
exit 2). Combinations that only fail when lowered (a stride that shrinks a map below one pixel, an
even kernel, ...) are skipped and counted with their reason.

A variant's id is the first 12 hex digits of the SHA-256 of the canonical JSON of its resolved spec
(`spec_to_dict`, keys sorted) without `name` and `description`, so two choices that give the same
architecture collapse into one variant (the first one generated keeps its choices).

Memory: `peak_bytes_op` is the Eq. 1 peak over the best op order (ops one at a time, every tensor
materialised); `peak_bytes_fused` is the peak with every bottleneck block fused and its inner
tensor split `fused_split` ways (default 4: the paper suggests "a small constant between 2 and 5";
`n` keeps one channel), with the first-layer trick unless disabled. Both in the space's activation
dtype (default float32).

Modules, each importing only those before it: `checks` (YAML node checks), `model` (the data
types: a space's definition, points, variants, outcomes), `parse` (the file read and checked into
a `SpaceDef`), `sampling` (points, variants, ids, samples), `evaluation` (one point measured:
`evaluate_point(space, point) -> Outcome`, a pure function), `timing` (how many timing tasks ran
side by side), `engine` (many points: the `Engine` seam and `Work`, a loop or worker processes,
and the sweep), `ray_engine` (the same on Ray), `journal` (outcomes appended as they complete, so
an interrupted sweep resumes), `search` (Optuna and Ray Tune), `manifest` (JSON Lines / CSV rows,
Pareto flags), `space` (`Space`, the `SpaceDef` with a method per operation), `streaming` (the
engine from the command line, the sweep streamed into its journal) and `command` (the
`archspec variants` run).
"""

from archspec.variants.command import run_variants
from archspec.variants.engine import ANALYSIS, Engine, Work, evaluate, local_engine, sweep
from archspec.variants.evaluation import (
    MEMORY_MAX_STATES,
    MEMORY_TIME_LIMIT,
    evaluate_point,
    evaluate_variant,
    measure,
)
from archspec.variants.manifest import (
    manifest_rows,
    pareto_mask,
    render_csv,
    render_jsonl,
    value_of,
    values_for,
)
from archspec.variants.model import (
    MAX_POINTS,
    METRICS,
    Choice,
    Evaluated,
    Grid,
    MemorySettings,
    Outcome,
    Point,
    Skipped,
    SpaceDef,
    SpaceSource,
    Sweep,
    Variant,
)
from archspec.variants.parse import load_space, read_source, space_from_text
from archspec.variants.sampling import AUTO_GRID_LIMIT
from archspec.variants.search import Constraints
from archspec.variants.space import (
    C_SCALE,
    DEFAULT_PARETO,
    DEFAULT_SAMPLES,
    DEFAULT_SPLIT,
    DTYPES,
    GLOBAL_KEYS,
    ROW_KEYS,
    SAMPLING,
    Space,
)

__all__ = [
    "ANALYSIS",
    "AUTO_GRID_LIMIT",
    "C_SCALE",
    "DEFAULT_PARETO",
    "DEFAULT_SAMPLES",
    "DEFAULT_SPLIT",
    "DTYPES",
    "GLOBAL_KEYS",
    "MAX_POINTS",
    "MEMORY_MAX_STATES",
    "MEMORY_TIME_LIMIT",
    "METRICS",
    "ROW_KEYS",
    "SAMPLING",
    "Choice",
    "Constraints",
    "Engine",
    "Evaluated",
    "Grid",
    "MemorySettings",
    "Outcome",
    "Point",
    "Skipped",
    "Space",
    "SpaceDef",
    "SpaceSource",
    "Sweep",
    "Variant",
    "Work",
    "evaluate",
    "evaluate_point",
    "evaluate_variant",
    "load_space",
    "local_engine",
    "manifest_rows",
    "measure",
    "pareto_mask",
    "render_csv",
    "read_source",
    "render_jsonl",
    "run_variants",
    "space_from_text",
    "sweep",
    "value_of",
    "values_for",
]
