"""The error type for mistakes a user can fix (the CLI prints these as one line, no traceback), and
the warnings for results to take with care; and the checks of numeric settings that raise the
error, so that every constructor refuses a bad number in the same words."""

import math


class ExpnetError(Exception):
    """Bad input or state, with a message that says what is wrong and how to fix it."""


class ExpnetWarning(UserWarning):
    """A result to take with care: printed by the CLI as one warning line, never an error."""


class UnmeasuredWarning(ExpnetWarning):
    """A result nobody has measured (e.g. a trained ExpNet on a classifier unlike the ones it was
    trained on)."""


class NotAboveChanceWarning(ExpnetWarning):
    """A fine-tuned classifier whose dev accuracy is not clearly above always predicting the
    commonest class: explanations of it explain little."""


class IncompleteAttributionWarning(ExpnetWarning):
    """Attributions that miss a property they promise by more than rounding (e.g. Integrated
    Gradients whose word scores do not add up to f(x) - f(baseline) at too few steps)."""


def require_whole(name: str, value: object, minimum: int = 1) -> int:
    """``value``, refused if it is not a whole number >= ``minimum`` (True is not a number here)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ExpnetError(f"{name} must be a whole number >= {minimum}, got {value!r}")
    return value


def require_number(
    name: str, value: object, low: float, high: float = float("inf"), *, open_low: bool = False, open_high: bool = False
) -> None:
    """Refuse a setting that is not a finite number in [low, high] (an open end excludes it)."""
    number = not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)
    if not (number and (low < value if open_low else low <= value) and (value < high if open_high else value <= high)):  # type: ignore[operator]
        interval = f"{'(' if open_low else '['}{low:g}, {high:g}{')' if open_high or high == float('inf') else ']'}"
        raise ExpnetError(f"{name} must be a number in {interval}, got {value!r}")
