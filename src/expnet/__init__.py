"""expnet: learned word-level explanations for transformer text classifiers.

The architecture, one package per job:

- ``expnet.data``: rationale datasets in one record type (``RationaleExample``).
- ``expnet.models``: loading and fine-tuning Hugging Face classifiers (``Classifier``).
- ``expnet.words``: words <-> subword tokens, and pooling token scores to words.
- ``expnet.explainers``: one interface and a registry for every explainer, ExpNet included.
- ``expnet.network``: the ExpNet network itself, its features and its training.
- ``expnet.metrics``: plausibility, faithfulness and speed.
- ``expnet.report``: tables and HTML.
- ``expnet.cli``: the ``expnet`` command.
"""

__version__ = "0.1.0"
