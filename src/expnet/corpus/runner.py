"""Explain a corpus file into an output file, on either engine, resumably."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from expnet.corpus.job import CorpusJob
from expnet.corpus.readers import BadRow, Chunk, chunked, count_rows, read_rows, require_fields
from expnet.corpus.writers import PartStore, output_format
from expnet.errors import ExpnetError

ENGINES = ("local", "ray")


@dataclass
class CorpusSummary:
    output: Path
    errors: Path
    rows: int  # explained rows in the output
    resumed_rows: int  # of those, rows found done from an earlier run
    bad_rows: int
    seconds: float


def explain_corpus(
    job: CorpusJob,
    engine: str = "local",
    num_workers: int = 1,
    address: str | None = None,
    gpus_per_worker: float | None = None,
    progress: bool = False,
) -> CorpusSummary:
    """Explain every good row of ``job.input`` into ``job.output``; rerun after a crash to resume."""
    started = time.perf_counter()
    if engine not in ENGINES:
        raise ExpnetError(f"unknown engine {engine!r}: give one of {', '.join(ENGINES)}")
    total = count_rows(job.input)  # reads a Parquet footer: a damaged file is refused before any work
    require_fields(job.input, job.text_field, job.id_field)
    output_format(job.output)
    if engine == "ray":
        from expnet.corpus.ray_engine import import_ray

        import_ray()  # before any work: a missing extra is one line, not a traceback later
    # Loaded here for both engines: a wrong path or name is reported before a cluster starts.
    classifier, explainer = job.load()
    store = PartStore(job.output, job.settings(explainer))
    done, done_rows = store.open()
    # The bar counts rows read: the good ones explained in this pass, and every bad one (each pass
    # reads the whole input). With max_examples, bad rows do not count towards it but are read.
    rows_left = max(total - done_rows, 0)
    counts = {"bad": 0, "new": 0}
    with store.errors_file() as errors, tqdm(
        total=min(rows_left, max(job.max_examples - done_rows, 0)) if job.max_examples else rows_left,
        unit="ex", desc="explain", disable=not progress, smoothing=0.1,
    ) as bar:

        def bad_row(row: BadRow) -> None:
            errors.write(json.dumps(row.to_dict()) + "\n")
            counts["bad"] += 1
            if job.max_examples:
                bar.total = min(bar.total + 1, rows_left)
            bar.update(1)

        pending = (chunk for chunk in _chunks(job, bad_row) if chunk.index not in done)
        if engine == "local":
            from expnet.corpus.local import explain_locally

            results = explain_locally(classifier, explainer, pending)
        else:
            from expnet.corpus.ray_engine import explain_on_ray

            explainer.validate_settings()
            explainer.check(classifier)  # its refusal or warning reaches the user from here, not from the actors
            del classifier  # the actors load their own
            results = explain_on_ray(job, pending, store.folder, num_workers, address, gpus_per_worker)
        part_chunks, part_tables, part_rows = [], [], 0
        for index, table in results:
            part_chunks.append(index)
            part_tables.append(table)
            part_rows += table.num_rows
            counts["new"] += table.num_rows
            bar.update(table.num_rows)
            if part_rows >= job.part_size:
                store.write_part(part_chunks, part_tables)
                part_chunks, part_tables, part_rows = [], [], 0
        if part_chunks:
            store.write_part(part_chunks, part_tables)
    store.finish()
    return CorpusSummary(
        Path(job.output), store.errors_path, done_rows + counts["new"], done_rows, counts["bad"], time.perf_counter() - started
    )


def _chunks(job: CorpusJob, bad_row: Callable[[BadRow], None]) -> Iterator[Chunk]:
    """The input's chunks of good rows (the first ``max_examples``); bad rows go to ``bad_row``."""

    def good_rows():
        kept = 0
        for row in read_rows(job.input, job.text_field, job.id_field):
            if isinstance(row, BadRow):
                bad_row(row)
                continue
            yield row
            kept += 1
            if kept == job.max_examples:
                return

    yield from chunked(good_rows(), job.batch_size)
