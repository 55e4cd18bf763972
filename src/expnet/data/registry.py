"""The registered tasks: each loader's ``TaskSpec``, by name, in the order lists and help texts show.

The built-in loaders are registered below, in ``BUILT_IN`` order; ``register_task`` adds another
(a plugin, a test). Everything that names tasks (``expnet.data.TASKS``, CLI help, error texts,
default splits, fine-tuning defaults) reads this registry, so a dataset is added in one place.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from types import MappingProxyType

from . import cola, hatexplain, movies, sst2
from .errors import DataError
from .spec import GENERIC_FINETUNE, PURPOSES, TaskSpec

_SPECS: dict[str, TaskSpec] = {}
TASK_SPECS: Mapping[str, TaskSpec] = MappingProxyType(_SPECS)  # a live, read-only view
JSONL_CHOICE = "a JSONL file"
# How an error says what a purpose needs, e.g. "... ; train the explainer on hatexplain, ...".
_PURPOSE_PHRASES = {
    "classifier_train": "train the classifier on",
    "classifier_dev": "validate the classifier on",
    "explainer_train": "train the explainer on",
    "evaluation": "evaluate on",
}


def register_task(spec: TaskSpec) -> TaskSpec:
    """Add ``spec`` after the tasks registered so far; a name is registered once."""
    if spec.name in _SPECS:
        raise ValueError(f"task {spec.name!r} is registered already (by {_SPECS[spec.name].load.__module__})")
    _SPECS[spec.name] = spec
    return spec


def task_names() -> tuple[str, ...]:
    """The registered task names, in registration order (``expnet.data.TASKS``)."""
    return tuple(_SPECS)


def or_list(items: Iterable[str]) -> str:
    """``a, b, c or d``: the one way lists of choices are written in help and error texts."""
    items = list(items)
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} or {items[-1]}"


def describe_tasks(purpose: str | None = None) -> str:
    """The choices for a task argument, e.g. ``hatexplain, sst2, movies, cola or a JSONL file``;
    with ``purpose``, only the tasks that can serve it."""
    names = [name for name, spec in _SPECS.items() if purpose is None or purpose in spec.purposes]
    return or_list([*names, JSONL_CHOICE])


def task_lines() -> list[str]:
    """One ``name: description`` line per task, for a help text's epilog."""
    return [f"{name}: {spec.description}" for name, spec in _SPECS.items()]


def data_folders() -> str:
    """What a data directory holds, for error texts: ``hatexplain/, sst2/, movies/ or cola/``."""
    return or_list(f"{name}/" for name in _SPECS)


def get_task_spec(name: str | Path) -> TaskSpec:
    """The registered spec called ``name`` (``DataError`` listing the choices otherwise)."""
    spec = _SPECS.get(str(name))
    if spec is None:
        raise DataError(f"unknown task {str(name)!r}; use one of {describe_tasks()}")
    return spec


def split_for(spec: TaskSpec, purpose: str) -> str:
    """The split ``spec`` uses for ``purpose``, or a ``DataError`` saying why none can and what can."""
    if purpose not in PURPOSES:
        raise DataError(f"unknown purpose {purpose!r}; use one of {', '.join(PURPOSES)}")
    if purpose in spec.purposes:
        return spec.purposes[purpose]
    raise DataError(f"{spec.unavailable[purpose]}; {_PURPOSE_PHRASES[purpose]} {describe_tasks(purpose)}")


def finetune_defaults(task: str | Path) -> dict[str, int | float]:
    """``FinetuneSettings`` fields the benchmark fine-tunes ``task`` with; anything that is not a
    registered task (a JSONL file) gets ``GENERIC_FINETUNE``."""
    spec = _SPECS.get(str(task))
    return dict(spec.finetune if spec is not None else GENERIC_FINETUNE)


# The order of TASKS and of every list of tasks shown to users.
BUILT_IN = (hatexplain, sst2, movies, cola)
for _module in BUILT_IN:
    register_task(_module.SPEC)
