"""Concept activation vectors (CAVs) from per-token hidden states.

A concept is a set of example texts. At a layer l (0-based; the output of transformer block l,
i.e. ``hidden_states[l + 1]``), every non-special token of every example contributes one hidden
state. A CAV is the unit normal of a logistic regression separating the tokens of concept examples
(label 1) from the tokens of negative examples (label 0): random texts, or the other concepts.
Many CAVs are trained, each on a different random sample of texts (Eggen et al. train 50), so a
score can be tested across CAVs; random-vs-random CAVs (two disjoint random samples of the random
texts) give the null distribution that catches meaningless concepts.

Sampling, per CAV: ``min(texts_per_cav, ceil(0.8 n))`` texts of the concept (so no two CAVs see
the same sample) and ``min(texts_per_cav, n_negative)`` negative texts; the two token sets are
cut to the same size (at most ``max_tokens`` each) by a seeded random draw. The tokens of texts
left out of the sample give a held-out accuracy, reported as a separability check.
"""

from __future__ import annotations

import math
import warnings
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.stats import rankdata
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from tqdm.auto import tqdm

from expnet.errors import ExpnetError
from expnet.models.classifier import Classifier

SETS_DIR = Path(__file__).resolve().parent / "sets"


def shipped_sets() -> list[str]:
    """Names of the concept (and random) sets shipped with expnet."""
    return sorted(p.stem for p in SETS_DIR.glob("*.txt"))


def read_texts(path: str | Path, what: str = "concept") -> list[list[str]]:
    """Texts of a file, one a line, split into words; a shipped set's name also works.

    Blank lines are skipped; a file with no text is an error.
    """
    path = Path(path)
    if not path.exists() and len(path.parts) == 1 and not path.suffix and (SETS_DIR / f"{path.name}.txt").is_file():
        path = SETS_DIR / f"{path.name}.txt"
    if not path.exists():
        raise ExpnetError(
            f"{what} file {str(path)!r} not found: give a text file (one example a line) or a shipped set "
            f"({', '.join(shipped_sets())})"
        )
    if not path.is_file():
        raise ExpnetError(f"{what} file {str(path)!r} is a folder: give a text file with one example a line")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise ExpnetError(f"{what} file {str(path)!r} is not UTF-8 text: give one example a line") from None
    texts = [line.split() for line in lines if line.strip()]
    if not texts:
        raise ExpnetError(f"{what} file {str(path)!r} is empty: give at least two example texts, one a line")
    return texts


@dataclass
class TokenStates:
    """Hidden states of the non-special tokens of a set of texts, at chosen layers."""

    layers: tuple[int, ...]
    states: dict[int, np.ndarray]  # layer -> [N tokens, D] float32
    text_of_token: np.ndarray  # [N] index of the text each token comes from
    n_texts: int

    def token_rows(self, texts: np.ndarray) -> np.ndarray:
        """Indices of the tokens of the given texts."""
        return np.flatnonzero(np.isin(self.text_of_token, texts))

    @staticmethod
    def concat(parts: Sequence[TokenStates]) -> TokenStates:
        """One set made of several (the texts of each part follow the previous ones)."""
        offsets = np.cumsum([0] + [p.n_texts for p in parts])
        layers = parts[0].layers
        return TokenStates(
            layers=layers,
            states={layer: np.concatenate([p.states[layer] for p in parts]) for layer in layers},
            text_of_token=np.concatenate([p.text_of_token + o for p, o in zip(parts, offsets, strict=False)]),
            n_texts=int(offsets[-1]),
        )


def check_layers(layers: Sequence[int] | None, num_layers: int) -> tuple[int, ...]:
    from expnet.shapley.matrices import select_layers

    return select_layers(layers, num_layers)


@torch.no_grad()
def token_states(
    classifier: Classifier, texts: Sequence[Sequence[str]], layers: Sequence[int] | None = None, batch_size: int = 32
) -> TokenStates:
    """Per-token hidden states of ``texts`` at ``layers`` (0-based block outputs; None = all)."""
    chosen = check_layers(layers, classifier.num_layers)
    states: dict[int, list[np.ndarray]] = {layer: [] for layer in chosen}
    owners = []
    for start in range(0, len(texts), batch_size):
        batch = classifier.encode(texts[start : start + batch_size])
        output = classifier.forward(batch, output_hidden_states=True)
        keep = batch.word_tokens
        rows, _ = torch.nonzero(keep, as_tuple=True)
        owners.append(rows.cpu().numpy() + start)
        for layer in chosen:
            states[layer].append(output.hidden_states[layer + 1][keep].float().cpu().numpy())
    return TokenStates(
        layers=chosen,
        states={layer: np.concatenate(v) for layer, v in states.items()},
        text_of_token=np.concatenate(owners),
        n_texts=len(texts),
    )


def fit_cav(positive: np.ndarray, negative: np.ndarray, seed: int = 0) -> np.ndarray:
    """Unit normal of a logistic regression, pointing from the negative to the positive tokens."""
    x = np.concatenate([positive, negative])
    y = np.concatenate([np.ones(len(positive)), np.zeros(len(negative))])
    # liblinear: several times faster than lbfgs here (hundreds of fits per run, D up to 1024).
    model = LogisticRegression(solver="liblinear", max_iter=1000, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(x, y)
    normal = model.coef_[0].astype(np.float64)
    norm = np.linalg.norm(normal)
    return normal / norm if norm > 0 else normal


def _auroc(cav: np.ndarray, positive: np.ndarray, negative: np.ndarray) -> float:
    """Held-out AUROC of the projection on the CAV (Mann-Whitney U / (n_pos n_neg)): how well the
    direction alone separates concept tokens from negative tokens (0.5 = not at all)."""
    if len(positive) == 0 or len(negative) == 0:
        return float("nan")
    ranks = rankdata(np.concatenate([positive @ cav, negative @ cav]))
    n_pos, n_neg = len(positive), len(negative)
    return float((ranks[:n_pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _balanced(rng: np.random.Generator, a: np.ndarray, b: np.ndarray, cap: int) -> tuple[np.ndarray, np.ndarray]:
    size = min(len(a), len(b), cap)
    return rng.choice(a, size, replace=False), rng.choice(b, size, replace=False)


def stream_seed(seed: int, name: str) -> int:
    """A seed for one named stream (a concept), independent of the order concepts are given."""
    return (int(seed) * 1_000_003 + zlib.crc32(name.encode("utf-8"))) % (2**32)


@dataclass
class CAVs:
    """``n_cavs`` unit vectors per layer, and each one's held-out AUROC along its direction."""

    name: str
    vectors: dict[int, np.ndarray]  # layer -> [K, D]
    heldout_auroc: dict[int, np.ndarray]  # layer -> [K]


def train_cavs(
    name: str,
    positive: TokenStates,
    negative: TokenStates,
    n_cavs: int,
    seed: int = 0,
    texts_per_cav: int = 50,
    max_tokens: int = 1000,
    progress: bool = False,
) -> CAVs:
    """``n_cavs`` CAVs per layer for ``positive`` vs ``negative``, each on its own random sample."""
    if positive.n_texts < 2 or negative.n_texts < 2:
        raise ExpnetError(f"concept {name!r}: CAVs need at least 2 concept and 2 negative texts")
    base = stream_seed(seed, name)
    n_pos, n_neg = _fitted_share(positive.n_texts, texts_per_cav), _fitted_share(negative.n_texts, texts_per_cav)
    vectors = {layer: [] for layer in positive.layers}
    aurocs = {layer: [] for layer in positive.layers}
    for k in tqdm(range(n_cavs), desc=f"CAVs {name}", disable=not progress, leave=False):
        rng = np.random.default_rng([base, k])
        pos_texts = rng.choice(positive.n_texts, n_pos, replace=False)
        neg_texts = rng.choice(negative.n_texts, n_neg, replace=False)
        pos_rows, neg_rows = _balanced(rng, positive.token_rows(pos_texts), negative.token_rows(neg_texts), max_tokens)
        held_pos = np.setdiff1d(np.arange(positive.n_texts), pos_texts)
        held_neg = np.setdiff1d(np.arange(negative.n_texts), neg_texts)
        held_pos_rows, held_neg_rows = _balanced(rng, positive.token_rows(held_pos), negative.token_rows(held_neg), max_tokens)
        for layer in positive.layers:
            cav = fit_cav(positive.states[layer][pos_rows], negative.states[layer][neg_rows], seed=k)
            vectors[layer].append(cav)
            aurocs[layer].append(_auroc(cav, positive.states[layer][held_pos_rows], negative.states[layer][held_neg_rows]))
    return CAVs(name, {layer: np.stack(v) for layer, v in vectors.items()}, {layer: np.array(a) for layer, a in aurocs.items()})


def _fitted_share(n_texts: int, texts_per_cav: int) -> int:
    """How many of a set's texts one CAV is fitted on: at most ``texts_per_cav`` and 80% of them,
    leaving at least one text out for its held-out AUROC (a small set would leave none: NaN)."""
    return min(texts_per_cav, max(1, min(math.ceil(0.8 * n_texts), n_texts - 1)))


def train_random_cavs(
    pool: TokenStates,
    n_cavs: int,
    seed: int = 0,
    texts_per_cav: int = 50,
    max_tokens: int = 1000,
    name: str = "random",
    progress: bool = False,
) -> CAVs:
    """Random-vs-random CAVs: each separates two disjoint random samples of the random texts."""
    if pool.n_texts < 4:
        raise ExpnetError(f"the random set has {pool.n_texts} texts; give at least 4 (a few hundred is better)")
    base = stream_seed(seed, f"random-vs-random:{name}")
    half = _fitted_share(pool.n_texts // 2, texts_per_cav)  # and at least one text of each half left for the AUROC
    vectors = {layer: [] for layer in pool.layers}
    aurocs = {layer: [] for layer in pool.layers}
    for k in tqdm(range(n_cavs), desc="CAVs random vs random", disable=not progress, leave=False):
        rng = np.random.default_rng([base, k])
        order = rng.permutation(pool.n_texts)
        a_texts, b_texts, rest = order[:half], order[half : 2 * half], order[2 * half :]
        a_rows, b_rows = _balanced(rng, pool.token_rows(a_texts), pool.token_rows(b_texts), max_tokens)
        split = len(rest) // 2
        held_a, held_b = _balanced(rng, pool.token_rows(rest[:split]), pool.token_rows(rest[split:]), max_tokens)
        for layer in pool.layers:
            cav = fit_cav(pool.states[layer][a_rows], pool.states[layer][b_rows], seed=k)
            vectors[layer].append(cav)
            aurocs[layer].append(_auroc(cav, pool.states[layer][held_a], pool.states[layer][held_b]))
    return CAVs(name, {layer: np.stack(v) for layer, v in vectors.items()}, {layer: np.array(a) for layer, a in aurocs.items()})
