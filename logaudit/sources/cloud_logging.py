"""The Cloud Logging client side of a pull: the query filter, the paced pager and its retries.

`build_filter` turns the options into one Logging query; `Pager` POSTs `entries:list` (up to 1000
entries a page, oldest first) through the official client's REST connection on its own thread,
paced by `Pacer` and retrying what can be retried; `logaudit.store.pull` writes the pages to the
store.

>>> build_filter(services=["hello"], severity_at_least="error")
'resource.type="cloud_run_revision" AND resource.labels.service_name="hello" AND severity>=ERROR'
"""

from __future__ import annotations

import contextlib
import os
import queue
import random
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from logaudit.core.errors import SourceError, UsageError
from logaudit.core.timeparse import format_ns, parse_rfc3339_ns, parse_time, to_ns
from logaudit.sources.credentials import CREDENTIALS_HINT, google_credentials
from logaudit.sources.severity import SEVERITY_NUM

DEFAULT_ENDPOINT = "https://logging.googleapis.com"
ENDPOINT_ENV = "LOGAUDIT_LOGGING_ENDPOINT"
RESOURCE_TYPE = "cloud_run_revision"
MAX_PAGE_SIZE = 1000
MAX_FILTER_CHARS = 20_000
DEFAULT_SINCE = timedelta(days=1)
READ_SCOPES = ("https://www.googleapis.com/auth/logging.read",)
VIEWER_ROLE = "roles/logging.viewer"


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DAY_NS = 86_400 * 1_000_000_000


# --------------------------------------------------------------------------- the filter
def quote(value: str) -> str:
    """A Logging query-language string literal: `"..."` with `\\` and `"` escaped."""
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def as_ns(value: datetime | int | str | None) -> int | None:
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
    lo, hi = as_ns(since), as_ns(until)
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


# --------------------------------------------------------------------------- pacing and retries
class _Stopped(Exception):
    """The pull is being torn down (Ctrl-C or an error elsewhere)."""


class _TokenRejected(Exception):
    """400 on a request that carried a page token: the token expired; restart from the boundary."""


class GiveUp(Exception):
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


class Pager:
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
                raise GiveUp(detail, now - first_failure)
            self.pacer.hold_until(now + delay)
            waiting_for = "quota" if kind == "429" else "retry"

    def _backoff(self, attempt: int, base: float) -> float:
        """Exponential backoff with jitter: uniform in [d/2, d], d = base * 2^(attempt-1), capped."""
        cap = min(self.max_backoff, base * 2 ** min(attempt - 1, 30))
        return self.rng.uniform(cap / 2, cap)


__all__ = ["DEFAULT_ENDPOINT", "ENDPOINT_ENV", "GiveUp", "Pacer", "Pager", "PullPlan", "PullProgress", "as_ns", "build_filter", "make_client", "quote", "resolve_endpoint"]
