"""Random valid specs analyse; random mutations end valid or with a located exit 2.

The suite runs a few hundred cases; `make fuzz` runs the long campaign
(HYPOTHESIS_PROFILE=fuzz, 10,000+ cases per property).
"""

from __future__ import annotations

import os
import re

from hypothesis import HealthCheck, given, settings

from archspec import analyze_cost, load_spec_text, lower
from archspec.cli import main
from tests.strategies import dump, mutated_texts, spec_dicts

settings.register_profile(
    "suite",
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "fuzz",
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "10000")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "suite")


@settings.get_profile(PROFILE)
@given(spec_dicts())
def test_random_valid_specs_lower_and_analyse(spec):
    graph = lower(load_spec_text(dump(spec), "fuzz.yaml"))
    cost = analyze_cost(graph)
    assert cost.madds == sum(x.madds for x in cost.layers) >= 0
    assert cost.params_with_bn >= cost.params
    for node in graph.ops():
        assert min(node.shape) >= 1


@settings.get_profile(PROFILE)
@given(mutated_texts())
def test_mutated_specs_are_valid_or_located_exit_2(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("m") / "mutant.yaml"
    path.write_text(text, encoding="utf-8")
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        status = main(["report", str(path), "--format", "json"])
    message = err.getvalue()
    assert status in (0, 2), message
    assert "Traceback" not in message
    if status == 2:
        assert re.search(re.escape(str(path)) + r":\d+:\d+: ", message), message
