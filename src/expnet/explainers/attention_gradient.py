"""Attention x gradient explainers: attention weights weighed by the target logit's gradient.

Both use ``expnet.models.gradients.attention_gradients`` (one forward and one backward pass
for the target class's logit, taken where the head reads: ``head_reads_readout``), read the row
of the readout token (``expnet.models.readout``: [CLS] in BERT, the last real token in decoders)
and mask padding out of every matrix, so a text scores the same alone or inside a padded batch.
Special tokens never get a word score (``pool_to_words``).
"""

from __future__ import annotations

import torch

from expnet.explainers.attention import real_token_mask
from expnet.explainers.base import BatchAttribution, Explainer
from expnet.explainers.registry import register
from expnet.models.attention import forward_with_attentions
from expnet.models.gradients import AttentionGradients, attention_gradients
from expnet.models.readout import head_reads_readout, readout_rows, readout_weights
from expnet.words import pool_to_words


def checked_attention_gradients(classifier, batch, targets) -> AttentionGradients:
    """``attention_gradients`` of the logit the head reads, or the clear ExpnetError of
    ``forward_with_attentions`` when the model returns no attention weights (checked only after
    a failure, so it costs nothing)."""
    try:
        with head_reads_readout(classifier):
            result = attention_gradients(classifier, batch, targets)
    except (TypeError, RuntimeError, AttributeError, IndexError):
        forward_with_attentions(classifier, batch)  # raises the ExpnetError if attentions are missing
        raise
    if not result.attentions or result.attentions[0] is None:
        forward_with_attentions(classifier, batch)
    return result


def gae_matrix(attentions, gradients, attention_mask: torch.Tensor) -> torch.Tensor:
    """Chefer et al. 2021b relevance [B, T, T]: ``R = I``; per layer (bottom to top)
    ``Ā = mean_h((∇A ⊙ A)^+)`` restricted to real tokens, ``R <- R + Ā R``."""
    pairs = real_token_mask(attention_mask)
    size = attention_mask.shape[-1]
    relevance = torch.eye(size, device=attention_mask.device).expand(attention_mask.shape[0], size, size)
    for attention, gradient in zip(attentions, gradients, strict=True):
        mixed = (gradient.float() * attention.float()).clamp(min=0).mean(1) * pairs
        relevance = relevance + mixed @ relevance
    return relevance


def grad_sam_matrix(attentions, gradients, attention_mask: torch.Tensor) -> torch.Tensor:
    """Grad-SAM [B, T, T]: ``mean_{l,h}(A ⊙ ReLU(∇A))`` restricted to real tokens."""
    pairs = real_token_mask(attention_mask)
    total = sum((a.float() * g.float().clamp(min=0)).mean(1) for a, g in zip(attentions, gradients, strict=True))
    return total / len(attentions) * pairs


class _GradientMatrixExplainer(Explainer):
    """The readout row of a [B, T, T] matrix made from the attentions and their gradients of the
    target logit; words sum their pieces. Subclasses build the matrix."""

    family = "attention-gradient"
    cost = "1 forward + 1 backward"
    signed = False
    explains = "logit"
    needs_attention = True

    def matrix(self, grads: AttentionGradients, attention_mask: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def explain_batch(self, classifier, batch, targets) -> BatchAttribution:
        grads = checked_attention_gradients(classifier, batch, targets)
        row = readout_rows(self.matrix(grads, batch.attention_mask), readout_weights(classifier, batch))
        return BatchAttribution(pool_to_words(row, batch, "sum"), grads.logits)


@register
class GenericAttentionExplainability(_GradientMatrixExplainer):
    """Chefer et al. 2021b (generic attention explainability, no LRP): the readout row ([CLS] in
    BERT) of ``R - I``, ``R = I + sum of layer updates Ā R`` with ``Ā = mean_h((∇A ⊙ A)^+)``,
    gradients of the target logit. The identity (a token's relevance to itself before any layer)
    is dropped, as Chefer et al. drop [CLS]'s own entry; words sum their pieces. Non-negative."""

    name = "gae"

    def matrix(self, grads, attention_mask):
        relevance = gae_matrix(grads.attentions, grads.gradients, attention_mask)
        return relevance - torch.eye(relevance.shape[-1], device=relevance.device)


@register
class GradSAM(_GradientMatrixExplainer):
    """Grad-SAM (Barkan et al. 2021): the readout row ([CLS] in BERT) of
    ``mean_{l,h}(A ⊙ ReLU(∇A))``, gradients of the target logit; words sum their pieces.
    Non-negative."""

    name = "grad_sam"

    def matrix(self, grads, attention_mask):
        return grad_sam_matrix(grads.attentions, grads.gradients, attention_mask)
