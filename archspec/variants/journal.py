"""The sweep journal: every outcome appended as it completes, so that an interrupted sweep
resumes where it stopped.

`DIR/sweep.partial.jsonl` (JSON Lines) starts with a header naming the sweep it belongs to: the
space, and a fingerprint of the variants' ids in order, the memory settings and the work done on
each (the task and its settings). Each later line is one variant's outcome, written whole and
flushed: `{"id": ..., "metrics": {...}}`, or `{"id": ..., "reason": ...}` for an illegal one.
(Variants whose evaluation failed are not journaled: a resumed sweep tries them again.)

Opening a journal that exists resumes it: a last line torn by a crash is dropped (and that
variant done again), the others are taken as done. A journal of another sweep (another space,
`--n`, `--seed`, memory or measurement settings) is refused unless `restart` is asked for; so is
a folder another sweep is writing into (the journal is locked while open). Once the final files
are in place, the journal is removed."""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from archspec.errors import Location, SpecError
from archspec.variants.engine import Work
from archspec.variants.model import Outcome, SpaceDef, Variant

JOURNAL = "sweep.partial.jsonl"
FORMAT = 1


def fingerprint(space: SpaceDef, variants: Sequence[Variant], work: Work) -> str:
    """What makes two sweeps the same sweep: the variants (content ids, in order), the memory
    settings and the work on each. `--where`, `--pareto`, `--csv` and `--plot` are left out:
    they only choose what the final files show."""
    data = {
        "ids": [v.id for v in variants],
        "memory": asdict(space.memory),
        "work": work.describe(),
    }
    text = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:20]


class Journal:
    """An open, locked journal in an output folder."""

    def __init__(self, path: Path, fd: int, records: dict[str, dict[str, Any]], dropped: bool):
        self.path = path
        self.fd = fd
        self.records = records  # id -> its journal record, for the variants done before
        self.dropped = dropped  # a torn last line was dropped

    @classmethod
    def open(
        cls, folder: str | os.PathLike[str], space: SpaceDef, key: str, restart: bool = False
    ) -> Journal:
        """Create the folder if needed and open (or resume) its journal for the sweep `key`."""
        root = Path(folder)
        path = root / JOURNAL
        try:
            root.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o666)
        except OSError as exc:
            raise _write_error(path, exc) from None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise SpecError(
                    "another archspec sweep is writing into this folder",
                    Location(str(path)),
                    "-o",
                    hint="wait for it to finish, or write to another folder",
                ) from None
            records, good, dropped = _read(path, fd, key, space.name, restart)
            if good is None:  # a new journal (or a restart)
                os.ftruncate(fd, 0)
                header = {"archspec_sweep": FORMAT, "space": space.name, "fingerprint": key}
                _append(fd, header)
            elif dropped:
                os.ftruncate(fd, good)
            return cls(path, fd, records, dropped)
        except BaseException:
            os.close(fd)
            raise

    def done(self, variants: Sequence[Variant]) -> dict[str, Outcome]:
        """The outcomes already journaled, for the variants of this sweep."""
        out = {}
        for v in variants:
            record = self.records.get(v.id)
            if record is not None:
                out[v.id] = Outcome(v.point, v.id, record.get("metrics"), record.get("reason"))
        return out

    def append(self, outcome: Outcome) -> None:
        """Journal one new outcome (a failed evaluation is not journaled)."""
        if outcome.failed:
            return
        record: dict[str, Any] = {"id": outcome.id}
        if outcome.metrics is not None:
            record["metrics"] = dict(outcome.metrics)
        else:
            record["reason"] = outcome.reason
        try:
            _append(self.fd, record)
        except OSError as exc:
            raise _write_error(self.path, exc) from None

    def close(self) -> None:
        """Release the journal (it stays, for a rerun to resume)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def finish(self) -> None:
        """The final files are in place: remove the journal."""
        if self.fd >= 0:
            os.unlink(self.path)
        self.close()


def _append(fd: int, record: Mapping[str, Any]) -> None:
    line = (json.dumps(record, separators=(", ", ": ")) + "\n").encode("utf-8")
    written = os.write(fd, line)  # one write: a crash leaves a whole line or a torn last one
    while written < len(line):
        written += os.write(fd, line[written:])


def _read(
    path: Path, fd: int, key: str, name: str, restart: bool
) -> tuple[dict[str, dict[str, Any]], int | None, bool]:
    """The journal's records, the byte length of its whole lines (None: start a new journal),
    and whether a torn last line was dropped."""
    os.lseek(fd, 0, os.SEEK_SET)
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    data = b"".join(chunks)
    if restart:
        return {}, None, False
    lines = data.split(b"\n")
    tail = lines.pop()  # after the last newline: empty, or a torn line
    parsed: list[Any] = []
    for number, line in enumerate(lines, 1):
        try:
            parsed.append(json.loads(line))
        except ValueError:
            if number < len(lines):
                raise SpecError(
                    "is not a sweep record (the journal was edited?)",
                    Location(str(path), number, 1),
                    "-o",
                    hint="rerun with --restart to discard the journal, or use another folder",
                ) from None
            tail = line + b"\n" + tail  # a last line that does not parse is torn too
            parsed.append(None)
    if parsed and parsed[-1] is None:
        parsed.pop()
        lines.pop()
    good = sum(len(line) + 1 for line in lines)
    dropped = bool(tail)
    if not parsed:
        return {}, None, dropped
    header = parsed[0]
    if not (isinstance(header, dict) and header.get("archspec_sweep") == FORMAT):
        raise SpecError(
            "is not an archspec sweep journal",
            Location(str(path), 1, 1),
            "-o",
            hint="remove it, or write to another folder",
        )
    if header.get("fingerprint") != key:
        raise SpecError(
            f"holds a partial sweep of {header.get('space')!r} with other variants or "
            "settings (space, --n, --seed, memory or measurement); resuming would mix them",
            Location(str(path)),
            "-o",
            hint="rerun with --restart to discard it and start again, or use another folder",
        )
    records = {}
    for number, record in enumerate(parsed[1:], 2):
        if not (
            isinstance(record, dict)
            and isinstance(record.get("id"), str)
            and (isinstance(record.get("metrics"), dict) or isinstance(record.get("reason"), str))
        ):
            raise SpecError(
                "is not a sweep record (the journal was edited?)",
                Location(str(path), number, 1),
                "-o",
                hint="rerun with --restart to discard the journal, or use another folder",
            )
        records[record["id"]] = record
    return records, good, dropped


def _write_error(path: Path, exc: OSError) -> SpecError:
    if exc.errno == errno.ELOOP:
        return SpecError("is a symbolic link; refusing to write through it", Location(str(path)))
    reason = (exc.strerror or str(exc)).lower() if exc.errno != errno.EROFS else "read-only"
    return SpecError(f"cannot write: {reason}", Location(str(path)), "-o")
