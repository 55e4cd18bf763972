"""Concept sensitivity (TCAV with attention-weighted token derivatives), a global explanation.

``cavs``: concept activation vectors from per-token hidden states (and the shipped concept sets,
``sets/``, described in ``sets/README.md``). ``tcav``: directional derivatives, scores per CAV and
the t-tests. ``report``: the score-by-layer plot and the per-word heat page.
CLI: ``expnet concepts``.
"""

from expnet.concepts.cavs import (
    CAVs,
    TokenStates,
    read_texts,
    shipped_sets,
    token_states,
    train_cavs,
    train_random_cavs,
)
from expnet.concepts.tcav import (
    LayerScore,
    TargetGradients,
    TCAVResult,
    directional_derivatives,
    run_tcav,
    target_gradients,
    tcav_scores,
    word_heat,
)

__all__ = [
    "CAVs",
    "LayerScore",
    "TCAVResult",
    "TargetGradients",
    "TokenStates",
    "directional_derivatives",
    "read_texts",
    "run_tcav",
    "shipped_sets",
    "target_gradients",
    "tcav_scores",
    "token_states",
    "train_cavs",
    "train_random_cavs",
    "word_heat",
]
