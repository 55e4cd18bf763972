"""ExpNet features for one encoded batch: the one entry point training and explaining use.

The passes a spec needs, and no more: for attention features alone, one SDPA pass that reads
only the readout rows (and columns) of the spec's layers
(``expnet.models.attention.readout_attention``); with head norms or contribution signals, a
forward pass with attentions and the hooks of ``expnet.models.decomposition``; with ``"attention_x_gradient"`` values, one forward and one
backward pass: the gradient of the explained class's *logit* (the predicted class unless targets
are given; training uses correctly predicted examples only, so there it is the gold class) with
respect to each chosen layer's attention weights. As in the gradient explainers, gradients flow
from the input embeddings (a fresh leaf), the classifier's weights stay frozen and no model file
is touched. Every value is read at the position the classification head reads
(``expnet.models.readout``): [CLS] for encoders, the last real token for decoders.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from expnet.errors import ExpnetError
from expnet.models.attention import ReadoutAttention, readout_attention
from expnet.models.classifier import Classifier
from expnet.models.decomposition import decompose
from expnet.models.encoder import encoder_layers
from expnet.models.gradients import attention_gradients
from expnet.models.readout import head_reads_readout, is_causal, readout_kind, readout_positions, readout_weights
from expnet.network.features import FeatureSpec, word_features
from expnet.words import EncodedBatch


def readout_of(classifier: Classifier, batch: EncodedBatch) -> torch.Tensor:
    """Where the head reads: [B] positions, or [B, T] weights for mean pooling."""
    if readout_kind(classifier.config) == "mean":
        return readout_weights(classifier, batch)
    return readout_positions(classifier, batch)


def batch_features(
    classifier: Classifier, batch: EncodedBatch, spec: FeatureSpec, targets: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Word features [B, W, spec.dim] and the logits [B, C] of one batch."""
    spec = spec.for_classifier(classifier.num_layers, classifier.num_heads)
    reason = unsupported_reason(classifier, spec)
    if reason:
        raise ExpnetError(reason)
    readout = readout_of(classifier, batch)
    decomposition, gradients = None, None
    attentions: Sequence[torch.Tensor] | Mapping[int, ReadoutAttention]
    if spec.decomposition_signals:
        decomposition = decompose(classifier, batch, spec.decomposition_signals, _decomposed_layers(spec), targets)
        attentions, logits = decomposition.attentions, decomposition.logits
    if spec.needs_gradient:
        with head_reads_readout(classifier):  # decoders on inputs_embeds: read the last real token
            result = attention_gradients(classifier, batch, targets, spec.layers)
        attentions, logits, gradients = result.attentions, result.logits, result.gradients
    elif decomposition is None:  # attention alone: only the readout rows/columns are read
        rows = spec.layers if "cls_to_token" in spec.directions else ()
        columns = spec.layers if "token_to_cls" in spec.directions else ()
        logits, attentions = readout_attention(classifier, batch, rows, columns)
    with torch.no_grad():
        return word_features(attentions, batch, spec, gradients, decomposition, readout), logits


def unsupported_reason(classifier: Classifier, spec: FeatureSpec) -> str | None:
    """Why these features cannot be computed for ``classifier`` (one line), or None."""
    if is_causal(classifier.config) and "token_to_cls" in spec.directions:
        return (
            "token_to_cls features do not exist for a decoder classifier (under its causal mask no token "
            "before the last one can attend to the readout token); use directions cls_to_token only"
        )
    if spec.decomposition_signals:
        try:
            encoder_layers(classifier)
        except ExpnetError as error:
            return f"head norms and contribution signals: {error}"
    return None


def _decomposed_layers(spec: FeatureSpec) -> tuple[int, ...]:
    # Head norms of the spec's layers; the attention_norm signal reads the last layer.
    return tuple(sorted(set(spec.layers) | {spec.num_layers - 1}))
