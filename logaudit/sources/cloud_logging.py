"""Pull Cloud Run entries from the Cloud Logging API into the store: every entry exactly once,
as fast as the read quota allows, resumable after any interruption.

How a pull works
----------------
* `build_filter` turns the options into one Logging query: resource type, service and revision
  labels, time bounds, severity and the user's own expression, joined with `AND`.
* A pager thread POSTs `entries:list` (`orderBy: "timestamp asc"`, up to 1000 entries a page)
  through the official client's REST connection, so entries arrive as the raw JSON the API sent
  (nanosecond timestamps, receiveTimestamp). Requests are paced by a token bucket (a burst of one,
  then one request every 60/N s). 429 is retried after the server's RetryInfo / Retry-After, or
  with exponential backoff; 500/502/503/504, connection resets, timeouts and truncated bodies with
  exponential backoff and jitter; a request that keeps failing for `max_retry_seconds` ends the
  pull with a message saying how far it got.
* The calling thread writes pages to the store every few pages (`flush_entries` / `flush_seconds`),
  deduplicated on (logName, insertId, timestamp), and after each durable write saves a cursor,
  `STORE/cursors/<key>.json`, keyed by the project and the filter without its time bounds. It
  records the range covered and the last timestamp written (the boundary) with the keys seen there.
* A later pull of the same query whose `--since` falls inside the covered range starts again at
  `timestamp>="<boundary>"`: page tokens are never carried across runs (they expire). Entries at
  the boundary come back and are dropped by the deduplication, so none is lost or stored twice,
  whether the previous run finished, failed, was interrupted with Ctrl-C or killed outright.

>>> build_filter(services=["hello"], severity_at_least="error")
'resource.type="cloud_run_revision" AND resource.labels.service_name="hello" AND severity>=ERROR'
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
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from logaudit.errors import LogauditError, SourceError, UsageError
from logaudit.normalize import normalize_batch
from logaudit.schema import DEDUP_KEY, SEVERITY_NUM
from logaudit.sources.credentials import CREDENTIALS_HINT, google_credentials
from logaudit.store import (
    MAX_REJECT_RECORDS,
    IngestReport,
    SourceCounts,
    Store,
    atomic_write,
    default_store_path,
    reject_records,
)
from logaudit.timeparse import format_ns, parse_rfc3339_ns, parse_time, to_ns

DEFAULT_ENDPOINT = "https://logging.googleapis.com"
ENDPOINT_ENV = "LOGAUDIT_LOGGING_ENDPOINT"
RESOURCE_TYPE = "cloud_run_revision"
MAX_PAGE_SIZE = 1000
MAX_FILTER_CHARS = 20_000
DEFAULT_SINCE = timedelta(days=1)
READ_SCOPES = ("https://www.googleapis.com/auth/logging.read",)
VIEWER_ROLE = "roles/logging.viewer"
CURSOR_VERSION = 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DAY_NS = 86_400 * 1_000_000_000


# --------------------------------------------------------------------------- the filter
def quote(value: str) -> str:
    """A Logging query-language string literal: `"..."` with `\\` and `"` escaped."""
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _as_ns(value: datetime | int | str | None) -> int | None:
    if value is None or isinstance(value, int):
        return value
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise UsageError(f"time {value!r} has no time zone")
        return to_ns(value)
    return to_ns(parse_time(value))


def _severity(level: str | None) -> str | None:
    if level is None:
        return None
    name = str(level).strip().upper()
    if name not in SEVERITY_NUM:
        raise UsageError(f"--severity-at-least {level!r}: not a Cloud Logging severity",
                         hint="one of " + ", ".join(SEVERITY_NUM))
    return name


def _names(values: str | Iterable[str] | None) -> list[str]:
    if values is None:
        return []
    if isinstance(values, str):
        values = [values]
    out: list[str] = []
    for v in values:
        if not isinstance(v, str) or not v.strip():
            raise UsageError(f"empty service or revision name: {v!r}")
        if v.strip() not in out:
            out.append(v.strip())
    return sorted(out)


def _any_of(field_name: str, values: list[str]) -> str:
    terms = [f"{field_name}={quote(v)}" for v in values]
    return terms[0] if len(terms) == 1 else "(" + " OR ".join(terms) + ")"


def build_filter(*, services: str | Iterable[str] | None = (), revisions: str | Iterable[str] | None = (),
                 since: datetime | int | str | None = None, until: datetime | int | str | None = None,
                 severity_at_least: str | None = None, extra_filter: str | None = None,
                 resource_type: str | None = RESOURCE_TYPE) -> str:
    """The Logging query for a pull: resource type, service/revision labels, time bounds
    (`since` inclusive, `until` exclusive; datetimes or epoch nanoseconds), severity, and the
    user's expression in parentheses, joined with ` AND `. Several services (or revisions) are
    OR'ed in parentheses, sorted."""
    parts: list[str] = []
    if resource_type:
        parts.append(f"resource.type={quote(resource_type)}")
    svc, rev = _names(services), _names(revisions)
    if svc:
        parts.append(_any_of("resource.labels.service_name", svc))
    if rev:
        parts.append(_any_of("resource.labels.revision_name", rev))
    lo, hi = _as_ns(since), _as_ns(until)
    if lo is not None:
        parts.append(f"timestamp>={quote(format_ns(lo))}")
    if hi is not None:
        parts.append(f"timestamp<{quote(format_ns(hi))}")
    level = _severity(severity_at_least)
    if level:
        parts.append(f"severity>={level}")
    if extra_filter is not None and extra_filter.strip():
        parts.append(f"({extra_filter.strip()})")
    text = " AND ".join(parts)
    if len(text) > MAX_FILTER_CHARS:
        raise UsageError(f"the filter is {len(text)} characters; Cloud Logging accepts at most {MAX_FILTER_CHARS}")
    return text


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


# --------------------------------------------------------------------------- the plan
@dataclass
class PullPlan:
    """What a pull will ask for; `body` is the first request exactly as sent."""

    project: str
    endpoint: str
    base_filter: str
    filter: str
    since_ns: int
    until_ns: int | None
    start_ns: int
    covered_from_ns: int
    resumed_from: str | None
    cursor_file: str | None
    body: dict[str, Any]
    page_size: int

    @property
    def url(self) -> str:
        return f"{self.endpoint.rstrip('/')}/v2/entries:list"

    @property
    def up_to_date(self) -> bool:
        """True when the covered range already reaches `until`: nothing to ask for."""
        return self.until_ns is not None and self.start_ns >= self.until_ns

    def to_dict(self) -> dict[str, Any]:
        return {
            "project": self.project, "endpoint": self.endpoint, "method": "POST", "url": self.url,
            "filter": self.filter, "base_filter": self.base_filter, "since": format_ns(self.since_ns),
            "until": format_ns(self.until_ns) if self.until_ns is not None else None,
            "resumed_from": self.resumed_from, "cursor": self.cursor_file, "up_to_date": self.up_to_date,
            "body": self.body,
        }


def resolve_endpoint(endpoint: str | None) -> str | None:
    """--endpoint, else $LOGAUDIT_LOGGING_ENDPOINT, else None (the real API). Must be http(s)://."""
    value = endpoint if endpoint else os.environ.get(ENDPOINT_ENV) or None
    if value is None:
        return None
    value = value.strip().rstrip("/")
    if not value.startswith(("http://", "https://")):
        raise UsageError(f"--endpoint {value!r}: expected a URL starting with http:// or https://",
                         hint="e.g. --endpoint http://127.0.0.1:8085")
    return value


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
    since_ns = _as_ns(since_dt)
    until_ns = _as_ns(until_dt)
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


# --------------------------------------------------------------------------- the client
def make_client(project: str, *, endpoint: str | None = None, credentials_file: str | os.PathLike | None = None):
    """A google-cloud-logging Client on REST. Credentials: the key file; else anonymous when an
    endpoint is given; else Application Default Credentials."""
    from google.cloud import logging as gcl

    endpoint = resolve_endpoint(endpoint)
    credentials = google_credentials(credentials_file, READ_SCOPES, anonymous=bool(endpoint))
    options = {"api_endpoint": endpoint} if endpoint else None
    return gcl.Client(project=project, credentials=credentials, _use_grpc=False, client_options=options)


# --------------------------------------------------------------------------- progress and report
@dataclass
class PullProgress:
    """Live counters (updated by the pager and the writer; read by a progress display)."""

    project: str
    start_ns: int
    end_ns: int
    started: float = field(default_factory=time.monotonic)
    requests: int = 0
    pages: int = 0
    entries: int = 0
    new_rows: int = 0
    duplicates: int = 0
    rejected: int = 0
    position_ns: int | None = None
    pacing_wait_seconds: float = 0.0
    quota_backoff_seconds: float = 0.0
    retry_backoff_seconds: float = 0.0
    retries: dict[str, int] = field(default_factory=dict)
    done: bool = False

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    @property
    def quota_wait_seconds(self) -> float:
        """Time spent waiting for the quota: pacing plus 429 backoff."""
        return self.pacing_wait_seconds + self.quota_backoff_seconds

    @property
    def rate(self) -> float:
        return self.entries / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def fraction(self) -> float | None:
        """Share of the time window read so far (by timestamp), or None before the first entry."""
        if self.done:
            return 1.0
        if self.position_ns is None or self.end_ns <= self.start_ns:
            return None
        return min(1.0, max(0.0, (self.position_ns - self.start_ns) / (self.end_ns - self.start_ns)))

    @property
    def eta_seconds(self) -> float | None:
        f = self.fraction
        if not f or f >= 1.0:
            return 0.0 if f == 1.0 else None
        return self.elapsed * (1 - f) / f


PullProgressCallback = Callable[[PullProgress], None]


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


# --------------------------------------------------------------------------- pacing and retries
class _Stopped(Exception):
    """The pull is being torn down (Ctrl-C or an error elsewhere)."""


class _TokenRejected(Exception):
    """400 on a request that carried a page token: the token expired; restart from the boundary."""


class _GiveUp(Exception):
    def __init__(self, detail: str, seconds: float) -> None:
        super().__init__(detail)
        self.detail, self.seconds = detail, seconds


class _Malformed(ValueError):
    """A 200 response that is not a complete entries:list JSON object (truncated body)."""


class Pacer:
    """Client-side pacing to N requests a minute (GCRA, the virtual-scheduling token bucket).

    The first request goes at once, then one every 60/N s on a fixed schedule. A request that
    runs late (the previous response was slow) is made up by sending the next one up to half an
    interval early, so the average rate stays at N; over any stretch no more requests go out
    than the schedule allows plus one, with half an interval of margin for the server's clock.
    After a backoff hold the schedule restarts from the hold with nothing banked.
    """

    #: How far ahead of its slot a request may go to make up for a late one, in intervals.
    TOLERANCE = 0.5

    def __init__(self, per_minute: float) -> None:
        if per_minute <= 0:
            raise UsageError(f"--max-requests-per-minute {per_minute}: must be positive")
        self.interval = 60.0 / per_minute
        self._tat: float | None = None  # theoretical arrival time: the next slot plus the tolerance

    def hold_until(self, when: float) -> None:
        """No request before `when` (monotonic seconds), and none banked after it: for backoff."""
        due = when + self.interval * self.TOLERANCE
        self._tat = due if self._tat is None else max(self._tat, due)

    def acquire(self, stop: threading.Event) -> float:
        """Wait for the next slot; return the seconds waited. Raises _Stopped when `stop` is set."""
        now = time.monotonic()
        if self._tat is None:
            self._tat = now + self.interval * self.TOLERANCE
        allowed = self._tat - self.interval * self.TOLERANCE
        wait = allowed - now
        if wait > 0:
            if stop.wait(wait):
                raise _Stopped
            now = allowed
        if stop.is_set():
            raise _Stopped
        self._tat = max(self._tat, now) + self.interval
        return max(wait, 0.0)


def _retry_delay(err: Exception) -> float | None:
    """Seconds from a google.rpc.RetryInfo detail or a Retry-After header, if the server sent one."""
    for detail in getattr(err, "details", None) or ():
        if isinstance(detail, dict) and detail.get("@type", "").endswith("google.rpc.RetryInfo"):
            delay = detail.get("retryDelay")
            if isinstance(delay, str) and delay.endswith("s"):
                with contextlib.suppress(ValueError):
                    return max(0.0, float(delay[:-1]))
            if isinstance(delay, dict):
                with contextlib.suppress(TypeError, ValueError):
                    return max(0.0, float(delay.get("seconds", 0)) + float(delay.get("nanos", 0)) / 1e9)
    response = getattr(err, "response", None)
    header = response.headers.get("Retry-After") if response is not None and hasattr(response, "headers") else None
    if header:
        with contextlib.suppress(ValueError):
            return max(0.0, float(header))
    return None


def _server_message(err: Exception) -> str:
    response = getattr(err, "response", None)
    if response is not None:
        with contextlib.suppress(Exception):
            msg = response.json()["error"]["message"]
            if isinstance(msg, str) and msg:
                return msg
    text = getattr(err, "message", None) or str(err)
    return text.split(": ", 1)[1] if text.startswith(("POST ", "GET ")) and ": " in text else text


class _Pager:
    """Fetches pages in order on its own thread and hands them to the writer through a queue."""

    def __init__(self, client: Any, plan: PullPlan, common: dict[str, Any], stats: PullProgress, *,
                 pacer: Pacer, stop: threading.Event, out: queue.Queue, max_retry_seconds: float,
                 request_timeout: float, backoff_initial: float, max_backoff: float,
                 rng: random.Random | None = None) -> None:
        self.client, self.plan, self.common, self.stats = client, plan, common, stats
        self.pacer, self.stop, self.out = pacer, stop, out
        self.max_retry_seconds, self.request_timeout = max_retry_seconds, request_timeout
        self.backoff_initial, self.max_backoff = backoff_initial, max_backoff
        self.rng = rng or random.Random()
        self.last_error = ""

    # the thread body
    def run(self) -> None:
        try:
            self._pages()
            self._put(("done", None))
        except _Stopped:
            pass
        except BaseException as err:  # handed to the writer, which raises it after saving progress
            with contextlib.suppress(_Stopped):
                self._put(("error", err))

    def _put(self, item: tuple[str, Any]) -> None:
        while True:
            try:
                self.out.put(item, timeout=0.2)
                return
            except queue.Full:
                if self.stop.is_set():
                    raise _Stopped from None

    def _pages(self) -> None:
        body = dict(self.plan.body)
        boundary = self.plan.start_ns
        restarts = 0
        while True:
            try:
                data = self._request(body)
            except _TokenRejected:
                restarts += 1
                if restarts > 5:
                    raise SourceError("Cloud Logging keeps rejecting page tokens (400) for this query",
                                      hint="re-run the same command to resume from the stored boundary") from None
                query = build_filter(since=boundary, until=self.plan.until_ns, **self.common)
                body = {**self.plan.body, "filter": query}
                continue
            entries = data.get("entries") or []
            token = data.get("nextPageToken") or None
            if entries:
                restarts = 0
                with contextlib.suppress(ValueError, TypeError, KeyError):
                    boundary = max(boundary, parse_rfc3339_ns(entries[-1]["timestamp"]))
                self.stats.position_ns = boundary
            self.stats.pages += 1
            self.stats.entries += len(entries)
            self._put(("page", entries))
            if not token:
                return
            body = {**body, "pageToken": token}

    def _request(self, body: dict[str, Any]) -> dict[str, Any]:
        import google.auth.exceptions
        import requests
        from google.api_core import exceptions as gexc

        first_failure: float | None = None
        attempt = 0
        waiting_for = "pacing"
        while True:
            waited = self.pacer.acquire(self.stop)
            if waiting_for == "quota":
                self.stats.quota_backoff_seconds += waited
            elif waiting_for == "retry":
                self.stats.retry_backoff_seconds += waited
            else:
                self.stats.pacing_wait_seconds += waited
            self.stats.requests += 1
            try:
                raw = self.client._connection.api_request(
                    method="POST", path="/entries:list", data=body, expect_json=False, timeout=self.request_timeout)
                data = orjson.loads(raw) if raw else None
                if not isinstance(data, dict) or not isinstance(data.get("entries", []), list):
                    raise _Malformed("response is not an entries:list object")
                return data
            except gexc.TooManyRequests as err:  # 429 (ResourceExhausted is its gRPC subclass)
                kind, delay = "429", _retry_delay(err)
                if delay is None:
                    delay = self._backoff(attempt + 1, max(self.pacer.interval, self.backoff_initial))
                detail = f"429 Too Many Requests: {_server_message(err)}"
            except gexc.BadRequest as err:
                if "pageToken" in body:
                    raise _TokenRejected from err
                raise SourceError(
                    f"Cloud Logging rejected the query (400 Bad Request): {_server_message(err)}\n  filter: {body.get('filter')}",
                    hint="check the --filter expression (Logging query language: quote strings, AND/OR/NOT in capitals); "
                         "`logaudit pull --dry-run` prints the whole filter") from None
            except gexc.Unauthorized as err:
                raise SourceError(f"Cloud Logging did not accept the credentials (401 Unauthorized): {_server_message(err)}",
                                  hint=CREDENTIALS_HINT) from None
            except gexc.Forbidden as err:
                p = self.plan.project
                raise SourceError(
                    f"permission denied reading the logs of project {p} (403 Forbidden): {_server_message(err)}",
                    hint=f"the account needs the role {VIEWER_ROLE} (Logs Viewer) on project {p}: "
                         f"gcloud projects add-iam-policy-binding {p} --member=user:YOU@example.com --role={VIEWER_ROLE}") from None
            except gexc.NotFound as err:
                raise SourceError(f"project {self.plan.project} not found (404 Not Found): {_server_message(err)}",
                                  hint="--project takes the project ID (not its name or number)") from None
            except gexc.ServerError as err:
                if getattr(err, "code", 500) == 501:
                    raise SourceError(f"Cloud Logging: {_server_message(err)} (501)") from None
                kind, delay = str(getattr(err, "code", 500)), None
                detail = f"{getattr(err, 'code', 500)} {type(err).__name__}: {_server_message(err)}"
            except gexc.GoogleAPICallError as err:
                raise SourceError(f"Cloud Logging refused the request ({getattr(err, 'code', '?')}): {_server_message(err)}") from None
            except google.auth.exceptions.RefreshError as err:
                raise SourceError(f"the Google credentials could not be refreshed: {err}", hint=CREDENTIALS_HINT) from None
            except google.auth.exceptions.DefaultCredentialsError as err:
                raise SourceError("no Google Cloud credentials found (Application Default Credentials)",
                                  hint=CREDENTIALS_HINT) from err
            except (requests.exceptions.InvalidURL, requests.exceptions.InvalidSchema,
                    requests.exceptions.MissingSchema) as err:
                raise UsageError(f"--endpoint: {err}") from None
            except requests.exceptions.Timeout as err:
                kind, delay, detail = "timeout", None, f"timeout: {err}"
            except (requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError,
                    requests.exceptions.ContentDecodingError, google.auth.exceptions.TransportError) as err:
                kind, delay, detail = "connection", None, f"connection error: {err}"
            except (orjson.JSONDecodeError, _Malformed) as err:
                kind, delay, detail = "truncated", None, f"truncated or malformed response: {err}"
            now = time.monotonic()
            first_failure = now if first_failure is None else first_failure
            attempt += 1
            self.stats.retries[kind] = self.stats.retries.get(kind, 0) + 1
            self.last_error = detail
            if delay is None:
                delay = self._backoff(attempt, self.backoff_initial)
            if now + delay - first_failure > self.max_retry_seconds:
                raise _GiveUp(detail, now - first_failure)
            self.pacer.hold_until(now + delay)
            waiting_for = "quota" if kind == "429" else "retry"

    def _backoff(self, attempt: int, base: float) -> float:
        """Exponential backoff with jitter: uniform in [d/2, d], d = base * 2^(attempt-1), capped."""
        cap = min(self.max_backoff, base * 2 ** min(attempt - 1, 30))
        return self.rng.uniform(cap / 2, cap)


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
        pager = _Pager(client, plan, common, stats, pacer=Pacer(max_requests_per_minute), stop=stop, out=pages,
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
        except _GiveUp as err:
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
    value = value or datetime.now(UTC)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


__all__ = [
    "DEFAULT_ENDPOINT",
    "ENDPOINT_ENV",
    "Cursor",
    "Pacer",
    "PullPlan",
    "PullProgress",
    "PullReport",
    "build_filter",
    "cursor_path",
    "load_cursor",
    "make_client",
    "plan_pull",
    "pull",
    "quote",
    "resolve_endpoint",
]
