"""The one table of reported metrics: result key, column header, direction and family.

Leaderboards, CSV columns and terminal tables take their columns from here, so a metric is
renamed or added in one place.
"""

from __future__ import annotations

from dataclasses import dataclass

PLAUSIBILITY, FAITHFULNESS, SPEED = "plausibility", "faithfulness", "speed"


@dataclass(frozen=True)
class Metric:
    key: str
    header: str
    higher_is_better: bool
    family: str

    @property
    def short_header(self) -> str:
        """The header on as many lines as it has words, for narrow (80-column) terminal tables."""
        return self.header.replace(" ", "\n")


METRICS = (
    Metric("f1", "F1", True, PLAUSIBILITY),
    Metric("precision", "P", True, PLAUSIBILITY),
    Metric("recall", "R", True, PLAUSIBILITY),
    Metric("f1_pooled", "F1 pooled", True, PLAUSIBILITY),
    Metric("f1_topk", "F1@k", True, PLAUSIBILITY),
    Metric("iou_f1", "IOU-F1", True, PLAUSIBILITY),
    Metric("auroc", "AUROC", True, PLAUSIBILITY),
    Metric("average_precision", "AP", True, PLAUSIBILITY),
    Metric("auprc", "AUPRC", True, PLAUSIBILITY),
    # Over the words the classifier saw, when texts were cut at its length.
    Metric("f1_topk_seen", "F1@k seen", True, PLAUSIBILITY),
    Metric("auroc_seen", "AUROC seen", True, PLAUSIBILITY),
    Metric("average_precision_seen", "AP seen", True, PLAUSIBILITY),
    Metric("auprc_seen", "AUPRC seen", True, PLAUSIBILITY),
    Metric("comprehensiveness", "Comp.", True, FAITHFULNESS),
    Metric("sufficiency", "Suff.", False, FAITHFULNESS),
    Metric("kendall_tau", "Kendall", True, FAITHFULNESS),
    Metric("examples_per_second", "ex/s", True, SPEED),
    # How many times faster ExpNet is than this explainer: smaller for a faster explainer.
    Metric("expnet_speedup", "ExpNet speed-up", False, SPEED),
    Metric("seconds", "seconds", False, SPEED),
)
BY_KEY = {metric.key: metric for metric in METRICS}

SEEN = ("f1_topk_seen", "auroc_seen", "average_precision_seen", "auprc_seen")
# Compared between ExpNet and the best other explainer with a paired bootstrap interval.
COMPARED = ("f1_topk", "auroc")


def metrics(*keys: str) -> tuple[Metric, ...]:
    """The registered metrics for ``keys``, in that order (KeyError names an unknown key)."""
    return tuple(BY_KEY[key] for key in keys)
