"""Faithfulness: does removing the words an explanation ranks highest change the model's mind?

Conventions (documented because peers differ; ERASER, DeYoung et al. 2020, for the first two):

- **Comprehensiveness** of bin ``b``: ``p(y | x) - p(y | x without its top-k words)``; higher is
  more faithful. **Sufficiency**: ``p(y | x) - p(y | only its top-k words)``; lower is more
  faithful. ``y`` is the explained class (normally the prediction), ``p`` its softmax probability.
- **k** for a bin fraction ``b`` of a text with ``n`` scored words is ``min(n, max(1, ceil(b n)))``:
  at least one word, so a 1% bin of a 20-word tweet still removes one word. Words are ranked by
  score, highest first, ties to the earlier word; signed scores rank as they are (a negative
  score argues against ``y``).
- **AOPC** is the plain mean over the bins (default 1, 5, 10, 20, 50%) of the per-bin values,
  averaged over examples. (ERASER's formula divides the sum by ``|bins| + 1`` by counting the
  empty 0% bin; we do not, so our numbers are that times ``(|bins|+1)/|bins|``.)
- **Removal** (say which one a table shows; the numbers differ):
  ``"delete"`` drops the word's pieces from the token row, so the text gets shorter;
  ``"mask"`` replaces every piece by the tokenizer's mask token ([MASK], <mask>; the pad token if
  it has none), keeping the length. Special tokens are never removed, and no text is
  re-tokenised: the pieces are exactly those the classifier saw.
- Only **scored** words (not cut by truncation; finite score) are ranked or removed. Deleting a
  word never lets a truncated word slide into view, because removal works on the already
  truncated token row.
- **Kendall tau** (tau-b) per text between the explanation's scores and leave-one-out importance
  ``p(y | x) - p(y | x without word i)`` (same removal), over scored words, averaged over texts
  where it is defined (at least two words and neither ranking constant).

Forward passes are batched: every perturbed row of a chunk of texts goes through the classifier
``batch_size`` rows at a time, padded.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.stats import kendalltau
from tqdm.auto import tqdm

from expnet.errors import ExpnetError
from expnet.explainers.perturbation import DELETED, TextPerturbation, leave_one_word_out, replacement_id
from expnet.io import strict_json
from expnet.models.classifier import Classifier
from expnet.models.readout import head_reads_readout, is_causal

DEFAULT_BINS = (0.01, 0.05, 0.10, 0.20, 0.50)
REMOVALS = ("delete", "mask")
MASK_HINT = "use removal='delete'"


def words_for_bin(n_words: int, fraction: float) -> int:
    """How many of ``n_words`` words a bin removes (or keeps): at least one, at most all."""
    if n_words <= 0:
        return 0
    return min(n_words, max(1, math.ceil(fraction * n_words - 1e-9)))


def _pad_id(classifier: Classifier) -> int:
    pad = getattr(classifier.tokenizer, "pad_token_id", None)
    return int(pad) if pad is not None else 0


def _check(removal: str, bins: Sequence[float]) -> None:
    if removal not in REMOVALS:
        raise ExpnetError(f"unknown removal {removal!r}: use one of {', '.join(REMOVALS)}")
    if not bins or any(not 0 < b <= 1 for b in bins):
        raise ExpnetError(f"faithfulness bins must be fractions in (0, 1], got {list(bins)}")


class _RowRunner:
    """Builds perturbed token rows of encoded texts and scores them in padded batches.

    Identical perturbations of a text (e.g. bins that remove the same number of words of a short
    text) share one row, and rows are sorted by length before batching so padding stays small.
    """

    def __init__(self, classifier: Classifier, removal: str, batch_size: int, progress: str | None = None) -> None:
        self.classifier = classifier
        self.progress = progress  # a tqdm label, or None for no bar
        self.removal = removal
        self.batch_size = max(1, int(batch_size))
        self.replacement = replacement_id(classifier, MASK_HINT) if removal == "mask" else None
        self.pad = _pad_id(classifier)
        self.rows: list[tuple[torch.Tensor, torch.Tensor | None]] = []
        self.targets: list[int] = []
        self.seen: dict[tuple, int] = {}

    def add(self, text: int, ids: torch.Tensor, types: torch.Tensor | None, token_word: torch.Tensor, removed: np.ndarray, target: int) -> int:
        """Queue text number ``text`` with the words in ``removed`` (bool per word) taken out;
        returns its row (an earlier row when the same perturbation was already queued)."""
        removed = np.asarray(removed, dtype=bool)
        memo = (text, int(target), removed.tobytes())
        if memo in self.seen:
            return self.seen[memo]
        removed_t = torch.from_numpy(removed)
        is_word = token_word >= 0
        drop = torch.zeros_like(is_word)
        if removed_t.numel():
            drop[is_word] = removed_t[token_word[is_word]]
        if self.removal == "delete":
            keep = ~drop
            row = (ids[keep], None if types is None else types[keep])
        else:
            assert self.replacement is not None  # set in __init__ whenever removal is "mask"
            new_ids = ids.clone()
            new_ids[drop] = self.replacement
            row = (new_ids, types)
        self.rows.append(row)
        self.targets.append(int(target))
        self.seen[memo] = len(self.rows) - 1
        return len(self.rows) - 1

    @torch.no_grad()
    def run(self) -> np.ndarray:
        """Target-class probabilities of every queued row, in order."""
        out = np.empty(len(self.rows), dtype=np.float64)
        device = self.classifier.device
        order = sorted(range(len(self.rows)), key=lambda r: int(self.rows[r][0].numel()))
        starts = range(0, len(order), self.batch_size)
        for start in tqdm(starts, desc=self.progress, disable=self.progress is None, leave=False):
            rows = order[start : start + self.batch_size]
            chunk = [self.rows[r] for r in rows]
            width = max(1, max(int(ids.numel()) for ids, _ in chunk))
            ids = torch.full((len(chunk), width), self.pad, dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            types = None if chunk[0][1] is None else torch.zeros((len(chunk), width), dtype=torch.long)
            for i, (row_ids, row_types) in enumerate(chunk):
                n = int(row_ids.numel())
                ids[i, :n] = row_ids
                mask[i, :n] = 1
                if types is not None and row_types is not None:
                    types[i, :n] = row_types
            inputs = {"input_ids": ids.to(device), "attention_mask": mask.to(device)}
            if types is not None:
                inputs["token_type_ids"] = types.to(device)
            if is_causal(self.classifier.config):
                # A decoder's masked piece is often the pad token, which its head skips on input
                # ids (masking the last word would delete it); on embeddings the head reads each
                # row's last real token by the mask, as leave-one-out and occlusion do.
                inputs["inputs_embeds"] = self.classifier.input_embeddings()(inputs.pop("input_ids"))
                with head_reads_readout(self.classifier):
                    logits = self.classifier.model(**inputs).logits
            else:
                logits = self.classifier.model(**inputs).logits
            probabilities = logits.float().softmax(-1).cpu()
            targets = torch.tensor([self.targets[r] for r in rows])
            out[rows] = probabilities.gather(1, targets.view(-1, 1)).squeeze(1).numpy()
        self.rows, self.targets, self.seen = [], [], {}
        return out


def _texts(classifier: Classifier, words: Sequence[Sequence[str]], chunk: int):
    """Yield (text index, token ids, token types, token->word map, scored mask) per text."""
    for start in range(0, len(words), chunk):
        batch = classifier.encode([list(w) for w in words[start : start + chunk]])
        for i in range(batch.batch_size):
            real = batch.attention_mask[i].bool().cpu()
            ids = batch.input_ids[i].cpu()[real]
            types = None if batch.token_type_ids is None else batch.token_type_ids[i].cpu()[real]
            token_word = batch.token_word[i].cpu()[real]
            yield start + i, ids, types, token_word, batch.word_scored[i]


def _ranking(scores: np.ndarray, usable: np.ndarray) -> np.ndarray:
    """Indices of the usable words, highest score first, ties to the earlier word."""
    index = np.flatnonzero(usable)
    order = np.argsort(-scores[index], kind="stable")
    return index[order]


@dataclass
class FaithfulnessScores:
    """Per-text probabilities behind the metrics, so any subset can be summarised again.

    ``removed[i, b]``: p(y) with the top-k words of bin b removed; ``kept[i, b]``: with only
    them kept; ``kendall[i]``: tau against leave-one-out (NaN where undefined or not computed).
    """

    removal: str
    bins: tuple[float, ...]
    full: np.ndarray  # [N]
    removed: np.ndarray  # [N, bins]
    kept: np.ndarray  # [N, bins]
    kendall: np.ndarray = field(default_factory=lambda: np.empty(0))  # [N] or empty

    @property
    def n_examples(self) -> int:
        return len(self.full)

    def comprehensiveness_per_bin(self) -> np.ndarray:
        return (self.full[:, None] - self.removed).mean(0) if self.n_examples else np.full(len(self.bins), np.nan)

    def sufficiency_per_bin(self) -> np.ndarray:
        return (self.full[:, None] - self.kept).mean(0) if self.n_examples else np.full(len(self.bins), np.nan)

    @property
    def comprehensiveness(self) -> float:
        """AOPC: mean over bins (and examples) of the drop when the top words are removed."""
        return float(self.comprehensiveness_per_bin().mean())

    @property
    def sufficiency(self) -> float:
        """AOPC: mean over bins (and examples) of the drop when only the top words are kept."""
        return float(self.sufficiency_per_bin().mean())

    @property
    def kendall_tau(self) -> float:
        finite = self.kendall[np.isfinite(self.kendall)] if self.kendall.size else self.kendall
        return float(finite.mean()) if finite.size else float("nan")

    def deletion_curve(self) -> list[float]:
        """Mean p(y) with 0% and then each bin's top words removed (for plots)."""
        if not self.n_examples:
            return [float("nan")] * (len(self.bins) + 1)
        return [float(self.full.mean())] + [float(v) for v in self.removed.mean(0)]

    def subset(self, indices: Sequence[int]) -> FaithfulnessScores:
        rows = np.asarray(list(indices), dtype=np.int64)
        return FaithfulnessScores(
            self.removal,
            self.bins,
            self.full[rows],
            self.removed[rows],
            self.kept[rows],
            self.kendall[rows] if self.kendall.size else self.kendall,
        )

    def summary(self) -> dict:
        return {
            "removal": self.removal,
            "bins": list(self.bins),
            "comprehensiveness": self.comprehensiveness,
            "sufficiency": self.sufficiency,
            "comprehensiveness_per_bin": [float(v) for v in self.comprehensiveness_per_bin()],
            "sufficiency_per_bin": [float(v) for v in self.sufficiency_per_bin()],
            "kendall_tau": self.kendall_tau if self.kendall.size else None,
            "n_kendall": int(np.isfinite(self.kendall).sum()) if self.kendall.size else 0,
            "deletion_curve": self.deletion_curve(),
            "n_examples": self.n_examples,
        }

    def to_arrays(self) -> dict:
        """JSON-ready per-example values, NaN as null (``from_arrays`` reads them back)."""
        return strict_json(
            {
                "removal": self.removal,
                "bins": list(self.bins),
                "full": self.full.tolist(),
                "removed": self.removed.tolist(),
                "kept": self.kept.tolist(),
                "kendall": np.ravel(self.kendall).tolist(),
            }
        )

    @classmethod
    def from_arrays(cls, data: dict) -> FaithfulnessScores:
        def floats(x):
            return np.array([np.nan if v is None else v for v in x], dtype=np.float64)

        bins = tuple(data["bins"])
        return cls(
            data["removal"],
            bins,
            floats(data["full"]),
            np.array([floats(r) for r in data["removed"]]).reshape(-1, len(bins)),
            np.array([floats(r) for r in data["kept"]]).reshape(-1, len(bins)),
            floats(data["kendall"]),
        )


def leave_one_out(
    classifier: Classifier,
    words: Sequence[Sequence[str]],
    targets: Sequence[int],
    removal: str = "mask",
    batch_size: int = 32,
    progress: bool = False,
) -> list[np.ndarray]:
    """Per text: ``p(y | x) - p(y | x without word i)`` for each scored word (NaN if unscored).

    The occlusion explainer's engine (``leave_one_word_out``), text by text with ``batch_size``
    rows a pass: with ``removal="mask"`` the numbers are occlusion's scores."""
    _check(removal, DEFAULT_BINS)
    baseline = replacement_id(classifier, MASK_HINT) if removal == "mask" else DELETED
    results = []
    starts = range(0, len(words), batch_size)
    for start in tqdm(starts, desc=f"leave-one-out ({removal})", disable=not progress, leave=False):
        batch = classifier.encode([list(w) for w in words[start : start + batch_size]])
        for i, text_words in enumerate(batch.words):
            text = TextPerturbation(classifier, batch, i)
            importance = np.full(len(text_words), np.nan)
            if text.num_features:
                drops = leave_one_word_out(text, int(targets[start + i]), baseline, batch_size)
                scored = batch.word_scored[i]
                importance[scored] = text.word_scores(drops, len(text_words)).numpy()[scored]
            results.append(importance)
    return results


def kendall_against(scores: np.ndarray, reference: np.ndarray) -> float:
    """Kendall tau-b over the words both score (finite); NaN when it is undefined."""
    scores, reference = np.asarray(scores, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    usable = np.isfinite(scores) & np.isfinite(reference)
    if usable.sum() < 2 or np.ptp(scores[usable]) == 0 or np.ptp(reference[usable]) == 0:
        return float("nan")
    return float(kendalltau(scores[usable], reference[usable]).statistic)


def faithfulness(
    classifier: Classifier,
    words: Sequence[Sequence[str]],
    scores: Sequence[np.ndarray],
    targets: Sequence[int],
    **options,
) -> FaithfulnessScores:
    """Comprehensiveness and sufficiency per bin (and Kendall tau against leave-one-out when
    ``kendall`` is set or ``loo`` is given) of word ``scores`` for classes ``targets``.

    ``scores`` holds one array per text with one value per word (NaN = not scored); ``options``
    are ``faithfulness_many``'s (``removal``, ``bins``, ``batch_size``, ``kendall``, ``loo``,
    ``progress``), with its defaults: pass the ``leave_one_out`` result as ``loo`` to share it
    between explainers.
    """
    if len(scores) != len(words):
        raise ValueError(f"{len(words)} texts but {len(scores)} score arrays")
    return faithfulness_many(classifier, words, {"scores": scores}, targets, **options)["scores"]


def faithfulness_many(
    classifier: Classifier,
    words: Sequence[Sequence[str]],
    scores: Mapping[str, Sequence[np.ndarray]],
    targets: Sequence[int],
    removal: str = "mask",
    bins: Sequence[float] = DEFAULT_BINS,
    batch_size: int = 32,
    kendall: bool = False,
    loo: Sequence[np.ndarray] | None = None,
    progress: bool = False,
) -> dict[str, FaithfulnessScores]:
    """``faithfulness`` of several explainers' scores of the same texts in one pass: a
    perturbation two explainers share (the full text, the same top words) is scored once.
    Each explainer's score list may cover only the first texts (a common prefix subset)."""
    _check(removal, bins)
    bins = tuple(float(b) for b in bins)
    if len(targets) != len(words):
        raise ValueError(f"{len(words)} texts but {len(targets)} targets")
    for name, values in scores.items():
        if len(values) > len(words):
            raise ValueError(f"{name}: {len(values)} score arrays for {len(words)} texts")
    needed = max((len(v) for v in scores.values()), default=0)
    runner = _RowRunner(classifier, removal, batch_size, f"faithfulness ({removal})" if progress else None)
    plans: dict[str, list] = {name: [] for name in scores}
    for index, ids, types, token_word, scored in _texts(classifier, words[:needed], batch_size):
        n = len(words[index])
        target = targets[index]
        full_row = runner.add(index, ids, types, token_word, np.zeros(n, dtype=bool), target)
        for name, values in scores.items():
            if index >= len(values):
                continue
            text_scores = np.asarray(values[index], dtype=np.float64)
            if len(text_scores) != n:
                raise ValueError(f"{name}, text {index}: {len(text_scores)} scores for {n} words")
            order = _ranking(text_scores, scored & np.isfinite(text_scores))
            removed_rows, kept_rows = [], []
            for fraction in bins:
                top = np.zeros(n, dtype=bool)
                top[order[: words_for_bin(len(order), fraction)]] = True
                removed_rows.append(runner.add(index, ids, types, token_word, top, target))
                # Only the top words kept: every other word's pieces go, those of a last word the
                # truncation cut in two included (unscored, yet its first pieces are in the row).
                kept_rows.append(runner.add(index, ids, types, token_word, ~top, target))
            plans[name].append((full_row, removed_rows, kept_rows))
    probabilities = runner.run()
    if (kendall or loo is not None) and loo is None:
        loo = leave_one_out(classifier, words[:needed], targets[:needed], removal, batch_size, progress)
    results = {}
    for name, plan in plans.items():
        full = np.array([probabilities[p[0]] for p in plan])
        removed = np.array([[probabilities[r] for r in p[1]] for p in plan]).reshape(-1, len(bins))
        kept = np.array([[probabilities[r] for r in p[2]] for p in plan]).reshape(-1, len(bins))
        taus = np.empty(0)
        if loo is not None:
            if len(loo) < len(plan):
                raise ValueError(f"{len(loo)} leave-one-out arrays for {len(plan)} texts")
            taus = np.array([kendall_against(s, r) for s, r in zip(scores[name], loo, strict=False)], dtype=np.float64)
        results[name] = FaithfulnessScores(removal, bins, full, removed, kept, taus)
    return results
