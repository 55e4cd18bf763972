"""Faithfulness of a held-out task's runs, cached: comprehensiveness, sufficiency (AOPC) and
Kendall tau against leave-one-out, per removal, for the predicted class.

Leave-one-out is computed once per removal in ``kendall_removals`` (one pass per word) and shared
by every run. Per removal, the runs not in the cache are scored together, so identical perturbed
rows are computed once. Each run is scored on its own examples (slow explainers on the prefix).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from expnet.benchmark.cache import ResultCache, examples_digest, source_digest
from expnet.benchmark.classifiers import ClassifierEntry
from expnet.benchmark.config import FaithfulnessConfig
from expnet.benchmark.leaderboards import variant_run
from expnet.benchmark.tasks import TaskData
from expnet.data.records import RationaleExample
from expnet.evaluation import ExplainerRun
from expnet.io import strict_json
from expnet.metrics import faithfulness as faithfulness_module
from expnet.metrics.faithfulness import FaithfulnessScores, faithfulness_many, leave_one_out

Runs = dict[str, tuple[ExplainerRun, str]]  # run name -> (run, digest of its cache key)


class FaithfulnessStep:
    def __init__(self, config: FaithfulnessConfig, cache: ResultCache, say: Callable[[str], None], progress: bool) -> None:
        self.config = config
        self.cache = cache
        self.say = say
        self.progress = progress

    def all_runs(self, entry: ClassifierEntry, held: TaskData, targets: list[int], runs: Runs, selected: str) -> dict[str, dict[str, FaithfulnessScores]]:
        """Run name -> removal -> scores, for every run (ExpNet variants other than the selected
        one only with ``all_variants``); empty per run when faithfulness is off."""
        faith: dict[str, dict[str, FaithfulnessScores]] = {name: {} for name in runs}
        if not self.config.enabled:
            return faith
        loo = {r: self.leave_one_out(entry, held, targets, r) for r in self.config.kendall_removals if r in self.config.removals}
        todo = {
            name: value
            for name, value in runs.items()
            if self.config.all_variants or not name.startswith("expnet:") or name == variant_run(selected)
        }
        for removal in self.config.removals:
            for name, scores in self.scores(entry, todo, held.evaluation, targets, removal, loo.get(removal)).items():
                faith[name][removal] = scores
        self.say(f"  faithfulness ({', '.join(self.config.removals)}) of {len(todo)} runs: done")
        return faith

    def leave_one_out(self, entry: ClassifierEntry, task: TaskData, targets: list[int], removal: str) -> list[np.ndarray]:
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
            values = leave_one_out(entry.classifier, [e.words for e in task.evaluation], targets, removal, self.config.batch_size, self.progress)
            payload = self.cache.put("leave_one_out", key, strict_json([v.tolist() for v in values]))
        return [np.array([np.nan if v is None else v for v in row], dtype=np.float64) for row in payload]

    def scores(
        self, entry: ClassifierEntry, todo: Runs, examples: Sequence[RationaleExample], targets: list[int], removal: str, loo: list[np.ndarray] | None
    ) -> dict[str, FaithfulnessScores]:
        """Faithfulness of every run in ``todo`` by one removal; the cache misses are computed
        together, sharing identical perturbed rows."""
        keys = {
            name: {"run": key, "removal": removal, "bins": list(self.config.bins), "kendall": loo is not None, "code": source_digest(faithfulness_module)}
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
                bins=self.config.bins,
                batch_size=self.config.batch_size,
                loo=None if loo is None else loo[:needed],
                progress=self.progress,
            )
            for name, scores in computed.items():
                self.cache.put("faithfulness", keys[name], scores.to_arrays())
                results[name] = scores
        return results
