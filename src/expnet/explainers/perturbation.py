"""Perturbation explainers that act on whole WORDS: LIME, KernelSHAP, occlusion and Shapley value
sampling through Captum, and Partition SHAP through the ``shap`` library (optional extra).

Conventions:

- **What:** the target class's *probability* (softmax), as ferret and the LIME/SHAP papers do.
- **Perturbing a word** replaces every one of its pieces by the tokenizer's mask token ([MASK],
  <mask>; the pad token if it has none), keeping the sequence length, so positions never shift
  and no text is re-tokenised. All pieces of a word share one feature.
- **Special tokens and padding are never perturbed:** Captum only sees the word pieces of a text
  (one feature per word); the forward function writes them back into the full token row, whose
  special tokens stay as they are. Padding is cut off: each text is explained on its own, with
  its real length, and its perturbations are batched (``perturbations_per_eval`` rows per forward
  pass; Captum's default of 1 would run one row at a time).
- **Budgets** (per text): ``lime`` and ``kernel_shap`` draw ``n_samples`` (default 300) masks;
  ``shapley_sampling`` draws ``n_samples`` permutations (default 10), each costing one pass per
  word; ``occlusion`` makes one pass per word (no budget); ``partition_shap`` makes at most
  ``max_evals`` (default 300) passes.
- **Seeds:** Captum samples with torch's global generator, seeded for each text with the text's
  own seed (``Explainer.text_seed``: the seed and the words), so a text gets the same scores
  whatever the batch size or the other texts. Partition SHAP is deterministic.
- LIME: Captum's Bernoulli(0.5) word masks, weighted by LIME's text kernel (cosine distance of
  the binary mask to the full text, x100, kernel width 25) and fitted with ridge regression
  (alpha 1), the defaults of the original LIME text explainer.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import replace

import numpy as np
import torch
from captum.attr import FeatureAblation, KernelShap, Lime, ShapleyValueSampling

from expnet.errors import ExpnetError, require_whole
from expnet.explainers.base import BatchAttribution, Explainer, resolve_targets, seeded_torch
from expnet.explainers.registry import register
from expnet.models.classifier import Classifier
from expnet.models.readout import head_reads_readout, is_causal
from expnet.words import EncodedBatch

# A piece id no tokenizer makes: where a perturbation puts it, the piece is deleted from the row
# (the text gets shorter) instead of masked.
DELETED = -1


def replacement_id(classifier: Classifier, instead: str = "use a gradient explainer instead") -> int:
    """The id that stands in for a removed word piece: the mask token, else the pad token."""
    tokenizer = classifier.tokenizer
    for token_id in (getattr(tokenizer, "mask_token_id", None), getattr(tokenizer, "pad_token_id", None)):
        if token_id is not None:
            return int(token_id)
    raise ExpnetError(f"{classifier.source}: the tokenizer has neither a mask nor a pad token, so words cannot be masked; {instead}")


class TextPerturbation:
    """One text, seen word by word: its word pieces, their features and a probability function.

    ``pieces`` [1, P] are the ids of the text's word pieces (specials and padding left out),
    ``features`` [1, P] the word feature (0..F-1) of each piece and ``words`` [F] the word index of
    each feature. ``probabilities(piece_ids [N, P])`` puts the pieces back into the text's token
    row (specials unchanged) and returns class probabilities [N, C]; pieces set to ``DELETED``
    are left out of their row instead (rows of equal length share a pass, so none is padded).
    """

    def __init__(self, classifier: Classifier, batch: EncodedBatch, index: int) -> None:
        row = batch.row(index)
        self.classifier = classifier
        self.row = row
        token_word = row.token_word[0]
        self.positions = torch.nonzero(token_word >= 0).squeeze(1)
        self.words, features = torch.unique(token_word[self.positions], return_inverse=True)
        self.features = features.unsqueeze(0)
        self.pieces = row.input_ids[:, self.positions]

    @property
    def num_features(self) -> int:
        return int(self.words.numel())

    @torch.no_grad()
    def probabilities(self, piece_ids: torch.Tensor) -> torch.Tensor:
        n = piece_ids.shape[0]
        ids = self.row.input_ids.expand(n, -1).clone()
        ids[:, self.positions] = piece_ids.to(ids.dtype)
        keep = ids != DELETED
        if bool(keep.all()):
            return self._forward(ids, self.row.attention_mask.expand(n, -1), self.row.token_type_ids)
        out = torch.empty((n, self.classifier.num_labels), device=ids.device)
        lengths = keep.sum(1)
        for length in lengths.unique().tolist():
            rows = torch.nonzero(lengths == length).squeeze(1)
            kept = keep[rows]
            shorter = ids[rows][kept].view(len(rows), length)
            types = self.row.token_type_ids
            if types is not None:
                types = types.expand(n, -1)[rows][kept].view(len(rows), length)
            if length == 0:  # a decoder's one-word text, deleted: one masked-out token, no text
                shorter = torch.zeros((len(rows), 1), dtype=ids.dtype, device=ids.device)
                out[rows] = self._forward(shorter, torch.zeros_like(shorter), None)
                continue
            out[rows] = self._forward(shorter, torch.ones_like(shorter), types)
        return out

    def _forward(self, ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor | None) -> torch.Tensor:
        n = ids.shape[0]
        rows = replace(
            self.row,
            input_ids=ids,
            attention_mask=attention_mask,
            token_type_ids=None if token_type_ids is None else token_type_ids.expand(n, -1),
        )
        if is_causal(self.classifier.config):
            # Decoders often have no mask token, so a removed piece becomes the pad token, which
            # their head skips on input ids; on embeddings it reads this row's last real token
            # (before an eos that is also the pad), so the readout never moves.
            embeddings = self.classifier.input_embeddings()(ids)
            with head_reads_readout(self.classifier):
                return self.classifier.forward(rows, inputs_embeds=embeddings).logits.float().softmax(-1)
        return self.classifier.forward(rows).logits.float().softmax(-1)

    def word_scores(self, piece_attributions: torch.Tensor, num_words: int) -> torch.Tensor:
        """Per-piece attributions [1, P] (equal within a feature) -> word scores [num_words]."""
        per_feature = torch.zeros(self.num_features, dtype=torch.float32)
        per_feature[self.features[0].cpu()] = piece_attributions[0].detach().float().cpu()
        scores = torch.zeros(num_words, dtype=torch.float32)
        scores[self.words.cpu()] = per_feature
        return scores


class WordPerturbationExplainer(Explainer):
    """Shared loop: one text at a time, its perturbations batched; subclasses attribute one text."""

    family = "perturbation"
    signed = True
    explains = "probability"

    def __init__(self, perturbations_per_eval: int = 64, batch_size: int = 16, seed: int = 0) -> None:
        super().__init__(batch_size=batch_size, seed=seed)
        self.perturbations_per_eval = perturbations_per_eval

    def explain_batch(self, classifier, batch, targets) -> BatchAttribution:
        logits = classifier.predict_logits(batch)
        chosen = resolve_targets(logits, targets)
        baseline = replacement_id(classifier)
        scores = torch.zeros(batch.batch_size, batch.max_words)
        for i in range(batch.batch_size):
            text = TextPerturbation(classifier, batch, i)
            if text.num_features == 0:
                continue
            with seeded_torch(self.text_seed(batch.words[i])):
                attributions = self.attribute_text(text, int(chosen[i]), baseline)
            scores[i] = text.word_scores(attributions, batch.max_words)
        return BatchAttribution(scores, logits)

    def attribute_text(self, text: TextPerturbation, target: int, baseline: int) -> torch.Tensor:
        """Attributions [1, P] for one text's pieces (equal within each word)."""
        raise NotImplementedError

    def validate_settings(self) -> None:
        super().validate_settings()
        require_whole("perturbations_per_eval", self.perturbations_per_eval)


class SampledWordExplainer(WordPerturbationExplainer):
    """A Captum method with a sample budget (LIME, KernelSHAP, Shapley sampling), called over words."""

    def __init__(self, n_samples: int, perturbations_per_eval: int = 64, batch_size: int = 16, seed: int = 0) -> None:
        super().__init__(perturbations_per_eval=perturbations_per_eval, batch_size=batch_size, seed=seed)
        self.n_samples = n_samples

    def captum_method(self, text: TextPerturbation):
        """The Captum attribution object for one text's probability function."""
        raise NotImplementedError

    def validate_settings(self) -> None:
        super().validate_settings()
        require_whole("n_samples", self.n_samples)

    def attribute_text(self, text, target, baseline):
        return self.captum_method(text).attribute(
            text.pieces,
            baselines=baseline,
            target=target,
            feature_mask=text.features,
            n_samples=self.n_samples,
            perturbations_per_eval=self.perturbations_per_eval,
        )


def leave_one_word_out(text: TextPerturbation, target: int, baseline: int, batch: int) -> torch.Tensor:
    """p(target | text) - p(target | text without word f), per piece [1, P]: every word removed
    (its pieces set to ``baseline``: a mask id, or ``DELETED``) in turn, ``batch`` rows a pass.
    The one word-removal engine of occlusion and of leave-one-out faithfulness."""
    return FeatureAblation(text.probabilities).attribute(
        text.pieces, baselines=baseline, target=target, feature_mask=text.features, perturbations_per_eval=batch
    )


@register
class OcclusionExplainer(WordPerturbationExplainer):
    """Leave one word out: p(target | text) - p(target | text with that word's pieces masked)."""

    name = "occlusion"
    cost = "words + 2 forward"
    default_budget = "one pass per word (no budget)"

    def attribute_text(self, text, target, baseline):
        return leave_one_word_out(text, target, baseline, self.perturbations_per_eval)


def lime_text_kernel(_original, _perturbed, interpretable: torch.Tensor, **_kwargs) -> torch.Tensor:
    """LIME's text kernel: cosine distance (x100) of the binary word mask to the all-ones mask,
    ``sqrt(exp(-d^2 / 25^2))``; an empty mask is at distance 100."""
    z = interpretable.float().flatten()
    kept = float(z.sum())
    cosine = kept / math.sqrt(kept * z.numel()) if kept > 0 else 0.0
    distance = (1.0 - cosine) * 100.0
    return torch.tensor([math.sqrt(math.exp(-(distance**2) / 25.0**2))])


@register
class LimeExplainer(SampledWordExplainer):
    """Captum's LIME over words: ``n_samples`` random word masks, ridge fit on the probability."""

    name = "lime"
    cost = "1 forward + n_samples forward"
    default_budget = "n_samples={n_samples}"

    def __init__(self, n_samples: int = 300, perturbations_per_eval: int = 64, batch_size: int = 16, seed: int = 0):
        super().__init__(n_samples, perturbations_per_eval=perturbations_per_eval, batch_size=batch_size, seed=seed)

    def captum_method(self, text):
        from captum._utils.models.linear_model import SkLearnRidge

        return Lime(text.probabilities, interpretable_model=SkLearnRidge(alpha=1.0), similarity_func=lime_text_kernel)


@register
class KernelShapExplainer(SampledWordExplainer):
    """Captum's KernelSHAP over words: ``n_samples`` coalitions (the full and empty ones first),
    Shapley-kernel sampling, linear fit on the probability. A one-word text gets its exact
    Shapley value, p(text) - p(masked text)."""

    name = "kernel_shap"
    cost = "1 forward + n_samples forward"
    default_budget = "n_samples={n_samples}"

    def __init__(self, n_samples: int = 300, perturbations_per_eval: int = 64, batch_size: int = 16, seed: int = 0):
        super().__init__(n_samples, perturbations_per_eval=perturbations_per_eval, batch_size=batch_size, seed=seed)

    def captum_method(self, text):
        return KernelShap(text.probabilities)

    def attribute_text(self, text, target, baseline):
        if text.num_features == 1:  # Captum's coalition-size distribution is undefined for one feature
            return leave_one_word_out(text, target, baseline, self.perturbations_per_eval)
        return super().attribute_text(text, target, baseline)


@register
class ShapleySamplingExplainer(SampledWordExplainer):
    """Captum's Shapley value sampling over words: ``n_samples`` random word orders, each adding
    the words one by one to the all-masked text."""

    name = "shapley_sampling"
    cost = "2 + n_samples x words forward"
    default_budget = "n_samples={n_samples} permutations"

    def __init__(self, n_samples: int = 10, perturbations_per_eval: int = 64, batch_size: int = 16, seed: int = 0):
        super().__init__(n_samples, perturbations_per_eval=perturbations_per_eval, batch_size=batch_size, seed=seed)

    def captum_method(self, text):
        return ShapleyValueSampling(text.probabilities)


# --- Partition SHAP through the shap library --------------------------------------------------


def _import_shap():
    try:
        with warnings.catch_warnings():  # shap's import chatter (matplotlib, numba deprecations)
            warnings.simplefilter("ignore")
            import shap
    except ImportError:
        raise ExpnetError(
            "partition_shap needs the 'shap' package: pip install 'expnet[shap]' (or pip install shap)"
        ) from None
    return shap


def word_partition_tree(words: list[str]) -> np.ndarray:
    """A hierarchical clustering of adjacent words (scipy linkage format), from shap's text
    heuristic (punctuation and spacing), with cluster sizes as heights as ``shap.maskers.Text``
    does; a balanced tree of neighbours if that private helper is unavailable."""
    try:
        from shap.maskers._text import partition_tree

        tree = partition_tree([w.strip() for w in words], [])
    except Exception:  # noqa: BLE001 (private shap API: fall back to a plain balanced tree)
        tree = _balanced_tree(len(words))
    tree = tree.astype(float)
    tree[:, 2] = tree[:, 3] / tree[:, 3].max()
    return tree


def _balanced_tree(n: int) -> np.ndarray:
    groups = [(i, 1) for i in range(n)]
    rows: list[list[float]] = []
    while len(groups) > 1:
        merged = []
        for k in range(0, len(groups) - 1, 2):
            (a, size_a), (b, size_b) = groups[k], groups[k + 1]
            rows.append([a, b, 0.0, size_a + size_b])
            merged.append((n + len(rows) - 1, size_a + size_b))
        if len(groups) % 2:
            merged.append(groups[-1])
        groups = merged
    return np.array(rows, dtype=float).reshape(-1, 4)


class _WordMasker:
    """A shap masker over one text's words: masked words become -1 (their pieces -> [MASK])."""

    immutable_outputs = True

    def __init__(self, words: list[str]) -> None:
        self.shape = (1, len(words))
        self.clustering = word_partition_tree(words)

    def __call__(self, mask, x):
        return np.where(np.asarray(mask, dtype=bool), x, -1).reshape(1, -1)


@register
class PartitionShapExplainer(WordPerturbationExplainer):
    """shap's Partition explainer (Owen values over a hierarchy of adjacent words) on the target
    probability; at most ``max_evals`` passes per text. A one-word text gets p(text) - p(masked).
    Needs the optional ``shap`` extra (imported only when used)."""

    name = "partition_shap"
    cost = "1 forward + max_evals forward"
    default_budget = "max_evals={max_evals}"

    def __init__(self, max_evals: int = 300, perturbations_per_eval: int = 64, batch_size: int = 16, seed: int = 0):
        super().__init__(perturbations_per_eval=perturbations_per_eval, batch_size=batch_size, seed=seed)
        self.max_evals = max_evals

    def validate_settings(self) -> None:
        super().validate_settings()
        require_whole("max_evals", self.max_evals, minimum=3)

    def attribute_text(self, text, target, baseline):
        shap = _import_shap()
        if text.num_features == 1:
            return leave_one_word_out(text, target, baseline, self.perturbations_per_eval)
        piece_features = text.features[0]

        def model(rows: np.ndarray) -> np.ndarray:
            kept = torch.as_tensor(np.asarray(rows) >= 0, device=text.pieces.device)  # [N, F]
            keep_piece = kept[:, piece_features]  # [N, P]
            masked = torch.full_like(keep_piece, baseline, dtype=text.pieces.dtype)
            ids = torch.where(keep_piece, text.pieces.expand_as(keep_piece), masked)
            return text.probabilities(ids)[:, target].cpu().numpy()

        words = [text.row.words[0][int(w)] for w in text.words]
        explainer = shap.explainers.Partition(model, _WordMasker(words))
        x = np.arange(text.num_features, dtype=float).reshape(1, -1)
        result = explainer(x, max_evals=self.max_evals, batch_size=self.perturbations_per_eval, silent=True)
        values = torch.as_tensor(np.asarray(result.values[0], dtype=np.float32))  # [F]
        return values[piece_features.cpu()].unsqueeze(0)
