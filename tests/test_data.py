"""Fast tests of the data layer: parsers and loaders on hand-made files, and the shipped samples."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest

from expnet.data import (
    PURPOSES,
    TASKS,
    DataError,
    RationaleExample,
    cola,
    get_task_spec,
    label_names,
    load_examples,
    ptb,
    rationale_rate,
    resolve_data_dir,
    samples_dir,
    task_name,
)

# --- PTB parser and SST rationales -------------------------------------------------------------

# Hand-computed: the root (strength 1) is beaten by "(0 ...)" below it, so we descend. "the" is
# neutral (0). "(2 (3 good) (0 ...))" is neutral with strong descendants: descend; "good" is a
# word (0.5); "(0 (2 bad) (2 plot))" has strength 2 > 0 below it, so "bad plot" get 1.0.
# "(4 (4 great) (2 fun))" ties with its child "great" (2 == 2), so it does not explain: descend,
# "great" 1.0, "fun" 0.
TREE = "(1 (2 the) (2 (3 good) (0 (2 bad) (2 plot))) (4 (4 great) (2 fun)))"


def test_parse_tree_labels_and_spans():
    root = ptb.parse_tree(TREE)
    assert (root.label, root.start, root.end) == (1, 0, 6)
    assert ptb.leaves(root) == ["the", "good", "bad", "plot", "great", "fun"]
    spans = [(n.label, n.start, n.end) for n in ptb.iter_nodes(root)]
    assert spans[:4] == [(1, 0, 6), (2, 0, 1), (2, 1, 4), (3, 1, 2)]
    assert (0, 2, 4) in spans and (4, 4, 6) in spans
    assert len(spans) == 10
    assert [n.word for n in ptb.iter_nodes(root) if n.is_leaf] == ptb.leaves(root)


def test_rationale_derivation_hand_computed():
    root = ptb.parse_tree(TREE)
    assert ptb.graded_rationale(root) == [0.0, 0.5, 1.0, 1.0, 1.0, 0.0]
    assert ptb.binary_rationale(root) == [0, 1, 1, 1, 1, 0]
    assert ptb.binary_rationale(root, threshold=1.0) == [0, 0, 1, 1, 1, 0]
    # The brief's example: "(4 's good)" beats everything below it, "it" is neutral.
    assert ptb.graded_rationale(ptb.parse_tree("(3 (2 it) (4 (2 's) (3 good)))")) == [0.0, 1.0, 1.0]


def test_ptb_escapes_and_bad_trees():
    root = ptb.parse_tree("(2 (2 -LRB-) (3 writer\\/director) (2 -RRB-))")
    assert ptb.leaves(root, unescape=True) == ["(", "writer/director", ")"]
    assert ptb.leaves(ptb.parse_tree("(2 2\u00a01\\/2)"), unescape=True) == ["2-1/2"]
    for bad in ["(2 (2 a)", "(2 a))", "(x a)", "(2 a b)", "(2 )", "(2 a) (2 b)"]:
        with pytest.raises(ValueError):
            ptb.parse_tree(bad)


def test_sst2_tree_split_from_files(tmp_path):
    root = tmp_path / "sst2"
    (root / "trees").mkdir(parents=True)
    (root / "trees" / "train.txt").write_text(TREE + "\n(2 (2 so) (2 -LRB-meh-RRB-))\n(3 (3 Nice))\n")
    (root / "glue_dev.tsv").write_text("sentence\tlabel\nthe good bad plot great fun \t0\n")
    (root / "trees" / "dev.txt").write_text(TREE.replace("the", "The") + "\n")
    examples = load_examples("sst2", "train_trees", data_dir=tmp_path)
    assert [e.label for e in examples] == [0, 1]  # the neutral root is dropped
    assert examples[1].words == ["nice"] and examples[1].rationales == [[1]]
    dev = load_examples("sst2", "dev", data_dir=tmp_path)
    assert dev[0].words == ["the", "good", "bad", "plot", "great", "fun"]
    assert dev[0].rationales == [[0, 1, 1, 1, 1, 0]]
    (root / "trees" / "train.txt").write_text("(2 (2 a)\n")
    with pytest.raises(DataError, match=r"train\.txt:1: bad PTB tree"):
        load_examples("sst2", "train_trees", data_dir=tmp_path)


# --- generic JSONL -----------------------------------------------------------------------------


def write_lines(path: Path, lines: list) -> Path:
    path.write_text("".join((ln if isinstance(ln, str) else json.dumps(ln)) + "\n" for ln in lines))
    return path


def test_jsonl_happy_path(tmp_path):
    path = write_lines(tmp_path / "reviews.jsonl", [
        {"id": "a", "tokens": ["so", " ", "bad"], "label": 0, "rationales": [[0, 0, 1], [1, 1, 1]]},
        "",
        {"id": "b", "tokens": ["fine"], "label": 2, "rationale": [1], "label_names": ["n", "m", "p"]},
        {"id": "c", "tokens": ["meh", "film"], "label": 1},
    ])
    examples = load_examples(path)
    assert [e.id for e in examples] == ["a", "b", "c"]
    assert all(e.task == "reviews" for e in examples) and task_name(str(path)) == "reviews"
    assert examples[0].words == ["so", "bad"]  # the blank token and its mask entries are gone
    assert examples[0].rationales == [[0, 1], [1, 1]]
    assert examples[1].rationales == [[1]] and examples[2].rationales == []
    assert examples[0].label_names == ("n", "m", "p") == label_names(str(path))
    for purpose in PURPOSES:  # every purpose reads the file itself
        assert len(load_examples(str(path), purpose=purpose)) == 3
    with pytest.raises(DataError, match="no splits"):
        load_examples(path, split="train")


def test_jsonl_default_label_names(tmp_path):
    path = write_lines(tmp_path / "t.jsonl", [{"id": 1, "tokens": ["x"], "label": 2}])
    assert load_examples(path)[0].label_names == ("0", "1", "2")
    assert load_examples(path)[0].id == "1"


def test_jsonl_label_names_may_repeat_but_never_change(tmp_path):
    same = {"id": "b", "tokens": ["y"], "label": 0, "label_names": ["neg", "pos"]}
    first = {"id": "a", "tokens": ["x"], "label": 1, "label_names": ["neg", "pos"]}
    assert load_examples(write_lines(tmp_path / "same.jsonl", [first, {"id": "c", "tokens": ["z"], "label": 0}, same]))[2].label_names == ("neg", "pos")
    swapped = {**same, "label_names": ["pos", "neg"]}
    with pytest.raises(DataError, match=r"other.jsonl:3: 'label_names' \['pos', 'neg'\] differ from line 1's \['neg', 'pos'\]"):
        load_examples(write_lines(tmp_path / "other.jsonl", [first, {"id": "c", "tokens": ["z"], "label": 0}, swapped]))


@pytest.mark.parametrize("line, message", [
    ('{"id": "a", "tokens": ["x"], "label": 0', "not valid JSON"),
    ({"id": "a", "tokens": ["x"]}, "missing field 'label'"),
    ({"tokens": ["x"], "label": 0}, "missing field 'id'"),
    ({"id": "a", "tokens": ["x", "y"], "label": 0, "rationale": [1]},
     "mask length 1 differs from 2 tokens; give one 0/1 per token"),
    ({"id": "a", "tokens": ["x"], "label": 0, "rationales": [[2]]}, "holds 2; use only 0 and 1"),
    ({"id": "a", "tokens": ["x"], "label": 0, "rationale": [0.5]}, "use only 0 and 1"),
    ({"id": "a", "tokens": [], "label": 0}, "'tokens' is empty"),
    ({"id": "a", "tokens": ["  "], "label": 0}, "'tokens' is empty"),
    ({"id": "a", "tokens": ["x"], "label": 3, "label_names": ["n", "p"]}, "label 3 has no name"),
    ({"id": "a", "tokens": ["x"], "label": 0, "label_names": ["n", "n"]}, "name two classes alike"),
    ({"id": "a", "tokens": ["x", "y"], "label": 0, "rationale": [[0, 1]]}, "'rationale' is one mask (a list of 0/1); for several"),
    ({"id": "a", "tokens": ["x", "y"], "label": 0, "rationales": [0, 1]}, "for one mask use 'rationale', or wrap it"),
])
def test_jsonl_errors_name_file_and_line(tmp_path, line, message):
    good = {"id": "ok", "tokens": ["fine"], "label": 0}
    path = write_lines(tmp_path / "data.jsonl", [good, "", line])
    with pytest.raises(DataError) as err:
        load_examples(path)
    text = str(err.value)
    assert text.startswith(f"{path}:3: "), text
    assert message in text
    assert "\n" not in text


# --- HateXplain --------------------------------------------------------------------------------


def test_hatexplain_majority_and_undecided(tmp_path):
    root = tmp_path / "hatexplain"
    root.mkdir()

    def post(pid, labels, masks, n=3):
        return {"id": pid, "annotators": {"label": labels, "annotator_id": [1, 2, 3], "target": []},
                "rationales": masks, "post_tokens": ["w"] * n}

    write_lines(root / "validation.jsonl", [
        post("hate", [0, 0, 2], [[1, 0, 0], [1, 1, 0]]),
        post("undecided", [0, 1, 2], [[1, 1, 1], [1, 1, 1]]),
        post("normal", [1, 2, 1], []),
        post("offensive", [2, 2, 2], [[0, 0, 1], [0, 1, 1], [0, 1, 0]]),
    ])
    examples = load_examples("hatexplain", "validation", data_dir=tmp_path)
    assert [(e.id, e.label_name) for e in examples] == [
        ("hate", "hatespeech"), ("normal", "normal"), ("offensive", "offensive")]
    assert examples[0].rationales == [[1, 0, 0], [1, 1, 0]]
    assert not examples[1].has_rationale
    assert examples[2].gold_mask("majority").tolist() == [0, 1, 1]

    write_lines(root / "train_no_rationales.jsonl", [
        {"post_id": "t1", "post_tokens": ["a", "b"], "annotator_labels": ["normal", "offensive", "normal"]},
        {"post_id": "t2", "post_tokens": ["c"], "annotator_labels": ["normal", "offensive", "hatespeech"]},
    ])
    train = load_examples("hatexplain", purpose="classifier_train", data_dir=tmp_path)
    assert [(e.id, e.label) for e in train] == [("t1", 1)]

    write_lines(root / "test.jsonl", [post("bad", [0, 0, 0], [[1, 0]])])
    with pytest.raises(DataError, match=r"test\.jsonl:1: rationale 1 length 2 differs from 3 tokens"):
        load_examples("hatexplain", "test", data_dir=tmp_path)


# --- Movies ------------------------------------------------------------------------------------


def make_movies(root: Path, archive: bool = True) -> None:
    docs = {"negR_1.txt": "a b c\nd e f\n", "posR_2.txt": "good film .\n"}
    def ev(d, s, e):
        return {"docid": d, "start_token": s, "end_token": e}

    split_lines = {
        "train": [{"annotation_id": "negR_1.txt", "classification": "NEG",
                   "evidences": [[ev("negR_1.txt", 1, 3)],
                                 [ev("negR_1.txt", 4, 5), ev("negR_1.txt", 2, 3)]]}],
        "val": [{"annotation_id": "posR_2.txt", "classification": "POS",
                 "evidences": [[ev("posR_2.txt", 0, 1)]]}],
        "test": [{"annotation_id": "posR_2.txt", "classification": "POS", "evidences": []}],
    }
    files = {f"movies/docs/{k}": v for k, v in docs.items()}
    for split, rows in split_lines.items():
        files[f"movies/{split}.jsonl"] = "".join(json.dumps(x) + "\n" for x in rows)
    root.mkdir(parents=True, exist_ok=True)
    if archive:
        with tarfile.open(root / "movies.tar.gz", "w:gz") as tar:
            for name, text in files.items():
                data = text.encode()
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    else:
        for name, text in files.items():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_text(text)


@pytest.mark.parametrize("archive", [True, False])
def test_movies_spans_become_one_union_mask(tmp_path, archive):
    make_movies(tmp_path / "movies", archive=archive)
    (train,) = load_examples("movies", "train", data_dir=tmp_path)
    assert train.words == ["a", "b", "c", "d", "e", "f"]  # all sentences, in order
    assert train.rationales == [[0, 1, 1, 0, 1, 0]]  # union of [1,3), [4,5), [2,3)
    assert (train.label, train.label_name) == (0, "negative")
    (val,) = load_examples("movies", purpose="classifier_dev", data_dir=tmp_path)
    assert val.label_name == "positive" and val.rationales == [[1, 0, 0]]
    (test,) = load_examples("movies", "test", data_dir=tmp_path)
    assert not test.has_rationale


def test_movies_bad_span_names_line(tmp_path):
    root = tmp_path / "movies" / "movies"
    make_movies(tmp_path / "movies", archive=False)
    (root / "val.jsonl").write_text("\n" + json.dumps({
        "annotation_id": "posR_2.txt", "classification": "POS",
        "evidences": [[{"start_token": 2, "end_token": 9}]]}) + "\n")
    with pytest.raises(DataError, match=r"val\.jsonl:2: evidence span \[2, 9\) outside the 3 tokens"):
        load_examples("movies", "val", data_dir=tmp_path)


def test_movies_tokens_are_erasers_and_a_span_must_read_its_text(tmp_path):
    # A no-break space is inside one ERASER token: str.split made two and marked "is", not "great".
    root = tmp_path / "movies" / "movies"
    make_movies(tmp_path / "movies", archive=False)
    (root / "docs" / "posR_2.txt").write_text("the film\u00a0noir is dull .\nbut the ending is great .\n")
    (root / "val.jsonl").write_text(json.dumps({
        "annotation_id": "posR_2.txt", "classification": "POS",
        "evidences": [[{"start_token": 9, "end_token": 10, "text": "great"}]]}) + "\n")
    (val,) = load_examples("movies", "val", data_dir=tmp_path)
    assert [w for w, m in zip(val.words, val.rationales[0], strict=True) if m] == ["great"]
    (root / "val.jsonl").write_text(json.dumps({
        "annotation_id": "posR_2.txt", "classification": "POS",
        "evidences": [[{"start_token": 8, "end_token": 9, "text": "great"}]]}) + "\n")
    with pytest.raises(DataError, match=r"val\.jsonl:1: evidence span \[8, 9\) of posR_2.txt reads 'is', not its text 'great'"):
        load_examples("movies", "val", data_dir=tmp_path)


# --- CoLA and the public API -------------------------------------------------------------------


def test_cola_reads_tsv_and_has_no_explainer_split(tmp_path):
    (tmp_path / "cola").mkdir()
    dev_tsv = tmp_path / "cola" / "in_domain_dev.tsv"
    dev_tsv.write_text("gj04\t1\t\tThe book fell.\nc-05\t0\t*\tBooks was.\n")
    dev = load_examples("cola", "dev", data_dir=tmp_path)
    assert [(e.words, e.label_name) for e in dev] == [
        (["The", "book", "fell."], "acceptable"), (["Books", "was."], "unacceptable")]
    assert cola.RATIONALE_SPLITS == ()
    with pytest.raises(DataError, match="CoLA has no public word rationales"):
        load_examples("cola", purpose="explainer_train", data_dir=tmp_path)
    (tmp_path / "cola" / "in_domain_dev.tsv").write_text("gj04\t1\tThe book fell.\n")
    with pytest.raises(DataError, match=r"in_domain_dev\.tsv:1: expected 4 tab-separated columns"):
        load_examples("cola", "dev", data_dir=tmp_path)


def test_api_errors(tmp_path, monkeypatch):
    with pytest.raises(DataError, match="unknown task 'imdb'; use one of hatexplain, sst2, movies, cola"):
        load_examples("imdb")
    with pytest.raises(DataError, match="movies has no split 'dev'; use one of train, val, test"):
        load_examples("movies", "dev")
    with pytest.raises(DataError, match="unknown purpose"):
        load_examples("movies", purpose="training")
    with pytest.raises(DataError, match="--data-dir or set EXPNET_DATA"):
        resolve_data_dir(tmp_path / "nowhere")
    with pytest.raises(DataError, match=r"hatexplain[/\\]test\.jsonl: file not found"):
        load_examples("hatexplain", data_dir=tmp_path)
    assert issubclass(DataError, ValueError)


def test_resolve_data_dir_order(tmp_path, monkeypatch):
    monkeypatch.delenv("EXPNET_DATA", raising=False)
    assert resolve_data_dir(None) == samples_dir()
    monkeypatch.setenv("EXPNET_DATA", str(tmp_path))
    assert resolve_data_dir(None) == tmp_path
    assert resolve_data_dir(samples_dir()) == samples_dir()


def test_gold_mask_majority_vs_union():
    ex = RationaleExample("x", "t", ["a", "b", "c", "d"], 0, ("n", "p"),
                          [[1, 1, 0, 0], [1, 0, 1, 0], [1, 0, 0, 0]])
    assert ex.gold_mask("majority").tolist() == [1, 0, 0, 0]
    assert ex.gold_mask("union").tolist() == [1, 1, 1, 0]
    plain = RationaleExample("y", "t", ["a", "b"], 1, ("n", "p"))
    assert rationale_rate([ex, plain], "majority") == 0.25  # unannotated examples don't count
    assert rationale_rate([ex, plain], "union") == 0.75
    assert np.isnan(rationale_rate([plain]))


# --- the shipped samples -----------------------------------------------------------------------

@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("purpose", PURPOSES)
def test_samples_default_splits(task, purpose, monkeypatch):
    monkeypatch.delenv("EXPNET_DATA", raising=False)
    spec = get_task_spec(task)
    if purpose in spec.unavailable:
        with pytest.raises(DataError):
            load_examples(task, purpose=purpose)
        return
    examples = load_examples(task, purpose=purpose)
    assert len(examples) > 0
    names = label_names(task)
    assert names == spec.label_names
    for ex in examples:
        assert ex.task == task and ex.label_names == names
        assert 0 <= ex.label < len(names)
        assert ex.words and all(isinstance(w, str) and w.strip() for w in ex.words)
        for mask in ex.rationales:
            assert len(mask) == len(ex.words) and set(mask) <= {0, 1}
    if purpose in ("explainer_train", "evaluation") and spec.rationale_splits:
        assert sum(ex.has_rationale for ex in examples) > 0
        assert 0 < rationale_rate(examples) < 1


def test_samples_sst2_dev_all_matched(recwarn):
    dev = load_examples("sst2", "dev", data_dir=samples_dir())
    assert len(dev) == 300 and all(e.has_rationale for e in dev)
    assert not [w for w in recwarn if "match no tree" in str(w.message)]
