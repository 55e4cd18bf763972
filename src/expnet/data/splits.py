"""Splits for data that comes without them (a JSONL file is one pool of examples), and seeded
draws of a split."""

from __future__ import annotations

import random
from collections.abc import Sequence

from .records import RationaleExample

# The share of a split-less file held out for evaluation (the benchmark's default, and what
# `expnet finetune` measures dev accuracy on, so a classifier it makes never saw those texts).
JSONL_EVAL_FRACTION = 0.3


def jsonl_split(
    examples: Sequence[RationaleExample], name: str, eval_fraction: float, seed: int = 0
) -> tuple[list[RationaleExample], list[RationaleExample]]:
    """A split-less file's (evaluation, training) parts: a shuffle seeded by ``seed`` and the
    task's ``name`` (``task_name``: a JSONL file's stem), its first ``eval_fraction`` (at least
    one example) for evaluation. The same seed and name give the same parts, so a classifier
    fine-tuned on the training part never sees the evaluation part."""
    order = list(range(len(examples)))
    random.Random(f"{seed}:{name}:jsonl-split").shuffle(order)
    n_eval = max(1, round(eval_fraction * len(examples)))
    return [examples[i] for i in order[:n_eval]], [examples[i] for i in order[n_eval:]]


def seeded_draw(examples: Sequence, n: int | None, salt: str) -> list:
    """``n`` of ``examples`` drawn at random (seeded by ``salt``) and kept in their order; all of
    them when ``n`` is None or not smaller. Not the first ``n``: a file sorted by class (ERASER's
    movie reviews put every negative review first) would give one class only."""
    if n is None or n >= len(examples):
        return list(examples)
    return [examples[i] for i in sorted(random.Random(salt).sample(range(len(examples)), n))]
