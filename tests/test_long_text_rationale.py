"""benchmarks/long_text_rationale.py's per-text F1 against hand-computed values."""

import importlib.util
from pathlib import Path

import numpy as np

_SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "long_text_rationale.py"
_SPEC = importlib.util.spec_from_file_location("long_text_rationale", _SCRIPT)
long_text_rationale = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(long_text_rationale)


def test_per_text_f1_by_hand():
    golds = [np.array([1, 1, 0, 0, 0]), np.array([0, 1])]
    chosen = [np.array([1, 0, 1, 1, 0]), np.array([0, 1])]
    # Text 1: one of three chosen is gold, one of two gold chosen: F1 2 * (1/3 * 1/2) / (1/3 + 1/2) = 0.4.
    np.testing.assert_allclose(long_text_rationale.per_text_f1(golds, chosen), [0.4, 1.0])
