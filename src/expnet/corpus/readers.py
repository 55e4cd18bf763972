"""Corpus inputs, streamed: one record per text, never the whole file in memory.

``.txt`` has one text a line (its line number is the id; blank lines, as between paragraphs,
hold no text and are skipped, as in ``explain``'s stdin); ``.jsonl`` one JSON object a line,
``.csv`` and ``.parquet`` one row a text, with the text and the id in the fields named by
``text_field`` and ``id_field``. A text is a string (split on whitespace) or a list of words.
Rows that cannot be explained (empty text, a line that is not JSON, a missing field, an id seen
before) come out as ``BadRow`` in their place, so one bad row never stops a job.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from expnet.errors import ExpnetError

INPUT_SUFFIXES = (".txt", ".jsonl", ".csv", ".parquet")
# Bumped when the rows a file yields change (2: lines end at "\n" only, bytes that are not UTF-8
# make a bad row; 3: a blank .txt line is no row, not a bad one), so a corpus job never resumes
# with parts numbered under the old rules.
READER_VERSION = 3
# Rows per parquet batch: big enough to amortise the per-batch cost, small enough to stay bounded.
ARROW_BATCH_ROWS = 4096


@dataclass(frozen=True)
class Record:
    line: int  # the line number in the file (txt, jsonl, csv: the header is line 1), or the row number (parquet), from 1
    id: str
    words: list[str]


@dataclass(frozen=True)
class BadRow:
    line: int
    id: str | None
    reason: str

    def to_dict(self) -> dict:
        return {"line": self.line, "id": self.id, "reason": self.reason}


@dataclass(frozen=True)
class Chunk:
    """``size`` consecutive good records, explained as one batch; ``index`` counts chunks from 0."""

    index: int
    records: list[Record]


def input_format(path: str | Path) -> str:
    """The input's format, from its suffix; an unknown suffix or a missing file is an error."""
    suffix = Path(path).suffix.lower()
    if suffix not in INPUT_SUFFIXES:
        raise ExpnetError(f"--input {path}: unknown format {suffix or '(no suffix)'}; give a {', '.join(INPUT_SUFFIXES)} file")
    if not Path(path).is_file():
        what = "a folder" if Path(path).is_dir() else "not a regular file" if Path(path).exists() else "no such file"
        raise ExpnetError(f"--input {path}: {what}; give a {', '.join(INPUT_SUFFIXES)} file")
    return suffix[1:]


def read_rows(path: str | Path, text_field: str = "text", id_field: str | None = "id") -> Iterator[Record | BadRow]:
    """Every row of the input in order, checked: good ones as ``Record``, the others as ``BadRow``.
    With ``id_field`` None, no id is read: a row's line (or row) number is its id."""
    path = Path(path)
    fmt = input_format(path)
    if fmt == "txt":
        raw = ((number, str(number), line.rstrip("\r\n")) for number, line in _lines(path) if line.strip())
    elif fmt == "jsonl":
        raw = _jsonl_rows(path, text_field, id_field)
    elif fmt == "csv":
        raw = _csv_rows(path, text_field, id_field)
    else:
        raw = _parquet_rows(path, text_field, id_field)
    seen: set[str] = set()  # ids only (not texts): the one thing that grows with the corpus
    for number, row_id, text in raw:
        if isinstance(text, BadRow):
            yield text
            continue
        words = _words(text)
        if row_id is not None and _UNDECODED.search(row_id):  # an id that cannot be written back
            yield BadRow(number, None, "the id is not UTF-8 text; save the file as UTF-8")
        elif isinstance(words, str):
            yield BadRow(number, row_id, words)
        elif row_id in seen:
            yield BadRow(number, row_id, f"duplicate id {row_id!r} (the first row with it is kept)")
        else:
            seen.add(row_id)
            yield Record(number, row_id, words)


def count_rows(path: str | Path) -> int:
    """How many rows the input has, as the readers see them (bad ones included, blank lines not),
    for the progress bar: a Parquet footer, CSV records, otherwise lines that are not blank."""
    path = Path(path)
    fmt = input_format(path)
    if fmt == "parquet":
        return _parquet_file(path).metadata.num_rows
    if fmt == "csv":  # a quoted value may span lines: only the csv module knows where records end
        with _open_text(path, newline="") as handle:
            return max(sum(1 for row in csv.reader(handle) if row) - 1, 0)  # less the header
    with path.open("rb") as handle:  # lines end at "\n" only, as _lines reads them
        return sum(1 for line in handle if line.strip())


def require_fields(path: str | Path, text_field: str, id_field: str, rows_read: int = 100) -> None:
    """Refuse, before any work, an empty input, or a JSONL file none of whose first objects has the
    text or id field (a mistyped --text-field would otherwise make every row a bad one). CSV and
    Parquet inputs are checked against their header or schema as they are read."""
    path = Path(path)
    if path.stat().st_size == 0:
        raise ExpnetError(f"--input {path} is empty: give a file with one text per row")
    if input_format(path) != "jsonl":
        return
    seen: set[str] = set()
    objects = 0
    for _, line in _lines(path):
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict):
            if text_field in row and id_field in row:
                return
            seen |= row.keys()
            objects += 1
            if objects == rows_read:
                break
    if objects:
        missing = [f"{field!r} ({flag})" for field, flag in ((text_field, "--text-field"), (id_field, "--id-field")) if field not in seen]
        wanted = " or ".join(missing) if missing else f"both {text_field!r} and {id_field!r}"
        raise ExpnetError(f"--input {path}: none of its first {objects} rows has {wanted}; their fields: {', '.join(sorted(seen))}")


def chunked(records: Iterable[Record], size: int) -> Iterator[Chunk]:
    batch: list[Record] = []
    index = 0
    for record in records:
        batch.append(record)
        if len(batch) == size:
            yield Chunk(index, batch)
            batch, index = [], index + 1
    if batch:
        yield Chunk(index, batch)


def _open_text(path: Path, newline: str):
    """UTF-8 with or without a byte-order mark (Excel's "CSV UTF-8" starts with one); bytes that
    are not UTF-8 are kept as lone surrogates, so that their row is refused (``_words``) rather
    than explained with replacement characters for words."""
    return path.open(encoding="utf-8-sig", errors="surrogateescape", newline=newline)


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    # Lines end at "\n" only, as count_rows counts them: a lone "\r" does not start a row.
    with _open_text(path, newline="\n") as handle:
        yield from enumerate(handle, 1)


def _jsonl_rows(path: Path, text_field: str, id_field: str):
    for number, line in _lines(path):
        if not line.strip():
            continue  # blank lines (a trailing one above all) hold no row
        try:
            row = json.loads(line.rstrip("\r\n"))  # a newline inside a cut string would be the reason given
        except ValueError as error:
            yield number, None, BadRow(number, None, f"not JSON: {error}")
            continue
        if not isinstance(row, dict):
            yield number, None, BadRow(number, None, f"not a JSON object but {type(row).__name__}")
            continue
        row_id = _row_id(number, id_field, row.get(id_field))
        if row_id is None or row.get(text_field) is None:
            field = id_field if row_id is None else text_field
            yield number, row_id, BadRow(number, row_id, f"missing field {field!r}")
        else:
            yield number, row_id, row[text_field]


def _csv_rows(path: Path, text_field: str, id_field: str):
    """Rows of a csv file by the csv module: exact line numbers, and a malformed row is one bad row."""
    with _open_text(path, newline="") as handle:  # the csv module reads line ends itself
        reader = csv.reader(handle)
        header = next(reader, [])
        _require_columns(header, path, text_field, id_field)
        id_at, text_at = None if id_field is None else header.index(id_field), header.index(text_field)
        for row in reader:
            number = reader.line_num  # the record's last line (a quoted value may span several)
            if not row:
                continue
            row_id = None if len(row) != len(header) else _row_id(number, id_field, None if id_at is None else row[id_at])
            if len(row) != len(header):
                yield number, None, BadRow(number, None, f"{len(row)} columns, the header has {len(header)}")
            elif row_id is None:
                yield number, None, BadRow(number, None, f"missing field {id_field!r}")
            else:
                yield number, row_id, row[text_at]


def _parquet_rows(path: Path, text_field: str, id_field: str):
    """Rows of a parquet file, read in pyarrow batches of the two columns only."""
    import pyarrow as pa

    file = _parquet_file(path)
    _require_columns(file.schema_arrow.names, path, text_field, id_field)
    number = 0
    batches = file.iter_batches(batch_size=ARROW_BATCH_ROWS, columns=[field for field in (id_field, text_field) if field is not None])
    while True:
        try:
            batch = next(batches, None)
        except (pa.ArrowException, OSError) as error:  # a damaged page past the footer
            raise _unreadable_parquet(path, error) from None
        if batch is None:
            return
        texts = batch.column(text_field).to_pylist()
        ids = [None] * len(texts) if id_field is None else batch.column(id_field).to_pylist()
        for row_id, text in zip(ids, texts, strict=True):
            number += 1
            row_id = _row_id(number, id_field, row_id)
            if row_id is None or text is None:
                field = id_field if row_id is None else text_field
                yield number, row_id, BadRow(number, row_id, f"missing field {field!r}")
            else:
                yield number, row_id, text


def _parquet_file(path: Path):
    """``path`` opened as Parquet, or one line saying it is not (damaged, cut short, another format)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as error:
        raise _unreadable_parquet(path, error) from None


def _unreadable_parquet(path: Path, error: Exception) -> ExpnetError:
    reason = (str(error).splitlines() or [type(error).__name__])[0][:160]
    return ExpnetError(f"--input {path} is not a readable Parquet file ({reason}); check the file, or rewrite it")


def _require_columns(columns: list[str], path: Path, text_field: str, id_field: str | None) -> None:
    for field, flag in ((text_field, "--text-field"), (id_field, "--id-field")):
        if field is not None and field not in columns:
            raise ExpnetError(f"--input {path} has no column {field!r} ({flag}); its columns: {', '.join(columns)}")


def _row_id(number: int, id_field: str | None, value) -> str | None:
    """Row ``number``'s id: its ``id_field`` value as text (None when missing or empty), or the
    number itself when no id is read (``id_field`` None)."""
    if id_field is None:
        return str(number)
    return None if value is None or value == "" else str(value)


# Bytes that were not UTF-8, as ``_open_text`` keeps them.
_UNDECODED = re.compile("[\udc80-\udcff]")


def _words(text) -> list[str] | str:
    """The words of a text, or why it has none."""
    if isinstance(text, str) and (undecoded := _UNDECODED.search(text)):
        return f"not UTF-8 text (byte 0x{ord(undecoded.group()) - 0xDC00:02x} at character {undecoded.start() + 1}); save the file as UTF-8"
    if isinstance(text, str):
        words = text.split()
    elif isinstance(text, list) and all(isinstance(word, str) for word in text):
        words = [word for word in text if word.strip()]
    else:
        return f"the text is a {type(text).__name__}, not a string or a list of words"
    return words if words else "empty text"
