"""``--setting KEY=VALUE``: explainer settings from the command line (budgets such as IG's
n_steps, LIME's n_samples, an ExpNet's threshold), read as the type of the setting's default."""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Sequence

from expnet.errors import ExpnetError
from expnet.explainers.registry import setting_defaults

# Their own options set these for every explainer at once.
OWN_OPTIONS = {"batch_size": "--batch-size", "seed": "--seed"}


def add_settings(parser: argparse.ArgumentParser, several: bool) -> None:
    scope = (
        "; KEY goes to every listed explainer that has it, NAME.KEY to one (NAME as in --explainers)"
        if several
        else ""
    )
    parser.add_argument(
        "--setting",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"an explainer setting, e.g. n_steps=200, n_samples=500 or layers=4,5 (see 'expnet explainers'); repeatable{scope}",
    )


def parse_settings(pairs: Sequence[str], names: Sequence[str]) -> dict[str, dict[str, object]]:
    """Each explainer's settings (by its name or folder in ``names``) from ``KEY=VALUE`` or
    ``NAME.KEY=VALUE`` texts. A key no explainer here takes, a setting given twice or a value
    that is not of the setting's type is refused."""
    defaults = {name: setting_defaults(name) for name in names}
    chosen: dict[str, dict[str, object]] = {name: {} for name in names}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip():
            raise ExpnetError(f"--setting {pair!r}: give KEY=VALUE, e.g. --setting n_steps=200")
        owner, dot, bare = key.strip().rpartition(".")
        targets = [owner] if dot and owner in chosen else list(names)
        key = bare if dot and owner in chosen else key.strip()
        if key in OWN_OPTIONS:
            raise ExpnetError(f"--setting {pair!r}: {key} has its own option, {OWN_OPTIONS[key]}")
        takers = [name for name in targets if key in defaults[name]]
        if not takers:
            offered = sorted(set().union(*(defaults[name] for name in targets)) - set(OWN_OPTIONS))
            raise ExpnetError(
                f"--setting {pair!r}: {' and '.join(targets)} {'has' if len(targets) == 1 else 'have'} no setting "
                f"{key!r}; settings: {', '.join(offered) or 'none'}"
            )
        for name in takers:
            if key in chosen[name]:
                raise ExpnetError(f"--setting gives {key} twice for {name}; give it once")
            chosen[name][key] = _value(pair, key, text.strip(), defaults[name][key])
    return chosen


def _value(pair: str, key: str, text: str, default: object) -> object:
    """``text`` as the type of ``default``: true/false, a whole number, a number; for a setting
    that defaults to None, none or comma-separated whole numbers (layers=4,5) as a list; else the text."""
    if isinstance(default, bool):
        if text.lower() not in ("true", "false"):
            raise ExpnetError(f"--setting {pair!r}: {key} is true or false")
        return text.lower() == "true"
    if isinstance(default, int | float):
        kind, convert = ("a whole number", int) if isinstance(default, int) else ("a number", float)
        try:
            number = convert(text)
        except ValueError:
            raise ExpnetError(f"--setting {pair!r}: {key} is {kind}") from None
        if not math.isfinite(number):
            raise ExpnetError(f"--setting {pair!r}: {key} must be a finite number")
        return number
    if default is None:  # an optional list of layers and the like
        parts = [part.strip() for part in text.split(",")]
        if text.lower() == "none":
            return None
        if all(re.fullmatch(r"-?[0-9]+", part) for part in parts):
            return [int(part) for part in parts]
    return text
