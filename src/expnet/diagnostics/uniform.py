"""Uniform attention (Wiegreffe & Pinter 2019): replace a layer's attention by uniform weights.

Every query of the layer (every head) attends evenly to the real (non-padding) tokens, [CLS] and
[SEP] included. Reported: accuracy against the gold labels with and without the change, the TVD
between the output distributions and the share of changed predictions; for the chosen layer,
for each layer on its own, and for every layer at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from expnet.diagnostics.intervention import (
    attention_intervention,
    output_distribution,
    require_calls,
    resolve_layer,
    uniform_weights,
)
from expnet.models.classifier import Classifier


@dataclass
class UniformResult:
    layer: int
    labels: np.ndarray  # [N]
    original: np.ndarray  # [N, C] output distributions
    uniform: dict[str, np.ndarray] = field(default_factory=dict)  # setting ("0".., "all") -> [N, C]

    def setting_summary(self, key: str) -> dict:
        changed = self.uniform[key]
        before = float(np.mean(self.original.argmax(-1) == self.labels))
        after = float(np.mean(changed.argmax(-1) == self.labels))
        tvd = 0.5 * np.abs(changed - self.original).sum(-1)
        return {
            "accuracy": before,
            "accuracy_uniform": after,
            "accuracy_change": after - before,
            "mean_tvd": float(tvd.mean()),
            "median_tvd": float(np.median(tvd)),
            "prediction_changed": float(np.mean(changed.argmax(-1) != self.original.argmax(-1))),
        }

    def summary(self) -> dict:
        return {
            "layer": self.layer,
            "examples": int(self.labels.size),
            **self.setting_summary(str(self.layer)),
            "per_layer": {key: self.setting_summary(key) for key in self.uniform},
        }

    def tvd(self, key: str) -> np.ndarray:
        return 0.5 * np.abs(self.uniform[key] - self.original).sum(-1)


@torch.no_grad()
def uniform_effects(
    classifier: Classifier,
    texts: Sequence[Sequence[str]],
    labels: Sequence[int],
    layer: int | None = None,
    batch_size: int = 16,
    progress: bool = False,
) -> UniformResult:
    """Outputs with each layer's (and all layers') attention made uniform over the real tokens."""
    layer = resolve_layer(classifier, layer)
    settings: dict[str, int | None] = {str(i): i for i in range(classifier.num_layers)}
    settings["all"] = None
    original, uniform = [], {key: [] for key in settings}
    starts = range(0, len(texts), batch_size)
    for start in tqdm(starts, desc="uniform", disable=not progress, leave=False):
        batch = classifier.encode([list(words) for words in texts[start : start + batch_size]])
        original.append(output_distribution(classifier.forward(batch).logits).cpu())
        for key, layers in settings.items():
            with attention_intervention(classifier, uniform_weights, layers) as state:
                uniform[key].append(output_distribution(classifier.forward(batch).logits).cpu())
                require_calls(state, classifier)
    return UniformResult(
        layer,
        np.asarray(labels, dtype=np.int64),
        torch.cat(original).numpy(),
        {key: torch.cat(values).numpy() for key, values in uniform.items()},
    )
