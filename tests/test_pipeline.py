"""expnet.pipeline.ensure_classifier on given examples with an identity, the JSONL split of the
data API and the label check, as the benchmark uses them."""

import json
import random
import shutil
from dataclasses import asdict, replace

import pytest

from expnet import pipeline
from expnet.benchmark.classifiers import provide_classifier
from expnet.benchmark.config import TaskConfig, load_config
from expnet.benchmark.tasks import prepare_task
from expnet.data import jsonl_split, load_examples
from expnet.errors import ExpnetError
from expnet.models.classifier import check_labels
from expnet.models.finetune import FinetuneSettings
from test_benchmark import write_task


class FakeFinetune:
    """Records each call and leaves what ``finetune`` would: a loadable model and metrics.json."""

    def __init__(self, model_dir):
        self.model_dir = model_dir
        self.calls = []

    def __call__(self, backbone, train, dev, label_names, out, settings, seed, device, progress, trust_remote_code):
        self.calls.append({"train": [e.id for e in train], "dev": [e.id for e in dev], "label_names": tuple(label_names)})
        shutil.copytree(self.model_dir, out, dirs_exist_ok=True)
        metrics = {"dev_accuracy": 0.5, "settings": asdict(settings), "seed": seed, "backbone": backbone}
        (out / "metrics.json").write_text(json.dumps(metrics))
        return dict(metrics)


def test_jsonl_split_is_the_seeded_shuffle_with_the_evaluation_part_first(tmp_path):
    examples = load_examples(write_task(tmp_path / "alpha.jsonl", 30, 1))
    evaluation, training = jsonl_split(examples, "alpha", 0.25, seed=3)
    order = list(range(30))
    random.Random("3:alpha:jsonl-split").shuffle(order)
    assert [e.id for e in evaluation] == [examples[i].id for i in order[:8]]
    assert [e.id for e in training] == [examples[i].id for i in order[8:]]
    assert len(jsonl_split(examples[:1], "alpha", 0.25)[0]) == 1  # never an empty evaluation part


def test_ensure_classifier_fine_tunes_on_given_examples_and_reuses_by_identity(tmp_path, tiny_classifier_dir, monkeypatch):
    fake = FakeFinetune(tiny_classifier_dir)
    monkeypatch.setattr(pipeline, "finetune", fake)
    examples = load_examples(write_task(tmp_path / "alpha.jsonl", 12, 1))
    folder, settings = tmp_path / "clf", FinetuneSettings(epochs=1)
    args = ("alpha.jsonl", folder, settings, None, "backbone", 0, "cpu", False)
    _, metrics = pipeline.ensure_classifier(*args, train=examples[4:], dev=examples[:4], identity={"split": "a"})
    assert fake.calls == [{"train": [e.id for e in examples[4:]], "dev": [e.id for e in examples[:4]], "label_names": ("neg", "pos")}]
    assert metrics["cached"] is False and json.loads((folder / "metrics.json").read_text())["split"] == "a"
    _, metrics = pipeline.ensure_classifier(*args, train=examples[4:], dev=examples[:4], identity={"split": "a"})
    assert metrics["cached"] is True and len(fake.calls) == 1
    _, metrics = pipeline.ensure_classifier(*args, train=examples[4:], dev=examples[:4], identity={"split": "b"})
    assert metrics["cached"] is False and len(fake.calls) == 2  # another identity: fine-tuned again
    # Other training examples under the same identity and settings (the samples, then the full data
    # of another --data-dir) once reused the classifier fine-tuned on the first ones.
    _, metrics = pipeline.ensure_classifier(*args, train=examples[5:], dev=examples[:4], identity={"split": "b"})
    assert metrics["cached"] is False and len(fake.calls) == 3
    _, metrics = pipeline.ensure_classifier(*args, train=examples[5:], dev=examples[:4], identity={"split": "b"})
    assert metrics["cached"] is True and len(fake.calls) == 3


def test_benchmark_fine_tunes_a_jsonl_task_on_its_training_part(tmp_path, tiny_classifier_dir, monkeypatch):
    fake = FakeFinetune(tiny_classifier_dir)
    monkeypatch.setattr(pipeline, "finetune", fake)
    task = prepare_task(TaskConfig(write_task(tmp_path / "alpha.jsonl", 40, 1), max_examples=8), load_config(None, quick=True))
    entry = provide_classifier(task, tmp_path / "out", "backbone", 0, device="cpu", progress=False)
    assert fake.calls == [
        {"train": [e.id for e in task.classifier_pool], "dev": [e.id for e in task.evaluation], "label_names": task.label_names}
    ]
    assert entry.metrics["benchmark_split"] == task.train_split and entry.note == "fine-tuned"
    assert provide_classifier(task, tmp_path / "out", "backbone", 0, device="cpu", progress=False).note == "cached"


def test_check_labels_refuses_another_tasks_classes(tmp_path, tiny_classifier):
    [example] = load_examples(write_task(tmp_path / "alpha.jsonl", 1, 1))
    mine = tiny_classifier.label_names
    check_labels(
        tiny_classifier, [replace(example, label_names=tuple(n.upper() for n in mine))]
    )  # case aside, the same
    check_labels(tiny_classifier, [replace(example, label_names=("0", "1")[: len(mine)])])  # unnamed: labels only
    for names in (("hate", "normal", "offensive"), tuple(reversed(mine))):
        with pytest.raises(ExpnetError, match="are not this classifier's"):
            check_labels(tiny_classifier, [replace(example, label_names=names)])


def test_check_labels_refuses_a_label_the_classifier_lacks(tmp_path, tiny_classifier):
    [example] = load_examples(write_task(tmp_path / "alpha.jsonl", 1, 1))
    check_labels(tiny_classifier, [example])
    n = tiny_classifier.num_labels
    with pytest.raises(ExpnetError, match=f"has label {n}, outside this classifier's {n} classes"):
        check_labels(tiny_classifier, [replace(example, label=n)])
