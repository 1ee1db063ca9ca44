"""The catalogue of bad specs: each case marks the line the error must name with `#<-`."""

from __future__ import annotations

HEAD = """name: bad_spec
input: {resolution: 32, channels: 3}
num_classes: 10
layers:
"""

TAIL = """  - {op: avgpool, global: true}
  - {op: fc, c: num_classes}
"""


def rows(*lines: str, head: str = HEAD, tail: str = TAIL) -> str:
    """A small spec with the given rows between a standard header and classifier tail."""
    return head + "".join(f"  {line}\n" for line in lines) + tail


# (case id, spec text, substring the message must contain)
CASES: list[tuple[str, str, str]] = [
    ("yaml_syntax", rows("- {op: conv2d, c: 16, s: 2  #<-"), "YAML syntax error"),
    ("yaml_bad_indent", HEAD + "  - {op: conv2d, c: 8}\n bad: indent  #<-\n", "YAML syntax error"),
    (
        "wrong_type_text",
        rows("- {op: bottleneck, t: six, c: 16}  #<-"),
        "found 'six'; expected an integer",
    ),
    (
        "wrong_type_float_channels",
        rows("- {op: conv2d, c: 1.5}  #<-"),
        "found 1.5; expected a positive integer",
    ),
    (
        "wrong_type_bool_int",
        rows("- {op: bottleneck, t: 6, c: 16, n: true}  #<-"),
        "found True; expected an integer",
    ),
    ("missing_field", rows("- {op: bottleneck, c: 16}  #<-"), "missing required field 't'"),
    ("missing_op", rows("- {c: 16, s: 2}  #<-"), "missing required field 'op'"),
    ("unknown_op", rows("- {op: botleneck, t: 6, c: 16}  #<-"), "did you mean 'bottleneck'?"),
    ("unknown_row_key", rows("- {op: conv2d, c: 16, stride: 2}  #<-"), "unknown field 'stride'"),
    (
        "unknown_header_key",
        "name: x\nwidht_multiplier: 0.5  #<-\ninput: {resolution: 32}\nlayers: []\n",
        "did you mean 'width_multiplier'?",
    ),
    (
        "zero_stride",
        rows("- {op: conv2d, c: 16, s: 0}  #<-"),
        "found 0; expected an integer from 1 to 8",
    ),
    (
        "negative_channels",
        rows("- {op: conv2d, c: -16}  #<-"),
        "found -16; expected a positive integer",
    ),
    (
        "absurd_channels",
        rows("- {op: conv2d, c: 1000000000000}  #<-"),
        "found 1000000000000; expected a positive integer",
    ),
    (
        "absurd_width",
        "name: x\ninput: {resolution: 32}\nwidth_multiplier: 1.0e9  #<-\nlayers:\n  - {op: conv2d, c: 8}\n",
        "expected a number from 0.01 to 16",
    ),
    (
        "zero_resolution",
        "name: x\ninput: {resolution: 0}  #<-\nlayers:\n  - {op: conv2d, c: 8}\n",
        "expected a positive integer or [height, width]",
    ),
    (
        "stride_below_one",
        rows(*["- {op: conv2d, c: 8, s: 2}"] * 5, "- {op: conv2d, c: 8, s: 2}  #<-"),
        "shrink it below one pixel",
    ),
    ("groups_not_dividing", rows("- {op: conv2d, c: 16, groups: 3}  #<-"), "groups=3 must divide"),
    (
        "dangling_reference",
        rows("- {op: conv2d, c: 16}", "- {op: conv2d, c: 16, from: nothere}  #<-"),
        "unknown row 'nothere': no row has that name",
    ),
    (
        "cyclic_reference",
        rows(
            "- {op: conv2d, name: a, c: 16, from: b}  #<-",
            "- {op: conv2d, name: b, c: 16, from: a}",
        ),
        "defined later",
    ),
    (
        "duplicate_names",
        rows("- {op: conv2d, name: a, c: 16}", "- {op: conv2d, name: a, c: 16}  #<-"),
        "duplicate",
    ),
    (
        "add_shape_mismatch",
        rows(
            "- {op: conv2d, name: a, c: 16}",
            "- {op: conv2d, name: b, c: 24}",
            "- {op: add, from: [a, b]}  #<-",
        ),
        "cannot add tensors of shapes",
    ),
    (
        "concat_spatial_mismatch",
        rows(
            "- {op: conv2d, name: a, c: 16}",
            "- {op: conv2d, name: b, c: 16, s: 2}",
            "- {op: concat, from: [a, b]}  #<-",
        ),
        "cannot concatenate",
    ),
    ("duplicate_yaml_key", rows("- {op: conv2d, c: 16, c: 32}  #<-"), "duplicate key 'c'"),
    (
        "python_object_tag",
        rows("- !!python/object/apply:os.system [echo pwned]  #<-"),
        "is not allowed",
    ),
    ("custom_tag", rows("- {op: conv2d, c: !chan 16}  #<-"), "YAML tag '!chan' is not allowed"),
    (
        "empty_layers",
        "name: x\ninput: {resolution: 32}\nlayers: []  #<-\n",
        "expected at least one row",
    ),
    (
        "layers_not_list",
        "name: x\ninput: {resolution: 32}\nlayers: {op: conv2d}  #<-\n",
        "expected a list of rows",
    ),
    (
        "bad_network_name",
        "name: 'bad \"name\"; rm -rf'  #<-\ninput: {resolution: 32}\nlayers:\n  - {op: conv2d, c: 8}\n",
        "cannot be a network name",
    ),
    (
        "shadowing_network_name",
        "name: torch  #<-\ninput: {resolution: 32}\nlayers:\n  - {op: conv2d, c: 8}\n",
        "would shadow the Python module 'torch'",
    ),
    (
        "duplicate_outputs",
        "name: x\ninput: {resolution: 32}\noutputs: [a, a]  #<-\nlayers:\n  - {op: conv2d, name: a, c: 8}\n",
        "listed twice",
    ),
    ("keyword_row_name", rows("- {op: conv2d, name: class, c: 16}  #<-"), "it is a Python keyword"),
    ("c_keyword_row_name", rows("- {op: conv2d, name: volatile, c: 16}  #<-"), "it is a C keyword"),
    ("even_kernel", rows("- {op: conv2d, c: 16, k: 4}  #<-"), "expected an odd kernel size"),
    (
        "fc_not_1x1",
        HEAD + "  - {op: conv2d, c: 16}\n  - {op: fc, c: 10}  #<-\n",
        "expected a 1×1 feature map",
    ),
    (
        "unused_branch",
        rows(
            "- {op: conv2d, name: a, c: 16}",
            "- {op: conv2d, name: side, c: 8}  #<-",
            "- {op: conv2d, from: a, c: 16}",
        ),
        "never used",
    ),
    (
        "bad_activation",
        rows("- {op: conv2d, c: 16, act: relu7}  #<-"),
        "expected one of relu, relu6, linear",
    ),
    (
        "alias_bomb",
        "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]  #<-\n",
        "expands to more than",
    ),
    (
        "upsample_without_size",
        rows("- {op: conv2d, c: 16}", "- {op: upsample}  #<-"),
        "expected exactly one of `like`",
    ),
    (
        "avgpool_without_window",
        rows("- {op: conv2d, c: 16}", "- {op: avgpool}  #<-"),
        "expected `k` or `global: true`",
    ),
    ("nan_value", rows("- {op: conv2d, c: 16, s: .nan}  #<-"), "expected a finite number"),
    (
        "merge_single_input",
        rows("- {op: conv2d, name: a, c: 16}", "- {op: add, from: a}  #<-"),
        "expected two or more rows",
    ),
    ("empty_file", "#<-\n", "the file is empty"),
    ("top_level_list", "- {op: conv2d}  #<-\n", "expected a mapping"),
    ("recursive_alias", "name: x\na: &a [*a]  #<-\n", "nests deeper than"),
    ("deep_nesting", "name: x\nlayers: " + "[" * 100 + "]" * 100 + "  #<-\n", "nests deeper than"),
    (
        "deep_flow_nesting_1000",
        "name: x\nlayers: " + "[" * 1000 + "]" * 1000 + "  #<-\n",
        "nests deeper than 64 levels",
    ),
    (
        "deep_mapping_nesting",
        "name: x\nlayers: " + "{a: " * 400 + "1" + "}" * 400 + "  #<-\n",
        "nests deeper than 64 levels",
    ),
    (
        "deep_block_nesting",
        "name: x\nlayers:\n"
        + "".join("  " * i + "-\n" for i in range(1, 64))
        + "  " * 64
        + "-  #<-\n",
        "nests deeper than 64 levels",
    ),
    (
        "huge_decimal_integer",
        rows("- {op: conv2d, c: " + "9" * 5000 + "}  #<-"),
        "layers[0].c: found an integer of 5000 digits; expected at most 40 digits",
    ),
    (
        "huge_hex_integer",
        rows("- {op: conv2d, c: 16, s: 0x" + "f" * 5000 + "}  #<-"),
        "layers[0].s: found an integer of 5000 digits",
    ),
    (
        "huge_integer_as_text",
        rows("- {op: conv2d, c: '" + "9" * 5000 + "'}  #<-"),
        "layers[0].c: found '99999",
    ),
    ("complex_list_key", "name: x\n? [a, b]  #<-\n: 1\n", "found a list as a key"),
    ("complex_mapping_key", "name: x\n{a: 1}: 1  #<-\n", "found a mapping as a key"),
    ("undefined_alias", "name: x\ninput: *res  #<-\n", "found undefined alias *res"),
    ("second_document", "name: x\n---  #<-\nname: y\n", "found a second YAML document"),
    (
        "pool_window_too_big",
        rows("- {op: conv2d, c: 16, s: 8}", "- {op: avgpool, k: 7, padding: valid}  #<-"),
        "larger than the 4×4 feature map",
    ),
]


def marked_line(text: str) -> int:
    """1-based line number of the `#<-` marker."""
    for number, line in enumerate(text.splitlines(), start=1):
        if "#<-" in line:
            return number
    raise AssertionError("case has no #<- marker")
