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

from expnet.errors import ExpnetError
from expnet.models.classifier import Classifier
from expnet.network.features import FeatureSpec, word_features
from expnet.words import EncodedBatch


def attention_logit_gradients(
    classifier: Classifier, batch: EncodedBatch, layers, targets: torch.Tensor | None = None
) -> tuple[tuple[torch.Tensor, ...], dict[int, torch.Tensor], torch.Tensor]:
    """(attentions, {layer: d logit_y / d attention}, logits), all detached."""
    with torch.enable_grad():
        embeddings = classifier.input_embeddings()(batch.input_ids).detach().requires_grad_(True)
        output = classifier.forward(batch, output_attentions=True, inputs_embeds=embeddings)
        logits = output.logits
        if not output.attentions or output.attentions[0] is None:
            raise ExpnetError("the classifier returned no attention weights; load it with attn_implementation='eager'")
        chosen = logits.argmax(-1) if targets is None else targets.to(logits.device)
        wanted = sorted(set(layers))
        grads = torch.autograd.grad(
            logits.gather(1, chosen.view(-1, 1)).sum(), [output.attentions[layer] for layer in wanted]
        )
    attentions = tuple(a.detach() for a in output.attentions)
    return attentions, {layer: g.detach() for layer, g in zip(wanted, grads, strict=True)}, logits.detach()


def batch_features(
    classifier: Classifier, batch: EncodedBatch, spec: FeatureSpec, targets: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Word features [B, W, spec.dim] and the logits [B, C] of one batch."""
    if not spec.needs_gradient:
        with torch.no_grad():
            output = classifier.forward(batch, output_attentions=True)
        return word_features(output.attentions, batch, spec), output.logits
    attentions, gradients, logits = attention_logit_gradients(classifier, batch, spec.layers, targets)
    with torch.no_grad():
        return word_features(attentions, batch, spec, gradients), logits
