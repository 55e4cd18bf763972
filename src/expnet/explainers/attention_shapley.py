"""Attention-Shapley explainers (Eggen et al., arXiv 2508.08966): exact Shapley values of the
mutual and max-mutual attention games.

Players are a text's non-special tokens; the game is played on the attention averaged over the
chosen layers (default: all) and every head, or on the gradient-weighted attention
``A ⊙ ReLU(d target logit / d A)`` (the ``_grad`` variants). Values are exact, from the O(n^2)
closed form in ``expnet.shapley.games``, so a 512-token text costs one forward pass (plus one
backward for ``_grad``) and a few n x n matrix operations.

Word scores: the sum of the word's pieces' token-level Shapley values (``pool_to_words(...,
"sum")``), so words' scores still add up to v(N). This is the token game pooled, not the Shapley
value of a word-level game: merging a word's pieces into one player changes the number of
players, and the word alone would be worth the pairs among its own pieces (a few per cent apart
on a three-piece word; ``tests/test_shapley.py`` checks the token game by brute force). The plain variants explain
the attention pattern (they do not depend on the target class); the ``_grad`` variants weight it
by the target logit's gradient. Values can be negative (a token with large self-attention pays a
share to every other player), so the explainers are marked signed.
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Integral
from typing import ClassVar

from expnet.errors import ExpnetError
from expnet.explainers.base import BatchAttribution, Explainer
from expnet.explainers.registry import register
from expnet.shapley.games import Pairing, pairwise_shapley
from expnet.shapley.matrices import Weighting, attention_matrices
from expnet.words import pool_to_words


class AttentionShapley(Explainer):
    """Base class: ``pairing`` picks the game, ``weighting`` the matrix it is played on."""

    pairing: ClassVar[Pairing] = "mutual"
    weighting: ClassVar[Weighting] = "plain"
    family = "attention"
    cost = "1 forward"
    signed = True
    explains = "attention"
    needs_attention = True
    default_budget = "exact (closed form, O(n^2))"

    def __init__(self, layers: Sequence[int] | None = None, batch_size: int = 16, seed: int = 0) -> None:
        super().__init__(batch_size=batch_size, seed=seed)
        self.layers = layers

    def validate_settings(self) -> None:
        super().validate_settings()
        # A string would be read digit by digit ("12" as layers 1 and 2), a bare number not at all.
        layers = self.layers
        if layers is not None and (
            isinstance(layers, str) or not isinstance(layers, Sequence) or not all(isinstance(i, Integral) and not isinstance(i, bool) for i in layers)
        ):
            raise ExpnetError(f"{self.name}: layers must be a list of layer indices such as [4, 5], not {layers!r}")

    def explain_batch(self, classifier, batch, targets) -> BatchAttribution:
        games = attention_matrices(classifier, batch, targets, self.weighting, self.layers)
        token_values = pairwise_shapley(games.matrices, games.players, self.pairing)  # [B, T]
        return BatchAttribution(pool_to_words(token_values, batch, "sum"), games.logits)


@register
class AttentionShapleyMutual(AttentionShapley):
    """Mutual game on attention averaged over layers and heads: pair worth A_ij + A_ji."""

    name = "attention_shapley_mutual"
    pairing = "mutual"


@register
class AttentionShapleyMax(AttentionShapley):
    """Max-mutual game on attention averaged over layers and heads: pair worth max(A_ij, A_ji)."""

    name = "attention_shapley_max"
    pairing = "max"


@register
class AttentionShapleyMutualGrad(AttentionShapley):
    """Mutual game on gradient-weighted attention mean_{l,h}(A ⊙ ReLU(dA))."""

    name = "attention_shapley_mutual_grad"
    pairing = "mutual"
    weighting = "gradient"
    family = "attention-gradient"
    cost = "1 forward + 1 backward"
    explains = "logit"


@register
class AttentionShapleyMaxGrad(AttentionShapley):
    """Max-mutual game on gradient-weighted attention mean_{l,h}(A ⊙ ReLU(dA))."""

    name = "attention_shapley_max_grad"
    pairing = "max"
    weighting = "gradient"
    family = "attention-gradient"
    cost = "1 forward + 1 backward"
    explains = "logit"
