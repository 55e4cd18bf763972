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


def bound(value: float) -> str:
    """An interval bound, signed. A bound that is not zero but rounds to 0.000 keeps two
    significant digits, so that an interval excluding 0 never reads as holding it: +0.00042,
    not 0.000."""
    value = float(value)
    if value != 0 and round(value, 3) == 0:
        return f"{value:+.2g}"
    return f"{_unsigned_zero(value, 3):+.3f}"


def interval(low, high) -> str:
    """A confidence interval as ``[low, high]`` (signed bounds); ``[n/a]`` when a bound is missing or
    not finite (the bootstrap gives none below its minimum of pairs)."""
    if low is None or high is None or not (np.isfinite(low) and np.isfinite(high)):
        return "[n/a]"
    return f"[{bound(low)}, {bound(high)}]"
