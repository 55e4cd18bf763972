"""Atomic writes: an interrupted save never leaves a half-written file or folder behind.

A folder is written as a hidden sibling ``.NAME.staging-PID-*``, renamed to ``.NAME.ready-PID-*``
once complete, and swapped in (the old folder goes to ``.NAME.old-PID-*`` for the moment between
the two renames). A process killed anywhere in that sequence leaves names that say what state it
was in, so ``recover_directory`` can finish or undo the swap and clear the leftovers.

A path that is a symbolic link is written *through*: the file or folder it points to is replaced
(its temporaries beside it) and the link stays. Replacing the link itself would leave what it
points to stale and break whatever else relies on the link; a link to nothing is refused, since
writing through it could create a file anywhere. A full disk (or quota) is one line saying which
path could not be written; the old file or folder is left as it was.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from expnet.errors import ExpnetError

_FULL = (errno.ENOSPC, errno.EDQUOT)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to a temporary sibling ``.NAME.tmp-PID-*``, then rename it over ``path`` in
    one step; temporaries that killed writers left beside ``path`` are removed first."""
    path = write_target(Path(path))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        for kind, pid, leftover in _leftovers(path):
            if kind == "tmp" and not _running(pid):
                leftover.unlink(missing_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-{os.getpid()}-", dir=path.parent)
    except OSError as error:
        _refuse_uncreatable(error, path)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        # mkstemp creates 0600 files; results are meant to be shared like any other output.
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException as error:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        _refuse_full_disk(error, path)
        raise
    return path


def _refuse_full_disk(error: BaseException, path: Path) -> None:
    if isinstance(error, OSError) and error.errno in _FULL:
        raise ExpnetError(f"no space left on device writing {path}; free space or choose another --out") from error


def _refuse_uncreatable(error: OSError, path: Path) -> NoReturn:
    """The one line for a temporary sibling of ``path`` that cannot be made: it names ``path``,
    the user's choice, never the hidden temporary (a full disk, a read-only or virtual folder)."""
    _refuse_full_disk(error, path)
    raise ExpnetError(f"cannot write {path}: {error.strerror or error}; choose a folder you can write to") from error


def write_target(path: Path) -> Path:
    """Where a write to ``path`` lands: the target of a symbolic link (after repairing a swap of
    it that a kill interrupted), else ``path`` itself; a link to nothing is refused (commands
    call this before their work, so that the refusal does not come after it)."""
    if not path.is_symlink():
        return path
    real = Path(os.path.realpath(path))
    recover_directory(real)
    if not real.exists():
        raise ExpnetError(f"{path} is a symbolic link to {real}, which does not exist; remove the link or create its target")
    return real


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def strict_json(value: Any) -> Any:
    """``value`` with NaN and infinities as null and numpy scalars as Python numbers: strict
    JSON parsers reject bare NaN, and a missing score is what null says."""
    if isinstance(value, dict):
        return {k: strict_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [strict_json(v) for v in value]
    if isinstance(value, float | np.floating):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def atomic_write_json(path: str | Path, data: Any) -> Path:
    """Strict JSON (``strict_json``), written atomically."""
    return atomic_write_text(path, json.dumps(strict_json(data), indent=2, sort_keys=False, allow_nan=False) + "\n")


@contextlib.contextmanager
def atomic_directory(target: str | Path) -> Iterator[Path]:
    """Yield an empty temporary folder; on success it replaces ``target`` as a whole.

    At every moment either the complete old folder or the complete new one is at ``target``, or
    (after a kill between two renames) a hidden sibling that ``recover_directory`` puts back.
    """
    target = write_target(Path(target))
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        recover_directory(target)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.staging-{os.getpid()}-", dir=target.parent))
    except OSError as error:
        _refuse_uncreatable(error, target)
    os.chmod(staging, 0o777 & ~_umask())  # mkdtemp makes 0700 folders; saved models are shared
    try:
        yield staging
        _share_files(staging)
        ready = _sibling(target, "ready")
        os.replace(staging, ready)  # from here on the new folder is complete: recovery may commit it
        staging = ready
        _swap_in(ready, target)
    except BaseException as error:
        shutil.rmtree(staging, ignore_errors=True)
        _refuse_full_disk(error, target)
        raise


def recover_directory(target: str | Path) -> None:
    """Repair ``target`` after a process died while replacing it, and remove what it left.

    A complete new folder (``ready``) is swapped in; else, if ``target`` is missing, the old folder
    moved aside is put back; half-written staging folders are deleted. Only leftovers of processes
    that no longer run are touched, so a save in progress elsewhere is left alone.
    """
    target = Path(target)
    if target.is_symlink():  # its target is what writes replace (see write_target)
        target = Path(os.path.realpath(target))
    if not target.name or not target.parent.is_dir():
        return
    dead = [(kind, path) for kind, pid, path in _leftovers(target) if kind != "tmp" and not _running(pid)]
    # OSError: another process repairing the same folder got there first (its result stands).
    with contextlib.suppress(OSError):
        by_age = sorted(dead, key=lambda found: found[1].stat().st_mtime)
        ready = [path for kind, path in by_age if kind == "ready"]
        old = [path for kind, path in by_age if kind == "old"]
        if ready:
            _swap_in(ready[-1], target)
        elif old and not target.exists():
            os.replace(old[-1], target)
    repaired = target.exists()
    for kind, path in dead:
        # Staging folders are half-written; the others are superseded once target is in place (if
        # the repair failed they are the only copies, kept for the next try).
        if kind == "staging" or repaired:
            shutil.rmtree(path, ignore_errors=True)


_LEFTOVER = re.compile(r"\.(?P<kind>staging|ready|old|tmp)-(?P<pid>\d+)(-\w+)?")


def is_leftover(name: str) -> bool:
    """Whether ``name`` is what a write here leaves while it runs or when it is killed (a hidden
    staging, swap or temporary file beside its target ``NAME``: ``.NAME.KIND-PID-*``)."""
    return re.fullmatch(r"\..+" + _LEFTOVER.pattern, name) is not None


def _leftovers(target: Path) -> list[tuple[str, int, Path]]:
    """``(kind, pid, path)`` of what writers left beside ``target``: swap folders and (kind
    ``tmp``) temporary files."""
    prefix = f".{target.name}"
    found = []
    for path in target.parent.iterdir():
        match = _LEFTOVER.fullmatch(path.name[len(prefix) :]) if path.name.startswith(prefix) else None
        if match and not path.is_symlink() and path.is_file() == (match["kind"] == "tmp"):
            found.append((match["kind"], int(match["pid"]), path))
    return found


def _running(pid: int) -> bool:
    if pid == os.getpid():
        return True  # this process's own swap (another thread, or a caller's handler) is in progress
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # it exists but belongs to someone else
    return True


def _sibling(target: Path, kind: str) -> Path:
    return target.with_name(f".{target.name}.{kind}-{os.getpid()}-{secrets.token_hex(4)}")


def _swap_in(ready: Path, target: Path) -> None:
    """Put the complete folder ``ready`` at ``target``; the folder it replaces is deleted after."""
    if not target.exists():
        os.replace(ready, target)
        return
    backup = _sibling(target, "old")
    os.replace(target, backup)
    try:
        os.replace(ready, target)
    except BaseException:
        os.replace(backup, target)  # a failure here (not a kill) must not cost the old folder
        raise
    shutil.rmtree(backup, ignore_errors=True)


def _share_files(folder: Path) -> None:
    """Give every saved file the usual permissions: some writers (transformers' safetensors
    saving among them) create 0600 files, which other users of a shared model could not read."""
    mode = 0o666 & ~_umask()
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink():
            os.chmod(path, mode)


def folder_state(source: str | Path) -> str:
    """A hash of the names, sizes and modification times of a folder's files ("" when ``source``
    is no folder, e.g. a hub name): cheap on a large model, and it changes when the folder is
    written again, so a resumed job never mixes the results of two models saved in one place."""
    folder = Path(source)
    if not folder.is_dir():
        return ""
    return json_digest([[path.name, path.stat().st_size, path.stat().st_mtime_ns] for path in sorted(folder.iterdir()) if path.is_file()])


def json_digest(value: Any) -> str:
    """A short SHA-256 of a JSON-able value (what a resumed job compares, not the value itself)."""
    return hashlib.sha256(json.dumps(value).encode()).hexdigest()[:16]
