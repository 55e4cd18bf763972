"""The structure of a supported BERT-family sequence classifier, as the decompositions read it.

Only BERT, RoBERTa and ELECTRA sequence classifiers (post-LayerNorm encoders whose layers have
``attention.self.value``, ``attention.output.{dense, LayerNorm}``, ``intermediate`` and
``output.{dense, LayerNorm}``) are supported; anything else is refused with one ExpnetError,
because a decomposition computed on a different layer structure would be silently wrong. Here:
the encoder layers, hooks that keep each layer's tensors during a forward pass, and the
classification head (whole, or as its parts).
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from expnet.errors import ExpnetError
from expnet.models.classifier import Classifier

SUPPORTED_MODELS = {
    "BertForSequenceClassification": "bert",
    "RobertaForSequenceClassification": "roberta",
    "ElectraForSequenceClassification": "electra",
}


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


def head_parts(classifier: Classifier) -> tuple[nn.Linear, object, nn.Linear]:
    """(dense, activation, output projection) of the classification head: BERT's pooler and
    classifier, RoBERTa's (tanh) and ELECTRA's (gelu) classification heads."""
    model: HFModule = classifier.model
    kind = SUPPORTED_MODELS[type(model).__name__]
    if kind == "bert":
        return model.bert.pooler.dense, model.bert.pooler.activation, model.classifier
    activation = model.classifier.activation if kind == "electra" else torch.tanh
    return model.classifier.dense, activation, model.classifier.out_proj
