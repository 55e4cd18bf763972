"""Explain a whole corpus file: streamed, resumable, locally or on a Ray cluster.

``readers`` (input rows, checked), ``writers`` (output rows, parts, the final join), ``job`` (the
settings and the per-chunk step), ``local`` and ``ray_engine`` (who runs the chunks), ``runner``
(``explain_corpus``: resume, bad rows, progress).
"""

from expnet.corpus.job import CorpusJob
from expnet.corpus.runner import CorpusSummary, explain_corpus

__all__ = ["CorpusJob", "CorpusSummary", "explain_corpus"]
