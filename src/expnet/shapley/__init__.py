"""Attention games and their Shapley values (Eggen et al., arXiv 2508.08966).

``games``: the CLS, mutual and max-mutual games, their exact O(n^2) Shapley values, brute force
for any game, and a seeded Monte-Carlo estimator for a user's own v(S).
``matrices``: the plain and gradient-weighted attention matrices the games are played on.
The word-level explainers built on them live in ``expnet.explainers.attention_shapley``.
"""

from expnet.shapley.games import (
    MonteCarloEstimate,
    brute_force_shapley,
    cls_game,
    cls_shapley,
    max_mutual_game,
    max_mutual_shapley,
    monte_carlo_shapley,
    mutual_game,
    mutual_shapley,
    pairwise_shapley,
)
from expnet.shapley.matrices import (
    AttentionMatrices,
    attention_matrices,
    gradient_weighted_attention,
    mean_attention,
    select_layers,
)

__all__ = [
    "AttentionMatrices",
    "MonteCarloEstimate",
    "attention_matrices",
    "brute_force_shapley",
    "cls_game",
    "cls_shapley",
    "gradient_weighted_attention",
    "max_mutual_game",
    "max_mutual_shapley",
    "mean_attention",
    "monte_carlo_shapley",
    "mutual_game",
    "mutual_shapley",
    "pairwise_shapley",
    "select_layers",
]
