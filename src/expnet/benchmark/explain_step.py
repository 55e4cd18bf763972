"""Cached classifier passes: the plain forward pass (predictions, accuracy, speed) and explainer
runs, each stored in the result cache under a key saying everything it depends on.

An explainer run is stored as an ``ExplanationRun`` (``expnet.explanation_run``): explanations
with their words and label names, the classifier, the explainer's settings, seed and version, and
the seconds it took.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from expnet.benchmark.cache import ResultCache, digest, examples_digest
from expnet.benchmark.classifiers import ClassifierEntry
from expnet.benchmark.tasks import TaskData
from expnet.data.records import RationaleExample
from expnet.evaluation import ExplainerRun, forward_pass, run_explainer
from expnet.explainers.base import Explainer
from expnet.explanation_run import FORMAT, ExplanationRun


class ExplainStep:
    def __init__(self, cache: ResultCache, batch_size: int, progress: bool) -> None:
        self.cache = cache
        self.batch_size = batch_size
        self.progress = progress

    def forward(self, entry: ClassifierEntry, task: TaskData) -> dict:
        """Predicted classes of ``task``'s evaluation examples, the accuracy and examples/s."""
        # "batching" keeps the timings of the earlier input-order batching out of new runs.
        key = {
            "classifier": entry.fingerprint,
            "task": task.name,
            "split": task.eval_split,
            "examples": examples_digest(task.evaluation),
            "batch_size": self.batch_size,
            "batching": "length_buckets",
        }
        payload = self.cache.get("forward", key)
        if payload is None:
            predictions, speed = forward_pass(entry.classifier, [e.words for e in task.evaluation], self.batch_size)
            labels = np.array([e.label for e in task.evaluation])
            payload = self.cache.put(
                "forward",
                key,
                {"predictions": [int(p) for p in predictions], "examples_per_second": speed, "accuracy": float((predictions == labels).mean())},
            )
        return payload

    def explain(
        self,
        entry: ClassifierEntry,
        explainer: Explainer,
        identity: dict,
        task: TaskData,
        split: str,
        examples: Sequence[RationaleExample],
        label: str,
    ) -> tuple[ExplainerRun, str, str]:
        """``explainer``'s run on ``examples`` named ``label``, its cache key's digest (what the
        faithfulness of the run is keyed by) and whether it was "cached" or "computed".
        ``identity`` says what the explainer is (name, settings, code or weights)."""
        key = {
            "classifier": entry.fingerprint,
            "explainer": identity,
            "task": task.name,
            "split": split,
            "examples": examples_digest(examples),
            "n": len(examples),
            "format": FORMAT,
        }
        payload = self.cache.get("explanations", key)
        status = "cached"
        if payload is None:
            run = run_explainer(entry.classifier, explainer, [e.words for e in examples], progress=self.progress)
            saved = ExplanationRun.of(explainer, run.explanations, entry.folder, run.seconds)
            payload = self.cache.put("explanations", key, saved.to_dict())
            status = "computed"
        # Read back from the stored form even when just computed, so that a rerun from the cache
        # sees exactly the same values (missing scores as NaN).
        stored = ExplanationRun.from_dict(payload)
        return ExplainerRun(label, stored.explanations, stored.seconds or 0.0), digest(key), status
