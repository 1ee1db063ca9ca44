"""Random valid specs analyse; random mutations end valid or with a located exit 2.

The suite runs a few hundred cases; `make fuzz` runs the long campaign
(HYPOTHESIS_PROFILE=fuzz, 10,000+ cases per property).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

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


# -- hostile generators (issue 14): output destinations and malformed .npz members -------------

SLOW = settings(settings.get_profile(PROFILE), max_examples=40 if PROFILE == "suite" else 2000)
PLACES = ["new", "nested_new", "empty_dir", "full_dir", "file", "under_file", "empty", "proc"]
PLACES += ["dir_where_file", "symlink_inside", "dev_null"]


def _place(root, kind: str) -> str:
    """Prepare `root` so that the returned path is a destination of the given kind."""
    (root / "afile").write_text("keep\n")
    (root / "full").mkdir()
    (root / "full" / "old.txt").write_text("old\n")
    (root / "full" / "weights.npz").mkdir()  # a folder where build's weights file must go
    (root / "linked").mkdir()
    (root / "elsewhere").mkdir()
    (root / "linked" / "specs").symlink_to(root / "elsewhere")
    return {
        "new": str(root / "new"),
        "nested_new": str(root / "a" / "b" / "c"),
        "empty_dir": str(root / "linked" / "specs" / ".." / ".." / "full" / ".."),
        "full_dir": str(root / "full"),
        "file": str(root / "afile"),
        "under_file": str(root / "afile" / "x"),
        "empty": "",
        "proc": "/proc/archspec-fuzz",
        "dir_where_file": str(root / "full"),
        "symlink_inside": str(root / "linked"),
        "dev_null": "/dev/null",
    }[kind]


def _tree(root) -> dict[str, bytes | None]:
    out: dict[str, bytes | None] = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(folder, name)
            out[path] = None if os.path.isdir(path) else Path(path).read_bytes()
    return out


@SLOW
@given(
    st.sampled_from(PLACES),
    st.sampled_from(["build", "report-o", "report-plot", "schema"]),
    st.booleans(),
)
def test_every_destination_ends_written_whole_or_untouched(tmp_path_factory, kind, command, ok):
    root = tmp_path_factory.mktemp("dest")
    spec = root / "net.yaml"
    spec.write_text(HOSTILE_BASE if ok else HOSTILE_BASE.replace("c: 16", "c: -1"))
    where = _place(root, kind)
    args = {
        "build": ["build", str(spec), "--target", "onnx", "-o", where],
        "report-o": ["report", str(spec), "-o", where],
        "report-plot": ["report", str(spec), "--plot", where + ".svg" if where else ""],
        "schema": ["schema", "-o", where],
    }[command]
    before = _tree(root)
    status, message, seconds = _run_quiet(args)
    assert status in (0, 2), message
    assert "Traceback" not in message and "internal error" not in message
    assert not [p for p in _tree(root) if ".archspec-" in p]
    if status == 2:
        assert message.startswith("error: "), message
        assert _tree(root) == before
    assert seconds < 30, seconds


MEMBER_KINDS = ["good", "wrong_shape", "raw", "truncated", "pickle", "ints", "huge", "nan", "bf16"]


def _member(kind: str, shape: tuple[int, ...], rng, role: str) -> bytes:
    import io

    import numpy as np

    array = rng.standard_normal(shape).astype(np.float32)
    if role == "bn_var":  # a good variance is never negative
        array = np.abs(array)
    if kind == "wrong_shape":
        array = array.reshape(-1)[:-1] if array.size > 1 else np.zeros((2, 2), np.float32)
    elif kind == "pickle":
        array = np.array([{"x": 1}], dtype=object)
    elif kind == "ints":
        array = array.astype(np.int32)
    elif kind == "huge":
        array = array.astype(np.float64) * 1e300
    elif kind == "nan":
        array = np.where(array > 0, np.nan, array).astype(np.float32)
    elif kind == "bf16":
        array = array.astype(np.float16)
    if kind == "raw":
        return rng.bytes(int(rng.integers(0, 200)))
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, allow_pickle=True)
    data = buffer.getvalue()
    return data[: len(data) // 2] if kind == "truncated" else data


@SLOW
@given(
    st.lists(st.sampled_from(MEMBER_KINDS), min_size=1, max_size=6),
    st.booleans(),
    st.booleans(),
    st.integers(0, 2**32 - 1),
)
def test_malformed_npz_members_load_or_are_refused_by_name(
    tmp_path_factory, kinds, extra, deflate, seed
):
    import io
    import zipfile

    import numpy as np

    from archspec.errors import SpecError
    from archspec.weights import expected_weights, load_weights

    graph = lower(load_spec_text(HOSTILE_BASE, "net.yaml"))
    expected = expected_weights(graph)
    rng = np.random.default_rng(seed)
    buffer = io.BytesIO()
    method = zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED
    with zipfile.ZipFile(buffer, "w", compression=method) as zf:
        for i, (key, (shape, role)) in enumerate(expected.items()):
            zf.writestr(f"{key}.npy", _member(kinds[i % len(kinds)], shape, rng, role))
        if extra:
            zf.writestr("intruder.bin", b"\x00" * 10)
    path = tmp_path_factory.mktemp("w") / "w.npz"
    path.write_bytes(buffer.getvalue())
    bad = extra or any(k not in ("good", "bf16") for k in kinds[: len(expected)])
    try:
        loaded = load_weights(str(path), graph)
    except SpecError as exc:
        assert exc.field == "--weights"
        assert bad, exc.render()
    else:
        assert not bad
        assert all(v.dtype == np.float32 for v in loaded.values())
