"""The sanity floor: uniform random word scores, seeded."""

from __future__ import annotations

import torch

from expnet.explainers.base import BatchAttribution, Explainer
from expnet.explainers.registry import register


@register
class RandomExplainer(Explainer):
    """Scores drawn uniformly from [0, 1); the same seed gives the same scores."""

    name = "random"
    family = "baseline"
    cost = "1 forward (for the prediction)"
    explains = "nothing"

    def explain_batch(self, classifier, batch, targets) -> BatchAttribution:
        logits = classifier.predict_logits(batch)
        # The base class seeds torch per batch, so this draw is reproducible.
        scores = torch.rand((batch.batch_size, batch.max_words))
        return BatchAttribution(scores, logits)
