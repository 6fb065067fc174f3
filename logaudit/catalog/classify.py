"""Classify a store: bring its match cache up to date with a catalog for a window, and count.

Only (entry file, pattern fingerprint) pairs not cached yet are evaluated (`classify_store`);
a new ingest classifies only its new files and editing one pattern re-evaluates only that one.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from logaudit.catalog.cache import (
    FileTask,
    cache_key,
    chunk_files,
    drop_unusable,
    entry_key,
    live_hash,
    match_dir,
    matches,
    matches_lock,
    overlay,
    prune,
    usable_index,
)
from logaudit.catalog.catalog import Catalog, Pattern
from logaudit.catalog.engine import DEFAULT_MAX_CHARS, Progress, slow_pattern
from logaudit.catalog.pool import resolve_workers, run_tasks
from logaudit.core.db import connect, sql_list, sql_strings, time_filter
from logaudit.core.timeparse import format_rfc3339

#: Below this many bytes of entry files to evaluate, one process does the work.
PARALLEL_MIN_BYTES = 4_000_000


@dataclass
class ClassifyReport:
    """What `classify_store` did and what the window holds."""

    files: int = 0
    files_evaluated: int = 0
    entries: int = 0
    entries_evaluated: int = 0
    patterns: int = 0
    patterns_evaluated: int = 0
    cache_hits: int = 0
    cache_misses: int = 0
    matches: dict[str, int] = field(default_factory=dict)
    categories: dict[str, int] = field(default_factory=dict)
    matched_entries: int = 0
    unclassified: int = 0
    cut: int = 0
    timeouts: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    #: per pattern with timeouts or skipped texts: where it is, the counts, why and what to do
    slow_patterns: list[dict[str, Any]] = field(default_factory=list)
    pruned: int = 0
    workers: int = 1
    seconds: float = 0.0
    since: str | None = None
    until: str | None = None

    @property
    def entries_per_second(self) -> float:
        return self.entries_evaluated / self.seconds if self.seconds else 0.0

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["entries_per_second"] = round(self.entries_per_second, 1)
        return out



def classify_store(store: Any, catalog: Catalog, since: datetime | None = None, until: datetime | None = None,
                   progress: Progress | None = None, *, workers: int | None = None,
                   max_chars: int = DEFAULT_MAX_CHARS, use_hyperscan: bool = True, summarize: bool = True,
                   files: list[Path] | None = None) -> ClassifyReport:
    """Classify the store's entry files (those of the window, or `files` as listed by the caller)
    against `catalog`, using the cache.

    Only (entry file, pattern fingerprint) pairs not cached yet are evaluated; counts in the
    report cover the entries with since <= timestamp < until.
    """
    faults = getattr(store, "faults", contextlib.nullcontext)  # a Store; any object with root and entry_files works
    with faults():
        return _classify_store(store, catalog, since, until, progress, workers=workers, max_chars=max_chars,
                               use_hyperscan=use_hyperscan, summarize=summarize, files=files)


def _classify_store(store: Any, catalog: Catalog, since: datetime | None, until: datetime | None,
                    progress: Progress | None, *, workers: int | None, max_chars: int, use_hyperscan: bool,
                    summarize: bool, files: list[Path] | None) -> ClassifyReport:
    t0 = time.perf_counter()
    root = Path(store.root)
    files = store.entry_files(since, until) if files is None else list(files)
    writable = getattr(store, "writable", True)
    report = ClassifyReport(files=len(files), patterns=len(catalog),
                            since=_iso(since), until=_iso(until))
    patterns = list(catalog)
    keys = [cache_key(p, max_chars) for p in patterns]
    unique: dict[str, Pattern] = {}
    for p, k in zip(patterns, keys, strict=True):
        unique.setdefault(k, p)
    live = list(unique)
    tasks: list[FileTask] = []
    indexes: dict[str, dict[str, Any]] = {}
    with matches_lock(root, writable):
        report.pruned = prune(root) if writable else 0
        for path in files:
            ekey = entry_key(root, path)
            folder = match_dir(root, ekey)
            size = path.stat().st_size
            index, damaged = usable_index(folder, size)
            if writable:
                drop_unusable(folder, index, damaged)
            have = set((index or {}).get("fingerprints", {}))
            missing = [k for k in live if k not in have]
            report.cache_hits += len(live) - len(missing)
            report.cache_misses += len(missing)
            if missing and not writable:
                folder = overlay(root, ekey, index)
            if index is not None:
                indexes[ekey] = index
            if missing:
                tasks.append(FileTask(str(path), ekey, str(folder), size, [unique[k] for k in missing], missing,
                                       max_chars, use_hyperscan, live, str(root)))
        if tasks and writable:
            matches(root).prepare()  # the shape file, once
        evaluated: set[str] = set()
        nworkers = resolve_workers(workers)
        big = sum(Path(t.entry_path).stat().st_size for t in tasks) > PARALLEL_MIN_BYTES
        report.workers = nworkers if (nworkers > 1 and len(tasks) > 1 and big) else 1
        for done, (task, outcome) in enumerate(run_tasks(tasks, report.workers, max_chars, use_hyperscan), 1):
            indexes[outcome.entry_key] = outcome.index
            report.files_evaluated += 1
            report.entries_evaluated += outcome.rows
            evaluated.update(task.keys)
            if progress:
                progress(task.entry_key, done, len(tasks))
        report.patterns_evaluated = sum(1 for p, k in zip(patterns, keys, strict=True) if k in evaluated)
        if summarize:  # counts for the report; views do not need them
            _summarize(report, root, files, indexes, patterns, keys, since, until)
    report.seconds = round(time.perf_counter() - t0, 3)
    return report


def _iso(value: datetime | None) -> str | None:
    return None if value is None else format_rfc3339(value, fraction="micro")



def _summarize(report: ClassifyReport, root: Path, files: list[Path], indexes: dict[str, dict[str, Any]],
               patterns: list[Pattern], keys: list[str], since: datetime | None, until: datetime | None) -> None:
    live = set(keys)
    by_key: dict[str, list[Pattern]] = {}
    for p, k in zip(patterns, keys, strict=True):
        by_key.setdefault(k, []).append(p)
    file_indexes = [indexes.get(entry_key(root, f)) or {} for f in files]
    current = live_hash(live)
    if since is None and until is None and all(
            (i.get("summary") or {}).get("live") == current for i in file_indexes):
        # every file's index summarises the current catalog: no need to read the chunks
        counts: dict[str, int] = Counter()
        for i in file_indexes:
            counts.update(i["summary"]["counts"])
            report.entries += int(i.get("rows", 0))
            report.matched_entries += int(i["summary"]["matched_rows"])
        _fill_report(report, files, file_indexes, patterns, keys, by_key, counts)
        return
    con = connect()
    try:
        if files:
            if since is None and until is None:
                report.entries = sum(int((indexes.get(entry_key(root, f)) or {}).get("rows")
                                         or pq.ParquetFile(f).metadata.num_rows) for f in files)
            else:
                report.entries = con.execute(
                    f"SELECT count(*) FROM read_parquet({sql_list([str(f) for f in files])}, hive_partitioning=false)"
                    f" WHERE {time_filter('timestamp', since, until)}").fetchall()[0][0]
        chunks = chunk_files(root, files, indexes, live)
        counts: dict[str, int] = {}
        if chunks:
            where = time_filter("timestamp", since, until)
            src = f"read_parquet({sql_list(chunks)}, hive_partitioning=false)"
            keylist = sql_strings(live)
            rows = con.execute(f"SELECT fingerprint, count(*) FROM {src} WHERE {where} AND fingerprint IN ({keylist})"
                               " GROUP BY 1").fetchall()
            counts = dict(rows)
            report.matched_entries = con.execute(
                f"SELECT count(*) FROM (SELECT DISTINCT entry_file, entry_row FROM {src} WHERE {where} "
                f"AND fingerprint IN ({keylist}))").fetchall()[0][0]
    finally:
        con.close()
    _fill_report(report, files, file_indexes, patterns, keys, by_key, counts)


def _fill_report(report: ClassifyReport, files: list[Path], file_indexes: list[dict[str, Any]],
                 patterns: list[Pattern], keys: list[str], by_key: dict[str, list[Pattern]],
                 counts: dict[str, int]) -> None:
    for p, k in zip(patterns, keys, strict=True):
        report.matches[p.id] = counts.get(k, 0)
        report.categories[p.category] = report.categories.get(p.category, 0) + counts.get(k, 0)
    report.unclassified = report.entries - report.matched_entries
    fields = {p.field for p in patterns}
    for index in file_indexes:
        report.cut += max((index.get("cut", {}).get(fld, 0) for fld in fields), default=0)
        for src_name, dest in (("timeouts", report.timeouts), ("skipped", report.skipped)):
            for k, n in index.get(src_name, {}).items():
                for p in by_key.get(k, []):
                    dest[p.id] = dest.get(p.id, 0) + n
    report.slow_patterns = [slow_pattern(p, report.timeouts.get(p.id, 0), report.skipped.get(p.id, 0))
                            for p in patterns if report.timeouts.get(p.id) or report.skipped.get(p.id)]


__all__ = ["ClassifyReport", "classify_store"]
