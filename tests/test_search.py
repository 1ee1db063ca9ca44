"""Hand-off to search engines: a real multi-objective Optuna study (define-by-run suggestions,
archspec metrics as user attributes, a memory constraint), and the Ray Tune `param_space`
export in its plain-dict form."""

from __future__ import annotations

import importlib.util
import random
from pathlib import Path

import optuna
import pytest

from archspec import analyze_cost, lower
from archspec.errors import SpecError
from archspec.pareto import front_mask
from archspec.variants import METRICS, Space

ROOT = Path(__file__).resolve().parent.parent
FIGURE5 = ROOT / "specs" / "spaces" / "mnv2_figure5.yaml"
MCU = ROOT / "specs" / "spaces" / "mnv2_mcu.yaml"
LIMIT = 48e3  # bytes of int8 activations (the MCU space's dtype)

optuna.logging.set_verbosity(optuna.logging.WARNING)


def run_study(space: Space, seed: int, n_trials: int = 20, legacy: bool = False) -> optuna.Study:
    """Minimise the op-mode peak, maximise MAdds (a cheap accuracy proxy), subject to the fused
    peak fitting in LIMIT bytes. `legacy`: constraints as the sampler's `constraints_func`
    (deprecated in Optuna 5) instead of `trial.set_constraint`."""
    constraints = space.constraints(f"peak_bytes_fused <= {LIMIT}")
    if legacy:
        sampler = optuna.samplers.NSGAIISampler(
            seed=seed, population_size=6, constraints_func=constraints
        )
    else:
        sampler = optuna.samplers.NSGAIISampler(seed=seed, population_size=6)
    study = optuna.create_study(directions=["minimize", "maximize"], sampler=sampler)

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        spec = space.suggest(trial)
        metrics = space.record(trial, spec, None if legacy else constraints)
        return metrics["peak_bytes_op"], metrics["madds"]

    study.optimize(objective, n_trials=n_trials)
    return study


def test_multi_objective_study_with_a_memory_constraint() -> None:
    space = Space.load(MCU)
    study = run_study(space, seed=1)
    trials = study.trials
    assert len(trials) == 20
    states = {t.state for t in trials}
    assert states <= {optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED}
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) >= 10
    for t in complete:
        # the metrics stored on the trial are those of the architecture its parameters name
        spec = space.spec_from_params(t.params)
        assert t.user_attrs["archspec_id"] == spec.name.rsplit("-", 1)[-1]
        assert t.user_attrs["madds"] == analyze_cost(lower(spec)).madds
        assert t.values == [t.user_attrs["peak_bytes_op"], t.user_attrs["madds"]]
        assert all(m in t.user_attrs for m in METRICS)
        # the constraint Optuna recorded: ≤ 0 exactly when the fused peak fits
        value = t.system_attrs["constraints:peak_bytes_fused <= 48000"]
        assert value == t.user_attrs["peak_bytes_fused"] - LIMIT
    for t in trials:
        if t.state == optuna.trial.TrialState.PRUNED:
            assert "archspec_illegal" in t.user_attrs
            with pytest.raises(SpecError):
                lower(space.spec_from_params(t.params))
    feasible = [t for t in complete if t.user_attrs["peak_bytes_fused"] <= LIMIT]
    assert feasible and len(feasible) < len(complete)  # the constraint binds in this space
    # Optuna's own Pareto front (feasible trials only) agrees with archspec's
    mask = front_mask([(t.values[0], t.values[1]) for t in feasible], ("min", "max"))
    ours = {t.number for t, on in zip(feasible, mask, strict=True) if on}
    assert {t.number for t in study.best_trials} == ours


def test_study_is_reproducible_with_the_same_seed() -> None:
    space = Space.load(MCU)
    a = run_study(space, seed=3, n_trials=8)
    b = run_study(space, seed=3, n_trials=8)
    assert [t.params for t in a.trials] == [t.params for t in b.trials]
    assert [t.values for t in a.trials] == [t.values for t in b.trials]


@pytest.mark.filterwarnings("ignore:`constraints_func` has been deprecated:FutureWarning")
def test_constraints_func_for_older_optuna() -> None:
    space = Space.load(MCU)
    study = run_study(space, seed=1, n_trials=12, legacy=True)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert complete
    for t in complete:
        (value,) = t.system_attrs["constraints"]
        assert value == t.user_attrs["peak_bytes_fused"] - LIMIT
    assert all(t.user_attrs["peak_bytes_fused"] <= LIMIT for t in study.best_trials)


def test_suggest_with_a_fixed_trial_and_several_grids() -> None:
    space = Space.load(FIGURE5)
    spec = space.suggest(
        optuna.trial.FixedTrial({"grid": 0, "width_multiplier": 0.5, "resolution": 160})
    )
    assert (spec.width_multiplier, spec.resolution) == (0.5, (160, 160))
    spec = space.suggest(
        optuna.trial.FixedTrial(
            {"grid": 1, "include1.width_multiplier": 1.4, "include1.resolution": 224}
        )
    )
    assert (spec.width_multiplier, spec.resolution) == (1.4, (224, 224))
    ids = {v.id for v in space.grid()}
    assert spec.name.rsplit("-", 1)[-1] in ids


def test_constraints_measure_trials_without_recorded_metrics() -> None:
    space = Space.load(FIGURE5)
    constraints = space.constraints("madds <= 100e6", peak_bytes_fused=1e6)
    assert constraints.count == 2
    params = {"grid": 0, "width_multiplier": 0.75, "resolution": 128}
    dists = {
        "grid": optuna.distributions.CategoricalDistribution([0, 1]),
        "width_multiplier": optuna.distributions.CategoricalDistribution([0.35, 0.5, 0.75, 1.0]),
        "resolution": optuna.distributions.CategoricalDistribution([96, 128, 160, 192, 224]),
    }
    frozen = optuna.trial.create_trial(params=params, distributions=dists, values=[0.0, 0.0])
    metrics = space.metrics(space.spec_from_params(params))
    assert constraints(frozen) == [metrics["madds"] - 100e6, metrics["peak_bytes_fused"] - 1e6]
    with pytest.raises(SpecError, match="unknown metric"):
        space.constraints(accuracy=1)
    with pytest.raises(SpecError, match="and` only"):
        space.constraints("madds < 1 or params < 1")


def test_ray_param_space_plain_dict() -> None:
    space = Space.load(FIGURE5)
    plain = space.ray_param_space(plain=True)
    assert plain == {
        "grid": {"choice": [0, 1]},
        "width_multiplier": {"choice": [0.35, 0.5, 0.75, 1.0]},
        "resolution": {"choice": [96, 128, 160, 192, 224]},
        "include1.width_multiplier": {"choice": [1.4]},
        "include1.resolution": {"choice": [224]},
    }
    if importlib.util.find_spec("ray") is None:
        assert space.ray_param_space() == plain
    # a config sampled from the exported domains names a variant of the space
    ids = {v.id for v in space.grid()}
    rng = random.Random(0)
    for _ in range(30):
        config = {k: rng.choice(v["choice"]) for k, v in plain.items()}
        spec = space.spec_from_params(config)
        assert spec.name.rsplit("-", 1)[-1] in ids
    with pytest.raises(SpecError, match="expected one of"):
        space.spec_from_params({"grid": 0, "width_multiplier": 0.6, "resolution": 96})


def test_ray_param_space_with_row_choices_and_non_square_resolutions(tmp_path: Path) -> None:
    (tmp_path / "space.yaml").write_text(
        f"name: rows\nbase: {ROOT / 'specs' / 'mnv2_1.0.yaml'}\n"
        "choices:\n  resolution: [[160, 192], 224]\n  rows:\n    - {row: 2, t: [4, 6]}\n"
    )
    space = Space.load(tmp_path / "space.yaml")
    plain = space.ray_param_space(plain=True)
    assert plain == {"resolution": {"choice": ["160x192", 224]}, "row2.t": {"choice": [4, 6]}}
    spec = space.spec_from_params({"resolution": "160x192", "row2.t": 4})
    assert spec.resolution == (160, 192) and spec.rows[2].fields["t"] == 4
    assert "resolution" not in space.metric_names()  # not a number for every variant
