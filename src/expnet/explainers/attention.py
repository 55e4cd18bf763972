"""Fixed-rule attention explainers: scores read straight off the attention weights.

raw_attention, attention_mean, rollout and attention_flow (methods.md section 4). Each reads the
row of the token the classification head reads (``expnet.models.readout``: [CLS] for BERT-style
encoders, the last real token for decoder-only models, the mean of the real tokens' rows for
mean pooling). Padding is masked out of every matrix, and special tokens never get a word score
(``pool_to_words``).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import maximum_flow

from expnet.explainers.base import BatchAttribution, Explainer
from expnet.explainers.registry import register
from expnet.models.attention import forward_with_attentions
from expnet.models.readout import readout_rows, readout_weights
from expnet.words import pool_to_words


class _AttentionMatrixExplainer(Explainer):
    """The readout row of a [B, T, T] matrix made from one forward pass's attentions; words sum
    their pieces (the attention mass on them). Subclasses build the matrix."""

    family = "attention"
    cost = "1 forward"
    needs_attention = True

    def matrix(self, attentions: tuple[torch.Tensor, ...], attention_mask: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def explain_batch(self, classifier, batch, targets) -> BatchAttribution:
        logits, attentions = forward_with_attentions(classifier, batch)
        row = readout_rows(self.matrix(attentions, batch.attention_mask), readout_weights(classifier, batch))  # [B, T]
        return BatchAttribution(pool_to_words(row, batch, "sum"), logits)


@register
class RawAttention(_AttentionMatrixExplainer):
    """Final layer, readout row ([CLS] in BERT), mean over heads (HateXplain's attention
    explanation). A word's score is the attention mass on its pieces (sum)."""

    name = "raw_attention"

    def matrix(self, attentions, attention_mask):
        return attentions[-1].float().mean(1)


# --- shared matrix helpers ------------------------------------------------------------------
def real_token_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """[B, T, T] True where both the query and the key are real (not padding) tokens."""
    real = attention_mask.bool()
    return real.unsqueeze(-1) & real.unsqueeze(-2)


def residual_attention(attention: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """One layer's ``rownorm(mean_h A + I)`` over the real tokens, as [B, T, T].

    Attention on padding keys is dropped before renormalising; a padding row is the identity row,
    so the matrix stays row-stochastic and no real row ever reaches a padding column.
    """
    pairs = real_token_mask(attention_mask)
    eye = torch.eye(attention.shape[-1], dtype=attention.dtype, device=attention.device)
    mixed = attention.mean(1) * pairs + eye
    return mixed / mixed.sum(-1, keepdim=True)


def rollout_matrix(attentions, attention_mask: torch.Tensor) -> torch.Tensor:
    """Attention rollout (Abnar & Zuidema 2020): ``J = Â_L ... Â_1`` with
    ``Â_l = rownorm(mean_h A_l + I)`` over the real tokens; [B, T, T], every row sums to 1."""
    layers = (residual_attention(attention.float(), attention_mask) for attention in attentions)
    joint = next(layers)
    for layer in layers:
        joint = layer @ joint
    return joint


def max_flow_to_sink(layers: np.ndarray, sink: int = 0, scale: int = 1 << 20) -> np.ndarray:
    """Max-flow from each input token to token ``sink`` of the top layer, [n] floats.

    ``layers`` is [L, n, n], row ``i`` of layer ``l`` holding the capacities of the edges from
    every node ``j`` of layer ``l - 1`` into node ``i`` of layer ``l`` (layer 0 = the inputs).
    Capacities are quantised to integers ``round(c * scale)`` for scipy's Dinic solver, so each
    edge is off by at most ``0.5 / scale`` and edges below that vanish. Only the sink's row of
    the top layer can carry flow to it, so the other top-layer edges are left out of the graph.
    """
    num_layers, n, _ = layers.shape
    caps = np.rint(np.clip(layers, 0.0, None) * scale).astype(np.int64)
    if caps.max(initial=0) >= np.iinfo(np.int32).max:
        raise ValueError("capacities too large for the chosen scale")
    rows, cols, data = [], [], []
    for level in range(num_layers):
        matrix = caps[level]
        if level == num_layers - 1:  # only edges into the sink matter at the top
            matrix = np.zeros_like(matrix)
            matrix[sink] = caps[level][sink]
        target, source = np.nonzero(matrix)
        rows.append(level * n + source)  # from node j of layer `level`
        cols.append((level + 1) * n + target)  # to node i of layer `level + 1`
        data.append(matrix[target, source])
    size = (num_layers + 1) * n
    graph = csr_matrix(
        (np.concatenate(data).astype(np.int32), (np.concatenate(rows), np.concatenate(cols))), shape=(size, size)
    )
    sink_node = num_layers * n + sink
    flows = np.array([maximum_flow(graph, j, sink_node).flow_value for j in range(n)], dtype=np.float64)
    return flows / scale


# --- explainers -----------------------------------------------------------------------------
@register
class AttentionMean(_AttentionMatrixExplainer):
    """The readout row of the attention weights ([CLS] in BERT), averaged over every layer and
    head; a word's score is the attention mass on its pieces (sum)."""

    name = "attention_mean"

    def matrix(self, attentions, attention_mask):
        return torch.stack([a.float().mean(1) for a in attentions]).mean(0)


@register
class Rollout(_AttentionMatrixExplainer):
    """Attention rollout (Abnar & Zuidema 2020): the readout row of ``Â_L ... Â_1`` with
    ``Â = rownorm(mean_h A + I)`` over the real tokens (padding masked out); summed per word."""

    name = "rollout"

    def matrix(self, attentions, attention_mask):
        return rollout_matrix(attentions, attention_mask)


@register
class AttentionFlow(Explainer):
    """Attention flow (Abnar & Zuidema 2020): for each input token, the maximum flow from it to
    the readout token ([CLS] in BERT) at the top of the layered attention graph, whose edge
    capacities are the residual attention ``Â_l = rownorm(mean_h A_l + I)`` (as in the authors'
    code), over real tokens only. Under mean pooling the sink's incoming capacities are the mean
    of the real tokens' top-layer rows.

    One exact max-flow problem per token (scipy's Dinic on integer capacities), on one graph per
    text. Approximation: capacities are quantised to multiples of ``1 / scale`` (default 2^-20),
    so a flow is off by at most (number of cut edges) x 0.5 / scale. Flows are then divided by
    their sum over the text's real tokens, as in the authors' code (a per-text constant, so the
    ranking is the raw max-flow ranking). Runs on the CPU; cost grows as L x T^2 per max-flow.
    """

    name = "attention_flow"
    family = "attention"
    cost = "1 forward + T max-flows (CPU)"
    needs_attention = True

    def __init__(self, scale: int = 1 << 20, batch_size: int = 16, seed: int = 0) -> None:
        super().__init__(batch_size=batch_size, seed=seed)
        self.scale = scale

    def explain_batch(self, classifier, batch, targets) -> BatchAttribution:
        logits, attentions = forward_with_attentions(classifier, batch)
        stacked = torch.stack([residual_attention(a.float(), batch.attention_mask) for a in attentions], 1)
        layers = stacked.cpu().double().numpy()  # [B, L, T, T]
        real = batch.attention_mask.bool().cpu().numpy()
        readout = readout_weights(classifier, batch).cpu().double().numpy()  # [B, T]
        token_scores = torch.zeros(batch.input_ids.shape, dtype=torch.float32)
        for row in range(batch.batch_size):
            keep = np.flatnonzero(real[row])  # the readout token is always real
            graph = layers[row][:, keep][:, :, keep].copy()
            # The sink is node 0 of the top layer, its incoming capacities the readout row.
            graph[-1, 0] = readout[row, keep] @ graph[-1]
            flows = max_flow_to_sink(graph, sink=0, scale=self.scale)
            total = flows.sum()
            token_scores[row, keep] = torch.from_numpy(flows / total if total > 0 else flows).float()
        token_scores = token_scores.to(logits.device)
        return BatchAttribution(pool_to_words(token_scores, batch, "sum"), logits)
