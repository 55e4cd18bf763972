"""The sanity floor: uniform random word scores, seeded."""

from __future__ import annotations

import torch

from expnet.explainers.base import BatchAttribution, Explainer
from expnet.explainers.registry import register


@register
class RandomExplainer(Explainer):
    """Scores drawn uniformly from [0, 1), one per word from the text's own generator: the same
    seed and words give the same scores, whatever else is in the batch."""

    name = "random"
    family = "baseline"
    cost = "1 forward (for the prediction)"
    explains = "nothing"

    def explain_batch(self, classifier, batch, targets) -> BatchAttribution:
        logits = classifier.predict_logits(batch)
        scores = torch.zeros((batch.batch_size, batch.max_words))
        for i, words in enumerate(batch.words):
            scores[i, : len(words)] = torch.rand(len(words), generator=self.text_generator(words))
        return BatchAttribution(scores, logits)
