"""Reusable steps of multi-task workflows (the demo, the benchmark): fine-tuning settings, cached classifiers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from expnet.data import RationaleExample, finetune_defaults, load_examples
from expnet.io import atomic_write_json, json_digest
from expnet.models.classifier import Classifier, default_backbone, read_metrics
from expnet.models.finetune import FinetuneSettings, finetune


def finetune_settings(task: str | Path, overrides: dict | None = None) -> FinetuneSettings:
    """The task's fine-tuning defaults (its ``TaskSpec.finetune``; generic ones for a JSONL file)
    with ``overrides`` (``FinetuneSettings`` fields) on top."""
    return FinetuneSettings(**{**finetune_defaults(task), **(overrides or {})})


def ensure_classifier(
    task: str,
    folder: str | Path,
    settings: FinetuneSettings,
    data_dir=None,
    backbone: str | None = None,
    seed: int = 0,
    device: str | None = None,
    progress: bool = True,
    trust_remote_code: bool = False,
    train: Sequence[RationaleExample] | None = None,
    dev: Sequence[RationaleExample] | None = None,
    identity: dict | None = None,
) -> tuple[Classifier, dict]:
    """Load the classifier in ``folder`` if it was made with these settings, else fine-tune it on
    ``train``, validated on ``dev`` (by default the task's classifier_train and classifier_dev
    splits). ``identity`` says what else the classifier was made from (e.g. which part of a
    file ``train`` is): it is saved in its ``metrics.json``, and a classifier made from anything
    else is fine-tuned again."""
    backbone = backbone or default_backbone()
    metrics = read_metrics(folder)
    train = load_examples(task, None, data_dir, purpose="classifier_train") if train is None else train
    # The training examples themselves: the shipped samples and the full data (another
    # --data-dir) are the same task and settings, and must not share a classifier.
    training_data = json_digest([[e.id, e.label] for e in train])
    wanted = {"settings": asdict(settings), "seed": seed, "backbone": backbone, "training_data": training_data, **(identity or {})}
    if not metrics or any(metrics.get(key) != value for key, value in wanted.items()):
        dev = load_examples(task, None, data_dir, purpose="classifier_dev") if dev is None else dev
        names = train[0].label_names if train else ()  # no examples: finetune says so
        metrics = finetune(backbone, train, dev, names, folder, settings, seed, device, progress, trust_remote_code)
        metrics.update({"training_data": training_data, **(identity or {})})
        atomic_write_json(Path(folder) / "metrics.json", metrics)
        metrics["cached"] = False
    else:
        metrics["cached"] = True
    return Classifier.load(folder, device=device, trust_remote_code=trust_remote_code), metrics
