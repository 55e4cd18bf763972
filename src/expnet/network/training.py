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
from torch.nn.utils.rnn import pad_sequence
from tqdm.auto import tqdm

from expnet.data.records import GoldRule, RationaleExample
from expnet.errors import ExpnetError, require_number, require_whole
from expnet.models.classifier import Classifier
from expnet.network.features import FeatureSpec
from expnet.network.gradient_features import batch_features
from expnet.network.model import ExpNetModel

logger = logging.getLogger(__name__)

LOSSES = ("focal", "listwise", "focal+listwise")
# The task name of texts labelled by a teacher explainer, not by people (then "-<number>").
TEACHER_TASK = "unlabelled"


@dataclass
class ExpNetSettings:
    """Hyper-parameters (not public in the paper: chosen here and documented)."""

    layers: str | list[int] = "last"
    directions: tuple[str, ...] = ("cls_to_token", "token_to_cls")
    length_scaled: bool = True
    # ("attention",) = the paper; "attention_x_gradient" (A * dlogit/dA) and "head_norm"
    # (||alpha f(x)||) per head too; see features.py.
    feature_values: tuple[str, ...] = ("attention",)
    signals: tuple[str, ...] = ()  # per-token signals: value_zeroing, globenc, alti
    word_properties: tuple[str, ...] = ()  # stopword, punctuation, word_length, position (features.py)
    head_pooling: str = "none"  # "quantiles": order statistics over heads (features.py)
    views: tuple[str, ...] = ()  # absolute, zscore, rank; empty = absolute (+ zscore with in_text)
    in_text: bool = False  # append per-text standardised features (kept for saved configs)
    # "focal" (the paper's per-word loss), "listwise" (softmax over each text's words against its
    # gold words: only the order within a text is learned, not the task's rationale rate), or
    # "focal+listwise" (their sum).
    loss: str = "focal"
    # A feature name (FeatureSpec.names()) the score starts from: score = w * feature + MLP(x),
    # the MLP's last layer starting at zero, so the network learns a correction of a strong signal.
    anchor: str | None = None
    soft_labels: bool = False  # train on the annotators' mean mask instead of the gold rule's 0/1
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
    gold_rule: GoldRule = "majority"
    feature_batch_size: int = 32

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ExpnetError(f"unknown ExpNet loss {self.loss!r}: use one of {', '.join(LOSSES)}")
        for name in ("hidden_size", "max_epochs", "patience", "batch_words", "feature_batch_size"):
            require_whole(name, getattr(self, name))
        require_number("dropout", self.dropout, 0, 1, open_high=True)
        require_number("learning_rate", self.learning_rate, 0, open_low=True)
        require_number("weight_decay", self.weight_decay, 0)
        require_number("validation_fraction", self.validation_fraction, 0, 1, open_low=True, open_high=True)
        require_number("focal_alpha", self.focal_alpha, 0, 1)
        require_number("focal_gamma", self.focal_gamma, 0)
        listed = isinstance(self.layers, list | tuple) and all(type(i) is int for i in self.layers)
        if self.layers not in ("last", "all") and not (listed and self.layers):
            raise ExpnetError(f"layers must be 'last', 'all' or a list of layer numbers, got {self.layers!r}")

    def to_dict(self) -> dict:
        data = asdict(self)
        for name in ("directions", "feature_values", "signals", "views", "word_properties"):
            data[name] = list(getattr(self, name))
        return data


# Named starting points for ``ExpNetSettings`` (``expnet train --recipe``). "paper" is the paper's
# ExpNet; "transfer" is the variant the leave-one-task-out benchmark found to carry best to tasks
# ExpNet never saw (benchmarks/results/, docs/results.md), and the recipe of the shipped ExpNet.
RECIPES: dict[str, dict] = {
    "paper": {},
    # Readout-row attention of the last layer as order statistics over heads, absolute and
    # within-text views, the listwise loss (benchmark variant q_attn_only_list): it works on every
    # architecture, at the cost of the forward pass (readout rows at SDPA speed).
    "transfer": {
        "directions": ("cls_to_token",),
        "head_pooling": "quantiles",
        "views": ("absolute", "zscore", "rank"),
        "loss": "listwise",
    },
    # The same plus per-head norms ||alpha f(x)|| (q_attn_list): BERT, RoBERTa, ELECTRA only.
    "transfer_norms": {
        "directions": ("cls_to_token",),
        "feature_values": ("attention", "head_norm"),
        "head_pooling": "quantiles",
        "views": ("absolute", "zscore", "rank"),
        "loss": "listwise",
    },
}


def recipe_settings(recipe: str, **overrides) -> ExpNetSettings:
    """``ExpNetSettings`` of a named recipe, with ``overrides`` on top."""
    if recipe not in RECIPES:
        raise ExpnetError(f"unknown ExpNet recipe {recipe!r}: use one of {', '.join(RECIPES)}")
    return ExpNetSettings(**{**RECIPES[recipe], **overrides})


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
    """FL = -alpha_t (1 - p_t)^gamma log p_t, averaged (Lin et al. 2017); soft labels mix the
    positive and negative terms by the label."""
    log_p = nn.functional.logsigmoid(logits)
    log_not_p = nn.functional.logsigmoid(-logits)
    positive = -alpha * (1 - log_p.exp()).pow(gamma) * log_p
    negative = -(1 - alpha) * (1 - log_not_p.exp()).pow(gamma) * log_not_p
    return (labels * positive + (1 - labels) * negative).mean()


def listwise_loss(logits: torch.Tensor, labels: torch.Tensor, texts: torch.Tensor, n_texts: int) -> torch.Tensor:
    """ListNet's top-one loss per text (Cao et al. 2007): cross-entropy between the softmax of a
    text's word logits and its gold words' share (labels / their sum), averaged over the texts
    with at least one gold word. ``texts`` [N] maps each word to its text (0..n_texts-1)."""
    peak = torch.full((n_texts,), float("-inf"), device=logits.device).scatter_reduce(0, texts, logits.detach(), "amax")
    shifted = (logits - peak[texts]).exp()
    log_norm = torch.zeros(n_texts, device=logits.device).index_add(0, texts, shifted).log() + peak
    log_softmax = logits - log_norm[texts]
    mass = torch.zeros(n_texts, device=logits.device).index_add(0, texts, labels)
    share = labels / mass[texts].clamp(min=1e-12)
    per_text = torch.zeros(n_texts, device=logits.device).index_add(0, texts, -share * log_softmax)
    annotated = mass > 0
    return per_text[annotated].mean() if bool(annotated.any()) else logits.sum() * 0.0


# Candidate temperatures of the perplexity rule: a geometric grid from 1/20 to 20 (1.0 included).
PERPLEXITY_TEMPERATURES = tuple(float(t) for t in np.geomspace(0.05, 20.0, 41))


def perplexity_counts(
    word_logits: torch.Tensor, valid: torch.Tensor, temperature: float = 1.0, window: int | None = None
) -> torch.Tensor:
    """Words per text [B] of a listwise ExpNet's own rationale: exp(entropy) of the softmax of the
    text's word logits [B, W] / ``temperature`` over its ``valid`` words, rounded, at least 1.

    With ``window``, a text of more valid words is counted piece by piece: the sum of the counts
    of its consecutive runs of ``window`` valid words (the last one shorter). The temperature is
    fitted on texts no longer than the window, and one softmax over a longer text is peakier
    than over any of them (a transferred ExpNet fitted on short texts picked 13% of the words
    read of movie reviews whose gold share is 33%); a text within the window is counted as
    without one."""
    if window is None:
        return _one_softmax_counts(word_logits, valid, temperature)
    position = valid.long().cumsum(-1) - 1  # the index of each valid word among its text's valid words
    total = torch.zeros(word_logits.shape[0], dtype=torch.long, device=word_logits.device)
    longest = int(valid.sum(-1).max()) if valid.numel() else 0
    for start in range(0, longest, window):
        piece = valid & (position >= start) & (position < start + window)
        present = piece.any(-1)
        total[present] += _one_softmax_counts(word_logits[present], piece[present], temperature)
    return total.clamp(min=1)


def _one_softmax_counts(word_logits: torch.Tensor, valid: torch.Tensor, temperature: float) -> torch.Tensor:
    masked = (word_logits / temperature).masked_fill(~valid, float("-inf"))
    log_p = masked.log_softmax(-1)
    entropy = -(log_p.exp() * log_p.masked_fill(~valid, 0.0)).sum(-1)
    return entropy.exp().round().clamp(min=1).long()


def fit_perplexity_temperature(word_logits: Sequence[torch.Tensor], labels: Sequence[torch.Tensor]) -> float:
    """The temperature whose perplexity counts best match the texts' gold word counts: least mean
    |log k - log gold| over the annotated texts (each text weighs the same, long or short; 1.0
    wins ties).

    The listwise loss pulls each text's softmax towards the uniform distribution over its gold
    words, whose perplexity is their number, but a small MLP with early stopping stops far short
    of it: at temperature 1 the shipped recipe, transferred, picked 80% of the words of HateXplain
    posts whose gold share is 35%. One scalar fitted on held-back texts restores the counts; the ranking is unchanged."""
    annotated = [i for i, y in enumerate(labels) if float(y.sum()) > 0]
    if not annotated:
        return 1.0
    padded = pad_sequence([word_logits[i].float() for i in annotated], batch_first=True)
    lengths = torch.tensor([len(word_logits[i]) for i in annotated])
    valid = torch.arange(padded.shape[1]) < lengths.unsqueeze(-1)
    gold = torch.tensor([float(labels[i].sum()) for i in annotated]).log()

    def error(temperature: float) -> tuple[float, float]:
        counts = perplexity_counts(padded, valid, temperature).float().log()
        return float((counts - gold).abs().mean()), abs(float(np.log(temperature)))

    return min(PERPLEXITY_TEMPERATURES, key=error)


def expnet_loss(logits, labels, texts, n_texts, settings: ExpNetSettings) -> torch.Tensor:
    """The training objective ``settings.loss`` names, on a batch of whole texts."""
    total = logits.sum() * 0.0
    if "focal" in settings.loss:
        total = total + focal_loss(logits, labels, settings.focal_alpha, settings.focal_gamma)
    if "listwise" in settings.loss:
        total = total + listwise_loss(logits, labels, texts, n_texts)
    return total


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
    spec = spec.for_classifier(classifier.num_layers, classifier.num_heads)
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
            if not bool(scored.any()):  # only words the tokenizer drops: nothing to learn from
                dataset.skipped_unannotated += 1
                continue
            gold = torch.from_numpy(_labels(example, settings))
            n = len(example.words)
            dataset.features.append(features[i, :n][scored])
            dataset.labels.append(gold[scored])
            dataset.tasks.append(example.task)
    return dataset


def _labels(example: RationaleExample, settings: ExpNetSettings) -> np.ndarray:
    if settings.soft_labels:
        return np.asarray(example.rationales, dtype=np.float32).mean(axis=0)
    gold = example.gold_mask(settings.gold_rule)
    assert gold is not None  # only annotated examples are collected
    return gold.astype(np.float32)


def _split(n: int, fraction: float, generator: torch.Generator) -> tuple[list[int], list[int]]:
    order = torch.randperm(n, generator=generator).tolist()
    n_val = max(1, round(n * fraction)) if n > 1 else 0
    return order[n_val:], order[:n_val]


@dataclass
class _Words:
    """Some examples' words stacked: features [N, F], labels [N], text index [N] (0..n_texts-1)."""

    features: torch.Tensor
    labels: torch.Tensor
    texts: torch.Tensor
    n_texts: int

    @classmethod
    def stack(cls, dataset: WordDataset, indices: Sequence[int]) -> _Words:
        lengths = torch.tensor([len(dataset.labels[i]) for i in indices])
        return cls(
            torch.cat([dataset.features[i] for i in indices]),
            torch.cat([dataset.labels[i] for i in indices]),
            torch.repeat_interleave(torch.arange(len(indices)), lengths),
            len(indices),
        )


def _text_batches(dataset: WordDataset, indices: list[int], batch_words: int, generator: torch.Generator) -> list[list[int]]:
    """Shuffled groups of whole texts of about ``batch_words`` words each (a listwise loss needs
    every word of a text in the same step)."""
    order = [indices[i] for i in torch.randperm(len(indices), generator=generator).tolist()]
    batches, current, words = [], [], 0
    for index in order:
        current.append(index)
        words += len(dataset.labels[index])
        if words >= batch_words:
            batches.append(current)
            current, words = [], 0
    return batches + ([current] if current else [])


def fit_model(dataset: WordDataset, spec: FeatureSpec, settings: ExpNetSettings, seed: int) -> tuple[ExpNetModel, dict]:
    """Fit the MLP with the chosen loss; early stopping on the validation examples' loss."""
    if len(dataset) < 2:
        raise ExpnetError(
            f"only {len(dataset)} usable training example(s) (annotated and, with only_correct, "
            "correctly classified); give more rationale data or a better classifier"
        )
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    train_idx, val_idx = _split(len(dataset), settings.validation_fraction, generator)
    train, validation = _Words.stack(dataset, train_idx), _Words.stack(dataset, val_idx)
    anchor = _anchor_index(spec, settings.anchor)
    model = ExpNetModel(spec.dim, settings.hidden_size, settings.dropout, anchor)
    model.set_feature_statistics(train.features)
    optimiser = torch.optim.AdamW(model.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay)
    best_loss, best_state, best_epoch, waited = float("inf"), None, 0, 0
    for epoch in range(settings.max_epochs):
        model.train()
        for group in _text_batches(dataset, train_idx, settings.batch_words, generator):
            words = _Words.stack(dataset, group)
            optimiser.zero_grad()
            expnet_loss(model(words.features), words.labels, words.texts, words.n_texts, settings).backward()
            optimiser.step()
        model.eval()
        with torch.no_grad():
            logits = model(validation.features)
            val_loss = float(expnet_loss(logits, validation.labels, validation.texts, validation.n_texts, settings))
        if val_loss < best_loss - 1e-6:
            best_loss, best_epoch, waited = val_loss, epoch, 0
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
        else:
            waited += 1
            if waited >= settings.patience:
                break
    assert best_state is not None  # the first epoch always improves on an infinite loss
    model.load_state_dict(best_state)
    model.eval()
    temperature, window = 1.0, None
    # Human rationales only: a teacher's soft targets (expnet.explainers.distillation) have no count.
    human = [i for i in val_idx if not dataset.tasks[i].startswith(TEACHER_TASK)] if dataset.tasks else val_idx
    if "listwise" in settings.loss and human:
        with torch.no_grad():
            temperature = fit_perplexity_temperature([model(dataset.features[i]) for i in human], [dataset.labels[i] for i in human])
        # The longest text the temperature was fitted on (it reads the annotated ones only).
        window = max((len(dataset.labels[i]) for i in human if float(dataset.labels[i].sum()) > 0), default=None)
    history = {
        "train_examples": len(train_idx),
        "validation_examples": len(val_idx),
        "train_words": len(train.labels),
        "positive_rate": float(train.labels.mean()),
        "best_epoch": best_epoch,
        "best_validation_loss": best_loss,
        "skipped_wrong_predictions": dataset.skipped_wrong,
        "skipped_unannotated": dataset.skipped_unannotated,
        "tasks": sorted(set(dataset.tasks)),
        # Instance-averaged, so long documents do not dominate the rate used for top-k elsewhere.
        "rationale_rate": float(np.mean([float(y.mean()) for y in dataset.labels])),
        # The listwise rationale's softmax temperature, fitted on the validation texts.
        "perplexity_temperature": temperature,
        # Longer texts are counted window by window (perplexity_counts); None: no listwise rule.
        "perplexity_window": window,
    }
    return model, history


def _anchor_index(spec: FeatureSpec, anchor: str | None) -> int | None:
    if anchor is None:
        return None
    names = spec.names()
    if anchor not in names:
        raise ExpnetError(f"anchor feature {anchor!r} is not among this ExpNet's features (e.g. {names[0]!r})")
    return names.index(anchor)


def settings_spec(settings: ExpNetSettings, classifier: Classifier) -> FeatureSpec:
    """The feature spec ``settings`` ask for on ``classifier``'s attention layout."""
    return FeatureSpec.for_model(
        classifier.num_layers, classifier.num_heads, settings.layers, settings.directions, settings.length_scaled,
        settings.feature_values, settings.in_text, settings.signals, settings.head_pooling, settings.views or None,
        settings.word_properties,
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


def collect_sources(
    sources: Sequence[tuple[Classifier, Sequence[RationaleExample]]],
    settings: ExpNetSettings,
    progress: bool = True,
) -> tuple[WordDataset, FeatureSpec]:
    """Word features of every (classifier, examples) source, with the spec ``settings`` ask for
    on the first classifier's attention layout."""
    if not sources:
        raise ExpnetError("no training data: give at least one --task TASK=CLASSIFIER")
    spec = settings_spec(settings, sources[0][0])
    for classifier, _ in sources[1:]:  # checked before the first (long) feature pass, not after it
        if not spec.reads_layout(classifier.num_layers, classifier.num_heads):
            raise ExpnetError(
                f"the training classifiers' attention layouts differ ({spec.num_layers} layers x {spec.num_heads} heads, "
                f"and {classifier.num_layers} x {classifier.num_heads}), and these features read heads or layers by position; "
                "train on classifiers of one layout, or use a recipe that pools over heads (e.g. transfer)"
            )
    dataset = WordDataset()
    for classifier, examples in sources:
        collect_features(classifier, examples, spec, settings, dataset, progress)
    return dataset, spec

