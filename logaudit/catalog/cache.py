"""The match cache: the derived data kind ``matches`` (`logaudit.store.derived`), per entry file
and per cache key, under ``STORE/derived/matches/<shape digest>/``.

One folder per entry file holds an ``index.json`` (which cache keys were evaluated, in which
chunk file, with a summary of the counts) and Parquet chunks of matches. A cache key is a
pattern's fingerprint, the text cut (`max_chars`) and the digest of the engine's shape
(`match_shape`: the constants that decide what matches). `evaluate_file` evaluates the missing
patterns on one entry file and records them.
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from logaudit.catalog import engine
from logaudit.catalog.catalog import Pattern
from logaudit.catalog.engine import (
    DEFAULT_MAX_CHARS,
    KEY_COLUMNS,
    CompiledCatalog,
    MatchResult,
    as_array,
    compile_patterns,
    decoded,
    match_table,
)
from logaudit.core.atomic import atomic_path
from logaudit.store.check import entry_file_problem
from logaudit.store.derived import DERIVED, Derived, entry_key
from logaudit.store.layout import damaged_error, parquet_framing_problem, scratch_dir, write_errors
from logaudit.store.schema import DICTIONARY_COLUMNS, ENTRY_SCHEMA, TEXT_COLUMNS

# =============================================================================== store cache
INDEX_NAME = "index.json"
CHUNK_SCHEMA = pa.schema([
    ("entry_file", pa.string()), ("entry_row", pa.int32()), ("fingerprint", pa.string()),
    ("log_name", pa.string()), ("insert_id", pa.string()), ("timestamp", ENTRY_SCHEMA.field("timestamp").type),
    ("service", pa.string()), ("revision", pa.string()), ("fields_json", pa.string()),
])
MAX_CHUNKS = 8


def match_shape() -> dict[str, Any]:
    """What shapes every cached match besides the pattern and `max_chars`: the engine's
    constants (read when called, so a changed constant is a changed shape)."""
    return {"engine": engine.ENGINE_VERSION, "long_text": engine.LONG_TEXT, "regex_timeout": engine.REGEX_TIMEOUT,
            "max_timeouts": engine.MAX_TIMEOUTS, "pattern_budget": engine.PATTERN_BUDGET,
            "text_budget": engine.TEXT_BUDGET, "key_columns": list(engine.KEY_COLUMNS),
            "chunk_columns": CHUNK_SCHEMA.names}


def matches(store_root: Path, writable: bool = True) -> Derived:
    """The match cache's handle (derived data kind ``matches``) of the store at `store_root`."""
    return Derived(store_root, "matches", match_shape(), writable=writable)


def cache_key(pattern: Pattern, max_chars: int = DEFAULT_MAX_CHARS) -> str:
    """What a cached result depends on: the pattern's fingerprint, the text cut and the engine's shape."""
    return matches(Path()).key(pattern.fingerprint, max_chars)


def match_dir(store_root: Path, key: str) -> Path:
    """The cache folder of an entry file: in the store, or in the scratch directory standing in
    for a read-only store's cache when classification had to add results there."""
    handle = matches(store_root)
    scratch = scratch_dir(store_root, create=False)
    if scratch is not None:
        folder = handle.entry_folder(key, scratch / DERIVED / handle.kind / handle.digest)
        if folder.is_dir():
            return folder
    return handle.entry_folder(key)


def _read_index(folder: Path) -> dict[str, Any] | None:
    """The folder's index, or None when missing or damaged (the results are then evaluated again)."""
    try:
        index = orjson.loads((folder / INDEX_NAME).read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    return index if isinstance(index, dict) and isinstance(index.get("fingerprints", {}), dict) else None


def usable_index(folder: Path, entry_bytes: int) -> tuple[dict[str, Any] | None, set[str]]:
    """The folder's index if it belongs to an entry file of `entry_bytes` bytes, without the
    results whose chunk file is missing or damaged (those are evaluated again); and the names
    of those chunks."""
    index = _read_index(folder)
    if index is None or index.get("entry_bytes") != entry_bytes:
        return None, set()
    fps: dict[str, str | None] = index.get("fingerprints", {})
    bad = {c for c in set(fps.values()) if c and parquet_framing_problem(folder / c)}
    if bad:
        index["fingerprints"] = {k: c for k, c in fps.items() if c not in bad}
        index.pop("summary", None)
    return index, bad


def _write_atomic(path: Path, data: bytes) -> None:
    with write_errors(path), atomic_path(path, durable=False) as tmp:
        tmp.write_bytes(data)


def overlay(root: Path, key: str, index: dict[str, Any] | None) -> Path:
    """A scratch folder standing in for a read-only store's cache folder of one entry file:
    its usable results are linked, new ones are written there (see `scratch_dir`)."""
    handle = matches(root, writable=False)
    folder = handle.entry_folder(key)
    scratch = handle.entry_folder(key, handle.scratch())
    scratch.mkdir(parents=True, exist_ok=True)
    if index is not None:
        for chunk in {c for c in index["fingerprints"].values() if c}:
            if not (scratch / chunk).exists():
                (scratch / chunk).symlink_to(folder / chunk)
        _write_atomic(scratch / INDEX_NAME, orjson.dumps(index))
    return scratch


def matches_lock(root: Path, writable: bool = True) -> contextlib.AbstractContextManager[None]:
    """The match cache's writer lock (nothing is written to a read-only store: no writer to keep out)."""
    return matches(root, writable).lock()


@dataclass
class FileTask:
    entry_path: str
    entry_key: str
    match_dir: str
    entry_bytes: int
    patterns: list[Pattern]
    keys: list[str]
    max_chars: int
    use_hyperscan: bool
    live_keys: list[str]  # every key of the current catalog (kept when compacting)
    store_root: str = ""


@dataclass
class FileOutcome:
    entry_key: str
    rows: int
    seconds: float
    index: dict[str, Any]


def _write_chunk(chunk: pa.Table, path: Path) -> None:
    pq.write_table(chunk, path, compression="lz4",
                   use_dictionary=["entry_file", "fingerprint", "log_name", "service", "revision"],
                   write_statistics=["timestamp", "entry_row"])


def live_hash(keys: Iterable[str]) -> str:
    return hashlib.sha256("\n".join(sorted(set(keys))).encode()).hexdigest()[:16]


def read_entry_file(path: str | Path, compiled: CompiledCatalog) -> pa.Table:
    """The columns of one entry file that classifying it needs (`compiled`'s and the key columns).

    Columns stored dictionary-encoded are read so: `match_table` scans and tests their distinct
    values only, and the key columns go to the match chunk without decoding.
    """
    # ParquetFile, not read_table: no lazy import of pyarrow.dataset in freshly forked workers.
    with pq.ParquetFile(path) as pfile:
        meta, names = pfile.metadata, set(pfile.schema_arrow.names)  # older files may lack a column
    columns = [c for c in dict.fromkeys(compiled.columns + list(KEY_COLUMNS)) if c in names]
    encoded = [c for c in columns if c in DICTIONARY_COLUMNS and c in TEXT_COLUMNS]
    with pq.ParquetFile(path, metadata=meta, read_dictionary=encoded) as pfile:
        return pfile.read(columns=columns)


def _read_task_file(task: FileTask, compiled: CompiledCatalog) -> pa.Table:
    """`read_entry_file`, naming the file and what is wrong with it when it cannot be read."""
    try:
        table = read_entry_file(task.entry_path, compiled)
        if all(c in table.column_names for c in ("timestamp", "log_name", "insert_id")):
            return table
        why = None  # a foreign Parquet file
    except (pa.ArrowException, OSError) as err:
        why = f"unreadable ({' '.join(str(err).split())[:160]})"
    path = Path(task.entry_path)
    why = entry_file_problem(path) or why or "not a logaudit entry file"
    raise damaged_error(Path(task.store_root or path.parent), [(path, why)])


def evaluate_file(task: FileTask) -> FileOutcome:
    """Evaluate the missing patterns on one entry file; write a chunk and update its index."""
    t0 = time.perf_counter()
    compiled = compile_patterns(task.patterns, max_chars=task.max_chars, use_hyperscan=task.use_hyperscan)
    table = _read_task_file(task, compiled)
    res = match_table(table, compiled)
    folder = Path(task.match_dir)
    folder.mkdir(parents=True, exist_ok=True)
    index = _read_index(folder) or {}
    if index.get("entry_bytes") != task.entry_bytes:
        index = {}
    index.setdefault("version", 1)
    index["entry_file"] = task.entry_key
    index["entry_bytes"] = task.entry_bytes
    index["rows"] = table.num_rows
    fps: dict[str, str | None] = index.setdefault("fingerprints", {})
    cut: dict[str, int] = index.setdefault("cut", {})
    cut.update(res.cut)
    timeouts: dict[str, int] = index.setdefault("timeouts", {})
    skipped: dict[str, int] = index.setdefault("skipped", {})
    chunk_name = None
    per_key = np.bincount(res.patterns, minlength=len(task.keys)) if len(res) else np.zeros(len(task.keys), int)
    if len(res):
        chunk_name = f"c-{uuid.uuid4().hex[:12]}.parquet"
        idx = pa.array(res.rows)
        n = len(res)
        cols = {
            "entry_file": pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, np.int32)), pa.array([task.entry_key])),
            "entry_row": pa.array(res.rows.astype(np.int32)),
            "fingerprint": pa.DictionaryArray.from_arrays(pa.array(res.patterns), pa.array(task.keys, pa.string())),
        }
        for name in ("log_name", "insert_id", "timestamp", "service", "revision"):
            typ = CHUNK_SCHEMA.field(name).type
            cols[name] = as_array(table.column(name)).take(idx) if name in table.column_names else pa.nulls(n, typ)
        cols["fields_json"] = res.fields_json
        chunk = pa.table(cols)
        with write_errors(folder / chunk_name), atomic_path(folder / chunk_name, durable=False) as tmp:
            _write_chunk(chunk, tmp)
    for i, key in enumerate(task.keys):
        fps[key] = chunk_name if per_key[i] else None
        if res.timeouts.get(i):
            timeouts[key] = res.timeouts[i]
        if res.skipped.get(i):
            skipped[key] = res.skipped[i]
    if len({c for c in fps.values() if c}) > MAX_CHUNKS:
        _compact(folder, index, set(task.live_keys))
    index["summary"] = _file_summary(folder, index, task, res, chunk_name, per_key)
    _write_atomic(folder / INDEX_NAME, orjson.dumps(index))
    return FileOutcome(task.entry_key, table.num_rows, time.perf_counter() - t0, index)


def _file_summary(folder: Path, index: dict[str, Any], task: FileTask, res: MatchResult, chunk_name: str | None,
                  per_key: np.ndarray) -> dict[str, Any]:
    """Matches per live cache key and entries matched by any of them, for reports without DuckDB."""
    live = set(task.live_keys)
    counts = {k: int(n) for k, n in zip(task.keys, per_key.tolist(), strict=True) if k in live and n}
    row_sets = [res.rows] if len(res) else []
    fresh = set(task.keys)
    older = sorted({c for k, c in index["fingerprints"].items() if c and k in live and k not in fresh})
    for name in older:
        t = decoded(pq.read_table(folder / name, columns=["entry_row", "fingerprint"]))
        keep = pc.is_in(t["fingerprint"], value_set=pa.array(sorted(live - fresh), pa.string()))
        t = t.filter(keep)
        for k, n in zip(*[c.to_pylist() for c in pc.value_counts(t["fingerprint"]).flatten()], strict=True):
            counts[k] = counts.get(k, 0) + n
        row_sets.append(t["entry_row"].to_numpy())
    seen = np.zeros(int(index["rows"]), dtype=bool)
    for r in row_sets:
        seen[r] = True
    return {"live": live_hash(live), "matched_rows": int(seen.sum()), "counts": counts}


def _compact(folder: Path, index: dict[str, Any], live: set[str]) -> None:
    """Merge an entry file's chunks into one holding only the current catalog's results."""
    fps: dict[str, str | None] = index["fingerprints"]
    chunks = sorted({c for c in fps.values() if c})
    tables = [decoded(pq.read_table(folder / c)) for c in chunks]
    merged = pa.concat_tables(tables) if tables else CHUNK_SCHEMA.empty_table()
    keep = pc.is_in(merged["fingerprint"], value_set=pa.array(sorted(live), pa.string()))
    merged = merged.filter(keep)
    name = f"c-{uuid.uuid4().hex[:12]}.parquet"
    if merged.num_rows:
        with write_errors(folder / name), atomic_path(folder / name, durable=False) as tmp:
            _write_chunk(merged, tmp)
    present = set(merged["fingerprint"].to_pylist()) if merged.num_rows else set()
    index["fingerprints"] = {k: (name if k in present else None) for k in fps if k in live}
    for key in ("timeouts", "skipped"):
        index[key] = {k: v for k, v in index.get(key, {}).items() if k in live}
    for c in chunks:
        with contextlib.suppress(OSError):
            (folder / c).unlink()


def drop_unusable(folder: Path, index: dict[str, Any] | None, damaged: set[str]) -> None:
    """Remove what `usable_index` found unusable: the folder of a rewritten entry file or with a
    damaged index (start again), or damaged chunks (the index is rewritten without them first)."""
    if index is None:
        if folder.is_dir():
            shutil.rmtree(folder, ignore_errors=True)
        return
    if damaged:
        _write_atomic(folder / INDEX_NAME, orjson.dumps(index))
        for chunk in damaged:
            (folder / chunk).unlink(missing_ok=True)


def prune(root: Path) -> int:
    """Drop cached matches of entry files that no longer exist (compacted away) and of engine
    shapes no longer used (`Derived.prune`)."""
    return matches(root).prune()


def chunk_files(root: Path, files: list[Path], indexes: dict[str, dict[str, Any]] | None,
                 live: set[str]) -> list[str]:
    out: list[str] = []
    for path in files:
        ekey = entry_key(root, path)
        folder = match_dir(root, ekey)
        index = (indexes or {}).get(ekey) or _read_index(folder) or {}
        names = {c for k, c in index.get("fingerprints", {}).items() if c and k in live}
        out.extend(str(folder / c) for c in sorted(names))
    return out


__all__ = ["CHUNK_SCHEMA", "FileOutcome", "FileTask", "cache_key", "chunk_files", "evaluate_file", "matches_lock", "read_entry_file"]
