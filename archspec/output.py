"""Writing results: atomically, inside the chosen directory only, all or nothing."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

from archspec.errors import Location, SpecError


def _safe_relative(rel: str) -> PurePosixPath:
    path = PurePosixPath(rel)
    if path.is_absolute() or ".." in path.parts or not path.parts or rel != path.as_posix():
        raise ValueError(f"refusing to write outside the output directory: {rel!r}")
    return path


def _default_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def write_file(path: str | os.PathLike[str], data: str | bytes) -> None:
    """Write one file atomically: a temporary file beside it, then rename over the target."""
    target = Path(path)
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        raise SpecError("the output's folder does not exist", Location(str(target)), "-o")
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
        os.chmod(tmp, _default_mode())  # mkstemp makes 0600; give the usual umask-based mode
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_tree(out_dir: str | os.PathLike[str], files: Mapping[str, str | bytes]) -> list[Path]:
    """Write `{relative path: content}` under `out_dir` as one unit.

    Everything is first written into a temporary sibling folder; only when every file is there
    are they moved into place (each move an atomic rename). No path can leave `out_dir`.
    """
    root = Path(out_dir)
    rels = [_safe_relative(rel) for rel in files]
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".archspec-", dir=root))
    written: list[Path] = []
    try:
        for rel, (key, content) in zip(rels, files.items(), strict=True):
            tmp = staging / rel
            tmp.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
            del key
        for rel in rels:
            final = root / rel
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging / rel, final)
            written.append(final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return written


def nonnegative_int(text: str) -> int:
    """argparse type for counts, seeds and job numbers: a whole number ≥ 0."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}")
    return value


class Progress:
    """A one-line progress counter on stderr (shown only when stderr is a terminal)."""

    def __init__(self, total: int, label: str, enabled: bool | None = None) -> None:
        self.total = total
        self.label = label
        self.done = 0
        self.enabled = sys.stderr.isatty() if enabled is None else enabled

    def step(self, what: str = "") -> None:
        """Count one unit of work done."""
        self.done += 1
        if self.enabled:
            sys.stderr.write(f"\r{self.label} {self.done}/{self.total} {what[:40]:<40}")
            sys.stderr.flush()

    def close(self) -> None:
        """End the progress line."""
        if self.enabled:
            sys.stderr.write("\n")
            sys.stderr.flush()
