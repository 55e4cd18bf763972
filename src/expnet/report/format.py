"""How a reported number reads in a table cell (Markdown, HTML)."""

from __future__ import annotations

import numpy as np


def number(value) -> str:
    """A score as a cell: three decimals below 10, one below 100, none above; a missing or
    non-finite value as ``-``; a flag as ``yes`` or empty; anything else as its text."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else ""
    if isinstance(value, float | int | np.floating):
        value = float(value)
        if not np.isfinite(value):
            return "-"
        if abs(value) >= 100:
            return f"{value:.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{_unsigned_zero(value, 3):.3f}"
    return str(value)


def _unsigned_zero(value: float, digits: int) -> float:
    """``value``, but 0.0 where it rounds to zero: -0.0004 reads 0.000, not -0.000."""
    return 0.0 if round(value, digits) == 0 else value


def difference(value) -> str:
    """A difference as a signed cell (+0.012, -0.003, +0.000); ``-`` when missing."""
    return "-" if value is None else f"{_unsigned_zero(float(value), 3):+.3f}"
