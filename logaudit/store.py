"""The local Parquet store: deduplicated entries, an ingest manifest, and rejects.

Layout (everything below the store root)::

    entries/date=YYYY-MM-DD/part-<time>-<id>.parquet   canonical entry rows, sorted by timestamp
    manifest/<time>-<id>.json                           one record per ingest or pull
    rejects/<ingest id>.jsonl                           what was not a LogEntry, with file:line and reason
    .lock                                               held while writing

Partitioned by UTC date because every question logaudit asks is bounded in time: a 6 h
summary opens one or two partitions, and deduplicating a new batch only reads the key columns
of the partitions the batch touches. Entry files are immutable once written (written to a
temporary name and renamed into place), so an interrupted ingest leaves the store as it was
plus whole batches, and caches keyed by file name (classification) stay valid.

>>> from logaudit.store import Store
>>> store = Store("logaudit-store")              # doctest: +SKIP
>>> store.ingest_paths(["data/sample"]).new_rows  # doctest: +SKIP
5000
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from logaudit.errors import LockedError, StoreError
from logaudit.normalize import normalize_batch
from logaudit.schema import DEDUP_KEY, DICTIONARY_COLUMNS, ENTRY_SCHEMA
from logaudit.sources.files import Batch, discover, iter_batches

DEFAULT_STORE = "logaudit-store"
#: Reject records (and notes on unreadable fields) kept per ingest (beyond this only the count grows).
MAX_REJECT_RECORDS = 10_000
#: Notes on unreadable fields written to the manifest record and the JSON report.
MAX_NOTES_SHOWN = 100

#: Columns whose min/max let DuckDB skip row groups in windowed queries.
_STATISTICS_COLUMNS = ["timestamp", "receive_timestamp", "service", "revision", "effective_severity_num", "http_status"]

Progress = Callable[[str, int, int], None]  # (source, bytes_done, rows_done)


def default_store_path() -> Path:
    """$LOGAUDIT_STORE, else ./logaudit-store."""
    return Path(os.environ.get("LOGAUDIT_STORE") or DEFAULT_STORE)


@dataclass
class SourceCounts:
    """What one source (file or pull) contributed to an ingest."""

    source: str
    read: int = 0
    new_rows: int = 0
    duplicates: int = 0
    rejected: int = 0
    blank: int = 0
    #: Fields of stored entries that were given but could not be read (kept as null, with a note).
    unreadable_fields: int = 0


@dataclass
class IngestReport:
    """Counts for one ingest; `rejects` holds the first MAX_REJECT_RECORDS reject records and
    `field_notes` the first MAX_REJECT_RECORDS notes on unreadable fields of stored entries."""

    ingest_id: str
    started: str
    finished: str = ""
    status: str = "running"
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
    def unreadable_fields(self) -> int:
        return sum(s.unreadable_fields for s in self.sources)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("rejects")
        out["field_notes"] = out["field_notes"][:MAX_NOTES_SHOWN]
        out.update(read=self.read, new_rows=self.new_rows, duplicates=self.duplicates, rejected=self.rejected,
                   unreadable_fields=self.unreadable_fields)
        return out

    def add_notes(self, source: str, notes: list[tuple[int, str]], counts: SourceCounts) -> None:
        """Count and keep notes on unreadable fields (from `normalize_batch(..., notes=...)`)."""
        counts.unreadable_fields += len(notes)
        room = MAX_REJECT_RECORDS - len(self.field_notes)
        self.field_notes.extend({"source": source, "position": pos, "note": note} for pos, note in notes[:max(room, 0)])


class Store:
    """A logaudit store directory. Creating the object creates the directory when `create`."""

    def __init__(self, root: str | os.PathLike | None = None, *, create: bool = True) -> None:
        self.root = Path(root) if root is not None else default_store_path()
        if not self.root.exists():
            if not create:
                raise StoreError(
                    f"{self.root}: no store here",
                    hint="ingest something first (`logaudit ingest FILE`) or pass --store / set LOGAUDIT_STORE",
                )
            self.root.mkdir(parents=True)
        elif not self.root.is_dir():
            raise StoreError(f"{self.root}: exists and is not a directory")
        for sub in ("entries", "manifest", "rejects"):
            (self.root / sub).mkdir(exist_ok=True)

    def __repr__(self) -> str:
        return f"Store({str(self.root)!r})"

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
        return out

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
        """Every ingest/pull record, oldest first."""
        records = []
        for path in (self.root / "manifest").glob("*.json"):
            with contextlib.suppress(OSError, orjson.JSONDecodeError):
                records.append(orjson.loads(path.read_bytes()))
        return sorted(records, key=lambda r: (r.get("started") or "", r.get("ingest_id") or ""))

    def info(self) -> dict[str, Any]:
        """Size, time range and row counts of the store, plus its manifest."""
        files = self.entry_files()
        stats: dict[str, Any] = {"store": str(self.root), "files": len(files), "entries": 0,
                                 "first": None, "last": None, "bytes": sum(f.stat().st_size for f in files),
                                 "partitions": len({f.parent.name for f in files})}
        if files:
            con = duckdb.connect()
            row = con.execute(
                "SELECT count(*), min(timestamp), max(timestamp) FROM read_parquet($files)",
                {"files": [str(f) for f in files]},
            ).fetchone()
            stats["entries"] = row[0]
            stats["first"] = _rfc3339(row[1])
            stats["last"] = _rfc3339(row[2])
        manifest = self.manifest()
        stats["ingests"] = manifest
        stats["rejected_total"] = sum(m.get("rejected", 0) for m in manifest)
        return stats

    # ------------------------------------------------------------------ writing
    @contextlib.contextmanager
    def lock(self, wait: bool = False) -> Iterator[None]:
        """Exclusive writer lock; raises LockedError if another process holds it and not `wait`."""
        fd = os.open(self.root / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError as err:
                raise LockedError(
                    f"{self.root}: another logaudit process is writing to this store",
                    hint="wait for it to finish, or use another --store",
                ) from err
            yield
        finally:
            os.close(fd)

    def ingest_paths(self, paths: Iterable[str | os.PathLike], *, progress: Progress | None = None,
                     batch_size: int = 75_000) -> IngestReport:
        """Ingest files and directories (see logaudit.sources.files for formats)."""
        files = discover(paths)
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
                for source, batches in sources:
                    counts = SourceCounts(source)
                    report.sources.append(counts)
                    bytes_done = 0
                    for batch in batches:
                        self._ingest_batch(batch, counts, report, writer)
                        bytes_done += batch.bytes_read
                        if progress:
                            progress(source, bytes_done, counts.read)
                writer.close()
                report.status = "complete"
            except BaseException:
                writer.close(cancel=True)
                report.status = "interrupted"
                raise
            finally:
                report.finished = _rfc3339(datetime.now(UTC))
                report.seconds = round(time.perf_counter() - t0, 3)
                self.write_rejects(report)
                self.write_manifest(report, kind, extra)
        return report

    def _ingest_batch(self, batch: Batch, counts: SourceCounts, report: IngestReport,
                      writer: _Writer) -> None:
        counts.blank += batch.blank
        notes: list[tuple[int, str]] = []
        if len(batch.lines):
            rows, rejects = normalize_batch(batch.lines, batch.positions, batch.source, notes=notes)
        else:
            rows, rejects = ENTRY_SCHEMA.empty_table(), []
        report.add_notes(batch.source, notes, counts)
        counts.read += len(batch.lines) + len(batch.bad)
        counts.rejected += len(rejects) + len(batch.bad)
        if batch.bad or rejects:
            texts = _texts_by_position(batch, [p for p, _ in rejects])
            for pos, reason, text in sorted(batch.bad + [(p, r, texts[p]) for p, r in rejects]):
                if len(report.rejects) < MAX_REJECT_RECORDS:
                    report.rejects.append({"source": batch.source, "position": pos, "reason": reason, "text": text})
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
        con = duckdb.connect(config={"threads": 2})
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
        written = 0
        for day in ([lo] if lo == hi else np.unique(days).tolist()):
            part = rows if lo == hi else rows.filter(pa.array(days == day))  # one day: no copy
            folder = self.root / "entries" / f"date={_KeyIndex.day_name(day)}"
            folder.mkdir(exist_ok=True)
            name = f"part-{datetime.now(UTC):%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex[:8]}.parquet"
            tmp = folder / f".{name}.tmp"
            pq.write_table(part, tmp, compression="zstd", compression_level=1, row_group_size=128 * 1024,
                           use_dictionary=list(DICTIONARY_COLUMNS), write_statistics=_STATISTICS_COLUMNS)
            _fsync_replace(tmp, folder / name)
            written += 1
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
                con = duckdb.connect(config={"threads": 2})
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
        new, duplicates, files = self.session.write(rows)
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


def _texts_by_position(batch: Batch, positions: list[int]) -> dict[int, str]:
    if not positions:
        return {}
    index = pc.index_in(pa.array(positions, pa.int64()), value_set=batch.positions).to_pylist()
    lines = batch.lines
    return {p: lines[i].as_py().strip()[:200] for p, i in zip(positions, index, strict=True)}


def atomic_write(path: Path, data: bytes) -> None:
    """Write `data` to `path` via a fsynced temporary file and a rename: readers see old or new, never half."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:6]}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


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
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return str(value)


__all__ = ["DEFAULT_STORE", "IngestReport", "SourceCounts", "Store", "WriteSession", "default_store_path"]
