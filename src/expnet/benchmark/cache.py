"""A JSON result cache: an interrupted benchmark resumes, a rerun computes only what changed.

Each entry is one file ``CACHE/<kind>/<sha256 of the key>.json`` holding its key and payload,
written atomically (``expnet.io``), so a crash never leaves half an entry. Keys say everything the
result depends on:

- the classifier: its folder and a hash of ``metrics.json`` (written once per fine-tune), or of
  ``config.json`` plus the weight files' sizes and times for a classifier made elsewhere;
- the explainer: its name, its settings (budgets, batch size, seed) and a hash of the source
  file that implements it (so an edited explainer is recomputed); an ExpNet by a hash of its
  weights and config;
- the task, the split and a hash of the example ids (so another sample is another entry).

``hits`` and ``computed`` count, per kind, the entries reused and the ones computed in this run.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from expnet.io import atomic_write_json


def canonical(value: Any) -> Any:
    """``value`` as plain JSON data (tuples become lists, unknown objects their repr)."""
    return json.loads(json.dumps(value, sort_keys=True, default=repr))


def digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(canonical(value), sort_keys=True).encode("utf-8")).hexdigest()


def file_digest(paths: Iterable[str | Path]) -> str:
    """SHA-256 of the files' bytes (missing files count as empty)."""
    sha = hashlib.sha256()
    for path in paths:
        path = Path(path)
        sha.update(path.name.encode())
        if path.is_file():
            with open(path, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    sha.update(block)
    return sha.hexdigest()


def source_digest(obj: Any) -> str:
    """A hash of the source file that defines ``obj`` (a class, function or module)."""
    target = obj if inspect.ismodule(obj) or inspect.isclass(obj) or inspect.isfunction(obj) else type(obj)
    try:
        return file_digest([inspect.getsourcefile(target)])[:16]
    except (TypeError, OSError):
        return "unknown"


def classifier_fingerprint(folder: str | Path) -> dict:
    """Identity of a classifier folder: path + metrics.json hash, else config + weight file stats."""
    folder = Path(folder)
    metrics = folder / "metrics.json"
    if metrics.is_file():
        return {"path": str(folder.resolve()), "metrics": file_digest([metrics])[:16]}
    stats = []
    for path in sorted(folder.glob("*")):
        if path.suffix in (".safetensors", ".bin") and path.is_file():
            stat = path.stat()
            stats.append([path.name, stat.st_size, stat.st_mtime_ns])
    if not folder.is_dir():  # a hub name: the name is all we know
        return {"path": str(folder)}
    return {"path": str(folder.resolve()), "config": file_digest([folder / "config.json"])[:16], "weights": stats}


def examples_digest(examples) -> str:
    return digest([[e.task, e.id] for e in examples])[:16]


class ResultCache:
    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.hits: Counter[str] = Counter()
        self.computed: Counter[str] = Counter()

    def path(self, kind: str, key: Any) -> Path:
        return self.folder / kind / f"{digest(key)[:32]}.json"

    def get(self, kind: str, key: Any) -> Any | None:
        """The payload stored under ``key``, or None (counted as a hit when found)."""
        path = self.path(kind, key)
        if not path.is_file():
            return None
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return None  # unreadable: computed again and overwritten
        if entry.get("key") != canonical(key):
            return None
        self.hits[kind] += 1
        return entry["payload"]

    def put(self, kind: str, key: Any, payload: Any) -> Any:
        atomic_write_json(self.path(kind, key), {"kind": kind, "key": canonical(key), "payload": payload})
        self.computed[kind] += 1
        return payload

    def note(self, kind: str, reused: bool) -> None:
        """Count work cached outside this folder (fine-tuned classifiers, trained ExpNets)."""
        (self.hits if reused else self.computed)[kind] += 1

    def counters(self) -> dict:
        return {
            "hits": dict(sorted(self.hits.items())),
            "computed": dict(sorted(self.computed.items())),
            "total_hits": sum(self.hits.values()),
            "total_computed": sum(self.computed.values()),
        }
