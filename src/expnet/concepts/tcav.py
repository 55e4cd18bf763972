"""Concept sensitivity with attention (TCAV with attention-weighted token derivatives), global.

Following Eggen et al. (arXiv 2508.08966) and their public code, for a target class c, a layer l
and one CAV v:

- for each input text and each of its tokens t (every real token, [CLS] and [SEP] included as in
  the authors' code: at the last layer only [CLS] still reaches the logit), the directional
  derivative ``s_t = grad_{h_t} logit_c · v`` with ``h_t`` the token's hidden state at l;
- ``alpha`` = the [CLS] row of layer l's attention, averaged over heads; s is rescaled to the L2
  norm of alpha (``s * |alpha| / |s|``, per text) and weighted: ``d_t = alpha_t * s_t``;
- the TCAV score of v = the share of inputs whose mean ``d_t`` is positive.

(The rescaling is a positive factor per text, so it does not change the sign, hence the score; it
only puts the per-token heat of different texts on one scale.) At the last layer only [CLS] still
reaches the logit (a BERT-style head reads [CLS] alone), so the sign of ``d`` is that of
``grad_CLS · v``, nearly the same for every input: scores there are close to 0 or 1 per CAV and
measure whether the concept direction agrees with the classifier's read-out direction.
Repeating over many CAVs gives a distribution of scores, t-tested against 0.5 (one-sample) and
against the scores of random-vs-random CAVs (Welch's two-sample test): a concept counts as
significant at a layer only when both p-values pass a Bonferroni-corrected level (alpha divided by
concepts x layers), in either direction (mean above 0.5: the concept pushes the target class up).
Scores with no variance (every CAV the same, common at the last layer) have no t-test: they get
the exact sign test's and rank test's p-values instead, which only many CAVs can make small.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy import stats

from expnet.concepts.cavs import CAVs, TokenStates, check_layers, token_states, train_cavs, train_random_cavs
from expnet.errors import ExpnetError
from expnet.models.classifier import Classifier
from expnet.models.gradients import input_embeddings

# Token states per side below which a CAV is fit on noise (one pair gave held-out AUROC 0.000).
MIN_TOKENS = 10


@dataclass
class TargetGradients:
    """Per text: the target logit's gradient at every real token and layer, and the CLS attention."""

    layers: tuple[int, ...]
    target: int
    grads: dict[int, list[np.ndarray]]  # layer -> per text [T_i, D]
    alphas: dict[int, list[np.ndarray]]  # layer -> per text [T_i]
    token_word: list[np.ndarray]  # per text [T_i]: word index, -1 for special tokens
    words: list[list[str]]
    word_scored: list[np.ndarray]
    logits: np.ndarray  # [N, C]


def target_gradients(
    classifier: Classifier,
    texts: Sequence[Sequence[str]],
    target: int,
    layers: Sequence[int] | None = None,
    batch_size: int = 16,
) -> TargetGradients:
    """One forward and one backward pass per batch: d logit_target / d hidden state, every layer."""
    chosen = check_layers(layers, classifier.num_layers)
    grads = {layer: [] for layer in chosen}
    alphas = {layer: [] for layer in chosen}
    token_word, words, scored, logits = [], [], [], []
    for start in range(0, len(texts), batch_size):
        batch = classifier.encode(texts[start : start + batch_size])
        with torch.enable_grad():
            embeddings = input_embeddings(classifier, batch).requires_grad_(True)
            output = classifier.forward(batch, output_attentions=True, output_hidden_states=True, inputs_embeds=embeddings)
            if not output.attentions or output.attentions[0] is None:
                raise ExpnetError(f"{classifier.source} returns no attention weights; attention-weighted TCAV cannot run on it")
            wanted = [output.hidden_states[layer + 1] for layer in chosen]
            found = torch.autograd.grad(output.logits[:, target].sum(), wanted, allow_unused=True)
        real = batch.attention_mask.bool()
        for i in range(batch.batch_size):
            keep = real[i]
            for layer, grad in zip(chosen, found, strict=True):
                g = torch.zeros_like(wanted[0][i]) if grad is None else grad[i]
                grads[layer].append(g[keep].float().cpu().numpy())
                alphas[layer].append(output.attentions[layer][i, :, 0, :].float().mean(0)[keep].detach().cpu().numpy())
            token_word.append(batch.token_word[i][keep].cpu().numpy())
        words.extend(batch.words)
        scored.extend(batch.word_scored)
        logits.append(output.logits.detach().float().cpu().numpy())
    return TargetGradients(chosen, target, grads, alphas, token_word, words, scored, np.concatenate(logits))


def directional_derivatives(grad: np.ndarray, alpha: np.ndarray, cavs: np.ndarray) -> np.ndarray:
    """Attention-weighted token derivatives ``d`` [T, K] of one text for K CAVs [K, D]."""
    s = grad.astype(np.float64) @ cavs.T.astype(np.float64)  # [T, K]
    alpha = alpha.astype(np.float64)
    scale = np.linalg.norm(alpha) / (np.linalg.norm(s, axis=0, keepdims=True) + 1e-12)
    return alpha[:, None] * s * scale


def tcav_scores(gradients: TargetGradients, layer: int, cavs: np.ndarray) -> np.ndarray:
    """One score per CAV: the share of texts whose mean attention-weighted derivative is > 0."""
    positive = np.zeros(len(cavs))
    texts = len(gradients.grads[layer])
    for grad, alpha in zip(gradients.grads[layer], gradients.alphas[layer], strict=True):
        positive += directional_derivatives(grad, alpha, cavs).mean(0) > 0
    return positive / max(texts, 1)


def t_test_half(scores: np.ndarray) -> float:
    """Two-sided one-sample t-test of the scores against 0.5 (p-value). Constant scores have no
    t-test (no variance): the two-sided sign test's 2 * 0.5^n instead, so that 2 CAVs that agree
    (a single input gives each a score of 0 or 1) are never significant, and 50 that agree are."""
    scores = np.asarray(scores, dtype=np.float64)
    if len(scores) < 2 or np.ptp(scores) == 0:
        return 1.0 if np.all(scores == 0.5) else min(1.0, 2 * 0.5 ** len(scores))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(stats.ttest_1samp(scores, 0.5).pvalue)


def t_test_random(scores: np.ndarray, random_scores: np.ndarray) -> float:
    """Two-sided Welch t-test of concept scores against random-vs-random scores (p-value)."""
    a, b = np.asarray(scores, dtype=np.float64), np.asarray(random_scores, dtype=np.float64)
    if len(a) < 2 or len(b) < 2:
        return float("nan")
    if np.ptp(a) == 0 and np.ptp(b) == 0:
        # No variance: the exact two-sided rank test's p, every concept score on one side of every random one.
        return 1.0 if a[0] == b[0] else min(1.0, 2 / math.comb(len(a) + len(b), len(a)))
    with warnings.catch_warnings():  # one constant sample is fine for Welch; scipy still warns
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(stats.ttest_ind(a, b, equal_var=False).pvalue)


@dataclass
class LayerScore:
    concept: str
    layer: int
    scores: np.ndarray
    random_scores: np.ndarray
    p_vs_half: float
    p_vs_random: float
    cav_auroc: float  # mean held-out AUROC of the CAVs (how separable the concept is there)
    significant: bool = False

    @property
    def mean(self) -> float:
        return float(np.mean(self.scores))

    @property
    def std(self) -> float:
        return float(np.std(self.scores, ddof=1)) if len(self.scores) > 1 else 0.0

    def to_dict(self) -> dict:
        return {
            "layer": self.layer,
            "mean": self.mean,
            "std": self.std,
            "p_vs_half": self.p_vs_half,
            "p_vs_random": self.p_vs_random,
            "random_mean": float(np.mean(self.random_scores)),
            "random_std": float(np.std(self.random_scores, ddof=1)) if len(self.random_scores) > 1 else 0.0,
            "cav_heldout_auroc": self.cav_auroc,
            "significant": self.significant,
            "direction": "up" if self.mean > 0.5 else "down" if self.mean < 0.5 else "none",
            "scores": [float(s) for s in self.scores],
        }


@dataclass
class TCAVResult:
    target: int
    target_name: str
    layers: tuple[int, ...]
    scores: dict[str, list[LayerScore]]  # concept -> one per layer
    random: CAVs
    random_scores: dict[int, np.ndarray]  # layer -> scores of the random-vs-random CAVs
    cavs: dict[str, CAVs]
    gradients: TargetGradients
    significance_level: float
    label_names: tuple[str, ...] = ()
    settings: dict = field(default_factory=dict)

    def best_layer(self, concept: str) -> LayerScore:
        """The layer where the concept's scores differ most from random (smallest p, then |mean - 0.5|)."""
        return min(self.scores[concept], key=lambda s: (max(s.p_vs_half, s.p_vs_random), -abs(s.mean - 0.5)))

    def to_dict(self) -> dict:
        tests = sum(len(v) for v in self.scores.values())
        return {
            "target": self.target,
            "target_name": self.target_name,
            "layers": list(self.layers),
            "n_inputs": len(self.gradients.words),
            "significance": {
                "alpha": self.significance_level,
                "tests": tests,
                "bonferroni_level": self.significance_level / max(tests, 1),
                "rule": "significant = p_vs_half and p_vs_random both below the Bonferroni level",
            },
            "concepts": {name: [s.to_dict() for s in layer_scores] for name, layer_scores in self.scores.items()},
            "random_vs_random": {
                str(layer): {
                    "mean": float(np.mean(self.random_scores[layer])),
                    "std": float(np.std(self.random_scores[layer], ddof=1)) if len(self.random_scores[layer]) > 1 else 0.0,
                    "scores": [float(x) for x in self.random_scores[layer]],
                    "cav_heldout_auroc": float(np.nanmean(self.random.heldout_auroc[layer])),
                }
                for layer in self.layers
            },
            "settings": self.settings,
        }


def word_heat(gradients: TargetGradients, index: int, layer: int, cav: np.ndarray) -> np.ndarray:
    """Per-word attention-weighted derivatives of text ``index`` along one CAV (pieces summed)."""
    d = directional_derivatives(gradients.grads[layer][index], gradients.alphas[layer][index], cav[None, :])[:, 0]
    owners = gradients.token_word[index]
    heat = np.zeros(len(gradients.words[index]))
    np.add.at(heat, owners[owners >= 0], d[owners >= 0])
    heat[~gradients.word_scored[index]] = np.nan
    return heat


def run_tcav(
    classifier: Classifier,
    concepts: Mapping[str, Sequence[Sequence[str]]],
    random_texts: Sequence[Sequence[str]],
    inputs: Sequence[Sequence[str]],
    target: int,
    layers: Sequence[int] | None = None,
    n_cavs: int = 50,
    versus: str = "random",
    seed: int = 0,
    texts_per_cav: int = 50,
    max_tokens: int = 1000,
    batch_size: int = 16,
    significance_level: float = 0.05,
    progress: bool = False,
) -> TCAVResult:
    """Scores of every concept at every chosen layer for ``inputs`` of class ``target``.

    ``versus``: ``random`` (concept vs the random texts) or ``concepts`` (concept vs the other
    concepts' texts pooled; needs at least two concepts).
    """
    if not concepts:
        raise ExpnetError("no concept given: give at least one NAME=FILE")
    if versus not in ("random", "concepts"):
        raise ExpnetError(f"versus {versus!r}: use 'random' or 'concepts'")
    if versus == "concepts" and len(concepts) < 2:
        raise ExpnetError("concept-vs-concepts CAVs need at least two concepts; give more or use versus random")
    if not inputs:
        raise ExpnetError("no input texts of the target class to score the concepts on")
    if n_cavs < 2:
        raise ExpnetError(f"n_cavs {n_cavs}: the t-tests need at least 2 CAVs (50 in the paper)")
    if max_tokens < MIN_TOKENS:
        raise ExpnetError(
            f"max_tokens {max_tokens}: a CAV needs at least {MIN_TOKENS} token states per side, or it is fit on "
            "noise and its held-out AUROC rests on a pair or two (default 1000)"
        )
    chosen = check_layers(layers, classifier.num_layers)
    states = {name: token_states(classifier, texts, chosen, batch_size) for name, texts in concepts.items()}
    random_states = token_states(classifier, random_texts, chosen, batch_size)
    cavs: dict[str, CAVs] = {}
    for name, positive in states.items():
        if versus == "random":
            negative = random_states
        else:
            negative = TokenStates.concat([s for other, s in states.items() if other != name])
        cavs[name] = train_cavs(name, positive, negative, n_cavs, seed, texts_per_cav, max_tokens, progress)
    random_cavs = train_random_cavs(random_states, n_cavs, seed, texts_per_cav, max_tokens, progress=progress)
    gradients = target_gradients(classifier, inputs, target, chosen, batch_size)
    random_scores = {layer: tcav_scores(gradients, layer, random_cavs.vectors[layer]) for layer in chosen}
    scores: dict[str, list[LayerScore]] = {}
    for name, concept_cavs in cavs.items():
        scores[name] = []
        for layer in chosen:
            layer_scores = tcav_scores(gradients, layer, concept_cavs.vectors[layer])
            scores[name].append(
                LayerScore(
                    concept=name,
                    layer=layer,
                    scores=layer_scores,
                    random_scores=random_scores[layer],
                    p_vs_half=t_test_half(layer_scores),
                    p_vs_random=t_test_random(layer_scores, random_scores[layer]),
                    cav_auroc=float(np.nanmean(concept_cavs.heldout_auroc[layer]))
                    if np.isfinite(concept_cavs.heldout_auroc[layer]).any()
                    else float("nan"),
                )
            )
    tests = sum(len(v) for v in scores.values())
    level = significance_level / max(tests, 1)
    for layer_scores in scores.values():
        for s in layer_scores:
            p_random = s.p_vs_random if not math.isnan(s.p_vs_random) else 1.0
            s.significant = bool(s.p_vs_half < level and p_random < level)
    names = classifier.label_names
    return TCAVResult(
        target=target,
        target_name=names[target] if names else str(target),
        layers=chosen,
        scores=scores,
        random=random_cavs,
        random_scores=random_scores,
        cavs=cavs,
        gradients=gradients,
        significance_level=significance_level,
        label_names=tuple(names),
        settings={
            "n_cavs": n_cavs,
            "versus": versus,
            "seed": seed,
            "texts_per_cav": texts_per_cav,
            "max_tokens_per_side": max_tokens,
            "n_concept_texts": {name: len(t) for name, t in concepts.items()},
            "n_random_texts": len(random_texts),
            "layer_numbering": "0-based transformer block; hidden state = block output, alpha = that block's [CLS] attention row",
        },
    )
