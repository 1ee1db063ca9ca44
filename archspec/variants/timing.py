"""How many timing tasks ran side by side on this machine.

A timing task (one that measures latency) runs inside `side_by_side()`. A small registry file in
the machine's temporary folder (one per user, under an exclusive lock) lists the timing tasks
running now, each with the largest number of tasks it has seen running at once: a task that
starts raises that number for every task already running. When the task ends, its number is how
many timing tasks shared the machine at the busiest moment of its run (1: it ran alone). The
registry holds process ids, so entries of processes that died (a killed worker) are dropped.

The count is per machine, whichever engine or sweep started the tasks: two sweeps timing at once
on one machine see each other, which is what the number is for."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SIDE_BY_SIDE = "side_by_side"  # the manifest field


REGISTRY_ENV = "ARCHSPEC_TIMING_REGISTRY"  # another registry file (tests isolate theirs)


def registry_path() -> Path:
    """This user's registry of running timing tasks on this machine (`$ARCHSPEC_TIMING_REGISTRY`
    if set)."""
    chosen = os.environ.get(REGISTRY_ENV)
    if chosen:
        return Path(chosen)
    return Path(tempfile.gettempdir()) / f"archspec-timing-{os.getuid()}.json"


@dataclass
class Concurrency:
    """Filled in when the `side_by_side()` block ends."""

    most: int = 1  # the most timing tasks running at once during the block, itself included


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def _registry(path: Path) -> Iterator[dict[str, list[int]]]:
    """The registry `{task key: [pid, most seen]}`, locked; written back when the block ends."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "r+", encoding="utf-8") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            entries = json.loads(handle.read() or "{}")
        except ValueError:  # a registry torn by a crash: start a new one
            entries = {}
        if not isinstance(entries, dict):
            entries = {}
        running = {
            k: v
            for k, v in entries.items()
            if isinstance(v, list) and len(v) == 2 and _alive(int(v[0]))
        }
        yield running
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps(running))


@contextlib.contextmanager
def side_by_side(path: Path | None = None) -> Iterator[Concurrency]:
    """Register a timing task for the duration of the block; afterwards `.most` is the most
    timing tasks that ran at once on this machine during it (itself included)."""
    where = path or registry_path()
    key = uuid.uuid4().hex
    result = Concurrency()
    with _registry(where) as running:
        running[key] = [os.getpid(), 0]
        count = len(running)
        for entry in running.values():
            entry[1] = max(entry[1], count)
    try:
        yield result
    finally:
        with _registry(where) as running:
            mine = running.pop(key, None)
            result.most = max(1, mine[1]) if mine else 1
