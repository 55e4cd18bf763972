"""The task registry (one ``TaskSpec`` per dataset) and the metric table's helpers."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest

import expnet.data
from expnet.benchmark.config import TaskConfig
from expnet.data import (
    PURPOSES,
    TASK_SPECS,
    DataError,
    RationaleExample,
    TaskSpec,
    default_split,
    describe_tasks,
    get_task_spec,
    label_names,
    load_examples,
    register_task,
    samples_dir,
    task_lines,
    task_name,
    task_splits,
)
from expnet.data import registry as task_registry
from expnet.metrics.faithfulness import REMOVALS
from expnet.metrics.table import FAITHFULNESS, SPEED, family, header, removal_key, removal_keys
from expnet.models.finetune import FinetuneSettings
from expnet.pipeline import finetune_settings

# What each task used before the registry (data/__init__.py's _DEFAULT_SPLITS, in PURPOSES order,
# and benchmark/config.py's TASK_FINETUNE / GENERIC_FINETUNE): the specs must keep every number.
OLD_DEFAULT_SPLITS = {
    "hatexplain": ("train", "validation", "validation", "test"),
    "sst2": ("train", "dev", "train_trees", "dev"),
    "movies": ("train", "val", "train", "test"),
    "cola": ("train", "dev", None, "dev"),
}
OLD_GENERIC = {"epochs": 3, "max_length": 128, "batch_size": 16, "learning_rate": 5e-5}
OLD_FINETUNE = {
    "hatexplain": {"epochs": 2, "max_length": 64, "batch_size": 32, "learning_rate": 5e-5, "max_examples": 4000},
    "sst2": {"epochs": 1, "max_length": 48, "batch_size": 32, "learning_rate": 5e-5, "max_examples": 8000},
    "movies": {"epochs": 2, "max_length": 256, "batch_size": 16, "learning_rate": 5e-5, "max_examples": 1600},
    "cola": OLD_GENERIC,
}


def test_built_in_tasks_in_order():
    assert expnet.data.TASKS == ("hatexplain", "sst2", "movies", "cola")
    assert isinstance(expnet.data.TASKS, tuple)
    assert describe_tasks() == "hatexplain, sst2, movies, cola or a JSONL file"
    assert describe_tasks("explainer_train") == "hatexplain, sst2, movies or a JSONL file"
    assert [line.split(":")[0] for line in task_lines()] == list(TASK_SPECS)


@pytest.mark.parametrize("task", OLD_DEFAULT_SPLITS)
def test_default_splits_unchanged(task):
    for purpose, old in zip(PURPOSES, OLD_DEFAULT_SPLITS[task], strict=True):
        if old is None:
            with pytest.raises(DataError, match="no public word rationales; train the explainer on hatexplain, sst2, movies or a JSONL file"):
                default_split(task, purpose)
        else:
            assert default_split(task, purpose) == old


@pytest.mark.parametrize("task", OLD_FINETUNE)
def test_finetune_defaults_unchanged(task):
    assert dict(get_task_spec(task).finetune) == OLD_FINETUNE[task]
    assert finetune_settings(task) == FinetuneSettings(**OLD_FINETUNE[task])
    # The benchmark fine-tunes with the same settings, overrides on top.
    assert TaskConfig(task).finetune_settings() == finetune_settings(task)
    assert TaskConfig(task, finetune={"epochs": 5}).finetune_settings() == finetune_settings(task, {"epochs": 5})


def test_jsonl_finetune_defaults_are_generic(tmp_path):
    path = str(tmp_path / "mine.jsonl")
    assert {k: v for k, v in asdict(finetune_settings(path)).items() if k in OLD_GENERIC} == OLD_GENERIC
    assert TaskConfig(path).finetune_settings() == finetune_settings(path)


@pytest.mark.parametrize("task", list(TASK_SPECS))
def test_every_spec_split_is_shipped(task, recwarn):
    """Each split loads from the shipped samples (unique ids); exactly the rationale splits carry rationales."""
    spec = get_task_spec(task)
    assert set(spec.purposes.values()) <= set(spec.splits)
    for split in spec.splits:
        examples = load_examples(task, split, data_dir=samples_dir())
        assert examples, split
        assert all(ex.label_names == spec.label_names for ex in examples)
        assert len({ex.id for ex in examples}) == len(examples), split
        assert any(ex.has_rationale for ex in examples) == (split in spec.rationale_splits), split


# --- registering a task ----------------------------------------------------------------------


def _load_toy(root: Path, split: str) -> list[RationaleExample]:
    rows = json.loads((root / f"{split}.json").read_text())
    return [RationaleExample(f"{split}-{i}", "toy", words, label, ("no", "yes"), [mask]) for i, (words, label, mask) in enumerate(rows)]


@pytest.fixture
def toy_task():
    spec = register_task(TaskSpec(
        name="toy",
        description="a two-split task made in a test",
        load=_load_toy,
        label_names=("no", "yes"),
        splits=("fit", "held"),
        rationale_splits=("fit", "held"),
        purposes={"classifier_train": "fit", "classifier_dev": "held", "explainer_train": "fit", "evaluation": "held"},
        finetune={"epochs": 7},
    ))
    yield spec
    del task_registry._SPECS["toy"]  # the registry has no unregister: tests alone need one


def test_registering_a_task_in_one_place(toy_task, tmp_path):
    (tmp_path / "toy").mkdir()
    (tmp_path / "toy" / "fit.json").write_text(json.dumps([[["so", "good"], 1, [0, 1]]]))
    (tmp_path / "toy" / "held.json").write_text(json.dumps([[["bad"], 0, [1]], [["  ", "fine"], 1, [0, 1]]]))
    assert expnet.data.TASKS[-1] == "toy"
    assert describe_tasks() == "hatexplain, sst2, movies, cola, toy or a JSONL file"
    assert "toy: a two-split task made in a test" in task_lines()
    assert (task_name("toy"), task_splits("toy"), label_names("toy")) == ("toy", ("fit", "held"), ("no", "yes"))
    assert [ex.words for ex in load_examples("toy", data_dir=tmp_path)] == [["bad"], ["fine"]]  # blanks dropped
    assert [ex.id for ex in load_examples("toy", data_dir=tmp_path, purpose="explainer_train")] == ["fit-0"]
    assert finetune_settings("toy").epochs == 7
    with pytest.raises(DataError, match="toy has no split 'test'; use one of fit, held"):
        load_examples("toy", "test", data_dir=tmp_path)
    with pytest.raises(DataError, match=r"unknown task 'imdb'; use one of hatexplain, sst2, movies, cola, toy or a JSONL file"):
        load_examples("imdb")
    with pytest.raises(ValueError, match="'toy' is registered already"):
        register_task(toy_task)


def test_an_unregistered_name_is_unknown():
    assert "toy" not in expnet.data.TASKS
    with pytest.raises(DataError, match="unknown task 'toy'"):
        get_task_spec("toy")


@pytest.mark.parametrize(("change", "message"), [
    ({"name": "my.jsonl"}, "a plain word"),
    ({"unavailable": {"evaluation": "no"}}, "once, in purposes or in unavailable"),
    ({"purposes": {"classifier_train": "a", "classifier_dev": "a", "explainer_train": "a"}}, "once, in purposes"),
    ({"rationale_splits": ("c",)}, r"splits \['c'\] are not among"),
    ({"rationale_splits": ("b",)}, "explainer_train split must carry rationales"),
])
def test_spec_mistakes_fail_at_import(change, message):
    fields = {
        "name": "t", "description": "d", "load": _load_toy, "label_names": ("x",), "splits": ("a", "b"),
        "rationale_splits": ("a",),
        "purposes": {"classifier_train": "a", "classifier_dev": "a", "explainer_train": "a", "evaluation": "b"},
    }
    with pytest.raises(ValueError, match=message):
        TaskSpec(**{**fields, **change})


def test_spec_is_read_only():
    with pytest.raises(TypeError):
        get_task_spec("sst2").purposes["evaluation"] = "train"
    with pytest.raises(TypeError):
        TASK_SPECS["sst2"] = get_task_spec("movies")


# --- the metric table's helpers --------------------------------------------------------------


def test_metric_table_helpers():
    assert removal_keys(("mask",)) == ("comprehensiveness_mask", "sufficiency_mask", "kendall_mask")
    assert len(removal_keys(REMOVALS)) == 3 * len(REMOVALS)
    assert removal_key("kendall_tau", "delete") == "kendall_delete"
    with pytest.raises(KeyError, match="not measured per removal"):
        removal_key("auroc", "mask")
    assert [m.key for m in family(FAITHFULNESS)] == ["comprehensiveness", "sufficiency", "kendall_tau"]
    assert [m.key for m in family(SPEED)] == ["examples_per_second", "expnet_speedup", "seconds"]
    with pytest.raises(KeyError, match="no metric family"):
        family("speeed")
    assert header("auroc") == "AUROC"
