"""Corpus outputs: explanations as Arrow rows, written in parts, and joined into one file at the end.

A job writes into the hidden folder ``.OUTPUT.parts/`` beside ``OUTPUT``: ``settings.json`` (what
the job was asked to do), one Parquet part per group of chunks (written atomically; its schema
metadata lists the chunks it holds, its ``id`` column the ids) and ``errors.jsonl`` (the bad rows
of the current pass). ``PartStore.finish`` joins the parts into a temporary file and renames it
over ``OUTPUT``, so nothing half-written ever has the output's name, then removes the folder.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from expnet.corpus.readers import Record
from expnet.errors import ExpnetError
from expnet.explainers.base import Explanation
from expnet.io import atomic_write_bytes, atomic_write_json, strict_json

OUTPUT_SUFFIXES = (".parquet", ".jsonl")
SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("line", pa.int64()),
        ("words", pa.list_(pa.string())),
        ("scores", pa.list_(pa.float64())),  # NaN for unscored (truncated) words
        ("scored", pa.list_(pa.bool_())),
        ("rationale", pa.list_(pa.int8())),  # null when the explainer makes none
        ("prediction", pa.int64()),
        ("prediction_name", pa.string()),
        ("probabilities", pa.list_(pa.float64())),
        ("explainer", pa.string()),
    ]
)
_CHUNKS_KEY = b"expnet_chunks"
_SETTINGS_KEY = b"expnet"


def output_format(path: str | Path) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in OUTPUT_SUFFIXES:
        raise ExpnetError(f"--output {path}: unknown format {suffix or '(no suffix)'}; give a .parquet or .jsonl file")
    return suffix[1:]


def explanations_table(records: Sequence[Record], explanations: Sequence[Explanation]) -> pa.Table:
    return pa.Table.from_pydict(
        {
            "id": [r.id for r in records],
            "line": [r.line for r in records],
            "words": [e.words for e in explanations],
            "scores": [e.scores.astype(np.float64) for e in explanations],
            "scored": [e.scored.astype(bool) for e in explanations],
            "rationale": [None if e.rationale is None else e.rationale.astype(np.int8) for e in explanations],
            "prediction": [e.prediction for e in explanations],
            "prediction_name": [e.prediction_name for e in explanations],
            "probabilities": [e.probabilities.astype(np.float64) for e in explanations],
            "explainer": [e.explainer for e in explanations],
        },
        schema=SCHEMA,
    )


def parquet_bytes(table: pa.Table) -> bytes:
    """A whole Parquet file in memory, for ``atomic_write_bytes`` (parts are small)."""
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return sink.getvalue().to_pybytes()


def table_to_bytes(table: pa.Table) -> bytes:
    """Arrow IPC: how a table travels between processes (Ray workers and the driver)."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def table_from_bytes(data: bytes) -> pa.Table:
    return pa.ipc.open_stream(data).read_all()


def sidecars(output: Path) -> tuple[Path, Path]:
    """The files written beside ``output``: its bad rows, and (for JSONL) its settings."""
    return output.with_name(f"{output.name}.errors.jsonl"), output.with_name(f"{output.name}.meta.json")


class PartStore:
    """The parts folder of one output: resume state, parts, bad rows, and the final join."""

    def __init__(self, output: str | Path, settings: dict):
        self.output = Path(output)
        self.format = output_format(self.output)
        self.settings = strict_json(settings)
        self.folder = self.output.with_name(f".{self.output.name}.parts")
        self.errors_path, self.meta_path = sidecars(self.output)

    def open(self) -> tuple[set[int], int]:
        """Start or resume: the chunks already written, and their rows. A folder left by a job with
        other settings is refused, never mixed in."""
        settings_path = self.folder / "settings.json"
        if settings_path.is_file():
            previous = json.loads(settings_path.read_text(encoding="utf-8"))
            changed = sorted(k for k in previous.keys() | self.settings.keys() if previous.get(k) != self.settings.get(k))
            if changed:
                raise ExpnetError(
                    f"{self.folder} holds an unfinished run with other settings ({changed[0]}: "
                    f"{previous.get(changed[0])!r} then, {self.settings.get(changed[0])!r} now); rerun with the same "
                    f"settings to resume it, or delete {self.folder} to start over"
                )
        else:
            atomic_write_json(settings_path, self.settings)
        done, rows = set(), 0
        for part in self._parts():
            file = pq.ParquetFile(part)
            done.update(json.loads(file.schema_arrow.metadata[_CHUNKS_KEY]))
            rows += file.metadata.num_rows
        return done, rows

    def write_part(self, chunks: list[int], tables: list[pa.Table]) -> None:
        table = pa.concat_tables(tables).replace_schema_metadata({_CHUNKS_KEY: json.dumps(chunks)})
        atomic_write_bytes(self.folder / f"part-{chunks[0]:09d}.parquet", parquet_bytes(table))

    def errors_file(self):
        """Where this pass writes its bad rows (every pass reads the whole input, so it starts empty)."""
        return (self.folder / "errors.jsonl").open("w", encoding="utf-8")

    def finish(self) -> None:
        """Join the parts, in chunk order, into ``OUTPUT`` (a temporary in the parts folder, renamed
        over it), move the errors beside it, and remove the parts folder."""
        # Created by open(), not mkstemp, so the output gets the usual permissions (the umask's).
        tmp = self.folder / f"output-{os.getpid()}-{secrets.token_hex(4)}{self.output.suffix}"
        metadata = json.dumps(self.settings)
        if self.format == "parquet":
            with pq.ParquetWriter(tmp, SCHEMA.with_metadata({_SETTINGS_KEY: metadata})) as writer:
                for part in self._parts():
                    writer.write_table(pq.read_table(part, schema=SCHEMA))
        else:
            with open(tmp, "w", encoding="utf-8") as handle:
                for part in self._parts():
                    for batch in pq.ParquetFile(part).iter_batches():
                        handle.writelines(json.dumps(strict_json(row), allow_nan=False) + "\n" for row in batch.to_pylist())
            atomic_write_json(self.meta_path, self.settings)
        os.replace(tmp, self.output)
        os.replace(self.folder / "errors.jsonl", self.errors_path)
        shutil.rmtree(self.folder)

    def _parts(self) -> list[Path]:
        return sorted(self.folder.glob("part-*.parquet"))
