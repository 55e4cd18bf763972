"""Classifier provisioning: each task's classifier, given, reused or fine-tuned once into
``OUT/classifiers/<task>``.

A given classifier (``[tasks.X] classifier``) is loaded as it is. A built-in task's classifier is
``expnet.pipeline.ensure_classifier``'s. A JSONL task's is fine-tuned on the file's training part
only (the evaluation part is the benchmark's test data), so its ``metrics.json`` also records that
split, and another split is another fine-tune. Every evaluation label must be one of the
classifier's classes (``check_labels``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from expnet.benchmark.cache import classifier_fingerprint
from expnet.benchmark.tasks import TaskData
from expnet.errors import ExpnetError
from expnet.models.classifier import Classifier, check_labels, read_metrics
from expnet.pipeline import ensure_classifier


@dataclass
class ClassifierEntry:
    classifier: Classifier
    fingerprint: dict
    metrics: dict
    folder: str

    @property
    def note(self) -> str:
        """How the classifier came to be, for the progress lines."""
        return "given" if self.metrics.get("given") else "cached" if self.metrics.get("cached") else "fine-tuned"


def provide_classifier(
    task: TaskData,
    out: Path,
    backbone: str | None,
    seed: int,
    data_dir=None,
    device: str | None = None,
    progress: bool = True,
) -> ClassifierEntry:
    settings = task.config.finetune_settings()
    folder = out / "classifiers" / task.name
    if task.config.classifier:
        folder = Path(task.config.classifier)
        classifier = Classifier.load(folder, device=device)
        metrics = {**read_metrics(folder), "cached": True, "given": True} if folder.is_dir() else {"cached": True, "given": True}
    elif task.jsonl:
        # The file's training part, validated on its evaluation part (a JSONL file's default
        # examples are the whole file, for every purpose).
        classifier, metrics = ensure_classifier(
            task.config.name, folder, settings, data_dir, backbone, seed, device, progress,
            train=task.classifier_pool, dev=task.evaluation, identity={"benchmark_split": task.train_split},
        )
    else:
        classifier, metrics = ensure_classifier(task.config.name, folder, settings, data_dir, backbone, seed, device, progress)
    try:
        check_labels(classifier, task.evaluation)
    except ExpnetError as error:
        raise ExpnetError(f"{task.name}: {error}") from None
    return ClassifierEntry(classifier, classifier_fingerprint(folder), metrics, str(folder))
