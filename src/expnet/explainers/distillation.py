"""ExpNet + unlabelled target texts: adaptation to a task without its rationales.

A user always has texts of their own task, without rationales. A slow teacher explainer (saliency
by default, or a rank-mean of several) scores the words of those texts with the user's own
classifier; the within-text rank of each word, sharpened, becomes a soft target that the listwise
loss learns next to the source tasks' human rationales. ExpNet reads the same forward-only
features as before, so its cost at inference does not change; only training pays the teacher.

The rationale rate ExpNet reports (and the top-k that other explainers are binarised with) stays
that of the human rationales: the teacher's soft targets have no rate of their own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy.stats import rankdata
from tqdm.auto import tqdm

from expnet.data.splits import seeded_draw
from expnet.errors import ExpnetError, require_whole
from expnet.explainers.base import Explainer
from expnet.explainers.learned import ExpNetExplainer
from expnet.explainers.registry import explainer_names, get_explainer
from expnet.models.classifier import Classifier
from expnet.network.features import FeatureSpec
from expnet.network.gradient_features import batch_features
from expnet.network.training import TEACHER_TASK, ExpNetSettings, WordDataset, collect_sources

Words = Sequence[str]  # one text, already split into words
UnlabelledSource = tuple[Classifier, Sequence[Words]]


@dataclass(frozen=True)
class TeacherSettings:
    """How the unlabelled texts are labelled: ``teachers`` (registered explainer names; several
    are combined by their mean within-text rank), ``sharpness`` (target = rank ** sharpness, so the
    teacher's top words carry most of a text's mass) and ``max_texts`` per source."""

    teachers: tuple[str, ...] = ("saliency",)
    sharpness: float = 4.0
    max_texts: int = 1500

    def __post_init__(self) -> None:
        if not self.teachers:
            raise ExpnetError("give at least one teacher explainer, e.g. saliency")
        unknown = [name for name in self.teachers if name not in explainer_names()]
        if unknown:  # before any feature is computed, not after
            raise ExpnetError(f"unknown teacher explainer {unknown[0]!r}: use registered names ({', '.join(explainer_names())})")
        if not self.sharpness > 0:
            raise ExpnetError(f"teacher sharpness must be > 0, got {self.sharpness!r}")
        require_whole("max unlabelled texts", self.max_texts)

    def to_dict(self) -> dict:
        return {"teachers": list(self.teachers), "sharpness": self.sharpness, "max_texts": self.max_texts}


def soft_targets(teacher_scores: Sequence[np.ndarray], sharpness: float) -> np.ndarray:
    """The mean within-text rank (in (0, 1], ties averaged) of every teacher's scores, ** sharpness."""
    ranks = np.mean([rankdata(np.nan_to_num(s, nan=-np.inf)) / len(s) for s in teacher_scores], axis=0)
    return (ranks**sharpness).astype(np.float32)


@torch.no_grad()
def _features(
    classifier: Classifier, texts: Sequence[Words], spec: FeatureSpec, batch_size: int, progress: bool
) -> list[tuple[torch.Tensor, np.ndarray]]:
    """Each text's word features [W, F] and which of its words the classifier saw."""
    out = []
    for start in tqdm(range(0, len(texts), batch_size), desc="unlabelled features", disable=not progress, leave=False):
        chunk = texts[start : start + batch_size]
        batch = classifier.encode(chunk)
        features, _ = batch_features(classifier, batch, spec)
        features = features.float().cpu()
        out += [(features[i, : len(words)], batch.word_scored[i]) for i, words in enumerate(chunk)]
    return out


def teacher_dataset(
    classifier: Classifier,
    texts: Sequence[Words],
    teachers: Sequence[Explainer],
    spec: FeatureSpec,
    sharpness: float,
    task: str = TEACHER_TASK,
    batch_size: int = 16,
    progress: bool = True,
) -> WordDataset:
    """Word features of ``texts`` with the teachers' soft targets on their scored words."""
    texts = [list(t) for t in texts if len(t) > 0]
    scores = [[e.scores for e in t.explain(classifier, texts, progress=progress)] for t in teachers]
    dataset = WordDataset()
    for i, (features, scored) in enumerate(_features(classifier, texts, spec, batch_size, progress)):
        if not scored.any():
            continue
        dataset.features.append(features[torch.from_numpy(scored)])
        dataset.labels.append(torch.from_numpy(soft_targets([s[i][scored] for s in scores], sharpness)))
        dataset.tasks.append(task)
    return dataset


def _check_loss(settings: ExpNetSettings) -> None:
    if "listwise" not in settings.loss:
        raise ExpnetError("adaptation with unlabelled texts needs a listwise loss (--recipe transfer): soft teacher targets have no threshold")


def fit_with_unlabelled(
    human: WordDataset,
    spec: FeatureSpec,
    unlabelled: Sequence[UnlabelledSource],
    settings: ExpNetSettings,
    teacher: TeacherSettings,
    seed: int = 0,
    progress: bool = True,
) -> ExpNetExplainer:
    """ExpNet fitted on ``human`` (collected human-rationale features) and on the teachers' soft
    targets for each (classifier, unlabelled texts) pair; at most ``teacher.max_texts`` texts of
    each, a seeded random draw (a file's first lines need not be typical of it)."""
    _check_loss(settings)
    dataset = WordDataset()
    dataset.extend(human)  # a copy: the caller's dataset (e.g. a cached feature bank) stays as it was
    human_rate = float(np.mean([float(y.mean()) for y in human.labels])) if len(human) else None
    teachers = [get_explainer(name, seed=seed) for name in teacher.teachers]
    n_texts = []
    for number, (classifier, texts) in enumerate(unlabelled):
        chosen = seeded_draw(list(texts), teacher.max_texts, f"{seed}:unlabelled:{number}")
        extra = teacher_dataset(classifier, chosen, teachers, spec, teacher.sharpness, f"{TEACHER_TASK}-{number}", progress=progress)
        dataset.extend(extra)
        n_texts.append(len(extra))
    explainer = ExpNetExplainer.fit(dataset, spec, settings, seed)
    explainer.history["rationale_rate"] = human_rate
    explainer.history["unlabelled"] = {**teacher.to_dict(), "texts": n_texts}
    return explainer


def train_with_unlabelled(
    sources: Sequence[tuple[Classifier, Sequence]],
    unlabelled: Sequence[UnlabelledSource],
    settings: ExpNetSettings,
    teacher: TeacherSettings | None = None,
    seed: int = 0,
    progress: bool = True,
) -> ExpNetExplainer:
    """ExpNet trained on the sources' human rationales and on the teachers' soft targets for each
    (classifier, unlabelled texts) pair (``fit_with_unlabelled``)."""
    _check_loss(settings)  # before the feature pass, not after it
    dataset, spec = collect_sources(sources, settings, progress)
    explainer = fit_with_unlabelled(dataset, spec, unlabelled, settings, teacher or TeacherSettings(), seed, progress)
    return explainer.trained_on([classifier for classifier, _ in sources] + [classifier for classifier, _ in unlabelled])
