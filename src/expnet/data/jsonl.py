"""Generic JSONL rationale data: one example a line, for datasets we do not ship a loader for.

Format::

    {"id": "a1", "tokens": ["so", "bad"], "label": 0, "rationales": [[0, 1], [1, 1]]}
    {"id": "a2", "tokens": ["fine"], "label": 1, "rationale": [1], "label_names": ["neg", "pos"]}

``rationales`` holds one 0/1 mask per annotator, ``rationale`` a single mask; both may be left
out (the example is then unannotated). ``label_names`` is optional: the first line that gives it
names the labels (a later line may repeat them, never change them), else they are "0".."max label". A label is a class index below 10,000 (so a
typo like ``1e30`` cannot make the loader build that many names). Blank lines are skipped. The task name is the
file stem. Every problem is a ``DataError`` that starts with ``path:line:`` so it can be fixed
in an editor straight away.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path

from .errors import DataError, at, require_file
from .records import RationaleExample

REQUIRED = ("id", "tokens", "label")
MAX_CLASSES = 10_000  # far above any classification task, far below what exhausts memory


def _text_lines(path: Path) -> Iterator[tuple[int, str]]:
    """``(line_number, text)``; read as bytes so that a line that is not UTF-8 is named."""
    try:
        with open(path, "rb") as handle:
            for lineno, raw in enumerate(handle, start=1):
                try:
                    yield lineno, raw.decode("utf-8")
                except UnicodeDecodeError as err:
                    raise DataError(
                        f"{at(path, lineno)}: not UTF-8 text (byte {err.object[err.start]:#04x} at column "
                        f"{err.start + 1}); save the file as UTF-8"
                    ) from None
    except OSError as err:
        raise DataError(f"{path}: cannot read it ({err.strerror}); check the path and its permissions") from None


def iter_json_lines(path: str | Path) -> Iterator[tuple[int, dict]]:
    """Yield ``(line_number, object)`` for each non-blank line; shared by the JSONL-based loaders."""
    path = Path(path)
    return parse_json_lines(_text_lines(path), path, "write one JSON object a line")


def parse_json_lines(lines: Iterable[tuple[int, str]], where: str | Path, fix: str) -> Iterator[tuple[int, dict]]:
    """Yield ``(line_number, object)`` for each non-blank ``(line_number, text)`` of the file
    ``where``; a line that is no JSON object is a DataError at its line, ending with ``fix``."""
    for lineno, line in lines:
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(f"{at(where, lineno)}: not valid JSON ({err.msg} at column {err.colno}); {fix}") from None
        except RecursionError:
            raise DataError(f"{at(where, lineno)}: JSON nested too deeply to read; flatten the line") from None
        if not isinstance(obj, dict):
            raise DataError(
                f"{at(where, lineno)}: expected a JSON object {{...}}, got {type(obj).__name__}"
            )
        yield lineno, obj


def check_mask(mask, n_tokens: int, where: str, what: str = "mask") -> list[int]:
    """Validate one 0/1 mask against the token count; returns it as a list of ints."""
    if not isinstance(mask, list):
        raise DataError(f"{where}: {what} must be a list of 0/1, got {type(mask).__name__}")
    if len(mask) != n_tokens:
        raise DataError(
            f"{where}: {what} length {len(mask)} differs from {n_tokens} tokens; give one 0/1 per token"
        )
    bad = [v for v in mask if isinstance(v, bool) or v not in (0, 1)]
    if bad:
        raise DataError(f"{where}: {what} holds {bad[0]!r}; use only 0 and 1")
    return [int(v) for v in mask]


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:37]}..."


def _check_id(value, id_lines: dict[str, int], where: str) -> str:
    """An id is a non-empty string or an integer, unique in the file (results are keyed by it)."""
    if isinstance(value, bool) or not isinstance(value, (str, int)) or (isinstance(value, str) and not value.strip()):
        raise DataError(f"{where}: 'id' must be a non-empty string or an integer, got {_short(value)}")
    example_id = str(value)
    if example_id in id_lines:
        raise DataError(f"{where}: id {example_id!r} is already used on line {id_lines[example_id]}; give each example its own id")
    return example_id


def load(path: str | Path) -> list[RationaleExample]:
    """Read one JSONL file into examples (task = file stem)."""
    path = Path(path)
    require_file(path, "one JSON example a line")
    raw: list[tuple[str, list[str], int, list[list[int]], int]] = []  # ..., line
    names: tuple[str, ...] | None = None
    names_line = 0
    id_lines: dict[str, int] = {}  # id -> the line that used it first
    for lineno, obj in iter_json_lines(path):
        where = at(path, lineno)
        missing = [k for k in REQUIRED if k not in obj]
        if missing:
            raise DataError(f"{where}: missing field {missing[0]!r}; each line needs {', '.join(REQUIRED)}")
        example_id = _check_id(obj["id"], id_lines, where)
        id_lines[example_id] = lineno
        tokens, label = obj["tokens"], obj["label"]
        if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
            raise DataError(f"{where}: 'tokens' must be a list of strings")
        if not any(t.strip() for t in tokens):
            raise DataError(f"{where}: 'tokens' is empty; give at least one non-blank token")
        if isinstance(label, bool) or not isinstance(label, int) or not 0 <= label < MAX_CLASSES:
            raise DataError(
                f"{where}: 'label' must be a class index, an integer from 0 to {MAX_CLASSES - 1}, got {_short(label)}"
            )
        if "rationale" in obj and "rationales" in obj:
            raise DataError(f"{where}: give 'rationale' (one mask) or 'rationales' (a list), not both")
        if "rationales" in obj:
            masks = obj["rationales"]
            if not isinstance(masks, list):
                raise DataError(f"{where}: 'rationales' must be a list of masks")
            if masks and not any(isinstance(m, list) for m in masks):
                raise DataError(f"{where}: 'rationales' is a list of masks, one per annotator; for one mask use 'rationale', or wrap it: [[0, 1, ...]]")
            masks = [check_mask(m, len(tokens), where, f"mask {i + 1}") for i, m in enumerate(masks)]
        elif "rationale" in obj:
            if isinstance(obj["rationale"], list) and any(isinstance(v, list) for v in obj["rationale"]):
                raise DataError(f"{where}: 'rationale' is one mask (a list of 0/1); for several annotators' masks use 'rationales'")
            masks = [check_mask(obj["rationale"], len(tokens), where)]
        else:
            masks = []
        if obj.get("label_names") is not None:
            given = obj["label_names"]
            if not isinstance(given, list) or not given or not all(isinstance(n, str) for n in given):
                raise DataError(f"{where}: 'label_names' must be a non-empty list of strings")
            if len(set(given)) != len(given):
                raise DataError(f"{where}: 'label_names' {given} name two classes alike; give each class its own name")
            if names is not None and tuple(given) != names:  # a label index would mean two classes
                raise DataError(f"{where}: 'label_names' {given} differ from line {names_line}'s {list(names)}; give every line the same names")
            if names is None:
                names, names_line = tuple(given), lineno
        raw.append((example_id, tokens, label, masks, lineno))
    if not raw:
        raise DataError(f"{path}: no examples (the file is empty); write one JSON example a line")
    if names is None:  # a class no example has is refused where it matters: fine-tuning (finetune.py)
        names = tuple(str(i) for i in range(max(r[2] for r in raw) + 1))
    for _id, _tokens, label, _masks, lineno in raw:
        if label >= len(names):
            raise DataError(
                f"{at(path, lineno)}: label {label} has no name in label_names {list(names)}; "
                "add the name or fix the label"
            )
    return [
        RationaleExample(id=i, task=path.stem, words=list(t), label=y, label_names=names, rationales=m)
        for i, t, y, m, _ in raw
    ]


def label_names(path: str | Path) -> tuple[str, ...]:
    """The label names ``load`` gives (reads and checks the whole file)."""
    examples = load(path)
    return examples[0].label_names
