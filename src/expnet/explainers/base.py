"""One interface for every explainer, and the result type they all return.

Explainers follow scikit-learn's rule: the constructor only stores settings. ``explain`` takes a
classifier and a batch of texts (raw strings or word lists), an optional target class per text
(default: the predicted class), and returns one ``Explanation`` per text with one score per word.
Subclasses implement ``explain_batch`` on an already encoded batch.

Batches are formed from texts of similar token length (less padding), and every random draw an
explainer makes for a text comes from that text's own seed (``text_seed``: the explainer's seed
and the text's words), so a text's scores never depend on the batch size, on its batch-mates or
on where it stands in the input.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch
from tqdm.auto import tqdm

from expnet.io import strict_json
from expnet.models.classifier import Classifier
from expnet.words import EncodedBatch, split_text

TextLike = str | Sequence[str]

# Texts are sorted by token length within windows of this many batches: long enough for batches
# of similar lengths, short enough that a stream of texts is not read and tokenised all at once.
BUCKET_BATCHES = 64


def text_seed(seed: int, words: Sequence[str]) -> int:
    """A 63-bit seed for one text, from the explainer's seed and the text's words only. hashlib,
    not ``hash()``: Python salts string hashes per process, and the seed must survive restarts."""
    key = json.dumps([int(seed), list(words)], ensure_ascii=False).encode("utf-8", "surrogatepass")
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "little") >> 1


@contextlib.contextmanager
def seeded_torch(seed: int) -> Iterator[None]:
    """Torch's global CPU generator seeded with ``seed`` for the block, and restored after, for
    libraries (Captum) that draw from it; CUDA generators are neither seeded nor changed."""
    with torch.random.fork_rng(devices=[]):
        torch.random.default_generator.manual_seed(seed)
        yield


@dataclass
class Explanation:
    """Word-level scores for one text.

    ``scores`` has one float per word; words without subword tokens have ``scored`` False and
    score NaN: those cut off by truncation (``cut`` True) and those the tokenizer drops entirely
    (zero-width or control characters; ``cut`` False). ``cut`` None counts every unscored word as
    cut. ``rationale`` is the explainer's own binary selection when it makes one (ExpNet), else None.
    """

    words: list[str]
    scores: np.ndarray
    scored: np.ndarray
    target: int
    prediction: int
    probabilities: np.ndarray
    explainer: str
    label_names: tuple[str, ...] = ()
    rationale: np.ndarray | None = None
    cut: np.ndarray | None = None

    @property
    def cut_words(self) -> np.ndarray:
        """Bool per word: lost to truncation."""
        return ~self.scored if self.cut is None else self.cut & ~self.scored

    @property
    def truncated(self) -> bool:
        return bool(self.cut_words.any())

    @property
    def tokenless(self) -> np.ndarray:
        """Bool per word: unscored because the tokenizer makes no piece of it (not truncation)."""
        return ~self.scored & ~self.cut_words

    @property
    def target_name(self) -> str:
        return self.label_names[self.target] if self.label_names else str(self.target)

    @property
    def prediction_name(self) -> str:
        return self.label_names[self.prediction] if self.label_names else str(self.prediction)

    def to_dict(self) -> dict:
        """Plain JSON data; ``from_dict`` reads it back (names and truncation are derived there)."""
        return {
            "explainer": self.explainer,
            "words": list(self.words),
            # A non-finite score is as missing as an unscored word's: null either way (strict JSON).
            "scores": strict_json(self.scores.tolist()),
            "scored": [bool(s) for s in self.scored],
            "rationale": None if self.rationale is None else [int(r) for r in self.rationale],
            "target": self.target,
            "target_name": self.target_name,
            "prediction": self.prediction,
            "prediction_name": self.prediction_name,
            "label_names": list(self.label_names),
            "probabilities": [float(p) for p in self.probabilities],
            "truncated": self.truncated,
            "unscored_reason": [
                None if scored else "truncated" if cut else "no subword tokens"
                for scored, cut in zip(self.scored, self.cut_words, strict=True)
            ],
        }

    @classmethod
    def from_dict(cls, data: dict) -> Explanation:
        """The explanation ``to_dict`` wrote (nulls become NaN scores); a ValueError when its parts
        disagree (an edited or damaged file would otherwise fail later, far from its cause)."""
        n = len(data["words"])
        per_word = {key: data[key] for key in ("scores", "scored", "unscored_reason", "rationale") if data[key] is not None}
        for key, values in per_word.items():
            if len(values) != n:
                raise ValueError(f"{len(values)} {key} for {n} words")
        classes = len(data.get("label_names") or data["probabilities"])
        for key in ("target", "prediction"):
            if not isinstance(data[key], int) or isinstance(data[key], bool) or not 0 <= data[key] < classes:
                raise ValueError(f"{key} {data[key]!r} is not one of the {classes} classes")
        if len(data["probabilities"]) != classes:
            raise ValueError(f"{len(data['probabilities'])} probabilities for {classes} classes")
        return cls(
            words=list(data["words"]),
            scores=np.array([np.nan if s is None else s for s in data["scores"]], dtype=np.float64),
            scored=np.array(data["scored"], dtype=bool),
            target=int(data["target"]),
            prediction=int(data["prediction"]),
            probabilities=np.array([np.nan if p is None else p for p in data["probabilities"]], dtype=np.float64),
            explainer=data["explainer"],
            label_names=tuple(data.get("label_names", ())),
            rationale=None if data["rationale"] is None else np.array(data["rationale"], dtype=np.int8),
            cut=np.array([reason == "truncated" for reason in data["unscored_reason"]], dtype=bool),
        )


@dataclass
class BatchAttribution:
    """What ``explain_batch`` returns: word scores [B, W] and the logits [B, C] it saw."""

    word_scores: torch.Tensor
    logits: torch.Tensor
    rationale: torch.Tensor | None = None


@dataclass(frozen=True)
class ExplainerInfo:
    name: str
    family: str
    cost: str  # forward/backward passes per text, as a formula of the settings
    signed: bool
    explains: str  # the quantity attributed: attention, logit or probability
    default_budget: str
    settings: dict = field(default_factory=dict)


NOT_FINITE = (
    "the classifier's logits are not finite (NaN or infinite): its weights are broken (a fine-tune that "
    "diverged, or a half-precision overflow: try --dtype float32)"
)


class Explainer(ABC):
    """Base class: subclasses set the class attributes and implement ``explain_batch``."""

    name: ClassVar[str]
    family: ClassVar[str]  # attention | attention-gradient | gradient | perturbation | learned | baseline
    cost: ClassVar[str] = "1 forward"
    signed: ClassVar[bool] = False
    explains: ClassVar[str] = "attention"
    needs_attention: ClassVar[bool] = False
    # Formatted with the constructor's defaults ("n_samples={n_samples}"), so the budget shown in
    # ``expnet explainers`` cannot drift from the one an explainer really runs with.
    default_budget: ClassVar[str] = "-"

    def __init__(self, batch_size: int = 16, seed: int = 0) -> None:
        self.batch_size = batch_size
        self.seed = seed

    @classmethod
    def reads_the_target(cls) -> bool:
        """Whether the scores depend on the class explained: attention, a readout state or
        nothing is the same whichever class is asked for."""
        return cls.explains in ("logit", "probability")

    @classmethod
    def info(cls) -> ExplainerInfo:
        defaults = {name: p.default for name, p in inspect.signature(cls).parameters.items() if p.default is not p.empty}
        return ExplainerInfo(cls.name, cls.family, cls.cost, cls.signed, cls.explains, cls.default_budget.format(**defaults), defaults)

    def settings(self) -> dict:
        return dict(vars(self))

    def text_seed(self, words: Sequence[str]) -> int:
        """The seed of every random draw made for this text (see ``text_seed``)."""
        return text_seed(self.seed, words)

    def text_generator(self, words: Sequence[str]) -> torch.Generator:
        """A CPU generator of its own for this text's random draws."""
        return torch.Generator().manual_seed(self.text_seed(words))

    def validate_settings(self) -> None:
        """Refuse a setting out of its range in one line (the constructor only stores them, as in
        scikit-learn); ``explain`` runs it first, and the benchmark before any work."""
        from expnet.errors import require_whole

        require_whole("batch_size", self.batch_size)

    def check(self, classifier: Classifier) -> None:  # noqa: B027 - a hook: most explainers read any classifier
        """Refuse a classifier this explainer cannot read, or warn that its scores on it are
        unmeasured; ``explain`` runs it first, and a Ray corpus job in its driver, where warnings
        reach the user (the workers' do not)."""

    @abstractmethod
    def explain_batch(
        self, classifier: Classifier, batch: EncodedBatch, targets: torch.Tensor | None
    ) -> BatchAttribution:
        """Word scores for an encoded batch; ``targets`` None means the predicted classes."""

    def explain(
        self,
        classifier: Classifier,
        texts: Sequence[TextLike],
        targets: Sequence[int] | None = None,
        progress: bool = False,
    ) -> list[Explanation]:
        """Explain texts (raw strings are split on whitespace) for target classes."""
        from expnet.errors import ExpnetError  # local: this method's checks are its only user here

        if isinstance(texts, str):  # iterating it would explain each character as a text
            raise ExpnetError("texts is one string; pass a list of texts, e.g. explain(classifier, [text])")
        self.validate_settings()
        self.check(classifier)
        all_words = [split_text(t) if isinstance(t, str) else list(t) for t in texts]
        if targets is not None and len(targets) != len(all_words):
            raise ValueError(f"{len(targets)} targets for {len(all_words)} texts")
        batches = length_buckets(classifier, all_words, self.batch_size)
        total = -(-len(all_words) // self.batch_size)
        results: dict[int, Explanation] = {}  # input index -> its explanation
        for indices in tqdm(batches, desc=self.name, total=total, disable=not progress or total < 2, leave=False):
            batch = classifier.encode([all_words[i] for i in indices])
            chunk_targets = None
            if targets is not None:
                chunk_targets = torch.tensor([classifier.label_id(targets[i]) for i in indices], device=classifier.device)
            try:
                attribution = self.explain_batch(classifier, batch, chunk_targets)
            except (ValueError, RuntimeError):  # an explainer's own code may fail on NaN first (LIME's regression)
                if not torch.isfinite(classifier.predict_logits(batch)).all():
                    raise ExpnetError(NOT_FINITE) from None
                raise
            if not torch.isfinite(attribution.logits).all():  # every score of such a model is meaningless
                raise ExpnetError(NOT_FINITE)
            if chunk_targets is not None and not self.reads_the_target():
                self._refuse_another_class(classifier, attribution.logits.detach().float(), chunk_targets)
            for i, explanation in zip(indices, self._unbatch(classifier, batch, attribution, chunk_targets), strict=True):
                results[i] = explanation
        return [results[i] for i in range(len(all_words))]

    def _refuse_another_class(self, classifier, logits: torch.Tensor, targets: torch.Tensor) -> None:
        """Scores that do not depend on the class explain the prediction at most: labelling them
        as another class's would be a silently wrong answer. A target within rounding of the top
        logit counts as the prediction (a near tie can flip between two passes over a text)."""
        from expnet.errors import ExpnetError

        predictions = logits.argmax(-1)
        gap = logits.max(-1).values - logits.gather(-1, targets.to(logits.device)[:, None])[:, 0]
        other = (gap > 1e-4).nonzero()
        if len(other):
            i = int(other[0])
            what = "nothing" if self.explains == "nothing" else f"the {self.explains}"
            raise ExpnetError(
                f"{self.name}'s scores are the same for every class (it explains {what}), so they cannot "
                f"explain {classifier.label_names[int(targets[i])]} where the prediction is "
                f"{classifier.label_names[int(predictions[i])]}; leave the target out, or use an explainer of a logit "
                "or probability ('expnet explainers')"
            )

    def _unbatch(self, classifier, batch, attribution, targets) -> list[Explanation]:
        logits = attribution.logits.detach().float().cpu()
        probabilities = logits.softmax(-1).numpy()
        predictions = logits.argmax(-1).numpy()
        chosen = predictions if targets is None else targets.cpu().numpy()
        scores = attribution.word_scores.detach().float().cpu().numpy()
        rationale = None if attribution.rationale is None else attribution.rationale.cpu().numpy()
        out = []
        for i, words in enumerate(batch.words):
            scored = batch.word_scored[i]
            word_scores = np.full(len(words), np.nan)
            n = min(len(words), scores.shape[1])
            word_scores[:n] = scores[i, :n]
            word_scores[~scored] = np.nan
            out.append(
                Explanation(
                    words=words,
                    scores=word_scores,
                    scored=scored,
                    target=int(chosen[i]),
                    prediction=int(predictions[i]),
                    probabilities=probabilities[i],
                    explainer=self.name,
                    label_names=classifier.label_names,
                    rationale=None if rationale is None else (rationale[i, : len(words)] * scored).astype(np.int8),
                    cut=batch.word_cut[i] if batch.word_cut else None,
                )
            )
        return out


def length_buckets(classifier: Classifier, all_words: Sequence[Sequence[str]], batch_size: int) -> Iterator[list[int]]:
    """Batches of text indices: within each window of ``BUCKET_BATCHES`` batches, the texts
    sorted by token length (stably, so equal lengths keep their input order) and cut into
    neighbours, so that short texts are not padded to a long one's length."""
    window = batch_size * BUCKET_BATCHES
    for first in range(0, len(all_words), window):
        indices = range(first, min(first + window, len(all_words)))
        texts = [" ".join(all_words[i]) for i in indices]
        lengths = [len(ids) for ids in classifier.tokenizer(texts, truncation=True, max_length=classifier.max_length)["input_ids"]]
        order = [indices[k] for k in sorted(range(len(texts)), key=lengths.__getitem__)]
        for start in range(0, len(order), batch_size):
            yield order[start : start + batch_size]


def resolve_targets(logits: torch.Tensor, targets: torch.Tensor | None) -> torch.Tensor:
    """The explicit targets, or the predicted class of each row."""
    return logits.argmax(-1) if targets is None else targets
