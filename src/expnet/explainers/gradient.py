"""Gradient explainers through Captum: Saliency, Input x Gradient, Integrated Gradients, SmoothGrad.

Conventions (shared by the four, see CONTRIBUTING.md and peers.md for the alternatives):

- **Where:** gradients are taken with respect to the word-piece input embeddings (``inputs_embeds``,
  see ``expnet.models.gradients.input_embeddings``); the model adds position and segment
  embeddings itself, so only what the words contribute is attributed.
- **What:** the target class's *logit* (as ferret, Chefer and LXT do for gradient methods).
- **Hidden dimension:** ``input_x_gradient`` and ``integrated_gradients`` sum over it (signed; for
  IG the token sums add up to f(x) - f(baseline), the completeness property); ``saliency`` and
  ``smoothgrad`` take the L2 norm of the per-dimension attribution (unsigned, as inseq and ecco).
- **Tokens to words:** the sum of a word's pieces (``pool_to_words(..., "sum")``).
- **IG baseline:** every word piece replaced by the ``[PAD]`` token's embedding (a "no word here"
  token the model has seen; as in Captum's BERT tutorial). It is zero in freshly initialised HF
  models but not in every checkpoint (all-MiniLM-L6-v2's has norm 0.77, a word's about 1.1).
  Special tokens ([CLS], [SEP], <s>, </s>) and padding keep their own embeddings, so they differ
  from the baseline by nothing and receive exactly zero attribution: the word scores add up to
  f(x) - f(baseline). ``baseline="zero"`` uses zero vectors for the word pieces instead (also
  the fallback when the tokenizer has no pad token).

Saliency and Input x Gradient read the logits they report, and the predicted class they explain,
from the very pass Captum differentiates (``_attribute_in_one_pass``): 1.5x faster than a
separate no-grad forward first. IG and SmoothGrad differentiate at other inputs (interpolated or
noisy embeddings), so they make one extra no-grad forward pass for the logits and targets
(Captum returns attributions only); it is a small part of their cost.
"""

from __future__ import annotations

import warnings
from dataclasses import replace

import torch
from captum.attr import InputXGradient, IntegratedGradients, Saliency

from expnet.errors import ExpnetError, IncompleteAttributionWarning, require_number, require_whole
from expnet.explainers.base import BatchAttribution, Explainer, resolve_targets
from expnet.explainers.registry import register
from expnet.models.classifier import Classifier
from expnet.models.gradients import embedding_scale_ignored, input_embeddings, target_logits
from expnet.models.readout import head_reads_readout
from expnet.words import EncodedBatch, pool_to_words

# IG's word scores add up to f(x) - f(baseline) once the integral converges: a miss above 10% of
# that difference (and above 0.01 logits, which a near-zero difference would make any error exceed)
# means too few steps.
COMPLETENESS_TOLERANCE = 0.1
COMPLETENESS_FLOOR = 0.01
IG_BASELINES = ("pad", "zero")
SMOOTHGRAD_BASES = {"saliency": Saliency, "input_x_gradient": InputXGradient}


def logit_function(classifier: Classifier, batch: EncodedBatch):
    """f(inputs_embeds, attention_mask, token_type_ids) -> logits [N, C], for Captum.

    The mask and segment ids travel as ``additional_forward_args`` so that Captum expands them
    along with the inputs (IG steps, noise samples); decoders read each row's last real token
    (``head_reads_readout``), as they do on input ids."""

    def forward(embeddings: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor | None):
        rows = replace(batch, attention_mask=attention_mask, token_type_ids=token_type_ids)
        with head_reads_readout(classifier):
            return classifier.forward(rows, inputs_embeds=embeddings).logits

    return forward


def _attribute_in_one_pass(
    method, classifier: Classifier, batch: EncodedBatch, targets: torch.Tensor | None, **kwargs
) -> tuple[torch.Tensor, torch.Tensor]:
    """(attributions [B, T, D], logits [B, C]) from one forward and one backward pass of a
    Captum ``method`` that differentiates at the inputs themselves (Saliency, InputXGradient).

    The function handed to Captum returns each row's chosen logit, a scalar per example (Captum
    then needs no target), and keeps the logits it computed on the way for the caller."""
    logit_of = logit_function(classifier, batch)
    computed: dict[str, torch.Tensor] = {}

    def chosen_logit(embeddings, attention_mask, token_type_ids):
        logits = logit_of(embeddings, attention_mask, token_type_ids)
        computed["logits"] = logits.detach()
        return target_logits(logits, resolve_targets(computed["logits"], targets))

    embeddings = input_embeddings(classifier, batch).requires_grad_(True)
    extra = (batch.attention_mask, batch.token_type_ids)
    attributions = method(chosen_logit).attribute(embeddings, additional_forward_args=extra, **kwargs)
    return attributions, computed["logits"]


def l2_pool(attributions: torch.Tensor) -> torch.Tensor:
    """[B, T, D] -> [B, T]: the L2 norm over the hidden dimension (unsigned)."""
    return attributions.float().norm(dim=-1)


def sum_pool(attributions: torch.Tensor) -> torch.Tensor:
    """[B, T, D] -> [B, T]: the sum over the hidden dimension (signed)."""
    return attributions.float().sum(dim=-1)


def baseline_embeddings(classifier: Classifier, batch: EncodedBatch, kind: str = "pad") -> torch.Tensor:
    """IG's baseline: word pieces -> [PAD] embedding (or zeros); special tokens and padding kept."""
    embeddings = input_embeddings(classifier, batch)
    words = batch.word_tokens.to(embeddings.device).unsqueeze(-1)
    if kind == "zero":
        return torch.where(words, torch.zeros_like(embeddings), embeddings)
    if kind not in IG_BASELINES:
        raise ExpnetError(f"unknown IG baseline {kind!r}: use one of {', '.join(IG_BASELINES)}")
    pad_id = classifier.tokenizer.pad_token_id
    if pad_id is None:
        return torch.where(words, torch.zeros_like(embeddings), embeddings)
    word_pieces = batch.word_tokens.to(batch.input_ids.device)
    ids = torch.where(word_pieces, torch.full_like(batch.input_ids, pad_id), batch.input_ids)
    return classifier.input_embeddings()(ids).detach()


@register
class SaliencyExplainer(Explainer):
    """|d logit / d embedding|, L2 norm over the hidden dimension, summed over a word's pieces."""

    name = "saliency"
    family = "gradient"
    cost = "1 forward+backward"
    signed = False
    explains = "logit"

    def explain_batch(self, classifier, batch, targets) -> BatchAttribution:
        grads, logits = _attribute_in_one_pass(Saliency, classifier, batch, targets, abs=True)
        return BatchAttribution(pool_to_words(l2_pool(grads), batch, "sum"), logits)


@register
class InputXGradientExplainer(Explainer):
    """embedding * d logit / d embedding, summed over the hidden dimension (signed)."""

    name = "input_x_gradient"
    family = "gradient"
    cost = "1 forward+backward"
    signed = True
    explains = "logit"

    def check(self, classifier) -> None:
        if embedding_scale_ignored(classifier.config):
            raise ExpnetError(
                f"input_x_gradient is zero up to rounding on {classifier.config.model_type}: its word embeddings "
                "go straight into a LayerNorm, which ignores their scale; use saliency or integrated_gradients"
            )

    def explain_batch(self, classifier, batch, targets) -> BatchAttribution:
        attributions, logits = _attribute_in_one_pass(InputXGradient, classifier, batch, targets)
        return BatchAttribution(pool_to_words(sum_pool(attributions), batch, "sum"), logits)


@register
class IntegratedGradientsExplainer(Explainer):
    """Integrated Gradients from the [PAD]-embedding baseline (specials kept), Gauss-Legendre
    steps, summed over the hidden dimension (signed). ``internal_batch_size`` bounds how many
    rows (texts x steps) go through the model at once."""

    name = "integrated_gradients"
    family = "gradient"
    cost = "1 forward + n_steps forward+backward"
    signed = True
    explains = "logit"
    default_budget = "n_steps={n_steps}"

    def __init__(
        self,
        n_steps: int = 50,
        baseline: str = "pad",
        internal_batch_size: int = 128,
        batch_size: int = 16,
        seed: int = 0,
    ) -> None:
        super().__init__(batch_size=batch_size, seed=seed)
        self.n_steps = n_steps
        self.baseline = baseline
        self.internal_batch_size = internal_batch_size

    def validate_settings(self) -> None:
        super().validate_settings()
        require_whole("n_steps", self.n_steps)
        require_whole("internal_batch_size", self.internal_batch_size)
        if self.baseline not in IG_BASELINES:
            raise ExpnetError(f"unknown IG baseline {self.baseline!r}: use one of {', '.join(IG_BASELINES)}")

    def explain_batch(self, classifier, batch, targets) -> BatchAttribution:
        logits = classifier.predict_logits(batch)
        chosen = resolve_targets(logits, targets)
        embeddings = input_embeddings(classifier, batch)
        extra = (batch.attention_mask, batch.token_type_ids)
        baselines = baseline_embeddings(classifier, batch, self.baseline)
        attributions, delta = IntegratedGradients(logit_function(classifier, batch)).attribute(
            embeddings,
            baselines=baselines,
            target=chosen,
            additional_forward_args=extra,
            n_steps=self.n_steps,
            internal_batch_size=max(self.internal_batch_size, batch.batch_size),
            return_convergence_delta=True,
        )
        self._warn_if_incomplete(attributions, delta)
        return BatchAttribution(pool_to_words(sum_pool(attributions), batch, "sum"), logits)

    def _warn_if_incomplete(self, attributions: torch.Tensor, delta: torch.Tensor) -> None:
        """Warn when some text's scores miss f(x) - f(baseline) by more than COMPLETENESS_TOLERANCE.

        Captum's delta is sum(attributions) - (f(x) - f(baseline)): two extra forward passes of the
        batch, small beside the n_steps ones. Too few steps for a model that bends sharply between
        baseline and input (RMSNorm decoders from a zero [PAD] embedding, for one) give scores
        whose sum is off by more than the difference itself: a ranking to distrust, not an error."""
        difference = sum_pool(attributions).sum(-1) - delta.float()
        allowed = torch.clamp(COMPLETENESS_TOLERANCE * difference.abs(), min=COMPLETENESS_FLOOR)
        if (delta.float().abs() > allowed).any():
            warnings.warn(
                f"integrated_gradients at n_steps={self.n_steps}: on some texts the word scores miss "
                f"f(input) - f(baseline) by more than {COMPLETENESS_TOLERANCE:.0%}, so the integral is not converged; "
                "raise n_steps (e.g. 4x) and compare",
                IncompleteAttributionWarning,
                stacklevel=4,
            )


@register
class SmoothGradExplainer(Explainer):
    """SmoothGrad: Saliency (``base="saliency"``) or Input x Gradient (``base="input_x_gradient"``)
    averaged over ``n_samples`` noisy copies of a text's embeddings, as Captum's NoiseTunnel
    does; the average is pooled by L2 norm over the hidden dimension (unsigned, whichever base).

    Noise: Gaussian with standard deviation ``noise`` x the standard deviation of the text's
    word-piece embedding values (default 0.2: a noise vector about 20% of a typical embedding's
    norm). SmoothGrad's "10-20% of the input range" is not used as such because the range of
    embedding values is set by a few outliers (about 16 standard deviations in MiniLM), which
    would drown the words in noise. Each text is explained on its own unpadded row, its noise
    drawn on the CPU from its own generator (``Explainer.text_generator``): the same seed and
    words give the same scores, whatever the batch or the device. ``internal_batch_size`` bounds
    how many noisy copies go through the model at once."""

    name = "smoothgrad"
    family = "gradient"
    cost = "1 forward + n_samples forward+backward"
    signed = False
    explains = "logit"
    default_budget = "n_samples={n_samples}"

    def __init__(
        self,
        n_samples: int = 20,
        noise: float = 0.2,
        base: str = "saliency",
        internal_batch_size: int = 128,
        batch_size: int = 16,
        seed: int = 0,
    ) -> None:
        super().__init__(batch_size=batch_size, seed=seed)
        self.n_samples = n_samples
        self.noise = noise
        self.base = base
        self.internal_batch_size = internal_batch_size

    def validate_settings(self) -> None:
        super().validate_settings()
        require_whole("n_samples", self.n_samples)
        require_whole("internal_batch_size", self.internal_batch_size)
        require_number("noise", self.noise, 0)
        if self.base not in SMOOTHGRAD_BASES:
            raise ExpnetError(f"unknown SmoothGrad base {self.base!r}: use one of {', '.join(SMOOTHGRAD_BASES)}")

    def explain_batch(self, classifier, batch, targets) -> BatchAttribution:
        logits = classifier.predict_logits(batch)
        chosen = resolve_targets(logits, targets)
        scores = torch.zeros(batch.batch_size, batch.max_words)
        for i in range(batch.batch_size):
            row = batch.row(i)
            token_scores = l2_pool(self._smoothed(SMOOTHGRAD_BASES[self.base], classifier, row, int(chosen[i])))
            scores[i, : row.max_words] = pool_to_words(token_scores, row, "sum")[0].cpu()
        return BatchAttribution(scores, logits)

    def _smoothed(self, method, classifier: Classifier, row: EncodedBatch, target: int) -> torch.Tensor:
        """The mean attribution [1, T, D] over ``n_samples`` noisy copies of one unpadded text."""
        embeddings = input_embeddings(classifier, row)
        pieces = embeddings[row.word_tokens.to(embeddings.device)]
        spread = float(pieces.float().std()) if pieces.numel() > 1 else 1.0
        generator = self.text_generator(row.words[0])
        noise = torch.randn((self.n_samples, *embeddings.shape[1:]), generator=generator) * (self.noise * spread)
        attribute = method(logit_function(classifier, row)).attribute
        kwargs = {"abs": True} if method is Saliency else {}
        total = torch.zeros_like(embeddings, dtype=torch.float32)
        for chunk in noise.split(max(1, self.internal_batch_size)):
            k = chunk.shape[0]
            noisy = (embeddings + chunk.to(embeddings.device, embeddings.dtype)).requires_grad_(True)
            extra = (row.attention_mask.expand(k, -1), None if row.token_type_ids is None else row.token_type_ids.expand(k, -1))
            attributions = attribute(noisy, target=target, additional_forward_args=extra, **kwargs)
            total += attributions.float().sum(0, keepdim=True)
        return total / self.n_samples
