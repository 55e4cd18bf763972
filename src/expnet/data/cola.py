"""CoLA (Warstadt et al. 2019): English acceptability judgements, with no word rationales.

Files (in ``<data_dir>/cola/``): ``in_domain_train.tsv`` (split ``train``) and
``in_domain_dev.tsv`` (split ``dev``); no header, columns ``source, label (1 = acceptable),
original mark, sentence``. Words are the sentence split on whitespace.

No token-level human rationales for CoLA exist publicly, so ``RATIONALE_SPLITS`` is empty:
CoLA can train and evaluate a classifier, and an explainer's faithfulness can be measured on it,
but there is nothing to train an explainer on or to score plausibility against.
"""

from __future__ import annotations

from pathlib import Path

from .errors import DataError, at, require_file
from .records import RationaleExample
from .spec import loader_spec

LABEL_NAMES = ("unacceptable", "acceptable")
SPLITS = ("train", "dev")
RATIONALE_SPLITS: tuple[str, ...] = ()
FILES = {"train": "in_domain_train.tsv", "dev": "in_domain_dev.tsv"}


def load(root: str | Path, split: str) -> list[RationaleExample]:
    """Load one split from the ``cola`` folder ``root``."""
    if split not in FILES:
        raise DataError(f"cola has no split {split!r}; use one of {', '.join(SPLITS)}")
    path = Path(root) / FILES[split]
    require_file(path, "CoLA rows 'source<TAB>label<TAB>mark<TAB>sentence' (no header)")
    out = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 4 or parts[1] not in ("0", "1"):
                raise DataError(
                    f"{at(path, lineno)}: expected 4 tab-separated columns "
                    "(source, 0/1 label, mark, sentence); keep CoLA's raw TSV layout"
                )
            words, label = parts[3].split(), int(parts[1])
            out.append(RationaleExample(f"{split}-{lineno}", "cola", words, label, LABEL_NAMES))
    return out


SPEC = loader_spec(
    __name__,
    name="cola",
    description="CoLA acceptability judgements; no word rationales (classifier and faithfulness only)",
    # Evaluating is allowed (faithfulness needs no rationales); its examples carry no gold masks.
    purposes={"classifier_train": "train", "classifier_dev": "dev", "evaluation": "dev"},
    unavailable={"explainer_train": "CoLA has no public word rationales"},
)
