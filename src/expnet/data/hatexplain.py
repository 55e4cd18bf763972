"""HateXplain (Mathew et al., AAAI 2021): hate-speech posts with per-annotator word rationales.

Files (in ``<data_dir>/hatexplain/``): ``validation.jsonl`` and ``test.jsonl`` carry three
annotator labels and 0, 2 or 3 word masks a post; ``train_no_rationales.jsonl`` (split ``train``)
carries the annotators' labels only and serves classifier fine-tuning.

The label is the majority of the three annotators, as in the paper; posts where all three
disagree ("undecided") have no label and are dropped. The masks are kept per annotator, as
given, so ``RationaleExample.gold_mask`` can apply either the majority or the union rule.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from .errors import DataError, at, require_file
from .jsonl import check_mask, iter_json_lines
from .records import RationaleExample
from .spec import loader_spec

LABEL_NAMES = ("hatespeech", "normal", "offensive")  # the dataset's own ids 0/1/2
SPLITS = ("train", "validation", "test")
RATIONALE_SPLITS = ("validation", "test")
FILES = {"train": "train_no_rationales.jsonl", "validation": "validation.jsonl", "test": "test.jsonl"}


def majority(labels: list[int]) -> int | None:
    """The label at least two of the three annotators gave, or None when all differ."""
    if not labels:
        return None
    label, count = Counter(labels).most_common(1)[0]
    return label if count * 2 > len(labels) else None


def load(root: str | Path, split: str) -> list[RationaleExample]:
    """Load one split from the ``hatexplain`` folder ``root``."""
    if split not in FILES:
        raise DataError(f"hatexplain has no split {split!r}; use one of {', '.join(SPLITS)}")
    path = Path(root) / FILES[split]
    require_file(path, f"HateXplain's {split} posts, one JSON object a line")
    reader = _train_line if split == "train" else _annotated_line
    out = []
    for lineno, obj in iter_json_lines(path):
        example = reader(obj, at(path, lineno))
        if example is not None:
            out.append(example)
    return out


def _tokens(obj: dict, where: str) -> list[str]:
    tokens = obj.get("post_tokens")
    if not isinstance(tokens, list):
        raise DataError(f"{where}: missing 'post_tokens' (a list of words); is this a HateXplain file?")
    return [str(t) for t in tokens]


def _annotated_line(obj: dict, where: str) -> RationaleExample | None:
    try:
        labels = [int(v) for v in obj["annotators"]["label"]]
        post_id = str(obj["id"])
    except (KeyError, TypeError, ValueError):
        raise DataError(
            f"{where}: expected 'id' and 'annotators': {{'label': [3 ints]}}; is this a HateXplain file?"
        ) from None
    if any(not 0 <= v < len(LABEL_NAMES) for v in labels):
        raise DataError(f"{where}: annotator labels {labels} outside 0..2 (hatespeech/normal/offensive)")
    label = majority(labels)
    if label is None:
        return None  # undecided
    tokens = _tokens(obj, where)
    masks = [
        check_mask(m, len(tokens), where, f"rationale {i + 1}")
        for i, m in enumerate(obj.get("rationales") or [])
    ]
    return RationaleExample(post_id, "hatexplain", tokens, label, LABEL_NAMES, masks)


def _train_line(obj: dict, where: str) -> RationaleExample | None:
    names = obj.get("annotator_labels")
    if not isinstance(names, list) or "post_id" not in obj:
        raise DataError(
            f"{where}: expected 'post_id' and 'annotator_labels' (label names); "
            "is this train_no_rationales.jsonl?"
        )
    unknown = [n for n in names if n not in LABEL_NAMES]
    if unknown:
        raise DataError(f"{where}: unknown label {unknown[0]!r}; use one of {', '.join(LABEL_NAMES)}")
    label = majority([LABEL_NAMES.index(n) for n in names])
    if label is None:
        return None
    return RationaleExample(str(obj["post_id"]), "hatexplain", _tokens(obj, where), label, LABEL_NAMES)


SPEC = loader_spec(
    __name__,
    name="hatexplain",
    description="HateXplain posts (hate speech, offensive, normal) with per-annotator word rationales",
    # The training posts carry no rationales: the explainer trains on validation, is scored on test.
    purposes={"classifier_train": "train", "classifier_dev": "validation", "explainer_train": "validation",
              "evaluation": "test"},
    finetune={"epochs": 2, "max_length": 64, "batch_size": 32, "learning_rate": 5e-5, "max_examples": 4000},
)
