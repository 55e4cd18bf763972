"""Fixed-rule attention explainers: scores read straight off the attention weights."""

from __future__ import annotations

import torch

from expnet.errors import ExpnetError
from expnet.explainers.base import BatchAttribution, Explainer
from expnet.explainers.registry import register
from expnet.models.classifier import Classifier
from expnet.words import EncodedBatch, pool_to_words


@torch.no_grad()
def forward_with_attentions(classifier: Classifier, batch: EncodedBatch):
    """(logits, attentions) from one forward pass, or a clear error for models that hide them."""
    output = classifier.forward(batch, output_attentions=True)
    if not output.attentions or output.attentions[0] is None:
        raise ExpnetError(
            f"{classifier.source} returns no attention weights, so attention-based explainers cannot "
            "run on it; use a gradient or perturbation explainer instead"
        )
    return output.logits, output.attentions


@register
class RawAttention(Explainer):
    """Final layer, [CLS] row, mean over heads (HateXplain's attention explanation).
    A word's score is the attention mass on its pieces (sum)."""

    name = "raw_attention"
    family = "attention"
    cost = "1 forward"
    needs_attention = True

    def explain_batch(self, classifier, batch, targets) -> BatchAttribution:
        logits, attentions = forward_with_attentions(classifier, batch)
        cls_row = attentions[-1][:, :, 0, :].mean(1)  # [B, T]
        return BatchAttribution(pool_to_words(cls_row, batch, "sum"), logits)
