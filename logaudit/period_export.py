"""Scheduled exports: a frozen, shareable record of one period of logs, per service.

`export` (`logaudit export`, made for cron, Cloud Run jobs and Cloud Scheduler) pulls the period
first when a project is given, classifies it, and writes per service ``DEST/<service>/<period>/``:
the redacted entries, their matches, the summary, the comparison, the report, and
``_EXPORT.json`` last. A directory DEST is swapped in atomically; on ``gs://`` readers go through
``_EXPORT.json`` (`read_manifest`). One run at a time: a second one raises `LockedError`.
docs/export.md has the layout, the guarantees and the schedules.

>>> period_name(datetime(2025, 9, 9, 20, tzinfo=UTC), datetime(2025, 9, 10, 4, tzinfo=UTC))
'2025-09-09T2000Z_2025-09-10T0400Z'
"""

from __future__ import annotations

import abc
import contextlib
import ctypes
import errno
import hashlib
import os
import re
import shutil
import socket
import string
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from logaudit.analysis.audit import Audit
from logaudit.analysis.comparison import Comparison
from logaudit.analysis.judge import compare
from logaudit.analysis.window import Window, resolve_window
from logaudit.core.atomic import fsync_file
from logaudit.core.db import connect
from logaudit.core.errors import LockedError, LogauditError, SourceError, StoreError, UsageError
from logaudit.core.lock import FileLock
from logaudit.core.redact import Redactor
from logaudit.core.timeparse import clamp_window, format_rfc3339, parse_duration
from logaudit.core.version import __version__
from logaudit.present.report import FORMATS, build_report, parse_formats
from logaudit.sources.gcs import parse_gs_uri
from logaudit.store import pull as store_pull
from logaudit.store.layout import WRITE_ERRNOS, write_failure
from logaudit.store.schema import ENTRY_SCHEMA
from logaudit.store.store import Store

FORMAT = "logaudit-export/1"
MANIFEST = "_EXPORT.json"
LOCK_NAME = ".logaudit-export.lock"
DEFAULT_ALIGN = "1h"
DEFAULT_LOCK_TTL = 3600.0
WRITE_SCOPES = ("https://www.googleapis.com/auth/devstorage.read_write",)
WRITER_ROLE = "roles/storage.objectUser"
#: String columns kept as they are in entries.parquet: identifiers and enums, never free text.
UNREDACTED_COLUMNS = frozenset({
    "log_name", "log_id", "insert_id", "severity", "effective_severity", "resource_type", "project_id", "service",
    "revision", "configuration", "location", "instance_id", "trace", "span_id", "http_method", "http_protocol",
    "http_remote_ip", "http_server_ip", "payload_type", "audit_method", "audit_revision", "operation_id",
})
_SERVICE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_KEEP = frozenset(string.ascii_letters + string.digits + "_-")  # kept as they are when a service name is encoded
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

Progress = Callable[[str], None]


# ============================================================================ results
@dataclass
class PeriodExport:
    """One service's period as exported."""

    service: str
    period: str
    location: str  # DEST/<service>/<period> (local path or gs:// URI)
    export_id: str
    entries: int
    files: list[dict[str, Any]]
    replaced: bool  # a previous export of the same period was replaced
    compare: dict[str, Any]  # {"status": "written" | "skipped", ...}


@dataclass
class ExportResult:
    dest: str
    since: str
    until: str
    period: str
    periods: list[PeriodExport] = field(default_factory=list)
    pull: dict[str, Any] | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ============================================================================ naming
def _stamp(t: datetime) -> str:
    t = t.astimezone(UTC)
    text = t.strftime("%Y-%m-%dT%H%M")
    if t.second or t.microsecond:
        text += t.strftime("%S")
    if t.microsecond:
        text += t.strftime(".%f")
    return text + "Z"


def period_name(since: datetime, until: datetime) -> str:
    """`2025-09-09T2000Z_2025-09-10T0400Z` (seconds and microseconds only when not zero)."""
    return f"{_stamp(since)}_{_stamp(until)}"


def floor_time(t: datetime, step: timedelta) -> datetime:
    """`t` rounded down to a multiple of `step` since the Unix epoch (UTC)."""
    return _EPOCH + ((t.astimezone(UTC) - _EPOCH) // step) * step


def export_window(since: Any, until: Any = None, *, align: str | None = DEFAULT_ALIGN,
                  now: datetime | None = None) -> tuple[datetime, datetime]:
    """The period to export: durations count back from `now` rounded down to `align`
    (None / "none" / "0": not rounded); `until` defaults to that rounded now."""
    if since is None:
        raise UsageError("--since is required for an export", hint="e.g. --since 24h")
    now = (now or datetime.now(UTC)).astimezone(UTC)
    if align not in (None, "", "none", "0"):
        step = parse_duration(str(align), name="--align")
        if step <= timedelta(0):
            raise UsageError(f"--align {align!r}: must be positive")
        now = floor_time(now, step)
    w = resolve_window(since, until, now=now, clamp=False)  # the period as asked; queries clamp it
    lo, hi = w.since, w.until or now
    if lo >= hi:
        raise UsageError(f"empty period: {format_rfc3339(lo)} is not before {format_rfc3339(hi)}",
                         hint="with a relative --since, --align rounds the end down; use a longer --since")
    return lo, hi


def service_folder(service: str) -> str:
    """The folder (local DEST) or name segment (gs://) of a service's exports.

    Service names come from the logs (``resource.labels.service_name``), so they are never used
    as paths as they are: a plain name (a letter or digit, then up to 99 letters, digits, ``.``,
    ``_``, ``-``: every Cloud Run service name) is its own folder; anything else is
    percent-encoded byte by byte, keeping only letters, digits, ``_`` and ``-``, so ``/``, ``..``,
    a leading ``.`` or a control character can never become part of a path (``../x`` ->
    ``%2E%2E%2Fx``; `urllib.parse.unquote` reverses it). An empty name, or one whose encoding is
    longer than 120 characters, becomes ``%%`` and 32 hex digits of its SHA-256 (not reversible:
    the period's ``_EXPORT.json`` holds the name). Different names never share a folder.

    >>> service_folder("netra-backend-staging"), service_folder("../../etc"), service_folder("a/b")
    ('netra-backend-staging', '%2E%2E%2F%2E%2E%2Fetc', 'a%2Fb')
    """
    if _SERVICE_NAME.fullmatch(service):
        return service
    encoded = "".join(chr(b) if chr(b) in _KEEP else f"%{b:02X}" for b in service.encode("utf-8", "surrogatepass"))
    if 0 < len(encoded) <= 120:
        return encoded
    return "%%" + hashlib.sha256(service.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _confined(root: Path, *parts: str) -> Path:
    """`root` / parts, refused (StoreError) unless it resolves to a place strictly inside `root`."""
    path = root.joinpath(*parts)
    base, real = os.path.realpath(root), os.path.realpath(path)
    if real == base or os.path.commonpath([base, real]) != base:
        raise StoreError(f"{path}: resolves to {real}, outside the export destination {base}; refusing to write there",
                         hint="a symbolic link inside the destination points elsewhere: remove it")
    return path


def _check_service(name: str) -> str:
    if not _SERVICE_NAME.fullmatch(name) or name in (".", ".."):
        raise UsageError(f"--service {name!r}: not a Cloud Run service name")
    return name


# ============================================================================ the export
def export(store_or_path: Store | str | os.PathLike | None, dest: str | os.PathLike, *, since: Any = "24h",
           until: Any = None, project: str | None = None, service: str | None = None,
           catalog: Any = None, formats: str | Iterable[str] = FORMATS, align: str | None = DEFAULT_ALIGN,
           now: datetime | None = None, redactor: Redactor | None = None, pull_options: dict[str, Any] | None = None,
           storage_client: Any = None, storage_endpoint: str | None = None,
           credentials_file: str | os.PathLike | None = None, lock_ttl: float = DEFAULT_LOCK_TTL,
           progress: Progress | None = None, bigquery: Any = None) -> ExportResult:
    """Export one period of the store (after pulling it, when `project` is given) to `dest`.

    `bigquery` (a `WarehouseAudit`) exports the period from a BigQuery log dataset instead: its
    entries are fetched as Arrow into a temporary store (removed after), and the same files are
    written; the manifest's `store` names the dataset.

    `dest` is a directory or ``gs://BUCKET/PREFIX``. `service` limits the export to one service
    (and the pull to it); without it every service with entries in the period is exported.
    `pull_options` go to `logaudit.sources.cloud_logging.pull` (endpoint, max_requests_per_minute,
    ...; `credentials_file` is shared with Cloud Storage). Raises LockedError when another export
    to `dest` is running, UsageError, StoreError, SourceError.
    """
    t0 = time.monotonic()
    fmts = parse_formats(formats)
    if service is not None:
        _check_service(service)
    since_t, until_t = export_window(since, until, align=align, now=now)
    period = period_name(since_t, until_t)
    say = progress or (lambda _msg: None)
    target = _target(str(dest), storage_client=storage_client, endpoint=storage_endpoint,
                     credentials_file=credentials_file, lock_ttl=lock_ttl)
    result = ExportResult(dest=target.uri, since=format_rfc3339(since_t), until=format_rfc3339(until_t), period=period)
    if bigquery is not None and project:
        raise UsageError("--bigquery and --project are two sources of the same logs: give one")
    with target.locked(), tempfile.TemporaryDirectory(prefix="logaudit-bq-") as scratch:
        target.recover()
        if bigquery is not None:
            say(f"fetching {bigquery.source.ref} {result.since} .. {result.until}")
            store_or_path = _fetched_store(bigquery, Path(scratch) / "store", since_t, until_t, service)
            catalog = bigquery.catalog if catalog is None else catalog
            redactor = bigquery.redactor if redactor is None else redactor
        if project:
            store = store_or_path if isinstance(store_or_path, Store) else Store(store_or_path)
            say(f"pulling {project} {result.since} .. {result.until}")
            result.pull = _pull(store, project, service, since_t, until_t, credentials_file, pull_options or {})
        else:
            store = store_or_path if isinstance(store_or_path, Store) else Store(store_or_path, create=False)
        audit = Audit(store, catalog, redactor=redactor)  # None: the configured default
        try:
            if service is not None and not project:  # (what a pull brings is Cloud Logging's to say)
                audit.window(since_t, until_t, service)  # UnknownFilterError: a service the store does not hold
            window = Window(*clamp_window(since_t, until_t), None, None)
            services = [service] if service else audit.summary(since=window)["services"]
            for svc in services:
                say(f"exporting {svc} {period}")
                result.periods.append(_export_service(audit, target, svc, since_t, until_t, period, fmts, project,
                                                      source=bigquery.source.ref if bigquery is not None else None))
        finally:
            audit.close()
    result.seconds = round(time.monotonic() - t0, 3)
    return result


def _pull(store: Store, project: str, service: str | None, since: datetime, until: datetime,
          credentials_file: str | os.PathLike | None, options: dict[str, Any]) -> dict[str, Any]:
    report = store_pull.pull(store, project, services=[service] if service else (), since=since, until=until,
                     credentials_file=credentials_file, **options)
    keep = ("project", "status", "filter", "query_filter", "since", "until", "entries", "new_rows", "duplicates",
            "rejected", "requests", "pages", "resumed_from", "boundary", "ingest_id")
    return {k: v for k, v in report.to_dict().items() if k in keep}


def _fetched_store(bigquery: Any, root: Path, since: datetime, until: datetime, service: str | None) -> Store:
    """A temporary store holding the period's entries fetched from BigQuery."""
    store = Store(root)
    rows = bigquery.fetch_entries(since, until, service)
    if rows.num_rows:
        with store.lock():
            store.write_session().write(rows)
    return store


def _export_service(audit: Audit, target: _Target, service: str, since: datetime, until: datetime, period: str,
                    formats: tuple[str, ...], project: str | None, *, source: str | None = None) -> PeriodExport:
    export_id = f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
    with target.staging(service, period, export_id) as folder:
        window = Window(*clamp_window(since, until), service, None)
        entries = _write_entries(audit, window, folder / "entries.parquet")
        _write_matches(audit, window, folder / "matches.parquet")
        comparison, compare_doc, compare_status = _compare(audit, service, since, until)
        if compare_doc is not None:
            _write_bytes(folder / "compare.json", orjson.dumps(compare_doc, option=orjson.OPT_INDENT_2, default=str))
        # one judgement: the report's verdict and checklist are this comparison's
        report = build_report(audit, since=since, until=until, service=service, out_dir=folder, formats=formats,
                              comparison=comparison)
        files = _inventory(folder)
        manifest = {
            "format": FORMAT, "complete": True, "service": service, "period": period,
            "window": {"since": format_rfc3339(since), "until": format_rfc3339(until)},
            "export_id": export_id, "generated_at": report.generated_at, "logaudit_version": __version__,
            "entries": entries, "project": project, "store": source or str(audit.store.root),
            "catalog_fingerprint": audit.catalog.fingerprint, "redacted": audit.redactor.enabled,
            "redaction": {"emails": audit.redactor.enabled and audit.redactor.emails,
                          "rules": [r.name for r in audit.redactor.rules]},
            "compare": compare_status, "files": files,
        }
        replaced = target.commit(service, period, export_id, folder, manifest)
    return PeriodExport(service=service, period=period, location=target.location(service, period),
                        export_id=export_id, entries=entries, files=files, replaced=replaced, compare=compare_status)


def _compare(audit: Audit, service: str, since: datetime, until: datetime
             ) -> tuple[Comparison | None, dict | None, dict[str, Any]]:
    """The comparison, compare.json content and a status for the manifest."""
    try:
        result = compare(audit, service=service, since=since, until=until)
    except LogauditError as err:
        return None, None, {"status": "skipped", "reason": audit.redactor.redact(err.message)}
    doc = audit.redactor.redact_tree(result.to_dict())  # templates and reasons quote log text
    return result, doc, {"status": "written", "verdict": doc.get("verdict"), "file": "compare.json"}


def _write_entries(audit: Audit, window: Window, path: Path) -> int:
    """The window's entries of one service, free-text columns redacted, as one Parquet file.

    Redaction is vectorised (pyarrow, RE2) per batch of rows: one scan of each text column finds
    the values that may hold a secret, and those of all columns go through the rules at once.
    """
    files = [str(f) for f in audit.store.entry_files(window.since, window.until)]
    texts = [f.name for f in ENTRY_SCHEMA if pa.types.is_string(f.type) and f.name not in UNREDACTED_COLUMNS]
    writer = pq.ParquetWriter(path, ENTRY_SCHEMA, compression="zstd")
    rows = 0
    try:
        if files:
            con = connect()
            try:
                # a bound beyond what a store holds is None (timeparse.clamp_window): no condition
                bounds = "".join(f" AND timestamp {op} ${name}" for op, name in ((">=", "since"), ("<", "until"))
                                 if getattr(window, name) is not None)
                params = {"files": files, "service": window.service,
                          **{k: getattr(window, k) for k in ("since", "until") if getattr(window, k) is not None}}
                rel = con.sql(f"""
                    SELECT {", ".join(ENTRY_SCHEMA.names)} FROM read_parquet($files, hive_partitioning = false)
                    WHERE service = $service{bounds}
                    ORDER BY timestamp, log_name, insert_id
                """, params=params)
                for batch in rel.to_arrow_reader(65_536):
                    batch = batch.cast(ENTRY_SCHEMA)
                    redacted = audit.redactor.redact_arrays([batch.column(name) for name in texts])
                    for name, column in zip(texts, redacted, strict=True):
                        batch = batch.set_column(ENTRY_SCHEMA.get_field_index(name), ENTRY_SCHEMA.field(name), column)
                    writer.write_batch(batch)
                    rows += batch.num_rows
            finally:
                con.close()
    finally:
        writer.close()
    return rows


def _write_matches(audit: Audit, window: Window, path: Path) -> int:
    table = audit.connection(window).sql(
        "SELECT log_name, insert_id, timestamp, revision, pattern_id, category FROM matches WHERE service = $service "
        "ORDER BY timestamp, log_name, insert_id, pattern_id", params={"service": window.service}).to_arrow_table()
    pq.write_table(table, path, compression="zstd")
    return table.num_rows


def _inventory(folder: Path) -> list[dict[str, Any]]:
    out = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
            os.fsync(fh.fileno())
        out.append({"path": path.relative_to(folder).as_posix(), "bytes": path.stat().st_size,
                    "sha256": digest.hexdigest()})
    return out


def _write_bytes(path: Path, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())



# ============================================================================ destinations
class _Target(abc.ABC):
    """Where exports go: a local directory or a gs:// prefix."""

    uri: str

    @abc.abstractmethod
    def locked(self) -> contextlib.AbstractContextManager[None]:
        """Hold the destination's lock (LockedError when another run has it)."""

    def recover(self) -> None:  # noqa: B027 - optional hook, nothing to do by default
        """Clean what a killed run left behind (called with the lock held)."""

    @abc.abstractmethod
    def staging(self, service: str, period: str, export_id: str) -> contextlib.AbstractContextManager[Path]:
        """A local folder to build the period's files in."""

    @abc.abstractmethod
    def commit(self, service: str, period: str, export_id: str, folder: Path, manifest: dict[str, Any]) -> bool:
        """Publish the built folder as the period, atomically; True when it replaced an earlier export."""

    @abc.abstractmethod
    def location(self, service: str, period: str) -> str:
        """Where the period lives (path or gs:// URI)."""


def _target(dest: str, *, storage_client: Any, endpoint: str | None, credentials_file: Any,
            lock_ttl: float) -> _Target:
    if dest.startswith("gs://"):
        return _GcsTarget(dest, client=storage_client, endpoint=endpoint, credentials_file=credentials_file,
                          lock_ttl=lock_ttl)
    if "://" in dest:
        raise UsageError(f"--out {dest}: only local directories and gs://BUCKET/PREFIX are supported")
    return _LocalTarget(Path(dest).expanduser())


# ---------------------------------------------------------------------------- local
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def exchange_paths(a: Path, b: Path) -> bool:
    """Swap two existing paths in one atomic step (Linux renameat2 RENAME_EXCHANGE).

    False when the C library or the file system does not support it (the caller falls back).
    """
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


class _LocalTarget(_Target):
    def __init__(self, root: Path) -> None:
        self.root = root
        self.uri = str(root)

    def _service_dir(self, service: str) -> Path:
        return _confined(self.root, service_folder(service))

    def location(self, service: str, period: str) -> str:
        return str(self._service_dir(service) / period)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise StoreError(f"--out {self.root}: cannot create the directory ({err.strerror})") from None
        if not self.root.is_dir():
            raise StoreError(f"--out {self.root}: not a directory")
        with FileLock(self.root / LOCK_NAME) as lock:
            if not lock.acquire(wait=False):
                raise LockedError(f"{self.root}: another logaudit export to this destination is running"
                                  f"{_lock_holder(lock.read())}; this run did nothing")
            lock.write(_lock_body())
            yield

    def recover(self) -> None:
        for service_dir in (p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            for leftover in service_dir.iterdir():
                if leftover.name.startswith(".staging-"):
                    shutil.rmtree(leftover, ignore_errors=True)
                elif leftover.name.startswith(".replaced-"):
                    period = leftover.name[len(".replaced-"):].rsplit("-", 2)[0]
                    final = service_dir / period
                    if final.exists():
                        shutil.rmtree(leftover, ignore_errors=True)
                    else:  # killed between the two renames of the fallback: put the old copy back
                        os.rename(leftover, final)

    @contextlib.contextmanager
    def staging(self, service: str, period: str, export_id: str) -> Iterator[Path]:
        service_dir = self._service_dir(service)
        final = _confined(self.root, service_dir.name, period)
        with _write_faults(final):
            service_dir.mkdir(parents=True, exist_ok=True)
            folder = service_dir / f".staging-{period}-{export_id}"
            folder.mkdir()
        try:
            with _write_faults(final):
                yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)  # gone after a commit; removes a failed run's files

    def commit(self, service: str, period: str, export_id: str, folder: Path, manifest: dict[str, Any]) -> bool:
        _write_bytes(folder / MANIFEST, orjson.dumps(manifest, option=orjson.OPT_INDENT_2))
        fsync_file(folder)
        service_dir = folder.parent
        final = service_dir / period
        replaced = final.exists()
        if not replaced:
            os.rename(folder, final)
        elif exchange_paths(folder, final):
            shutil.rmtree(folder)  # now holds the previous export
        else:
            old = service_dir / f".replaced-{period}-{export_id}"
            os.rename(final, old)
            os.rename(folder, final)
            shutil.rmtree(old)
        fsync_file(service_dir)
        return replaced


@contextlib.contextmanager
def _write_faults(where: Path) -> Iterator[None]:
    """A write the operating system refuses (disk full, quota, read-only) while building the
    period `where` becomes StoreWriteError naming the file (else the period)."""
    try:
        yield
    except OSError as err:
        if err.errno not in WRITE_ERRNOS:
            raise
        raise write_failure(err.filename or where, err, "the previous export of the period is unchanged") from None


def _lock_body(extra: dict[str, Any] | None = None) -> bytes:
    return orjson.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                         "started": format_rfc3339(datetime.now(UTC)), **(extra or {})})


def _lock_holder(data: bytes) -> str:
    try:
        info = orjson.loads(data)
        return f" (pid {info['pid']} on {info['host']}, started {info['started']})"
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return ""


# ---------------------------------------------------------------------------- Cloud Storage
def storage_client(*, endpoint: str | None = None, credentials_file: str | os.PathLike | None = None) -> Any:
    """A google-cloud-storage client allowed to write: the key file, else anonymous with an
    endpoint or STORAGE_EMULATOR_HOST, else Application Default Credentials."""
    from logaudit.sources.gcs import make_client

    return make_client(endpoint=endpoint, credentials_file=credentials_file, scopes=WRITE_SCOPES)


def _gcs_error(err: Exception, what: str) -> LogauditError:
    from google.api_core import exceptions as gexc

    if isinstance(err, gexc.NotFound):
        return SourceError(f"{what}: not found (404); does the bucket exist?")
    if isinstance(err, gexc.Forbidden | gexc.Unauthorized):
        return SourceError(f"{what}: permission denied ({getattr(err, 'code', 403)}); the account needs "
                           f"{WRITER_ROLE} on the bucket")
    code = getattr(err, "code", None)
    text = " ".join(str(err).split())[:300]
    return SourceError(f"{what}: Cloud Storage failed: {type(err).__name__}{f' ({code})' if code else ''}: {text}")


@contextlib.contextmanager
def _gcs_calls(what: str, *passthrough: type[BaseException]) -> Iterator[None]:
    """Turn google-cloud-storage / transport failures into SourceError (exit 5), except the
    `passthrough` exception types, which the caller handles."""
    import google.auth.exceptions
    import requests
    from google.api_core import exceptions as gexc

    try:
        yield
    except passthrough:
        raise
    except (gexc.GoogleAPICallError, requests.exceptions.RequestException) as err:
        raise _gcs_error(err, what) from None
    except google.auth.exceptions.GoogleAuthError as err:
        raise SourceError(f"{what}: credentials failed: {' '.join(str(err).split())[:200]}") from None


class _GcsTarget(_Target):
    def __init__(self, uri: str, *, client: Any, endpoint: str | None, credentials_file: Any, lock_ttl: float) -> None:
        self.bucket_name, prefix = parse_gs_uri(uri)
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.uri = f"gs://{self.bucket_name}/{self.prefix}".rstrip("/")
        self.client = client or storage_client(endpoint=endpoint, credentials_file=credentials_file)
        self.bucket = self.client.bucket(self.bucket_name)
        self.lock_ttl = lock_ttl
        self._lock_generation: int | None = None

    def location(self, service: str, period: str) -> str:
        return f"gs://{self.bucket_name}/{self._name(service_folder(service), period)}"

    def _name(self, *parts: str) -> str:
        """The object name of `parts` under the prefix; a segment that is empty, `.` or `..`
        (which tools mapping names to paths would resolve outside the prefix) is refused."""
        rest = "/".join(parts)
        if any(seg in ("", ".", "..") for seg in rest.split("/")):
            raise StoreError(f"gs://{self.bucket_name}/{self.prefix}{rest}: not a name inside the export prefix; "
                             "refusing to write there")
        return self.prefix + rest

    # -- lock
    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        self._acquire()
        try:
            yield
        finally:
            self._release()

    def _acquire(self) -> None:
        from google.api_core import exceptions as gexc

        name = self._name(LOCK_NAME)
        uri = f"gs://{self.bucket_name}/{name}"
        for _ in range(3):
            blob = self.bucket.blob(name)
            body = _lock_body({"expires": format_rfc3339(datetime.now(UTC) + timedelta(seconds=self.lock_ttl))})
            try:
                with _gcs_calls(uri, gexc.PreconditionFailed):
                    blob.upload_from_string(body, content_type="application/json", if_generation_match=0)
                self._lock_generation = blob.generation
                return
            except gexc.PreconditionFailed:
                pass
            with _gcs_calls(uri):
                held = self.bucket.get_blob(name)
            if held is None:
                continue  # released meanwhile: try again
            try:
                with _gcs_calls(uri, gexc.NotFound, gexc.PreconditionFailed):
                    data = held.download_as_bytes(if_generation_match=held.generation)
            except (gexc.NotFound, gexc.PreconditionFailed):
                continue
            expired = _lock_expired(data, held)
            if not expired:
                raise LockedError(f"{uri}: another logaudit export to this destination is running"
                                  f"{_lock_holder(data)}; this run did nothing")
            with contextlib.suppress(gexc.NotFound, gexc.PreconditionFailed), \
                    _gcs_calls(uri, gexc.NotFound, gexc.PreconditionFailed):
                held.delete(if_generation_match=held.generation)  # a killed run's lock: take it over
        raise LockedError(f"{uri}: could not take the lock (it keeps changing hands)")

    def _release(self) -> None:
        from google.api_core import exceptions as gexc

        if self._lock_generation is None:
            return
        with contextlib.suppress(gexc.NotFound, gexc.PreconditionFailed, LogauditError), \
                _gcs_calls(f"gs://{self.bucket_name}/{self._name(LOCK_NAME)}"):
            self.bucket.blob(self._name(LOCK_NAME)).delete(if_generation_match=self._lock_generation)
        self._lock_generation = None

    # -- build and publish
    @contextlib.contextmanager
    def staging(self, service: str, period: str, export_id: str) -> Iterator[Path]:
        with tempfile.TemporaryDirectory(prefix="logaudit-export-") as tmp, _write_faults(Path(tmp)):
            yield Path(tmp)

    def commit(self, service: str, period: str, export_id: str, folder: Path, manifest: dict[str, Any]) -> bool:
        from google.api_core import exceptions as gexc

        base = self._name(service_folder(service), period)
        manifest_name = f"{base}/{MANIFEST}"
        uploaded: list[str] = []
        manifest = dict(manifest, prefix=f"{export_id}/",
                        files=[dict(f, path=f"{export_id}/{f['path']}") for f in manifest["files"]])
        try:
            with _gcs_calls(f"gs://{self.bucket_name}/{base}/{export_id}/"):
                for f in manifest["files"]:
                    name = f"{base}/{f['path']}"
                    blob = self.bucket.blob(name)
                    blob.upload_from_filename(str(folder / f["path"].split("/", 1)[1]),
                                              content_type=_content_type(name), if_generation_match=0)
                    uploaded.append(name)
            with _gcs_calls(f"gs://{self.bucket_name}/{manifest_name}", gexc.PreconditionFailed):
                previous = self.bucket.get_blob(manifest_name)
                blob = self.bucket.blob(manifest_name)
                blob.cache_control = "no-cache"
                blob.upload_from_string(orjson.dumps(manifest, option=orjson.OPT_INDENT_2),
                                        content_type="application/json",
                                        if_generation_match=previous.generation if previous else 0)
        except gexc.PreconditionFailed:
            self._delete(uploaded)
            raise StoreError(f"gs://{self.bucket_name}/{manifest_name}: changed while this run held the lock; "
                             "is another tool writing there?") from None
        except BaseException:
            with contextlib.suppress(Exception):
                self._delete(uploaded)  # best effort; the next run of this period removes the rest
            raise
        # published: drop the previous export and anything a killed run left under this period
        with _gcs_calls(f"gs://{self.bucket_name}/{base}/"):
            stale = [b.name for b in self.client.list_blobs(self.bucket_name, prefix=f"{base}/")
                     if b.name != manifest_name and not b.name.startswith(f"{base}/{export_id}/")]
        with contextlib.suppress(LogauditError):
            self._delete(stale)
        return previous is not None

    def _delete(self, names: list[str]) -> None:
        from google.api_core import exceptions as gexc

        for name in names:
            with contextlib.suppress(gexc.NotFound), _gcs_calls(f"gs://{self.bucket_name}/{name}", gexc.NotFound):
                self.bucket.blob(name).delete()


def _lock_expired(data: bytes, blob: Any) -> bool:
    try:
        expires = orjson.loads(data)["expires"]
        return datetime.fromisoformat(expires.replace("Z", "+00:00")) <= datetime.now(UTC)
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
        created = getattr(blob, "time_created", None)
        return created is not None and created + timedelta(seconds=DEFAULT_LOCK_TTL) <= datetime.now(UTC)


def _content_type(name: str) -> str:
    return {"json": "application/json", "md": "text/markdown; charset=utf-8", "html": "text/html; charset=utf-8",
            "png": "image/png", "parquet": "application/vnd.apache.parquet"}.get(name.rsplit(".", 1)[-1],
                                                                                "application/octet-stream")


# ============================================================================ reading exports
def read_manifest(dest: str | os.PathLike, service: str, period: str, *, client: Any = None) -> dict | None:
    """The manifest of a complete export of `service` (its name, as in the logs), or None when
    the period is missing or incomplete."""
    dest = str(dest)
    if dest.startswith("gs://"):
        from google.api_core import exceptions as gexc

        target = _GcsTarget(dest, client=client, endpoint=None, credentials_file=None, lock_ttl=0)
        name = target._name(service_folder(service), period, MANIFEST)
        try:
            with _gcs_calls(f"gs://{target.bucket_name}/{name}", gexc.NotFound):
                data = target.bucket.blob(name).download_as_bytes()
        except gexc.NotFound:
            return None
        return _complete(data)
    return _read_local_manifest(_confined(Path(dest).expanduser(), service_folder(service), period) / MANIFEST)


def _read_local_manifest(path: Path) -> dict | None:
    return _complete(path.read_bytes()) if path.is_file() else None


def _complete(data: bytes) -> dict | None:
    manifest = orjson.loads(data)
    return manifest if manifest.get("complete") and manifest.get("format") == FORMAT else None


def list_exports(dest: str | os.PathLike, service: str | None = None) -> list[tuple[str, str]]:
    """(service, period) of every complete local export under `dest`, sorted; the service as
    its manifest names it (folders of names that are not plain are encoded, see `service_folder`)."""
    root = Path(dest).expanduser()
    out = []
    for service_dir in sorted(p for p in root.glob("*") if p.is_dir() and not p.name.startswith(".")):
        if service is not None and service_dir.name != service_folder(service):
            continue
        for period_dir in sorted(p for p in service_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
            manifest = _read_local_manifest(period_dir / MANIFEST)
            if manifest is not None:
                out.append((manifest.get("service", service_dir.name), period_dir.name))
    return sorted(out)


__all__ = ["DEFAULT_ALIGN", "FORMAT", "LOCK_NAME", "MANIFEST", "ExportResult", "PeriodExport", "exchange_paths",
           "export", "export_window", "floor_time", "list_exports", "period_name", "read_manifest", "service_folder",
           "storage_client"]
