"""Half precision: classifiers loaded in bfloat16 or float16 give float32 scores, finite, one per word.

Every registered explainer runs on a tiny BERT and a tiny Llama loaded in float32, bfloat16 and
float16 from the same float32 weights. Half-precision scores must be float32 (or float64), finite
and one per word; a deterministic explainer's must rank the words as its float32 scores do (mean
per-text Spearman > 0.9). Sampling explainers (their estimates move with any change in the
function they sample) are held to the dtype and finiteness checks only. An ExpNet trained in
float32 explains a half-precision classifier with scores close to its float32 ones, and stays a
float32 network itself.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import replace

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from architectures import budgets_for, build_bert, build_llama
from expnet.cli.main import main
from expnet.data.records import RationaleExample
from expnet.errors import ExpnetError
from expnet.explainers import explainer_names, get_explainer
from expnet.explainers.learned import ExpNetExplainer
from expnet.explainers.registry import accepted_settings
from expnet.models.classifier import Classifier, resolve_dtype
from expnet.network.training import ExpNetSettings, recipe_settings

HALF = ("bfloat16", "float16")
DTYPES = ("float32", *HALF)
BUDGETS = {"n_samples": 4, "n_steps": 4, "max_evals": 8, "batch_size": 4}
# Words both tiny tokenizers know (the WordPiece vocabulary and the BPE training corpus).
WORDS = ["the", "movie", "was", "good", "bad", "not", "very", "fun", "boring", "film", "great", "love", "hate", "people"]
RNG = np.random.default_rng(0)
TEXTS = [list(RNG.choice(WORDS, size=8)) for _ in range(4)]
# Explainers that estimate by sampling (and the random baseline): dtype and finiteness checks only.
SAMPLED = {name for name in explainer_names() if {"n_samples", "max_evals"} & accepted_settings(name)} | {"random"}
MIN_SPEARMAN = 0.9


def mean_spearman(reference: list[np.ndarray], other: list[np.ndarray]) -> float:
    """Mean Spearman over the texts whose reference scores vary. Scores that collapse to a
    constant in half precision (an underflow to zero, say) count as 0, not as skipped; and a
    reference that never varies cannot vouch for anything, so it fails too (NaN)."""
    values = [
        spearmanr(a, b).statistic if np.ptp(b) > 0 else 0.0
        for a, b in zip(reference, other, strict=True)
        if np.ptp(a) > 0
    ]
    return float(np.mean(values)) if values else float("nan")


@pytest.fixture(scope="module")
def classifiers(tmp_path_factory) -> dict[tuple[str, str], Classifier]:
    """(architecture, dtype) -> the same tiny weights loaded in that dtype. Initial weights of
    0.2 give peaked attention without making bf16 rounding dominate the tiny model."""
    root = tmp_path_factory.mktemp("dtype")
    folders = {arch: build(root / arch, initializer_range=0.2) for arch, build in (("bert", build_bert), ("llama", build_llama))}
    return {(arch, dtype): Classifier.load(folder, device="cpu", dtype=dtype) for arch, folder in folders.items() for dtype in DTYPES}


def explain_all(name: str, classifier: Classifier, texts=TEXTS):
    return get_explainer(name, **budgets_for(name, BUDGETS)).explain(classifier, texts)


def test_classifier_loads_in_the_dtype_asked(classifiers):
    for (arch, dtype), classifier in classifiers.items():
        assert classifier.model.dtype == getattr(torch, dtype), (arch, dtype)


def test_dtype_settings():
    cpu = torch.device("cpu")
    assert resolve_dtype(None, cpu) == resolve_dtype("float32", cpu) == torch.float32
    assert resolve_dtype("auto", cpu) == torch.float32  # half precision only where it pays (CUDA)
    assert resolve_dtype("bfloat16", cpu) == resolve_dtype(torch.bfloat16, cpu) == torch.bfloat16
    with pytest.raises(ExpnetError, match="unknown dtype 'float8': use float32, bfloat16, float16, auto"):
        resolve_dtype("float8", cpu)


def test_unknown_dtype_is_refused_before_loading(tmp_path):
    with pytest.raises(ExpnetError, match="unknown dtype 'half'"):
        Classifier.load(tmp_path / "nothing-here", dtype="half")


@pytest.mark.parametrize("arch", ["bert", "llama"])
@pytest.mark.parametrize("name", explainer_names())
def test_every_explainer_in_half_precision(classifiers, arch, name):
    try:
        reference = explain_all(name, classifiers[arch, "float32"])
    except ExpnetError as refusal:  # an architecture the explainer does not support: refused alike
        for dtype in HALF:
            with pytest.raises(ExpnetError, match="^" + re.escape(str(refusal))):
                explain_all(name, classifiers[arch, dtype])
        return
    for dtype in HALF:
        explanations = explain_all(name, classifiers[arch, dtype])
        for words, explanation in zip(TEXTS, explanations, strict=True):
            assert explanation.scores.dtype in (np.float32, np.float64), (dtype, explanation.scores.dtype)
            assert len(explanation.scores) == len(words) and explanation.scored.all()
            assert np.isfinite(explanation.scores).all(), (dtype, explanation.scores)
            assert np.isfinite(explanation.probabilities).all()
            assert explanation.probabilities.dtype in (np.float32, np.float64)
        if name not in SAMPLED:
            rho = mean_spearman([e.scores for e in reference], [e.scores for e in explanations])
            assert rho > MIN_SPEARMAN, f"{name} on {arch} in {dtype}: Spearman {rho:.3f} with float32"


def planted_examples(classifier: Classifier, n: int = 60) -> list[RationaleExample]:
    """Gold = the words [CLS] attends to more than uniformly: a rule ExpNet can learn."""
    rng = np.random.default_rng(1)
    texts = [list(rng.choice(WORDS, size=rng.integers(3, 9))) for _ in range(n)]
    out = []
    for i, explanation in enumerate(get_explainer("raw_attention").explain(classifier, texts)):
        mask = (explanation.scores * (len(texts[i]) + 2) > 1.0).astype(int)
        out.append(RationaleExample(str(i), "toy", texts[i], explanation.prediction, ("a", "b"), [mask.tolist()]))
    return out


@pytest.mark.parametrize("recipe", ["paper", "transfer"])
def test_expnet_explains_half_precision_classifiers(classifiers, recipe):
    """Eager attention features (paper) and SDPA readout rows (transfer) alike."""
    classifier = classifiers["bert", "float32"]
    settings = recipe_settings(recipe, max_epochs=15, patience=5, learning_rate=3e-3)
    explainer = ExpNetExplainer.train([(classifier, planted_examples(classifier))], settings, seed=0, progress=False)
    reference = [e.scores for e in explainer.explain(classifier, TEXTS)]
    for dtype in HALF:
        scores = [e.scores for e in explainer.explain(classifiers["bert", dtype], TEXTS)]
        for row, ref in zip(scores, reference, strict=True):
            assert row.dtype in (np.float32, np.float64) and np.isfinite(row).all()
            assert np.abs(row - ref).max() < 0.05, (dtype, row, ref)
        assert mean_spearman(reference, scores) > MIN_SPEARMAN
    assert all(p.dtype == torch.float32 for p in explainer.model.parameters())


def test_expnet_trains_on_a_bfloat16_classifier(classifiers):
    """Features reach the (float32) MLP in float32, whatever the classifier's dtype."""
    classifier = classifiers["bert", "bfloat16"]
    settings = ExpNetSettings(max_epochs=3, patience=2)
    explainer = ExpNetExplainer.train([(classifier, planted_examples(classifier, 30))], settings, seed=0, progress=False)
    assert all(p.dtype == torch.float32 for p in explainer.model.parameters())
    scores = [e.scores for e in explainer.explain(classifier, TEXTS)]
    assert all(np.isfinite(row).all() for row in scores)


def test_float32_is_the_default_and_unchanged(classifiers, tmp_path):
    """No dtype means float32: the same numbers as asking for float32."""
    asked = classifiers["bert", "float32"]
    default = Classifier.load(asked.source, device="cpu")
    assert default.model.dtype == torch.float32
    for name in ("raw_attention", "saliency", "decompx"):
        a = [e.scores for e in explain_all(name, asked)]
        b = [e.scores for e in explain_all(name, default)]
        assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True)), name


def test_cli_explain_in_bfloat16(classifiers, capsys):
    folder = classifiers["bert", "float32"].source
    code = main(["explain", "--classifier", folder, "--explainer", "saliency", "--dtype", "bfloat16", "--format", "json", "a good movie", "bad"])
    assert code == 0
    explanations = json.loads(capsys.readouterr().out)["explanations"]
    assert [len(e["scores"]) for e in explanations] == [3, 1]
    assert all(s is not None and np.isfinite(s) for e in explanations for s in e["scores"])
    code = main(["explain", "--classifier", folder, "--explainer", "raw_attention", "--dtype", "float16", "a good movie"])
    assert code == 0 and "good" in capsys.readouterr().out


def test_cli_refuses_half_precision_fine_tuning_and_unknown_dtypes(capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_info:  # an argparse error, named by finetune's own parser
        main(["finetune", "--task", "sst2", "--out", str(tmp_path / "clf"), "--dtype", "bfloat16"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and len(err.strip().splitlines()) == 1
    assert err.startswith("expnet finetune: error: --dtype bfloat16: fine-tuning runs in float32 only")
    assert not (tmp_path / "clf").exists()
    with pytest.raises(SystemExit) as exit_info:
        main(["explain", "--classifier", "x", "--explainer", "random", "--dtype", "float8", "good"])
    assert exit_info.value.code == 2 and "invalid choice: 'float8'" in capsys.readouterr().err


@pytest.mark.integration
def test_shipped_expnet_on_the_real_backbone_in_bfloat16():
    """The shipped ExpNet on all-MiniLM-L6-v2 (a seeded head) cast to bf16: scores close to fp32."""
    from expnet.data import load_examples
    from expnet.models.classifier import default_backbone

    torch.manual_seed(0)
    classifier = Classifier.load(default_backbone(), device="cpu", require_classifier=False)
    texts = [example.words for example in load_examples("hatexplain", purpose="evaluation")[:20]]
    explainer = get_explainer("expnet")
    reference = [e.scores[e.scored] for e in explainer.explain(classifier, texts)]  # emoji etc. have no tokens
    half = replace(classifier, model=copy.deepcopy(classifier.model).to(torch.bfloat16))
    explanations = explainer.explain(half, texts)
    scores = [e.scores[e.scored] for e in explanations]
    for row, ref in zip(scores, reference, strict=True):
        assert row.dtype in (np.float32, np.float64) and np.isfinite(row).all() and len(row) == len(ref)
    assert mean_spearman(reference, scores) > 0.9
    assert np.mean([np.abs(row - ref).mean() for row, ref in zip(scores, reference, strict=True)]) < 0.05
