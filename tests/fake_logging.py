"""A fake Cloud Logging REST endpoint on 127.0.0.1 for driving `logaudit pull --endpoint`.

It speaks what the real `entries:list` speaks, so the official client library talks to it
unmodified: `POST /v2/entries:list?prettyPrint=false` with `{"resourceNames", "filter",
"orderBy", "pageSize", "pageToken"}`, answering `{"entries": [...], "nextPageToken": "..."}`
and Google's error envelope `{"error": {"code", "message", "status", "details"}}`.

The filter language is a working subset of the Logging query language: comparisons
`FIELD OP VALUE` (`= != > >= < <= :` and `=~ !~`) on dotted fields, `AND`, `OR`, `NOT`/`-`,
parentheses and implicit AND, with the real precedence (NOT, then OR, then AND). `timestamp`
and `receiveTimestamp` compare as instants (nanoseconds), `severity` by level, numbers as numbers.

Faults, for the tests: `faults={request_number: spec}` (1-based) or `faults=callable(number, body)
-> spec | None`, plus `random_faults={spec: probability}` with a seed. Specs:

==================  ============================================================================
`429`               RESOURCE_EXHAUSTED with an ErrorInfo detail, no retry information
`429:0.3`           ... with `google.rpc.RetryInfo` `retryDelay: "0.3s"`
`429-header:0.3`    ... with an HTTP `Retry-After: 0.3` header instead
`500` `502` ...     an error with that status (500, 502, 503, 504, 400, 401, 403, 404)
`reset`             a 200 whose body is cut off halfway by a TCP reset
`short`             a 200 announcing more bytes than it sends, then closing the connection
`truncate`          a 200 with a complete HTTP body holding half a JSON document
`hang:2`            waits 2 s before answering normally (for client timeouts)
`expire-token`      400 "page token expired" when the request carries a page token
==================  ============================================================================

A quota: `quota_per_minute=N` refuses requests beyond a token bucket of N per minute (capacity
`quota_burst`) with a real-looking 429. Every request body is recorded in `.requests`.
"""

from __future__ import annotations

import base64
import calendar
import contextlib
import hashlib
import json
import random
import re
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson

SEVERITIES = {"DEFAULT": 0, "DEBUG": 100, "INFO": 200, "NOTICE": 300, "WARNING": 400, "ERROR": 500,
              "CRITICAL": 600, "ALERT": 700, "EMERGENCY": 800}
STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
          429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 502: "UNAVAILABLE", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}
_TS = re.compile(r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:\d{2})", re.ASCII)


def ts_ns(text: str) -> int:
    """RFC 3339 -> epoch nanoseconds (an independent implementation, on purpose)."""
    m = _TS.fullmatch(text)
    if not m:
        raise ValueError(f"bad timestamp {text!r}")
    y, mo, d, h, mi, s, frac, tz = m.groups()
    secs = calendar.timegm((int(y), int(mo), int(d), int(h), int(mi), int(s)))
    if tz not in ("Z", "z"):
        secs -= (1 if tz[0] == "+" else -1) * (int(tz[1:3]) * 3600 + int(tz[4:6]) * 60)
    return secs * 10**9 + int((frac or "0").ljust(9, "0"))


# ----------------------------------------------------------------------------- the filter language
class FilterError(ValueError):
    pass


_TOKEN = re.compile(r"""
    \s*(?:
      (?P<lp>\() | (?P<rp>\)) |
      (?P<op>>=|<=|!=|=~|!~|=|>|<|:) |
      (?P<str>"(?:[^"\\]|\\.)*") |
      (?P<word>[^\s()"=<>!:]+)
    )""", re.VERBOSE)


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise FilterError(f"Unparseable filter: syntax error at column {pos + 1}")
        kind = m.lastgroup
        value = m.group(kind)
        if kind == "str":
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        out.append((kind, value))
        pos = m.end()
    return out


class _Parser:
    def __init__(self, text: str) -> None:
        self.toks = _tokens(text)
        self.i = 0

    def peek(self) -> tuple[str, str] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self) -> tuple[str, str]:
        tok = self.peek()
        if tok is None:
            raise FilterError("Unparseable filter: unexpected end of filter")
        self.i += 1
        return tok

    def parse(self) -> Callable[[dict], bool]:
        if not self.toks:
            return lambda e: True
        node = self.conj()
        if self.peek() is not None:
            raise FilterError(f"Unparseable filter: unexpected {self.peek()[1]!r}")
        return node

    def conj(self) -> Callable[[dict], bool]:  # AND (explicit or implicit) binds loosest
        terms = [self.disj()]
        while (tok := self.peek()) is not None and tok[0] != "rp":
            if tok == ("word", "AND"):
                self.take()
            terms.append(self.disj())
        return terms[0] if len(terms) == 1 else (lambda e: all(t(e) for t in terms))

    def disj(self) -> Callable[[dict], bool]:
        terms = [self.unary()]
        while self.peek() == ("word", "OR"):
            self.take()
            terms.append(self.unary())
        return terms[0] if len(terms) == 1 else (lambda e: any(t(e) for t in terms))

    def unary(self) -> Callable[[dict], bool]:
        tok = self.take()
        if tok == ("word", "NOT"):
            inner = self.unary()
            return lambda e: not inner(e)
        if tok[0] == "word" and tok[1].startswith("-") and len(tok[1]) > 1:
            self.toks[self.i - 1] = ("word", tok[1][1:])
            self.i -= 1
            inner = self.unary()
            return lambda e: not inner(e)
        if tok[0] == "lp":
            inner = self.conj()
            if self.take()[0] != "rp":
                raise FilterError("Unparseable filter: missing )")
            return inner
        if tok[0] != "word":
            raise FilterError(f"Unparseable filter: unexpected {tok[1]!r}")
        nxt = self.peek()
        if nxt is None or nxt[0] != "op":  # a bare value: global search
            needle = tok[1].lower()
            return lambda e: needle in json.dumps(e).lower()
        op = self.take()[1]
        kind, value = self.take()
        if kind not in ("str", "word"):
            raise FilterError(f"Unparseable filter: expected a value after {tok[1]}{op}")
        return _comparison(tok[1], op, value)


def _get(entry: dict, path: str) -> Any:
    cur: Any = entry
    for part in path.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    return cur


def _comparison(path: str, op: str, value: str) -> Callable[[dict], bool]:
    if path in ("timestamp", "receiveTimestamp"):
        try:
            want = ts_ns(value)
        except ValueError as err:
            raise FilterError(f"Invalid timestamp {value!r}") from err

        def key(e: dict) -> Any:
            v = e.get(path)
            return ts_ns(v) if isinstance(v, str) else None
    elif path == "severity":
        if value.upper() not in SEVERITIES:
            raise FilterError(f"Invalid severity {value!r}")
        want = SEVERITIES[value.upper()]

        def key(e: dict) -> Any:
            return SEVERITIES.get(str(e.get("severity") or "DEFAULT").upper(), 0)
    else:
        want = value

        def key(e: dict) -> Any:
            return _get(e, path)

    def compare(e: dict) -> bool:
        got = key(e)
        if op == ":":
            return got is not None and str(want).lower() in (json.dumps(got) if isinstance(got, dict | list) else str(got)).lower()
        if op in ("=~", "!~"):
            found = got is not None and re.search(str(want), str(got)) is not None
            return found if op == "=~" else not found
        if got is None:
            return op == "!="
        a, b = got, want
        if not isinstance(a, int) or not isinstance(b, int):
            try:
                a, b = float(a), float(b)
            except (TypeError, ValueError):
                a, b = str(a), str(b)
        return {"=": a == b, "!=": a != b, ">": a > b, ">=": a >= b, "<": a < b, "<=": a <= b}[op]

    return compare


def compile_filter(text: str) -> Callable[[dict], bool]:
    return _Parser(text or "").parse()


# ----------------------------------------------------------------------------- the server
@dataclass
class Request:
    number: int
    at: float
    body: dict
    status: int = 200
    fault: str | None = None
    returned: list[dict] = field(default_factory=list)


@dataclass
class FakeLogging:
    """The fake server. Use as a context manager; `url` is what `--endpoint` takes."""

    entries: list[dict] = field(default_factory=list)
    project: str = "my-project"
    quota_per_minute: float | None = None
    quota_burst: float = 2.0
    faults: dict[int, str] | Callable[[int, dict], str | None] | None = None
    random_faults: dict[str, float] | None = None
    seed: int = 0
    token_ttl: float | None = None

    def __post_init__(self) -> None:
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._tokens = self.quota_burst
        self._refilled = time.monotonic()
        self._cache: dict[tuple[str, str], list[dict]] = {}
        self._sorted: list[tuple[int, str, int]] = []
        self._set_entries(self.entries)
        self.server: ThreadingHTTPServer | None = None

    # -- data
    def _set_entries(self, entries: Iterable[dict]) -> None:
        self.entries = list(entries)
        self._order = sorted(range(len(self.entries)),
                             key=lambda i: (ts_ns(self.entries[i]["timestamp"]), self.entries[i].get("insertId", "")))
        self._cache.clear()

    def add_entries(self, entries: Iterable[dict]) -> None:
        with self._lock:
            self._set_entries([*self.entries, *entries])

    def matching(self, filter_text: str, order: str) -> list[dict]:
        """The entries a query returns, in order (cached per query)."""
        key = (filter_text, order)
        with self._lock:
            hit = self._cache.get(key)
        if hit is not None:
            return hit
        pred = compile_filter(filter_text)
        rows = [self.entries[i] for i in self._order if pred(self.entries[i])]
        if order == "timestamp desc":
            rows.reverse()
        with self._lock:
            self._cache[key] = rows
        return rows

    warm = matching

    # -- lifecycle
    def start(self) -> FakeLogging:
        fake = self

        class Handler(_Handler):
            pass

        Handler.fake = fake
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def __enter__(self) -> FakeLogging:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_port}"

    # -- decisions
    def _fault_for(self, number: int, body: dict) -> str | None:
        spec = None
        if callable(self.faults):
            spec = self.faults(number, body)
        elif self.faults:
            spec = self.faults.get(number)
        if spec is None and self.random_faults:
            rng = random.Random(self.seed * 1_000_003 + number)
            for kind, p in self.random_faults.items():
                if rng.random() < p:
                    return kind
        return spec

    def _take_quota(self) -> bool:
        if not self.quota_per_minute:
            return True
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.quota_burst, self._tokens + (now - self._refilled) * self.quota_per_minute / 60.0)
            self._refilled = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return True
            return False

    def _token(self, body: dict, offset: int) -> str:
        raw = orjson.dumps({"q": _query_hash(body), "o": offset, "t": time.time()})
        return base64.urlsafe_b64encode(raw).decode()

    def _offset(self, body: dict) -> int:
        token = body.get("pageToken")
        if not token:
            return 0
        try:
            data = orjson.loads(base64.urlsafe_b64decode(token.encode()))
        except ValueError as err:
            raise _ApiError(400, "Invalid page token.") from err
        if data.get("q") != _query_hash(body):
            raise _ApiError(400, "The page token does not match the request (filter or order changed).")
        if self.token_ttl is not None and time.time() - data["t"] > self.token_ttl:
            raise _ApiError(400, "The page token has expired.")
        return int(data["o"])

    def answer(self, body: dict) -> dict:
        if body.get("resourceNames") != [f"projects/{self.project}"]:
            raise _ApiError(403, f"Permission denied for resource {body.get('resourceNames')} (or it may not exist).")
        order = body.get("orderBy") or "timestamp asc"
        if order not in ("timestamp asc", "timestamp desc"):
            raise _ApiError(400, f"Invalid orderBy: {order!r}")
        size = int(body.get("pageSize") or 50)
        if not 1 <= size <= 1000:
            raise _ApiError(400, "pageSize must be between 1 and 1000")
        try:
            rows = self.matching(body.get("filter") or "", order)
        except FilterError as err:
            raise _ApiError(400, str(err)) from None
        start = self._offset(body)
        page = rows[start:start + size]
        out: dict[str, Any] = {"entries": page} if page else {}
        if start + size < len(rows):
            out["nextPageToken"] = self._token(body, start + size)
        return out

    def served(self) -> list[dict]:
        """Every entry returned with status 200, in order (including repeats)."""
        return [e for r in self.requests if r.status == 200 for e in r.returned]


def _query_hash(body: dict) -> str:
    return hashlib.sha256(f"{body.get('filter')}|{body.get('orderBy')}|{body.get('resourceNames')}".encode()).hexdigest()[:16]


class _ApiError(Exception):
    def __init__(self, code: int, message: str, details: list | None = None, headers: dict | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.details, self.headers = code, message, details or [], headers or {}


def _quota_error(limit: Any, retry: float | None = None, header: float | None = None) -> _ApiError:
    details: list[dict] = [{
        "@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "RATE_LIMIT_EXCEEDED", "domain": "googleapis.com",
        "metadata": {"quota_limit_value": str(limit), "quota_metric": "logging.googleapis.com/read_requests",
                     "quota_limit": "ReadRequestsPerMinutePerProject", "service": "logging.googleapis.com"},
    }]
    if retry is not None:
        details.append({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{retry}s"})
    return _ApiError(429, "Quota exceeded for quota metric 'Read requests' and limit 'Read requests per minute' "
                          "of service 'logging.googleapis.com' for consumer 'project_number:123456789012'.",
                     details, {"Retry-After": str(header)} if header is not None else None)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    fake: FakeLogging

    def log_message(self, *args: Any) -> None:
        pass

    def handle(self) -> None:
        with contextlib.suppress(OSError):  # the client went away (timeouts, resets)
            super().handle()

    def _send(self, code: int, payload: bytes, headers: dict | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(payload)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(payload)

    def _error(self, err: _ApiError) -> None:
        body = {"error": {"code": err.code, "message": err.message, "status": STATUS.get(err.code, "UNKNOWN")}}
        if err.details:
            body["error"]["details"] = err.details
        self._send(err.code, orjson.dumps(body), err.headers)

    def do_POST(self) -> None:  # noqa: N802 - http.server API
        fake = self.fake
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        if self.path.split("?")[0] != "/v2/entries:list":
            self._error(_ApiError(404, f"unknown path {self.path}"))
            return
        try:
            body = orjson.loads(raw)
        except ValueError:
            self._error(_ApiError(400, "Invalid JSON payload received."))
            return
        with fake._lock:
            number = len(fake.requests) + 1
            record = Request(number, time.monotonic(), body)
            fake.requests.append(record)
        if not fake._take_quota():
            record.status, record.fault = 429, "quota"
            self._error(_quota_error(int(fake.quota_per_minute or 0)))
            return
        spec = fake._fault_for(number, body)
        record.fault = spec
        kind, _, arg = (spec or "").partition(":")
        if kind == "hang":
            time.sleep(float(arg or 5))
            kind = ""
        if kind == "429":
            record.status = 429
            self._error(_quota_error(int(fake.quota_per_minute or 60), float(arg) if arg else None))
            return
        if kind == "429-header":
            record.status = 429
            self._error(_quota_error(int(fake.quota_per_minute or 60), None, float(arg or 1)))
            return
        if kind == "expire-token" and body.get("pageToken"):
            record.status = 400
            self._error(_ApiError(400, "The page token has expired."))
            return
        if kind.isdigit():
            record.status = int(kind)
            messages = {500: "Internal error encountered.", 502: "Bad Gateway", 503: "The service is currently unavailable.",
                        504: "The request timed out.", 400: "Invalid argument.", 401: "Request had invalid authentication credentials.",
                        403: "The caller does not have permission", 404: "Requested entity was not found."}
            self._error(_ApiError(int(kind), messages.get(int(kind), "error")))
            return
        try:
            answer = fake.answer(body)
        except _ApiError as err:
            record.status = err.code
            self._error(err)
            return
        try:
            payload = orjson.dumps(answer)
        except TypeError:  # integers beyond 64 bits, which the real API can return in a Struct
            payload = json.dumps(answer, ensure_ascii=False, separators=(",", ":")).encode()
        if kind in ("reset", "short"):
            record.status = -1
            self.send_response(200)
            self.send_header("Content-Type", "application/json; charset=UTF-8")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload[: len(payload) // 2])
            self.wfile.flush()
            if kind == "reset":
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True
            return
        if kind == "truncate":
            record.status = -1
            self._send(200, payload[: len(payload) // 2])
            return
        record.returned = answer.get("entries", [])
        self._send(200, payload)


# ----------------------------------------------------------------------------- entry factories
def make_entries(n: int, *, project: str = "my-project", service: str = "hello", revision: str = "hello-00001-abc",
                 start_ns: int = ts_ns("2026-11-28T10:00:00Z"), step_ns: int = 1_000_000_000, same_ts: int = 1,
                 log: str = "run.googleapis.com%2Fstdout", prefix: str = "e", severity_cycle: Iterable[str | None] = ("INFO",),
                 payload_bytes: int = 0) -> list[dict]:
    """`n` Cloud Run entries, ascending; `same_ts` consecutive entries share each timestamp.

    Timestamps carry nanoseconds (`...:00.123456789Z`) so precision loss shows up."""
    cycle = list(severity_cycle)
    out = []
    pad = "x" * payload_bytes
    for i in range(n):
        t = start_ns + (i // same_ts) * step_ns + 123_456_789
        secs, frac = divmod(t, 10**9)
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{frac:09d}Z"
        entry = {
            "logName": f"projects/{project}/logs/{log}",
            "resource": {"type": "cloud_run_revision", "labels": {
                "project_id": project, "service_name": service, "revision_name": revision,
                "configuration_name": service, "location": "us-central1"}},
            "timestamp": ts,
            "receiveTimestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs + 1)) + f".{(frac + 7) % 10**9:09d}Z",
            "insertId": f"{prefix}{i:08d}",
            "textPayload": f"line {i} {pad}".rstrip(),
            "labels": {"instanceId": "00bf4bf02d"},
        }
        sev = cycle[i % len(cycle)]
        if sev is not None:
            entry["severity"] = sev
        out.append(entry)
    return out


__all__ = ["FakeLogging", "FilterError", "Request", "compile_filter", "make_entries", "ts_ns"]
