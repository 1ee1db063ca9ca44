"""Random valid specs analyse; random mutations end valid or with a located exit 2.

The suite runs a few hundred cases; `make fuzz` runs the long campaign
(HYPOTHESIS_PROFILE=fuzz, 10,000+ cases per property).
"""

from __future__ import annotations

import os
import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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


# -- hostile generators (issue 14): nesting depth and integer size ----------------------------

BRACKETS = {"list": ("[", "]"), "map": ("{k: ", "}")}


@st.composite
def nested_values(draw: st.DrawFn) -> str:
    """A flow value nested 1..3000 levels, mixing lists and mappings, maybe left unclosed."""
    kinds = draw(st.lists(st.sampled_from(list(BRACKETS)), min_size=1, max_size=40))
    depth = draw(st.integers(1, 3000))
    opened = [BRACKETS[kinds[i % len(kinds)]] for i in range(depth)]
    closed = draw(st.integers(0, depth))
    closing = reversed(opened[depth - closed :])
    return "".join(o for o, _ in opened) + "1" + "".join(c for _, c in closing)


@st.composite
def integer_literals(draw: st.DrawFn) -> str:
    """An integer literal of 1..20000 digits in a YAML 1.1 base, signed, maybe quoted."""
    digits = draw(st.integers(1, 20_000))
    base = draw(st.sampled_from(["", "0x", "0b"]))
    alphabet = {"": "123456789", "0x": "123456789abcdef", "0b": "1"}[base]
    first = draw(st.sampled_from(alphabet))
    sign = draw(st.sampled_from(["", "-", "+"]))
    quote = draw(st.sampled_from(["", "'"]))
    return f"{quote}{sign}{base}{first * digits}{quote}"


def _run_quiet(args: list[str]) -> tuple[int, str, float]:
    import contextlib
    import io
    import time

    err = io.StringIO()
    start = time.monotonic()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        status = main(args)
    return status, err.getvalue(), time.monotonic() - start


HOSTILE_BASE = """name: hostile
input: {resolution: 32, channels: 3}
num_classes: 10
layers:
  - {op: conv2d, c: 16, s: 2}
  - {op: avgpool, global: true}
  - {op: fc, c: num_classes}
"""


@settings.get_profile(PROFILE)
@given(nested_values(), st.sampled_from(["layers", "input", "set"]))
def test_nesting_of_any_depth_ends_valid_or_exit_2(tmp_path_factory, value, where):
    path = tmp_path_factory.mktemp("n") / "nested.yaml"
    args = ["validate", str(path)]
    if where == "set":
        path.write_text(HOSTILE_BASE)
        args += ["--set", f"resolution={value}"]
    elif where == "input":
        path.write_text(HOSTILE_BASE.replace("{resolution: 32, channels: 3}", value))
    else:
        path.write_text(f"name: x\ninput: {{resolution: 32}}\nlayers: {value}\n")
    status, message, seconds = _run_quiet(args)
    assert status == 2, message
    assert "Traceback" not in message and "internal error" not in message
    assert seconds < 5, seconds


@settings.get_profile(PROFILE)
@given(integer_literals(), st.sampled_from(["c", "s", "resolution", "set"]))
def test_integers_of_any_size_end_valid_or_located_exit_2(tmp_path_factory, literal, field):
    path = tmp_path_factory.mktemp("i") / "integer.yaml"
    if field == "set":
        path.write_text(HOSTILE_BASE)
        args = ["validate", str(path), "--set", f"num_classes={literal}"]
    else:
        old = {"c": "c: 16", "s": "s: 2", "resolution": "resolution: 32"}[field]
        path.write_text(HOSTILE_BASE.replace(old, f"{old.split(':')[0]}: {literal}"))
        args = ["validate", str(path)]
    status, message, seconds = _run_quiet(args)
    assert status in (0, 2), message
    assert "Traceback" not in message and "internal error" not in message
    if status == 2:
        assert "expected" in message, message
        assert len(message) < 600, message
        if field != "set":
            assert re.search(re.escape(str(path)) + r":\d+:\d+: ", message), message
    assert seconds < 5, seconds
