"""SST-2: GLUE's binary sentiment data, with word rationales derived from the SST treebank.

Files (in ``<data_dir>/sst2/``): ``glue_train.tsv`` and ``glue_dev.tsv`` (``sentence<TAB>label``,
header row, lower-cased and tokenised) and ``trees/{train,dev,test}.txt`` (PTB trees, 0-4).

Splits:

* ``train``: GLUE train rows (phrases included, as in GLUE), label only. Classifier training.
* ``dev``: the 872 GLUE dev sentences, each with the rationale derived from the dev tree whose
  words match it (see ``ptb`` for the derivation and the 0/1 rule). GLUE writes the treebank's
  words lower-cased and unescaped (``-LRB-`` -> ``(``, ``\\/`` -> ``/``), so matching compares the
  unescaped, lower-cased leaves with the sentence, spaces normalised. All 872 match.
* ``train_trees`` / ``dev_trees`` / ``test_trees``: whole treebank sentences whose root is not
  neutral, label ``root > 2``, rationale derived from the tree. Words are written the GLUE way
  (unescaped, lower-cased) so a classifier trained on GLUE text sees the same kind of text here.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from . import ptb
from .errors import DataError, at, require_file
from .records import RationaleExample
from .spec import loader_spec

LABEL_NAMES = ("negative", "positive")
SPLITS = ("train", "dev", "train_trees", "dev_trees", "test_trees")
RATIONALE_SPLITS = ("dev", "train_trees", "dev_trees", "test_trees")


def glue_words(text: str) -> list[str]:
    return text.split()


def tree_words(root: ptb.Node) -> list[str]:
    """Tree leaves written the GLUE way: PTB escapes undone, lower-cased."""
    return [w.lower() for w in ptb.leaves(root, unescape=True)]


def load(root: str | Path, split: str) -> list[RationaleExample]:
    """Load one split from the ``sst2`` folder ``root``."""
    root = Path(root)
    if split == "train":
        return [_example(f"train-{i}", w, y) for i, w, y in _read_glue(root / "glue_train.tsv")]
    if split == "dev":
        return _load_dev(root)
    if split in ("train_trees", "dev_trees", "test_trees"):
        name = split.removesuffix("_trees")
        out = []
        for lineno, tree in _read_trees(root / "trees" / f"{name}.txt"):
            if tree.label == ptb.NEUTRAL:
                continue  # no binary label for a neutral sentence
            out.append(
                _example(f"{split}-{lineno}", tree_words(tree), int(tree.label > ptb.NEUTRAL),
                         [ptb.binary_rationale(tree)])
            )
        return out
    raise DataError(f"sst2 has no split {split!r}; use one of {', '.join(SPLITS)}")


def _example(id_: str, words: list[str], label: int, masks=None) -> RationaleExample:
    return RationaleExample(id_, "sst2", words, label, LABEL_NAMES, masks or [])


def _read_glue(path: Path):
    """Yield ``(row_number, words, label)`` from a GLUE TSV (header skipped)."""
    require_file(path, "GLUE SST-2 rows 'sentence<TAB>label' under a header row")
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if lineno == 1 or not line.strip():
                continue  # header
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 2 or parts[1].strip() not in ("0", "1"):
                raise DataError(
                    f"{at(path, lineno)}: expected 'sentence<TAB>0|1', got {len(parts)} column(s); "
                    "keep GLUE's two-column layout"
                )
            yield lineno - 1, glue_words(parts[0]), int(parts[1])


def _read_trees(path: Path):
    """Yield ``(line_number, root)`` for each tree line."""
    require_file(path, "SST PTB trees, one a line")
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                yield lineno, ptb.parse_tree(line)
            except ValueError as err:
                raise DataError(f"{at(path, lineno)}: bad PTB tree: {err}") from None


def _key(words: list[str]) -> str:
    return " ".join(words).lower()


def _load_dev(root: Path) -> list[RationaleExample]:
    trees: dict[str, ptb.Node] = {}
    for _, tree in _read_trees(root / "trees" / "dev.txt"):
        trees.setdefault(_key(tree_words(tree)), tree)  # the dev trees hold one duplicate sentence
    out, unmatched = [], 0
    for row, words, label in _read_glue(root / "glue_dev.tsv"):
        tree = trees.get(_key(words))
        masks = [ptb.binary_rationale(tree)] if tree is not None else []
        unmatched += tree is None
        out.append(_example(f"dev-{row}", words, label, masks))
    if unmatched:
        warnings.warn(
            f"{root / 'glue_dev.tsv'}: {unmatched} of {len(out)} sentences match no tree in "
            "trees/dev.txt and have no rationale; ship the matching dev trees", stacklevel=2
        )
    return out


SPEC = loader_spec(
    __name__,
    name="sst2",
    description="SST-2 sentence sentiment, with rationales derived from the SST treebank",
    # GLUE's test labels are hidden, so GLUE dev is the evaluation split and the explainer trains
    # on the treebank's train sentences.
    purposes={"classifier_train": "train", "classifier_dev": "dev", "explainer_train": "train_trees",
              "evaluation": "dev"},
    finetune={"epochs": 1, "max_length": 48, "batch_size": 32, "learning_rate": 5e-5, "max_examples": 8000},
)
