"""Classifier provisioning: each task's classifier, given, reused or fine-tuned once into
``OUT/classifiers/<task>``.

A given classifier (``[tasks.X] classifier``) is loaded as it is. A built-in task's classifier is
``expnet.pipeline.ensure_classifier``'s. A JSONL task's is fine-tuned on the file's training part
only (the evaluation part is the benchmark's test data), so its ``metrics.json`` also records that
split, and another split is another fine-tune. Every evaluation label must be one of the
classifier's classes (``Classifier.label_id`` checks it).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from expnet.benchmark.cache import classifier_fingerprint
from expnet.benchmark.tasks import TaskData
from expnet.errors import ExpnetError
from expnet.io import atomic_write_json
from expnet.models.classifier import Classifier, default_backbone, read_metrics
from expnet.models.finetune import FinetuneSettings, finetune
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
        classifier, metrics = _jsonl_classifier(task, folder, settings, backbone, seed, device, progress)
    else:
        classifier, metrics = ensure_classifier(task.config.name, folder, settings, data_dir, backbone, seed, device, progress)
    for example in task.evaluation:
        try:
            classifier.label_id(example.label)
        except ExpnetError as error:
            raise ExpnetError(f"{task.name}: example {example.id}: {error}; give a classifier fine-tuned on this task") from None
    return ClassifierEntry(classifier, classifier_fingerprint(folder), metrics, str(folder))


def _jsonl_classifier(
    task: TaskData, folder: Path, settings: FinetuneSettings, backbone: str | None, seed: int, device: str | None, progress: bool
) -> tuple[Classifier, dict]:
    """``ensure_classifier`` on the JSONL file's training part, validated on its evaluation part.
    (``ensure_classifier`` reads a JSONL file whole, for every purpose.)"""
    backbone = backbone or default_backbone()
    wanted = {"settings": asdict(settings), "seed": seed, "backbone": backbone, "benchmark_split": task.train_split}
    metrics = read_metrics(folder)
    if metrics and all(metrics.get(k) == v for k, v in wanted.items()):
        metrics["cached"] = True
    else:
        metrics = finetune(backbone, task.classifier_pool, task.evaluation, task.label_names, folder, settings, seed, device, progress)
        metrics["benchmark_split"] = task.train_split
        atomic_write_json(folder / "metrics.json", metrics)
        metrics["cached"] = False
    return Classifier.load(folder, device=device), metrics
