"""Facts about the full datasets, checked only where the shared data folder exists."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from expnet.data import load_examples, rationale_rate

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not DATA.is_dir(), reason=f"full data not found at {DATA}"),
]


def test_sst2_dev_all_872_matched_to_trees():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an unmatched sentence warns: fail on it
        dev = load_examples("sst2", "dev", data_dir=DATA)
    assert len(dev) == 872
    assert all(ex.has_rationale for ex in dev)
    # the README's fact: each matched tree's root agrees with the GLUE label
    dev_trees = {" ".join(ex.words): ex.label for ex in load_examples("sst2", "dev_trees", data_dir=DATA)}
    assert all(dev_trees[" ".join(ex.words)] == ex.label for ex in dev)
    assert 0.40 < rationale_rate(dev) < 0.50  # 44.5% with the >= 0.5 rule


def test_sst2_tree_and_glue_counts():
    assert len(load_examples("sst2", "train", data_dir=DATA)) == 67349
    assert len(load_examples("sst2", "train_trees", data_dir=DATA)) == 6920  # non-neutral roots


def test_hatexplain_counts_and_rationales():
    test = load_examples("hatexplain", "test", data_dir=DATA)
    val = load_examples("hatexplain", "validation", data_dir=DATA)
    assert (len(test), len(val)) == (1924, 1922)  # no undecided posts in these files
    assert sum(ex.has_rationale for ex in test) == 1142
    assert sum(ex.has_rationale for ex in val) == 1141
    assert 0.30 < rationale_rate(test, "majority") < 0.38  # README: about 34%
    assert len(load_examples("hatexplain", "train", data_dir=DATA)) == 15383


def test_movies_split_sizes():
    sizes = [len(load_examples("movies", s, data_dir=DATA)) for s in ("train", "val", "test")]
    assert sizes == [1600, 200, 199]
    test = load_examples("movies", "test", data_dir=DATA)
    assert all(ex.has_rationale for ex in test)


def test_cola_sizes():
    assert len(load_examples("cola", "train", data_dir=DATA)) == 8551
    assert len(load_examples("cola", "dev", data_dir=DATA)) == 527
