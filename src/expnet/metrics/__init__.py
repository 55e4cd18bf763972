"""Plausibility (agreement with human rationales), faithfulness, speed, and paired intervals."""

from expnet.metrics.bootstrap import Comparison, compare_with_best, paired_bootstrap
from expnet.metrics.faithfulness import FaithfulnessScores, faithfulness, leave_one_out
from expnet.metrics.plausibility import PlausibilityScores, expand_to_pieces, plausibility, top_k_mask
from expnet.metrics.table import METRICS, Metric

__all__ = [
    "METRICS",
    "Comparison",
    "FaithfulnessScores",
    "Metric",
    "PlausibilityScores",
    "compare_with_best",
    "expand_to_pieces",
    "faithfulness",
    "leave_one_out",
    "paired_bootstrap",
    "plausibility",
    "top_k_mask",
]
