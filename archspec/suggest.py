""" "Did you mean" hints that only name a word when it is really close to what was written.

Closeness is the edit distance (insertions, deletions, substitutions and swaps of neighbours,
ignoring case): none for words of one or two letters, at most 1 for words of up to 5
letters, 2 for longer ones. `maxpool` is three
edits from `avgpool`, so one is never offered for the other, while `botleneck` or `Conv2D` find
their row kinds; the words a newcomer writes for the paper's one-letter fields (`stride`,
`kernel`, `channels`, ...) find them too.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def edit_distance(a: str, b: str) -> int:
    """Optimal string alignment distance between `a` and `b` (adjacent swaps count once)."""
    rows = [list(range(len(b) + 1))]
    for i in range(1, len(a) + 1):
        row = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = a[i - 1] != b[j - 1]
            row[j] = min(rows[i - 1][j] + 1, row[j - 1] + 1, rows[i - 1][j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                row[j] = min(row[j], rows[i - 2][j - 2] + 1)
        rows.append(row)
    return rows[-1][-1]


# Words a newcomer writes for the paper's one-letter fields.
SYNONYMS = {
    "stride": "s",
    "strides": "s",
    "kernel": "k",
    "kernel_size": "k",
    "channels": "c",
    "filters": "c",
    "out_channels": "c",
    "repeat": "n",
    "repeats": "n",
    "expansion": "t",
    "expand": "t",
    "input": "from",
    "inputs": "from",
    "activation": "act",
    "use_bias": "bias",
    "depth_multiplier": "multiplier",
}


def allowed_distance(word: str) -> int:
    """How many edits a word may be away from a suggestion."""
    return 0 if len(word) <= 2 else 1 if len(word) <= 5 else 2


def closest(word: str, candidates: Iterable[str]) -> str | None:
    """The candidate closest to `word` when it is close enough, else None (ties: the most
    similar by difflib's ratio, then the first listed)."""
    if len(word) > 64:
        return None
    low = word.lower()
    candidates = list(candidates)
    if SYNONYMS.get(low) in candidates:
        return SYNONYMS[low]
    best: tuple[int, float] | None = None
    choice = None
    for cand in candidates:
        distance = edit_distance(low, cand.lower())
        if distance > allowed_distance(word):
            continue
        key = (distance, -difflib.SequenceMatcher(None, low, cand.lower()).ratio())
        if best is None or key < best:
            best, choice = key, cand
    return choice
