"""What a benchmark run produces, as types: a ``Row`` per explainer in a ``Table``, a
``TaskResult`` per held-out task, ``BenchmarkResults`` for the run.

``to_dict`` gives results.json's layout (and, through ``report.csv_rows``, results.csv's): rows
are flat, with one ``comprehensiveness_<removal>`` ... ``deletion_curve_<removal>`` group per
removal computed, and the variant columns on ablation rows only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from expnet.data.records import RationaleExample
from expnet.explainers.base import Explanation
from expnet.metrics.table import PLAUSIBILITY, SEEN, family, removal_key

# The plausibility scores a row carries, in results.json's order (those over the words seen are
# in ``Row.seen``); each has a ``*_topk`` twin in ``score_run`` for rows binarised by top-k
# (f1_topk and the threshold-free ones have none).
PLAUSIBILITY_KEYS = tuple(m.key for m in family(PLAUSIBILITY) if m.key not in SEEN)
BINARISED_KEYS = ("f1", "precision", "recall", "f1_pooled", "iou_f1")


@dataclass
class RemovalScores:
    """Faithfulness of one row's run by one removal."""

    comprehensiveness: float | None
    sufficiency: float | None
    kendall: float | None
    deletion_curve: list[float] | None

    @classmethod
    def from_summary(cls, summary: dict) -> RemovalScores:
        return cls(summary["comprehensiveness"], summary["sufficiency"], summary["kendall_tau"], summary["deletion_curve"])


@dataclass
class VariantColumns:
    """An ablation row's extra columns: which ExpNet variant and how validation scored it.
    ``validation_per_task`` and ``settings`` exist for trained variants, not for the in-domain row."""

    variant: str
    validation: float | None
    selected: bool
    candidate: bool
    validation_per_task: dict[str, float] | None = None
    settings: dict | None = None

    def to_dict(self) -> dict:
        out: dict[str, Any] = {"variant": self.variant, "validation": self.validation}
        if self.validation_per_task is not None:
            out["validation_per_task"] = self.validation_per_task
        out.update(selected=self.selected, candidate=self.candidate)
        if self.settings is not None:
            out["settings"] = self.settings
        return out


@dataclass
class Row:
    """One explainer's line: plausibility, faithfulness (per removal, and the shown one), speed."""

    explainer: str
    kind: str  # expnet | baseline | reference | variant
    family: str
    binarisation: str
    n_examples: int
    n_annotated: int
    # Plausibility (PLAUSIBILITY_KEYS): F1, precision, recall, pooled F1 and IOU-F1 by the row's
    # binarisation; F1@k and the threshold-free ones whatever it is.
    f1: float
    precision: float
    recall: float
    f1_pooled: float
    f1_topk: float
    iou_f1: float
    auroc: float
    average_precision: float
    auprc: float
    seen: dict[str, float]  # evaluation.SEEN_KEYS: the same over the words the classifier saw
    per_example: dict  # ids, f1_topk and auroc per annotated example (the report pairs rows)
    examples_per_second: float
    seconds: float
    expnet_speedup: float
    faithfulness: dict[str, RemovalScores] = field(default_factory=dict)
    comprehensiveness: float | None = None  # the shown removal's
    sufficiency: float | None = None
    kendall_tau: float | None = None  # the Kendall removal's
    variant: VariantColumns | None = None

    def deletion_curve(self, removal: str) -> list[float] | None:
        scores = self.faithfulness.get(removal)
        return None if scores is None else scores.deletion_curve

    def to_dict(self) -> dict:
        out: dict[str, Any] = {
            "explainer": self.explainer,
            "kind": self.kind,
            "family": self.family,
            "binarisation": self.binarisation,
            "n_examples": self.n_examples,
            "n_annotated": self.n_annotated,
            **{key: getattr(self, key) for key in PLAUSIBILITY_KEYS},
            **self.seen,
            "per_example": self.per_example,
            "examples_per_second": self.examples_per_second,
            "seconds": self.seconds,
            "expnet_speedup": self.expnet_speedup,
        }
        for removal, scores in self.faithfulness.items():
            out[removal_key("comprehensiveness", removal)] = scores.comprehensiveness
            out[removal_key("sufficiency", removal)] = scores.sufficiency
            out[removal_key("kendall_tau", removal)] = scores.kendall
            out[f"deletion_curve_{removal}"] = scores.deletion_curve
        out.update(comprehensiveness=self.comprehensiveness, sufficiency=self.sufficiency, kendall_tau=self.kendall_tau)
        if self.variant is not None:
            out.update(self.variant.to_dict())
        return out


@dataclass
class Table:
    n_examples: int
    note: str
    rows: list[Row]
    # The F1 of selecting every word ({"f1": mean, "per_example": {"ids", "f1"}}): the floor a
    # binary rationale must clear, since per-text token F1 rewards selecting too much.
    every_word: dict | None = None

    def to_dict(self) -> dict:
        return {"n_examples": self.n_examples, "note": self.note, "rows": [r.to_dict() for r in self.rows], "every_word": self.every_word}


@dataclass
class TaskResult:
    """One held-out task: its classifier, the ExpNet selection, the leaderboards and the ablation."""

    held_out: str
    trained_on: list[str]
    classifier: dict  # folder, dev_accuracy (its 95% interval, the commonest class's rate), cached
    evaluation_split: str
    n_examples: int
    n_slow_examples: int
    slow_explainers: list[str]
    example_ids: list[str]
    accuracy: float
    forward_examples_per_second: float
    rationale_rate: float
    rationale_rate_source: str
    held_out_rationale_rate: float
    expnet: dict  # selected, selection_metric, validation (per variant: per pair and mean)
    removal_shown: str | None
    kendall_removal: str | None
    tables: dict[str, Table]  # "main", and "common" when slow explainers ran on a subset
    ablation: list[Row]
    deletion_curves: dict  # bins, removal, curves (explainer -> mean p per bin)

    def to_dict(self) -> dict:
        return {
            "held_out": self.held_out,
            "trained_on": self.trained_on,
            "classifier": self.classifier,
            "evaluation_split": self.evaluation_split,
            "n_examples": self.n_examples,
            "n_slow_examples": self.n_slow_examples,
            "slow_explainers": self.slow_explainers,
            "example_ids": self.example_ids,
            "accuracy": self.accuracy,
            "forward_examples_per_second": self.forward_examples_per_second,
            "rationale_rate": self.rationale_rate,
            "rationale_rate_source": self.rationale_rate_source,
            "held_out_rationale_rate": self.held_out_rationale_rate,
            "expnet": self.expnet,
            "removal_shown": self.removal_shown,
            "kendall_removal": self.kendall_removal,
            "tables": {name: table.to_dict() for name, table in self.tables.items()},
            "ablation": [r.to_dict() for r in self.ablation],
            "deletion_curves": self.deletion_curves,
        }


@dataclass
class BenchmarkResults:
    config: dict
    protocol: list[str]
    tasks: dict[str, TaskResult]
    skipped: dict[str, dict[str, str]]  # task -> explainer or variant -> why it was left out
    cache: dict  # ResultCache.counters()
    seconds: float
    provenance: dict = field(default_factory=dict)  # what made it: versions, data folder, device, threads

    def to_dict(self) -> dict:
        return {
            "provenance": self.provenance,
            "config": self.config,
            "protocol": self.protocol,
            "tasks": {name: task.to_dict() for name, task in self.tasks.items()},
            "skipped": self.skipped,
            "cache": self.cache,
            "seconds": self.seconds,
        }


# Examples shown side by side in report.html: per task, (example, [(label, explanation)]).
ShownExamples = list[tuple[RationaleExample, list[tuple[str, Explanation]]]]


@dataclass
class Outcome:
    """What a run produced: the results and, for the HTML page, example explanations."""

    results: BenchmarkResults
    examples: dict[str, ShownExamples] = field(default_factory=dict)
