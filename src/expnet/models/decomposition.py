"""Forward-only decompositions of a BERT-family classifier's output into per-token contributions.

One no-grad forward pass of the classifier (``output_attentions=True``) with hooks that keep, for
the layers a signal needs, each layer's input hidden states, its value vectors and the inputs of
its two LayerNorms. Everything else is arithmetic on those tensors with the model's own weights
(in float32); no model file is copied.

Signals (``decompose(..., signals=...)``), shapes with B texts, T (padded) tokens, H heads:

- ``head_norms`` {layer: [B, H, T]}: ``||alpha^h_{r j} f^h(x_j)||`` with
  ``f^h(x) = (x W_V^h + b_V^h) W_O^h`` (Kobayashi et al. 2020), ``W_O^h`` the head's columns of
  the attention output projection, read at the readout position ``r``.
- ``attention_norms`` {layer: [B, T]}: ``||sum_h alpha^h_{r j} f^h(x_j)||`` (the same paper's
  head-mixed norm; not derivable from the per-head norms, so it is its own signal).
- ``value_zeroing`` [B, T]: in the last layer, the target logit minus the target logit with token
  j's value vector zeroed in every head. Zeroing a value leaves every attention weight unchanged
  and, in the last layer, only the readout position's output reaches the head, so the T zeroed
  readout contexts are pushed through the rest of that layer (attention output dense + residual +
  LayerNorm, feed-forward + residual + LayerNorm) and the classification head in one batch: the
  exact effect, at the cost of a feed-forward pass over T vectors instead of T forward passes.
- ``value_zeroing_rollout`` [B, T] (Mohebbi et al. 2023): per layer, ``C_ij`` the cosine distance
  between query i's output and its output with token j's value zeroed (the layer's own inputs
  kept), rows normalised to sum 1, rolled out; the readout row. Costs about T layer passes.
- ``decompx`` [B, T] (Modarressi et al. 2023, last-layer form): each token's part of the target
  logit when the last layer's inputs are split per token and pushed, linearised at the real
  activations, through the last layer and the head (``decompx_last_layer``; the parts plus a bias
  part add up to the logit).
- ``globenc`` [B, T] (Modarressi et al. 2022): per layer ``N_ij = ||LN2(LN1(z_ij))||`` with
  ``z_ij = sum_h alpha^h_ij f^h(x_j) + [i = j] x_j`` (attention + residual) and each LayerNorm
  decomposed linearly, ``LN(v) = gamma * (v - mean(v)) / s_i`` with ``s_i`` the standard deviation
  of the real sum at query i (biases and the feed-forward are left out, as in the paper);
  ``globenc_second_norm=False`` stops after LN1. Rolled out (``N_L ... N_1``, no per-layer
  normalisation, as in the authors' code); the readout row, divided by its sum.
- ``alti`` [B, T] (Ferrando et al. 2022): per layer ``T_i(x_j) = LN1(z_ij)`` (decomposed as above),
  ``y_i`` the real LN1 output, ``c_ij = max(0, ||y_i||_1 - ||y_i - T_i(x_j)||_1)`` normalised over
  j to sum 1, rolled out; the readout row (it sums to 1).

Readout convention: ``r`` is ``expnet.models.readout.readout_positions``; the classification
heads of the supported architectures read the first token (BERT's pooler, RoBERTa's and ELECTRA's
classification heads all take position 0, i.e. [CLS] or <s>), so ``r`` is 0 for every text, and
``classifier_head`` feeds them a length-1 sequence holding the readout vector. Padding is masked
everywhere: padding keys get no contribution, padding rows are identity rows in the rolled-out
matrices.

The supported classifiers and how their layers are read: ``expnet.models.encoder``; one
layer's arithmetic: ``expnet.models.layer_contributions``.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

import torch

from expnet.errors import ExpnetError
from expnet.models.attention import forward_with_attentions
from expnet.models.classifier import Classifier
from expnet.models.encoder import capture_layers, encoder_layers
from expnet.models.layer_contributions import (
    alti_matrix,
    decompx_last_layer,
    globenc_matrix,
    readout_head_vectors,
    value_zeroing_matrix,
    value_zeroing_scores,
)
from expnet.models.readout import readout_positions
from expnet.words import EncodedBatch

SIGNALS = frozenset(
    {"head_norms", "attention_norms", "value_zeroing", "value_zeroing_rollout", "decompx", "globenc", "alti"}
)


@dataclass
class Decomposition:
    """What ``decompose`` returns; a signal that was not asked for is None (or an empty dict)."""

    logits: torch.Tensor  # [B, C]
    attentions: tuple[torch.Tensor, ...]  # per layer [B, H, T, T] (as output_attentions gives)
    head_norms: dict[int, torch.Tensor]  # layer (as asked) -> [B, H, T]: ||alpha^h_{r j} f^h(x_j)||
    value_zeroing: torch.Tensor | None  # [B, T] last layer, target logit change
    globenc: torch.Tensor | None  # [B, T] rolled-out readout row, sums to 1
    alti: torch.Tensor | None  # [B, T] rolled-out readout row, sums to 1
    attention_norms: dict[int, torch.Tensor] = field(default_factory=dict)  # layer -> [B, T]
    targets: torch.Tensor | None = None  # [B] the classes value_zeroing and decompx explain
    value_zeroing_rollout: torch.Tensor | None = None  # [B, T] rolled-out readout row, sums to 1
    decompx: torch.Tensor | None = None  # [B, T] last-layer DecompX: each token's part of the target logit

    def signal(self, name: str) -> torch.Tensor:
        """Per-token signal ``name``, which ``decompose`` must have been asked for."""
        value = getattr(self, name)
        if value is None:
            raise ValueError(f"signal {name!r} was not computed: ask decompose(signals=...) for it")
        return value


def _layer_index(index: int, num_layers: int) -> int:
    if not -num_layers <= index < num_layers:
        raise ExpnetError(f"layer {index} does not exist: this classifier has layers 0..{num_layers - 1} (or -1 for the last)")
    return index % num_layers


def rollout_readout_row(matrices: Sequence[torch.Tensor], readout: torch.Tensor) -> torch.Tensor:
    """[B, T] row ``r`` of ``M_L ... M_1``, divided by its sum.

    Computed as a vector-matrix product from the top down; the vector is rescaled to sum 1 after
    every layer, which changes no ratio but keeps unnormalised products (GlobEnc) finite."""
    top = matrices[-1]
    row = top[torch.arange(top.shape[0], device=top.device), readout]
    for matrix in reversed(matrices[:-1]):
        row = torch.einsum("bi,bij->bj", row, matrix)
        row = row / row.sum(-1, keepdim=True).clamp(min=torch.finfo(torch.float32).tiny)
    return row / row.sum(-1, keepdim=True).clamp(min=torch.finfo(torch.float32).tiny)


@torch.no_grad()
def decompose(
    classifier: Classifier,
    batch: EncodedBatch,
    signals: Collection[str],
    layers: Sequence[int] = (-1,),
    targets: torch.Tensor | None = None,
    globenc_second_norm: bool = True,
) -> Decomposition:
    """The asked ``signals`` (a subset of ``SIGNALS``) from one forward pass of the classifier.

    ``layers`` picks the layers of ``head_norms`` and ``attention_norms`` (keys as given, negative
    indices count from the top); ``targets`` None means the predicted classes (value zeroing)."""
    signals = set(signals)
    if unknown := signals - SIGNALS:
        raise ExpnetError(f"unknown decomposition signal(s) {', '.join(sorted(unknown))}: use {', '.join(sorted(SIGNALS))}")
    modules = encoder_layers(classifier)
    num_layers = len(modules)
    chosen_layers = {index: _layer_index(index, num_layers) for index in layers}
    wanted: set[int] = set()
    if signals & {"head_norms", "attention_norms"}:
        wanted |= set(chosen_layers.values())
    if signals & {"value_zeroing", "decompx"}:
        wanted.add(num_layers - 1)
    if signals & {"globenc", "alti", "value_zeroing_rollout"}:
        wanted |= set(range(num_layers))
    with capture_layers(modules, wanted) as captures:
        logits, attentions = forward_with_attentions(classifier, batch)
    real = batch.attention_mask.bool().to(logits.device)
    readout = readout_positions(classifier, batch).to(logits.device)
    targets = logits.argmax(-1) if targets is None else targets.to(logits.device)
    result = Decomposition(
        logits, attentions, head_norms={}, value_zeroing=None, globenc=None, alti=None, targets=targets
    )
    readout_layers = chosen_layers if signals & {"head_norms", "attention_norms"} else {}
    for key, index in readout_layers.items():
        vectors = readout_head_vectors(modules[index], captures[index], attentions[index], readout)
        vectors = vectors * real[:, None, :, None]
        if "head_norms" in signals:
            result.head_norms[key] = vectors.norm(dim=-1)
        if "attention_norms" in signals:
            result.attention_norms[key] = vectors.sum(1).norm(dim=-1)
    if "value_zeroing" in signals:
        last = num_layers - 1
        scores = value_zeroing_scores(classifier, modules[last], captures[last], attentions[last], readout, targets)
        result.value_zeroing = scores * real
    if "decompx" in signals:
        last = num_layers - 1
        parts = decompx_last_layer(classifier, modules[last], captures[last], attentions[last], readout)
        result.decompx = parts[torch.arange(batch.batch_size, device=parts.device), :-1, targets] * real
    if "globenc" in signals:
        matrices = [
            globenc_matrix(modules[i], captures[i], attentions[i], real, globenc_second_norm) for i in range(num_layers)
        ]
        result.globenc = rollout_readout_row(matrices, readout)
    if "alti" in signals:
        matrices = [alti_matrix(modules[i], captures[i], attentions[i], real) for i in range(num_layers)]
        result.alti = rollout_readout_row(matrices, readout)
    if "value_zeroing_rollout" in signals:
        matrices = [value_zeroing_matrix(modules[i], captures[i], attentions[i], real) for i in range(num_layers)]
        result.value_zeroing_rollout = rollout_readout_row(matrices, readout)
    return result
