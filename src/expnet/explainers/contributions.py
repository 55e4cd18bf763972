"""Contribution explainers: forward-only decompositions of what each token adds to the readout.

attention_norm (Kobayashi et al. 2020), globenc (Modarressi et al. 2022), alti (Ferrando et al.
2022), value_zeroing (last layer, exact target-logit change), decompx (Modarressi et al. 2023,
last-layer form) and value_zeroing_rollout (Mohebbi et al. 2023, every layer); the arithmetic and
the readout convention live in ``expnet.models.decomposition``. BERT, RoBERTa and ELECTRA
classifiers only; other architectures get one ExpnetError. value_zeroing and decompx attribute
the target logit; the others the readout state (the hidden state the head reads, whatever the
target). A word's score is the sum over its pieces.
"""

from __future__ import annotations

from typing import ClassVar

from expnet.explainers.base import BatchAttribution, Explainer
from expnet.explainers.registry import register
from expnet.models.decomposition import decompose
from expnet.words import pool_to_words


class _SignalExplainer(Explainer):
    """One decomposition signal (``signal``), summed over each word's pieces; subclasses add the
    signal's own ``decompose`` settings through ``decompose_settings``."""

    signal: ClassVar[str]
    family = "contribution"
    needs_attention = True

    def decompose_settings(self) -> dict:
        return {}

    def explain_batch(self, classifier, batch, targets) -> BatchAttribution:
        parts = decompose(classifier, batch, {self.signal}, targets=targets, **self.decompose_settings())
        return BatchAttribution(pool_to_words(parts.signal(self.signal), batch, "sum"), parts.logits)


@register
class AttentionNorm(Explainer):
    """``||sum_h alpha^h_{r j} f^h(x_j)||`` at the readout position ``r`` of one layer (default the
    last): the norm of what token j adds to the readout's attention output, not just its weight."""

    name = "attention_norm"
    family = "contribution"
    cost = "1 forward"
    explains = "readout state"
    needs_attention = True

    def __init__(self, layer: int = -1, batch_size: int = 16, seed: int = 0) -> None:
        super().__init__(batch_size=batch_size, seed=seed)
        self.layer = layer

    def explain_batch(self, classifier, batch, targets) -> BatchAttribution:
        parts = decompose(classifier, batch, {"attention_norms"}, layers=(self.layer,))
        return BatchAttribution(pool_to_words(parts.attention_norms[self.layer], batch, "sum"), parts.logits)


@register
class GlobEnc(_SignalExplainer):
    """GlobEnc: rollout of per-layer norms through attention, residual and both LayerNorms
    (``second_norm=False``: the first only); the readout row, summing to 1."""

    name = "globenc"
    signal = "globenc"
    cost = "1 forward"
    explains = "readout state"

    def __init__(self, second_norm: bool = True, batch_size: int = 16, seed: int = 0) -> None:
        super().__init__(batch_size=batch_size, seed=seed)
        self.second_norm = second_norm

    def decompose_settings(self) -> dict:
        return {"globenc_second_norm": self.second_norm}


@register
class Alti(_SignalExplainer):
    """ALTI: rollout of per-layer contributions ``max(0, ||y_i||_1 - ||y_i - T_i(x_j)||_1)``
    (normalised per row) through attention, residual and the first LayerNorm; the readout row."""

    name = "alti"
    signal = "alti"
    cost = "1 forward"
    explains = "readout state"


@register
class ValueZeroing(_SignalExplainer):
    """Target logit minus the target logit with token j's value vector zeroed in every head of the
    last layer (exact: the zeroed readout contexts go through the rest of the layer and the head)."""

    name = "value_zeroing"
    signal = "value_zeroing"
    cost = "1 forward + last-layer feed-forward and head on T vectors"
    signed = True
    explains = "logit"


@register
class DecompXLastLayer(_SignalExplainer):
    """DecompX's last-layer form: each token's part of the target logit when the last layer's
    inputs are split per token and followed, activations linearised at their real values, through
    the last layer and the head (the parts plus a bias part add up to the logit)."""

    name = "decompx"
    signal = "decompx"
    cost = "1 forward"
    signed = True
    explains = "logit"


@register
class ValueZeroingRollout(_SignalExplainer):
    """Mohebbi et al. (2023): per layer, how far (cosine distance) each token's output moves when
    token j's value vector is zeroed, normalised per row and rolled out; the readout row."""

    name = "value_zeroing_rollout"
    signal = "value_zeroing_rollout"
    cost = "1 forward + T feed-forward passes per layer (no attention)"
    explains = "readout state"

