"""Attention weights from one forward pass, shared by attention explainers and Shapley games."""

from __future__ import annotations

import torch

from expnet.errors import ExpnetError
from expnet.models.classifier import Classifier
from expnet.words import EncodedBatch


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
