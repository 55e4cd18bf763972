"""The demo: the whole story on the shipped samples, offline, in a few minutes.

``run_demo`` fine-tunes small classifiers (cached in OUT/classifiers), trains ExpNet (the transfer
recipe) on SST-2 and movie-review rationales, and compares it on HateXplain, a task it never saw,
with every registered explainer: the fast ones on every annotated post, the slow ones
(perturbation family, integrated gradients, SmoothGrad, attention flow, layer-wise value zeroing)
on the first ``slow_examples`` posts, where a second table compares everyone. Each table carries
the paired bootstrap interval of ExpNet minus the best other explainer. Writes OUT/results.json,
OUT/report.html and the trained ExpNet (OUT/expnet). ``DemoProtocol`` holds every choice, so a
smaller or different demo is one changed field.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import expnet.data
from expnet.data import RationaleExample, load_examples
from expnet.errors import ExpnetError
from expnet.evaluation import EvaluationResult, evaluate
from expnet.explainers import explainer_names, get_explainer
from expnet.explainers.base import Explainer
from expnet.explainers.learned import ExpNetExplainer
from expnet.explainers.registry import accepted_settings
from expnet.io import atomic_write_json, atomic_write_text
from expnet.models.classifier import Classifier
from expnet.models.finetune import FinetuneSettings, describe_accuracy
from expnet.network.training import recipe_settings
from expnet.pipeline import ensure_classifier
from expnet.report.pages import evaluation_page

# Small budgets: the demo must finish in minutes on two CPU cores.
DEMO_CLASSIFIERS = {
    "hatexplain": FinetuneSettings(epochs=2, max_length=96, batch_size=16, learning_rate=8e-5),
    "sst2": FinetuneSettings(epochs=2, max_length=64, batch_size=16, learning_rate=8e-5),
    "movies": FinetuneSettings(epochs=3, max_length=256, batch_size=8, learning_rate=8e-5),
}
SLOW = frozenset({"integrated_gradients", "smoothgrad", "attention_flow", "value_zeroing_rollout"})
# IG at its default 50 steps: at 10 and 20 some posts' scores missed f(x) - f(baseline) by more than
# 10% (the warning integrated_gradients gives); at 50 none of 40 did (0.9 ex/s against 2.1 at 20).
DEMO_BUDGETS = {"n_samples": 50, "max_evals": 50}
# Shapley sampling's samples are permutations, each one pass per word: 3, as in the benchmark.
DEMO_EXPLAINER_BUDGETS = {"shapley_sampling": {"n_samples": 3}}
PAGE_EXAMPLES = 10


@dataclass(frozen=True)
class DemoProtocol:
    """Which classifiers, which tasks ExpNet trains on and which it explains, and at what budgets."""

    classifiers: Mapping[str, FinetuneSettings] = field(default_factory=lambda: dict(DEMO_CLASSIFIERS))
    train_tasks: tuple[str, ...] = ("sst2", "movies")
    held_out: str = "hatexplain"
    recipe: str = "transfer"
    explainers: tuple[str, ...] | None = None  # registered names; None: every registered explainer
    slow: frozenset[str] = SLOW  # compared only on the first slow_examples texts
    slow_families: frozenset[str] = frozenset({"perturbation"})
    slow_examples: int = 20
    # Each explainer gets those of these settings it takes, its own entry in explainer_budgets first.
    budgets: Mapping[str, int] = field(default_factory=lambda: dict(DEMO_BUDGETS))
    explainer_budgets: Mapping[str, Mapping[str, int]] = field(default_factory=lambda: dict(DEMO_EXPLAINER_BUDGETS))
    batch_size: int = 16

    def __post_init__(self) -> None:
        tasks = expnet.data.TASKS
        unknown = [task for task in self.classifiers if task not in tasks]
        missing = [task for task in (*self.train_tasks, self.held_out) if task not in self.classifiers]
        if unknown or missing:
            raise ExpnetError(f"the demo's tasks must be among {', '.join(tasks)} and each have classifier settings: {unknown + missing}")
        if self.held_out in self.train_tasks:
            raise ExpnetError(f"the held-out task {self.held_out} must not be one ExpNet trains on")

    @property
    def title(self) -> str:
        return f"ExpNet trained on {' + '.join(self.train_tasks)}, explaining {self.held_out}"

    def budgets_for(self, name: str) -> dict[str, int]:
        """The budgets explainer ``name`` runs at: those of its settings it takes, its own first."""
        accepted = accepted_settings(name)
        budgets = {**self.budgets, **self.explainer_budgets.get(name, {})}
        return {k: v for k, v in budgets.items() if k in accepted}

    def explainer(self, name: str, seed: int) -> Explainer:
        """A registered explainer at the demo's budgets."""
        return get_explainer(name, seed=seed, **self.budgets_for(name))

    def is_slow(self, name: str) -> bool:
        return name in self.slow or get_explainer(name).info().family in self.slow_families


@dataclass
class DemoResult:
    """What the demo wrote into ``out``: ``results`` holds results.json ("all": the fast
    explainers on every annotated held-out text; "slow": everyone on the first few)."""

    out: Path
    classifier_metrics: dict[str, dict]  # per task: fine-tuning metrics, "cached" when reused
    expnet: ExpNetExplainer
    examples: list[RationaleExample]  # the annotated held-out texts
    results: dict[str, dict]
    seconds: float

    @property
    def results_path(self) -> Path:
        return self.out / "results.json"

    @property
    def report_path(self) -> Path:
        return self.out / "report.html"


def run_demo(
    out: str | Path,
    protocol: DemoProtocol | None = None,
    data_dir=None,
    seed: int = 0,
    device: str | None = None,
    backbone: str | None = None,
    progress: bool = False,
    log: Callable[[str], object] | None = None,
) -> DemoResult:
    """Fine-tune (or reuse) the classifiers, train ExpNet, compare it on the held-out task and
    write the results into ``out``. ``backbone`` defaults to the bundled one; ``log`` receives
    a line per finished step."""
    protocol = protocol or DemoProtocol()
    say = log or (lambda line: None)
    out = Path(out)
    started = time.perf_counter()
    classifiers: dict[str, Classifier] = {}
    metrics: dict[str, dict] = {}
    for task, settings in protocol.classifiers.items():
        classifiers[task], metrics[task] = ensure_classifier(
            task, out / "classifiers" / task, settings, data_dir, backbone=backbone, seed=seed, device=device, progress=progress
        )
        cached = " (cached)" if metrics[task]["cached"] else ""
        say(f"classifier {task}: dev accuracy {describe_accuracy(metrics[task])}{cached}")
    sources = [(classifiers[t], load_examples(t, None, data_dir, purpose="explainer_train")) for t in protocol.train_tasks]
    expnet = ExpNetExplainer.train(sources, recipe_settings(protocol.recipe), seed=seed, progress=progress)
    expnet.save_pretrained(out / "expnet")
    say(f"ExpNet ({protocol.recipe} recipe) trained on {', '.join(protocol.train_tasks)}: {expnet.history['train_examples']} examples")
    examples = [e for e in load_examples(protocol.held_out, None, data_dir, purpose="evaluation") if e.has_rationale]
    tables = compare(classifiers[protocol.held_out], expnet, examples, protocol, seed, progress)
    results = {key: table.to_dict() for key, table in tables.items()}
    atomic_write_json(out / "results.json", results)
    page = evaluation_page(tables["all"], examples, "majority", f"expnet demo: {protocol.title}", PAGE_EXAMPLES)
    atomic_write_text(out / "report.html", page)
    return DemoResult(out, metrics, expnet, examples, results, time.perf_counter() - started)


def compare(
    classifier: Classifier,
    expnet: ExpNetExplainer,
    examples: list[RationaleExample],
    protocol: DemoProtocol,
    seed: int = 0,
    progress: bool = False,
) -> dict[str, EvaluationResult]:
    """The two tables: the fast explainers (and ExpNet) on every example ("all"), and everyone
    on the first ``slow_examples`` ("slow")."""
    names = list(protocol.explainers) if protocol.explainers is not None else explainer_names()
    slow = {name for name in names if protocol.is_slow(name)}
    fast = {"expnet": expnet, **{n: protocol.explainer(n, seed) for n in names if n not in slow}}
    everyone = {**fast, **{n: protocol.explainer(n, seed) for n in sorted(slow)}}
    subsets = {"all": (fast, examples), "slow": (everyone, examples[: protocol.slow_examples])}
    settings = {
        "held_out": protocol.held_out,
        "trained_on": list(protocol.train_tasks),
        "seed": seed,
        "recipe": protocol.recipe,
        "rationale_rate_source": "ExpNet training rationales",
        # What each explainer ran at (shapley_sampling's own 3 samples, not the shared 50).
        "budgets": {name: budgets for name in everyone if name != "expnet" and (budgets := protocol.budgets_for(name))},
    }
    results = {}
    for key, (explainers, shown) in subsets.items():
        # Baselines get top-k at the rate ExpNet's training rationales had: the same information.
        result = evaluate(classifier, shown, explainers, expnet.rationale_rate, batch_size=protocol.batch_size, progress=progress)
        result.settings = settings
        results[key] = result
    return results
