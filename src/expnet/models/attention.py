"""Attention weights from one forward pass, shared by attention explainers, Shapley games and ExpNet.

Two ways to read them:

- ``forward_with_attentions``: every layer's full [B, H, T, T] matrix (``output_attentions=True``
  on the classifier's eager attention). Rollout, flow and gradients through attention need this.
- ``readout_attention``: only the readout query row (what the head's token pays every token) and,
  if asked, the readout key column, of the chosen layers, as [B, H, T] float32. The classifier
  is switched, for that one forward pass, to ``expnet_readout``, an attention function registered
  in transformers' ``AttentionInterface``: every layer computes its output with PyTorch's SDPA
  (fused kernels, no [T, T] weights kept), and the chosen layers additionally compute
  ``softmax(q_r K^T * scale + mask_r)`` for the readout query r of each text - O(T) per head. A
  column entry ``A[j, r]`` needs query j's softmax normaliser, so columns are computed from
  query chunks (a chunk's softmax, of which the entries at key r are kept): O(chunk x T)
  memory, never the whole matrix. The model's setting is restored after the pass.

Why the classifier rests on eager attention: most explainers read full matrices, hooks and
interventions (``expnet.diagnostics.intervention``) switch the implementation themselves and
restore the one they found, so only ExpNet's feature pass switches, per call.

``readout_attention`` falls back to one eager ``output_attentions=True`` pass (and slices the
rows and columns from it) when the fast path cannot be exact: mean pooling (ModernBERT with
``classifier_pooling="mean"`` reads a weighted mean of every row), a model whose attention does
not go through the interface (DeBERTa-v2 in transformers 5) or whose attention modules
carry no ``layer_idx`` (DistilBERT; found from the layers actually recorded, then remembered),
and a model switched to another custom implementation (an intervention in progress). The fast
path is checked equal to eager (tests/test_attention_speed.py) for BERT, RoBERTa, ELECTRA,
ModernBERT (cls pooling), GPT-2, Llama, Mistral, Qwen2 and Gemma.

Scores are computed in float32 whatever the model's dtype (bf16/fp16 on CUDA).
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import repeat_kv, sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

from expnet.errors import ExpnetError
from expnet.models.classifier import Classifier
from expnet.models.readout import readout_columns, readout_kind, readout_positions, readout_rows, readout_weights
from expnet.words import EncodedBatch

READOUT_ATTENTION = "expnet_readout"
# Implementations the readout pass may switch away from (and back to); any other one is someone
# else's registered function in use, which a switch would silently drop.
_STANDARD = ("eager", "sdpa")
# Floats held at once by one query chunk's scores when columns are computed (64 MiB).
_CHUNK_FLOATS = 1 << 24
_MASKED = torch.finfo(torch.float32).min  # as eager attention masks in float32


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


@dataclass
class ReadoutAttention:
    """One layer's attention at the readout position, float32: ``rows`` [B, H, T] (the readout
    query's weights over keys), ``columns`` [B, H, T] (every query's weight on the readout key);
    None when not asked."""

    rows: torch.Tensor | None = None
    columns: torch.Tensor | None = None


@dataclass
class _Recorder:
    """What the registered function reads during one forward pass of one model."""

    positions: torch.Tensor  # [B] readout query per text
    rows: frozenset[int]
    columns: frozenset[int]
    found: dict[int, ReadoutAttention] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return (self.rows | self.columns) <= set(self.found)


_RECORDERS: dict[int, _Recorder] = {}  # id(model.config) -> recorder of the pass in progress
# Model classes whose pass reached the registered function without the layers asked (no
# ``layer_idx`` on their attention modules): later calls go straight to the eager pass.
_UNRECORDED: set[type] = set()


def _additive_mask(mask: torch.Tensor | None, queries: torch.Tensor, positions_k: int, causal: bool) -> torch.Tensor | None:
    """Float32 additive mask [B|1, 1|H, len(queries), Tk] for the given query positions
    ([B, n] long), from the mask the model built (bool or additive, any broadcastable 4-D shape)
    or, without one, SDPA's own causal rule."""
    if mask is None:
        if not causal:
            return None
        keys = torch.arange(positions_k, device=queries.device)
        allowed = keys.view(1, 1, 1, -1) <= queries.unsqueeze(1).unsqueeze(-1)
        return torch.where(allowed, 0.0, _MASKED)
    if mask.shape[-2] > 1:
        index = queries.unsqueeze(1).unsqueeze(-1)
        index = index.expand(mask.shape[0] if mask.shape[0] > 1 else queries.shape[0], mask.shape[1], -1, mask.shape[-1])
        mask = mask.expand(index.shape[0], -1, -1, -1).gather(-2, index)
    if mask.dtype == torch.bool:
        return torch.where(mask, 0.0, _MASKED)
    return mask.float()


def _readout_slices(module, query, key, attention_mask, scaling, causal, recorder: _Recorder, layer: int) -> ReadoutAttention:
    groups = getattr(module, "num_key_value_groups", 1)
    key = repeat_kv(key, groups).float()  # grouped-query attention: one key head per query head
    query = query.float()
    scale = query.shape[-1] ** -0.5 if scaling is None else scaling
    positions = recorder.positions.to(query.device)
    batch, heads, length, _ = query.shape
    result = ReadoutAttention()
    if layer in recorder.rows:
        readout_query = query.gather(2, positions.view(-1, 1, 1, 1).expand(-1, heads, 1, query.shape[-1]))
        scores = readout_query @ key.transpose(-1, -2) * scale  # [B, H, 1, Tk]
        bias = _additive_mask(attention_mask, positions.view(-1, 1), key.shape[2], causal)
        result.rows = (scores if bias is None else scores + bias).softmax(-1).squeeze(2)
    if layer in recorder.columns:
        chunk = max(1, _CHUNK_FLOATS // max(1, batch * heads * key.shape[2]))
        parts = []
        for start in range(0, length, chunk):
            queries = torch.arange(start, min(start + chunk, length), device=query.device).expand(batch, -1)
            scores = query[:, :, start : start + chunk] @ key.transpose(-1, -2) * scale  # [B, H, c, Tk]
            bias = _additive_mask(attention_mask, queries, key.shape[2], causal)
            if bias is not None:
                scores = scores + bias
            # The chunk's softmax, as eager computes it (a fully masked padding row stays uniform).
            weights = scores.softmax(-1)
            parts.append(weights.gather(-1, positions.view(-1, 1, 1, 1).expand(-1, heads, weights.shape[2], 1)).squeeze(-1))
        result.columns = torch.cat(parts, dim=-1)
    return result


def _readout_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """SDPA for the layer's output; the readout row/column on the side for the layers asked."""
    output, _ = sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs)
    recorder = _RECORDERS.get(id(getattr(module, "config", None)))
    layer = getattr(module, "layer_idx", None)
    if recorder is not None and layer in recorder.rows | recorder.columns:
        # SDPA's own causality rule: a causal module without an explicit mask.
        causal = attention_mask is None and query.shape[2] > 1 and kwargs.get("is_causal", getattr(module, "is_causal", False))
        recorder.found[layer] = _readout_slices(module, query, key, attention_mask, scaling, bool(causal), recorder, layer)
    return output, None


AttentionInterface.register(READOUT_ATTENTION, _readout_attention)
AttentionMaskInterface.register(READOUT_ATTENTION, sdpa_mask)  # the masks SDPA gets, built as for SDPA


@contextmanager
def _implementation(model, name: str) -> Iterator[None]:
    previous = model.config._attn_implementation
    model.set_attn_implementation(name)
    try:
        yield
    finally:
        model.set_attn_implementation(previous)


def _fast_path_possible(classifier: Classifier) -> bool:
    model = classifier.model
    return (
        readout_kind(classifier.config) != "mean"
        and getattr(model.config, "_attn_implementation", None) in _STANDARD
        and bool(getattr(model, "_supports_sdpa", False))
        and hasattr(model, "_can_set_attn_implementation")
        and model._can_set_attn_implementation()
        and id(model.config) not in _RECORDERS
        and type(model) not in _UNRECORDED
    )


@torch.no_grad()
def readout_attention(
    classifier: Classifier,
    batch: EncodedBatch,
    rows: Collection[int] = (),
    columns: Collection[int] = (),
) -> tuple[torch.Tensor, dict[int, ReadoutAttention]]:
    """(logits [B, C], {layer: ReadoutAttention}) for the layers in ``rows`` and ``columns``
    (0-based), read where the head reads (``expnet.models.readout``); module doc for the paths."""
    rows, columns = frozenset(rows), frozenset(columns)
    if _fast_path_possible(classifier):
        model = classifier.model
        recorder = _Recorder(readout_positions(classifier, batch), rows, columns)
        _RECORDERS[id(model.config)] = recorder
        try:
            with _implementation(model, READOUT_ATTENTION):
                logits = classifier.forward(batch).logits
        finally:
            _RECORDERS.pop(id(model.config), None)
        if recorder.complete:
            return logits, {layer: recorder.found[layer] for layer in sorted(rows | columns)}
        _UNRECORDED.add(type(model))
    return _eager_readout_attention(classifier, batch, rows, columns)


def _eager_readout_attention(classifier, batch, rows, columns):
    logits, attentions = forward_with_attentions(classifier, batch)
    readout = readout_weights(classifier, batch) if readout_kind(classifier.config) == "mean" else readout_positions(classifier, batch)
    found = {
        layer: ReadoutAttention(
            readout_rows(attentions[layer].float(), readout) if layer in rows else None,
            readout_columns(attentions[layer].float(), readout) if layer in columns else None,
        )
        for layer in sorted(rows | columns)
    }
    return logits, found
