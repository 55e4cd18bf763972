"""Training ExpNet on human rationales, from one or more (classifier, task) sources.

Only examples the classifier predicts correctly are used by default (the paper's rule: a human
rationale explains the right answer, not a wrong one). A validation part of the *training*
examples, split by example, drives early stopping; the evaluation split is never seen.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from expnet.data.records import RationaleExample
from expnet.errors import ExpnetError
from expnet.models.classifier import Classifier
from expnet.network.features import FeatureSpec
from expnet.network.gradient_features import batch_features
from expnet.network.model import ExpNetModel

logger = logging.getLogger(__name__)


@dataclass
class ExpNetSettings:
    """Hyper-parameters (not public in the paper: chosen here and documented)."""

    layers: str | list[int] = "last"
    directions: tuple[str, ...] = ("cls_to_token", "token_to_cls")
    length_scaled: bool = True
    # ("attention",) = the paper; add "attention_x_gradient" for A * dlogit/dA values (gradient_features.py).
    feature_values: tuple[str, ...] = ("attention",)
    in_text: bool = False  # append per-text standardised features (features.py)
    hidden_size: int = 64
    dropout: float = 0.1
    focal_alpha: float = 0.5  # weight of the positive class
    focal_gamma: float = 2.0
    learning_rate: float = 3e-3
    weight_decay: float = 1e-4
    max_epochs: int = 60
    patience: int = 4
    batch_words: int = 4096  # words per step: rationale sets have 10^4-10^5 words
    validation_fraction: float = 0.15
    only_correct: bool = True
    gold_rule: str = "majority"
    feature_batch_size: int = 32

    def to_dict(self) -> dict:
        data = asdict(self)
        data["directions"] = list(self.directions)
        data["feature_values"] = list(self.feature_values)
        return data


@dataclass
class WordDataset:
    """Per-example word features and gold masks collected from one or more classifiers."""

    features: list[torch.Tensor] = field(default_factory=list)  # [W, F] each
    labels: list[torch.Tensor] = field(default_factory=list)  # [W] each
    tasks: list[str] = field(default_factory=list)
    skipped_wrong: int = 0
    skipped_unannotated: int = 0

    def __len__(self) -> int:
        return len(self.features)

    def extend(self, other: WordDataset) -> None:
        self.features += other.features
        self.labels += other.labels
        self.tasks += other.tasks
        self.skipped_wrong += other.skipped_wrong
        self.skipped_unannotated += other.skipped_unannotated


def focal_loss(logits: torch.Tensor, labels: torch.Tensor, alpha: float, gamma: float) -> torch.Tensor:
    """FL = -alpha_t (1 - p_t)^gamma log p_t, averaged (Lin et al. 2017)."""
    log_p = nn.functional.logsigmoid(logits)
    log_not_p = nn.functional.logsigmoid(-logits)
    log_p_t = torch.where(labels > 0.5, log_p, log_not_p)
    alpha_t = torch.where(labels > 0.5, torch.full_like(logits, alpha), torch.full_like(logits, 1 - alpha))
    return (-alpha_t * (1 - log_p_t.exp()).pow(gamma) * log_p_t).mean()


@torch.no_grad()
def collect_features(
    classifier: Classifier,
    examples: Sequence[RationaleExample],
    spec: FeatureSpec,
    settings: ExpNetSettings,
    dataset: WordDataset | None = None,
    progress: bool = True,
) -> WordDataset:
    """Run the classifier once per batch and keep the word features of usable examples."""
    dataset = WordDataset() if dataset is None else dataset
    spec.check_model(classifier.num_layers, classifier.num_heads)
    annotated = [e for e in examples if e.has_rationale]
    dataset.skipped_unannotated += len(examples) - len(annotated)
    step = settings.feature_batch_size
    for start in tqdm(range(0, len(annotated), step), desc="features", disable=not progress, leave=False):
        chunk = annotated[start : start + step]
        batch = classifier.encode([e.words for e in chunk])
        features, logits = batch_features(classifier, batch, spec)
        features = features.float().cpu()
        predictions = logits.argmax(-1).cpu()
        for i, example in enumerate(chunk):
            if settings.only_correct and int(predictions[i]) != example.label:
                dataset.skipped_wrong += 1
                continue
            scored = torch.from_numpy(batch.word_scored[i])
            gold = torch.from_numpy(example.gold_mask(settings.gold_rule).astype(np.float32))
            n = len(example.words)
            dataset.features.append(features[i, :n][scored])
            dataset.labels.append(gold[scored])
            dataset.tasks.append(example.task)
    return dataset


def _split(n: int, fraction: float, generator: torch.Generator) -> tuple[list[int], list[int]]:
    order = torch.randperm(n, generator=generator).tolist()
    n_val = max(1, round(n * fraction)) if n > 1 else 0
    return order[n_val:], order[:n_val]


def _stack(dataset: WordDataset, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    return (
        torch.cat([dataset.features[i] for i in indices]),
        torch.cat([dataset.labels[i] for i in indices]),
    )


def fit_model(dataset: WordDataset, spec: FeatureSpec, settings: ExpNetSettings, seed: int) -> tuple[ExpNetModel, dict]:
    """Fit the MLP with focal loss; early stopping on the validation examples' loss."""
    if len(dataset) < 2:
        raise ExpnetError(
            f"only {len(dataset)} usable training example(s) (annotated and, with only_correct, "
            "correctly classified); give more rationale data or a better classifier"
        )
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    train_idx, val_idx = _split(len(dataset), settings.validation_fraction, generator)
    x_train, y_train = _stack(dataset, train_idx)
    x_val, y_val = _stack(dataset, val_idx)
    model = ExpNetModel(spec.dim, settings.hidden_size, settings.dropout)
    model.set_feature_statistics(x_train)
    optimiser = torch.optim.AdamW(model.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay)
    loss_args = (settings.focal_alpha, settings.focal_gamma)
    best_loss, best_state, best_epoch, waited = float("inf"), None, 0, 0
    for epoch in range(settings.max_epochs):
        model.train()
        order = torch.randperm(len(x_train), generator=generator)
        for start in range(0, len(order), settings.batch_words):
            rows = order[start : start + settings.batch_words]
            optimiser.zero_grad()
            focal_loss(model(x_train[rows]), y_train[rows], *loss_args).backward()
            optimiser.step()
        model.eval()
        with torch.no_grad():
            val_loss = float(focal_loss(model(x_val), y_val, *loss_args))
        if val_loss < best_loss - 1e-6:
            best_loss, best_epoch, waited = val_loss, epoch, 0
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
        else:
            waited += 1
            if waited >= settings.patience:
                break
    model.load_state_dict(best_state)
    model.eval()
    history = {
        "train_examples": len(train_idx),
        "validation_examples": len(val_idx),
        "train_words": len(y_train),
        "positive_rate": float(y_train.mean()),
        "best_epoch": best_epoch,
        "best_validation_loss": best_loss,
        "skipped_wrong_predictions": dataset.skipped_wrong,
        "skipped_unannotated": dataset.skipped_unannotated,
    }
    return model, history


def settings_spec(settings: ExpNetSettings, classifier: Classifier) -> FeatureSpec:
    """The feature spec ``settings`` ask for on ``classifier``'s attention layout."""
    return FeatureSpec.for_model(
        classifier.num_layers, classifier.num_heads, settings.layers, settings.directions, settings.length_scaled,
        settings.feature_values, settings.in_text,
    )


def select_dataset(dataset: WordDataset, source: FeatureSpec, spec: FeatureSpec) -> WordDataset:
    """``dataset`` (collected with the wider spec ``source``) restricted to ``spec``'s features."""
    return WordDataset(
        features=[spec.select_columns(f, source) for f in dataset.features],
        labels=dataset.labels,
        tasks=dataset.tasks,
        skipped_wrong=dataset.skipped_wrong,
        skipped_unannotated=dataset.skipped_unannotated,
    )


def fit_expnet(dataset: WordDataset, spec: FeatureSpec, settings: ExpNetSettings, seed: int = 0):
    """Fit an ExpNet on collected word features; returns an ``ExpNetExplainer``."""
    from expnet.explainers.learned import ExpNetExplainer

    model, history = fit_model(dataset, spec, settings, seed)
    history["tasks"] = sorted(set(dataset.tasks))
    # Instance-averaged, so long documents do not dominate the rate used for top-k elsewhere.
    history["rationale_rate"] = float(np.mean([float(y.mean()) for y in dataset.labels]))
    return ExpNetExplainer(model=model, spec=spec, settings=settings, history=history)


def train_expnet(
    sources: Sequence[tuple[Classifier, Sequence[RationaleExample]]],
    settings: ExpNetSettings | None = None,
    seed: int = 0,
    progress: bool = True,
):
    """Train one ExpNet on every (classifier, examples) source; returns an ``ExpNetExplainer``."""
    settings = settings or ExpNetSettings()
    if not sources:
        raise ExpnetError("no training data: give at least one --task TASK=CLASSIFIER")
    spec = settings_spec(settings, sources[0][0])
    dataset = WordDataset()
    for classifier, examples in sources:
        collect_features(classifier, examples, spec, settings, dataset, progress)
    return fit_expnet(dataset, spec, settings, seed)
