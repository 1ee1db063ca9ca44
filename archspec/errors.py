"""User-facing errors: every bad input names where it is, what was found and what was expected."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Location:
    """A place in a source file (1-based line and column)."""

    file: str
    line: int = 0
    column: int = 0

    def __str__(self) -> str:
        if self.line <= 0:
            return self.file
        return f"{self.file}:{self.line}:{self.column}"


class SpecError(Exception):
    """Bad input from the user. The CLI prints it (no traceback) and exits with status 2."""

    def __init__(
        self,
        message: str,
        location: Location | None = None,
        field: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.message = message
        self.location = location
        self.field = field
        self.hint = hint
        super().__init__(self.render())

    def render(self) -> str:
        """One readable block: `file:line:col: field: message` plus an optional hint line."""
        parts = []
        if self.location is not None:
            parts.append(str(self.location))
        if self.field:
            parts.append(self.field)
        parts.append(self.message)
        text = ": ".join(parts)
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text
