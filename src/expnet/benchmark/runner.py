"""The leave-one-task-out protocol.

For each held-out task T (every task in turn):

1. T's classifier is fine-tuned once into ``OUT/classifiers/<task>`` (or reused, or given).
2. Every ExpNet variant is trained on the *other* tasks' rationales (each with its own task's
   classifier), on the fit part of their explainer-training split. The held-back validation part
   (``validation_fraction``) of those same splits picks the variant (``selection_metric``), by
   transfer between the training tasks: each variant trained on one training task alone explains
   the other training tasks' validation parts (see ``ExpNetStep.validate``). T's
   evaluation split is never used for any choice. Word features are computed once per training
   task, with a spec wide enough for every variant (``FeatureSpec.union``).
3. ExpNet is also trained in-domain, on T's own explainer-training fit part with T's classifier
   and the selected variant's settings: an upper reference, not a competitor.
4. Every explainer, every ExpNet variant and the in-domain ExpNet explain the same sampled
   evaluation examples of T (annotated ones, drawn with the seed) with T's classifier. Slow
   explainers (perturbation family and ``slow_explainers``) may run on a smaller common subset,
   a prefix of the same sample; then a second table compares everyone on that subset.
5. Plausibility: F1/P/R of a binary rationale and threshold-free AUROC/AUPRC. Baselines are
   binarised by top-k with k = rate x words rounded half up (never an unread word), rate = the rationale rate of ExpNet's own
   training data (the same information ExpNet sees); ExpNet is reported twice, with its own 0.5
   threshold and with that same top-k. Faithfulness: comprehensiveness, sufficiency (AOPC) and
   Kendall tau against leave-one-out, by [MASK] replacement and/or deletion, for the predicted
   class. Speed: examples/s of the whole explanation at the configured batch size.

This module holds the loop; each step has its module: tasks.py (examples), classifiers.py,
expnet_step.py (ExpNet variants: training, selection, the in-domain reference), explain_step.py
(cached forward passes and explanations), faithfulness_step.py, leaderboards.py (rows and tables)
and results.py (the result types). Every step's result is cached (``expnet.benchmark.cache``).
The run seeds every generator with ``config.seed`` and, when ``config.threads`` is set, runs torch
on that many CPU threads.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch
import transformers
from rich.console import Console

from expnet import __version__
from expnet.benchmark.cache import ResultCache, source_digest
from expnet.benchmark.classifiers import ClassifierEntry, provide_classifier
from expnet.benchmark.config import BenchmarkConfig
from expnet.benchmark.explain_step import ExplainStep
from expnet.benchmark.expnet_step import ExpNetStep
from expnet.benchmark.faithfulness_step import FaithfulnessStep, Runs
from expnet.benchmark.leaderboards import IN_DOMAIN, WITH_UNLABELLED, Leaderboards, kendall_removal, variant_run
from expnet.benchmark.results import BenchmarkResults, Outcome, ShownExamples, TaskResult
from expnet.benchmark.tasks import TaskData, prepare_task, unlabelled_texts
from expnet.data import rationale_rate, resolve_data_dir
from expnet.errors import ExpnetError
from expnet.explainers import get_explainer, list_explainers
from expnet.io import atomic_write_json
from expnet.models.classifier import default_backbone, load_config
from expnet.models.finetune import describe_accuracy
from expnet.seeding import seed_everything


class BenchmarkRunner:
    def __init__(
        self,
        config: BenchmarkConfig,
        out: str | Path,
        data_dir=None,
        device: str | None = None,
        progress: bool = True,
        console: Console | None = None,
        bars: bool | None = None,
    ) -> None:
        self.config = config
        self.out = Path(out)
        self.data_dir = data_dir
        self.device = device
        self.progress = progress  # the step lines
        bars = progress if bars is None else bars  # tqdm bars: a log file would fill with carriage returns
        self.console = console or Console(stderr=True)
        self.cache = ResultCache(self.out / "cache")
        infos = {info.name: info for info in list_explainers()}
        self.families = {name: info.family for name, info in infos.items()}
        self.explainer_names = self._explainer_names(infos)
        self._check_variant_layers()
        self.skipped: dict[str, dict[str, str]] = {}
        self.bars = bars
        self.explain = ExplainStep(self.cache, config.batch_size, bars)
        self.expnets = ExpNetStep(config, self.out, self.cache, self.explain, self.skipped, self.say, bars)
        self.faithfulness = FaithfulnessStep(config.faithfulness, self.cache, self.say, bars)
        self.started = time.perf_counter()

    def _check_variant_layers(self) -> None:
        """A variant's layer numbers must exist in every task's classifier: refused now, not after
        the fine-tunes (a classifier fine-tuned here has its backbone's layers)."""
        for task in self.config.tasks:
            source = task.classifier or self.config.backbone or default_backbone()
            try:
                num_layers = load_config(source).num_hidden_layers
            except ExpnetError:
                continue  # no such model: the classifier step says so in its own words
            for name in self.config.variants:
                layers = self.config.expnet_settings(name).layers
                if isinstance(layers, list) and not all(-num_layers <= i < num_layers for i in layers):
                    raise ExpnetError(
                        f"[variants.{name}] layers {layers} do not exist in the {task.name} classifier, which has "
                        f"{num_layers} layers (0..{num_layers - 1}, or -1 for the last)"
                    )

    def _explainer_names(self, infos) -> list[str]:
        config = self.config
        wanted = sorted(infos) if config.explainers == "all" else list(config.explainers)
        # Every place that names an explainer: a typo there would be run, or lose its budget, unseen.
        named = [
            *(("explainers", n) for n in wanted),
            *(("exclude_explainers", n) for n in config.exclude_explainers),
            *(("[explainer_settings]", n) for n in config.explainer_settings),
            *((f"[tasks.{t.name}] explainer_settings", n) for t in config.tasks for n in t.explainer_settings),
        ]
        unknown = [(where, n) for where, n in named if n not in infos]
        if unknown:
            where, name = unknown[0]
            raise ExpnetError(f"unknown explainer {name!r} in the benchmark config's {where}; registered: {', '.join(sorted(infos))}")
        names = [n for n in dict.fromkeys(wanted) if n not in config.exclude_explainers]
        if not names:
            raise ExpnetError("the benchmark config leaves no explainer to compare ExpNet with: name some under explainers, or \"all\"")
        for name in names:
            for task in config.tasks:
                try:  # unknown settings and values out of range: one line, before any work
                    get_explainer(name, **config.explainer_kwargs(name, task))
                except ExpnetError as error:
                    where = f"[tasks.{task.name}] explainer_settings.{name}" if name in task.explainer_settings else f"[explainer_settings.{name}]"
                    raise ExpnetError(f"{where} in the benchmark config: {error}") from None
        return names

    def is_slow(self, name: str) -> bool:
        return name in self.config.slow_explainers or self.families.get(name) in self.config.slow_families

    def say(self, text: str) -> None:
        if self.progress:
            elapsed = time.perf_counter() - self.started
            self.console.print(f"[{elapsed:5.0f}s] {text}", highlight=False, soft_wrap=True)

    # --- the protocol ------------------------------------------------------------------------
    def run(self) -> Outcome:
        """The whole protocol, seeded with ``config.seed``; torch runs on ``config.threads`` CPU
        threads for the run when set (0: torch's default). ``OUT/config.json`` says, from the
        start, what the run does (the results follow at the end, ``report.write_outputs``)."""
        resolve_data_dir(self.data_dir)  # a wrong --data-dir is refused before anything is written
        atomic_write_json(self.out / "config.json", self.config.to_dict())
        threads = torch.get_num_threads()
        seed_everything(self.config.seed)
        if self.config.threads:
            torch.set_num_threads(self.config.threads)
        try:
            return self._run()
        finally:
            torch.set_num_threads(threads)

    def provenance(self, device: str) -> dict:
        """What the numbers depend on beyond the config: the data folder, the software, the
        device and the thread count (fine-tuning's float rounding depends on it)."""
        return {
            "expnet_version": __version__,
            "torch_version": torch.__version__,
            "transformers_version": transformers.__version__,
            "data_dir": str(resolve_data_dir(self.data_dir).resolve()),
            "device": device,
            "threads": torch.get_num_threads(),
            "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        }

    def _run(self) -> Outcome:
        started = time.perf_counter()
        config = self.config
        self.say(f"benchmark: {len(config.tasks)} tasks, {len(self.explainer_names)} explainers, {len(config.variants)} ExpNet variants -> {self.out}")
        tasks = [prepare_task(t, config, self.data_dir) for t in config.tasks]
        classifiers: dict[str, ClassifierEntry] = {}
        for task in tasks:
            self.say(f"classifier {task.name}: preparing")
            entry = provide_classifier(task, self.out, config.backbone, config.seed, self.data_dir, self.device, self.bars)
            self.cache.note("classifier", bool(entry.metrics.get("cached")))
            classifiers[task.name] = entry
            measured = isinstance(entry.metrics.get("dev_accuracy"), float)
            self.say(f"classifier {task.name}: {entry.note}" + (f", dev accuracy {describe_accuracy(entry.metrics)}" if measured else ""))
        per_task: dict[str, TaskResult] = {}
        examples: dict[str, ShownExamples] = {}
        for number, held in enumerate(tasks, start=1):
            self.say(f"[{number}/{len(tasks)}] held out: {held.name} ({len(held.evaluation)} examples, {held.n_slow} for slow explainers)")
            per_task[held.name], examples[held.name] = self._held_out(held, [t for t in tasks if t is not held], classifiers)
        results = BenchmarkResults(
            config=config.to_dict(),
            protocol=protocol_notes(config),
            tasks=per_task,
            skipped=self.skipped,
            cache=self.cache.counters(),
            seconds=time.perf_counter() - started,
            provenance=self.provenance(str(next(iter(classifiers.values())).classifier.device)),
        )
        return Outcome(results, examples)

    def _held_out(self, held: TaskData, others: list[TaskData], classifiers: dict[str, ClassifierEntry]) -> tuple[TaskResult, ShownExamples]:
        config = self.config
        entry = classifiers[held.name]
        sources = [(t, classifiers[t.name]) for t in others]
        forward = self.explain.forward(entry, held)
        targets = forward["predictions"]
        examples = held.evaluation
        n_all, n_slow = len(examples), held.n_slow

        # ExpNet variants, trained on the other tasks; selection on their validation parts.
        selection = self.expnets.select(held, entry, sources)
        selected, rate = selection.selected, selection.expnet.rationale_rate
        for line in selection.summary_lines(config.selection_metric, rate):
            self.say(line)

        # Every explainer on the held-out examples (slow ones on the common prefix).
        runs: Runs = {}
        for variant, explainer in selection.trained.items():
            identity = self.expnets.identity(explainer, selection.folders[variant])
            run, key, status = self.explain.explain(entry, explainer, identity, held, held.eval_split, examples, variant_run(variant))
            runs[variant_run(variant)] = (run, key)
            self.say(f"  {variant_run(variant)}: {run.examples_per_second:.1f} ex/s ({status})")
        if config.in_domain:
            explainer, folder = self.expnets.in_domain(held, entry, selected)
            run, key, status = self.explain.explain(entry, explainer, self.expnets.identity(explainer, folder), held, held.eval_split, examples, IN_DOMAIN)
            runs[IN_DOMAIN] = (run, key)
            self.say(f"  {IN_DOMAIN} ({selected}): {run.examples_per_second:.1f} ex/s ({status})")
        if config.teacher():
            # Soft teacher targets need a listwise loss: the best-validated variant that has one.
            listwise = [v for v in selection.usable if "listwise" in config.expnet_settings(v).loss]
            if listwise:
                variant = max(listwise, key=lambda v: np.nan_to_num(selection.validation[v]["mean"], nan=-np.inf))
                explainer, folder = self.expnets.with_unlabelled(held, entry, variant, sources, unlabelled_texts(held, self.data_dir))
                identity = self.expnets.identity(explainer, folder)
                run, key, status = self.explain.explain(entry, explainer, identity, held, held.eval_split, examples, WITH_UNLABELLED)
                runs[WITH_UNLABELLED] = (run, key)
                self.say(f"  {WITH_UNLABELLED} ({variant}): {run.examples_per_second:.1f} ex/s ({status})")
            else:
                self.skipped.setdefault(held.name, {})[WITH_UNLABELLED] = "no usable ExpNet variant has a listwise loss"
        for name in self.explainer_names:
            chosen = examples[:n_slow] if self.is_slow(name) else examples
            settings = config.explainer_kwargs(name, held.config)
            baseline = get_explainer(name, batch_size=config.batch_size, seed=config.seed, **settings)
            identity = {"name": name, "settings": baseline.settings(), "code": source_digest(baseline)}
            try:
                run, key, status = self.explain.explain(entry, baseline, identity, held, held.eval_split, chosen, name)
            except (KeyboardInterrupt, MemoryError):
                raise
            except Exception as error:  # noqa: BLE001  (one broken explainer must not end an hour-long run)
                reason = f"{type(error).__name__}: {str(error).splitlines()[0][:200] if str(error) else ''}"
                self.skipped.setdefault(held.name, {})[name] = reason
                self.say(f"  [yellow]{name}: skipped ({reason})[/yellow]")
                continue
            runs[name] = (run, key)
            self.say(f"  {name}: {len(chosen)} examples, {run.examples_per_second:.1f} ex/s ({status})")

        # Faithfulness of every run, on its own examples; then the tables.
        faith = self.faithfulness.all_runs(entry, held, targets, runs, selected)
        boards = Leaderboards(config, self.families, examples, {name: run for name, (run, _) in runs.items()}, faith, selected, rate)
        fast = [n for n in self.explainer_names if n in runs and not self.is_slow(n)]
        slow = [n for n in self.explainer_names if n in runs and self.is_slow(n)]
        tables = boards.tables(fast, slow, n_slow)
        result = TaskResult(
            held_out=held.name,
            trained_on=[t.name for t in others],
            classifier={
                "folder": entry.folder,
                **{key: entry.metrics.get(key) for key in ("dev_accuracy", "dev_accuracy_interval", "dev_majority_accuracy")},
                "cached": entry.metrics.get("cached"),
            },
            evaluation_split=held.eval_split,
            n_examples=n_all,
            n_slow_examples=n_slow,
            slow_explainers=slow,
            example_ids=[e.id for e in examples],
            accuracy=forward["accuracy"],
            forward_examples_per_second=forward["examples_per_second"],
            rationale_rate=rate,
            rationale_rate_source=f"ExpNet's training rationales ({', '.join(t.name for t in others)}, fit part)",
            held_out_rationale_rate=rationale_rate(examples, config.gold_rule),
            expnet={"selected": selected, "selection_metric": config.selection_metric, "validation": selection.validation},
            removal_shown=config.faithfulness.shown if config.faithfulness.enabled else None,
            kendall_removal=kendall_removal(config.faithfulness),
            tables=tables,
            ablation=boards.ablation(selection.usable, selection.candidates, selection.validation),
            deletion_curves=boards.deletion_curves(tables),
        )
        return result, boards.shown_examples(self.explainer_names, n_slow)


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
            "Binarisation: baselines select the top-k words, k = max(1, rate x words rounded half up), never a word the classifier did not read, rate = the mean rationale "
            "rate of ExpNet's training data (the information ExpNet sees); ExpNet is reported with its own rule (expnet: "
            "the 0.5 threshold of a focal-loss variant, the per-text perplexity count of a listwise one) and with the "
            "same top-k (expnet@k). AUROC and AP (average precision) are threshold-free, per "
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
            "expnet+unlabelled (its own row, never the expnet row) is the best-validated listwise variant trained again with, "
            "next to the other tasks' rationales, a teacher's soft targets on the held-out task's unlabelled classifier-training "
            "texts (no rationales; [unlabelled] settings); same features, same inference cost."
        ),
        (
            "ExpNet minus the best baseline (by the table's mean; not random, not the in-domain reference) on F1@k and "
            "AUROC, with a paired bootstrap 95% interval over the examples: a win or a loss only when it excludes 0."
        ),
    ]
