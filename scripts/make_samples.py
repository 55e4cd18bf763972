"""Regenerate the data samples shipped in ``src/expnet/samples`` from a full data directory.

    python scripts/make_samples.py --data-dir /path/to/data [--out src/expnet/samples]

The samples keep the upstream file layout and formats (lines copied verbatim), so the very same
loaders read them. Every file is a seeded random draw (``random.Random(f"{SEED}:{file}")``),
kept in the original file order, so reruns give byte-identical output; the movies archive is
written with fixed timestamps and owners for the same reason.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import shutil
import sys
import tarfile
import tempfile
from pathlib import Path, PurePosixPath

ROOT = Path(__file__).resolve().parents[1]
try:
    from expnet.cli.main import run_script
    from expnet.data import ptb, sst2
    from expnet.data.splits import seeded_draw
    from expnet.io import atomic_directory
except ImportError:  # run from a checkout without installing the package
    sys.path.insert(0, str(ROOT / "src"))
    from expnet.cli.main import run_script
    from expnet.data import ptb, sst2
    from expnet.data.splits import seeded_draw
    from expnet.io import atomic_directory

SEED = 20240601
# (file relative to the data dir, number of data lines to keep, header lines kept on top)
PLAIN = [
    ("hatexplain/train_no_rationales.jsonl", 1500, 0),
    ("hatexplain/validation.jsonl", 300, 0),
    ("hatexplain/test.jsonl", 300, 0),
    ("sst2/glue_train.tsv", 1999, 1),  # 2,000 rows with the header
    ("sst2/glue_dev.tsv", 300, 1),
    ("sst2/trees/train.txt", 1500, 0),
    ("sst2/trees/test.txt", 100, 0),
    ("cola/in_domain_train.tsv", 1500, 0),
    ("cola/in_domain_dev.tsv", 300, 0),
]
MOVIES = {"train": 150, "val": 40, "test": 40}
TASKS = ("hatexplain", "sst2", "movies", "cola")
COPIED = ["cola/README"]  # upstream licence / fair-use note travels with the data


def draw(lines: list[str], k: int, name: str) -> list[str]:
    """``k`` lines chosen by a per-file seeded RNG, in their original order."""
    return seeded_draw(lines, k, f"{SEED}:{name}")


def sample_plain(src: Path, out: Path) -> None:
    for rel, k, header in PLAIN:
        lines = (src / rel).read_text(encoding="utf-8").splitlines(keepends=True)
        lines = [ln for ln in lines[:header]] + draw([ln for ln in lines[header:] if ln.strip()], k, rel)
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_text("".join(lines), encoding="utf-8")


def sample_dev_trees(src: Path, out: Path) -> None:
    """Keep the dev trees that the sampled GLUE dev sentences match (the loader's own rule)."""
    wanted = {sst2._key(words) for _, words, _ in sst2._read_glue(out / "sst2/glue_dev.tsv")}
    kept, seen = [], set()
    for line in (src / "sst2/trees/dev.txt").read_text(encoding="utf-8").splitlines(keepends=True):
        if not line.strip():
            continue
        key = sst2._key(sst2.tree_words(ptb.parse_tree(line)))
        if key in wanted and key not in seen:
            kept.append(line)
            seen.add(key)
    (out / "sst2/trees/dev.txt").write_text("".join(kept), encoding="utf-8")
    print(f"sst2/trees/dev.txt: {len(kept)} trees for {len(wanted)} sampled dev sentences")


def sample_movies(src: Path, out: Path) -> None:
    files: dict[str, bytes] = {}
    with tarfile.open(src / "movies/movies.tar.gz", "r:gz") as tar:
        for member in tar:
            if member.isfile():
                files[member.name] = tar.extractfile(member).read()
    by_name = {PurePosixPath(n).name: n for n in files}
    chosen: dict[str, bytes] = {}
    for split, k in MOVIES.items():
        jsonl_name = by_name[f"{split}.jsonl"]
        lines = draw(files[jsonl_name].decode("utf-8").splitlines(keepends=True), k, f"movies/{split}")
        chosen[jsonl_name] = "".join(lines).encode("utf-8")
        for line in lines:
            docid = json.loads(line)["annotation_id"]
            doc_name = str(PurePosixPath(jsonl_name).parent / "docs" / docid)
            chosen[doc_name] = files[doc_name]
    target = out / "movies/movies.tar.gz"
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
        with tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
            # docs first, then the jsonl files: the upstream archive's order
            for name in sorted(chosen, key=lambda n: (PurePosixPath(n).parent.name != "docs", n)):
                info = tarfile.TarInfo(name)
                info.size, info.mtime, info.mode = len(chosen[name]), 0, 0o644
                tar.addfile(info, io.BytesIO(chosen[name]))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True, help="full data (hatexplain/, sst2/, ...)")
    parser.add_argument("--out", type=Path, default=ROOT / "src/expnet/samples")
    args = parser.parse_args(argv)
    src, out = args.data_dir, args.out
    out.mkdir(parents=True, exist_ok=True)
    # Everything is drawn into a staging folder first, so a missing or broken source leaves the
    # samples as they were; each task's folder is then replaced whole (no stale files of an older draw).
    with tempfile.TemporaryDirectory(dir=out, prefix=".staging-") as staging:
        built = Path(staging)
        sample_plain(src, built)
        sample_dev_trees(src, built)
        sample_movies(src, built)
        for rel in COPIED:
            shutil.copyfile(src / rel, built / rel)
        for task in TASKS:
            with atomic_directory(out / task) as folder:
                shutil.copytree(built / task, folder, dirs_exist_ok=True)
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"wrote samples to {out}: {total / 1e6:.2f} MB")


if __name__ == "__main__":
    sys.exit(run_script(main))
