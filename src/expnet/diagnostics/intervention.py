"""Attention interventions through the model's own attention dispatch; no model file is copied.

BERT-family models in transformers 5 look their attention function up at every call:
``ALL_ATTENTION_FUNCTIONS.get_interface(config._attn_implementation, eager_attention_forward)``.
``attention_intervention`` registers one extra function, ``expnet_intervention``, in that
``AttentionInterface`` (and the eager mask builder under the same name in the
``AttentionMaskInterface``, so padding is still masked), switches the model to it and switches it
back on exit. The function runs the model's own ``eager_attention_forward``; on the chosen layers
it then replaces the softmax weights by a tensor or by ``replace(weights, key_mask)`` and
recomputes ``weights @ value``. Everything after that layer is the unchanged model.

``skip_to_layer`` is a speed-up for interventions on late layers: the hidden states entering the
chosen layer are computed once, and while the context is open the encoder's earlier layers are
stood in for by a module that replays them, so each intervened pass runs only the remaining
layers and the head (the model's own modules and forward code).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn
from transformers import AttentionInterface
from transformers.masking_utils import AttentionMaskInterface, eager_mask

from expnet.errors import ExpnetError
from expnet.models.classifier import Classifier
from expnet.words import EncodedBatch

INTERVENTION = "expnet_intervention"
# Encoders whose self-attention dispatches through AttentionInterface, knows its ``layer_idx``
# and sits in ``base_model.encoder.layer`` (checked against transformers 5).
SUPPORTED_MODEL_TYPES = ("bert", "roberta", "xlm-roberta", "camembert", "electra")

Replacement = torch.Tensor | Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


# --- what the model must offer --------------------------------------------------------------
def check_supported(classifier: Classifier) -> None:
    """A clear error unless the classifier is a BERT-family encoder we can intervene on."""
    model_type = getattr(classifier.config, "model_type", "unknown")
    encoder = getattr(getattr(classifier.model, "base_model", None), "encoder", None)
    if model_type not in SUPPORTED_MODEL_TYPES or not isinstance(getattr(encoder, "layer", None), nn.ModuleList):
        raise ExpnetError(
            f"{classifier.source} is a {model_type!r} model; attention diagnostics need a BERT-family "
            f"encoder ({', '.join(SUPPORTED_MODEL_TYPES)}) whose attention goes through transformers' "
            "AttentionInterface"
        )


def encoder_layers(classifier: Classifier) -> nn.ModuleList:
    check_supported(classifier)
    return classifier.model.base_model.encoder.layer


def resolve_layer(classifier: Classifier, layer: int | None) -> int:
    """A layer index in 0..L-1 from an index (negative counts from the end; None = final)."""
    count = classifier.num_layers
    index = count - 1 if layer is None else int(layer)
    if not -count <= index < count:
        raise ExpnetError(
            f"--layer {layer} is out of range: this classifier has layers 0..{count - 1} (or -1..-{count})"
        )
    return index % count


# --- replacements: (weights [B, H, Tq, Tk], key_mask [B, Tk] bool) -> weights ---------------
def uniform_weights(weights: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
    """Every query spreads its attention evenly over the real (non-padding) keys."""
    real = key_mask.to(weights.dtype)
    row = real / real.sum(-1, keepdim=True).clamp(min=1)
    return row[:, None, None, :].expand_as(weights)


def permute_weights(
    weights: torch.Tensor, key_mask: torch.Tensor, generator: torch.Generator | None = None, rows: int | None = None
) -> torch.Tensor:
    """Each head's row shuffled, independently, among the real keys (padding keeps its zeros);
    with ``rows``, only the first ``rows`` query rows are shuffled and the others kept."""
    if rows is not None:
        shuffled = permute_weights(weights[:, :, :rows], key_mask, generator)
        return torch.cat([shuffled, weights[:, :, rows:]], dim=2)
    real = key_mask[:, None, None, :].expand_as(weights)
    noise = torch.rand(weights.shape, generator=generator).to(weights.device)
    order = torch.where(real, noise, torch.full_like(noise, 2.0)).argsort(-1)  # real keys first, shuffled
    positions = torch.arange(key_mask.shape[-1], device=weights.device)
    slots = torch.where(key_mask, positions, positions + key_mask.shape[-1]).argsort(-1)  # real keys first, in order
    slots = slots[:, None, None, :].expand_as(weights)
    return torch.zeros_like(weights).scatter(-1, slots, weights.gather(-1, order))


def detached_weights(weights: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
    """The weights themselves, cut off from autograd (gradients that do not flow through attention)."""
    return weights.detach()


# --- the registered attention function ------------------------------------------------------
@dataclass
class InterventionState:
    """What the registered function does for one model; ``replacement`` may be swapped between passes."""

    layers: frozenset[int] | None  # None = every layer
    replacement: Replacement
    calls: int = 0

    def applies_to(self, layer: int | None) -> bool:
        return layer is not None and (self.layers is None or layer in self.layers)


_ACTIVE: dict[int, InterventionState] = {}  # id(model.config) -> state


def _eager_function(module: nn.Module) -> Callable:
    own = getattr(sys.modules.get(type(module).__module__), "eager_attention_forward", None)
    if own is None:
        from transformers.models.bert import modeling_bert

        own = modeling_bert.eager_attention_forward
    return own


def _key_mask(attention_mask: torch.Tensor | None, batch: int, keys: int, device) -> torch.Tensor:
    """[B, Tk] True for keys a query may attend to, read off the 4-D mask the model built."""
    if attention_mask is None:
        return torch.ones(batch, keys, dtype=torch.bool, device=device)
    row = attention_mask[:, 0, 0, :keys]
    if row.dtype == torch.bool:
        return row.expand(batch, -1)
    return (row > torch.finfo(row.dtype).min / 2).expand(batch, -1)


def _intervened_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    eager = _eager_function(module)
    state = _ACTIVE.get(id(getattr(module, "config", None)))
    if state is None or not state.applies_to(getattr(module, "layer_idx", None)):
        return eager(module, query, key, value, attention_mask, scaling=scaling, dropout=dropout, **kwargs)
    _, weights = eager(module, query, key, value, attention_mask, scaling=scaling, dropout=0.0, **kwargs)
    if callable(state.replacement):
        new = state.replacement(weights, _key_mask(attention_mask, weights.shape[0], weights.shape[-1], weights.device))
    else:
        new = state.replacement.to(weights.device, weights.dtype).expand_as(weights)
    state.calls += 1
    output = torch.matmul(new.to(value.dtype), value).transpose(1, 2).contiguous()
    return output, new


AttentionInterface.register(INTERVENTION, _intervened_attention)
AttentionMaskInterface.register(INTERVENTION, eager_mask)


def _layer_set(classifier: Classifier, layers: int | Iterable[int] | None) -> frozenset[int] | None:
    if layers is None:
        return None
    if isinstance(layers, int):
        layers = [layers]
    return frozenset(resolve_layer(classifier, layer) for layer in layers)


@contextmanager
def attention_intervention(
    classifier: Classifier, replacement: Replacement, layers: int | Iterable[int] | None = None
) -> Iterator[InterventionState]:
    """Replace the softmax attention weights of ``layers`` (None: every layer) while open.

    ``replacement`` is a tensor broadcastable to [B, H, Tq, Tk] or ``f(weights, key_mask)``; the
    yielded state's ``replacement`` can be changed between forward passes and ``calls`` counts the
    replaced layer calls. The model's attention setting is restored on exit, even after an error.
    """
    check_supported(classifier)
    model = classifier.model
    key = id(model.config)
    if key in _ACTIVE:
        raise RuntimeError("attention interventions on one model cannot be nested")
    state = InterventionState(_layer_set(classifier, layers), replacement)
    previous = model.config._attn_implementation
    _ACTIVE[key] = state
    try:
        model.set_attn_implementation(INTERVENTION)
        yield state
    finally:
        model.set_attn_implementation(previous)
        _ACTIVE.pop(key, None)


def require_calls(state: InterventionState, classifier: Classifier) -> None:
    """A clear error when a forward pass never reached the registered function."""
    if state.calls == 0:
        raise ExpnetError(
            f"{classifier.source}: the model never called the registered attention function, so its "
            "attention cannot be intervened on; attention diagnostics need a BERT-family encoder"
        )


# --- running only the layers from the intervened one on -------------------------------------
class _Replay(nn.Module):
    """Stands in for layer 0: returns the stored hidden states entering the chosen layer."""

    def __init__(self, hidden: torch.Tensor) -> None:
        super().__init__()
        self.hidden = hidden

    def forward(self, hidden_states, *args, **kwargs):
        rows = hidden_states.shape[0]
        if self.hidden.shape[0] == rows:
            return self.hidden
        if self.hidden.shape[0] == 1:
            return self.hidden.expand(rows, -1, -1)
        raise RuntimeError(f"stored hidden states have {self.hidden.shape[0]} rows, the batch {rows}")


class _PassThrough(nn.Module):
    def forward(self, hidden_states, *args, **kwargs):
        return hidden_states


@contextmanager
def skip_to_layer(classifier: Classifier, layer: int, hidden: torch.Tensor) -> Iterator[None]:
    """While open, forward passes start at ``layer`` from ``hidden`` (the states entering it,
    ``output_hidden_states[layer]``, with 1 row or one per batch row); the batch's input ids
    and mask must still be given and match."""
    layers = encoder_layers(classifier)
    layer = resolve_layer(classifier, layer)
    if layer == 0:
        yield
        return
    saved = [layers[i] for i in range(layer)]
    try:
        layers[0] = _Replay(hidden.detach())
        for i in range(1, layer):
            layers[i] = _PassThrough()
        yield
    finally:
        for i, module in enumerate(saved):
            layers[i] = module


# --- batches --------------------------------------------------------------------------------
def repeat_rows(batch: EncodedBatch, times: int) -> EncodedBatch:
    """Each row repeated ``times`` times in place (row i -> rows i*times .. i*times+times-1)."""
    return batch.map_tensors(
        lambda t: t.repeat_interleave(times, dim=0),
        words=[w for w in batch.words for _ in range(times)],
        word_scored=[s for s in batch.word_scored for _ in range(times)],
    )


@torch.no_grad()
def reference_pass(classifier: Classifier, batch: EncodedBatch):
    """The unmodified forward pass with every layer's attention and hidden states."""
    output = classifier.forward(batch, output_attentions=True, output_hidden_states=True)
    if not output.attentions or output.attentions[0] is None or not output.hidden_states:
        raise ExpnetError(
            f"{classifier.source} returns no attention weights or hidden states; attention diagnostics cannot run"
        )
    return output


def output_distribution(logits: torch.Tensor) -> torch.Tensor:
    return logits.float().softmax(-1)


def total_variation(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """TVD = 0.5 * sum |p - q| over the last axis."""
    return 0.5 * (p - q).abs().sum(-1)
