"""Regenerate the concept sets shipped in ``src/expnet/concepts/sets`` from the full datasets.

    python scripts/make_concepts.py --data-dir /path/to/data [--out src/expnet/concepts/sets]

Every draw is seeded (``random.Random(f"{SEED}:{name}")``), so reruns give identical files.
How each set is made is written to ``README.md`` beside the sets (kept by hand; this script's
docstrings below are the source of truth).

- ``negation`` / ``intensifiers`` (SST-2 treebank, train trees): for every occurrence of a cue
  word, the smallest treebank constituent of at least 3 words containing it, kept when it has at
  most 10 words and no cue of the other concept; deduplicated; 200 drawn.
- ``random_sst2``: treebank constituents (train trees) with none of either concept's cues, one
  drawn for each length of a concept phrase (so the random set matches their lengths); 300.
- ``slurs`` (HateXplain validation rationales): the rationale lexicon is every lower-cased token
  that the annotator majority marks in at least ``LEX_MIN_MARKED`` hateful/offensive posts and
  in at least ``LEX_MIN_RATE`` of its occurrences there, and that is rare in normal speech: at most
  ``LEX_MAX_NORMAL`` of the train posts containing it have the majority label normal (this drops
  target-group names such as "muslims" or "women", which annotators also mark, and keeps the slurs
  and insults); concept texts are the majority-rationale
  spans (runs of marked tokens) that contain a lexicon word, cut to the 8-token window around
  it; deduplicated; 200 drawn.
- ``random_hatexplain``: windows of HateXplain *train* posts (any label; the train split has no
  rationales and is disjoint from validation and test) with no lexicon word, one drawn for each
  length of a slur span; 300.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
try:
    from expnet.cli.main import run_script
    from expnet.data import ptb
except ImportError:  # run from a checkout without installing the package
    sys.path.insert(0, str(ROOT / "src"))
    from expnet.cli.main import run_script
    from expnet.data import ptb

SEED = 20250812
NEGATION = {"not", "n't", "no", "never", "nothing", "nobody", "none", "neither", "nor", "nowhere", "without", "cannot"}
INTENSIFIERS = {
    "very", "really", "extremely", "incredibly", "utterly", "totally", "absolutely", "remarkably", "truly",
    "highly", "deeply", "thoroughly", "terribly", "awfully", "exceptionally", "particularly", "especially",
    "immensely", "hugely", "wildly", "genuinely", "seriously", "downright", "endlessly",
}
CONCEPT_SIZE = 200
RANDOM_SIZE = 300
MIN_WORDS, MAX_WORDS = 3, 10
LEX_MIN_MARKED, LEX_MIN_RATE, LEX_MAX_NORMAL = 8, 0.75, 0.15
SPAN_WINDOW = 8
PLACEHOLDERS = {"<user>", "<number>", "<url>", "<percent>", "<money>", "<date>", "<time>", "<email>", "<phone>"}


def rng_for(name: str) -> random.Random:
    return random.Random(f"{SEED}:{name}")


# --- SST-2 ---------------------------------------------------------------------------------
def sst_constituents(data_dir: Path) -> list[list[str]]:
    """Every constituent (as lower-cased words) of every train tree, sentence by sentence."""
    out = []
    for line in (data_dir / "sst2" / "trees" / "train.txt").read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        root = ptb.parse_tree(line)
        words = [w.lower() for w in ptb.leaves(root, unescape=True)]
        out.append((words, [(n.start, n.end) for n in ptb.iter_nodes(root)]))
    return out


def smallest_phrases(sentences, cues: set[str], avoid: set[str]) -> list[str]:
    phrases = []
    for words, spans in sentences:
        for position, word in enumerate(words):
            if word not in cues:
                continue
            fitting = [(e - s, s, e) for s, e in spans if s <= position < e and e - s >= MIN_WORDS]
            if not fitting:
                continue
            _, s, e = min(fitting)
            phrase = words[s:e]
            if len(phrase) <= MAX_WORDS and not avoid.intersection(phrase):
                phrases.append(" ".join(phrase))
    return sorted(set(phrases))


def matched_random(pool_by_length: dict[int, list[str]], lengths: list[int], size: int, rng: random.Random) -> list[str]:
    chosen: set[str] = set()
    pools = {k: rng.sample(v, len(v)) for k, v in sorted(pool_by_length.items())}
    for length in (rng.choice(lengths) for _ in range(size * 20)):
        if len(chosen) == size:
            break
        if pools.get(length):
            chosen.add(pools[length].pop())
    return sorted(chosen)


def make_sst(data_dir: Path) -> dict[str, list[str]]:
    sentences = sst_constituents(data_dir)
    negation = smallest_phrases(sentences, NEGATION, INTENSIFIERS)
    intensifiers = smallest_phrases(sentences, INTENSIFIERS, NEGATION)
    sets = {
        "negation": sorted(rng_for("negation").sample(negation, min(CONCEPT_SIZE, len(negation)))),
        "intensifiers": sorted(rng_for("intensifiers").sample(intensifiers, min(CONCEPT_SIZE, len(intensifiers)))),
    }
    pool: dict[int, set[str]] = {}
    for words, spans in sentences:
        for s, e in spans:
            phrase = words[s:e]
            if MIN_WORDS <= len(phrase) <= MAX_WORDS and not (NEGATION | INTENSIFIERS).intersection(phrase):
                pool.setdefault(len(phrase), set()).add(" ".join(phrase))
    lengths = [len(p.split()) for p in sets["negation"] + sets["intensifiers"]]
    sets["random_sst2"] = matched_random({k: sorted(v) for k, v in pool.items()}, lengths, RANDOM_SIZE, rng_for("random_sst2"))
    return sets


# --- HateXplain ----------------------------------------------------------------------------
def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def majority(labels: list[int]) -> int | None:
    (label, count), = Counter(labels).most_common(1)
    return label if count >= 2 else None


def make_hatexplain(data_dir: Path) -> tuple[dict[str, list[str]], list[str]]:
    posts = []
    for record in read_jsonl(data_dir / "hatexplain" / "validation.jsonl"):
        if majority(record["annotators"]["label"]) in (0, 2) and record["rationales"]:
            words = [w.lower() for w in record["post_tokens"]]
            masks = record["rationales"]
            marked = [sum(m[i] for m in masks) / len(masks) >= 0.5 for i in range(len(words))]
            posts.append((words, marked))
    occurrences, marked_posts = Counter(), Counter()
    for words, marked in posts:
        occurrences.update(set(words))
        marked_posts.update({w for w, m in zip(words, marked, strict=True) if m})
    train = read_jsonl(data_dir / "hatexplain" / "train_no_rationales.jsonl")
    in_posts, in_normal = Counter(), Counter()
    for record in train:
        present = {w.lower() for w in record["post_tokens"]}
        in_posts.update(present)
        if record["majority_label"] == "normal":
            in_normal.update(present)
    lexicon = sorted(
        w for w, k in marked_posts.items()
        if k >= LEX_MIN_MARKED and k / occurrences[w] >= LEX_MIN_RATE and w not in PLACEHOLDERS
        and any(c.isalpha() for c in w) and in_normal[w] <= LEX_MAX_NORMAL * in_posts[w]
    )
    spans = set()
    for words, marked in posts:
        i = 0
        while i < len(words):
            if not marked[i]:
                i += 1
                continue
            j = i
            while j < len(words) and marked[j]:
                j += 1
            run = words[i:j]
            hits = [k for k, w in enumerate(run) if w in lexicon]
            if hits:
                start = max(0, min(hits[0] - SPAN_WINDOW // 2, len(run) - SPAN_WINDOW))
                spans.add(" ".join(run[start : start + SPAN_WINDOW]))
            i = j
    spans = sorted(spans)
    slurs = sorted(rng_for("slurs").sample(spans, min(CONCEPT_SIZE, len(spans))))
    pool: dict[int, set[str]] = {}
    lex = set(lexicon)
    for record in train:
        words = [w.lower() for w in record["post_tokens"]]
        for length in range(1, SPAN_WINDOW + 1):
            for start in range(0, max(len(words) - length + 1, 0), length):
                window = words[start : start + length]
                if not lex.intersection(window):
                    pool.setdefault(length, set()).add(" ".join(window))
    lengths = [len(s.split()) for s in slurs]
    random_set = matched_random({k: sorted(v) for k, v in pool.items()}, lengths, RANDOM_SIZE, rng_for("random_hatexplain"))
    return {"slurs": slurs, "random_hatexplain": random_set}, lexicon


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True, help="folder with sst2/ and hatexplain/ in their original layout")
    parser.add_argument("--out", default=str(ROOT / "src" / "expnet" / "concepts" / "sets"))
    args = parser.parse_args(argv)
    data_dir, out = Path(args.data_dir), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sets = make_sst(data_dir)
    hate_sets, lexicon = make_hatexplain(data_dir)
    sets.update(hate_sets)
    for name, lines in sets.items():
        (out / f"{name}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
        print(f"{name}: {len(lines)} lines, mean {sum(len(line.split()) for line in lines) / len(lines):.1f} words")
    print(f"rationale lexicon ({len(lexicon)} words): {' '.join(lexicon)}")
    return 0


if __name__ == "__main__":
    sys.exit(run_script(main))
