"""Gradient plumbing shared by gradient-based explainers, ExpNet's gradient features and TCAV.

The classifier's weights are frozen, so gradients flow from the input embeddings: the model is
run on ``inputs_embeds`` (the word-piece embedding lookup, made a leaf that requires grad); the
model adds position and segment embeddings itself. No model file is copied or patched.
The attributed quantity is the target class's *logit* (as in ferret, Chefer and LXT).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from expnet.models.classifier import Classifier
from expnet.words import EncodedBatch


def input_embeddings(classifier: Classifier, batch: EncodedBatch) -> torch.Tensor:
    """Word-piece embeddings [B, T, D] of the batch, as a fresh leaf tensor."""
    return classifier.input_embeddings()(batch.input_ids).detach()


def embedding_scale_ignored(config) -> bool:
    """Whether the word-piece embeddings enter a LayerNorm with nothing added to them: ModernBERT,
    and DeBERTa without absolute positions or segment embeddings (as the v3 checkpoints are). A
    norm ignores its input's scale, so scaling one word's embedding changes no logit, and
    embedding x gradient (the derivative along that scaling) is zero up to the norm's epsilon."""
    model_type = getattr(config, "model_type", "")
    if model_type == "modernbert":
        return True
    return (
        model_type in ("deberta", "deberta-v2")
        and not getattr(config, "position_biased_input", True)
        and getattr(config, "type_vocab_size", 0) == 0
    )


def target_logits(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return logits.gather(1, targets.view(-1, 1)).squeeze(1)


@dataclass
class AttentionGradients:
    logits: torch.Tensor  # [B, C], detached
    targets: torch.Tensor  # [B]
    attentions: tuple[torch.Tensor, ...]  # per layer [B, H, T, T], detached
    gradients: tuple[torch.Tensor | None, ...]  # d target logit / d attention; None where not asked


def attention_gradients(
    classifier: Classifier,
    batch: EncodedBatch,
    targets: torch.Tensor | None,
    layers: Sequence[int] | None = None,
) -> AttentionGradients:
    """One forward and one backward pass: every layer's attention and the gradients of the chosen
    ``layers`` (default all; asking only for late layers keeps the backward pass short)."""
    with torch.enable_grad():
        embeddings = input_embeddings(classifier, batch).requires_grad_(True)
        output = classifier.forward(batch, output_attentions=True, inputs_embeds=embeddings)
        chosen = output.logits.argmax(-1) if targets is None else targets
        wanted = range(len(output.attentions)) if layers is None else sorted(set(layers))
        computed = torch.autograd.grad(
            target_logits(output.logits, chosen).sum(), [output.attentions[i] for i in wanted]
        )
    by_layer = dict(zip(wanted, computed, strict=True))
    return AttentionGradients(
        logits=output.logits.detach(),
        targets=chosen,
        attentions=tuple(a.detach() for a in output.attentions),
        gradients=tuple(None if i not in by_layer else by_layer[i].detach() for i in range(len(output.attentions))),
    )
