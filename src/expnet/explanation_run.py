"""A saved explainer run: the explanations of some texts and what made them.

``ExplanationRun`` keeps the explanations (``Explanation.to_dict``: words, scores, label names,
truncation) with the classifier, the explainer's name and settings, the seed, the expnet version
and, when measured, the seconds they took. It is one JSON document (``save`` / ``load``, written
atomically through ``expnet.io``); the benchmark caches its explanations in this form, and
``expnet explain --format json`` can write it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from expnet import __version__
from expnet.errors import ExpnetError
from expnet.explainers.base import Explainer, Explanation
from expnet.io import atomic_write_json

# Bumped when the document's layout changes, so that an older file is refused, not misread.
FORMAT = 1


@dataclass
class ExplanationRun:
    explanations: list[Explanation]
    classifier: str  # the classifier's folder or hub name
    explainer: str
    settings: dict = field(default_factory=dict)
    seed: int = 0
    seconds: float | None = None  # wall time of the explanations, when measured
    expnet_version: str = __version__
    dtype: str | None = None  # the classifier's weights' precision, when known (scores differ with it)

    @classmethod
    def of(
        cls, explainer: Explainer, explanations: list[Explanation], classifier: str, seconds: float | None = None, dtype: str | None = None
    ) -> ExplanationRun:
        """The run ``explainer`` made; its settings as plain JSON data (other objects by their repr)."""
        settings = json.loads(json.dumps(explainer.settings(), default=repr))
        return cls(explanations, classifier, explainer.name, settings, explainer.seed, seconds, dtype=dtype)

    @property
    def examples_per_second(self) -> float | None:
        if self.seconds is None:
            return None
        return len(self.explanations) / self.seconds if self.seconds > 0 else float("inf")

    def to_dict(self) -> dict:
        return {
            "format": FORMAT,
            "expnet_version": self.expnet_version,
            "classifier": self.classifier,
            "explainer": self.explainer,
            "settings": self.settings,
            "seed": self.seed,
            "seconds": self.seconds,
            "dtype": self.dtype,
            "explanations": [e.to_dict() for e in self.explanations],
        }

    @classmethod
    def from_dict(cls, data: dict) -> ExplanationRun:
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            found = data.get("format") if isinstance(data, dict) else type(data).__name__
            raise ExpnetError(f"not a saved explanation run of format {FORMAT} (found {found!r}); explain the texts again")
        if not isinstance(data["seed"], int) or isinstance(data["seed"], bool):
            raise ValueError(f"seed {data['seed']!r} is not a whole number")
        return cls(
            explanations=[Explanation.from_dict(item) for item in data["explanations"]],
            classifier=data["classifier"],
            explainer=data["explainer"],
            settings=dict(data["settings"]),
            seed=int(data["seed"]),
            seconds=None if data["seconds"] is None else float(data["seconds"]),
            expnet_version=data["expnet_version"],
            dtype=data.get("dtype"),  # runs saved before it was recorded: unknown
        )

    def save(self, path: str | Path) -> Path:
        return atomic_write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> ExplanationRun:
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ExpnetError(f"{path}: no such file; give a file written by ExplanationRun.save") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ExpnetError(f"{path}: not a readable JSON file ({str(error).splitlines()[0]})") from None
        try:
            return cls.from_dict(data)
        except ExpnetError as error:
            raise ExpnetError(f"{path}: {error}") from None
        except (KeyError, TypeError, ValueError) as error:
            raise ExpnetError(f"{path}: a saved explanation run with a missing or bad field ({error!r})") from None
