"""What a new user meets first when writing networks other than MobileNetV2 (issue 15)."""

from __future__ import annotations

import pytest

from archspec.errors import SpecError
from archspec.lower import lower
from archspec.spec import load_spec_text

HEAD = "name: net\ninput: {resolution: 32}\nnum_classes: 10\n"


def _error(text: str) -> SpecError:
    with pytest.raises(SpecError) as info:
        lower(load_spec_text(text, "net.yaml"))
    return info.value


def _line(text: str, marker: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if marker in line)


def test_never_used_points_at_the_dangling_end_of_a_chain():
    text = HEAD + (
        "layers:\n"
        "  - {op: conv2d, name: trunk, c: 16, s: 2}\n"
        "  - {op: conv2d, name: box0, from: trunk, c: 12, k: 1}\n"
        "  - {op: conv2d, name: box1, c: 12, k: 1}\n"
        "  - {op: conv2d, name: cls, from: trunk, c: num_classes, k: 1}\n"
    )
    err = _error(text)
    assert err.location.line == _line(text, "box1")
    assert err.field == "layers[2]"
    assert "never used (it ends a chain of 2 unused rows)" in err.message
    assert "`outputs:`" in (err.hint or "")
    # listing the dangling end as an output is the fix
    fixed = text.replace("layers:", "outputs: [box1, cls]\nlayers:")
    assert lower(load_spec_text(fixed)).outputs == ("box1", "cls")


def test_never_used_single_row_keeps_its_message():
    text = HEAD + (
        "outputs: [b]\nlayers:\n"
        "  - {op: conv2d, name: a, c: 8}\n"
        "  - {op: conv2d, name: side, c: 8}\n"
        "  - {op: conv2d, name: b, from: a, c: 8}\n"
    )
    err = _error(text)
    assert err.location.line == _line(text, "side")
    assert err.message.endswith("the output of this conv2d row is never used")
    assert "now only the network's outputs" in (err.hint or "")
