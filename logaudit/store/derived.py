"""Derived data: what logaudit computes from the entry files and keeps to answer faster.

Every cache of a store is one *kind* of derived data, with one folder, one key scheme, one
atomic write and one prune policy (docs/store.md, "Derived data")::

    derived/<kind>/<digest>/shape.json     {"kind", "digest", "shape"}: what the data depends on
    derived/<kind>/<digest>/...            the data (per entry file: date=YYYY-MM-DD/part-.../)
    derived/<kind>/.lock                   for kinds whose writers take turns (matches)

The *shape* is a mapping of everything besides the entry files that shapes the content: code
constants (engine version, masks, latency bins, path rules, cut lengths, redaction rules) and
catalog fingerprints. Its digest names the folder, so it is part of every key: a change of any
input makes a new folder, and data made under other inputs is never read. Nothing is bumped by
hand; a kind lists its inputs where it opens its handle.

Entry files are immutable (a new ingest only adds files), so data derived from one stays valid
as long as the file exists with the same size. Readers validate what they read (a missing or
damaged file is a miss); writers write atomically (`logaudit.core.atomic`); a read-only store is
read with derived data computed, not kept (or kept in a private scratch folder for the process).

>>> from logaudit.store.store import Store
>>> handle = Store("logaudit-store").derived("aggregates", {"bins": 200})   # doctest: +SKIP
>>> handle.entry_folder(entry_path) / "base-1234.parquet"                 # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import orjson

from logaudit.core.atomic import atomic_path
from logaudit.core.lock import FileLock
from logaudit.store.layout import scratch_dir, write_errors

#: The folder, below the store root, of all derived data.
DERIVED = "derived"
#: The kinds logaudit keeps (what `logaudit store info` lists and `store clear-cache --kind` takes).
KINDS = ("matches", "aggregates", "aggregates-cat", "slices")
#: Cache folders of earlier versions: never read; `Store.clear_derived` removes them.
LEGACY = ("matches", "cache")
SHAPE_FILE = "shape.json"
#: Data of another shape than the current one goes once its shape was last used this long ago
#: (so that two commands of different shapes running together do not remove each other's data).
STALE_SHAPE_SECONDS = 3600.0


def shape_digest(shape: Mapping[str, Any]) -> str:
    """A short digest of a shape: JSON with sorted keys (tuples as lists, anything else as str).

    >>> shape_digest({"b": 1, "a": [1, 2]}) == shape_digest({"a": (1, 2), "b": 1})
    True
    """
    body = orjson.dumps(dict(shape), option=orjson.OPT_SORT_KEYS, default=str)
    return hashlib.sha256(body).hexdigest()[:16]


def entry_key(root: Path, path: Path) -> str:
    """An entry file's key: its path below ``entries/`` (a file outside the store: a hash of its path)."""
    try:
        return path.relative_to(root / "entries").as_posix()
    except ValueError:
        return "external/" + hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16] + ".parquet"


class Derived:
    """A handle on one kind of derived data of one store, for one shape.

    `folder` holds the data; `entry_folder(path)` the data of one entry file; `key(...)` mixes
    the shape's digest into a key; `write(path, fn)` writes atomically; `prune()` removes data
    of entry files that are gone and of shapes no longer used. Nothing is written when the store
    is not `writable`.
    """

    def __init__(self, root: Path, kind: str, shape: Mapping[str, Any], *, writable: bool = True) -> None:
        self.root = Path(root)
        self.kind = kind
        self.shape = dict(shape)
        self.digest = shape_digest(self.shape)
        self.writable = writable
        self.base = self.root / DERIVED / kind
        self.folder = self.base / self.digest
        self._ready = False

    def __repr__(self) -> str:
        return f"Derived({self.kind!r}, {self.digest})"

    # ------------------------------------------------------------------ keys and paths
    def key(self, *parts: object) -> str:
        """A 16-hex key of `parts` under this shape."""
        return hashlib.sha256("\n".join([self.digest, *map(str, parts)]).encode()).hexdigest()[:16]

    def entry_key(self, path: Path) -> str:
        return entry_key(self.root, path)

    def entry_folder(self, entry: Path | str, base: Path | None = None) -> Path:
        """The folder of one entry file's data (`entry`: its path or its key)."""
        key = entry if isinstance(entry, str) else self.entry_key(entry)
        return (base or self.folder) / key.removesuffix(".parquet")

    def scratch(self) -> Path:
        """This kind's folder in the private scratch directory of a read-only store (made on demand)."""
        return scratch_dir(self.root) / DERIVED / self.kind / self.digest  # type: ignore[operator]

    # ------------------------------------------------------------------ writing
    def prepare(self) -> bool:
        """Make the folder and its shape file (once per handle); False when nothing may be written."""
        if not self.writable:
            return False
        if not self._ready:
            shape_file = self.folder / SHAPE_FILE
            if not shape_file.exists():
                body = orjson.dumps({"kind": self.kind, "digest": self.digest, "shape": self.shape},
                                    option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS, default=str)
                with write_errors(shape_file):
                    self.folder.mkdir(parents=True, exist_ok=True)
                    with atomic_path(shape_file, durable=False) as tmp:
                        tmp.write_bytes(body)
            else:  # marks the shape as in use (see `prune`)
                with contextlib.suppress(OSError):
                    os.utime(shape_file)
            self._ready = True
        return True

    def write(self, path: Path, fill: Callable[[Path], None]) -> None:
        """Write `path` atomically: `fill(tmp)` writes a temporary file that is renamed (not fsynced:
        a reader checks derived files and builds a damaged one again).
        Raises StoreWriteError (leaving no temporary file) when the operating system refuses."""
        with write_errors(path):
            self.prepare()
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(path, durable=False) as tmp:
                fill(tmp)

    def write_bytes(self, path: Path, data: bytes) -> None:
        self.write(path, lambda tmp: tmp.write_bytes(data))

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold this kind's writer lock (``derived/<kind>/.lock``); a no-op on a read-only store."""
        if not self.writable:
            yield
            return
        with write_errors(self.base):
            self.base.mkdir(parents=True, exist_ok=True)
            lock = FileLock(self.base / ".lock")
            lock.acquire()
        with lock:
            yield

    # ------------------------------------------------------------------ pruning
    def prune(self, *, per_entry: bool = True) -> int:
        """Remove data of entry files that no longer exist (`per_entry` kinds) and of other shapes
        not used for STALE_SHAPE_SECONDS; returns the number of folders removed. Never fails."""
        if not self.writable:
            return 0
        removed = 0
        with contextlib.suppress(OSError):
            if per_entry and self.folder.is_dir():
                entries = self.root / "entries"
                for part in self.folder.glob("date=*"):
                    for folder in part.iterdir():
                        if folder.is_dir() and not (entries / part.name / f"{folder.name}.parquet").exists():
                            shutil.rmtree(folder, ignore_errors=True)
                            removed += 1
            now = time.time()
            for other in self.base.iterdir() if self.base.is_dir() else ():
                if other.is_dir() and other.name != self.digest and _last_used(other) < now - STALE_SHAPE_SECONDS:
                    shutil.rmtree(other, ignore_errors=True)
                    removed += 1
        return removed


def _last_used(folder: Path) -> float:
    try:
        return (folder / SHAPE_FILE).stat().st_mtime
    except OSError:
        return folder.stat().st_mtime


# ====================================================================== the store's view
def _size(folder: Path) -> tuple[int, int]:
    files = size = 0
    for dirpath, _, names in os.walk(folder):
        for name in names:
            if name == ".lock":
                continue
            with contextlib.suppress(OSError):
                size += os.lstat(os.path.join(dirpath, name)).st_size
                files += 1
    return files, size


def derived_info(root: Path) -> dict[str, dict[str, int]]:
    """Per kind (every known kind, and any other folder under ``derived/``): files and bytes;
    plus ``legacy`` for cache folders of earlier versions, when there are any."""
    base = root / DERIVED
    kinds = list(KINDS) + sorted(p.name for p in base.iterdir() if p.is_dir() and p.name not in KINDS) \
        if base.is_dir() else list(KINDS)
    out = {}
    for kind in kinds:
        files, size = _size(base / kind)
        out[kind] = {"files": files, "bytes": size}
    legacy = [_size(root / name) for name in LEGACY if (root / name).is_dir()]
    if legacy:
        out["legacy"] = {"files": sum(f for f, _ in legacy), "bytes": sum(b for _, b in legacy)}
    return out


def clear_derived(root: Path, kind: str | None = None) -> dict[str, dict[str, int]]:
    """Remove the derived data of `kind` (None: every kind, and the cache folders of earlier
    versions); returns what was removed per kind (files, bytes). The match cache's writers are
    waited for. The caller checks that the store is writable."""
    removed: dict[str, dict[str, int]] = {}
    present = _present(root / DERIVED)
    targets = [kind] if kind is not None else [*KINDS, *sorted(set(present) - set(KINDS))]
    for name in targets:
        folder = root / DERIVED / name
        if name not in present:
            continue
        files, size = _size(folder)
        with Derived(root, name, {}).lock():  # what a writer holds while it writes
            for child in folder.iterdir():
                if child.name != ".lock":
                    shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
        if files:
            removed[name] = {"files": files, "bytes": size}
    if kind is None or kind == "legacy":
        legacy = [(root / n, *_size(root / n)) for n in LEGACY if (root / n).is_dir()]
        for folder, _, _ in legacy:
            shutil.rmtree(folder)
        if legacy:
            removed["legacy"] = {"files": sum(f for _, f, _ in legacy), "bytes": sum(b for _, _, b in legacy)}
    return removed


def _present(base: Path) -> list[str]:
    return [p.name for p in base.iterdir() if p.is_dir()] if base.is_dir() else []


__all__ = ["DERIVED", "KINDS", "LEGACY", "STALE_SHAPE_SECONDS", "Derived", "clear_derived", "derived_info",
           "entry_key", "shape_digest"]
