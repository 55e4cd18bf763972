"""ExpNet as an explainer: one forward pass with attentions, features, the MLP, a threshold."""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from expnet.data.records import RationaleExample
from expnet.errors import ExpnetError, UnmeasuredWarning, require_number, require_whole
from expnet.explainers.base import BatchAttribution, Explainer
from expnet.io import atomic_directory, recover_directory, strict_json
from expnet.models.classifier import Classifier
from expnet.network.features import FeatureSpec, valid_words
from expnet.network.gradient_features import batch_features, unsupported_reason
from expnet.network.model import ExpNetModel
from expnet.network.training import ExpNetSettings, WordDataset, collect_sources, fit_model, perplexity_counts
from expnet.words import EncodedBatch

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
FORMAT_VERSION = 1
# What a user may set when loading a saved ExpNet (everything else was fixed by training).
LOAD_SETTINGS = ("threshold", "batch_size", "seed")


def layout(classifier: Classifier) -> dict:
    """What the MLP's inputs depend on beyond the text: the architecture and its size."""
    return {"model_type": str(classifier.config.model_type), "num_layers": classifier.num_layers, "num_heads": classifier.num_heads}


def describe(layouts: Sequence[dict]) -> str:
    """'bert 6-layer x 12-head' for each layout ('6-layer x 12-head' without a model type)."""
    return " or ".join(
        " ".join(filter(None, [item.get("model_type"), f"{item['num_layers']}-layer x {item['num_heads']}-head"])) for item in layouts
    )


def rationale_rule(loss: str) -> str:
    """How an ExpNet trained with ``loss`` binarises by itself (see ``ExpNetExplainer``)."""
    return "perplexity" if "listwise" in loss else "threshold"


# Every key ``save_pretrained`` writes; "training" and "history" are provenance.
CONFIG_KEYS = (
    "format",
    "format_version",
    "features",
    "feature_names",
    "hidden_size",
    "dropout",
    "anchor",
    "threshold",
    "training",
    "history",
)


def _check_config_keys(folder: Path, config: dict) -> None:
    """Refuse a config.json from a newer expnet, or one with keys no expnet writes (a hand edit
    or another tool): loading it anyway could mean something it does not say."""
    version = require_whole(f"{folder}/{CONFIG_NAME}: format_version", config.get("format_version"))
    if version > FORMAT_VERSION:
        raise ExpnetError(
            f"{folder} is an ExpNet of format_version {version}, newer than this expnet reads ({FORMAT_VERSION}); upgrade expnet"
        )
    unknown = sorted(set(config) - set(CONFIG_KEYS))
    if unknown:
        raise ExpnetError(
            f"{folder}/{CONFIG_NAME}: unknown key(s) {unknown}; only {', '.join(CONFIG_KEYS)} belong there"
        )


def is_expnet_folder(path: Path) -> bool:
    """True for a folder whose config.json is an ExpNet's (what 'expnet train' writes)."""
    try:
        return json.loads((path / CONFIG_NAME).read_text(encoding="utf-8")).get("format") == "expnet"
    except (OSError, ValueError, AttributeError):
        return False


def holds_only_expnet_files(folder: Path) -> bool:
    """An ExpNet folder with nothing beside what ``save_pretrained`` writes: a model card or the
    user's notes there would be lost with the folder."""
    return is_expnet_folder(folder) and {p.name for p in folder.iterdir()} <= {CONFIG_NAME, WEIGHTS_NAME}


def check_save_folder(folder: Path) -> None:
    """Refuse a folder that ``save_pretrained`` may not replace (before the work of training)."""
    recover_directory(folder)  # a save a kill interrupted: put back, so it is recognised
    if folder.is_dir() and any(folder.iterdir()) and not holds_only_expnet_files(folder):
        raise ExpnetError(
            f"{folder} holds files that are not an ExpNet's, and saving replaces the folder whole: "
            "save to a new or empty folder, or pass overwrite=True"
        )


class ExpNetExplainer(Explainer):
    """A trained ExpNet. Scores are the sigmoid of each word's logit, in [0, 1]: P(word is
    important) for the focal loss; for the listwise loss, a ranking within the text (not a
    calibrated probability).

    The binary rationale needs no rationale rate from outside (``rationale_rule``):
    - ``threshold`` (focal loss): ``score >= threshold``;
    - ``perplexity`` (listwise loss): the top k words of the text, k = exp(entropy) of the softmax
      of its word logits over a temperature. The listwise loss trains that softmax towards the
      uniform distribution over the text's gold words, whose perplexity is their number: each
      text gets its own rate. The temperature (``perplexity_temperature`` in the training history;
      1.0 in folders saved before it existed) is fitted after training so that the counts match
      the gold counts of held-back texts (``network.training.fit_perplexity_temperature``); a
      text longer than the longest of them (``perplexity_window``) is counted window by window.
    Never empty: at least the highest-scoring word.
    """

    name = "expnet"
    family = "learned"
    cost = "1 forward (with attentions) + a tiny MLP"
    signed = False
    explains = "attention"
    needs_attention = True

    def __init__(
        self,
        model: ExpNetModel,
        spec: FeatureSpec,
        settings: ExpNetSettings | None = None,
        history: dict | None = None,
        threshold: float = 0.5,
        batch_size: int = 32,
        seed: int = 0,
    ) -> None:
        super().__init__(batch_size=batch_size, seed=seed)
        self.model = model
        self.spec = spec
        self.settings_used = settings or ExpNetSettings()
        self.history = history or {}
        self.threshold = threshold

    @classmethod
    def fit(cls, dataset: WordDataset, spec: FeatureSpec, settings: ExpNetSettings, seed: int = 0) -> ExpNetExplainer:
        """Fit an ExpNet on collected word features (``network.training.collect_features``)."""
        model, history = fit_model(dataset, spec, settings, seed)
        return cls(model=model, spec=spec, settings=settings, history=history)

    @classmethod
    def train(
        cls,
        sources: Sequence[tuple[Classifier, Sequence[RationaleExample]]],
        settings: ExpNetSettings | None = None,
        seed: int = 0,
        progress: bool = True,
    ) -> ExpNetExplainer:
        """Train one ExpNet on every (classifier, examples) source."""
        settings = settings or ExpNetSettings()
        dataset, spec = collect_sources(sources, settings, progress)
        return cls.fit(dataset, spec, settings, seed).trained_on([classifier for classifier, _ in sources])

    def trained_on(self, classifiers: Sequence[Classifier]) -> ExpNetExplainer:
        """Record the layouts of the classifiers whose features it was fitted on (saved with it),
        so that explaining with another layout says its scores are unmeasured."""
        self.history["classifiers"] = [dict(items) for items in sorted({tuple(layout(c).items()) for c in classifiers})]
        return self

    def settings(self) -> dict:
        """What decides its scores, as saved runs record them: its binary rule's own setting (no
        threshold for a perplexity-rule ExpNet, which uses none), the features, and a digest of
        its weights, so that two ExpNets' runs never read alike."""
        rule = (
            {"threshold": self.threshold}
            if self.rationale_rule == "threshold"
            else {"perplexity_temperature": self.history.get("perplexity_temperature", 1.0)}
        )
        return {"rationale_rule": self.rationale_rule, **rule, "batch_size": self.batch_size, "features": self.spec.to_dict(), "weights": self.weights_digest()}

    def weights_digest(self) -> str:
        """SHA-256 (16 hex digits) of the MLP's tensors in name order."""
        sha = hashlib.sha256()
        for name, tensor in sorted(self.model.state_dict().items()):
            sha.update(name.encode())
            sha.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        return sha.hexdigest()[:16]

    @property
    def rationale_rate(self) -> float | None:
        """Mean share of rationale words in the training data (used for fair top-k elsewhere)."""
        return self.history.get("rationale_rate")

    def unmeasured_on(self, classifier: Classifier) -> str | None:
        """Why this ExpNet's scores on ``classifier`` are unmeasured (a layout or architecture it
        was not trained on), or None. Folders saved before the training classifiers were recorded
        compare the number of layers and heads only."""
        trained = self.history.get("classifiers") or [{"num_layers": self.spec.num_layers, "num_heads": self.spec.num_heads}]
        mine = layout(classifier)
        if any(all(mine.get(key) == value for key, value in seen.items()) for seen in trained):
            return None
        return (
            f"this ExpNet was trained and measured on {describe(trained)} classifiers only; its scores on this "
            f"{describe([mine])} classifier are unmeasured: check them with 'expnet evaluate' on annotated texts "
            "of your task, or train one for it with 'expnet train'"
        )

    def check(self, classifier: Classifier) -> None:
        spec = self.spec.for_classifier(classifier.num_layers, classifier.num_heads)  # a layout it cannot read: refused
        refusal = unsupported_reason(classifier, spec)  # before the warning: one line, not two
        if refusal:
            raise ExpnetError(refusal)
        reason = self.unmeasured_on(classifier)
        if reason:
            warnings.warn(reason, UnmeasuredWarning, stacklevel=3)

    @torch.no_grad()
    def explain_batch(self, classifier: Classifier, batch: EncodedBatch, targets) -> BatchAttribution:
        # One forward pass with attentions (plus one backward pass for attention x gradient features).
        features, logits = batch_features(classifier, batch, self.spec, targets)
        model = self.model.to(classifier.device)
        word_logits = model(features.float())
        scores = torch.sigmoid(word_logits)
        return BatchAttribution(scores, logits, self._rationale(word_logits, valid_words(batch, scores.device)))

    @property
    def rationale_rule(self) -> str:
        return rationale_rule(self.settings_used.loss)

    def _rationale(self, word_logits: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        masked = word_logits.masked_fill(~valid, float("-inf"))
        if self.rationale_rule == "perplexity":
            k = perplexity_counts(
                word_logits,
                valid,
                self.history.get("perplexity_temperature", 1.0),
                self.history.get("perplexity_window"),  # None in folders saved before it: texts counted whole
            )
            rank = masked.argsort(-1, descending=True).argsort(-1)
            selected = (rank < k.unsqueeze(-1)) & valid
        else:
            selected = (torch.sigmoid(word_logits) >= self.threshold) & valid
        # Never an empty explanation: fall back to the top-scoring scored word.
        best = masked.argmax(-1)
        empty = ~selected.any(-1)
        selected[empty, best[empty]] = True
        return selected.to(torch.int8)

    # --- Hugging Face-style folder ---------------------------------------------------------
    def save_pretrained(self, folder: str | Path, overwrite: bool = False) -> Path:
        """Save as ``folder`` (config.json + model.safetensors), replacing the folder whole and
        atomically; a folder holding anything else (a model card, the user's files) is refused
        unless ``overwrite``, since those files would go with it."""
        folder = Path(folder)
        if not overwrite:
            check_save_folder(folder)
        config = {
            "format": "expnet",
            "format_version": FORMAT_VERSION,
            "features": self.spec.to_dict(),
            "feature_names": self.spec.names(),
            "hidden_size": self.model.mlp[0].out_features,
            "dropout": self.model.mlp[2].p,
            "anchor": self.model.anchor,
            "threshold": self.threshold,
            "training": self.settings_used.to_dict(),
            "history": self.history,
        }
        with atomic_directory(folder) as staging:
            (staging / CONFIG_NAME).write_text(json.dumps(strict_json(config), indent=2, allow_nan=False) + "\n")
            state = {k: v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()}
            save_file(state, str(staging / WEIGHTS_NAME))
        return folder

    @classmethod
    def from_pretrained(cls, folder: str | Path, **overrides) -> ExpNetExplainer:
        folder = Path(folder)
        recover_directory(folder)  # finish or undo a save that a kill interrupted
        config_path, weights_path = folder / CONFIG_NAME, folder / WEIGHTS_NAME
        if not config_path.is_file() or not weights_path.is_file():
            raise ExpnetError(f"{folder} is not an ExpNet folder (needs {CONFIG_NAME} and {WEIGHTS_NAME}); make one with 'expnet train'")
        try:
            config = json.loads(config_path.read_text())
        except (OSError, ValueError) as error:
            raise ExpnetError(f"{folder}/{CONFIG_NAME} is not valid JSON ({error}); retrain it with 'expnet train'") from None
        if not isinstance(config, dict) or config.get("format") != "expnet":
            kind = f"a {config['model_type']} model's" if isinstance(config, dict) and "model_type" in config else "not an ExpNet's"
            raise ExpnetError(f"{folder} is not an ExpNet folder (its {CONFIG_NAME} is {kind}); give a folder made by 'expnet train' or an explainer name from 'expnet explainers'")
        _check_config_keys(folder, config)
        try:
            spec = FeatureSpec.from_dict(config["features"])
            if config["feature_names"] != spec.names():
                raise ValueError("feature_names do not match the features it says it reads")
            model = ExpNetModel(spec.dim, int(config["hidden_size"]), float(config["dropout"]), config.get("anchor"))
            weights = load_file(str(weights_path))
            broken = [name for name, tensor in weights.items() if tensor.is_floating_point() and not bool(tensor.isfinite().all())]
            if broken:
                raise ValueError(f"weight {broken[0]} holds NaN or infinite values")
            model.load_state_dict(weights)
        except Exception as error:  # noqa: BLE001 (any parse or shape problem means the folder is unusable)
            raise ExpnetError(f"{folder} holds a corrupt or incompatible ExpNet ({type(error).__name__}: {str(error).splitlines()[0][:160]}); retrain it with 'expnet train'") from None
        model.eval()
        training = config.get("training", {})
        unknown = (
            sorted(set(training) - set(ExpNetSettings.__dataclass_fields__))
            if isinstance(training, dict)
            else ["(not a mapping)"]
        )
        if unknown:
            raise ExpnetError(
                f"{folder}/{CONFIG_NAME}: unknown training setting(s) {unknown}; retrain it with 'expnet train'"
            )
        settings = ExpNetSettings(**training)
        if "threshold" in overrides and rationale_rule(settings.loss) == "perplexity":
            raise ExpnetError(
                f"{folder} picks its rationale by the perplexity rule (trained with the {settings.loss} loss), "
                "so a threshold would be recorded but never used; leave threshold out"
            )
        where = "threshold" if "threshold" in overrides else f"{folder}/{CONFIG_NAME}: threshold"
        threshold = overrides.pop("threshold", config.get("threshold", 0.5))
        require_number(where, threshold, 0, 1)
        history = config.get("history", {})
        if not isinstance(history, dict):
            raise ExpnetError(f"{folder}/{CONFIG_NAME}: history must be a mapping; retrain it with 'expnet train'")
        # Both decide which words the rationale holds: a bad value would change it silently.
        if history.get("perplexity_temperature") is not None:
            require_number(f"{folder}/{CONFIG_NAME}: history.perplexity_temperature", history["perplexity_temperature"], 0, open_low=True)
        if history.get("rationale_rate") is not None:
            require_number(f"{folder}/{CONFIG_NAME}: history.rationale_rate", history["rationale_rate"], 0, 1, open_low=True)
        window = history.get("perplexity_window")
        if window is not None:
            require_whole(f"{folder}/{CONFIG_NAME}: perplexity_window (words, or null)", window)
        trained_on = history.get("classifiers")
        if trained_on is not None and not (
            isinstance(trained_on, list)
            and all(isinstance(item, dict) and all(type(item.get(key)) is int for key in ("num_layers", "num_heads")) for item in trained_on)
        ):
            raise ExpnetError(f"{folder}/{CONFIG_NAME}: history.classifiers must list the training classifiers' layouts (num_layers, num_heads); retrain it with 'expnet train'")
        return cls(model, spec, settings, history, threshold=threshold, **overrides)
