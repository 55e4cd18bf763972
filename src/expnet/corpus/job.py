"""What a corpus job is asked to do, and the one step every engine runs: explain a chunk."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import pyarrow as pa

from expnet import __version__
from expnet.corpus.readers import READER_VERSION, Chunk
from expnet.corpus.writers import explanations_table
from expnet.explainers import get_explainer
from expnet.explainers.base import Explainer
from expnet.io import folder_state
from expnet.models.classifier import Classifier

# Rows per part file: a kill loses at most this much work, and each part costs a file.
DEFAULT_PART_SIZE = 1024


@dataclass(frozen=True)
class CorpusJob:
    classifier: str
    explainer: str | Explainer  # a name or ExpNet folder, or an explainer object (Python use)
    input: str | Path
    output: str | Path
    text_field: str = "text"
    id_field: str = "id"
    batch_size: int = 16
    max_examples: int | None = None
    seed: int = 0
    device: str | None = None
    trust_remote_code: bool = False
    dtype: str | None = None  # the classifier's weights: float32 (None), bfloat16, float16 or auto
    part_size: int = DEFAULT_PART_SIZE
    explainer_settings: Mapping[str, object] = field(default_factory=dict)  # e.g. {"n_steps": 200}

    def load(self) -> tuple[Classifier, Explainer]:
        """The classifier and explainer, loaded once per process (a Ray actor, or the local driver)."""
        classifier = Classifier.load(self.classifier, device=self.device, trust_remote_code=self.trust_remote_code, dtype=self.dtype)
        if isinstance(self.explainer, Explainer):
            return classifier, self.explainer
        return classifier, get_explainer(self.explainer, batch_size=self.batch_size, seed=self.seed, **self.explainer_settings)

    def resolved(self) -> CorpusJob:
        """The job with local model folders as absolute paths, for processes in other folders (Ray actors)."""
        explainer = resolve_source(self.explainer) if isinstance(self.explainer, str) else self.explainer
        return replace(self, classifier=resolve_source(self.classifier), explainer=explainer)

    def settings(self, explainer: Explainer) -> dict:
        """What decides the output, so a resumed job never mixes parts of another: the engine and
        the workers are not part of it (they give the same rows), the input file's size and time are."""
        source, resolved = Path(self.input).resolve(), self.resolved()
        stat = source.stat()
        # Half precision changes the scores: a resumed job never mixes precisions. float32 adds no
        # key, so outputs written before the setting existed still resume.
        precision = {} if self.dtype in (None, "float32") else {"dtype": self.dtype}
        return {
            **precision,
            "expnet_version": __version__,
            # Which rows a file yields (line ends, decoding): parts cut under other rules never mix.
            "reader": READER_VERSION,
            "classifier": resolved.classifier,
            "explainer": resolved.explainer if isinstance(resolved.explainer, str) else explainer.name,
            # default=repr: a setting that is an object is compared by what it prints.
            "explainer_settings": json.loads(json.dumps(explainer.settings(), default=repr)),
            # A classifier or ExpNet folder rebuilt in place is another model: its parts never mix.
            "classifier_files": folder_state(resolved.classifier),
            "explainer_files": folder_state(resolved.explainer) if isinstance(resolved.explainer, str) else "",
            "input": str(source),
            "input_size": stat.st_size,
            "input_mtime_ns": stat.st_mtime_ns,
            "text_field": self.text_field,
            "id_field": self.id_field,
            "batch_size": self.batch_size,
            "max_examples": self.max_examples,
            "seed": self.seed,
        }


def resolve_source(name_or_path: str) -> str:
    """A folder as its absolute path (a rerun from another folder still matches), else the name."""
    return str(Path(name_or_path).resolve()) if Path(name_or_path).exists() else name_or_path


def explain_chunk(classifier: Classifier, explainer: Explainer, chunk: Chunk) -> pa.Table:
    """One chunk's explanations as output rows. Both engines cut the same chunks, so they explain
    the same batches, with the same seeds."""
    return explanations_table(chunk.records, explainer.explain(classifier, [record.words for record in chunk.records]))
