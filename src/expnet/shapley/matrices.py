"""The attention matrices the Shapley games are played on.

- Plain: attention averaged over the chosen layers (default all) and every head.
- Gradient-weighted (Grad-SAM style): ``mean_{l,h}( A ⊙ ReLU(d target logit / d A) )``, from one
  forward and one backward pass (``expnet.models.gradients.attention_gradients``), for the logit
  the head reads (``expnet.models.readout.head_reads_readout``: decoders' last real token).

Matrices keep the padded [B, T, T] token layout of the batch; the players of each text are its
non-special tokens (``batch.word_tokens``: [CLS], [SEP] and padding never play). Rows are not
renormalised after the special tokens are left out, as in the authors' code.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from expnet.errors import ExpnetError
from expnet.models.attention import forward_with_attentions
from expnet.models.classifier import Classifier
from expnet.models.gradients import attention_gradients
from expnet.models.readout import head_reads_readout
from expnet.words import EncodedBatch

Weighting = Literal["plain", "gradient"]


def select_layers(layers: Sequence[int] | None, num_layers: int) -> tuple[int, ...]:
    """0-based layer indices (negative counts from the end); None means every layer."""
    if layers is None:
        return tuple(range(num_layers))
    chosen = []
    for layer in layers:
        index = int(layer)
        if not -num_layers <= index < num_layers:
            raise ExpnetError(f"layer {index} does not exist: this model has layers 0..{num_layers - 1}")
        chosen.append(index % num_layers)
    if not chosen:
        raise ExpnetError("no layers chosen: give at least one layer index, or none for all layers")
    return tuple(sorted(set(chosen)))


def mean_attention(attentions: Sequence[torch.Tensor], layers: Sequence[int] | None = None) -> torch.Tensor:
    """Attention [B, T, T] averaged over the chosen layers and all heads."""
    chosen = select_layers(layers, len(attentions))
    total = None
    for layer in chosen:  # sum(1) then one division: much faster than mean(1) on CPU
        head_sum = attentions[layer].float().sum(1)
        total = head_sum if total is None else total.add_(head_sum)
    return total / (len(chosen) * attentions[chosen[0]].shape[1])


def gradient_weighted_attention(
    attentions: Sequence[torch.Tensor], gradients: Sequence[torch.Tensor], layers: Sequence[int] | None = None
) -> torch.Tensor:
    """``mean_{l,h}(A ⊙ ReLU(dA))`` [B, T, T] over the chosen layers and all heads."""
    chosen = select_layers(layers, len(attentions))
    total = None
    for layer in chosen:
        weighted = (attentions[layer].float() * gradients[layer].float().clamp(min=0)).sum(1)
        total = weighted if total is None else total.add_(weighted)
    return total / (len(chosen) * attentions[chosen[0]].shape[1])


@dataclass
class AttentionMatrices:
    """What the games need for one batch: the matrices, who plays, and the model's logits."""

    matrices: torch.Tensor  # [B, T, T]
    players: torch.Tensor  # [B, T] bool, the non-special tokens
    logits: torch.Tensor  # [B, C]

    def matrix(self, index: int) -> np.ndarray:
        """Text ``index``'s n x n matrix restricted to its players (n = number of players)."""
        keep = self.players[index]
        return self.matrices[index][keep][:, keep].detach().cpu().double().numpy()


def attention_matrices(
    classifier: Classifier,
    batch: EncodedBatch,
    targets: torch.Tensor | None = None,
    weighting: Weighting = "plain",
    layers: Sequence[int] | None = None,
) -> AttentionMatrices:
    """Plain (one forward) or gradient-weighted (one forward + backward) matrices of a batch.

    ``targets`` (None: the predicted classes) only matter for the gradient weighting.
    """
    if weighting == "plain":
        logits, attentions = forward_with_attentions(classifier, batch)
        matrices = mean_attention(attentions, layers)
    elif weighting == "gradient":
        with head_reads_readout(classifier):
            result = attention_gradients(classifier, batch, targets)
        if not result.attentions or result.attentions[0] is None:
            raise ExpnetError(f"{classifier.source} returns no attention weights; attention Shapley values cannot be computed")
        logits = result.logits
        matrices = gradient_weighted_attention(result.attentions, result.gradients, layers)
    else:
        raise ValueError(f"unknown weighting {weighting!r}: use 'plain' or 'gradient'")
    return AttentionMatrices(matrices, batch.word_tokens.to(matrices.device), logits)
