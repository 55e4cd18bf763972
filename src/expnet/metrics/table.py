"""The one table of reported metrics: result key, column header, direction and family.

Leaderboards, CSV columns and terminal tables take their columns from here, so a metric is
renamed or added in one place.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

PLAUSIBILITY, FAITHFULNESS, SPEED = "plausibility", "faithfulness", "speed"


@dataclass(frozen=True)
class Metric:
    key: str
    header: str
    higher_is_better: bool
    family: str
    # Faithfulness is measured per removal ("mask", "delete"); each removal's value is kept under
    # "<per_removal>_<removal>" (Kendall's stem is "kendall", as in results already written).
    per_removal: str | None = None

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
    Metric("comprehensiveness", "Comp.", True, FAITHFULNESS, per_removal="comprehensiveness"),
    Metric("sufficiency", "Suff.", False, FAITHFULNESS, per_removal="sufficiency"),
    Metric("kendall_tau", "Kendall", True, FAITHFULNESS, per_removal="kendall"),
    Metric("examples_per_second", "ex/s", True, SPEED),
    # How many times faster ExpNet is than this explainer: smaller for a faster explainer.
    Metric("expnet_speedup", "ExpNet speed-up", False, SPEED),
    Metric("seconds", "seconds", False, SPEED),
)
BY_KEY = {metric.key: metric for metric in METRICS}

SEEN = ("f1_topk_seen", "auroc_seen", "average_precision_seen", "auprc_seen")
# Compared between ExpNet and the best other explainer with a paired bootstrap interval. "f1" is
# each one's own binary rationale: ExpNet's rate-free rule against the others' top-k at ExpNet's
# training rationale rate (what a user gets from each); "f1_topk" puts ExpNet on that top-k too.
COMPARED = ("f1", "f1_topk", "auroc")
# Compared too when some texts were cut at the classifier's length: over the words it read, where
# the explainers differ (beyond the cut every explainer misses every gold word alike).
SEEN_COMPARED = ("f1_topk_seen", "auroc_seen")


def compared_metrics(truncated: bool) -> tuple[str, ...]:
    """The metrics an ExpNet is compared on: ``COMPARED``, and ``SEEN_COMPARED`` for truncated texts."""
    return COMPARED + SEEN_COMPARED if truncated else COMPARED

# Validation scores that may pick the benchmark's ExpNet variant (``selection_metric``).
# The seen ones equal the plain ones on texts the classifier reads whole; on long texts cut at its
# length they are what still separates the variants.
SELECTABLE = ("f1", "f1_topk", "auroc", "auprc", "f1_topk_seen", "auroc_seen")


def metrics(*keys: str) -> tuple[Metric, ...]:
    """The registered metrics for ``keys``, in that order (KeyError names an unknown key)."""
    return tuple(BY_KEY[key] for key in keys)


def family(name: str) -> tuple[Metric, ...]:
    """The metrics of one family (``PLAUSIBILITY``, ``FAITHFULNESS``, ``SPEED``), in table order."""
    found = tuple(metric for metric in METRICS if metric.family == name)
    if not found:
        raise KeyError(f"no metric family {name!r}; use one of {PLAUSIBILITY}, {FAITHFULNESS}, {SPEED}")
    return found


def header(key: str) -> str:
    """The column header of the metric ``key``."""
    return BY_KEY[key].header


def removal_key(key: str, removal: str) -> str:
    """Where a faithfulness metric's value under one removal is kept, e.g. ``kendall_mask``."""
    stem = BY_KEY[key].per_removal
    if stem is None:
        raise KeyError(f"{key} is not measured per removal")
    return f"{stem}_{removal}"


def removal_keys(removals: Iterable[str]) -> tuple[str, ...]:
    """Every per-removal faithfulness column, removal by removal (the CSV's order)."""
    return tuple(removal_key(metric.key, removal) for removal in removals for metric in family(FAITHFULNESS))


# The columns each table shows, in order. With truncated texts, SEEN_COLUMNS follow the other
# plausibility columns.
LEADERBOARD = metrics(
    "f1", "precision", "recall", "f1_topk", "iou_f1", "auroc", "average_precision", "auprc",
    "comprehensiveness", "sufficiency", "kendall_tau", "examples_per_second", "expnet_speedup",
)
ABLATION = metrics(
    "f1", "f1_topk", "auroc", "average_precision", "auprc", "comprehensiveness", "sufficiency", "examples_per_second",
)
# AP is left out of the terminal: it is AUPRC's step-wise twin (within 0.05 of it in every row of
# the demo's tables), and without it the longest registered name fits on one line at 80 columns.
EVALUATION = metrics("f1", "f1_topk", "iou_f1", "auroc", "auprc", "examples_per_second")
EVALUATION_PAGE = metrics("f1", "f1_topk", "auroc", "auprc", "examples_per_second")
SEEN_COLUMNS = metrics("f1_topk_seen", "auroc_seen")
