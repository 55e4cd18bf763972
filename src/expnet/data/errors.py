"""The single exception type of the data layer.

Data problems are user problems (a wrong path, a malformed line), so they are reported as one
readable line rather than a traceback: what is wrong, where (``file:line`` for file contents) and
how to fix it, e.g. ``data.jsonl:17: mask length 5 differs from 6 tokens; give one 0/1 per token``.
It is an ``ExpnetError`` (the CLI prints it as one line) and a ``ValueError`` for library callers.
"""

from __future__ import annotations

from expnet.errors import ExpnetError


class DataError(ExpnetError, ValueError):
    """A dataset could not be found or read; the message is one line with the fix."""


def at(path, line: int | None = None) -> str:
    """``path:line`` prefix for messages about file contents (``path`` alone without a line)."""
    return f"{path}:{line}" if line is not None else f"{path}"


def require_file(path, what: str) -> None:
    """Fail with one line naming the missing file and what it should hold."""
    from pathlib import Path

    if Path(path).is_dir():
        raise DataError(f"{path} is a folder, not a file; it should be a file holding {what}")
    if not Path(path).is_file():
        raise DataError(
            f"{path}: file not found; it should hold {what} (point --data-dir or EXPNET_DATA at a "
            "folder laid out like the shipped samples)"
        )
