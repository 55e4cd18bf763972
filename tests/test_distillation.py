"""ExpNet + unlabelled target texts: soft teacher targets next to human rationales."""

from __future__ import annotations

import numpy as np
import pyarrow
import pyarrow.parquet
import pytest

from expnet.cli.main import main
from expnet.data import RationaleExample
from expnet.errors import ExpnetError
from expnet.explainers import get_explainer
from expnet.explainers.distillation import TeacherSettings, soft_targets, teacher_dataset, train_with_unlabelled
from expnet.explainers.learned import ExpNetExplainer
from expnet.metrics.plausibility import plausibility
from expnet.network.training import ExpNetSettings, settings_spec
from test_cli import TWELVE_ROWS, write_jsonl
from test_expnet import planted_examples, random_texts

LISTWISE = ExpNetSettings(views=("absolute", "zscore"), loss="listwise", max_epochs=60, patience=10)


def test_soft_targets_by_hand():
    # ranks 1, 3, 2 of 3 -> (1/3, 1, 2/3) ** 2; a second teacher's ranks 3, 1, 2 average to 2/3 each.
    np.testing.assert_allclose(soft_targets([np.array([0.1, 0.5, 0.3])], 2.0), [1 / 9, 1, 4 / 9], rtol=1e-6)
    both = soft_targets([np.array([0.1, 0.5, 0.3]), np.array([0.9, 0.1, 0.2])], 1.0)
    np.testing.assert_allclose(both, [2 / 3, 2 / 3, 2 / 3], rtol=1e-6)
    np.testing.assert_allclose(soft_targets([np.array([2.0, 2.0])], 1.0), [0.75, 0.75])  # ties share their rank


def test_teacher_dataset_holds_the_teachers_targets_on_scored_words(tiny_classifier):
    texts = random_texts(6)
    teacher = get_explainer("raw_attention")
    spec = settings_spec(LISTWISE, tiny_classifier)
    dataset = teacher_dataset(tiny_classifier, texts, [teacher], spec, 3.0, progress=False)
    assert len(dataset) == 6 and set(dataset.tasks) == {"unlabelled"}
    for text, features, labels, explanation in zip(texts, dataset.features, dataset.labels, teacher.explain(tiny_classifier, texts), strict=True):
        assert features.shape == (int(explanation.scored.sum()), spec.dim) and len(text) >= len(labels)
        np.testing.assert_allclose(labels.numpy(), soft_targets([explanation.scores[explanation.scored]], 3.0), rtol=1e-6)


def test_unlabelled_texts_teach_what_the_human_rationales_do_not(tiny_classifier):
    """The few source rationales here are the planted rule inverted; the teacher (raw attention)
    is the rule itself, so only the unlabelled texts can teach it."""
    planted = planted_examples(tiny_classifier, n=130)
    noise = [
        RationaleExample(e.id, "inverted", e.words, e.label, e.label_names, [(1 - e.gold_mask()).tolist()])
        for e in planted[:12]
    ]
    unlabelled = [e.words for e in planted[12:100]]
    held_out = planted[100:]

    def auroc(expnet) -> float:
        explanations = expnet.explain(tiny_classifier, [e.words for e in held_out])
        return plausibility([e.gold_mask() for e in held_out], [x.scores for x in explanations], [x.rationale for x in explanations]).auroc

    teacher = TeacherSettings(teachers=("raw_attention",), sharpness=4.0, max_texts=200)
    adapted = train_with_unlabelled([(tiny_classifier, noise)], [(tiny_classifier, unlabelled)], LISTWISE, teacher, progress=False)
    plain = train_with_unlabelled([(tiny_classifier, noise)], [], LISTWISE, teacher, progress=False)
    assert auroc(adapted) > 0.8 and auroc(plain) < 0.4
    assert adapted.history["unlabelled"] == {"teachers": ["raw_attention"], "sharpness": 4.0, "max_texts": 200, "texts": [88]}
    # the reported rate is the human rationales', not the soft targets'
    assert adapted.rationale_rate == pytest.approx(np.mean([np.mean(e.rationales[0]) for e in noise]), abs=0.05)


def test_the_perplexity_temperature_is_fitted_on_human_rationales_only(tiny_classifier):
    from expnet.network.training import fit_perplexity_temperature

    spec = settings_spec(LISTWISE, tiny_classifier)
    taught = teacher_dataset(tiny_classifier, random_texts(40), [get_explainer("raw_attention")], spec, 1.0, progress=False)
    # Teacher texts alone: nothing to count, so the rule keeps temperature 1.
    only_taught = ExpNetExplainer.fit(taught, spec, LISTWISE)
    assert only_taught.history["perplexity_temperature"] == 1.0
    # Had they been counted, their soft targets (rank ** 1: about half of each text) would have
    # asked for another temperature.
    with_soft = fit_perplexity_temperature([only_taught.model(f) for f in taught.features], list(taught.labels))
    assert with_soft != 1.0


def test_bad_teacher_settings_are_one_line_errors(tiny_classifier):
    with pytest.raises(ExpnetError, match="at least one teacher"):
        TeacherSettings(teachers=())
    with pytest.raises(ExpnetError, match="sharpness"):
        TeacherSettings(sharpness=0)
    with pytest.raises(ExpnetError, match="whole number"):
        TeacherSettings(max_texts=0)
    with pytest.raises(ExpnetError, match="listwise"):
        train_with_unlabelled([(tiny_classifier, planted_examples(tiny_classifier, n=8))], [], ExpNetSettings(), progress=False)


def test_cli_train_with_unlabelled_texts(capsys, tiny_classifier_dir, tmp_path):
    data = write_jsonl(tmp_path / "toy.jsonl", TWELVE_ROWS)
    texts = tmp_path / "mine.txt"
    texts.write_text("".join(" ".join(words) + "\n" for words in random_texts(30)))
    argv = ["train", "--task", f"{data}={tiny_classifier_dir}", "--include-wrong", "--seed", "1", "--unlabelled", f"{texts}={tiny_classifier_dir}"]
    assert main([*argv, "--out", str(tmp_path / "e"), "--teacher", "raw_attention,saliency", "--max-unlabelled", "20"]) == 0
    history = ExpNetExplainer.from_pretrained(tmp_path / "e").history
    assert history["unlabelled"]["teachers"] == ["raw_attention", "saliency"] and history["unlabelled"]["texts"] == [20]
    capsys.readouterr()
    assert main([*argv, "--out", str(tmp_path / "f"), "--recipe", "paper"]) == 2  # focal loss: no soft targets
    assert "listwise" in capsys.readouterr().err
    assert main([*argv, "--out", str(tmp_path / "g"), "--teacher", "nonsense"]) == 2


def test_unlabelled_texts_come_from_a_task_a_text_file_or_a_rationale_file(tmp_path):
    from expnet.cli.train import unlabelled_texts

    texts = tmp_path / "texts.jsonl"
    texts.write_text('{"id": "a", "text": "a fine film"}\n{"id": "b", "text": "dull"}\n')
    assert unlabelled_texts(str(texts), None) == [["a", "fine", "film"], ["dull"]]
    rationales = write_jsonl(tmp_path / "toy.jsonl", TWELVE_ROWS)
    assert unlabelled_texts(str(rationales), None) == [row["tokens"] for row in TWELVE_ROWS if isinstance(row, dict)]
    assert len(unlabelled_texts("sst2", None)) > 10  # the shipped sample's training sentences
    with pytest.raises(ExpnetError, match="no such file"):
        unlabelled_texts(str(tmp_path / "missing.txt"), None)
    # Texts to learn from need no id (corpus mode's inputs do), in JSONL, CSV and Parquet alike.
    texts.write_text('{"text": "good fun"}\n{"text": "awful film"}\n')
    table = tmp_path / "texts.csv"
    table.write_text("text\ngood fun\nawful film\n")
    parquet = tmp_path / "texts.parquet"
    pyarrow.parquet.write_table(pyarrow.table({"text": ["good fun", "awful film"]}), parquet)
    for source in (texts, table, parquet):
        assert unlabelled_texts(str(source), None) == [["good", "fun"], ["awful", "film"]]
    texts.write_text('{"sentence": "good fun"}\n')  # neither texts nor a task file: both reasons
    with pytest.raises(ExpnetError, match=r"neither texts \(line 1: missing field 'text'\) nor a task file \(.*missing field 'id'"):
        unlabelled_texts(str(texts), None)
    # A row without a text would be dropped unseen (one of two texts trained on).
    texts.write_text('{"text": "good fun"}\n{"text": ""}\n')
    with pytest.raises(ExpnetError, match=r"texts.jsonl: line 2: empty text \(1 such row\(s\)\); fix or remove them"):
        unlabelled_texts(str(texts), None)

