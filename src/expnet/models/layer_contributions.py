"""One encoder layer's contributions, from the tensors ``expnet.models.encoder.capture_layers`` kept.

Arithmetic on a layer's captured tensors with the model's own weights (in float32): the GlobEnc,
ALTI and value-zeroing token-to-token matrices of one layer, the readout row's per-head vectors,
last-layer value zeroing and last-layer DecompX. The formulas are in ``expnet.models.decomposition``,
which turns these into signals (and rolls the matrices out).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from expnet.models.classifier import Classifier
from expnet.models.encoder import HFModule, LayerCapture, classifier_head, head_parts

# Floats held at once by one chunk of ALTI's decomposed vectors or value zeroing's zeroed layer
# passes (64 MiB).
_CHUNK_FLOATS = 1 << 24


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
    """[B, T, T] one layer's GlobEnc norms ``N_ij`` (see ``expnet.models.decomposition``), padding masked.

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
    dense, activation, projection = head_parts(classifier)
    parts = _linear_parts(parts, bias, dense)
    parts = _through_activation(parts, parts.sum(1), activation)
    return _linear_parts(parts, bias, projection)
