"""ExpNet variants for one held-out task: which apply, training (cached on disk), selection by
transfer between the training tasks, and the in-domain reference.

Trained ExpNets live in ``OUT/expnets/<held-out>/<variant>`` (trained on the other tasks) and
``OUT/expnets/single/<task>/<variant>`` (trained on one task: transfer validation and the
in-domain reference, shared by every held-out task), each with a ``<variant>.key.json`` beside it
holding the digest of what it was trained from; a changed key retrains it. Word features are
collected once per training task and classifier, with a spec wide enough for every variant that
collects them the same way (``FeatureSpec.union``), and each variant takes its columns.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from expnet.benchmark.cache import ResultCache, digest, examples_digest, file_digest, source_digest
from expnet.benchmark.classifiers import ClassifierEntry
from expnet.benchmark.config import BenchmarkConfig
from expnet.benchmark.explain_step import ExplainStep
from expnet.benchmark.leaderboards import EXPNET
from expnet.benchmark.tasks import TaskData
from expnet.data import rationale_rate
from expnet.errors import ExpnetError
from expnet.evaluation import score_run
from expnet.explainers import distillation as distillation_module
from expnet.explainers import learned as learned_module
from expnet.explainers.distillation import fit_with_unlabelled
from expnet.explainers.learned import ExpNetExplainer
from expnet.io import atomic_write_json
from expnet.network import features as features_module
from expnet.network import gradient_features as gradient_module
from expnet.network import model as model_module
from expnet.network import training as training_module
from expnet.network.features import FeatureSpec
from expnet.network.gradient_features import unsupported_reason
from expnet.network.training import (
    ExpNetSettings,
    WordDataset,
    collect_features,
    select_dataset,
    settings_spec,
)

Source = tuple[TaskData, ClassifierEntry]  # a training task with its own classifier


def expnet_code() -> list[str]:
    """Digests of the code behind an ExpNet's weights and its scores (features, training, the
    network, the explainer): part of both the training key and the explanations' key."""
    modules = (training_module, features_module, gradient_module, model_module, learned_module, distillation_module)
    return [source_digest(m) for m in modules]


@dataclass
class Selection:
    """The variants trained on a held-out task's training tasks, and the one validation chose."""

    usable: list[str]  # the variants every classifier of the round can compute
    candidates: list[str]  # the usable ones that may be selected
    folders: dict[str, Path]
    trained: dict[str, ExpNetExplainer]
    validation: dict[str, dict]  # variant -> score per (train -> validation) task pair, and "mean"
    selected: str

    @property
    def expnet(self) -> ExpNetExplainer:
        return self.trained[self.selected]

    def summary_lines(self, metric: str, rate: float, width: int = 71) -> list[str]:
        """The validation scores and the choice, as progress lines of at most ``width`` columns
        (80 less the progress lines' time stamp); a ``*`` marks the candidates when not every
        variant is one."""
        marked = set(self.candidates) != set(self.usable)
        scores = [f"{v}{'*' if marked and v in self.candidates else ''} {self.validation[v]['mean']:.3f}" for v in self.usable]
        head = f"  ExpNet variants, validation {metric}" + (" (* may be selected):" if marked else ":")
        lines = textwrap.wrap(", ".join(scores), width, initial_indent="    ", subsequent_indent="    ", break_on_hyphens=False)
        return [head, *lines, f"  -> selected {self.selected}; top-k rate {rate:.3f}"]


class ExpNetStep:
    def __init__(
        self,
        config: BenchmarkConfig,
        out: Path,
        cache: ResultCache,
        explain: ExplainStep,
        skipped: dict[str, dict[str, str]],
        say: Callable[[str], None],
        progress: bool,
    ) -> None:
        self.config = config
        self.out = out
        self.cache = cache
        self.explain = explain
        self.skipped = skipped
        self.say = say
        self.progress = progress
        self._banks: dict[tuple, tuple[WordDataset, FeatureSpec]] = {}

    def select(self, held: TaskData, entry: ClassifierEntry, sources: list[Source]) -> Selection:
        """Train every usable variant on ``sources`` and pick the best candidate on validation."""
        usable = self.usable_variants(held, [entry] + [e for _, e in sources])
        candidates = [c for c in self.config.candidates if c in usable] or usable
        folders = {variant: self.out / "expnets" / held.name / variant for variant in usable}
        trained = {variant: self.train(folders[variant], variant, sources) for variant in usable}
        validation = {variant: self.validate(variant, sources, trained[variant], folders[variant]) for variant in usable}
        ranked = [c for c in candidates if np.isfinite(validation[c]["mean"])] or candidates
        selected = max(ranked, key=lambda c: validation[c]["mean"])
        return Selection(usable, candidates, folders, trained, validation, selected)

    def in_domain(self, held: TaskData, entry: ClassifierEntry, variant: str) -> tuple[ExpNetExplainer, Path]:
        """``variant`` trained on the held-out task's own training rationales (the reference)."""
        folder = self.single_source_folder(held, variant)
        return self.train(folder, variant, [(held, entry)]), folder

    def with_unlabelled(self, held: TaskData, entry: ClassifierEntry, variant: str, sources: list[Source], texts: list[list[str]]) -> tuple[ExpNetExplainer, Path]:
        """``variant`` trained on ``sources`` and on teacher targets for the held-out task's
        unlabelled ``texts`` explained by its classifier (``config.unlabelled``): its own row."""
        folder = self.out / "expnets" / held.name / f"{variant}+unlabelled"
        return self.train(folder, variant, sources, (entry, texts)), folder

    def usable_variants(self, held: TaskData, entries: list[ClassifierEntry]) -> list[str]:
        """The variants every classifier of this held-out round can compute; the others are
        listed under ``skipped`` with the reason (e.g. token->CLS features on a decoder)."""
        usable = []
        for variant in self.config.variants:
            settings = self.config.expnet_settings(variant)
            reasons = [r for e in entries if (r := unsupported_reason(e.classifier, settings_spec(settings, e.classifier)))]
            if reasons:
                self.skipped.setdefault(held.name, {})[f"expnet:{variant}"] = reasons[0]
                self.say(f"  ExpNet variant {variant} skipped: {reasons[0]}")
            else:
                usable.append(variant)
        if not usable:
            raise ExpnetError(f"{held.name}: no ExpNet variant applies to these classifiers; add one with directions = [\"cls_to_token\"]")
        return usable

    def train(
        self, folder: Path, variant: str, sources: list[Source], unlabelled: tuple[ClassifierEntry, list[list[str]]] | None = None
    ) -> ExpNetExplainer:
        """``variant`` trained on ``sources``' fit parts (and, given ``unlabelled``, on teacher
        targets for those texts) into ``folder``, or reused from there."""
        settings = self.config.expnet_settings(variant)
        key = {
            "sources": [[t.name, e.fingerprint, t.train_split, examples_digest(t.fit)] for t, e in sources],
            "settings": settings.to_dict(),
            "seed": self.config.seed,
            "code": expnet_code(),
        }
        teacher = self.config.teacher() if unlabelled else None
        if unlabelled and teacher:
            key["unlabelled"] = [unlabelled[0].fingerprint, digest(unlabelled[1]), teacher.to_dict()]
        key_file = folder.parent / f"{folder.name}.key.json"
        if key_file.is_file() and (folder / "config.json").is_file():
            try:
                stored = json.loads(key_file.read_text())
            except json.JSONDecodeError:
                stored = None
            if stored == digest(key):
                self.cache.note("expnet", reused=True)
                return ExpNetExplainer.from_pretrained(folder, batch_size=self.config.batch_size, seed=self.config.seed)
        spec = settings_spec(settings, sources[0][1].classifier)
        dataset = WordDataset()
        for task, entry in sources:
            bank, bank_spec = self._feature_bank(task, entry, settings)
            dataset.extend(select_dataset(bank, bank_spec, spec))
        if unlabelled and teacher:
            self.say(f"  ExpNet {variant} + {min(len(unlabelled[1]), teacher.max_texts)} unlabelled texts ({', '.join(teacher.teachers)} as teacher)")
            pairs = [(unlabelled[0].classifier, unlabelled[1])]
            fitted = fit_with_unlabelled(dataset, spec, pairs, settings, teacher, self.config.seed, self.progress)
        else:
            fitted = ExpNetExplainer.fit(dataset, spec, settings, seed=self.config.seed)
        fitted.save_pretrained(folder)
        atomic_write_json(key_file, digest(key))
        self.cache.note("expnet", reused=False)
        return ExpNetExplainer.from_pretrained(folder, batch_size=self.config.batch_size, seed=self.config.seed)

    def _feature_bank(self, task: TaskData, entry: ClassifierEntry, settings: ExpNetSettings) -> tuple[WordDataset, FeatureSpec]:
        """``task``'s fit-part word features with one spec wide enough for every variant that
        collects them the same way: one classifier pass per source task, not one per variant."""
        collection = (settings.length_scaled, settings.only_correct, settings.gold_rule, settings.soft_labels)
        bank_key = (task.name, digest(entry.fingerprint), collection)
        if bank_key not in self._banks:
            spec = settings_spec(settings, entry.classifier).raw()
            for variant in self.config.variants:
                other = self.config.expnet_settings(variant)
                applies = unsupported_reason(entry.classifier, settings_spec(other, entry.classifier)) is None
                if applies and (other.length_scaled, other.only_correct, other.gold_rule, other.soft_labels) == collection:
                    spec = spec.union(settings_spec(other, entry.classifier))
            self.say(f"  ExpNet features of {task.name} ({len(task.fit)} texts, {spec.dim} values per word)")
            dataset = collect_features(entry.classifier, task.fit, spec, settings, progress=self.progress)
            self._banks[bank_key] = (dataset, spec)
        return self._banks[bank_key]

    def single_source_folder(self, task: TaskData, variant: str) -> Path:
        # Shared by every held-out task: transfer validation and the in-domain reference.
        return self.out / "expnets" / "single" / task.name / variant

    def validate(self, variant: str, sources: list[Source], trained: ExpNetExplainer, folder: Path) -> dict:
        """The variant's ``selection_metric`` on the training tasks' validation parts.

        With two or more training tasks the score is a transfer score: an ExpNet trained on one
        training task alone explains another's validation part (every ordered pair), because the
        held-out task is new to ExpNet and in-task validation favours what fits one rationale
        style. With one training task, ``trained`` is scored on that task's own validation part.
        """
        if len(sources) == 1:
            pairs = [(sources[0], sources[0], trained, folder)]
        else:
            pairs = []
            for train in sources:
                single_folder = self.single_source_folder(train[0], variant)
                single = self.train(single_folder, variant, [train])
                pairs += [(train, target, single, single_folder) for target in sources if target[0].name != train[0].name]
        scores = {}
        for (trained_on, _), (task, entry), explainer, explainer_folder in pairs:
            identity = self.identity(explainer, explainer_folder)
            run, _, _ = self.explain.explain(entry, explainer, identity, task, f"{task.train_split}:validation", task.validation, variant)
            rate = explainer.rationale_rate or rationale_rate(task.fit, self.config.gold_rule)
            label = task.name if trained_on.name == task.name else f"{trained_on.name}->{task.name}"
            scores[label] = score_run(run, task.validation, rate, self.config.gold_rule)[self.config.selection_metric]
        finite = [v for v in scores.values() if v is not None and np.isfinite(v)]
        return {**scores, "mean": float(np.mean(finite)) if finite else float("nan")}

    def identity(self, explainer: ExpNetExplainer, folder: Path) -> dict:
        """What an ExpNet's explanations are keyed by: its weights, threshold, batch size and code."""
        return {
            "name": EXPNET,
            "weights": file_digest([folder / "model.safetensors", folder / "config.json"])[:16],
            "threshold": explainer.threshold,
            "batch_size": explainer.batch_size,
            "code": expnet_code(),
        }
