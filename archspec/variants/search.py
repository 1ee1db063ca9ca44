"""Hand-offs to search engines: Optuna define-by-run (suggest, record, constraints) and a Ray
Tune `param_space`. Functions of a `SpaceDef`."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from archspec.errors import Location, SpecError
from archspec.spec import Spec
from archspec.variants.evaluation import measure
from archspec.variants.model import METRICS, Choice, Point, SpaceDef, metric_names, skip_reason
from archspec.variants.sampling import choices_of, resolve
from archspec.where import Condition, constraint_keys, constraint_values, parse


def _param_name(grid: int, choice: Choice) -> str:
    return choice.label if grid == 0 else f"include{grid}.{choice.label}"


def suggest(space: SpaceDef, trial: Any) -> Spec:
    """Optuna define-by-run: one `trial.suggest_categorical` per choice of the grid the
    trial picks (a `grid` parameter when the space has several); returns the Spec."""
    g = 0
    if len(space.grids) > 1:
        g = trial.suggest_categorical("grid", list(range(len(space.grids))))
    picks = []
    for choice in space.grids[g].choices:
        options = choice.param_values()
        value = trial.suggest_categorical(_param_name(g, choice), options)
        picks.append(options.index(value))
    return resolve(space, Point(g, tuple(picks))).spec


def point_from_params(space: SpaceDef, params: Mapping[str, Any]) -> Point:
    """The point for a parameter dict as Optuna's `trial.params` or a Ray Tune config
    (parameters of grids other than the chosen one are ignored)."""
    g = params.get("grid", 0)
    if isinstance(g, bool) or not isinstance(g, int) or not 0 <= g < len(space.grids):
        raise SpecError(
            f"found grid {g!r}; expected 0 to {len(space.grids) - 1}",
            Location("<params>"),
            "grid",
        )
    picks = []
    for choice in space.grids[g].choices:
        name = _param_name(g, choice)
        if name not in params:
            raise SpecError(f"missing parameter {name!r}", Location("<params>"), name)
        options = choice.param_values()
        if params[name] not in options:
            raise SpecError(
                f"found {params[name]!r}; expected one of {options}", Location("<params>"), name
            )
        picks.append(options.index(params[name]))
    return Point(g, tuple(picks))


def spec_from_params(space: SpaceDef, params: Mapping[str, Any]) -> Spec:
    """The Spec for a parameter dict (see `point_from_params`)."""
    return resolve(space, point_from_params(space, params)).spec


def record(
    space: SpaceDef,
    trial: Any,
    spec: Spec,
    constraints: Constraints | None = None,
    latency: Any = None,
) -> dict[str, Any]:
    """Measure `spec` and store the metrics on an Optuna trial (`trial.set_user_attr`, one
    attribute per metric, plus `archspec_id`); with `constraints`, also set each constraint
    value with `trial.set_constraint` (Optuna ≥ 5). With `latency` (an
    `archspec.latency.sweep.LatencyRequest`: `MeasureSettings` to time the spec, or a table from
    `read_table` to predict it), the metrics include `latency_ms`, usable as an objective or in
    constraints. An illegal spec stores its reason in `archspec_illegal` and raises
    `optuna.TrialPruned`."""
    try:
        metrics = measure(spec, space.memory, latency)
    except SpecError as exc:
        import optuna

        trial.set_user_attr("archspec_illegal", skip_reason(exc))
        raise optuna.TrialPruned(skip_reason(exc)) from None
    trial.set_user_attr("archspec_id", spec.name.rsplit("-", 1)[-1])
    for key, value in metrics.items():
        trial.set_user_attr(key, value)
    if constraints is not None:
        point = point_from_params(space, trial.params)
        values = constraints.values({**choices_of(space, point), **metrics})
        for key, value in zip(constraints.keys, values, strict=True):
            trial.set_constraint(key, value)
    return metrics


def constraints(
    space: SpaceDef, condition: str | None = None, **upper_bounds: float
) -> Constraints:
    """Constraints from `and`-joined comparisons and/or `metric=upper bound` keywords, e.g.
    `space.constraints("peak_bytes_fused <= 512e3", madds=300e6)`; values ≤ 0 are feasible.

    Two ways to give them to Optuna: pass them to `record(trial, spec, constraints)`, which
    calls `trial.set_constraint` (Optuna ≥ 5), or use the object as a sampler's
    `constraints_func` (older Optuna): it reads the metrics `record` stored on the trial,
    or measures the trial's parameters when it has none."""
    parts = [condition] if condition else []
    names = [*metric_names(space), "latency_ms"]  # latency_ms: record(..., latency=...) gives it
    for key, bound in upper_bounds.items():
        if key not in names:
            raise SpecError(
                f"unknown metric {key!r}; expected one of: {', '.join(names)}",
                Location("<constraints>"),
                key,
            )
        parts.append(f"{key} <= {float(bound)!r}")
    if not parts:
        raise SpecError("no constraint given", Location("<constraints>"))
    text = " and ".join(f"({p})" for p in parts)
    cond = parse(text, names)
    cond.comparisons()  # refuse or/not now rather than inside the study
    return Constraints(space, cond)


def ray_param_space(space: SpaceDef, plain: bool = False) -> dict[str, Any]:
    """A Ray Tune `param_space`: `tune.choice` per choice (and a `grid` choice when the space
    has several grids). Without Ray installed, or with `plain=True`, each domain is the plain
    dict `{"choice": [values]}`. Turn a sampled config into a Spec with `spec_from_params`."""
    choice = _choice_factory(plain)
    out: dict[str, Any] = {}
    if len(space.grids) > 1:
        out["grid"] = choice(list(range(len(space.grids))))
    for g, grid in enumerate(space.grids):
        for c in grid.choices:
            out[_param_name(g, c)] = choice(c.param_values())
    return out


class Constraints:
    """An Optuna `constraints_func`: one value per comparison, ≤ 0 when satisfied."""

    def __init__(self, space: SpaceDef, condition: Condition) -> None:
        self.space = space
        self.condition = condition

    def values(self, metrics: Mapping[str, Any]) -> list[float]:
        """Constraint values for a metrics dict."""
        return constraint_values(self.condition, metrics)

    def __call__(self, trial: Any) -> list[float]:
        attrs = trial.user_attrs
        point = point_from_params(self.space, trial.params)
        if all(m in attrs for m in METRICS):
            metrics = {m: attrs[m] for m in (*METRICS, "latency_ms") if m in attrs}
        else:
            try:
                metrics = measure(resolve(self.space, point).spec, self.space.memory)
            except SpecError:
                return [math.inf] * self.count
        return self.values({**choices_of(self.space, point), **metrics})

    @property
    def count(self) -> int:
        """How many values the function returns."""
        return len(self.keys)

    @property
    def keys(self) -> list[str]:
        """A name per value, e.g. `peak_bytes_fused <= 48000` (for `trial.set_constraint`)."""
        return constraint_keys(self.condition)


def _choice_factory(plain: bool) -> Callable[[list[Any]], Any]:
    if not plain:
        try:
            from ray import tune  # type: ignore[import-not-found]

            return tune.choice
        except ImportError:
            pass
    return lambda values: {"choice": list(values)}
