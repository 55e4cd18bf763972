"""The one in-memory record every dataset loader produces."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

GoldRule = Literal["majority", "union"]


@dataclass
class RationaleExample:
    """One text with its label and, when annotated, per-annotator word masks.

    ``words`` are the dataset's own tokens (they may carry punctuation or casing); every mask has
    one 0/1 entry per word. ``rationales`` is empty when nobody annotated the example.
    """

    id: str
    task: str
    words: list[str]
    label: int
    label_names: tuple[str, ...]
    rationales: list[list[int]] = field(default_factory=list)

    @property
    def has_rationale(self) -> bool:
        return bool(self.rationales)

    @property
    def label_name(self) -> str:
        return self.label_names[self.label]

    def gold_mask(self, rule: GoldRule = "majority") -> np.ndarray | None:
        """The reference rationale, or None when the example has no annotation.

        ``majority``: a word is gold when at least half of the annotators marked it (ERASER-style,
        the project default). ``union``: marked by any annotator (HateXplain's own protocol).
        """
        if not self.rationales:
            return None
        masks = np.asarray(self.rationales, dtype=np.float64)
        if rule == "union":
            return (masks.max(axis=0) > 0).astype(np.int8)
        if rule == "majority":
            return (masks.mean(axis=0) >= 0.5).astype(np.int8)
        raise ValueError(f"unknown gold rule {rule!r}: use 'majority' or 'union'")

    def scored_gold(self, rule: GoldRule = "majority") -> np.ndarray | None:
        """The gold mask plausibility is scored against: None when unannotated, or when the rule
        marks no word (annotators who mark disjoint words leave an empty majority: precision and
        recall are undefined, and every explainer's F1 0 would only pull the means down)."""
        gold = self.gold_mask(rule)
        return gold if gold is not None and gold.any() else None
