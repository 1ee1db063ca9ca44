"""Hypothesis strategies for random valid specs (every op, branches, widths, resolutions) and for
random mutations of them."""

from __future__ import annotations

from typing import Any

import yaml
from hypothesis import strategies as st

ACTS = ("relu", "relu6", "linear")


@st.composite
def spec_dicts(draw: st.DrawFn, max_rows: int = 8, classifier: bool | None = None) -> dict:
    """A random spec that must lower: shapes are tracked while drawing, merges only combine
    branches whose shapes agree by construction."""
    size = draw(st.integers(8, 40))
    width = draw(st.sampled_from([0.25, 0.35, 0.5, 0.75, 1.0, 1.3]))
    rows: list[dict[str, Any]] = []
    stem_s = draw(st.sampled_from([1, 2]))
    rows.append(
        {
            "op": "conv2d",
            "name": "stem",
            "c": draw(st.integers(4, 24)),
            "s": stem_s,
            "k": draw(st.sampled_from([1, 3, 5])),
        }
    )
    h = -(-size // stem_s)
    counter = 0
    last = "stem"
    for _ in range(draw(st.integers(1, max_rows))):
        counter += 1
        name = f"r{counter}"
        stride = draw(st.sampled_from([1, 2])) if h >= 2 else 1
        kind = draw(
            st.sampled_from(
                [
                    "bottleneck",
                    "bottleneck",
                    "conv2d",
                    "dwconv",
                    "pool",
                    "add",
                    "concat",
                    "upsample",
                ]
            )
        )
        if kind == "bottleneck":
            row = {
                "op": "bottleneck",
                "name": name,
                "t": draw(st.integers(1, 6)),
                "c": draw(st.integers(4, 40)),
                "n": draw(st.integers(1, 3)),
                "s": stride,
                "k": draw(st.sampled_from([3, 5])),
                "dilation": draw(st.sampled_from([1, 1, 2])),
            }
            h = -(-h // stride)
        elif kind == "conv2d":
            row = {
                "op": "conv2d",
                "name": name,
                "c": draw(st.sampled_from([8, 16, 24])),
                "k": draw(st.sampled_from([1, 3])),
                "s": stride,
                "groups": draw(st.sampled_from([1, 1, 2])) if width >= 0.5 else 1,
                "act": draw(st.sampled_from(ACTS)),
                "bn": draw(st.booleans()),
            }
            if row["groups"] == 2:
                row["c"] = 16
                row["scale"] = "none"
                rows.append(
                    {"op": "conv2d", "name": f"{name}_pre", "c": 16, "k": 1, "scale": "none"}
                )
            h = -(-h // stride)
        elif kind == "dwconv":
            row = {
                "op": "dwconv",
                "name": name,
                "s": stride,
                "k": draw(st.sampled_from([3, 5])),
                "act": draw(st.sampled_from(ACTS)),
            }
            h = -(-h // stride)
        elif kind == "pool":
            if h < 2:
                continue
            row = {"op": "avgpool", "name": name, "k": 2, "s": 2}
            h = (h - 2) // 2 + 1
        elif kind == "add":
            c = draw(st.sampled_from([8, 16]))
            rows.append({"op": "conv2d", "name": f"{name}_a", "from": last, "c": c, "k": 1})
            rows.append({"op": "dwconv", "name": f"{name}_b", "from": last})
            rows.append({"op": "conv2d", "name": f"{name}_c", "c": c, "k": 1, "act": "linear"})
            row = {
                "op": "add",
                "name": name,
                "from": [f"{name}_a", f"{name}_c"],
                "act": draw(st.sampled_from(ACTS)),
            }
        elif kind == "concat":
            rows.append({"op": "conv2d", "name": f"{name}_a", "from": last, "c": 8, "k": 1})
            rows.append({"op": "avgpool", "name": f"{name}_g", "from": last, "global": True})
            rows.append(
                {
                    "op": "upsample",
                    "name": f"{name}_u",
                    "like": last,
                    "mode": draw(st.sampled_from(["bilinear", "nearest"])),
                }
            )
            row = {"op": "concat", "name": name, "from": [f"{name}_a", f"{name}_u"]}
        else:  # upsample by a factor, then back down so sizes stay small
            rows.append(
                {
                    "op": "upsample",
                    "name": f"{name}_up",
                    "factor": 2,
                    "mode": draw(st.sampled_from(["bilinear", "nearest"])),
                }
            )
            row = {"op": "conv2d", "name": name, "c": 8, "s": 2, "k": 3}
            h = -(-(h * 2) // 2)
        rows.append(row)
        last = name
    with_classifier = draw(st.booleans()) if classifier is None else classifier
    if with_classifier:
        rows.append({"op": "conv2d", "name": "last", "c": 64, "k": 1, "scale": "last_layer"})
        rows.append({"op": "avgpool", "name": "gpool", "global": True})
        rows.append({"op": "fc", "name": "classifier", "c": "num_classes"})
    return {
        "name": f"fuzz_{draw(st.integers(0, 10**6))}",
        "input": {"resolution": size, "channels": draw(st.sampled_from([1, 3]))},
        "width_multiplier": width,
        "num_classes": draw(st.integers(2, 12)),
        "layers": rows,
    }


def dump(spec: dict) -> str:
    """YAML text of a spec dict."""
    return yaml.safe_dump(spec, sort_keys=False)


GARBAGE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**15), 10**15),
    st.floats(allow_nan=False),
    st.text(max_size=12),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)


@st.composite
def mutated_texts(draw: st.DrawFn) -> str:
    """A valid spec broken in one random way: a wrong type, a deleted field, swapped rows,
    an unknown key, or garbage bytes spliced into the text."""
    spec = draw(spec_dicts(max_rows=4))
    how = draw(st.sampled_from(["retype", "delete", "swap", "unknown", "bytes", "header"]))
    layers = spec["layers"]
    if how in ("retype", "delete", "unknown"):
        row = draw(st.sampled_from(layers))
        key = draw(st.sampled_from(sorted(row)))
        if how == "retype":
            row[key] = draw(GARBAGE)
        elif how == "delete":
            del row[key]
        else:
            row[draw(st.text(min_size=1, max_size=8))] = draw(GARBAGE)
    elif how == "swap" and len(layers) > 1:
        i = draw(st.integers(0, len(layers) - 2))
        layers[i], layers[i + 1] = layers[i + 1], layers[i]
    elif how == "header":
        key = draw(st.sampled_from(["name", "input", "width_multiplier", "num_classes", "layers"]))
        spec[key] = draw(GARBAGE)
    text = dump(spec)
    if how == "bytes":
        at = draw(st.integers(0, len(text)))
        junk = draw(st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=6))
        text = text[:at] + junk + text[at:]
    return text
