"""Writing results: checked before any work, staged, then put in place all or nothing.

The commands check every destination first (`check_file_destination`, `check_dir_destination`):
an empty path, a folder where a file must go (or a file where a folder must go), a path under a
file, a folder where nothing can be created (read-only, `/proc`) are located errors before
anything runs. `write_outputs` then writes everything a command produces as one unit:

- every file is written into a hidden staging folder on the destination's file system first;
- a folder that does not exist yet appears in one rename, complete;
- into an existing folder, files are moved one by one, under an exclusive lock on that folder
  (two runs into one folder never mix), every replaced file kept aside until the last move so
  that any failure puts the folder back as it was;
- nothing is written through a symbolic link inside the output folder, nor outside it;
- the staging folders are removed on every exit, SIGTERM included (the CLI turns SIGTERM into an
  exception so that this cleanup runs).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import fcntl
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from archspec.errors import Location, SpecError

Data = str | bytes


@dataclass(frozen=True)
class FileOutput:
    """One file a command writes (`-o FILE`, `--plot FILE`)."""

    path: str | os.PathLike[str]
    data: Data
    option: str = "-o"


@dataclass(frozen=True)
class TreeOutput:
    """A folder of files a command writes (`-o DIR`), `{relative path: content}`."""

    path: str | os.PathLike[str]
    files: Mapping[str, Data]
    option: str = "-o"


def _safe_relative(rel: str) -> PurePosixPath:
    path = PurePosixPath(rel)
    if path.is_absolute() or ".." in path.parts or not path.parts or rel != path.as_posix():
        raise ValueError(f"refusing to write outside the output directory: {rel!r}")
    return path


def _default_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _reason(exc: OSError) -> str:
    return (exc.strerror or str(exc)).lower() if exc.errno != errno.EROFS else "read-only"


def _nonempty(path: str | os.PathLike[str] | None, option: str, what: str) -> Path:
    text = os.fspath(path) if path is not None else ""
    if not text.strip():
        raise SpecError(f"found an empty path; expected {what}", None, option)
    return Path(text)


def _nearest_existing(path: Path) -> Path:
    """`path` itself or its closest ancestor that exists (a relative path ends at `.`)."""
    for candidate in (path, *path.parents):
        if os.path.lexists(candidate):
            return candidate
    return Path(path.anchor or ".")


def _probe(folder: Path, path: Path, option: str) -> None:
    """Create and remove one hidden file in `folder`: the only test of writability that also
    holds for root, read-only mounts and /proc-like file systems."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=".archspec-probe-", dir=folder)
    except OSError as exc:
        raise SpecError(
            f"cannot create files in {folder}: {_reason(exc)}", Location(str(path)), option
        ) from None
    os.close(fd)
    os.unlink(tmp)


def _existing_folder(start: Path, path: Path, option: str) -> Path:
    anchor = _nearest_existing(start)
    if not anchor.is_dir():
        raise SpecError(
            f"lies under {anchor}, which is a file, not a folder", Location(str(path)), option
        )
    return anchor


def check_file_destination(path: str | os.PathLike[str] | None, option: str = "-o") -> Path:
    """Refuse, before any work, a file destination that cannot be written: empty, a folder, not
    a regular file, under a file, in a missing folder, or where no file can be created."""
    target = _nonempty(path, option, "a file name")
    where = Location(str(target))
    if target.is_dir():
        raise SpecError(
            "is a folder; expected a file name", where, option, "name a file inside the folder"
        )
    if os.path.lexists(target) and not target.is_file():  # a device, a pipe, a broken link
        raise SpecError("exists and is not a regular file", where, option)
    parent = target.parent
    anchor = _existing_folder(parent, target, option)
    if anchor != parent:
        raise SpecError(f"the folder {parent} does not exist", where, option)
    _probe(parent, target, option)
    return target


def check_dir_destination(path: str | os.PathLike[str] | None, option: str = "-o") -> Path:
    """Refuse, before any work, a folder destination that cannot be written: empty, an existing
    file, under a file, or where nothing can be created. Missing folders are created later."""
    root = _nonempty(path, option, "a folder")
    if os.path.lexists(root) and not root.is_dir():
        raise SpecError("exists and is not a folder", Location(str(root)), option)
    _probe(_existing_folder(root, root, option), root, option)
    return root


def check_tree_destination(
    path: str | os.PathLike[str], rel_paths: Sequence[str], option: str = "-o"
) -> None:
    """Refuse, before any work, a folder destination whose existing content is in the way of
    `rel_paths` (a symbolic link on the way, a file where a folder goes, a folder where a file
    goes): the checks `write_outputs` makes again when it writes."""
    root = check_dir_destination(path, option)
    if root.is_dir():
        _tree_targets(
            Path(os.path.abspath(root)), TreeOutput(root, dict.fromkeys(rel_paths, ""), option)
        )


class _Transaction:
    """Staging folders, locks, and the moves done so far (undone in reverse on failure)."""

    def __init__(self) -> None:
        self.staging: list[Path] = []
        self.locks: dict[str, int] = {}
        self.done: list[tuple[Path, Path | None]] = []  # (final, what it replaced)
        self.created: list[Path] = []

    def stage(self, folder: Path) -> Path:
        made = Path(tempfile.mkdtemp(prefix=".archspec-", dir=folder))
        self.staging.append(made)
        return made

    def lock(self, folder: Path) -> None:
        key = os.path.realpath(folder)
        if key not in self.locks:
            fd = os.open(key, os.O_RDONLY | os.O_DIRECTORY)
            self.locks[key] = fd
            fcntl.flock(fd, fcntl.LOCK_EX)

    def unlock(self) -> None:
        for fd in self.locks.values():
            os.close(fd)  # closing the last descriptor releases the flock
        self.locks.clear()

    def put(self, staged: Path, final: Path, aside: Path) -> None:
        backup = None
        if os.path.lexists(final):
            backup = aside / f"aside-{len(self.done)}"
            os.replace(final, backup)
        self.done.append((final, backup))
        os.replace(staged, final)

    def mkdir(self, folder: Path) -> None:
        folder.mkdir()
        self.created.append(folder)

    def rollback(self) -> None:
        for final, backup in reversed(self.done):
            if final.is_dir() and not final.is_symlink():
                shutil.rmtree(final, ignore_errors=True)
            elif os.path.lexists(final):
                final.unlink()
            if backup is not None:
                os.replace(backup, final)
        for folder in reversed(self.created):
            with contextlib.suppress(OSError):
                folder.rmdir()

    def close(self) -> None:
        for folder in self.staging:
            shutil.rmtree(folder, ignore_errors=True)
        self.unlock()


def _write_staged(path: Path, data: Data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "xb") as handle:
        handle.write(data.encode("utf-8") if isinstance(data, str) else data)
    os.chmod(path, _default_mode())


def _anchor(output: FileOutput | TreeOutput) -> Path:
    path = Path(os.path.abspath(output.path))
    return path.parent if isinstance(output, FileOutput) else _nearest_existing(path)


def _tree_targets(root: Path, tree: TreeOutput) -> list[tuple[PurePosixPath, Path]]:
    """Each file's final path, after checking that nothing on its way inside the existing
    `root` is a symbolic link or a file where a folder must go, or a folder where it must go."""
    out = []
    for rel in (_safe_relative(r) for r in tree.files):
        current = root
        for part in rel.parts[:-1]:
            current = current / part
            if current.is_symlink():
                raise SpecError(
                    "is a symbolic link; refusing to write through it",
                    Location(str(current)),
                    tree.option,
                )
            if os.path.lexists(current) and not current.is_dir():
                raise SpecError(
                    f"is a file where the folder of {rel} must go",
                    Location(str(current)),
                    tree.option,
                )
        final = root / rel
        if final.is_dir() and not final.is_symlink():
            raise SpecError(
                f"is a folder where the file {rel} must go", Location(str(final)), tree.option
            )
        out.append((rel, final))
    return out


def _put_tree(txn: _Transaction, tree: TreeOutput) -> None:
    root = Path(os.path.abspath(tree.path))
    anchor = _nearest_existing(root)
    if anchor == root:  # an existing folder: file by file, each replaced file kept aside
        targets = _tree_targets(root, tree)
        staging = txn.stage(root)
        for i, (rel, _) in enumerate(targets):
            _write_staged(staging / f"f{i}", tree.files[rel.as_posix()])
        for i, (_, final) in enumerate(targets):
            for folder in reversed(final.relative_to(root).parents[:-1]):
                if not (root / folder).is_dir():
                    txn.mkdir(root / folder)
            txn.put(staging / f"f{i}", final, staging)
        return
    # A new folder: build it whole in the staging folder, then one rename puts it in place.
    staging = txn.stage(anchor)
    inside = root.relative_to(anchor)
    for rel in tree.files:
        _write_staged(staging / inside / _safe_relative(rel), tree.files[rel])
    (staging / inside).mkdir(parents=True, exist_ok=True)
    top = inside.parts[0]
    txn.done.append((anchor / top, None))
    os.rename(staging / top, anchor / top)


def _put_file(txn: _Transaction, output: FileOutput) -> None:
    final = Path(os.path.abspath(output.path))
    staging = txn.stage(final.parent)
    _write_staged(staging / "data", output.data)
    txn.put(staging / "data", final, staging)


def _lock_all(txn: _Transaction, outputs: Sequence[FileOutput | TreeOutput]) -> None:
    """Lock every destination folder (a missing output folder: its closest existing ancestor),
    in one order; a folder created meanwhile by another run means locking it instead."""
    while True:
        anchors = sorted({str(_anchor(o)) for o in outputs})
        for anchor in anchors:
            txn.lock(Path(anchor))
        if sorted({str(_anchor(o)) for o in outputs}) == anchors:
            return
        txn.unlock()


def _finals(outputs: Sequence[FileOutput | TreeOutput]) -> None:
    seen: set[str] = set()
    for output in outputs:
        if isinstance(output, FileOutput):
            names = [os.path.abspath(output.path)]
        else:
            root = os.path.abspath(output.path)
            names = [os.path.join(root, _safe_relative(r)) for r in output.files]
        for name in names:
            if name in seen:
                raise SpecError("two outputs would be written to this file", Location(name))
            seen.add(name)


def write_outputs(outputs: Sequence[FileOutput | TreeOutput]) -> None:
    """Write every output of a command as one unit (see the module docstring); a destination
    that turns out unusable is a `SpecError` and leaves everything as it was."""
    for output in outputs:
        if isinstance(output, FileOutput):
            check_file_destination(output.path, output.option)
        else:
            check_dir_destination(output.path, output.option)
    _finals(outputs)
    txn = _Transaction()
    try:
        _lock_all(txn, outputs)
        for output in outputs:
            if isinstance(output, FileOutput):
                _put_file(txn, output)
            else:
                _put_tree(txn, output)
    except BaseException as exc:
        txn.rollback()
        if isinstance(exc, OSError):
            where = Location(exc.filename if exc.filename else str(outputs[0].path))
            raise SpecError(f"cannot write: {_reason(exc)}", where) from None
        raise
    finally:
        txn.close()


def write_file(path: str | os.PathLike[str], data: Data, option: str = "-o") -> None:
    """Write one file as one unit (`write_outputs` with one `FileOutput`)."""
    write_outputs([FileOutput(path, data, option)])


def write_tree(
    out_dir: str | os.PathLike[str], files: Mapping[str, Data], option: str = "-o"
) -> list[Path]:
    """Write `{relative path: content}` under `out_dir` as one unit; no path can leave it."""
    write_outputs([TreeOutput(out_dir, files, option)])
    return [Path(out_dir) / rel for rel in files]


def nonnegative_int(text: str) -> int:
    """argparse type for counts, seeds and job numbers: a whole number from 0 to 2^63 - 1."""
    try:
        value = int(text) if len(text) <= 40 else -1
    except ValueError:
        value = -1
    if not 0 <= value < 1 << 63:
        shown = text if len(text) <= 40 else text[:37] + "..."
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {shown!r}")
    return value


class Progress:
    """A one-line progress counter on stderr (shown only when stderr is a terminal): done/total,
    the rate since the start and the time left at that rate. Redrawn at most ten times a second
    (a sweep counts hundreds of variants a second); `start` counts work already done before
    (a resumed sweep), which the rate leaves out."""

    def __init__(self, total: int, label: str, enabled: bool | None = None, start: int = 0) -> None:
        self.total = total
        self.label = label
        self.done = start
        self.start = start
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.began = time.monotonic()
        self.drawn = 0.0
        self.width = 0

    def line(self, what: str = "", now: float | None = None) -> str:
        """The progress line: `label done/total  rate/s  ETA m:ss  what`."""
        elapsed = (time.monotonic() if now is None else now) - self.began
        counted = self.done - self.start
        text = f"{self.label} {self.done}/{self.total}"
        if counted > 0 and elapsed > 0:
            rate = counted / elapsed
            left = max(0, self.total - self.done) / rate
            text += f"  {rate:,.1f}/s  ETA {_clock(left)}"
        return f"{text}  {what[:40]}".rstrip()

    def step(self, what: str = "") -> None:
        """Count one unit of work done."""
        self.done += 1
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self.drawn < 0.1 and self.done < self.total:
            return
        self.drawn = now
        text = self.line(what, now)
        pad = max(0, self.width - len(text))
        self.width = len(text)
        sys.stderr.write("\r" + text + " " * pad)
        sys.stderr.flush()

    def close(self) -> None:
        """End the progress line."""
        if self.enabled:
            sys.stderr.write("\n")
            sys.stderr.flush()


def _clock(seconds: float) -> str:
    """`m:ss` (or `h:mm:ss`) for a duration."""
    whole = int(seconds + 0.5)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
