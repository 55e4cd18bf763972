"""The leave-one-task-out protocol.

For each held-out task T (every task in turn):

1. T's classifier is fine-tuned once into ``OUT/classifiers/<task>`` (or reused, or given).
2. Every ExpNet variant is trained on the *other* tasks' rationales (each with its own task's
   classifier), on the fit part of their explainer-training split. The held-back validation part
   (``validation_fraction``) of those same splits picks the variant (``selection_metric``), by
   transfer between the training tasks: each variant trained on one training task alone explains
   the other training tasks' validation parts (see ``BenchmarkRunner._validate``). T's
   evaluation split is never used for any choice. Word features are computed once per training
   task, with a spec wide enough for every variant (``FeatureSpec.union``).
3. ExpNet is also trained in-domain, on T's own explainer-training fit part with T's classifier
   and the selected variant's settings: an upper reference, not a competitor.
4. Every explainer, every ExpNet variant and the in-domain ExpNet explain the same sampled
   evaluation examples of T (annotated ones, drawn with the seed) with T's classifier. Slow
   explainers (perturbation family and ``slow_explainers``) may run on a smaller common subset,
   a prefix of the same sample; then a second table compares everyone on that subset.
5. Plausibility: F1/P/R of a binary rationale and threshold-free AUROC/AUPRC. Baselines are
   binarised by top-k with k = round(rate x words), rate = the rationale rate of ExpNet's own
   training data (the same information ExpNet sees); ExpNet is reported twice, with its own 0.5
   threshold and with that same top-k. Faithfulness: comprehensiveness, sufficiency (AOPC) and
   Kendall tau against leave-one-out, by [MASK] replacement and/or deletion, for the predicted
   class. Speed: examples/s of the whole explanation at the configured batch size.

Every step's result is cached (``expnet.benchmark.cache``); trained ExpNets live in
``OUT/expnets/<held-out>/<variant>`` (trained on the other tasks) and
``OUT/expnets/single/<task>/<variant>`` (trained on one task: transfer validation and the
in-domain reference), each with a key file beside it.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from rich.console import Console

from expnet.benchmark.cache import (
    ResultCache,
    classifier_fingerprint,
    digest,
    examples_digest,
    file_digest,
    source_digest,
)
from expnet.benchmark.config import BenchmarkConfig, TaskConfig
from expnet.data import default_split, load_examples, rationale_rate, task_name
from expnet.data.records import RationaleExample
from expnet.errors import ExpnetError
from expnet.evaluation import SEEN_KEYS, ExplainerRun, forward_pass, run_explainer, score_run
from expnet.explainers import get_explainer, list_explainers
from expnet.explainers.base import Explanation
from expnet.explainers.learned import ExpNetExplainer
from expnet.io import atomic_write_json
from expnet.metrics import faithfulness as faithfulness_module
from expnet.metrics.faithfulness import (
    FaithfulnessScores,
    faithfulness_many,
    leave_one_out,
)
from expnet.models.classifier import Classifier, default_backbone, read_metrics
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
    fit_expnet,
    select_dataset,
    settings_spec,
)
from expnet.pipeline import ensure_classifier

EXPNET = "expnet"
EXPNET_TOPK = "expnet@k"
IN_DOMAIN = "expnet_in_domain"


@dataclass
class TaskData:
    config: TaskConfig
    name: str
    jsonl: bool
    label_names: tuple[str, ...]
    evaluation: list[RationaleExample]
    eval_split: str
    fit: list[RationaleExample]
    validation: list[RationaleExample]
    train_split: str
    classifier_pool: list[RationaleExample] = field(default_factory=list)  # JSONL only

    @property
    def n_slow(self) -> int:
        n = self.config.n_slow
        return len(self.evaluation) if n is None else min(n, len(self.evaluation))


@dataclass
class ClassifierEntry:
    classifier: Classifier
    fingerprint: dict
    metrics: dict
    folder: str


@dataclass
class Outcome:
    """What a run produced: the JSON-ready results and, for the HTML page, example explanations."""

    results: dict
    examples: dict[str, list[tuple[RationaleExample, list[tuple[str, Explanation]]]]] = field(default_factory=dict)


def _order(n: int, salt: str) -> list[int]:
    order = list(range(n))
    random.Random(salt).shuffle(order)
    return order


def _sample(examples: list, n: int | None, salt: str) -> list:
    """A seeded random draw of ``n`` examples (all of them, shuffled, when n is None)."""
    order = _order(len(examples), salt)
    return [examples[i] for i in (order if n is None else order[:n])]


def _subset_run(run: ExplainerRun, n: int) -> ExplainerRun:
    """The first ``n`` explanations, with the time scaled so examples/s is unchanged."""
    total = len(run.explanations)
    if n >= total:
        return run
    return ExplainerRun(run.name, run.explanations[:n], run.seconds * n / total if total else 0.0)


def _nan_list(values) -> list:
    return [None if v is None or not np.isfinite(v) else float(v) for v in values]


def _run_payload(run: ExplainerRun) -> dict:
    return {
        "seconds": run.seconds,
        "explanations": [
            {
                "scores": _nan_list(e.scores),
                "scored": [bool(s) for s in e.scored],
                "target": e.target,
                "prediction": e.prediction,
                "probabilities": [float(p) for p in e.probabilities],
                "rationale": None if e.rationale is None else [int(r) for r in e.rationale],
            }
            for e in run.explanations
        ],
    }


def _run_from_payload(payload: dict, examples: list[RationaleExample], name: str, label_names) -> ExplainerRun:
    explanations = []
    for example, item in zip(examples, payload["explanations"], strict=True):
        explanations.append(
            Explanation(
                words=list(example.words),
                scores=np.array([np.nan if s is None else s for s in item["scores"]], dtype=np.float64),
                scored=np.array(item["scored"], dtype=bool),
                target=int(item["target"]),
                prediction=int(item["prediction"]),
                probabilities=np.array(item["probabilities"]),
                explainer=name,
                label_names=tuple(label_names),
                rationale=None if item["rationale"] is None else np.array(item["rationale"], dtype=np.int8),
            )
        )
    return ExplainerRun(name, explanations, float(payload["seconds"]))


class BenchmarkRunner:
    def __init__(
        self,
        config: BenchmarkConfig,
        out: str | Path,
        data_dir=None,
        device: str | None = None,
        progress: bool = True,
        console: Console | None = None,
    ) -> None:
        self.config = config
        self.out = Path(out)
        self.data_dir = data_dir
        self.device = device
        self.progress = progress
        self.console = console or Console(stderr=True)
        self.cache = ResultCache(self.out / "cache")
        infos = {info.name: info for info in list_explainers()}
        self.families = {name: info.family for name, info in infos.items()}
        self.explainer_names = self._explainer_names(infos)
        self.skipped: dict[str, dict[str, str]] = {}
        self._banks: dict[tuple, tuple[WordDataset, FeatureSpec]] = {}
        self.started = time.perf_counter()

    # --- set-up ----------------------------------------------------------------------------
    def _explainer_names(self, infos) -> list[str]:
        wanted = sorted(infos) if self.config.explainers == "all" else list(self.config.explainers)
        unknown = [n for n in wanted if n not in infos]
        if unknown:
            raise ExpnetError(f"unknown explainer {unknown[0]!r} in the benchmark config; registered: {', '.join(sorted(infos))}")
        names = [n for n in dict.fromkeys(wanted) if n not in self.config.exclude_explainers]
        for name in names:
            for task in self.config.tasks:
                get_explainer(name, **self.config.explainer_kwargs(name, task))  # unknown settings: one-line error
        return names

    def is_slow(self, name: str) -> bool:
        return name in self.config.slow_explainers or self.families.get(name) in self.config.slow_families

    def say(self, text: str) -> None:
        if self.progress:
            elapsed = time.perf_counter() - self.started
            self.console.print(f"[{elapsed:5.0f}s] {text}", highlight=False, soft_wrap=True)

    def _prepare_task(self, task: TaskConfig) -> TaskData:
        name = task_name(task.name)
        seed = self.config.seed
        jsonl = name != task.name
        pool: list[RationaleExample] = []
        if jsonl:
            everything = load_examples(task.name, None, self.data_dir, purpose="evaluation")
            order = _order(len(everything), f"{seed}:{name}:jsonl-split")
            n_eval = max(1, round(task.eval_fraction * len(everything)))
            evaluation_pool = [everything[i] for i in order[:n_eval]]
            pool = [everything[i] for i in order[n_eval:]]
            train_pool = pool
            split = f"jsonl:{file_digest([task.name])[:12]}:eval={task.eval_fraction}:seed={seed}"
            eval_split, train_split = f"{split}:evaluation", f"{split}:train"
        else:
            evaluation_pool = load_examples(task.name, None, self.data_dir, purpose="evaluation")
            train_pool = load_examples(task.name, None, self.data_dir, purpose="explainer_train")
            eval_split = default_split(name, "evaluation")
            train_split = default_split(name, "explainer_train")
        annotated = [e for e in evaluation_pool if e.has_rationale]
        if not annotated:
            raise ExpnetError(f"{name}: no evaluation example has a rationale; the benchmark needs annotated data")
        evaluation = _sample(annotated, task.max_examples, f"{seed}:{name}:evaluation")
        rationales = _sample([e for e in train_pool if e.has_rationale], task.expnet_train_max_examples, f"{seed}:{name}:explainer-train")
        if len(rationales) < 4:
            raise ExpnetError(f"{name}: only {len(rationales)} annotated training examples; ExpNet needs more rationale data")
        n_val = max(1, round(self.config.validation_fraction * len(rationales)))
        return TaskData(
            config=task,
            name=name,
            jsonl=jsonl,
            label_names=tuple(annotated[0].label_names),
            evaluation=evaluation,
            eval_split=eval_split,
            fit=rationales[n_val:],
            validation=rationales[:n_val],
            train_split=train_split,
            classifier_pool=pool,
        )

    def _classifier(self, task: TaskData) -> ClassifierEntry:
        settings = task.config.finetune_settings()
        folder = self.out / "classifiers" / task.name
        if task.config.classifier:
            folder = Path(task.config.classifier)
            classifier = Classifier.load(folder, device=self.device)
            metrics = {**read_metrics(folder), "cached": True, "given": True} if folder.is_dir() else {"cached": True, "given": True}
        elif task.jsonl:
            classifier, metrics = self._jsonl_classifier(task, folder, settings)
        else:
            classifier, metrics = ensure_classifier(
                task.config.name, folder, settings, self.data_dir, self.config.backbone, self.config.seed, self.device, self.progress
            )
        self.cache.note("classifier", bool(metrics.get("cached")))
        bad = [e for e in task.evaluation if not 0 <= e.label < classifier.num_labels]
        if bad:
            raise ExpnetError(
                f"{task.name}: example {bad[0].id} has label {bad[0].label}, outside the classifier's "
                f"{classifier.num_labels} classes; give a classifier fine-tuned on this task"
            )
        return ClassifierEntry(classifier, classifier_fingerprint(folder), metrics, str(folder))

    def _jsonl_classifier(self, task: TaskData, folder: Path, settings):
        """Like ``ensure_classifier``, but trained on the JSONL file's training part only."""
        from dataclasses import asdict

        from expnet.models.finetune import finetune

        backbone = self.config.backbone or default_backbone()
        wanted = {"settings": asdict(settings), "seed": self.config.seed, "backbone": backbone, "benchmark_split": task.train_split}
        metrics = read_metrics(folder)
        if metrics and all(metrics.get(k) == v for k, v in wanted.items()):
            metrics["cached"] = True
        else:
            pool = task.classifier_pool
            metrics = finetune(backbone, pool, task.evaluation, task.label_names, folder, settings, self.config.seed, self.device, self.progress)
            metrics["benchmark_split"] = task.train_split
            atomic_write_json(Path(folder) / "metrics.json", metrics)
            metrics["cached"] = False
        return Classifier.load(folder, device=self.device), metrics

    # --- cached steps ----------------------------------------------------------------------
    def _forward(self, entry: ClassifierEntry, task: TaskData) -> dict:
        key = {"classifier": entry.fingerprint, "task": task.name, "split": task.eval_split, "examples": examples_digest(task.evaluation), "batch_size": self.config.batch_size}
        payload = self.cache.get("forward", key)
        if payload is None:
            predictions, speed = forward_pass(entry.classifier, [e.words for e in task.evaluation], self.config.batch_size)
            labels = np.array([e.label for e in task.evaluation])
            payload = self.cache.put(
                "forward",
                key,
                {"predictions": [int(p) for p in predictions], "examples_per_second": speed, "accuracy": float((predictions == labels).mean())},
            )
        return payload

    def _expnet(self, folder: Path, variant: str, sources: list[tuple[TaskData, ClassifierEntry]]) -> ExpNetExplainer:
        settings = self.config.expnet_settings(variant)
        key = {
            "sources": [[t.name, e.fingerprint, t.train_split, examples_digest(t.fit)] for t, e in sources],
            "settings": settings.to_dict(),
            "seed": self.config.seed,
            "code": [source_digest(m) for m in (training_module, features_module, gradient_module, model_module)],
        }
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
        fit_expnet(dataset, spec, settings, seed=self.config.seed).save_pretrained(folder)
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

    def _usable_variants(self, held: TaskData, entries: list[ClassifierEntry]) -> list[str]:
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

    def _single_source_folder(self, task: TaskData, variant: str) -> Path:
        # Shared by every held-out task: transfer validation and the in-domain reference.
        return self.out / "expnets" / "single" / task.name / variant

    def _validate(self, variant: str, sources: list[tuple[TaskData, ClassifierEntry]], trained: ExpNetExplainer, folder: Path) -> dict:
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
                single_folder = self._single_source_folder(train[0], variant)
                single = self._expnet(single_folder, variant, [train])
                pairs += [(train, target, single, single_folder) for target in sources if target[0].name != train[0].name]
        scores = {}
        for (trained_on, _), (task, entry), explainer, explainer_folder in pairs:
            identity = self._expnet_identity(explainer, explainer_folder)
            run, _, _ = self._explain(entry, explainer, identity, task, f"{task.train_split}:validation", task.validation, variant)
            rate = explainer.rationale_rate or rationale_rate(task.fit, self.config.gold_rule)
            label = task.name if trained_on.name == task.name else f"{trained_on.name}->{task.name}"
            scores[label] = score_run(run, task.validation, rate, self.config.gold_rule)[self.config.selection_metric]
        finite = [v for v in scores.values() if v is not None and np.isfinite(v)]
        return {**scores, "mean": float(np.mean(finite)) if finite else float("nan")}

    def _expnet_identity(self, explainer: ExpNetExplainer, folder: Path) -> dict:
        return {
            "name": EXPNET,
            "weights": file_digest([folder / "model.safetensors", folder / "config.json"])[:16],
            "threshold": explainer.threshold,
            "batch_size": explainer.batch_size,
            "code": [source_digest(ExpNetExplainer), source_digest(gradient_module), source_digest(features_module)],
        }

    def _explain(self, entry: ClassifierEntry, explainer, identity: dict, task: TaskData, split: str, examples, label: str):
        key = {
            "classifier": entry.fingerprint,
            "explainer": identity,
            "task": task.name,
            "split": split,
            "examples": examples_digest(examples),
            "n": len(examples),
        }
        payload = self.cache.get("explanations", key)
        status = "cached"
        if payload is None:
            run = run_explainer(entry.classifier, explainer, [e.words for e in examples], progress=self.progress)
            payload = self.cache.put("explanations", key, _run_payload(run))
            status = "computed"
        run = _run_from_payload(payload, examples, label, entry.classifier.label_names)
        return run, digest(key), status

    def _loo(self, entry: ClassifierEntry, task: TaskData, targets: list[int], removal: str) -> list[np.ndarray]:
        key = {
            "classifier": entry.fingerprint,
            "task": task.name,
            "split": task.eval_split,
            "examples": examples_digest(task.evaluation),
            "removal": removal,
            "code": source_digest(faithfulness_module),
        }
        payload = self.cache.get("leave_one_out", key)
        if payload is None:
            self.say(f"  leave-one-out by {removal} on {len(task.evaluation)} examples (for Kendall tau)")
            values = leave_one_out(
                entry.classifier, [e.words for e in task.evaluation], targets, removal, self.config.faithfulness.batch_size, self.progress
            )
            payload = self.cache.put("leave_one_out", key, [_nan_list(v) for v in values])
        return [np.array([np.nan if v is None else v for v in row], dtype=np.float64) for row in payload]

    def _faithfulness(self, entry, todo: dict, examples, targets, removal: str, loo) -> dict[str, FaithfulnessScores]:
        """Faithfulness of every run in ``todo`` (name -> (run, run key)) by one removal; the
        cache misses are computed together, sharing identical perturbed rows."""
        faith = self.config.faithfulness
        keys = {
            name: {"run": key, "removal": removal, "bins": list(faith.bins), "kendall": loo is not None, "code": source_digest(faithfulness_module)}
            for name, (_, key) in todo.items()
        }
        results, missing = {}, {}
        for name, (run, _) in todo.items():
            payload = self.cache.get("faithfulness", keys[name])
            if payload is None:
                missing[name] = [e.scores for e in run.explanations]
            else:
                results[name] = FaithfulnessScores.from_arrays(payload)
        if missing:
            needed = max(len(v) for v in missing.values())
            computed = faithfulness_many(
                entry.classifier,
                [e.words for e in examples[:needed]],
                missing,
                targets[:needed],
                removal=removal,
                bins=faith.bins,
                batch_size=faith.batch_size,
                loo=None if loo is None else loo[:needed],
                progress=self.progress,
            )
            for name, scores in computed.items():
                self.cache.put("faithfulness", keys[name], scores.to_arrays())
                results[name] = scores
        return results

    # --- the protocol ------------------------------------------------------------------------
    def run(self) -> Outcome:
        started = time.perf_counter()
        config = self.config
        self.say(f"benchmark: {len(config.tasks)} tasks, {len(self.explainer_names)} explainers, {len(config.variants)} ExpNet variants -> {self.out}")
        tasks = [self._prepare_task(t) for t in config.tasks]
        classifiers: dict[str, ClassifierEntry] = {}
        for task in tasks:
            self.say(f"classifier {task.name}: preparing")
            entry = self._classifier(task)
            classifiers[task.name] = entry
            accuracy = entry.metrics.get("dev_accuracy")
            note = "given" if entry.metrics.get("given") else "cached" if entry.metrics.get("cached") else "fine-tuned"
            self.say(f"classifier {task.name}: {note}" + (f", dev accuracy {accuracy:.3f}" if isinstance(accuracy, float) else ""))
        outcome = Outcome(results={})
        per_task = {}
        for number, held in enumerate(tasks, start=1):
            self.say(f"[{number}/{len(tasks)}] held out: {held.name} ({len(held.evaluation)} examples, {held.n_slow} for slow explainers)")
            per_task[held.name], outcome.examples[held.name] = self._held_out(held, [t for t in tasks if t is not held], classifiers)
        outcome.results = {
            "config": config.to_dict(),
            "protocol": protocol_notes(config),
            "tasks": per_task,
            "skipped": self.skipped,
            "cache": self.cache.counters(),
            "seconds": time.perf_counter() - started,
        }
        return outcome

    def _held_out(self, held: TaskData, others: list[TaskData], classifiers: dict[str, ClassifierEntry]):
        config = self.config
        entry = classifiers[held.name]
        sources = [(t, classifiers[t.name]) for t in others]
        forward = self._forward(entry, held)
        targets = forward["predictions"]
        examples = held.evaluation
        n_all, n_slow = len(examples), held.n_slow

        # ExpNet variants, trained on the other tasks; selection on their validation parts.
        usable = self._usable_variants(held, [entry] + [e for _, e in sources])
        candidates = [c for c in config.candidates if c in usable] or usable
        folders = {variant: self.out / "expnets" / held.name / variant for variant in usable}
        variants = {variant: self._expnet(folders[variant], variant, sources) for variant in usable}
        validation = {variant: self._validate(variant, sources, variants[variant], folders[variant]) for variant in usable}
        ranked = [c for c in candidates if np.isfinite(validation[c]["mean"])] or candidates
        selected = max(ranked, key=lambda c: validation[c]["mean"])
        expnet = variants[selected]
        rate = expnet.rationale_rate
        self.say(
            "  ExpNet variants (validation "
            + config.selection_metric
            + "): "
            + ", ".join(f"{v} {validation[v]['mean']:.3f}" for v in usable)
            + f" -> selected {selected}; top-k rate {rate:.3f}"
        )

        # Every explainer on the held-out examples (slow ones on the common prefix).
        runs: dict[str, tuple[ExplainerRun, str]] = {}
        for variant, explainer in variants.items():
            identity = self._expnet_identity(explainer, folders[variant])
            run, key, status = self._explain(entry, explainer, identity, held, held.eval_split, examples, f"expnet:{variant}")
            runs[f"expnet:{variant}"] = (run, key)
            self.say(f"  expnet:{variant}: {run.examples_per_second:.1f} ex/s ({status})")
        if config.in_domain:
            folder = self._single_source_folder(held, selected)
            explainer = self._expnet(folder, selected, [(held, entry)])
            run, key, status = self._explain(entry, explainer, self._expnet_identity(explainer, folder), held, held.eval_split, examples, IN_DOMAIN)
            runs[IN_DOMAIN] = (run, key)
            self.say(f"  {IN_DOMAIN} ({selected}): {run.examples_per_second:.1f} ex/s ({status})")
        for name in self.explainer_names:
            chosen = examples[:n_slow] if self.is_slow(name) else examples
            settings = config.explainer_kwargs(name, held.config)
            explainer = get_explainer(name, batch_size=config.batch_size, seed=config.seed, **settings)
            identity = {"name": name, "settings": explainer.settings(), "code": source_digest(explainer)}
            try:
                run, key, status = self._explain(entry, explainer, identity, held, held.eval_split, chosen, name)
            except (KeyboardInterrupt, MemoryError):
                raise
            except Exception as error:  # noqa: BLE001  (one broken explainer must not end an hour-long run)
                reason = f"{type(error).__name__}: {str(error).splitlines()[0][:200] if str(error) else ''}"
                self.skipped.setdefault(held.name, {})[name] = reason
                self.say(f"  [yellow]{name}: skipped ({reason})[/yellow]")
                continue
            runs[name] = (run, key)
            self.say(f"  {name}: {len(chosen)} examples, {run.examples_per_second:.1f} ex/s ({status})")

        # Faithfulness of every run, on its own examples.
        faith_cfg = config.faithfulness
        faith: dict[str, dict[str, FaithfulnessScores]] = {name: {} for name in runs}
        if faith_cfg.enabled:
            loo = {r: self._loo(entry, held, targets, r) for r in faith_cfg.kendall_removals if r in faith_cfg.removals}
            todo = {
                name: value
                for name, value in runs.items()
                if faith_cfg.all_variants or not name.startswith("expnet:") or name == f"expnet:{selected}"
            }
            for removal in faith_cfg.removals:
                for name, scores in self._faithfulness(entry, todo, examples, targets, removal, loo.get(removal)).items():
                    faith[name][removal] = scores
            self.say(f"  faithfulness ({', '.join(faith_cfg.removals)}) of {len(todo)} runs: done")

        expnet_run = runs[f"expnet:{selected}"][0]
        expnet_speed = expnet_run.examples_per_second

        def row(label: str, kind: str, name: str, n: int, binarise: str) -> dict:
            run = _subset_run(runs[name][0], n)
            subset = {r: f.subset(range(n)) for r, f in faith[name].items()}
            return self._row(label, kind, name, run, examples[:n], rate, subset, expnet_speed, binarise)

        fast = [n for n in self.explainer_names if n in runs and not self.is_slow(n)]
        slow = [n for n in self.explainer_names if n in runs and self.is_slow(n)]
        expnet_key = f"expnet:{selected}"

        def table(names: list[str], n: int, note: str) -> dict:
            rows = [row(EXPNET, "expnet", expnet_key, n, "threshold"), row(EXPNET_TOPK, "expnet", expnet_key, n, "topk")]
            rows += [row(name, "baseline", name, n, "topk") for name in names]
            rows.sort(key=lambda r: -np.nan_to_num(r["f1"], nan=-1.0))
            if IN_DOMAIN in runs:
                rows.append(row(IN_DOMAIN, "reference", IN_DOMAIN, n, "threshold"))
            return {"n_examples": n, "note": note, "rows": rows}

        tables = {}
        if n_slow < n_all and slow:
            tables["main"] = table(fast, n_all, f"{n_all} examples; slow explainers ({', '.join(slow)}) are in the common-subset table")
            tables["common"] = table(fast + slow, n_slow, f"common subset: the first {n_slow} of the {n_all} examples, every explainer")
        else:
            tables["main"] = table(fast + slow, n_all, f"{n_all} examples, every explainer")

        ablation = []
        for variant in usable:
            r = row(f"expnet:{variant}", "variant", f"expnet:{variant}", n_all, "threshold")
            r.update(variant=variant, validation=validation[variant]["mean"], validation_per_task={k: v for k, v in validation[variant].items() if k != "mean"}, selected=variant == selected, candidate=variant in candidates)
            spec = config.variants[variant]
            r["settings"] = asdict(spec)
            ablation.append(r)
        if IN_DOMAIN in runs:
            r = row(IN_DOMAIN, "reference", IN_DOMAIN, n_all, "threshold")
            r.update(variant=f"in-domain ({selected})", validation=None, selected=False, candidate=False)
            ablation.append(r)

        shown = faith_cfg.shown
        curves = {}
        if faith_cfg.enabled:
            largest = tables.get("common", tables["main"])
            for r in largest["rows"]:
                if r["explainer"] != EXPNET_TOPK:
                    curves[r["explainer"]] = r.get(f"deletion_curve_{shown}")
        result = {
            "held_out": held.name,
            "trained_on": [t.name for t in others],
            "classifier": {"folder": entry.folder, "dev_accuracy": entry.metrics.get("dev_accuracy"), "cached": entry.metrics.get("cached")},
            "evaluation_split": held.eval_split,
            "n_examples": n_all,
            "n_slow_examples": n_slow,
            "slow_explainers": slow,
            "example_ids": [e.id for e in examples],
            "accuracy": forward["accuracy"],
            "forward_examples_per_second": forward["examples_per_second"],
            "rationale_rate": rate,
            "rationale_rate_source": f"ExpNet's training rationales ({', '.join(t.name for t in others)}, fit part)",
            "held_out_rationale_rate": rationale_rate(examples, config.gold_rule),
            "expnet": {"selected": selected, "selection_metric": config.selection_metric, "validation": validation},
            "removal_shown": shown if faith_cfg.enabled else None,
            "kendall_removal": self.kendall_removal,
            "tables": tables,
            "ablation": ablation,
            "deletion_curves": {"bins": [0.0, *faith_cfg.bins], "removal": shown, "curves": curves},
        }
        shown_examples = self._report_examples(runs, examples[:n_slow], selected)
        return result, shown_examples

    def _report_examples(self, runs, examples, selected) -> list:
        picked = [i for i, e in enumerate(examples) if e.has_rationale][: self.config.report_examples]
        order = [f"expnet:{selected}", IN_DOMAIN] + [n for n in self.explainer_names if n in runs]
        out = []
        for i in picked:
            blocks = []
            for name in order:
                if name in runs and i < len(runs[name][0].explanations):
                    label = EXPNET if name == f"expnet:{selected}" else name
                    blocks.append((label, runs[name][0].explanations[i]))
            out.append((examples[i], blocks))
        return out

    def _row(self, label, kind, name, run, examples, rate, faith, expnet_speed, binarise) -> dict:
        scores = score_run(run, examples, rate, self.config.gold_rule)
        suffix = "" if binarise == "threshold" else "_topk"
        family = "learned" if name.startswith("expnet") else self.families.get(name, "?")
        row = {
            "explainer": label,
            "kind": kind,
            "family": family,
            "binarisation": "threshold 0.5" if binarise == "threshold" else f"top-k (rate {rate:.3f})",
            "n_examples": len(examples),
            "n_annotated": scores["n_examples"],
            "f1": scores["f1" + suffix],
            "precision": scores["precision" + suffix],
            "recall": scores["recall" + suffix],
            "f1_pooled": scores["f1_pooled" + suffix],
            "f1_topk": scores["f1_topk"],
            "iou_f1": scores["iou_f1" + suffix],
            "auroc": scores["auroc"],
            "average_precision": scores["average_precision"],
            "auprc": scores["auprc"],
            **{key: scores[key] for key in SEEN_KEYS},
            # F1@k and AUROC per example with the example ids: the report pairs them between rows.
            "per_example": scores["per_example"],
            "examples_per_second": run.examples_per_second,
            "seconds": run.seconds,
            "expnet_speedup": expnet_speed / run.examples_per_second if run.examples_per_second > 0 else float("nan"),
        }
        for removal, values in faith.items():
            summary = values.summary()
            row[f"comprehensiveness_{removal}"] = summary["comprehensiveness"]
            row[f"sufficiency_{removal}"] = summary["sufficiency"]
            row[f"kendall_{removal}"] = summary["kendall_tau"]
            row[f"deletion_curve_{removal}"] = summary["deletion_curve"]
        shown = self.config.faithfulness.shown
        row["comprehensiveness"] = row.get(f"comprehensiveness_{shown}")
        row["sufficiency"] = row.get(f"sufficiency_{shown}")
        row["kendall_tau"] = row.get(f"kendall_{self.kendall_removal}") if self.kendall_removal else None
        return row

    @property
    def kendall_removal(self) -> str | None:
        """The removal whose Kendall tau the tables show: the shown one if computed, else the first."""
        faith = self.config.faithfulness
        computed = [r for r in faith.kendall_removals if r in faith.removals]
        if not faith.enabled or not computed:
            return None
        return faith.shown if faith.shown in computed else computed[0]


def protocol_notes(config: BenchmarkConfig) -> list[str]:
    faith = config.faithfulness
    bins = ", ".join(f"{b:.0%}" for b in faith.bins)
    kendall = [r for r in faith.kendall_removals if r in faith.removals]
    return [
        (
            "Leave one task out: ExpNet is trained on the other tasks' rationales (each with its own task's classifier) "
            "and evaluated on the held-out task's evaluation split with the held-out task's classifier; every explainer "
            "sees the same classifier and the same sampled examples."
        ),
        (
            f"The ExpNet variant is chosen by mean {config.selection_metric} on a held-back {config.validation_fraction:.0%} "
            "of the training tasks' rationale data (never the evaluation split), by transfer: each variant trained on one "
            "training task explains the other training tasks' validation parts (with one training task, its own); every "
            "variant is in the ablation table."
        ),
        (
            "Binarisation: baselines select the top-k words, k = max(1, round(rate x words)), rate = the mean rationale "
            "rate of ExpNet's training data (the information ExpNet sees); ExpNet is reported with its own 0.5 threshold "
            "(expnet) and with the same top-k (expnet@k). AUROC and AP (average precision) are threshold-free, per "
            "example over the texts with both classes, then averaged; AUPRC is ERASER's trapezoidal PR-AUC over every "
            "annotated text; IOU-F1 is ERASER's span match at IOU >= 0.5."
        ),
        (
            f"Faithfulness for the predicted class by {' and '.join(faith.removals)} (tables show {faith.shown}): "
            f"comprehensiveness and sufficiency as AOPC, the mean over bins {bins} of the words (at least one word); "
            f"Kendall tau-b against leave-one-out by {' and '.join(kendall) or 'none'}."
        ),
        (
            "Speed: examples per second of the whole explanation (tokenisation and forward passes included) at batch "
            f"size {config.batch_size}, after an untimed warm-up on a short text; 'ExpNet speed-up' = ExpNet's examples/s divided by "
            "the explainer's."
        ),
        "expnet_in_domain is ExpNet trained on the held-out task's own training rationales: an upper reference, not a competitor.",
        (
            "ExpNet minus the best baseline (by the table's mean; not random, not the in-domain reference) on F1@k and "
            "AUROC, with a paired bootstrap 95% interval over the examples: a win or a loss only when it excludes 0."
        ),
    ]
