"""``TaskSpec``: everything the library knows about one built-in dataset, declared once by its loader.

A loader module (``hatexplain.py``, ``sst2.py`` ...) ends with one ``SPEC = loader_spec(__name__, ...)``;
``registry.py`` collects the specs, and task lists, help strings, error texts, default splits and
fine-tuning defaults are all read from them.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from .records import RationaleExample

# What a split is used for; callers ask for a purpose rather than knowing each dataset's split names.
PURPOSES = ("classifier_train", "classifier_dev", "explainer_train", "evaluation")
# FinetuneSettings fields for a task that names none (JSONL files, and built-ins without tuned
# settings). Plain values, not FinetuneSettings, so the data layer does not import torch.
GENERIC_FINETUNE: Mapping[str, int | float] = MappingProxyType(
    {"epochs": 3, "max_length": 128, "batch_size": 16, "learning_rate": 5e-5}
)

Loader = Callable[[Path, str], list[RationaleExample]]


@dataclass(frozen=True)
class TaskSpec:
    """One dataset: how to load it, its labels and splits, and which split serves each purpose.

    ``purposes`` maps a purpose to its default split; a purpose no split can serve goes in
    ``unavailable`` with the reason instead (every purpose is in exactly one of the two).
    ``finetune`` holds ``FinetuneSettings`` fields the benchmark fine-tunes this task's classifier with.
    """

    name: str
    description: str  # one line, for help texts
    load: Loader  # (the task's folder in the data directory, split) -> examples
    label_names: tuple[str, ...]
    splits: tuple[str, ...]
    rationale_splits: tuple[str, ...]  # the splits whose examples carry word rationales
    purposes: Mapping[str, str]
    unavailable: Mapping[str, str] = field(default_factory=dict)
    finetune: Mapping[str, int | float] = field(default_factory=lambda: GENERIC_FINETUNE)

    def __post_init__(self) -> None:
        # Mistakes here are the library's, not the user's: fail when the module is imported.
        where = f"TaskSpec {self.name!r}"
        if not self.name or self.name.endswith(".jsonl") or "/" in self.name:
            raise ValueError(f"{where}: a task name is a plain word (JSONL paths are tasks of their own)")
        if set(self.purposes) | set(self.unavailable) != set(PURPOSES) or set(self.purposes) & set(self.unavailable):
            raise ValueError(f"{where}: give each of {', '.join(PURPOSES)} once, in purposes or in unavailable")
        unknown = [s for s in (*self.purposes.values(), *self.rationale_splits) if s not in self.splits]
        if unknown:
            raise ValueError(f"{where}: splits {unknown} are not among its splits {self.splits}")
        explainer_train = self.purposes.get("explainer_train")
        if explainer_train is not None and explainer_train not in self.rationale_splits:
            raise ValueError(f"{where}: the explainer_train split must carry rationales")
        # Read-only views, so a spec cannot be changed behind the registry's back.
        object.__setattr__(self, "purposes", MappingProxyType(dict(self.purposes)))
        object.__setattr__(self, "unavailable", MappingProxyType(dict(self.unavailable)))
        object.__setattr__(self, "finetune", MappingProxyType(dict(self.finetune)))


def loader_spec(module_name: str, **fields) -> TaskSpec:
    """The ``TaskSpec`` of the loader module ``module_name`` (its ``__name__``): ``load``,
    ``label_names``, ``splits`` and ``rationale_splits`` are the module's ``load``, ``LABEL_NAMES``,
    ``SPLITS`` and ``RATIONALE_SPLITS``, which every built-in loader defines (and uses itself);
    ``fields`` give the rest."""
    module = sys.modules[module_name]
    return TaskSpec(
        load=module.load,
        label_names=module.LABEL_NAMES,
        splits=module.SPLITS,
        rationale_splits=module.RATIONALE_SPLITS,
        **fields,
    )
