"""What a target renders: `{relative path: text or bytes}`, written atomically by the CLI."""

from __future__ import annotations

Files = dict[str, str | bytes]
