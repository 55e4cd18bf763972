"""Plausibility (agreement with human rationales), faithfulness and speed."""

from expnet.metrics.plausibility import PlausibilityScores, plausibility, top_k_mask

__all__ = ["PlausibilityScores", "plausibility", "top_k_mask"]
