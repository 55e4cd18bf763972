"""Rationale datasets: one entry point, ``load_examples``, for the built-in tasks and JSONL files.

A data directory holds one folder a task, laid out like the upstream releases (see
``expnet/samples/README.md``). Without one, the small samples shipped inside the package are
used, so every command works on a fresh install; point ``--data-dir`` or ``EXPNET_DATA`` at the
full data for real numbers.

Each task has a default split for each purpose (``PURPOSES``), so callers say what the data is
for rather than knowing every dataset's split names. A task is declared once, as the ``SPEC``
(a ``TaskSpec``) at the end of its loader module, and registered in ``registry.py``: names, label
names, splits, default splits (or why a task cannot serve a purpose), fine-tuning defaults and the
help texts all come from there. ``expnet.data.TASKS`` is always the registered names.
"""

from __future__ import annotations

import math
import os
from dataclasses import replace
from pathlib import Path

from . import cola, hatexplain, jsonl, movies, sst2
from .errors import DataError
from .records import GoldRule, RationaleExample
from .registry import (
    TASK_SPECS,
    data_folders,
    describe_tasks,
    finetune_defaults,
    get_task_spec,
    register_task,
    split_for,
    task_lines,
    task_names,
)
from .spec import GENERIC_FINETUNE, PURPOSES, TaskSpec
from .splits import JSONL_EVAL_FRACTION, jsonl_split

__all__ = [
    "GENERIC_FINETUNE",
    "PURPOSES",
    "TASKS",
    "TASK_SPECS",
    "DataError",
    "RationaleExample",
    "TaskSpec",
    "cola",
    "default_split",
    "describe_tasks",
    "finetune_defaults",
    "get_task_spec",
    "hatexplain",
    "JSONL_EVAL_FRACTION",
    "jsonl_split",
    "label_names",
    "load_examples",
    "movies",
    "rationale_rate",
    "register_task",
    "resolve_data_dir",
    "samples_dir",
    "sst2",
    "task_lines",
    "task_name",
    "task_splits",
]

ENV_VAR = "EXPNET_DATA"
# Read through __getattr__ below, so tasks registered after import (plugins, tests) are in it.
TASKS: tuple[str, ...]


def __getattr__(name: str) -> tuple[str, ...]:
    if name == "TASKS":
        return task_names()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def samples_dir() -> Path:
    """The small data samples shipped inside the package (``expnet/samples``)."""
    return Path(__file__).resolve().parent.parent / "samples"


def resolve_data_dir(data_dir: str | Path | None = None) -> Path:
    """The argument, else ``$EXPNET_DATA``, else the shipped samples; it must be a directory."""
    if data_dir is not None and str(data_dir) != "":
        path, source = Path(data_dir).expanduser(), "--data-dir"
    elif os.environ.get(ENV_VAR):
        path, source = Path(os.environ[ENV_VAR]).expanduser(), ENV_VAR
    else:
        path, source = samples_dir(), "the shipped samples"
    if path.exists() and not path.is_dir():
        raise DataError(f"{path} (from {source}) is a file; give the folder holding {data_folders()}")
    if not path.is_dir():
        raise DataError(
            f"{path}: data directory not found (from {source}); pass --data-dir or set {ENV_VAR} "
            f"to a folder holding {data_folders()}"
        )
    return path


def _is_jsonl(task: str | Path) -> bool:
    text = str(task)
    return text not in TASK_SPECS and (text.endswith(".jsonl") or Path(text).is_file())


def _check_task(task: str | Path) -> str:
    if _is_jsonl(task):
        return str(task)
    if task not in TASK_SPECS and Path(task).is_dir():
        raise DataError(
            f"{task} is a folder, not a task or a JSONL file; give a .jsonl file, or a task name "
            f"({', '.join(TASK_SPECS)}) with --data-dir {task} if it holds datasets"
        )
    return get_task_spec(task).name


def task_name(task: str | Path) -> str:
    """The task's name in reports: itself, or the file stem for a JSONL path."""
    task = _check_task(task)
    return Path(task).stem if _is_jsonl(task) else task


def task_splits(task: str | Path) -> tuple[str, ...]:
    """The split names ``load_examples`` accepts for a task (none for a JSONL file)."""
    task = _check_task(task)
    return () if _is_jsonl(task) else get_task_spec(task).splits


def label_names(task: str | Path, data_dir: str | Path | None = None) -> tuple[str, ...]:
    """Class names, index = label id. A JSONL file is read to find them; built-ins are fixed."""
    task = _check_task(task)
    if _is_jsonl(task):
        return jsonl.label_names(task)
    return get_task_spec(task).label_names


def default_split(task: str, purpose: str) -> str:
    """The split a registered task uses for ``purpose`` (its spec's ``purposes``)."""
    return split_for(get_task_spec(task), purpose)


def load_examples(
    task: str | Path,
    split: str | None = None,
    data_dir: str | Path | None = None,
    purpose: str = "evaluation",
) -> list[RationaleExample]:
    """Load a task's split; ``split=None`` takes the default split for ``purpose``.

    ``task`` is one of ``TASKS`` or a path to a JSONL file (which every purpose reads whole;
    ``jsonl_split`` cuts it into evaluation and training parts).
    Blank words are dropped with their mask entries, so every word is a non-empty string.
    """
    task = _check_task(task)
    if purpose not in PURPOSES:
        raise DataError(f"unknown purpose {purpose!r}; use one of {', '.join(PURPOSES)}")
    if _is_jsonl(task):
        if split is not None:
            raise DataError(f"{task}: a JSONL file has no splits (got {split!r}); leave the split out")
        examples = jsonl.load(task)
    else:
        spec = get_task_spec(task)
        if split is None:
            split = split_for(spec, purpose)
        if split not in spec.splits:
            raise DataError(f"{task} has no split {split!r}; use one of {', '.join(spec.splits)}")
        examples = spec.load(resolve_data_dir(data_dir) / task, split)
    cleaned = (_drop_blank_words(ex) for ex in examples)
    return [ex for ex in cleaned if ex.words]  # a post of only blanks gives a model nothing


def _drop_blank_words(ex: RationaleExample) -> RationaleExample:
    keep = [i for i, w in enumerate(ex.words) if w.strip()]
    if len(keep) == len(ex.words):
        return ex
    return replace(
        ex,
        words=[ex.words[i] for i in keep],
        rationales=[[m[i] for i in keep] for m in ex.rationales],
    )


def rationale_rate(examples: list[RationaleExample], rule: GoldRule = "majority") -> float:
    """Mean fraction of gold words per annotated example (NaN when none is annotated)."""
    rates = [float(mask.mean()) for ex in examples if (mask := ex.gold_mask(rule)) is not None]
    return sum(rates) / len(rates) if rates else math.nan
