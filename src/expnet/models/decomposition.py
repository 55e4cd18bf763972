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

Only BERT, RoBERTa and ELECTRA sequence classifiers (post-LayerNorm encoders whose layers have
``attention.self.value``, ``attention.output.{dense, LayerNorm}``, ``intermediate`` and
``output.{dense, LayerNorm}``) are supported; anything else is refused with one ExpnetError,
because a decomposition computed on a different layer structure would be silently wrong.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from expnet.errors import ExpnetError
from expnet.models.attention import forward_with_attentions
from expnet.models.classifier import Classifier
from expnet.models.readout import readout_positions
from expnet.words import EncodedBatch

SIGNALS = frozenset(
    {"head_norms", "attention_norms", "value_zeroing", "value_zeroing_rollout", "decompx", "globenc", "alti"}
)
SUPPORTED_MODELS = {
    "BertForSequenceClassification": "bert",
    "RobertaForSequenceClassification": "roberta",
    "ElectraForSequenceClassification": "electra",
}
# Floats held at once by one chunk of ALTI's decomposed vectors or value zeroing's zeroed layer
# passes (64 MiB).
_CHUNK_FLOATS = 1 << 24


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


# A BERT, RoBERTa or ELECTRA module (layer, model or head) whose submodules are reached by name
# (``layer.attention.output.dense``): torch types such attribute chains as ``Tensor | Module``, so
# the duck-typed structure ``encoder_layers`` checks is written as Any.
HFModule = Any


@dataclass
class LayerCapture:
    """One encoder layer's tensors, as the forward pass saw them: each field exists once the
    pass has run through the layer (``capture_layers`` hooks set them; reading one earlier is an
    AttributeError, never a silent None)."""

    inputs: torch.Tensor = field(init=False)  # [B, T, D] the layer's input hidden states
    values: torch.Tensor = field(init=False)  # [B, T, D] x W_V + b_V, heads side by side
    pre_norm1: torch.Tensor = field(init=False)  # [B, T, D] input of the attention block's LayerNorm
    pre_norm2: torch.Tensor = field(init=False)  # [B, T, D] input of the feed-forward block's LayerNorm


def encoder_layers(classifier: Classifier) -> Sequence[HFModule]:
    """The encoder layers of a supported classifier, or one ExpnetError saying what is supported."""
    model = classifier.model
    kind = SUPPORTED_MODELS.get(type(model).__name__)
    config = model.config
    if kind is None or getattr(config, "is_decoder", False) or getattr(config, "add_cross_attention", False):
        raise ExpnetError(
            "contribution explainers (attention_norm, globenc, alti, value_zeroing, decompx, ...) support "
            f"BERT, RoBERTa and ELECTRA sequence classifiers only, not {type(model).__name__}; use a "
            "gradient, perturbation or attention explainer instead"
        )
    return getattr(model, kind).encoder.layer


def classifier_head(classifier: Classifier, states: torch.Tensor) -> torch.Tensor:
    """Logits [N, C] from readout vectors [N, D] after the last layer, through the model's own head.

    BERT's pooler and RoBERTa's / ELECTRA's classification heads read position 0 of a sequence, so
    each vector goes in as a sequence of length 1."""
    model: HFModule = classifier.model
    sequence = states.unsqueeze(1)
    if SUPPORTED_MODELS[type(model).__name__] == "bert":
        return model.classifier(model.dropout(model.bert.pooler(sequence)))
    return model.classifier(sequence)


@contextmanager
def capture_layers(layers: Sequence[HFModule], wanted: Collection[int]) -> Iterator[dict[int, LayerCapture]]:
    """While open, forward passes fill one ``LayerCapture`` per wanted layer index (the last pass wins)."""
    captures = {index: LayerCapture() for index in wanted}
    handles = []

    def keep(capture: LayerCapture, name: str, from_output: bool = False):
        def hook(module, args, *rest):
            if from_output:
                tensor = rest[0]
            else:
                tensor = args[0] if args else rest[0]["hidden_states"]
            setattr(capture, name, tensor.detach())

        return hook

    try:
        for index, capture in captures.items():
            layer = layers[index]
            handles += [
                layer.register_forward_pre_hook(keep(capture, "inputs"), with_kwargs=True),
                layer.attention.self.value.register_forward_hook(keep(capture, "values", from_output=True)),
                layer.attention.output.LayerNorm.register_forward_pre_hook(keep(capture, "pre_norm1")),
                layer.output.LayerNorm.register_forward_pre_hook(keep(capture, "pre_norm2")),
            ]
        yield captures
    finally:
        for handle in handles:
            handle.remove()


def _layer_index(index: int, num_layers: int) -> int:
    if not -num_layers <= index < num_layers:
        raise ExpnetError(f"layer {index} does not exist: this classifier has layers 0..{num_layers - 1} (or -1 for the last)")
    return index % num_layers


def _std(states: torch.Tensor, norm: nn.LayerNorm) -> torch.Tensor:
    """[B, T] the divisor LayerNorm applies at each position."""
    return (states.float().var(-1, unbiased=False) + norm.eps).sqrt()


def _centre_then_scale(vectors: torch.Tensor, norm: nn.LayerNorm) -> torch.Tensor:
    """LayerNorm's linear part before its division, ``v -> gamma * (v - mean v)``, on the last dim."""
    return (vectors - vectors.mean(-1, keepdim=True)) * norm.weight.float()


def head_transformed_values(
    layer: HFModule, capture: LayerCapture, num_heads: int, norms: Sequence[nn.LayerNorm] = ()
) -> torch.Tensor:
    """[B, H, T, D] ``f^h(x_j) = (x_j W_V^h + b_V^h) W_O^h`` for every head and token, followed by
    the linear parts of ``norms`` in order (folded into ``W_O``: one pass over the vectors)."""
    batch, length, hidden = capture.values.shape
    values = capture.values.float().view(batch, length, num_heads, hidden // num_heads)
    dense = layer.attention.output.dense.weight.float().T  # [D_in, D_out], D_in = heads side by side
    for norm in norms:
        dense = _centre_then_scale(dense, norm)
    return torch.einsum("bjhv,hvd->bhjd", values, dense.view(num_heads, hidden // num_heads, -1))


def _mask_matrix(matrix: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Zero padding rows and columns, then make padding rows identity rows."""
    pairs = real.unsqueeze(-1) & real.unsqueeze(-2)
    eye = torch.eye(matrix.shape[-1], dtype=matrix.dtype, device=matrix.device)
    return torch.where(pairs, matrix, torch.zeros_like(matrix)) + eye * (~real).unsqueeze(-1)


def globenc_matrix(
    layer: HFModule, capture: LayerCapture, attention: torch.Tensor, real: torch.Tensor, second_norm: bool = True
) -> torch.Tensor:
    """[B, T, T] one layer's GlobEnc norms ``N_ij`` (see the module docstring), padding masked.

    With ``M`` the LayerNorms' linear parts (centre, scale by gamma; LN1's then LN2's), which are
    linear and so can be applied to every f^h(x_j) and x_j once, ``||M z_ij||^2`` comes from
    per-token Gram matrices: ``sum_{h,h'} a^h_ij a^h'_ij <M f^h_j, M f^h'_j> + [i = j]
    (2 sum_h a^h_ii <M f^h_i, M x_i> + ||M x_i||^2)``; no [B, T, T, D] tensor is ever built."""
    norm1, norm2 = layer.attention.output.LayerNorm, layer.output.LayerNorm
    attention = attention.float()
    num_heads = attention.shape[1]
    norms = (norm1, norm2) if second_norm else (norm1,)
    mapped = head_transformed_values(layer, capture, num_heads, norms)  # [B, H, T, D]
    residual = capture.inputs.float()  # [B, T, D]
    scale = torch.ones_like(residual[..., 0])
    # Without the second norm only the first pair is used: zip stops at the shorter on purpose.
    for norm, states in zip(norms, (capture.pre_norm1, capture.pre_norm2), strict=False):
        residual = _centre_then_scale(residual, norm)
        scale = scale * _std(states, norm)
    gram = torch.einsum("bhjd,bkjd->bjhk", mapped, mapped)  # [B, T, H, H]
    squared = (attention * torch.einsum("bjhk,bkij->bhij", gram, attention)).sum(1)  # [B, T, T]
    diagonal = attention.diagonal(dim1=-2, dim2=-1)  # [B, H, T] a^h_ii
    cross = torch.einsum("bhid,bid->bhi", mapped, residual)
    squared = squared + torch.diag_embed(2 * (diagonal * cross).sum(1) + residual.pow(2).sum(-1))
    contributions = squared.clamp(min=0).sqrt() / scale.unsqueeze(-1)
    return _mask_matrix(contributions, real)


def alti_matrix(layer: HFModule, capture: LayerCapture, attention: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """[B, T, T] one layer's ALTI contributions, rows summing to 1 over the real tokens.

    ``T_i(x_j) = gamma * (z_ij - mean z_ij) / s_i``. Centring and scaling by gamma are linear, so
    they are applied to every f^h(x_j) and x_j once; then ``||y_i - T_i(x_j)||_1 =
    ||s_i y_i - sum_h a^h_ij f~^h_j - [i = j] x~_j||_1 / s_i``. L1 distances do not factor through
    Gram matrices, so the [B, T, rows, D] vectors are built for a chunk of query rows at a time
    (laid out key-major, as the batched matrix product makes them)."""
    norm1 = layer.attention.output.LayerNorm
    attention = attention.float()
    transformed = head_transformed_values(layer, capture, attention.shape[1], (norm1,))
    inputs = _centre_then_scale(capture.inputs.float(), norm1)
    batch, length, hidden = inputs.shape
    scale = _std(capture.pre_norm1, norm1)
    outputs = nn.functional.layer_norm(
        capture.pre_norm1.float(), (hidden,), norm1.weight.float(), norm1.bias.float(), norm1.eps
    )
    targets = outputs * scale.unsqueeze(-1)  # s_i y_i
    rows = max(1, _CHUNK_FLOATS // (batch * length * hidden))
    chunks = []
    for start in range(0, length, rows):
        chunk = slice(start, min(start + rows, length))
        mixed = torch.einsum("bhij,bhjd->bjid", attention[:, :, chunk], transformed)  # [B, T, r, D]
        queries = torch.arange(chunk.start, chunk.stop, device=inputs.device)
        mixed[:, queries, queries - start] += inputs[:, chunk]
        mixed.sub_(targets[:, None, chunk])
        chunks.append(torch.linalg.vector_norm(mixed, ord=1, dim=-1).transpose(1, 2))  # [B, r, T]
    distances = torch.cat(chunks, 1) / scale.unsqueeze(-1)
    contributions = (outputs.abs().sum(-1, keepdim=True) - distances).clamp(min=0)
    contributions = _mask_matrix(contributions, real)
    return contributions / contributions.sum(-1, keepdim=True).clamp(min=torch.finfo(torch.float32).tiny)


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


def readout_head_vectors(
    layer: HFModule, capture: LayerCapture, attention: torch.Tensor, readout: torch.Tensor
) -> torch.Tensor:
    """[B, H, T, D] ``alpha^h_{r j} f^h(x_j)`` at the readout position ``r`` of each text."""
    rows = attention.float()[torch.arange(attention.shape[0], device=attention.device), :, readout]  # [B, H, T]
    return rows.unsqueeze(-1) * head_transformed_values(layer, capture, attention.shape[1])


def _rest_of_layer(layer: HFModule, contexts: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
    """[N, T, D] float32 layer outputs from attention contexts (heads side by side) and the layer's
    inputs: attention output dense + residual + LayerNorm, feed-forward + residual + LayerNorm,
    through the layer's own modules (in the model's dtype)."""
    attended = layer.attention.output(contexts.to(residual.dtype), residual)
    return layer.output(layer.intermediate(attended), attended).float()


def value_zeroing_matrix(layer: HFModule, capture: LayerCapture, attention: torch.Tensor, real: torch.Tensor):
    """[B, T, T] Mohebbi et al.'s layer-wise value zeroing, rows summing to 1 over the real tokens:
    ``C_ij`` = cosine distance between query i's layer output and its output with token j's value
    vector zeroed in every head (the layer's inputs kept), normalised over j.

    Zeroing a value leaves the attention weights unchanged, so each zeroed context is the original
    one minus token j's share; every (j, i) pair goes through the rest of the layer, a chunk of j
    at a time: the cost of T layer passes without their attention."""
    batch, length, hidden = capture.values.shape
    num_heads = attention.shape[1]
    attention = attention.float()
    values = capture.values.float().view(batch, length, num_heads, hidden // num_heads)
    context = torch.einsum("bhij,bjhv->bihv", attention, values)  # [B, T, H, dh]
    original = _rest_of_layer(layer, context.reshape(batch, length, hidden), capture.inputs)  # [B, T, D]
    intermediate = getattr(layer.intermediate.dense, "out_features", 4 * hidden)
    keys = max(1, _CHUNK_FLOATS // (batch * length * (3 * hidden + intermediate)))
    distances = []
    for start in range(0, length, keys):
        chunk = slice(start, min(start + keys, length))
        shares = torch.einsum("bhij,bjhv->bjihv", attention[..., chunk], values[:, chunk])  # [B, r, T, H, dh]
        zeroed = (context.unsqueeze(1) - shares).reshape(-1, length, hidden)
        outputs = _rest_of_layer(layer, zeroed, capture.inputs.repeat_interleave(shares.shape[1], 0))
        outputs = outputs.view(batch, -1, length, hidden)
        similarity = nn.functional.cosine_similarity(outputs, original.unsqueeze(1), dim=-1)  # [B, r, T]
        distances.append((1 - similarity).clamp(min=0))
    scores = _mask_matrix(torch.cat(distances, 1).transpose(1, 2), real)
    return scores / scores.sum(-1, keepdim=True).clamp(min=torch.finfo(torch.float32).tiny)


def value_zeroing_scores(
    classifier: Classifier,
    layer: HFModule,
    capture: LayerCapture,
    attention: torch.Tensor,
    readout: torch.Tensor,
    targets: torch.Tensor,
) -> torch.Tensor:
    """[B, T] target logit minus the target logit with token j's value zeroed in ``layer`` (the last).

    Row 0 of the batch pushed through the head is the unperturbed readout context, so original and
    zeroed logits come from the same arithmetic."""
    batch, length, hidden = capture.values.shape
    num_heads = attention.shape[1]
    index = torch.arange(batch, device=attention.device)
    weights = attention.float()[index, :, readout]  # [B, H, T]
    values = capture.values.float().view(batch, length, num_heads, hidden // num_heads)
    removed = weights.permute(0, 2, 1).unsqueeze(-1) * values  # [B, T, H, dh]: token j's share
    context = removed.sum(1, keepdim=True)  # [B, 1, H, dh]
    contexts = torch.cat([context, context - removed], 1).reshape(batch * (length + 1), 1, hidden)
    residual = capture.inputs[index, readout].unsqueeze(1).repeat_interleave(length + 1, 0)  # [N, 1, D]
    outputs = _rest_of_layer(layer, contexts, residual)
    logits = classifier_head(classifier, outputs[:, 0].to(residual.dtype)).float().view(batch, length + 1, -1)
    chosen = logits.gather(2, targets.view(-1, 1, 1).expand(-1, length + 1, 1)).squeeze(-1)  # [B, T + 1]
    return chosen[:, :1] - chosen[:, 1:]


def _head_parts(classifier: Classifier) -> tuple[nn.Linear, object, nn.Linear]:
    """(dense, activation, output projection) of the classification head: BERT's pooler and
    classifier, RoBERTa's (tanh) and ELECTRA's (gelu) classification heads."""
    model: HFModule = classifier.model
    kind = SUPPORTED_MODELS[type(model).__name__]
    if kind == "bert":
        return model.bert.pooler.dense, model.bert.pooler.activation, model.classifier
    activation = model.classifier.activation if kind == "electra" else torch.tanh
    return model.classifier.dense, activation, model.classifier.out_proj


def _through_activation(parts: torch.Tensor, total: torch.Tensor, activation) -> torch.Tensor:
    """DecompX's linearised activation: every part of ``total`` (parts summed over dim 1) scaled by
    ``act(total) / total``, elementwise, so the parts still add up to ``act(total)``. Where the
    total is 0 the ratio is the activation's slope at 0 (a central difference)."""
    step = 1e-3
    slope = (activation(torch.tensor(step)) - activation(torch.tensor(-step))) / (2 * step)
    tiny = total.abs() < 1e-6
    ratio = torch.where(tiny, slope.to(total), activation(total) / torch.where(tiny, torch.ones_like(total), total))
    return parts * ratio.unsqueeze(1)


def _linear_parts(parts: torch.Tensor, bias_index: int, linear: nn.Linear) -> torch.Tensor:
    """A linear layer on decomposed vectors [B, P, D]: the weight on every part, its bias on part
    ``bias_index`` only."""
    out = parts @ linear.weight.float().T
    if linear.bias is not None:
        out[:, bias_index] += linear.bias.float()
    return out


def _norm_parts(parts: torch.Tensor, bias_index: int, norm: nn.LayerNorm, states: torch.Tensor) -> torch.Tensor:
    """LayerNorm on decomposed vectors [B, P, D] whose sum is ``states`` [B, D]: the linear part and
    the real standard deviation on every part, beta on part ``bias_index``."""
    out = _centre_then_scale(parts, norm) / _std(states, norm)[:, None, None]
    out[:, bias_index] += norm.bias.float()
    return out


def decompx_last_layer(
    classifier: Classifier, layer: HFModule, capture: LayerCapture, attention: torch.Tensor, readout: torch.Tensor
) -> torch.Tensor:
    """[B, T + 1, C] DecompX (Modarressi et al. 2023) from the last layer's input: the logits split
    into one part per token plus a bias part (index T); the parts add up to the logits.

    Each token's last-layer input is its own part. The parts go, at the readout position only,
    through attention (``alpha f(x_j)`` plus the residual), both LayerNorms (decomposed, real
    standard deviations), the feed-forward and the head's dense layer with their activations
    linearised at the real pre-activations (``_through_activation``), and the output projection.
    Earlier layers' mixing is not followed, so this is the last-layer form, not full DecompX."""
    batch, length, hidden = capture.inputs.shape
    index = torch.arange(batch, device=attention.device)
    inputs = capture.inputs.float()
    mixed = readout_head_vectors(layer, capture, attention, readout).sum(1)  # [B, T, D]
    mixed[index, readout] += inputs[index, readout]
    bias = length  # the bias part comes after the T token parts
    parts = torch.cat([mixed, layer.attention.output.dense.bias.float().expand(batch, 1, hidden)], 1)
    parts = _norm_parts(parts, bias, layer.attention.output.LayerNorm, capture.pre_norm1[index, readout])
    residual = parts
    parts = _linear_parts(parts, bias, layer.intermediate.dense)
    parts = _through_activation(parts, parts.sum(1), layer.intermediate.intermediate_act_fn)
    parts = _linear_parts(parts, bias, layer.output.dense) + residual
    parts = _norm_parts(parts, bias, layer.output.LayerNorm, capture.pre_norm2[index, readout])
    dense, activation, projection = _head_parts(classifier)
    parts = _linear_parts(parts, bias, dense)
    parts = _through_activation(parts, parts.sum(1), activation)
    return _linear_parts(parts, bias, projection)


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
