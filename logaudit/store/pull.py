"""Pull Cloud Run entries from the Cloud Logging API into the store: every entry exactly once,
as fast as the read quota allows, resumable after any interruption.

`pull` runs the pager of `logaudit.sources.cloud_logging` on its own thread and writes its pages to
the store every few pages, deduplicated; after each durable write it saves a cursor under
``STORE/cursors/``, keyed by the project and the filter without its time bounds, so that a later
pull of the same query resumes at the boundary whether the previous run finished, failed, was
interrupted or killed. docs/pull.md has the details.

>>> cursor_path("logaudit-store", "my-project", 'resource.type="cloud_run_revision"')
PosixPath('logaudit-store/cursors/de6e05353971fd18fdce60b5.json')
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import queue
import random
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from logaudit.core.errors import LogauditError, SourceError, UsageError
from logaudit.core.timeparse import format_ns, format_rfc3339, parse_rfc3339_ns, parse_time, to_ns
from logaudit.sources.cloud_logging import (
    DEFAULT_ENDPOINT,
    DEFAULT_SINCE,
    MAX_PAGE_SIZE,
    RESOURCE_TYPE,
    GiveUp,
    Pacer,
    Pager,
    PullPlan,
    PullProgress,
    PullProgressCallback,
    as_ns,
    build_filter,
    make_client,
    resolve_endpoint,
)
from logaudit.store.layout import atomic_write
from logaudit.store.normalize import normalize_batch
from logaudit.store.schema import DEDUP_KEY
from logaudit.store.store import (
    MAX_REJECT_RECORDS,
    IngestReport,
    SourceCounts,
    Store,
    default_store_path,
    reject_records,
)

CURSOR_VERSION = 1


# --------------------------------------------------------------------------- the cursor
def cursor_key(project: str, base_filter: str) -> str:
    return hashlib.sha256(f"{project}\n{base_filter}".encode()).hexdigest()[:24]


def cursor_path(store_root: str | os.PathLike, project: str, base_filter: str) -> Path:
    return Path(store_root) / "cursors" / f"{cursor_key(project, base_filter)}.json"


@dataclass
class Cursor:
    """What a pull of (project, filter) has durably stored.

    Every matching entry with `covered_from <= timestamp < boundary` is in the store, and so are
    the entries at `boundary` listed in `boundary_keys` (more may exist there). A pull that starts
    inside [covered_from, boundary] resumes with `timestamp>=boundary`.
    """

    project: str
    filter: str
    covered_from: str
    boundary: str
    boundary_keys: list[list[str | None]] = field(default_factory=list)
    complete: bool = False
    until: str | None = None
    entries_written: int = 0
    updated: str = ""
    version: int = CURSOR_VERSION

    @property
    def covered_from_ns(self) -> int:
        return parse_rfc3339_ns(self.covered_from)

    @property
    def boundary_ns(self) -> int:
        return parse_rfc3339_ns(self.boundary)


_DAMAGED_CURSORS: set[Path] = set()


def load_cursor(store_root: str | os.PathLike, project: str, base_filter: str) -> Cursor | None:
    """The saved cursor for (project, filter), or None (also when unreadable: a pull then starts over)."""
    path = cursor_path(store_root, project, base_filter)
    try:
        data = orjson.loads(path.read_bytes())
        cur = Cursor(**{k: v for k, v in data.items() if k in Cursor.__dataclass_fields__})
        if cur.project != project or cur.filter != base_filter:
            return None
        cur.covered_from_ns, cur.boundary_ns  # noqa: B018 - validate
        return cur
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError, AttributeError):
        # derived data: the pull is still exact without it (it starts over, deduplicated); say so once
        if path not in _DAMAGED_CURSORS:
            _DAMAGED_CURSORS.add(path)
            logging.getLogger("logaudit").warning("%s: damaged pull cursor ignored: this pull starts from --since "
                                                  "(`logaudit store repair` moves the file aside)", path)
        return None


def save_cursor(store_root: str | os.PathLike, cursor: Cursor) -> Path:
    path = cursor_path(store_root, cursor.project, cursor.filter)
    path.parent.mkdir(exist_ok=True)
    cursor.updated = _now_text()
    atomic_write(path, orjson.dumps(asdict(cursor), option=orjson.OPT_INDENT_2))
    return path



def plan_pull(store_root: str | os.PathLike, project: str, *, services: str | Iterable[str] | None = (),
              revision: str | Iterable[str] | None = None, since: datetime | str | None = None,
              until: datetime | str | None = None, extra_filter: str | None = None,
              severity_at_least: str | None = None, endpoint: str | None = None, page_size: int = MAX_PAGE_SIZE,
              resource_type: str | None = RESOURCE_TYPE, now: datetime | None = None) -> PullPlan:
    """Work out the first request of a pull, resuming from the store's cursor when it applies.

    Reads the cursor but writes nothing (this is what `--dry-run` prints)."""
    if not project or not project.strip():
        raise UsageError("--project is required")
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise UsageError(f"page size {page_size}: must be between 1 and {MAX_PAGE_SIZE}")
    now = now or datetime.now(UTC)
    since_dt = since if isinstance(since, datetime) else (
        parse_time(since, now=now, name="--since") if since is not None else now - DEFAULT_SINCE)
    until_dt = until if isinstance(until, datetime) else (
        parse_time(until, now=now, name="--until") if until is not None else None)
    since_ns = as_ns(since_dt)
    until_ns = as_ns(until_dt)
    assert since_ns is not None
    if until_ns is not None and since_ns >= until_ns:
        raise UsageError(f"--since {format_ns(since_ns)} is not before --until {format_ns(until_ns)}")
    common = dict(services=services, revisions=revision, severity_at_least=severity_at_least,
                  extra_filter=extra_filter, resource_type=resource_type)
    base = build_filter(**common)
    start_ns, covered_from, resumed = since_ns, since_ns, None
    cursor = load_cursor(store_root, project, base) if Path(store_root).is_dir() else None
    if cursor is not None and cursor.covered_from_ns <= since_ns <= cursor.boundary_ns:
        start_ns, covered_from, resumed = cursor.boundary_ns, cursor.covered_from_ns, cursor.boundary
    query = build_filter(since=start_ns, until=until_ns, **common)
    body = {"resourceNames": [f"projects/{project}"], "filter": query, "orderBy": "timestamp asc", "pageSize": page_size}
    return PullPlan(project=project, endpoint=resolve_endpoint(endpoint) or DEFAULT_ENDPOINT, base_filter=base,
                    filter=query, since_ns=since_ns, until_ns=until_ns, start_ns=start_ns,
                    covered_from_ns=covered_from, resumed_from=resumed,
                    cursor_file=str(cursor_path(store_root, project, base)) if cursor else None,
                    body=body, page_size=page_size)




@dataclass
class PullReport:
    """The outcome of one pull (also recorded in the store manifest)."""

    project: str
    filter: str
    query_filter: str
    endpoint: str
    since: str
    until: str | None
    resumed_from: str | None
    status: str = "running"
    ingest_id: str = ""
    requests: int = 0
    pages: int = 0
    entries: int = 0
    new_rows: int = 0
    duplicates: int = 0
    rejected: int = 0
    retries: dict[str, int] = field(default_factory=dict)
    quota_wait_seconds: float = 0.0
    retry_wait_seconds: float = 0.0
    seconds: float = 0.0
    boundary: str | None = None
    cursor: str | None = None
    rejects: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("rejects")
        return out



# --------------------------------------------------------------------------- writing pages
class _PullWriter:
    """Writes pages to the store in batches, each durable before the cursor moves past it.

    Deduplication and durable writes are the store's `WriteSession` (exact, against the store and
    against what this pull already wrote); this class batches pages, counts, and remembers the
    keys at the latest timestamp for the cursor. The caller holds the store lock.
    """

    def __init__(self, store: Store, source: str, report: IngestReport, extra: dict[str, Any]) -> None:
        self.store, self.source, self.report, self.extra = store, source, report, extra
        self.counts = SourceCounts(source)
        report.sources.append(self.counts)
        self.texts: list[str] = []
        self.prepared: list[pa.Table] = []
        self.prepared_rows = 0
        self.dirty = False
        self.position = 0
        self.session = store.write_session()
        self.edge_ns: int | None = None
        self.edge: pa.Table | None = None
        self.last_flush = time.monotonic()

    @property
    def pending(self) -> int:
        """Entries received and not yet written."""
        return len(self.texts) + self.prepared_rows

    def add(self, entries: list[dict[str, Any]]) -> None:
        self.texts.extend(orjson.dumps(e).decode() for e in entries)

    def prepare(self) -> None:
        """Normalize what arrived since the last call (done while waiting for the next page,
        so a flush, and above all the last one, only has to deduplicate and write)."""
        if not self.texts:
            return
        texts, self.texts = self.texts, []
        first = self.position + 1
        self.position += len(texts)
        positions = pa.array(range(first, first + len(texts)), pa.int64())
        notes: list[tuple[int, str]] = []
        rows, rejects = normalize_batch(pa.array(texts, pa.string()), positions, self.source, notes=notes)
        self.report.add_notes(self.source, notes, self.counts)
        self.counts.read += len(texts)
        self.counts.rejected += len(rejects)
        self.dirty = True
        room = MAX_REJECT_RECORDS - len(self.report.rejects)
        if rejects and room > 0:
            self.report.rejects += reject_records(self.source, [(pos, reason, texts[pos - first])
                                                                for pos, reason in rejects[:room]])
        if rows.num_rows:
            self.prepared.append(rows)
            self.prepared_rows += rows.num_rows

    def flush(self) -> bool:
        """Write what is pending. Returns True when anything was written or counted since the last flush."""
        self.last_flush = time.monotonic()
        self.prepare()
        dirty, self.dirty = self.dirty, False
        if not self.prepared:
            return dirty
        rows = self.prepared[0] if len(self.prepared) == 1 else pa.concat_tables(self.prepared)
        self.prepared, self.prepared_rows = [], 0
        new, duplicates, files = self.session.write(rows)
        self.counts.new_rows += new
        self.counts.duplicates += duplicates
        self.report.files_written += files
        self._advance_edge(rows)
        return True

    def _advance_edge(self, rows: pa.Table) -> None:
        ts = rows["timestamp"]
        top = pc.max(ts)
        top_ns = top.cast(pa.int64()).as_py()
        at_top = rows.filter(pc.equal(ts, top)).select(list(DEDUP_KEY))
        if self.edge_ns is None or top_ns > self.edge_ns:
            self.edge_ns, self.edge = top_ns, at_top
        elif top_ns == self.edge_ns and self.edge is not None:
            self.edge = pa.concat_tables([self.edge, at_top])

    def edge_keys(self) -> list[list[str | None]]:
        if self.edge is None:
            return []
        seen = dict.fromkeys(zip(self.edge["log_name"].to_pylist(), self.edge["insert_id"].to_pylist(), strict=True))
        return [list(k) for k in seen]

    def write_manifest(self) -> None:
        self.report.finished = _now_text()
        self.store.write_manifest(self.report, "pull", self.extra)

    def write_rejects(self) -> None:
        self.store.write_rejects(self.report)


# --------------------------------------------------------------------------- the entry point
def pull(store: Store | str | os.PathLike | None, project: str, *, services: str | Iterable[str] | None = (),
         revision: str | Iterable[str] | None = None, since: datetime | str | None = None,
         until: datetime | str | None = None, extra_filter: str | None = None,
         severity_at_least: str | None = None, endpoint: str | None = None,
         credentials_file: str | os.PathLike | None = None, max_requests_per_minute: float = 60,
         page_size: int = MAX_PAGE_SIZE, max_retry_seconds: float = 300.0,
         progress: PullProgressCallback | None = None, request_timeout: float = 60.0,
         flush_entries: int = 5000, flush_seconds: float = 5.0, backoff_initial: float = 0.1,
         max_backoff: float = 32.0, resource_type: str | None = RESOURCE_TYPE, client: Any = None,
         now: datetime | None = None, seed: int | None = None) -> PullReport:
    """Pull the entries matching the options into `store`; resumes from the store's cursor.

    `since` defaults to one day before now. Raises SourceError (Cloud Logging failed or refused;
    what was stored stays stored and a re-run resumes), UsageError, LockedError; on
    KeyboardInterrupt the pages received so far are written and the cursor saved first.
    """
    root = store.root if isinstance(store, Store) else Path(store) if store is not None else default_store_path()
    if max_requests_per_minute <= 0:
        raise UsageError(f"--max-requests-per-minute {max_requests_per_minute}: must be positive")
    t0 = time.monotonic()
    now = now or datetime.now(UTC)
    common = dict(services=services, revisions=revision, severity_at_least=severity_at_least,
                  extra_filter=extra_filter, resource_type=resource_type)
    plan_args = dict(services=services, revision=revision, since=since, until=until, extra_filter=extra_filter,
                     severity_at_least=severity_at_least, endpoint=endpoint, page_size=page_size,
                     resource_type=resource_type, now=now)
    plan_pull(root, project, **plan_args)  # validate everything before credentials and the store
    if client is None:
        client = make_client(project, endpoint=endpoint, credentials_file=credentials_file)
    store = store if isinstance(store, Store) else Store(root)
    with store.lock():
        plan = plan_pull(store.root, project, **plan_args)
        started = datetime.now(UTC)
        ingest = IngestReport(ingest_id=f"{started:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}", started=_now_text(started))
        report = PullReport(project=project, filter=plan.base_filter, query_filter=plan.filter, endpoint=plan.endpoint,
                            since=format_ns(plan.since_ns),
                            until=format_ns(plan.until_ns) if plan.until_ns is not None else None,
                            resumed_from=plan.resumed_from, ingest_id=ingest.ingest_id)
        stats = PullProgress(project=project, start_ns=plan.start_ns,
                             end_ns=plan.until_ns if plan.until_ns is not None else to_ns(now))
        extra: dict[str, Any] = {"project": project, "filter": plan.base_filter, "query_filter": plan.filter,
                                 "endpoint": plan.endpoint, "since": report.since, "until": report.until,
                                 "resumed_from": plan.resumed_from}
        writer = _PullWriter(store, f"pull:{project}", ingest, extra)
        cursor = Cursor(project=project, filter=plan.base_filter, covered_from=format_ns(plan.covered_from_ns),
                        boundary=format_ns(plan.start_ns), until=report.until)
        old = load_cursor(store.root, project, plan.base_filter)
        if old is not None and plan.resumed_from is not None:
            cursor.boundary_keys, cursor.entries_written = old.boundary_keys, old.entries_written

        def update_report(status: str) -> None:
            report.status = ingest.status = status
            report.requests, report.pages, report.entries = stats.requests, stats.pages, stats.entries
            report.new_rows, report.duplicates, report.rejected = ingest.new_rows, ingest.duplicates, ingest.rejected
            report.retries = dict(stats.retries)
            report.quota_wait_seconds = round(stats.quota_wait_seconds, 3)
            report.retry_wait_seconds = round(stats.retry_backoff_seconds, 3)
            report.seconds = ingest.seconds = round(time.monotonic() - t0, 3)
            report.boundary = cursor.boundary if writer.edge_ns is not None or plan.resumed_from else None
            report.rejects = ingest.rejects
            extra["pull"] = {k: v for k, v in report.to_dict().items()
                             if k in ("requests", "pages", "entries", "retries", "quota_wait_seconds",
                                      "retry_wait_seconds", "boundary")}

        def durable(complete: bool = False, force: bool = False) -> None:
            """Flush pending pages, then move the cursor (never ahead of what is on disk)."""
            wrote = writer.flush()
            stats.new_rows, stats.duplicates, stats.rejected = ingest.new_rows, ingest.duplicates, ingest.rejected
            if writer.edge_ns is not None:
                cursor.boundary = format_ns(max(writer.edge_ns, plan.start_ns))
                if writer.edge_ns >= plan.start_ns:
                    keys = writer.edge_keys()
                    cursor.boundary_keys = (keys if writer.edge_ns > plan.start_ns
                                            else _merge_keys(cursor.boundary_keys, keys))
            cursor.entries_written = (cursor.entries_written if plan.resumed_from else 0) + ingest.new_rows
            if wrote or complete or (force and writer.edge_ns is not None):
                cursor.complete = complete
                report.cursor = str(save_cursor(store.root, cursor))
                update_report("running")
                writer.write_manifest()

        update_report("running")
        writer.write_manifest()
        if plan.up_to_date:
            stats.done = True
            update_report("up-to-date")
            writer.write_manifest()
            if progress:
                progress(stats)
            return report

        stop = threading.Event()
        pages: queue.Queue = queue.Queue(maxsize=16)
        pager = Pager(client, plan, common, stats, pacer=Pacer(max_requests_per_minute), stop=stop, out=pages,
                       max_retry_seconds=max_retry_seconds, request_timeout=request_timeout,
                       backoff_initial=backoff_initial, max_backoff=max_backoff,
                       rng=random.Random(seed) if seed is not None else None)
        thread = threading.Thread(target=pager.run, name="logaudit-pull-pager", daemon=True)
        status = "failed"
        try:
            thread.start()
            while True:
                if _stop_requested.is_set():
                    # a signal that landed inside a DuckDB query is turned into an interrupt of that
                    # query and can be lost; the flag makes the stop stick
                    raise KeyboardInterrupt
                try:
                    kind, item = pages.get(timeout=0.5)
                except queue.Empty:
                    if writer.pending and time.monotonic() - writer.last_flush >= flush_seconds:
                        durable()
                    else:
                        writer.prepare()
                    if progress:
                        progress(stats)
                    continue
                if kind == "page":
                    writer.add(item)
                    if writer.pending >= flush_entries or time.monotonic() - writer.last_flush >= flush_seconds:
                        durable()
                    elif pages.empty():
                        writer.prepare()
                    if progress:
                        progress(stats)
                elif kind == "done":
                    durable(complete=True)
                    status = "complete"
                    break
                else:
                    raise item
        except GiveUp as err:
            stop.set()
            durable(force=True)
            status = "failed"
            raise SourceError(
                f"gave up after {err.seconds:.0f} s of failing requests to Cloud Logging (last: {err.detail}); "
                f"{_how_far(ingest, cursor, writer)}",
                hint="re-run the same command to resume from there; --max-retry-time sets how long to keep retrying",
            ) from None
        except LogauditError as err:
            stop.set()
            durable(force=True)
            status = "failed"
            if isinstance(err, SourceError) and (ingest.new_rows or plan.resumed_from):
                err.message += f"\n  {_how_far(ingest, cursor, writer)}; re-running the same command resumes from there"
            raise
        except KeyboardInterrupt:
            status = "interrupted"
            stop.set()
            durable(force=True)
            raise
        except duckdb.InterruptException:  # Ctrl-C that landed inside a DuckDB query
            status = "interrupted"
            stop.set()
            durable(force=True)
            raise KeyboardInterrupt from None
        except BaseException:
            status = "interrupted"
            stop.set()
            with contextlib.suppress(Exception):
                durable(force=True)
            raise
        finally:
            stop.set()
            _stop_requested.clear()  # honoured (or the pull ended first): the next pull starts afresh
            stats.done = status == "complete"
            update_report(status)
            writer.write_rejects()
            writer.write_manifest()
            thread.join(timeout=2.0)
            if progress:
                with contextlib.suppress(Exception):
                    progress(stats)
        return report


_stop_requested = threading.Event()


def request_stop() -> None:
    """Ask a running (or starting) `pull` to stop like Ctrl-C: write what arrived, save the
    cursor, raise KeyboardInterrupt. Safe in signal handlers (SIGTERM from cron, Cloud Run or a
    shell): it only sets a flag, which the pull checks at least twice a second."""
    _stop_requested.set()


def _how_far(ingest: IngestReport, cursor: Cursor, writer: _PullWriter) -> str:
    if writer.edge_ns is None:
        return f"nothing new stored this run; the store is complete up to {cursor.boundary}"
    return f"stored {ingest.new_rows} new entries this run, complete up to {cursor.boundary}"


def _merge_keys(old: Sequence[Sequence[str | None]], new: Sequence[Sequence[str | None]]) -> list[list[str | None]]:
    return [list(k) for k in dict.fromkeys(tuple(k) for k in [*old, *new])]


def _now_text(value: datetime | None = None) -> str:
    return format_rfc3339(value or datetime.now(UTC), fraction="micro")


__all__ = ["Cursor", "PullReport", "cursor_path", "load_cursor", "plan_pull", "pull", "request_stop", "save_cursor"]
