"""The Ray engine: chunks explained by a pool of Ray actors, each loading the models once.

The driver reads and checks the input with the same reader as the local engine (so both see the
same rows, bad rows and chunks) and stages the pending chunks as Parquet files in the parts folder;
Ray Data reads them, ``map_batches`` hands one chunk at a time to an actor, and the explained chunks
stream back to the driver, which writes the parts as the local engine does. An actor that dies is
restarted and its chunk retried (Ray Data's actor pools default to ``max_restarts=-1`` and
``max_task_retries=-1``; newer Rays deprecate setting them per call), and a retried chunk's result
comes back once. Against a cluster (``address``), the parts folder must be on storage every node
can read.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Iterator
from itertools import islice
from pathlib import Path

import pyarrow as pa

from expnet.corpus.job import CorpusJob, explain_chunk
from expnet.corpus.readers import Chunk, Record
from expnet.corpus.writers import parquet_bytes, table_from_bytes, table_to_bytes
from expnet.errors import ExpnetError
from expnet.io import atomic_write_bytes

# Chunks per staged file: Ray Data reads a file as a unit, so files bound what a reader holds.
CHUNKS_PER_FILE = 64
STAGED = pa.schema(
    [
        ("chunk", pa.int64()),
        ("lines", pa.list_(pa.int64())),
        ("ids", pa.list_(pa.string())),
        ("words", pa.list_(pa.list_(pa.string()))),
    ]
)


def import_ray():
    try:
        import ray
        import ray.data  # the extra brings it; plain ray lacks it
    except ImportError:
        raise ExpnetError("--engine ray needs Ray Data: pip install 'expnet[ray]'") from None
    return ray


class ChunkExplainer:
    """A Ray Data actor: loads the classifier and explainer once, then explains staged chunks."""

    def __init__(self, job: CorpusJob):
        self.classifier, self.explainer = job.load()

    def __call__(self, batch: pa.Table) -> pa.Table:
        chunks, tables = [], []
        for row in batch.to_pylist():
            records = [Record(*fields) for fields in zip(row["lines"], row["ids"], row["words"], strict=True)]
            chunk = Chunk(row["chunk"], records)
            chunks.append(chunk.index)
            tables.append(table_to_bytes(explain_chunk(self.classifier, self.explainer, chunk)))
        return pa.table({"chunk": pa.array(chunks, pa.int64()), "arrow": pa.array(tables, pa.binary())})


def explain_on_ray(
    job: CorpusJob,
    chunks: Iterable[Chunk],
    parts_folder: Path,
    num_workers: int = 1,
    address: str | None = None,
    gpus_per_worker: float | None = None,
) -> Iterator[tuple[int, pa.Table]]:
    ray = import_ray()
    staging = parts_folder / "staging"
    shutil.rmtree(staging, ignore_errors=True)  # a previous pass's pending chunks, maybe done since
    if not _stage(chunks, staging):
        return
    started = not ray.is_initialized()
    if started:
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            # One CPU beyond the actors' for Ray Data's read tasks, which would otherwise wait forever.
            ray.init(num_cpus=num_workers + 1, include_dashboard=False, log_to_driver=False)
    try:
        context = ray.data.DataContext.get_current()
        context.execution_options.preserve_order = True  # parts, and so the output, in input order
        context.enable_progress_bars = False  # the driver's own bar counts examples
        resources = {"num_gpus": gpus_per_worker} if gpus_per_worker else {}
        explained = ray.data.read_parquet(str(staging)).map_batches(
            ChunkExplainer,
            fn_constructor_kwargs={"job": job.resolved()},
            batch_size=1,
            batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(size=num_workers),
            num_cpus=1,
            **resources,
        )
        for batch in explained.iter_batches(batch_format="pyarrow", batch_size=None):
            for index, data in zip(batch.column("chunk").to_pylist(), batch.column("arrow").to_pylist(), strict=True):
                yield index, table_from_bytes(data)
    finally:
        if started:
            ray.shutdown()
        shutil.rmtree(staging, ignore_errors=True)


def _stage(chunks: Iterable[Chunk], staging: Path) -> bool:
    """Write the chunks to Parquet files under ``staging``; False when there are none."""
    chunks = iter(chunks)
    count = 0
    while group := list(islice(chunks, CHUNKS_PER_FILE)):
        table = pa.Table.from_pydict(
            {
                "chunk": [chunk.index for chunk in group],
                "lines": [[r.line for r in chunk.records] for chunk in group],
                "ids": [[r.id for r in chunk.records] for chunk in group],
                "words": [[r.words for r in chunk.records] for chunk in group],
            },
            schema=STAGED,
        )
        atomic_write_bytes(staging / f"chunks-{count:06d}.parquet", parquet_bytes(table))
        count += 1
    return count > 0
