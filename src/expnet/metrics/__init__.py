"""Plausibility (agreement with human rationales), faithfulness and speed."""

from expnet.metrics.faithfulness import FaithfulnessScores, faithfulness, leave_one_out
from expnet.metrics.plausibility import PlausibilityScores, plausibility, top_k_mask

__all__ = ["FaithfulnessScores", "PlausibilityScores", "faithfulness", "leave_one_out", "plausibility", "top_k_mask"]
