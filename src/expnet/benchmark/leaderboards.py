"""A held-out task's leaderboards from its runs: rows, the main and common-subset tables, the
variant ablation, the deletion curves and the examples report.html shows.

Baselines are binarised by top-k at ExpNet's training rationale rate; ExpNet is listed twice,
with its own rule (``expnet``: the 0.5 threshold of a focal-loss ExpNet, the per-text perplexity
count of a listwise one; ``ExpNetExplainer``) and with that top-k (``expnet@k``). Rows are sorted by F1;
the in-domain reference comes last. A row on a prefix of the examples (the common subset) uses
that prefix of the run, its time scaled so that examples/s is unchanged.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from expnet.benchmark.config import BenchmarkConfig, FaithfulnessConfig
from expnet.benchmark.results import (
    BINARISED_KEYS,
    PLAUSIBILITY_KEYS,
    RemovalScores,
    Row,
    ShownExamples,
    Table,
    VariantColumns,
)
from expnet.data.records import RationaleExample
from expnet.evaluation import SEEN_KEYS, ExplainerRun, score_run
from expnet.explainers.learned import rationale_rule
from expnet.metrics.faithfulness import FaithfulnessScores
from expnet.metrics.plausibility import plausibility

EXPNET = "expnet"
EXPNET_TOPK = "expnet@k"
IN_DOMAIN = "expnet_in_domain"
WITH_UNLABELLED = "expnet+unlabelled"  # ExpNet + the held-out task's unlabelled texts: its own row


def variant_run(variant: str) -> str:
    """The run name of an ExpNet variant trained on the other tasks."""
    return f"expnet:{variant}"


def kendall_removal(faith: FaithfulnessConfig) -> str | None:
    """The removal whose Kendall tau the tables show: the shown one if computed, else the first."""
    computed = [r for r in faith.kendall_removals if r in faith.removals]
    if not faith.enabled or not computed:
        return None
    return faith.shown if faith.shown in computed else computed[0]


def subset_run(run: ExplainerRun, n: int) -> ExplainerRun:
    """The first ``n`` explanations, with the time scaled so examples/s is unchanged."""
    total = len(run.explanations)
    if n >= total:
        return run
    return ExplainerRun(run.name, run.explanations[:n], run.seconds * n / total if total else 0.0)


@dataclass
class Leaderboards:
    """Everything a held-out task's tables are made of."""

    config: BenchmarkConfig
    families: dict[str, str]  # explainer -> family
    examples: list[RationaleExample]  # the evaluation sample, in order
    runs: dict[str, ExplainerRun]  # run name -> its run on a prefix (or all) of ``examples``
    faithfulness: dict[str, dict[str, FaithfulnessScores]]  # run name -> removal -> scores
    selected: str  # the selected ExpNet variant
    rate: float  # the top-k rate: ExpNet's training rationale rate

    @property
    def expnet_key(self) -> str:
        return variant_run(self.selected)

    def own_rule(self, name: str) -> str:
        """How the ExpNet run ``name`` binarises by itself (``rationale_rule``)."""
        if name == WITH_UNLABELLED:
            rule = rationale_rule("listwise")  # always a listwise variant: soft teacher targets need one
        else:
            variant = name.split(":", 1)[1] if name.startswith(variant_run("")) else self.selected
            rule = rationale_rule(self.config.expnet_settings(variant).loss)
        return "threshold 0.5" if rule == "threshold" else rule

    def row(self, label: str, kind: str, name: str, n: int, binarise: str) -> Row:
        run = subset_run(self.runs[name], n)
        examples = self.examples[:n]
        scores = score_run(run, examples, self.rate, self.config.gold_rule)
        suffix = "" if binarise == "own" else "_topk"
        faith = {r: RemovalScores.from_summary(f.subset(range(n)).summary()) for r, f in self.faithfulness[name].items()}
        shown, kendall = self.config.faithfulness.shown, kendall_removal(self.config.faithfulness)
        expnet_speed = self.runs[self.expnet_key].examples_per_second
        return Row(
            explainer=label,
            kind=kind,
            family="learned" if name.startswith("expnet") else self.families.get(name, "?"),
            binarisation=f"own rule ({self.own_rule(name)})" if binarise == "own" else f"top-k (rate {self.rate:.3f})",
            n_examples=len(examples),
            n_annotated=scores["n_examples"],
            **{key: scores[key + suffix if key in BINARISED_KEYS else key] for key in PLAUSIBILITY_KEYS},
            seen={key: scores[key] for key in SEEN_KEYS},
            # A top-k row's F1 is F1@k: so is its per-example F1 (a re-bootstrap pairs these).
            per_example=scores["per_example"] if binarise == "own" else {**scores["per_example"], "f1": scores["per_example"]["f1_topk"]},
            examples_per_second=run.examples_per_second,
            seconds=run.seconds,
            expnet_speedup=expnet_speed / run.examples_per_second if run.examples_per_second > 0 else float("nan"),
            faithfulness=faith,
            comprehensiveness=faith[shown].comprehensiveness if shown in faith else None,
            sufficiency=faith[shown].sufficiency if shown in faith else None,
            kendall_tau=faith[kendall].kendall if kendall in faith else None,
        )

    def table(self, names: list[str], n: int, note: str) -> Table:
        rows = [self.row(EXPNET, "expnet", self.expnet_key, n, "own"), self.row(EXPNET_TOPK, "expnet", self.expnet_key, n, "topk")]
        rows += [self.row(name, "baseline", name, n, "topk") for name in names]
        rows.sort(key=lambda r: -np.nan_to_num(r.f1, nan=-1.0))
        if WITH_UNLABELLED in self.runs:
            rows.append(self.row(WITH_UNLABELLED, "adapted", WITH_UNLABELLED, n, "own"))
        if IN_DOMAIN in self.runs:
            rows.append(self.row(IN_DOMAIN, "reference", IN_DOMAIN, n, "own"))
        every_word = self.every_word(n)
        return Table(n, f"{note}; selecting every word gives F1 {every_word['f1']:.3f}", rows, every_word)

    def every_word(self, n: int) -> dict:
        """F1 of the rationale that selects every word of the first ``n`` annotated examples."""
        golds = {e.id: gold for e in self.examples[:n] if (gold := e.scored_gold(self.config.gold_rule)) is not None}
        everything = [np.ones(len(gold)) for gold in golds.values()]
        scores = plausibility(list(golds.values()), everything, everything)
        return {"f1": scores.f1, "per_example": {"ids": list(golds), "f1": scores.per_example["f1"].tolist()}}

    def tables(self, fast: list[str], slow: list[str], n_slow: int) -> dict[str, Table]:
        """The main table; with slow explainers on a smaller subset, also the common-subset one."""
        n_all = len(self.examples)
        if n_slow < n_all and slow:
            return {
                "main": self.table(fast, n_all, f"{n_all} examples; slow explainers ({', '.join(slow)}) are in the common-subset table"),
                "common": self.table(fast + slow, n_slow, f"common subset: the first {n_slow} of the {n_all} examples, every explainer"),
            }
        return {"main": self.table(fast + slow, n_all, f"{n_all} examples, every explainer")}

    def ablation(self, usable: list[str], candidates: list[str], validation: dict[str, dict]) -> list[Row]:
        """Every usable variant on every example (its own rule), then the in-domain reference."""
        n_all = len(self.examples)
        rows = []
        for variant in usable:
            row = self.row(variant_run(variant), "variant", variant_run(variant), n_all, "own")
            row.variant = VariantColumns(
                variant=variant,
                validation=validation[variant]["mean"],
                validation_per_task={k: v for k, v in validation[variant].items() if k != "mean"},
                selected=variant == self.selected,
                candidate=variant in candidates,
                settings=asdict(self.config.variants[variant]),
            )
            rows.append(row)
        if IN_DOMAIN in self.runs:
            row = self.row(IN_DOMAIN, "reference", IN_DOMAIN, n_all, "own")
            row.variant = VariantColumns(variant=f"in-domain ({self.selected})", validation=None, selected=False, candidate=False)
            rows.append(row)
        return rows

    def deletion_curves(self, tables: dict[str, Table]) -> dict:
        """Mean p(predicted class) per bin by the shown removal, per row of the largest table."""
        faith = self.config.faithfulness
        curves = {}
        if faith.enabled:
            for row in tables.get("common", tables["main"]).rows:
                if row.explainer != EXPNET_TOPK:
                    curves[row.explainer] = row.deletion_curve(faith.shown)
        return {"bins": [0.0, *faith.bins], "removal": faith.shown, "curves": curves}

    def shown_examples(self, names: list[str], n: int) -> ShownExamples:
        """The first annotated examples of the common prefix, each with every run's explanation."""
        examples = self.examples[:n]
        picked = [i for i, e in enumerate(examples) if e.has_rationale][: self.config.report_examples]
        order = [name for name in [self.expnet_key, IN_DOMAIN, *names] if name in self.runs]
        out = []
        for i in picked:
            blocks = [
                (EXPNET if name == self.expnet_key else name, self.runs[name].explanations[i])
                for name in order
                if i < len(self.runs[name].explanations)
            ]
            out.append((examples[i], blocks))
        return out
