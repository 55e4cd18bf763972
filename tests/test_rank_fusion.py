"""benchmarks/rank_fusion.py's fused explainer against its parts' ranks, computed by hand."""

import importlib.util
from pathlib import Path

import numpy as np
from scipy.stats import rankdata

from expnet.explainers import get_explainer

_SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "rank_fusion.py"
_SPEC = importlib.util.spec_from_file_location("rank_fusion", _SCRIPT)
rank_fusion = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(rank_fusion)


def percentile_ranks(scores: np.ndarray) -> np.ndarray:
    return (rankdata(scores, method="ordinal") - 1) / (len(scores) - 1)


def test_fusion_is_the_weighted_mean_of_the_parts_within_text_ranks(tiny_classifier):
    texts = [["a", "truly", "dull", "and", "long", "film"], ["great", "cast", "!"]]
    saliency, attention = get_explainer("saliency"), get_explainer("raw_attention")
    fused = rank_fusion.RankFusion([saliency, attention], [0.25, 0.75]).explain(tiny_classifier, texts)
    for i, explanation in enumerate(fused):
        parts = [part.explain(tiny_classifier, [texts[i]])[0].scores for part in (saliency, attention)]
        expected = 0.25 * percentile_ranks(parts[0]) + 0.75 * percentile_ranks(parts[1])
        np.testing.assert_allclose(explanation.scores, expected, atol=1e-6)
        assert explanation.prediction == saliency.explain(tiny_classifier, [texts[i]])[0].prediction
