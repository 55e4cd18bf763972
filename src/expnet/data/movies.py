"""ERASER Movie Reviews (DeYoung et al. 2020; rationales from Zaidan et al. 2007).

Read straight from ``<data_dir>/movies/movies.tar.gz`` with ``tarfile`` (nothing is extracted to
disk), or from an already-extracted ERASER folder: ``<data_dir>/movies/`` or
``<data_dir>/movies/movies/`` holding ``docs/<docid>`` and ``{train,val,test}.jsonl``.

Words are the whitespace tokens of the whole document, all sentences in order: ERASER's
``start_token``/``end_token`` (end exclusive) index exactly these tokens.

One mask per document: the union of all its evidence spans. ERASER does not record which
annotator marked which span, so the spans cannot be split back into per-annotator masks; a
single union mask makes ``gold_mask("majority")`` and ``gold_mask("union")`` agree.
"""

from __future__ import annotations

import tarfile
from pathlib import Path, PurePosixPath

from .errors import DataError, at
from .jsonl import iter_json_lines, parse_json_lines
from .records import RationaleExample
from .spec import loader_spec

LABEL_NAMES = ("negative", "positive")
LABELS = {"NEG": 0, "POS": 1}
SPLITS = ("train", "val", "test")
RATIONALE_SPLITS = SPLITS
ARCHIVE = "movies.tar.gz"


def load(root: str | Path, split: str) -> list[RationaleExample]:
    """Load one split from the ``movies`` folder ``root`` (archive or extracted)."""
    if split not in SPLITS:
        raise DataError(f"movies has no split {split!r}; use one of {', '.join(SPLITS)}")
    root = Path(root)
    for folder in (root, root / "movies"):
        if (folder / f"{split}.jsonl").is_file() and (folder / "docs").is_dir():
            return _from_folder(folder, split)
    if (root / ARCHIVE).is_file():
        return _from_archive(root / ARCHIVE, split)
    raise DataError(
        f"{root}: neither {ARCHIVE} nor an extracted ERASER folder (docs/, {split}.jsonl) found; "
        "put the ERASER movies archive there"
    )


def _from_folder(folder: Path, split: str) -> list[RationaleExample]:
    path = folder / f"{split}.jsonl"
    rows = list(iter_json_lines(path))

    def read_doc(docid: str) -> str | None:
        doc = folder / "docs" / docid
        return doc.read_text(encoding="utf-8") if doc.is_file() else None

    return [_example(obj, read_doc, at(path, lineno)) for lineno, obj in rows]


def _from_archive(archive: Path, split: str) -> list[RationaleExample]:
    """One pass over the archive: gzip has no random access, so collect the jsonl and docs."""
    wanted = f"{split}.jsonl"
    annotations: str | None = None
    docs: dict[str, str] = {}
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                parts = PurePosixPath(member.name).parts
                is_doc = len(parts) >= 2 and parts[-2] == "docs"
                if is_doc or parts[-1] == wanted:
                    text = tar.extractfile(member).read().decode("utf-8")
                    if is_doc:
                        docs[parts[-1]] = text
                    else:
                        annotations = text
    except (tarfile.TarError, OSError, EOFError) as err:
        raise DataError(f"{archive}: cannot read the archive ({err}); re-download movies.tar.gz") from None
    if annotations is None:
        raise DataError(f"{archive}: holds no {wanted}; is this the ERASER movies archive?")
    name = f"{archive}!{wanted}"  # where a bad line lives, for messages
    rows = parse_json_lines(enumerate(annotations.splitlines(), start=1), name, "the archive is damaged")
    return [_example(obj, docs.get, at(name, lineno)) for lineno, obj in rows]


def _example(obj: dict, read_doc, where: str) -> RationaleExample:
    docid = obj.get("annotation_id")
    label = LABELS.get(obj.get("classification"))
    if not isinstance(docid, str) or label is None:
        raise DataError(f"{where}: expected 'annotation_id' and 'classification' NEG/POS (ERASER format)")
    text = read_doc(docid)
    if text is None:
        raise DataError(f"{where}: document docs/{docid} is missing; ship every annotated document")
    # ERASER's tokens: each non-empty line split at single spaces (str.split would also split at a
    # no-break space and shift every later span).
    words = [word for line in text.splitlines() if line.strip() for word in line.strip().split(" ")]
    mask = [0] * len(words)
    for group in obj.get("evidences") or []:
        for ev in group:
            start, end = ev.get("start_token"), ev.get("end_token")
            if not (isinstance(start, int) and isinstance(end, int) and 0 <= start <= end <= len(words)):
                raise DataError(
                    f"{where}: evidence span [{start}, {end}) outside the {len(words)} tokens of {docid}; "
                    "spans index the whitespace tokens of the whole document"
                )
            quoted = ev.get("text")
            if isinstance(quoted, str) and " ".join(words[start:end]) != quoted:
                raise DataError(
                    f"{where}: evidence span [{start}, {end}) of {docid} reads {' '.join(words[start:end])[:60]!r}, "
                    f"not its text {quoted[:60]!r}; the document and the annotations do not match"
                )
            mask[start:end] = [1] * (end - start)
    # A review without any evidence span counts as unannotated, not as "nothing is evidence".
    return RationaleExample(docid, "movies", words, label, LABEL_NAMES, [mask] if any(mask) else [])


SPEC = loader_spec(
    __name__,
    name="movies",
    description="ERASER movie reviews (sentiment of whole reviews) with evidence-span rationales",
    purposes={"classifier_train": "train", "classifier_dev": "val", "explainer_train": "train",
              "evaluation": "test"},
    finetune={"epochs": 2, "max_length": 256, "batch_size": 16, "learning_rate": 5e-5, "max_examples": 1600},
)
