"""ExpNet features for one encoded batch, with attention x gradient values when the spec asks.

``batch_features`` is the one entry point training and explaining use: a plain forward pass with
attentions for the paper's features, or, when ``spec.values`` holds ``"attention_x_gradient"``,
one forward and one backward pass: the gradient of the explained class's *logit* (the predicted
class unless targets are given; training uses correctly predicted examples only, so there it is
the gold class) with respect to each chosen layer's attention weights. As in the gradient
explainers, gradients flow from the input embeddings (a fresh leaf), the classifier's weights stay
frozen and no model file is touched. The attention values themselves are returned detached.
"""

from __future__ import annotations

import torch

from expnet.models.classifier import Classifier
from expnet.models.gradients import attention_gradients
from expnet.network.features import FeatureSpec, word_features
from expnet.words import EncodedBatch


def batch_features(
    classifier: Classifier, batch: EncodedBatch, spec: FeatureSpec, targets: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Word features [B, W, spec.dim] and the logits [B, C] of one batch."""
    if not spec.needs_gradient:
        with torch.no_grad():
            output = classifier.forward(batch, output_attentions=True)
        return word_features(output.attentions, batch, spec), output.logits
    result = attention_gradients(classifier, batch, targets, spec.layers)
    with torch.no_grad():
        return word_features(result.attentions, batch, spec, result.gradients), result.logits
