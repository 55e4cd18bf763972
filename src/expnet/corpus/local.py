"""The local engine: explain chunks one after another in this process."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import pyarrow as pa

from expnet.corpus.job import explain_chunk
from expnet.corpus.readers import Chunk
from expnet.explainers.base import Explainer
from expnet.models.classifier import Classifier


def explain_locally(classifier: Classifier, explainer: Explainer, chunks: Iterable[Chunk]) -> Iterator[tuple[int, pa.Table]]:
    for chunk in chunks:
        yield chunk.index, explain_chunk(classifier, explainer, chunk)
