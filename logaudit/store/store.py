"""The local Parquet store: deduplicated entries, an ingest manifest, and rejects.

Layout (everything below the store root)::

    logaudit-store.json                                 the store's format (STORE_FORMAT), checked on open
    entries/date=YYYY-MM-DD/part-<time>-<id>.parquet   canonical entry rows, sorted by timestamp
    manifest/<time>-<id>.json                           one record per ingest or pull
    rejects/<ingest id>.jsonl                           what was not a LogEntry, with file:line and reason
    .lock                                               held while writing
    derived/<kind>/<shape digest>/...                   derived data (classification, aggregates: `derived`)
    cursors/                                            where each pull has got to
    quarantine/<time>/...                               damaged files moved aside by `Store.repair`

Partitioned by UTC date because every question logaudit asks is bounded in time: a 6 h
summary opens one or two partitions, and deduplicating a new batch only reads the key columns
of the partitions the batch touches. Entry files are immutable once written (written to a
temporary name and renamed into place), so an interrupted ingest leaves the store as it was
plus whole batches, and derived data keyed by file name (`logaudit.store.derived`) stays valid.

Faults are typed: a write the operating system refuses (disk full, quota, read-only) raises
StoreWriteError and leaves no temporary file; a damaged or foreign file raises StoreDamagedError
naming it (`Store.explain`); a read-only store is read with its caches kept for the process only
(`Store.writable`, `scratch_dir`). `Store.check` and `Store.repair` verify and mend a store.

>>> from logaudit.store.store import Store
>>> store = Store("logaudit-store")              # doctest: +SKIP
>>> store.ingest_paths(["data/sample"]).new_rows  # doctest: +SKIP
5000
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from logaudit.core.db import connect
from logaudit.core.errors import (
    InputError,
    LockedError,
    LogauditError,
    StoreError,
    StoreWriteError,
)
from logaudit.core.lock import FileLock
from logaudit.core.redact import load_redactor
from logaudit.core.timeparse import format_rfc3339
from logaudit.core.version import __version__
from logaudit.sources.files import EXPORT_HINT, Batch, discover, iter_batches, note
from logaudit.store.check import CheckReport, RepairReport, file_problem
from logaudit.store.check import check as check_store
from logaudit.store.check import repair as repair_store
from logaudit.store.layout import (
    MARKER,
    READ_ONLY_ERRNOS,
    STORE_FORMAT,
    WRITE_ERRNOS,
    atomic_write,
    damaged_error,
    parquet_framing_problem,
    relative_path,
    write_errors,
    write_failure,
)
from logaudit.store.normalize import normalize_batch
from logaudit.store.schema import DEDUP_KEY, DICTIONARY_COLUMNS, ENTRY_SCHEMA

if TYPE_CHECKING:
    from logaudit.store.check import CheckReport, RepairReport
    from logaudit.store.derived import Derived

DEFAULT_STORE = "logaudit-store"
#: Reject records (and notes on unreadable fields) kept per ingest (beyond this only the count grows).
MAX_REJECT_RECORDS = 10_000
#: Notes on unreadable fields written to the manifest record and the JSON report.
MAX_NOTES_SHOWN = 100
#: Characters of a rejected line kept in its reject record (cut after redaction).
REJECT_TEXT_CHARS = 200

#: Columns whose min/max let DuckDB skip row groups in windowed queries.
_STATISTICS_COLUMNS = ["timestamp", "receive_timestamp", "service", "revision", "effective_severity_num", "http_status"]

Progress = Callable[[str, int, int], None]  # (source, bytes_done, rows_done)


log = logging.getLogger("logaudit")
_NOTED_READ_ONLY: set[Path] = set()


def default_store_path() -> Path:
    """$LOGAUDIT_STORE (with ~ expanded), else ./logaudit-store."""
    return Path(os.environ.get("LOGAUDIT_STORE") or DEFAULT_STORE).expanduser()


def store_root(root: str | os.PathLike | None = None) -> Path:
    """The folder of the store at `root` (`~` expanded), or of the default store (`default_store_path`)."""
    return Path(root).expanduser() if root is not None else default_store_path()


@dataclass
class SourceCounts:
    """What one source (file or pull) contributed to an ingest: read = new_rows + duplicates +
    rejected. `format` is what the file was read as; `notes` are file-level findings
    ({"level": "info"|"warning"|"error", "message", "hint"?, "byte"?}); an "error" note means the
    file could not be read (to its end)."""

    source: str
    read: int = 0
    new_rows: int = 0
    duplicates: int = 0
    rejected: int = 0
    blank: int = 0
    format: str = ""
    notes: list[dict[str, Any]] = field(default_factory=list)
    #: Fields of stored entries that were given but could not be read (kept as null, with a note).
    unreadable_fields: int = 0

    @property
    def failed(self) -> bool:
        return any(n["level"] == "error" for n in self.notes)


@dataclass
class IngestReport:
    """Counts for one ingest; `rejects` holds the first MAX_REJECT_RECORDS reject records and
    `field_notes` the first MAX_REJECT_RECORDS notes on unreadable fields of stored entries."""

    ingest_id: str
    started: str
    finished: str = ""
    status: str = "running"  # then complete, interrupted or failed
    error: str | None = None  # why a failed ingest failed
    sources: list[SourceCounts] = field(default_factory=list)
    rejects: list[dict[str, Any]] = field(default_factory=list)
    field_notes: list[dict[str, Any]] = field(default_factory=list)
    files_written: int = 0
    seconds: float = 0.0

    @property
    def read(self) -> int:
        return sum(s.read for s in self.sources)

    @property
    def new_rows(self) -> int:
        return sum(s.new_rows for s in self.sources)

    @property
    def duplicates(self) -> int:
        return sum(s.duplicates for s in self.sources)

    @property
    def rejected(self) -> int:
        return sum(s.rejected for s in self.sources)

    @property
    def files_failed(self) -> int:
        """Sources that could not be read, or not to their end (an "error" note)."""
        return sum(s.failed for s in self.sources)

    @property
    def unreadable_fields(self) -> int:
        return sum(s.unreadable_fields for s in self.sources)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("rejects")
        out["field_notes"] = out["field_notes"][:MAX_NOTES_SHOWN]
        out.update(read=self.read, new_rows=self.new_rows, duplicates=self.duplicates, rejected=self.rejected,
                   files_failed=self.files_failed, unreadable_fields=self.unreadable_fields)
        return out

    def add_notes(self, source: str, notes: list[tuple[int, str]], counts: SourceCounts) -> None:
        """Count and keep notes on unreadable fields (from `normalize_batch(..., notes=...)`)."""
        counts.unreadable_fields += len(notes)
        room = MAX_REJECT_RECORDS - len(self.field_notes)
        kept = notes[:max(room, 0)]
        texts = load_redactor().redact_all(note for _, note in kept)  # a note may quote the field's value
        self.field_notes.extend({"source": source, "position": pos, "note": text}
                                for (pos, _), text in zip(kept, texts, strict=True))


class Store:
    """A logaudit store directory.

    With `create` (writers: ingest, pull) a missing or empty directory becomes a store; without
    it (readers) nothing is ever created, and a directory that is not a store is refused. The
    store's format (``logaudit-store.json``) is checked on open: a store written by a newer
    logaudit raises StoreError. `verify=False` opens a store whose marker is damaged (for
    `check` / `repair`, which report it).
    """

    def __init__(self, root: str | os.PathLike | None = None, *, create: bool = True, verify: bool = True) -> None:
        self.root = store_root(root)
        self._verified: set[Path] = set()  # entry files whose Parquet framing was checked (they never change)
        self._writable: bool | None = None
        self.marker_problem: str | None = None
        new = not self.root.exists()
        if new:
            if not create:
                raise StoreError(
                    f"{self.root}: no store here",
                    hint="ingest something first (`logaudit ingest FILE`) or pass --store / set LOGAUDIT_STORE",
                )
            with write_errors(self.root):
                self.root.mkdir(parents=True)
        elif not self.root.is_dir():
            raise StoreError(f"{self.root}: exists and is not a directory")
        marker = self._read_marker(verify)
        if marker is None and not self._looks_like_store():
            if not create:
                raise StoreError(f"{self.root}: not a logaudit store (no {MARKER}, entries/ or manifest/)",
                                 hint="pass the store's directory with --store or LOGAUDIT_STORE")
            if any(self.root.iterdir()):
                raise StoreError(f"{self.root}: not a logaudit store, and not empty: refusing to create a store here",
                                 hint="give --store / LOGAUDIT_STORE a new or empty directory")
            new = True
        if create:
            for sub in ("entries", "manifest", "rejects"):
                with write_errors(self.root / sub):
                    (self.root / sub).mkdir(exist_ok=True)
        if marker is None and self.marker_problem is None:
            self._adopt(required=new, note=not create)

    def __repr__(self) -> str:
        return f"Store({str(self.root)!r})"

    # ------------------------------------------------------------------ format and writability
    def _looks_like_store(self) -> bool:
        return (self.root / "entries").is_dir() or (self.root / "manifest").is_dir()

    def _read_marker(self, verify: bool) -> dict[str, Any] | None:
        """The store marker, or None when there is none; raises for a newer or unknown format."""
        path = self.root / MARKER
        try:
            marker = orjson.loads(path.read_bytes())
            fmt = marker["format"]
        except FileNotFoundError:
            return None
        except (OSError, orjson.JSONDecodeError, KeyError, TypeError) as err:
            self.marker_problem = f"damaged store marker ({_reason(err)})"
            if verify:
                raise StoreError(f"{path}: {self.marker_problem}",
                                 hint=f"`logaudit store repair --store {self.root}` rewrites it") from None
            return None
        if isinstance(fmt, int) and not isinstance(fmt, bool) and fmt > STORE_FORMAT:
            raise StoreError(f"{self.root}: this store was written by a newer logaudit (format {fmt}); upgrade logaudit",
                             hint=f"this logaudit ({__version__}) reads store format {STORE_FORMAT}")
        if fmt != STORE_FORMAT:
            raise StoreError(f"{self.root}: unknown store format {fmt!r} in {MARKER}",
                             hint=f"this logaudit ({__version__}) reads store format {STORE_FORMAT}")
        return marker

    def _adopt(self, required: bool, note: bool) -> None:
        """Record the format of a new store, or of one written before the marker existed (when
        the store can be written: a reader of a read-only store carries on without)."""
        body = orjson.dumps({"format": STORE_FORMAT, "created_by": f"logaudit {__version__}"}, option=orjson.OPT_INDENT_2)
        try:
            atomic_write(self.root / MARKER, body)
        except StoreWriteError as err:
            if required:
                raise
            if err.errno in READ_ONLY_ERRNOS:
                self._read_only(os.strerror(err.errno), note=note)
        else:
            self._writable = True

    @property
    def writable(self) -> bool:
        """Whether files can be created in the store (probed once: creating a file is the only
        test that holds for root and read-only mounts alike). Readers skip their caches when not."""
        if self._writable is None:
            probe = self.root / f".write-probe-{os.getpid()}-{uuid.uuid4().hex[:6]}.tmp"
            try:
                os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
                probe.unlink(missing_ok=True)
                self._writable = True
            except OSError as err:
                self._read_only(err.strerror or str(err))
        return bool(self._writable)

    def _read_only(self, reason: str, note: bool = True) -> None:
        self._writable = False
        if note and self.root not in _NOTED_READ_ONLY:  # once per store and process, not per file
            _NOTED_READ_ONLY.add(self.root)
            log.warning("%s is read-only (%s): nothing is saved to it; new cache results are kept for this run only",
                        self.root, reason)

    def check(self, *, quick: bool = False) -> CheckReport:
        """Verify every file of the store; see `logaudit.store.check.check`."""
        return check_store(self, quick=quick)

    def repair(self) -> RepairReport:
        """Quarantine damaged files, remove stale temporary files, mark dead ingests interrupted;
        see `logaudit.store.check.repair`."""
        return repair_store(self)

    # ------------------------------------------------------------------ reading
    def entry_files(self, since: datetime | None = None, until: datetime | None = None) -> list[Path]:
        """Entry Parquet files, sorted, limited to the date partitions overlapping [since, until)."""
        lo = since.astimezone(UTC).date() if since else date.min
        hi = until.astimezone(UTC).date() if until else date.max
        out = []
        for part in sorted((self.root / "entries").glob("date=*")):
            try:
                day = date.fromisoformat(part.name[5:])
            except ValueError:
                continue
            if lo <= day <= hi:
                out.extend(sorted(part.glob("*.parquet")))
        self._verify_framing(out)
        return out

    def _verify_framing(self, files: list[Path]) -> None:
        """Raise StoreDamagedError for entry files that are not whole Parquet files (truncated,
        or something else): two small reads per file, once per file and Store object."""
        damaged = []
        for path in files:
            if path not in self._verified:
                problem = parquet_framing_problem(path)
                if problem is None:
                    self._verified.add(path)
                else:
                    damaged.append((path, problem))
        if damaged:
            raise damaged_error(self.root, damaged)

    def explain(self, err: BaseException) -> LogauditError | None:
        """The typed error behind a failure while reading or writing the store, or None.

        A write that the operating system refused (disk full, quota, read-only) becomes a
        StoreWriteError; a read that failed because of a damaged or foreign store file becomes
        a StoreDamagedError naming it (files named in the error are checked in full, else
        every entry file's footer and schema).
        """
        if isinstance(err, LogauditError):
            return err
        if isinstance(err, OSError) and err.errno in WRITE_ERRNOS:
            return write_failure(err.filename or self.root, err)
        if not isinstance(err, duckdb.Error | pa.ArrowException | OSError) or isinstance(err, duckdb.InterruptException):
            return None
        named = [p for p in _paths_in(str(err), self.root) if p.is_file()]
        candidates = named or sorted((self.root / "entries").glob("date=*/*.parquet"))
        damaged = [(p, why) for p in candidates if (why := file_problem(self.root, p, deep=bool(named)))]
        return damaged_error(self.root, damaged) if damaged else None

    def read_entries(self, since: datetime | None = None, until: datetime | None = None) -> pa.Table:
        """All entries with since <= timestamp < until, as one Arrow table (small windows only)."""
        files = self.entry_files(since, until)
        if not files:
            return ENTRY_SCHEMA.empty_table()
        table = pq.ParquetDataset([str(f) for f in files], schema=ENTRY_SCHEMA).read()
        if since is not None:
            table = table.filter(pc.greater_equal(table["timestamp"], pa.scalar(since, ENTRY_SCHEMA.field("timestamp").type)))
        if until is not None:
            table = table.filter(pc.less(table["timestamp"], pa.scalar(until, ENTRY_SCHEMA.field("timestamp").type)))
        return table

    def manifest(self) -> list[dict[str, Any]]:
        """Every ingest/pull record, oldest first (records that cannot be read are left out; `info` lists them)."""
        return self._manifest()[0]

    def _manifest(self) -> tuple[list[dict[str, Any]], list[str]]:
        records, unreadable = [], []
        for path in sorted((self.root / "manifest").glob("*.json")):
            try:
                record = orjson.loads(path.read_bytes())
            except (OSError, orjson.JSONDecodeError):
                record = None
            if isinstance(record, dict) and isinstance(record.get("ingest_id"), str) \
                    and isinstance(record.get("status"), str):
                records.append(record)
            else:
                unreadable.append(relative_path(self.root, path))
        return sorted(records, key=lambda r: (r.get("started") or "", r.get("ingest_id") or "")), unreadable

    def info(self) -> dict[str, Any]:
        """Size, time range and row counts of the store, plus its manifest."""
        with self.faults():
            return self._info()

    def _info(self) -> dict[str, Any]:
        files = self.entry_files()
        stats: dict[str, Any] = {"store": str(self.root), "files": len(files), "entries": 0,
                                 "first": None, "last": None, "bytes": sum(f.stat().st_size for f in files),
                                 "partitions": len({f.parent.name for f in files})}
        if files:
            con = connect(threads=None)
            row = con.execute(
                "SELECT count(*), min(timestamp), max(timestamp) FROM read_parquet($files)",
                {"files": [str(f) for f in files]},
            ).fetchone()
            stats["entries"] = row[0]
            stats["first"] = _rfc3339(row[1])
            stats["last"] = _rfc3339(row[2])
        manifest, unreadable = self._manifest()
        stats["ingests"] = manifest
        stats["rejected_total"] = sum(m.get("rejected", 0) for m in manifest)
        stats["manifest_unreadable"] = unreadable
        stats["derived"] = self.derived_info()
        return stats

    # ------------------------------------------------------------------ derived data
    def derived(self, kind: str, shape: Mapping[str, Any]) -> Derived:
        """The handle on one kind of derived data under `shape` (see `logaudit.store.derived`).

        >>> Store("logaudit-store").derived("aggregates", {"latency_bins_per_e": 200}).folder  # doctest: +SKIP
        PosixPath('logaudit-store/derived/aggregates/5c1e0f2b8a7d9e63')
        """
        from logaudit.store.derived import Derived

        return Derived(self.root, kind, shape, writable=self.writable)

    def derived_info(self) -> dict[str, dict[str, int]]:
        """Files and bytes of each kind of derived data (and of cache folders of earlier versions)."""
        from logaudit.store.derived import derived_info

        return derived_info(self.root)

    def clear_derived(self, kind: str | None = None) -> dict[str, dict[str, int]]:
        """Remove the derived data of `kind` (None: all of it, and earlier versions' caches); what
        was removed per kind. Raises StoreError on a read-only store."""
        from logaudit.store.derived import clear_derived

        if not self.writable:
            raise StoreError(f"{self.root}: the store is read-only; its derived data cannot be cleared",
                             hint="derived data of a read-only store is never written: there is nothing to clear")
        with write_errors(self.root / "derived"):
            return clear_derived(self.root, kind)

    @contextlib.contextmanager
    def faults(self) -> Iterator[None]:
        """Raise what `explain` makes of a failure inside the block (else the failure as it is)."""
        try:
            yield
        except (duckdb.Error, pa.ArrowException, OSError) as err:
            typed = self.explain(err)
            if typed is None or typed is err:
                raise
            raise typed from err

    # ------------------------------------------------------------------ writing
    @contextlib.contextmanager
    def lock(self, wait: bool = False) -> Iterator[None]:
        """Exclusive writer lock; raises LockedError if another process holds it and not `wait`."""
        with write_errors(self.root):
            lock = FileLock(self.root / ".lock")
        with lock:
            if not lock.acquire(wait=wait):
                raise LockedError(
                    f"{self.root}: another logaudit process is writing to this store",
                    hint="wait for it to finish, or use another --store",
                )
            yield

    def ingest_paths(self, paths: Iterable[str | os.PathLike], *, progress: Progress | None = None,
                     batch_size: int = 75_000) -> IngestReport:
        """Ingest files and directories (see logaudit.sources.files for formats); `~` is expanded."""
        files = discover([os.path.expanduser(p) for p in paths])
        return self.ingest_batches(((str(f), iter_batches(f, batch_size=batch_size)) for f in files), progress=progress)

    def ingest_entries(self, entries: Iterable[dict[str, Any]], source: str, *, batch_size: int = 50_000,
                       kind: str = "ingest", extra: dict[str, Any] | None = None) -> IngestReport:
        """Ingest LogEntry dicts (e.g. pages from the Cloud Logging API) as one source."""

        def batches() -> Iterator[Batch]:
            texts: list[str] = []
            first = 1
            for entry in entries:
                texts.append(orjson.dumps(entry).decode())
                if len(texts) >= batch_size:
                    yield _text_batch(source, texts, first)
                    first += len(texts)
                    texts = []
            if texts:
                yield _text_batch(source, texts, first)

        return self.ingest_batches([(source, batches())], kind=kind, extra=extra)

    def ingest_batches(self, sources: Iterable[tuple[str, Iterable[Batch]]], *,
                       progress: Progress | None = None, kind: str = "ingest",
                       extra: dict[str, Any] | None = None) -> IngestReport:
        """Normalize, deduplicate and write batches; record the ingest in the manifest."""
        t0 = time.perf_counter()
        started = datetime.now(UTC)
        report = IngestReport(ingest_id=f"{started:%Y%m%dT%H%M%S%fZ}-{uuid.uuid4().hex[:8]}", started=_rfc3339(started))
        with self.lock():
            self.write_manifest(report, kind, extra)
            writer = _Writer(self, report)
            try:
                with self.faults():
                    for source, batches in sources:
                        counts = SourceCounts(source)
                        report.sources.append(counts)
                        self._ingest_source(batches, counts, report, writer, progress)
                    writer.close()
                report.status = "complete"
            except BaseException as err:
                with contextlib.suppress(Exception):  # a failed write is `err` itself
                    writer.close(cancel=True)
                if not isinstance(err, StoreError):
                    report.status = "interrupted"
                    raise
                failure = _with_state(err, report.files_written)
                report.status, report.error = "failed", failure.message
                if failure is err:
                    raise
                raise failure from err
            finally:
                report.finished = _rfc3339(datetime.now(UTC))
                report.seconds = round(time.perf_counter() - t0, 3)
                self._record_end(report, kind, extra)
        return report

    def _record_end(self, report: IngestReport, kind: str, extra: dict[str, Any] | None) -> None:
        """Write the rejects and the final manifest record; when the ingest already failed, a
        second failure here (the disk is still full) leaves the record as it was."""
        failed = report.status != "complete"
        try:
            self.write_rejects(report)
        except StoreWriteError:
            if not failed:
                raise
        try:
            self.write_manifest(report, kind, extra)
        except StoreWriteError:
            if not failed:
                raise

    def _ingest_source(self, batches: Iterable[Batch], counts: SourceCounts, report: IngestReport,
                       writer: _Writer, progress: Progress | None) -> None:
        """Ingest one source's batches. A source that fails (InputError) gets an "error" note and
        the ingest goes on with the next one; what it yielded before stays ingested."""
        bytes_done = 0
        try:
            for batch in batches:
                self._ingest_batch(batch, counts, report, writer)
                bytes_done += batch.bytes_read
                if progress:
                    progress(counts.source, bytes_done, counts.read)
        except InputError as err:
            counts.notes.append(note("error", err.message, err.hint))
        if counts.read and counts.rejected == counts.read and not any(n["level"] != "info" for n in counts.notes):
            counts.notes.append(note("warning", f"none of its {counts.read} items is a LogEntry",
                                     f"see the rejects for why; {EXPORT_HINT}"))

    def _ingest_batch(self, batch: Batch, counts: SourceCounts, report: IngestReport,
                      writer: _Writer) -> None:
        counts.blank += batch.blank
        counts.format = counts.format or batch.format
        counts.notes.extend(batch.notes)
        notes: list[tuple[int, str]] = []
        if len(batch.lines):
            rows, rejects = normalize_batch(batch.lines, batch.positions, batch.source, notes=notes)
        else:
            rows, rejects = ENTRY_SCHEMA.empty_table(), []
        report.add_notes(batch.source, notes, counts)
        counts.read += len(batch.lines) + len(batch.bad)
        counts.rejected += len(rejects) + len(batch.bad)
        room = MAX_REJECT_RECORDS - len(report.rejects)
        if (batch.bad or rejects) and room > 0:
            found = _rejected_lines(batch, [p for p, _ in rejects])
            items = [(r.position, r.reason, r.text, r.offset) for r in batch.bad]
            items += [(p, r, *found[p]) for p, r in rejects]
            report.rejects += reject_records(batch.source, sorted(items, key=lambda r: r[0])[:room])
        if rows.num_rows:
            writer.submit(rows, counts)

    def _deduplicate(self, rows: pa.Table, index: _KeyIndex | None = None) -> pa.Table:
        """Rows whose (log_name, insert_id, timestamp) is new to the batch and to the store, by timestamp.

        Only key columns go through DuckDB. `index` (one per ingest) holds 64-bit hashes of the
        keys already stored in the partitions touched so far, so each partition's keys are read
        once per ingest, not once per batch; a hash hit is confirmed against the exact keys.

        An entry without an insertId has its content hash as insert_id (`sha256:...`); stores
        written before that kept such entries with a null insert_id, and those rows still match
        it on (log_name, timestamp), so ingesting the same files again adds nothing.
        """
        index = index or _KeyIndex(self)
        con = connect()
        keys = rows.select(list(DEDUP_KEY)).append_column("i", pa.array(np.arange(rows.num_rows, dtype=np.int64)))
        con.register("k", keys)
        keyed = con.sql(f"SELECT {_KEY_HASH} AS h, epoch_ns(timestamp) AS ns, {_LEGACY_KEY_HASH} AS lh FROM k").fetchnumpy()
        idx, hashes, stamps = _first_occurrences(keys, keyed["h"], keyed["ns"])
        legacy = keyed["lh"][idx]
        days = stamps // _NS_PER_DAY
        unique_days = np.unique(days)
        hit = np.zeros(len(idx), dtype=bool)
        legacy_hit = np.zeros(len(idx), dtype=bool)
        has_legacy = ~np.ma.getmaskarray(legacy)
        for day in unique_days:
            on_day = days == day
            hit[on_day] = index.contains(int(day), hashes[on_day])
            if has_legacy.any():
                maybe = on_day & has_legacy
                legacy_hit[maybe] = index.contains(int(day), np.ma.getdata(legacy)[maybe].astype(hashes.dtype))
        if hit.any() or legacy_hit.any():
            stored = np.concatenate([
                self._stored(con, keys, idx[hit], days[hit], index, _EXACT_MATCH),
                self._stored(con, keys, idx[legacy_hit], days[legacy_hit], index, _LEGACY_MATCH)])
            keep = ~np.isin(idx, stored)
            idx, hashes, stamps, days = idx[keep], hashes[keep], stamps[keep], days[keep]
        con.close()
        order = np.lexsort((idx, stamps))
        idx = idx[order]
        for day in unique_days:
            index.add(int(day), hashes[days == day])
        if len(idx) == rows.num_rows and np.array_equal(idx, np.arange(len(idx))):
            return rows  # already unique and in order: skip copying every column
        return rows.take(pa.array(idx, pa.int64()))

    @staticmethod
    def _stored(con: duckdb.DuckDBPyConnection, keys: pa.Table, rows: np.ndarray, days: np.ndarray,
                index: _KeyIndex, match: str) -> np.ndarray:
        """The `rows` of `keys` whose key the store holds (`match` joins candidate c to stored e)."""
        files = [str(f) for d in np.unique(days) for f in index.files(int(d))]
        if not len(rows) or not files:
            return np.zeros(0, np.int64)
        con.register("cand", keys.take(pa.array(rows)))
        found = con.sql(f"SELECT c.i FROM cand c SEMI JOIN read_parquet($files) e ON {match}",
                        params={"files": files}).fetchnumpy()["i"]
        con.unregister("cand")
        return found

    def _write_partitions(self, rows: pa.Table) -> int:
        days = rows["timestamp"].cast(pa.int64()).to_numpy() // _NS_PER_DAY
        lo, hi = int(days.min()), int(days.max())
        written = rows_written = 0
        try:
            for day in ([lo] if lo == hi else np.unique(days).tolist()):
                part = rows if lo == hi else rows.filter(pa.array(days == day))  # one day: no copy
                folder = self.root / "entries" / f"date={_KeyIndex.day_name(day)}"
                with write_errors(folder):
                    folder.mkdir(exist_ok=True)
                name = f"part-{datetime.now(UTC):%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex[:8]}.parquet"
                tmp = folder / f".{name}.tmp"
                with write_errors(folder / name, tmp):
                    pq.write_table(part, tmp, compression="zstd", compression_level=1, row_group_size=128 * 1024,
                                   use_dictionary=list(DICTIONARY_COLUMNS), write_statistics=_STATISTICS_COLUMNS)
                    _fsync_replace(tmp, folder / name)
                written += 1
                rows_written += part.num_rows
        except StoreWriteError as err:
            err.files_written, err.rows_written = written, rows_written  # the days before the failure are stored
            raise
        return written

    def write_session(self) -> WriteSession:
        """A session that deduplicates and durably writes normalized rows (hold `lock()` while using it)."""
        return WriteSession(self)

    def write_rejects(self, report: IngestReport) -> None:
        """Save the report's reject records to rejects/<ingest id>.jsonl (atomically)."""
        if report.rejects:
            atomic_write(self.root / "rejects" / f"{report.ingest_id}.jsonl",
                          b"".join(orjson.dumps(r) + b"\n" for r in report.rejects))

    def write_manifest(self, report: IngestReport, kind: str, extra: dict[str, Any] | None = None) -> None:
        """Record (or update) the report's manifest entry, atomically."""
        record = {"kind": kind, **report.to_dict(), **(extra or {})}
        atomic_write(self.root / "manifest" / f"{report.ingest_id}.json", orjson.dumps(record, option=orjson.OPT_INDENT_2))


_KEY_HASH = "hash(log_name, insert_id, epoch_ns(timestamp))"
#: The key a content-hashed entry had in stores written before content hashes: a null insert_id.
_LEGACY_KEY_HASH = "CASE WHEN starts_with(insert_id, 'sha256:') THEN hash(log_name, NULL::VARCHAR, epoch_ns(timestamp)) END"
_EXACT_MATCH = ("c.log_name IS NOT DISTINCT FROM e.log_name AND c.insert_id IS NOT DISTINCT FROM e.insert_id "
                "AND c.timestamp = e.timestamp")
_LEGACY_MATCH = "c.log_name IS NOT DISTINCT FROM e.log_name AND c.timestamp = e.timestamp AND e.insert_id IS NULL"
_NS_PER_DAY = 86_400 * 1_000_000_000


def _first_occurrences(keys: pa.Table, hashes: np.ndarray, stamps: np.ndarray) -> tuple[np.ndarray, ...]:
    """Row numbers (with their hashes and timestamps) of each key's first row in the batch.

    Grouping is by hash; rows sharing a hash are compared on the exact key, so a hash collision
    between different entries keeps both.
    """
    _, first, counts = np.unique(hashes, return_index=True, return_counts=True)
    if (counts == 1).all():
        idx = np.sort(first)
        return idx, hashes[idx], stamps[idx]
    shared = set(hashes[first[counts > 1]].tolist())
    names, ids = keys.column("log_name").to_pylist(), keys.column("insert_id").to_pylist()
    seen: set[tuple] = set()
    keep = []
    for i, h in enumerate(hashes.tolist()):
        if h in shared:
            key = (names[i], ids[i], int(stamps[i]))
            if key in seen:
                continue
            seen.add(key)
        keep.append(i)
    idx = np.asarray(keep, dtype=np.int64)
    return idx, hashes[idx], stamps[idx]


class _KeyIndex:
    """Hashes of the dedup keys stored per date partition, loaded lazily once per ingest.

    Each day holds a few sorted arrays (merged when there are many), so a membership test is a
    vectorised binary search and adding a batch never re-sorts everything.
    """

    MAX_CHUNKS = 8

    def __init__(self, store: Store) -> None:
        self.store = store
        self._chunks: dict[int, list[np.ndarray]] = {}

    @staticmethod
    def day_name(day: int) -> str:
        return (date(1970, 1, 1) + timedelta(days=int(day))).isoformat()

    def files(self, day: int) -> list[Path]:
        return sorted((self.store.root / "entries" / f"date={self.day_name(day)}").glob("*.parquet"))

    def _load(self, day: int) -> list[np.ndarray]:
        if day not in self._chunks:
            files = [str(f) for f in self.files(day)]
            chunks = []
            if files:
                con = connect()
                found = con.sql(f"SELECT {_KEY_HASH} AS h FROM read_parquet($files)", params={"files": files}).fetchnumpy()["h"]
                con.close()
                chunks.append(np.sort(found))
            self._chunks[day] = chunks
        return self._chunks[day]

    def contains(self, day: int, hashes: np.ndarray) -> np.ndarray:
        hit = np.zeros(len(hashes), dtype=bool)
        for chunk in self._load(day):
            if len(chunk):
                pos = np.minimum(np.searchsorted(chunk, hashes), len(chunk) - 1)
                hit |= chunk[pos] == hashes
        return hit

    def add(self, day: int, hashes: np.ndarray) -> None:
        chunks = self._load(day)
        chunks.append(np.sort(hashes))
        if len(chunks) > self.MAX_CHUNKS:
            chunks[:] = [np.sort(np.concatenate(chunks))]


class WriteSession:
    """Deduplicates normalized rows against the store and against what this session already
    wrote, then writes the new ones as whole, fsynced Parquet files. Ingest uses one per run (on
    its writer thread), a pull one per pull, page batch by page batch. The caller holds the lock.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self.index = _KeyIndex(store)

    def write(self, rows: pa.Table) -> tuple[int, int, int]:
        """Write the new rows; returns (new rows, duplicates, files written). Durable on return."""
        fresh = self.store._deduplicate(rows, self.index)
        files = self.store._write_partitions(fresh) if fresh.num_rows else 0
        return fresh.num_rows, rows.num_rows - fresh.num_rows, files


class _Writer:
    """Runs a WriteSession on one background thread, in submission order, so Parquet encoding
    overlaps with parsing the next batch. At most two batches are in flight."""

    def __init__(self, store: Store, report: IngestReport) -> None:
        self.store, self.report = store, report
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="logaudit-writer")
        self.pending: deque[Future] = deque()
        self.session = WriteSession(store)

    def submit(self, rows: pa.Table, counts: SourceCounts) -> None:
        while len(self.pending) >= 2:
            self.pending.popleft().result()
        self.pending.append(self.pool.submit(self._write, rows, counts))

    def _write(self, rows: pa.Table, counts: SourceCounts) -> None:
        try:
            new, duplicates, files = self.session.write(rows)
        except StoreWriteError as err:  # a batch spanning days may have stored some of them
            counts.new_rows += err.rows_written
            self.report.files_written += err.files_written
            raise
        counts.new_rows += new
        counts.duplicates += duplicates
        self.report.files_written += files

    def close(self, cancel: bool = False) -> None:
        try:
            while self.pending:
                future = self.pending.popleft()
                if cancel:
                    future.cancel()
                future.result() if not future.cancelled() else None
        finally:
            self.pool.shutdown(wait=True)


def _text_batch(source: str, texts: list[str], first: int) -> Batch:
    return Batch(source, pa.array(range(first, first + len(texts)), pa.int64()), pa.array(texts, pa.string()))


def _rejected_lines(batch: Batch, positions: list[int]) -> dict[int, tuple[str, int | None]]:
    """position -> (first 200 characters, byte offset or None) of the texts normalize rejected."""
    if not positions:
        return {}
    index = pc.index_in(pa.array(positions, pa.int64()), value_set=batch.positions).to_pylist()
    lines, offsets = batch.lines, batch.offsets
    return {p: (lines[i].as_py(), None if offsets is None else offsets[i].as_py())
            for p, i in zip(positions, index, strict=True)}


def reject_records(source: str, items: list[tuple]) -> list[dict[str, Any]]:
    """Reject records {source, position, reason, text[, offset]} for (position, reason, text[, offset]).

    The reason and the whole text are redacted (`load_redactor()`: rejected lines are log text
    too) before the text is cut to `REJECT_TEXT_CHARS`, so a secret is never cut into a piece
    the rules no longer recognise; a cut text also loses its last, partial word. `offset` (the
    byte offset in the file, when the reader knows it) is added when not None.
    """
    redactor = load_redactor()
    texts = redactor.redact_all((item[2] or "").strip() for item in items)
    reasons = redactor.redact_all(item[1] for item in items)
    records = []
    for item, reason, text in zip(items, reasons, texts, strict=True):
        record = {"source": source, "position": item[0], "reason": reason, "text": clip_reject_text(text or "")}
        if len(item) > 3 and item[3] is not None:
            record["offset"] = item[3]
        records.append(record)
    return records


def clip_reject_text(text: str) -> str:
    """`text` cut to REJECT_TEXT_CHARS for a reject record, without its last partial word, ending in `…`."""
    if len(text) < REJECT_TEXT_CHARS:  # at the limit: maybe cut already (reader texts are)
        return text
    cut = text[:REJECT_TEXT_CHARS]
    end = len(cut)
    while end and (cut[end - 1].isalnum() or cut[end - 1] in "_-+/.~%@"):
        end -= 1
    return cut[:end] + "\u2026"


def _with_state(err: StoreError, files_written: int) -> StoreError:
    """`err` saying what an ingest that failed after writing `files_written` files left in the store."""
    if not isinstance(err, StoreWriteError) or not files_written:
        return err
    many = files_written > 1
    state = (f"{files_written} entry file{'s' if many else ''} written before the failure {'are' if many else 'is'} "
             "complete and kept; re-running adds exactly what is missing")
    return StoreWriteError(err.message.replace("the store is unchanged", state), path=err.path, errno=err.errno,
                           hint=err.hint)


def require_store(path: str | os.PathLike | None) -> Store:
    """Open an existing store (used by the CLI)."""
    store = Store(path, create=False) if path is not None else Store(create=False)
    if not (Path(store.root) / "entries").is_dir():  # pragma: no cover - Store creates it
        raise StoreError(f"{store.root}: not a logaudit store")
    return store


def _paths_in(text: str, root: Path) -> list[Path]:
    """Files under `root` that an error message names."""
    return [Path(m) for m in dict.fromkeys(re.findall(re.escape(str(root)) + r"/[^'\"\s]+", text))]


def _reason(err: BaseException) -> str:
    if isinstance(err, OSError):
        return err.strerror or str(err)
    if isinstance(err, KeyError | TypeError):
        return "no format field"
    return " ".join(str(err).split())[:120] or type(err).__name__


def _fsync_replace(tmp: Path, final: Path) -> None:
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, final)


def _rfc3339(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return format_rfc3339(value, fraction="micro")
    return str(value)


__all__ = ["DEFAULT_STORE", "IngestReport", "SourceCounts", "Store", "WriteSession", "default_store_path", "require_store", "store_root"]
