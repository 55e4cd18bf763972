"""Task preparation: each task's sampled evaluation examples and its ExpNet training data.

A built-in task reads its default splits (``expnet.data.default_split``): evaluation for the
evaluation examples, explainer_train for ExpNet's rationales. A JSONL file is anything
``expnet.data`` reads as one (with or without the ``.jsonl`` suffix); having no splits, it is cut
once, with the seed (``expnet.data.jsonl_split``), into an evaluation part (``eval_fraction``)
and a training part that serves both the classifier and ExpNet. The annotated evaluation
examples are sampled with the seed (``max_examples``); ExpNet's rationales likewise
(``expnet_train_max_examples``), of which the first ``validation_fraction`` is held back to
select the ExpNet variant.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

from expnet import data
from expnet.benchmark.cache import file_digest
from expnet.benchmark.config import BenchmarkConfig, TaskConfig
from expnet.data import default_split, jsonl_split, load_examples, task_name
from expnet.data.records import RationaleExample
from expnet.errors import ExpnetError


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


def seeded_order(n: int, salt: str) -> list[int]:
    order = list(range(n))
    random.Random(salt).shuffle(order)
    return order


def sample(examples: list, n: int | None, salt: str) -> list:
    """A seeded random draw of ``n`` examples (all of them, shuffled, when n is None)."""
    order = seeded_order(len(examples), salt)
    return [examples[i] for i in (order if n is None else order[:n])]


def is_jsonl(task: TaskConfig) -> bool:
    """Whether ``expnet.data`` reads the task as a JSONL file (``task_name`` refuses unknown names).
    ``data.TASKS`` is read here, not imported: tasks can be registered after import."""
    task_name(task.name)
    return task.name not in data.TASKS


def prepare_task(task: TaskConfig, config: BenchmarkConfig, data_dir: str | Path | None = None) -> TaskData:
    name = task_name(task.name)
    seed = config.seed
    jsonl = is_jsonl(task)
    pool: list[RationaleExample] = []
    if jsonl:
        evaluation_pool, pool = jsonl_split(load_examples(task.name, None, data_dir, purpose="evaluation"), name, task.eval_fraction, seed)
        train_pool = pool
        split = f"jsonl:{file_digest([task.name])[:12]}:eval={task.eval_fraction}:seed={seed}"
        eval_split, train_split = f"{split}:evaluation", f"{split}:train"
    else:
        evaluation_pool = load_examples(task.name, None, data_dir, purpose="evaluation")
        train_pool = load_examples(task.name, None, data_dir, purpose="explainer_train")
        eval_split = default_split(name, "evaluation")
        train_split = default_split(name, "explainer_train")
    annotated = [e for e in evaluation_pool if e.has_rationale]
    if not annotated:
        raise ExpnetError(f"{name}: no evaluation example has a rationale; the benchmark needs annotated data")
    evaluation = sample(annotated, task.max_examples, f"{seed}:{name}:evaluation")
    rationales = sample([e for e in train_pool if e.has_rationale], task.expnet_train_max_examples, f"{seed}:{name}:explainer-train")
    if len(rationales) < 4:
        raise ExpnetError(f"{name}: only {len(rationales)} annotated training examples; ExpNet needs more rationale data")
    n_val = max(1, round(config.validation_fraction * len(rationales)))
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


def unlabelled_texts(task: TaskData, data_dir: str | Path | None = None) -> list[list[str]]:
    """The texts a user of ``task`` has without rationales: its classifier-training texts (a JSONL
    file's training part). Their labels and any rationales are never read."""
    pool = task.classifier_pool if task.jsonl else load_examples(task.config.name, None, data_dir, purpose="classifier_train")
    return [list(e.words) for e in pool if e.words]
