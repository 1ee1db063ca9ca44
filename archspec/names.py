"""The strict check every name passes before it can become an identifier in generated code."""

from __future__ import annotations

import keyword
import re
import sys

# \Z, not $: `$` also matches before a trailing newline.
IDENTIFIER = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,62}\Z")
SPEC_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.\-]{0,62}\Z")

C_KEYWORDS = frozenset(
    [
        "auto",
        "break",
        "case",
        "char",
        "const",
        "continue",
        "default",
        "do",
        "double",
        "else",
        "enum",
        "extern",
        "float",
        "for",
        "goto",
        "if",
        "inline",
        "int",
        "long",
        "register",
        "restrict",
        "return",
        "short",
        "signed",
        "sizeof",
        "static",
        "struct",
        "switch",
        "typedef",
        "union",
        "unsigned",
        "void",
        "volatile",
        "while",
        "_Bool",
        "_Complex",
        "_Imaginary",
        "main",
    ]
)
# Names the generated modules use themselves; a row named like these would shadow them.
RESERVED = frozenset(
    [
        "input",
        "output",
        "weights",
        "build_model",
        "torch",
        "nn",
        "np",
        "keras",
        "onnx",
        "self",
        "model",
        "x",
        "y",
        "super",
        "None",
        "True",
        "False",
        "print",
        "exec",
        "eval",
        "open",
        "os",
        "sys",
    ]
)


# A generated module named like an importable package would shadow it next to the model file.
SHADOWED_MODULES = frozenset(sys.stdlib_module_names) | {
    "archspec",
    "jinja2",
    "keras",
    "networkx",
    "numpy",
    "onnx",
    "onnxruntime",
    "tensorflow",
    "torch",
    "torchvision",
    "yaml",
    "weights",
    "run",
}


def module_name_problem(spec_name: str) -> str | None:
    """Why a network name cannot name generated files, or None."""
    ident = spec_identifier(spec_name)
    if ident.lower() in SHADOWED_MODULES or ident in C_KEYWORDS or keyword.iskeyword(ident):
        return f"the generated module {ident}.py would shadow the Python module {ident!r}"
    return None


def identifier_problem(name: str) -> str | None:
    """Why `name` cannot be a row name, or None when it is safe in every target."""
    if not IDENTIFIER.match(name):
        return (
            "expected a letter followed by letters, digits or underscores (at most 63 characters)"
        )
    lowered = name.lower()
    if keyword.iskeyword(name) or keyword.issoftkeyword(name):
        return "it is a Python keyword"
    if name in C_KEYWORDS:
        return "it is a C keyword"
    if name in RESERVED or lowered.startswith("__"):
        return "it is reserved by the generated code"
    return None


def spec_identifier(name: str) -> str:
    """The identifier derived from a (checked) spec name: dots and dashes become underscores."""
    return name.replace(".", "_").replace("-", "_")
