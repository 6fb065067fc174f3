"""Deterministic, realistic Cloud Run logs that know their own truth.

`SampleGenerator` streams Cloud Logging ``LogEntry`` dicts, exactly as the Logging API and
``gcloud logging read --format=json`` return them, for an 8-hour window around one deploy of
``netra-backend-staging`` (modelled on a real staging deployment report): the baseline
revision serves traffic, an Admin Activity audit entry records the deploy, the canary's
instances start and traffic shifts to the canary within a few minutes. A second service
(``netra-auth-service``) logs alongside.

While it streams, the generator fills a `SampleTruth` with exact counts of what it emitted
(entries per revision, per event kind, per endpoint, effective severities, planted secrets,
...), so tests can assert a whole pipeline's numbers against it. Nothing is kept in memory:
1M+ entries stream in constant memory.

Same `SampleConfig` => identical entries and byte-identical files (one ``random.Random`` per
concern, seeded from ``SampleConfig.seed``; no global random state, no clock).

>>> entries, truth = sample_entries(SampleConfig(entries=400))
>>> len(entries) == truth.entries == 400
True
>>> truth.deploys[0]
('netra-backend-staging', 'netra-backend-staging-00317-696', '2025-09-10T02:18:34.619410Z')

Event kinds (`KINDS`) and their effective severity (`KIND_SEVERITY`) are listed below. Every
entry belongs to exactly one kind; ``traceback_split`` is one traceback printed as 4 entries
and is counted once *per entry* (its first entry is effectively ERROR, the other 3 DEFAULT).
"""

from __future__ import annotations

import base64
import calendar
import contextlib
import gzip
import math
import os
import queue
import random
import re
import tempfile
import threading
import time
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from heapq import heappop, heappush
from pathlib import Path
from statistics import NormalDist
from typing import Any, BinaryIO

import orjson
import yaml

from logaudit.core.errors import InputError, UsageError
from logaudit.sources.severity import SEVERITY_NUM

__all__ = [
    "BASELINE_REVISION",
    "CANARY_ONLY_KINDS",
    "CANARY_REVISION",
    "KINDS",
    "KIND_SEVERITY",
    "PROJECT",
    "REQUEST_KINDS",
    "SECOND_REVISION",
    "SECOND_SERVICE",
    "SERVICE",
    "RevisionTruth",
    "SampleConfig",
    "SampleGenerator",
    "SampleTruth",
    "path_template",
    "sample_entries",
    "write_sample",
]

PROJECT = "netra-staging"
SERVICE = "netra-backend-staging"
BASELINE_REVISION = "netra-backend-staging-00316-m2x"
CANARY_REVISION = "netra-backend-staging-00317-696"
SECOND_SERVICE = "netra-auth-service"
SECOND_REVISION = "netra-auth-service-00042-k9p"
LOCATION = "us-central1"
DEPLOYER = f"deployer@{PROJECT}.iam.gserviceaccount.com"

#: Effective severity of every kind (``traceback_split`` is mixed: ERROR for its first line, DEFAULT else).
KIND_SEVERITY: dict[str, str] = {
    # request logs (run.googleapis.com/requests)
    "req_health": "INFO",
    "req_agents_404": "WARNING",
    "req_threads_403": "WARNING",
    "req_threads_200": "INFO",
    "req_ws_upgrade": "INFO",
    "req_chat_200": "INFO",
    "req_chat_500": "ERROR",
    "req_malformed_503": "ERROR",
    # application lines with a severity (stdout, textPayload)
    "ws_no_token_debug": "ERROR",
    "ws_auth_failure": "CRITICAL",
    "ws_rejected_no_jwt": "WARNING",
    "dependency_validation_failed": "ERROR",
    "startup_failures_header": "ERROR",
    "golden_path_chat_broken": "ERROR",
    "golden_path_jwt_failure": "ERROR",
    "golden_path_business_risk": "ERROR",
    "startup_validation_bypassed": "WARNING",
    "demo_mode_bypass": "WARNING",
    "session_completed": "INFO",
    "db_session_created": "INFO",
    "thread_created": "INFO",
    "session_create_failed": "ERROR",
    "leaked_session": "WARNING",
    "startup_sequence_failed": "CRITICAL",
    # platform (run.googleapis.com/varlog/system)
    "instance_started": "INFO",
    "container_exit": "WARNING",
    # stderr lines without severity: the level is only in the text
    "gunicorn_info": "INFO",
    "gunicorn_worker_boot_failed": "ERROR",
    "pylog_warning": "WARNING",
    "loguru_error": "ERROR",
    "traceback_single": "ERROR",
    "traceback_split": "ERROR/DEFAULT",
    "stdout_noise": "DEFAULT",
    # structured
    "agent_request_json": "INFO",
    # unclassified WARNING+ lines with variable parts (template mining)
    "cache_miss_warning": "WARNING",
    "redis_retry_warning": "WARNING",
    "rate_limiter_fallback": "WARNING",
    # planted secrets
    "secret_leak_jwt": "ERROR",
    "secret_leak_bearer": "WARNING",
    "secret_leak_api_key": "WARNING",
    "secret_leak_db_url": "ERROR",
    # second service
    "auth_verify_200": "INFO",
    "auth_verify_401": "WARNING",
    "auth_token_issued": "INFO",
    # the deploy (cloudaudit.googleapis.com/activity)
    "deploy_audit": "NOTICE",
}
KINDS: tuple[str, ...] = tuple(KIND_SEVERITY)
#: Kinds that are request logs (carry httpRequest).
REQUEST_KINDS: frozenset[str] = frozenset(
    k for k in KINDS if k.startswith("req_") or k in ("auth_verify_200", "auth_verify_401")
)
#: Kinds only the canary emits when ``regression=True``.
CANARY_ONLY_KINDS: frozenset[str] = frozenset(
    {"ws_no_token_debug", "ws_auth_failure", "dependency_validation_failed", "rate_limiter_fallback"}
)

_NS = 1_000_000_000
_MS = 1_000_000
_US = 1_000
# Offset of the deploy in the seed report: 2025-09-09T20:00:00Z + 6h18m34.619410s.
_DEPLOY_OFFSET_US_8H = (6 * 3600 + 18 * 60 + 34) * 1_000_000 + 619_410
_ERROR_NUM = SEVERITY_NUM["ERROR"]
_MASK64 = (1 << 64) - 1


# --------------------------------------------------------------------------------------------
# public data classes
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SampleConfig:
    """What to generate.

    >>> SampleConfig(entries=100, seed=1).hours
    8.0
    """

    entries: int = 5000  #: exact number of LogEntry dicts produced
    seed: int = 7
    start: str = "2025-09-09T20:00:00Z"  #: window start (UTC)
    #: window length; the deploy is at start + 6h18m34.619410s for 8 h, at the same fraction
    #: (0.78870...) of other window lengths, rounded to the microsecond
    hours: float = 8.0
    regression: bool = True  #: the canary has injected regressions; False = behaves like baseline
    plant_secrets: bool = True  #: a few messages carry secrets (see `SampleTruth.secrets`)
    second_service: bool = True  #: also emit `SECOND_SERVICE` logs

    def __post_init__(self) -> None:
        if not isinstance(self.entries, int) or self.entries < 0:
            raise UsageError(f"entries must be a non-negative integer, not {self.entries!r}")
        if not self.hours > 0:
            raise UsageError(f"hours must be positive, not {self.hours!r}")
        _parse_start(self.start)


@dataclass
class RevisionTruth:
    """Exact counts for one (service, revision); audit entries have revision None."""

    entries: int = 0
    errors: int = 0  #: effective severity >= ERROR
    requests: int = 0  #: entries with httpRequest
    status_4xx: int = 0
    status_5xx: int = 0


@dataclass
class SampleTruth:
    """Exact counts of what a generator emitted (complete once iteration finished).

    >>> _, truth = sample_entries(SampleConfig(entries=300))
    >>> sum(truth.kinds.values()) == sum(r.entries for r in truth.by_revision.values()) == 300
    True
    """

    entries: int = 0
    by_revision: dict[tuple[str, str | None], RevisionTruth] = field(default_factory=dict)
    #: (service, revision|None, kind) -> entries
    kinds: Counter[tuple[str, str | None, str]] = field(default_factory=Counter)
    #: (service, method, path_template, status) -> request logs
    endpoints: Counter[tuple[str, str, str, int]] = field(default_factory=Counter)
    #: (service, revision created, audit entry timestamp as emitted)
    deploys: list[tuple[str, str, str]] = field(default_factory=list)
    #: every planted secret string, verbatim (JWT, bearer token, API key, database password)
    secrets: list[str] = field(default_factory=list)
    #: (revision, template with <*> for variable parts) -> entries, for unclassified WARNING+ lines
    unclassified_templates: Counter[tuple[str, str]] = field(default_factory=Counter)
    #: effective severity -> entries
    effective_severity: Counter[str] = field(default_factory=Counter)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (lists of records, sorted) that `from_dict` reads back."""

        def rk(rev: str | None) -> str:
            return rev or ""

        return {
            "entries": self.entries,
            "by_revision": [
                {"service": s, "revision": r, **vars(t)}
                for (s, r), t in sorted(self.by_revision.items(), key=lambda kv: (kv[0][0], rk(kv[0][1])))
            ],
            "kinds": [
                {"service": s, "revision": r, "kind": k, "count": n}
                for (s, r, k), n in sorted(self.kinds.items(), key=lambda kv: (kv[0][0], rk(kv[0][1]), kv[0][2]))
            ],
            "endpoints": [
                {"service": s, "method": m, "path": p, "status": st, "count": n}
                for (s, m, p, st), n in sorted(self.endpoints.items())
            ],
            "deploys": [{"service": s, "revision": r, "timestamp": t} for s, r, t in self.deploys],
            "secrets": list(self.secrets),
            "unclassified_templates": [
                {"revision": r, "template": t, "count": n} for (r, t), n in sorted(self.unclassified_templates.items())
            ],
            "effective_severity": {
                k: self.effective_severity[k]
                for k in sorted(self.effective_severity, key=lambda s: SEVERITY_NUM.get(s, -1))
            },
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SampleTruth:
        """Inverse of `to_dict`."""
        t = cls(entries=d["entries"])
        for r in d["by_revision"]:
            t.by_revision[(r["service"], r["revision"])] = RevisionTruth(
                **{k: r[k] for k in ("entries", "errors", "requests", "status_4xx", "status_5xx")}
            )
        for r in d["kinds"]:
            t.kinds[(r["service"], r["revision"], r["kind"])] = r["count"]
        for r in d["endpoints"]:
            t.endpoints[(r["service"], r["method"], r["path"], r["status"])] = r["count"]
        t.deploys = [(r["service"], r["revision"], r["timestamp"]) for r in d["deploys"]]
        t.secrets = list(d["secrets"])
        for r in d["unclassified_templates"]:
            t.unclassified_templates[(r["revision"], r["template"])] = r["count"]
        t.effective_severity = Counter(d["effective_severity"])
        return t


_ID_SEGMENT = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|[0-9a-fA-F]{8,}|[0-9]+"
)


def path_template(path: str) -> str:
    """Mask id segments (UUID, hex of >= 8 chars, number) of a URL path as ``{id}``; drops the query.

    >>> path_template("/api/threads/0b6f2c1e-9d7a-4c3b-8e21-5f4a3b2c1d0e/messages?limit=50")
    '/api/threads/{id}/messages'
    """
    path = path.split("?", 1)[0].split("#", 1)[0]
    return "/".join("{id}" if _ID_SEGMENT.fullmatch(seg) else seg for seg in path.split("/"))


# --------------------------------------------------------------------------------------------
# time helpers
# --------------------------------------------------------------------------------------------


def _parse_start(start: str) -> int:
    """RFC 3339 text -> ns since the epoch (UTC)."""
    try:
        dt = datetime.fromisoformat(start.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError as exc:
        raise UsageError(f"start is not an RFC 3339 timestamp: {start!r}") from exc
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    dt = dt.astimezone(UTC)
    return calendar.timegm(dt.utctimetuple()) * _NS + dt.microsecond * _US


def _text_time(t: int, style: str) -> str:
    """Timestamps as applications print them inside messages."""
    sec, frac = divmod(t, _NS)
    tm = time.gmtime(sec)
    if style == "gunicorn":
        return time.strftime("[%Y-%m-%d %H:%M:%S +0000]", tm)
    if style == "pylog":
        return time.strftime("%Y-%m-%d %H:%M:%S", tm) + f",{frac // _MS:03d}"
    if style == "loguru":
        return time.strftime("%Y-%m-%d %H:%M:%S", tm) + f".{frac // _MS:03d}"
    return time.strftime("%Y-%m-%dT%H:%M:%S", tm) + f".{frac // _MS:03d}Z"  # RFC 3339, ms


# --------------------------------------------------------------------------------------------
# message texts (facts section 8: every emoji line also exists in the newer ASCII spelling)
# --------------------------------------------------------------------------------------------

_WARN_SIGN = "\u26a0\ufe0f"
_T_NO_TOKEN_DEBUG = ("\U0001f50d NO_TOKEN DEBUG: ", " SEARCH:  NO_TOKEN DEBUG: ")
_T_AUTH_FAILURE = ("\U0001f6a8 HANDLING AUTH FAILURE: ", " ALERT:  HANDLING AUTH FAILURE: ")
_T_DEP_FAILED = (
    "\u274c CRITICAL: Service dependency validation FAILED",
    " FAIL:  CRITICAL: Service dependency validation FAILED",
)
_T_HEADER = (
    "\U0001f6a8 CRITICAL STARTUP VALIDATION FAILURES DETECTED:",
    " ALERT:  CRITICAL STARTUP VALIDATION FAILURES DETECTED:",
)
_T_GP_CHAT = "   - Golden path validation failed: Chat functionality completely broken without agent execution"
_T_GP_JWT = "   - Golden path validation failed: JWT=REDACTED failure prevents users from accessing chat functionality"
_T_GP_RISK = (
    "\u274c Golden path validation failed - business functionality at risk",
    " FAIL:  Golden path validation failed - business functionality at risk",
)
_T_BYPASS = (
    f"{_WARN_SIGN} BYPASSING STARTUP VALIDATION FOR ",
    " WARNING: [U+FE0F] BYPASSING STARTUP VALIDATION FOR ",
)
_T_BYPASS_CONSOLE = "?? BYPASSING STARTUP VALIDATION FOR "
_T_DEMO = "DEMO MODE: Authentication bypass enabled for isolated demo environment (DEFAULT)"
_T_COMPLETED = ("\u2705 COMPLETED: Request-scoped session ", " PASS:  COMPLETED: Request-scoped session ")
_T_DB_CREATED = ("\u2705 Database session created successfully", " PASS:  Database session created successfully")
_T_THREAD = ("\u2705 Thread creation working properly", " PASS:  Thread creation working properly")
_T_CREATE_FAILED = (
    "\u274c CRITICAL ERROR: Failed to create request-scoped database session ",
    " FAIL:  CRITICAL ERROR: Failed to create request-scoped database session ",
)
_T_STARTUP_FAILED = (
    "\U0001f4a5 DETERMINISTIC STARTUP SEQUENCE FAILED",
    "[U+1F4A5] DETERMINISTIC STARTUP SEQUENCE FAILED",
)
_T_WS_REJECTED = "WebSocket connection rejected in staging: No JWT=REDACTED"
_T_MALFORMED = (
    "The request failed because either the HTTP response was malformed or connection to the instance "
    "had an error."
)
_T_START_DEPLOYMENT = (
    "Starting new instance. Reason: DEPLOYMENT - Instance started due to traffic shifting between revisions."
)
_T_START_AUTOSCALING = (
    "Starting new instance. Reason: AUTOSCALING - Instance started due to configured scaling factors "
    "(e.g. CPU utilization, request throughput, etc.) or no existing capacity for current traffic."
)
_T_EXIT = "Container called exit(3)."

_BYPASS_REASONS = (
    "BYPASS_STARTUP_VALIDATION=true",
    "staging environment allows degraded startup for debugging",
)
_CREATE_FAILED_ERRORS = (
    "Error: QueuePool limit of size 10 overflow 20 reached, connection timed out, timeout 30.00",
    "Error: (psycopg2.OperationalError) server closed the connection unexpectedly",
    "Error: asyncio.TimeoutError while acquiring connection from pool",
)
_NOISE = (
    "Loaded {n} agent definitions from registry",
    "Heartbeat: {n} active websocket connections",
    "Prometheus metrics exported ({n} series)",
    "Config reloaded from Secret Manager in {n} ms",
    "Background cleanup removed {n} expired thread locks",
    "GET /api/threads -> cache hit ({n} items)",
)
_PYLOG = (
    ("netra_backend.app.db.postgres", "Connection pool at {p}% capacity ({u}/{s} connections in use)"),
    ("netra_backend.app.llm.llm_manager", "LLM response took {ms} ms, above the 5000 ms budget"),
    ("netra_backend.app.websocket_core.manager", "Send queue for connection ws_{h} has {n} pending events"),
)
_LOGURU = (
    ("netra_backend.app.agents.supervisor", "execute", 212, "Agent execution failed: upstream LLM timeout after {n}s"),
    ("netra_backend.app.services.thread_service", "get_thread", 88, "Thread lookup failed for thread_{h}"),
    ("netra_backend.app.websocket_core.handlers", "dispatch", 341, "Failed to deliver agent_completed event to ws_{h}"),
)
_TB_FRAMES = (
    ("/usr/local/lib/python3.11/site-packages/starlette/routing.py", 74, "app"),
    ("/usr/local/lib/python3.11/site-packages/fastapi/routing.py", 301, "app"),
    ("/app/netra_backend/app/routes/threads.py", 142, "get_thread_messages"),
    ("/app/netra_backend/app/services/thread_service.py", 88, "get_thread"),
    ("/app/netra_backend/app/agents/supervisor.py", 212, "execute"),
    ("/app/netra_backend/app/routes/chat.py", 57, "create_message"),
)
_TB_ERRORS = (
    "ValueError: invalid literal for int() with base 10: 'undefined'",
    "ValueError: thread_id must be a valid UUID, got 'null'",
    "ValueError: Unsupported message role 'tool_result'",
)
_STARTUP_TB = (
    'Traceback (most recent call last):\n  File "/app/netra_backend/app/smd.py", line 412, in initialize_system\n'
    "    await self._phase_services()\n"
    '  File "/app/netra_backend/app/smd.py", line 655, in _phase_services\n'
    "    raise ValueError(f\"Critical service '{name}' failed health check\")\n"
    "ValueError: Critical service 'agent_supervisor' failed health check"
)
_AGENTS = ("supervisor", "triage", "data_helper", "optimizations_core", "reporting")
_BROWSERS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/139.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.6 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:142.0) Gecko/20100101 Firefox/142.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/140.0.0.0 Safari/537.36",
    "python-httpx/0.28.1",
    "python-requests/2.32.5",
)
_UPTIME_UA = "GoogleStackdriverMonitoring-UptimeChecks(https://cloud.google.com/monitoring)"
_SERVER_IPS = ("216.239.32.53", "216.239.34.53", "216.239.36.53", "216.239.38.53")
_B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_ALNUM = "abcdefghijklmnopqrstuvwxyz0123456789"
_BACKEND_HOST = "backend.staging.netrasystems.ai"
_AUTH_HOST = "auth.staging.netrasystems.ai"


# Standard normal quantiles at (i + 0.5) / N: a fast, deterministic normal sample by table lookup.
_NORMAL_N = 4096
_NORMAL = [NormalDist().inv_cdf((i + 0.5) / _NORMAL_N) for i in range(_NORMAL_N)]


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


# --------------------------------------------------------------------------------------------
# generator internals
# --------------------------------------------------------------------------------------------

# A line is one future LogEntry:
# (kind, log, severity|None, effective, digits, payload_key|None, payload, http|None, extra|None,
#  endpoint (method, path_template, status)|None, note|None)
# where note is ("template", <template>) for unclassified lines, ("secret", <secret>) for planted
# secrets, or ("pylog"|"loguru", None) when the payload is rendered with the final timestamp.
_Line = tuple


class _Target:
    """One (service, revision): its resource dict (shared by its entries) and its truth."""

    __slots__ = ("service", "revision", "resource", "truth")

    def __init__(self, service: str, revision: str | None) -> None:
        self.service = service
        self.revision = revision
        self.resource = {
            "type": "cloud_run_revision",
            "labels": {
                "project_id": PROJECT,
                "service_name": service,
                "revision_name": revision or "",
                "configuration_name": service if revision else "",
                "location": LOCATION,
            },
        }
        self.truth = RevisionTruth()


class _Mix:
    """Weighted random choice of background events for one revision, kept close to the rates.

    A rare event (under 5 % of the mix) is forced when it falls `_SLACK` occurrences behind its
    expected count and skipped (the most common single-entry event instead) when a draw would put
    it `_SLACK` ahead, so its count stays within 1.5 of expectation: rare events show up as soon as
    their expected count reaches 1.5, two revisions with the same rates (regression=False) share
    their kinds, and small samples keep the intended ratios.
    """

    __slots__ = ("builders", "sizes", "cum", "total", "frac", "counts", "force_at", "tracked",
                 "is_tracked", "n", "min_val", "argmin", "fallback")
    _SLACK = 1.5
    _RARE = 0.05

    def __init__(self, events: list[tuple[str, float, Callable[[], list], int]]) -> None:
        events = [e for e in events if e[1] > 0]
        self.builders = [e[2] for e in events]
        self.sizes = [e[3] for e in events]
        total = 0.0
        self.cum = []
        for e in events:
            total += e[1]
            self.cum.append(total)
        self.total = total
        self.frac = [e[1] / total for e in events]
        self.counts = [0] * len(events)
        self.tracked = [i for i, f in enumerate(self.frac) if f < self._RARE]
        self.is_tracked = [f < self._RARE for f in self.frac]
        self.force_at = [self._SLACK / f for f in self.frac]
        self.n = 0
        self._refresh()
        singles = [i for i, s in enumerate(self.sizes) if s == 1]
        self.fallback = max(singles, key=lambda i: self.frac[i])

    def _refresh(self) -> None:
        if not self.tracked:
            self.argmin, self.min_val = -1, float("inf")
            return
        fa = self.force_at
        self.argmin = min(self.tracked, key=fa.__getitem__)
        self.min_val = fa[self.argmin]

    def pick(self, r: float, remaining: int) -> int:
        """The next event's index; `r` is a uniform random number."""
        n = self.n = self.n + 1
        if n >= self.min_val:
            e = self.argmin
        else:
            e = bisect_right(self.cum, r * self.total)
            if e >= len(self.sizes):
                e = len(self.sizes) - 1
            if self.is_tracked[e] and self.counts[e] + 1 - self._SLACK > n * self.frac[e]:
                e = self.fallback
        if self.sizes[e] > remaining:
            e = self.fallback
        c = self.counts[e] = self.counts[e] + 1
        self.force_at[e] = (c + self._SLACK) / self.frac[e]
        if e == self.argmin:
            self._refresh()
        return e


class SampleGenerator:
    """Iterate to get LogEntry dicts in ascending timestamp order; `truth` is complete afterwards.

    Entries share their constant nested dicts (``resource``, ``labels``): treat them as read-only
    (`sample_entries` returns independent copies). Iterating again restarts from scratch and
    produces the same entries and truth.

    >>> gen = SampleGenerator(SampleConfig(entries=250, seed=3))
    >>> n = sum(1 for _ in gen)
    >>> n == gen.truth.entries == 250
    True
    """

    def __init__(self, config: SampleConfig = SampleConfig()) -> None:  # noqa: B008
        self.config = config
        self.truth = SampleTruth()
        self.start_ns = _parse_start(config.start)
        self.end_ns = self.start_ns + round(config.hours * 3600 * _NS)
        self.deploy_ns = self.start_ns + round(_DEPLOY_OFFSET_US_8H * config.hours / 8.0) * _US

    # -- public ---------------------------------------------------------------------------

    def __iter__(self) -> Iterator[dict]:
        return self._generate()

    # -- setup -----------------------------------------------------------------------------

    def _setup(self) -> None:
        cfg = self.config
        seed = cfg.seed
        self.truth = SampleTruth()
        self.rng_skel = random.Random(f"logaudit.sample:{seed}:skeleton")
        self.rng = random.Random(f"logaudit.sample:{seed}:background")
        self.rng_emit = random.Random(f"logaudit.sample:{seed}:emit")
        r = self.rng_skel
        self.t_base = _Target(SERVICE, BASELINE_REVISION)
        self.t_canary = _Target(SERVICE, CANARY_REVISION)
        self.t_audit = _Target(SERVICE, None)
        self.t_auth = _Target(SECOND_SERVICE, SECOND_REVISION)
        self.log_names = {
            k: f"projects/{PROJECT}/logs/{v}"
            for k, v in {
                "requests": "run.googleapis.com%2Frequests",
                "stdout": "run.googleapis.com%2Fstdout",
                "stderr": "run.googleapis.com%2Fstderr",
                "system": "run.googleapis.com%2Fvarlog%2Fsystem",
                "activity": "cloudaudit.googleapis.com%2Factivity",
            }.items()
        }
        self.clients = [
            f"{r.choice((24, 35, 47, 67, 73, 98, 104, 142, 172, 185))}.{r.randrange(1, 255)}."
            f"{r.randrange(0, 255)}.{r.randrange(1, 255)}"
            for _ in range(40)
        ] + [f"2600:1700:{r.getrandbits(16):x}:{r.getrandbits(16):x}::{r.getrandbits(12):x}" for _ in range(6)]
        self.uptime_ips = [f"35.238.{r.randrange(0, 255)}.{r.randrange(1, 255)}" for _ in range(4)]
        self.egress_ips = [f"34.96.{r.randrange(32, 63)}.{r.randrange(1, 255)}" for _ in range(3)]
        self.users = [self._uuid(r) for _ in range(60)]
        self.thread_ids = [self._uuid(r) for _ in range(120)]

    @staticmethod
    def _uuid(r: random.Random) -> str:
        h = f"{r.getrandbits(128):032x}"
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:32]}"

    def _instance_labels(self) -> dict[str, str]:
        return {"instanceId": "00" + f"{self.rng_skel.getrandbits(288):072x}"}

    # -- skeleton: deploy, startup sequences, crashes, secrets -------------------------------

    def _skeleton(self) -> tuple[list[tuple[int, _Target, dict | None, _Line]], dict]:
        """Fixed events (independent of `entries`) as (t, target, labels, line), plus routing info."""
        cfg = self.config
        r = self.rng_skel
        items: list[tuple[int, _Target, dict | None, _Line]] = []
        s, d, end = self.start_ns, self.deploy_ns, self.end_ns
        f_pre = min(1.0, (d - s) / (3600 * _NS))
        f_post = min(1.0, (end - d) / (2400 * _NS))

        def jit(lo_s: float, hi_s: float, f: float) -> int:
            return int(r.uniform(lo_s, hi_s) * f * _NS)

        def add(t: int, tgt: _Target, labels: dict | None, lines: Iterable[tuple[int, _Line]]) -> None:
            for off, line in lines:
                items.append((t + off, tgt, labels, line))

        base_ready: list[tuple[int, dict]] = []
        can_ready: list[tuple[int, dict]] = []

        # baseline: first instance right at the window start, one crashed boot, more autoscaled
        n_base = 2 + (r.random() < 0.6)
        starts = [s + jit(0.8, 2.5, f_pre), s + int((d - s) * r.uniform(0.30, 0.40))]
        if n_base == 3:
            starts.append(s + int((d - s) * r.uniform(0.55, 0.70)))
        crash_at = s + int((d - s) * r.uniform(0.12, 0.22))
        for t0 in starts:
            labels = self._instance_labels()
            lines, ready = self._startup(t0, self.t_base, False, "AUTOSCALING", f_pre)
            add(t0, self.t_base, labels, lines)
            base_ready.append((t0 + ready, labels))
        labels = self._instance_labels()
        lines, _ = self._crash(crash_at, "AUTOSCALING", f_pre)
        add(crash_at, self.t_base, labels, lines)

        # the deploy, then the canary: two instances ~30 s later, a crash, maybe one autoscaled
        add(d, self.t_audit, None, [(0, self._audit_line())])
        regression = cfg.regression
        c0 = d + jit(28.0, 33.0, f_post)
        n_can = 2 + (r.random() < 0.5)
        cstarts = [(c0, "DEPLOYMENT"), (c0 + jit(1.0, 4.0, f_post), "DEPLOYMENT")]
        if n_can == 3:
            cstarts.append((d + int((end - d) * r.uniform(0.45, 0.65)), "AUTOSCALING"))
        for t0, reason in cstarts:
            labels = self._instance_labels()
            lines, ready = self._startup(t0, self.t_canary, regression, reason, f_post)
            add(t0, self.t_canary, labels, lines)
            can_ready.append((t0 + ready, labels))
        c_ready = min(t for t, _ in can_ready)
        shift_end = c_ready + jit(120.0, 200.0, f_post)
        ccrash = shift_end + int((end - shift_end) * r.uniform(0.15, 0.30))
        labels = self._instance_labels()
        lines, _ = self._crash(ccrash, "AUTOSCALING", f_post)
        add(ccrash, self.t_canary, labels, lines)

        base_ready.sort(key=lambda x: x[0])
        can_ready.sort(key=lambda x: x[0])
        if cfg.plant_secrets:
            kinds = ("secret_leak_jwt", "secret_leak_bearer", "secret_leak_api_key", "secret_leak_db_url")
            for tgt, ready, lo, hi in (
                (self.t_base, base_ready, base_ready[0][0] + 1, d),
                (self.t_canary, can_ready, shift_end, end),
            ):
                for i, kind in enumerate(kinds):
                    t = lo + int((hi - lo) * (i + r.uniform(0.15, 0.85)) / len(kinds))
                    usable = [lab for tr, lab in ready if tr <= t] or [ready[0][1]]
                    add(t, tgt, usable[int(r.random() * len(usable))], [(0, self._secret_line(kind))])
        route = {
            "base_ready": base_ready,
            "can_ready": can_ready,
            "c_ready": c_ready,
            "shift_end": shift_end,
        }
        return items, route

    def _startup(
        self, t0: int, tgt: _Target, regression: bool, reason: str, f: float
    ) -> tuple[list[tuple[int, _Line]], int]:
        """A successful instance startup: platform line, gunicorn boot, golden path failures, bypass."""
        r = self.rng_skel
        pid = r.randrange(7, 14)
        ms = int(_MS * f)
        out: list[tuple[int, _Line]] = [(0, self._system_line("instance_started", reason))]
        t = int(r.uniform(1100, 1700) * ms)
        out += self._gunicorn_boot(t0, t, pid, ms)
        t += int(r.uniform(1500, 2400) * ms)
        gp_lines: list[_Line] = []
        if regression:
            gp_lines.append(self._app_line("dependency_validation_failed", "ERROR", self._spell(r, _T_DEP_FAILED)))
        gp_lines += [
            self._app_line("startup_failures_header", "ERROR", self._spell(r, _T_HEADER)),
            self._app_line("golden_path_chat_broken", "ERROR", _T_GP_CHAT),
            self._app_line("golden_path_jwt_failure", "ERROR", _T_GP_JWT),
            self._app_line("golden_path_business_risk", "ERROR", self._spell(r, _T_GP_RISK)),
        ]
        for line in gp_lines:
            out.append((t, line))
            t += int(r.uniform(0.2, 3.0) * ms)
        n_failed = 2 if regression else 1
        u = r.random()
        prefix = _T_BYPASS_CONSOLE if u < 0.12 else _T_BYPASS[u < 0.56]
        bypass = f"{prefix}STAGING - {n_failed} critical failures ignored. Reason: {r.choice(_BYPASS_REASONS)}"
        t += int(r.uniform(5, 40) * ms)
        out.append((t, self._app_line("startup_validation_bypassed", "WARNING", bypass)))
        t += int(r.uniform(50, 400) * ms)
        out.append((t, self._app_line("demo_mode_bypass", "WARNING", _T_DEMO)))
        t += int(r.uniform(300, 900) * ms)
        out.append((t, self._stderr_line("gunicorn_info", f"{_text_time(t0 + t, 'gunicorn')} [{pid}] [INFO] Application startup complete.", "INFO")))
        return out, t + int(r.uniform(20, 200) * ms)

    def _crash(self, t0: int, reason: str, f: float) -> tuple[list[tuple[int, _Line]], int]:
        """A failed boot: DETERMINISTIC STARTUP SEQUENCE FAILED, traceback, worker boot failure, exit(3)."""
        r = self.rng_skel
        pid = r.randrange(7, 14)
        ms = int(_MS * f)
        out: list[tuple[int, _Line]] = [(0, self._system_line("instance_started", reason))]
        t = int(r.uniform(1100, 1700) * ms)
        out += self._gunicorn_boot(t0, t, pid, ms)
        t += int(r.uniform(1500, 2400) * ms)
        out.append((t, self._app_line("startup_sequence_failed", "CRITICAL", self._spell(r, _T_STARTUP_FAILED))))
        t += int(r.uniform(1, 5) * ms)
        out.append((t, self._stderr_line("traceback_single", _STARTUP_TB, "ERROR")))
        t += int(r.uniform(100, 400) * ms)
        out.append((t, self._stderr_line(
            "gunicorn_worker_boot_failed", f"{_text_time(t0 + t, 'gunicorn')} [{pid}] [ERROR] Worker failed to boot.", "ERROR"
        )))
        t += int(r.uniform(300, 900) * ms)
        out.append((t, self._system_line("container_exit", "")))
        return out, t

    def _gunicorn_boot(self, t0: int, t: int, pid: int, ms: int) -> list[tuple[int, _Line]]:
        r = self.rng_skel
        texts = (
            (1, "[INFO] Starting gunicorn 23.0.0"),
            (1, "[INFO] Listening at: http://0.0.0.0:8080 (1)"),
            (1, "[INFO] Using worker: uvicorn.workers.UvicornWorker"),
            (1, f"[INFO] Booting worker with pid: {pid}"),
            (pid, f"[INFO] Started server process [{pid}]"),
            (pid, "[INFO] Waiting for application startup."),
        )
        out = []
        for i, (p, text) in enumerate(texts):
            out.append((t, self._stderr_line("gunicorn_info", f"{_text_time(t0 + t, 'gunicorn')} [{p}] {text}", "INFO")))
            t += int((r.uniform(0.3, 3.0) if i != 3 else r.uniform(400, 900)) * ms)
        return out

    # -- line builders ---------------------------------------------------------------------

    @staticmethod
    def _spell(r: random.Random, pair: tuple[str, str]) -> str:
        return pair[r.random() < 0.5]

    @staticmethod
    def _app_line(kind: str, severity: str, text: str, digits: int = 6) -> _Line:
        return (kind, "stdout", severity, severity, digits, "textPayload", text, None, None, None, None)

    def _stderr_line(self, kind: str, text: str, effective: str) -> _Line:
        """A stderr line without severity (10 % carry an explicit "DEFAULT", like some exporters write)."""
        sev = "DEFAULT" if self.rng_skel.random() < 0.1 else None
        return (kind, "stderr", sev, effective, 6, "textPayload", text, None, None, None, None)

    @staticmethod
    def _system_line(kind: str, reason: str) -> _Line:
        if kind == "instance_started":
            text = _T_START_DEPLOYMENT if reason == "DEPLOYMENT" else _T_START_AUTOSCALING
            return (kind, "system", "INFO", "INFO", 6, "textPayload", text, None, None, None, None)
        return (kind, "system", "WARNING", "WARNING", 6, "textPayload", _T_EXIT, None, None, None, None)

    def _audit_line(self) -> _Line:
        r = self.rng_skel
        svc = f"namespaces/{PROJECT}/services/{SERVICE}"
        digest = f"{r.getrandbits(256):064x}"
        t_req = _text_time(self.deploy_ns + r.randrange(5, 40) * _MS, "rfc3339")
        payload = {
            "@type": "type.googleapis.com/google.cloud.audit.AuditLog",
            "status": {},
            "authenticationInfo": {"principalEmail": DEPLOYER},
            "requestMetadata": {
                "callerIp": f"35.{r.randrange(184, 240)}.{r.randrange(0, 255)}.{r.randrange(1, 255)}",
                "callerSuppliedUserAgent": "google-cloud-sdk gcloud/539.0.0 command/gcloud.run.deploy "
                "invocation-id/" + f"{r.getrandbits(128):032x}" + " environment/GCE,gzip(gfe)",
                "requestAttributes": {"time": t_req, "auth": {}},
                "destinationAttributes": {},
            },
            "serviceName": "run.googleapis.com",
            "methodName": "google.cloud.run.v1.Services.ReplaceService",
            "authorizationInfo": [
                {"resource": svc, "permission": "run.services.update", "granted": True, "resourceAttributes": {}}
            ],
            "resourceName": svc,
            "request": {
                "@type": "type.googleapis.com/google.cloud.run.v1.ReplaceServiceRequest",
                "name": svc,
                "region": LOCATION,
                "service": {
                    "apiVersion": "serving.knative.dev/v1",
                    "kind": "Service",
                    "metadata": {"name": SERVICE, "namespace": "701982941522"},
                    "spec": {
                        "template": {
                            "metadata": {"name": CANARY_REVISION},
                            "spec": {
                                "containerConcurrency": 80,
                                "timeoutSeconds": 600,
                                "containers": [{
                                    "image": f"gcr.io/{PROJECT}/netra-backend-staging@sha256:{digest}",
                                    "resources": {"limits": {"cpu": "4", "memory": "4Gi"}},
                                }],
                            },
                        },
                        "traffic": [{"latestRevision": True, "percent": 100}],
                    },
                },
            },
            "response": {
                "@type": "type.googleapis.com/google.cloud.run.v1.Service",
                "metadata": {"name": SERVICE, "namespace": "701982941522", "generation": 317},
                "status": {"latestCreatedRevisionName": CANARY_REVISION, "latestReadyRevisionName": BASELINE_REVISION},
            },
            "resourceLocation": {"currentLocations": [LOCATION]},
        }
        return ("deploy_audit", "activity", "NOTICE", "NOTICE", 6, "protoPayload", payload, None, None, None, None)

    def _jwt(self, r: random.Random) -> str:
        header = _b64url(b'{"alg":"HS256","typ":"JWT"}')
        body = orjson.dumps({
            "sub": r.choice(self.users),
            "email": f"user{r.randrange(100, 999)}@netrasystems.ai",
            "iat": 1757448000 + r.randrange(0, 28800),
            "exp": 1757448900 + r.randrange(0, 28800),
            "iss": "netra-auth-service",
            "token_type": "access",
        })
        return f"{header}.{_b64url(body)}.{_b64url(r.randbytes(32))}"

    def _secret_line(self, kind: str) -> _Line:
        r = self.rng_skel
        if kind == "secret_leak_jwt":
            secret = self._jwt(r)
            line = self._app_line(kind, "ERROR", f"JWT validation failed for token {secret}: Signature has expired")
        elif kind == "secret_leak_bearer":
            secret = "ya29.a0" + "".join(r.choice(_B64URL) for _ in range(96))
            payload = {
                "message": f"Auth service rejected request (401). Request headers: Authorization: Bearer {secret}; "
                f"X-Request-ID: req_{r.getrandbits(64):016x}",
                "component": "auth_client",
                "status_code": 401,
                "retry": 0,
            }
            line = (kind, "stdout", "WARNING", "WARNING", 3, "jsonPayload", payload, None, None, None, None)
        elif kind == "secret_leak_api_key":
            secret = "AIza" + "".join(r.choice(_B64URL) for _ in range(35))
            line = self._app_line(
                kind, "WARNING",
                "LLM request failed with 429, retrying: POST https://generativelanguage.googleapis.com/v1beta/models/"
                f"gemini-2.5-flash:generateContent?api_key={secret}",
            )
        else:
            secret = "".join(r.choice(_ALNUM + "ABCDEFGHKMNPQRSTUVWXYZ") for _ in range(24))
            line = self._app_line(
                kind, "ERROR",
                f"Database connection failed: could not connect to postgresql://app:{secret}@10.1.2.3:5432/netra "
                "(timeout expired)",
            )
        return (*line[:10], ("secret", secret))

    # -- background events -------------------------------------------------------------------

    def _mixes(self) -> tuple[_Mix, _Mix, _Mix]:
        """Background event mixes: (baseline, canary, second service)."""
        reg = self.config.regression
        B = self  # short alias for the table
        # (name, baseline weight, canary weight when regression, builder, entries)
        table = [
            ("health", 220, 220, B._ev_health, 1),
            ("agents_404", 45, 45, B._ev_agents_404, 1),
            ("threads_403", 40, 40, B._ev_threads_403, 1),
            ("threads_200", 35, 35, B._ev_threads_200, 1),
            ("threads_200_db", 25, 25, B._ev_threads_200_db, 2),
            ("new_thread", 20, 20, B._ev_new_thread, 2),
            ("ws_ok", 30, 30, B._ev_ws_ok, 1),
            ("ws_no_jwt", 12, 12, B._ev_ws_no_jwt, 2),
            ("ws_no_token", 0, 30, B._ev_ws_no_token, 4),
            ("chat_ok", 30, 30, B._ev_chat_ok, 3),
            ("chat_ok_short", 55, 55, B._ev_chat_ok_short, 2),
            # POST /api/chat 500: ~2.7 % of chat requests in the baseline, ~25 % in a regressed canary
            ("chat_500_db", 1.2, 14.4, B._ev_chat_500_db, 2),
            ("chat_500_tb", 0.7, 8.4, B._ev_chat_500_tb, 2),
            ("chat_500_tbs", 0.5, 6, B._ev_chat_500_tbs, 5),
            ("malformed_503", 5, 5, B._ev_malformed_503, 1),
            ("svc_session", 90, 90, B._ev_svc_session, 1),
            ("db_session", 20, 20, B._ev_db_session, 1),
            ("leaked_session", 5, 5, B._ev_leaked, 1),
            ("demo_mode", 5, 5, B._ev_demo, 1),
            ("pylog", 10, 10, B._ev_pylog, 1),
            ("loguru", 6, 6, B._ev_loguru, 1),
            ("noise", 45, 45, B._ev_noise, 1),
            ("tb_single", 5, 5, B._ev_tb_single, 1),
            ("tb_split", 3, 3, B._ev_tb_split, 4),
            ("cache_miss", 14, 14, B._ev_cache_miss, 1),
            ("redis_retry", 7, 7, B._ev_redis_retry, 1),
            ("rate_limit", 0, 16, B._ev_rate_limit, 1),
        ]
        base = _Mix([(n, w, b, k) for n, w, _, b, k in table])
        canary = _Mix([(n, (wc if reg else w), b, k) for n, w, wc, b, k in table])
        auth = _Mix([
            ("verify_ok", 60, B._ev_auth_ok, 1),
            ("verify_ok_issued", 30, B._ev_auth_ok_issued, 2),
            ("verify_401", 9, B._ev_auth_401, 1),
        ])
        return base, canary, auth

    # request helpers
    def _trace(self) -> dict:
        bits = self.rng.getrandbits(193)
        extra = {"trace": f"projects/{PROJECT}/traces/{bits >> 65:032x}", "spanId": f"{(bits >> 1) & _MASK64:016x}"}
        if bits & 1 and self.rng.random() < 0.2:
            extra["traceSampled"] = True
        return extra

    def _req(
        self, kind: str, method: str, path: str, tmpl: str, status: int, latency_s: float,
        ua: str | None = None, ip: str | None = None, host: str = _BACKEND_HOST,
        req_size: int | None = None, resp_size: int | None = None, extra: dict | None = None,
        text: str | None = None, proto: str = "HTTP/1.1",
    ) -> _Line:
        rng = self.rng
        rand = rng.random
        if ua is None:
            ua = _BROWSERS[int(rand() * len(_BROWSERS))]
        if ip is None:
            ip = self.clients[int(rand() * len(self.clients))]
        http = {
            "requestMethod": method,
            "requestUrl": f"https://{host}{path}",
            "requestSize": str(req_size if req_size is not None else 300 + int(rand() * 900)),
            "status": status,
            "responseSize": str(resp_size if resp_size is not None else 200 + int(rand() * 2000)),
            "userAgent": ua,
            "remoteIp": ip,
            "serverIp": _SERVER_IPS[int(rand() * 4)],
            "latency": f"{latency_s:.9f}s",
            "protocol": proto,
        }
        sev = "INFO" if status < 400 else ("WARNING" if status < 500 else "ERROR")
        pkey = "textPayload" if text is not None else None
        return (kind, "requests", sev, sev, 9, pkey, text, http, extra or self._trace(), (method, tmpl, status), None)

    def _latency(self, median_ms: float, sigma: float, lo_ms: float, hi_ms: float) -> float:
        """Lognormal latency in seconds, clipped to [lo_ms, hi_ms]."""
        v = math.exp(sigma * _NORMAL[int(self.rng.random() * _NORMAL_N)]) * median_ms
        return min(max(v, lo_ms), hi_ms) / 1000.0

    def _thread_path(self) -> str:
        return self.thread_ids[int(self.rng.random() * len(self.thread_ids))]

    def _user(self) -> str:
        return self.users[int(self.rng.random() * len(self.users))]

    def _off(self, lo_ms: float, hi_ms: float) -> int:
        return int((lo_ms + self.rng.random() * (hi_ms - lo_ms)) * _MS)

    def _ev_health(self) -> list:
        rng = self.rng
        ip = self.uptime_ips[int(rng.random() * 4)]
        lat = 0.0008 + rng.random() * 0.006
        return [(0, self._req("req_health", "GET", "/health", "/health", 200, lat, _UPTIME_UA, ip,
                              req_size=180, resp_size=94 + int(rng.random() * 6)))]

    def _ev_agents_404(self) -> list:
        return [(0, self._req("req_agents_404", "GET", "/api/agents", "/api/agents", 404,
                              self._latency(4, 0.5, 1, 60), resp_size=22))]

    def _ev_threads_403(self) -> list:
        path = f"/api/threads/{self._thread_path()}"
        return [(0, self._req("req_threads_403", "GET", path, "/api/threads/{id}", 403,
                              self._latency(6, 0.5, 1, 80), resp_size=30))]

    def _threads_200(self) -> _Line:
        q = "?limit=50" if self.rng.random() < 0.4 else ""
        path = f"/api/threads/{self._thread_path()}/messages{q}"
        return self._req("req_threads_200", "GET", path, "/api/threads/{id}/messages", 200,
                         self._latency(45, 0.6, 8, 900))

    def _ev_threads_200(self) -> list:
        return [(0, self._threads_200())]

    def _ev_threads_200_db(self) -> list:
        return [(0, self._threads_200()), (self._off(1, 12), self._db_created())]

    def _db_created(self) -> _Line:
        rng = self.rng
        text = f"{self._spell(rng, _T_DB_CREATED)} with proper service-to-service authentication " \
               f"(session_id=dbs_{rng.getrandbits(48):012x})"
        return self._app_line("db_session_created", "INFO", text)

    def _ev_new_thread(self) -> list:
        rng = self.rng
        text = f"{self._spell(rng, _T_THREAD)} - fixes '404: Thread not found' errors " \
               f"(thread_id=thread_{rng.getrandbits(64):016x})"
        return [(0, self._db_created()), (self._off(2, 30), self._app_line("thread_created", "INFO", text))]

    def _ws(self, lat: float) -> _Line:
        return self._req("req_ws_upgrade", "GET", "/ws", "/ws", 101, lat, req_size=620, resp_size=0)

    def _ev_ws_ok(self) -> list:
        return [(0, self._ws(self._latency(90_000, 1.4, 2_000, 3_600_000)))]

    def _ev_ws_no_jwt(self) -> list:
        return [(0, self._ws(self._latency(40, 0.5, 5, 500))),
                (self._off(2, 20), self._app_line("ws_rejected_no_jwt", "WARNING", _T_WS_REJECTED))]

    def _ev_ws_no_token(self) -> list:
        rng = self.rng
        line = self._ws(self._latency(60, 0.5, 5, 800))
        ip = line[7]["remoteIp"]
        conn = f"ws_conn_{rng.getrandbits(48):012x}"
        debug = {
            "connection_id": conn,
            "environment": "staging",
            "client": f"{ip}:{rng.randrange(20000, 65000)}",
            "headers": {
                "host": _BACKEND_HOST,
                "upgrade": "websocket",
                "connection": "Upgrade",
                "sec-websocket-version": "13",
                "sec-websocket-protocol": None,
                "authorization": None,
                "origin": "https://app.staging.netrasystems.ai",
            },
            "subprotocols": [],
            "query_params": {},
            "auth_sources_checked": ["authorization_header", "sec-websocket-protocol", "query_param"],
            "e2e_testing": False,
        }
        text = self._spell(rng, _T_NO_TOKEN_DEBUG) + orjson.dumps(debug, option=orjson.OPT_INDENT_2).decode()
        failure = self._spell(rng, _T_AUTH_FAILURE) + (
            "NO_TOKEN: No JWT=REDACTED found in WebSocket headers or subprotocols (close_connection: True)"
        )
        o1 = self._off(1, 8)
        o2 = o1 + self._off(0.2, 3)
        o3 = o2 + self._off(0.2, 3)
        return [(0, line), (o1, self._app_line("ws_no_token_debug", "ERROR", text)),
                (o2, self._app_line("ws_auth_failure", "CRITICAL", failure)),
                (o3, self._app_line("ws_rejected_no_jwt", "WARNING", _T_WS_REJECTED))]

    def _chat(self, status: int, lat: float, trace: dict) -> _Line:
        kind = "req_chat_200" if status == 200 else "req_chat_500"
        return self._req(kind, "POST", "/api/chat", "/api/chat", status, lat, extra=trace,
                         req_size=400 + int(self.rng.random() * 3000),
                         resp_size=(800 + int(self.rng.random() * 6000)) if status == 200 else 60)

    def _agent_json(self, lat: float, trace: dict) -> _Line:
        rng = self.rng
        payload = {
            "message": "Agent request completed",
            "agent": _AGENTS[int(rng.random() * len(_AGENTS))],
            "thread_id": f"thread_{rng.getrandbits(64):016x}",
            "run_id": f"run_{rng.getrandbits(48):012x}",
            "user_id": self._user(),
            "duration_ms": round(lat * 1000 * (0.7 + rng.random() * 0.25), 1),
            "tokens": {"prompt": 300 + int(rng.random() * 3000), "completion": 40 + int(rng.random() * 900)},
            "model": "gemini-2.5-flash",
            "status": "completed",
        }
        extra = {
            "trace": trace["trace"],
            "spanId": f"{rng.getrandbits(64):016x}",
            "sourceLocation": {"file": "/app/netra_backend/app/agents/supervisor.py", "line": "212",
                               "function": "execute"},
        }
        digits = 0 if rng.random() < 0.1 else 3
        return ("agent_request_json", "stdout", "INFO", "INFO", digits, "jsonPayload", payload, None, extra, None, None)

    def _completed(self, user: str) -> _Line:
        rng = self.rng
        text = (f"{self._spell(rng, _T_COMPLETED)}req_session_{rng.getrandbits(48):012x} completed successfully "
                f"for user_id='{user}', request_id='req_{rng.getrandbits(64):016x}'")
        return self._app_line("session_completed", "INFO", text)

    def _ev_chat_ok(self) -> list:
        lat = self._latency(600, 0.7, 150, 2500)
        trace = self._trace()
        lat_ns = int(lat * _NS)
        return [(0, self._chat(200, lat, trace)),
                (int(lat_ns * 0.85), self._agent_json(lat, trace)),
                (lat_ns, self._completed(self._user()))]

    def _ev_chat_ok_short(self) -> list:
        lat = self._latency(600, 0.7, 150, 2500)
        trace = self._trace()
        return [(0, self._chat(200, lat, trace)), (int(lat * _NS * 0.85), self._agent_json(lat, trace))]

    def _chat_500(self) -> tuple[_Line, int]:
        lat = self._latency(1500, 0.8, 40, 30000)
        return self._chat(500, lat, self._trace()), int(lat * _NS * 0.9)

    def _ev_chat_500_db(self) -> list:
        rng = self.rng
        line, off = self._chat_500()
        text = (f"{self._spell(rng, _T_CREATE_FAILED)}req_{rng.getrandbits(64):016x} for user_id='{self._user()}'. "
                f"{_CREATE_FAILED_ERRORS[int(rng.random() * 3)]}")
        return [(0, line), (off, self._app_line("session_create_failed", "ERROR", text))]

    def _ev_chat_500_tb(self) -> list:
        line, off = self._chat_500()
        return [(0, line), (off, self._tb_single())]

    def _ev_chat_500_tbs(self) -> list:
        line, off = self._chat_500()
        return [(0, line)] + [(off + o, ln) for o, ln in self._tb_split()]

    def _ev_malformed_503(self) -> list:
        rng = self.rng
        if rng.random() < 0.5:
            method, path, tmpl = "POST", "/api/chat", "/api/chat"
        else:
            tid = self._thread_path()
            method, path, tmpl = "GET", f"/api/threads/{tid}/messages", "/api/threads/{id}/messages"
        lat = self._latency(3000, 1.0, 5, 60000)
        return [(0, self._req("req_malformed_503", method, path, tmpl, 503, lat, resp_size=0, text=_T_MALFORMED))]

    def _ev_svc_session(self) -> list:
        user = "service:netra-backend" if self.rng.random() < 0.95 else self._user()
        return [(0, self._completed(user))]

    def _ev_db_session(self) -> list:
        return [(0, self._db_created())]

    def _ev_leaked(self) -> list:
        rng = self.rng
        text = (f"Detected leaked session req_session_{rng.getrandbits(48):012x} for user {self._user()}, "
                f"age: {30000 + int(rng.random() * 600000)}ms")
        return [(0, self._app_line("leaked_session", "WARNING", text))]

    def _ev_demo(self) -> list:
        return [(0, self._app_line("demo_mode_bypass", "WARNING", _T_DEMO))]

    def _ev_pylog(self) -> list:
        rng = self.rng
        logger, msg = _PYLOG[int(rng.random() * len(_PYLOG))]
        msg = msg.format(p=75 + int(rng.random() * 20), u=16 + int(rng.random() * 12), s=30,
                         ms=5000 + int(rng.random() * 20000), h=f"{rng.getrandbits(32):08x}",
                         n=50 + int(rng.random() * 400))
        sev = "DEFAULT" if rng.random() < 0.1 else None
        return [(0, ("pylog_warning", "stderr", sev, "WARNING", 6, "textPayload",
                     (logger, msg), None, None, None, ("pylog", None)))]

    def _ev_loguru(self) -> list:
        rng = self.rng
        mod, fn, ln, msg = _LOGURU[int(rng.random() * len(_LOGURU))]
        msg = msg.format(n=30 + int(rng.random() * 90), h=f"{rng.getrandbits(48):012x}")
        sev = "DEFAULT" if rng.random() < 0.1 else None
        return [(0, ("loguru_error", "stderr", sev, "ERROR", 6, "textPayload",
                     (mod, fn, ln, msg), None, None, None, ("loguru", None)))]

    def _ev_noise(self) -> list:
        rng = self.rng
        text = _NOISE[int(rng.random() * len(_NOISE))].format(n=1 + int(rng.random() * 300))
        sev = "DEFAULT" if rng.random() < 0.1 else None
        return [(0, ("stdout_noise", "stdout", sev, "DEFAULT", 6, "textPayload", text, None, None, None, None))]

    def _tb_frames(self, n: int) -> list[str]:
        rng = self.rng
        start = int(rng.random() * (len(_TB_FRAMES) - n + 1))
        return [f'  File "{f}", line {ln}, in {fn}' for f, ln, fn in _TB_FRAMES[start:start + n]]

    def _tb_single(self) -> _Line:
        rng = self.rng
        frames = self._tb_frames(3)
        body = "\n".join(f"{fr}\n    {code}" for fr, code in zip(
            frames, ("response = await func(request)", "raw_response = await run_endpoint_function(**values)",
                     "return await self._load(thread_id)"), strict=True))
        text = f"Traceback (most recent call last):\n{body}\n{_TB_ERRORS[int(rng.random() * 3)]}"
        sev = "DEFAULT" if rng.random() < 0.1 else None
        return ("traceback_single", "stderr", sev, "ERROR", 6, "textPayload", text, None, None, None, None)

    def _ev_tb_single(self) -> list:
        return [(0, self._tb_single())]

    def _tb_split(self) -> list[tuple[int, _Line]]:
        rng = self.rng
        texts = ["Traceback (most recent call last):", *self._tb_frames(2), _TB_ERRORS[int(rng.random() * 3)]]
        out = []
        off = 0
        for i, text in enumerate(texts):
            eff = "ERROR" if i == 0 else "DEFAULT"
            sev = "DEFAULT" if rng.random() < 0.1 else None
            out.append((off, ("traceback_split", "stderr", sev, eff, 6, "textPayload", text, None, None, None, None)))
            off += 7_000 + int(rng.random() * 30_000)  # a few microseconds apart
        return out

    def _ev_tb_split(self) -> list:
        return self._tb_split()

    def _ev_cache_miss(self) -> list:
        rng = self.rng
        text = f"Cache miss for key user:{self._user()}:profile after {1 + int(rng.random() * 250)}ms"
        return [(0, ("cache_miss_warning", "stdout", "WARNING", "WARNING", 6, "textPayload", text, None, None, None,
                     ("template", "Cache miss for key user:<*>:profile after <*>ms")))]

    def _ev_redis_retry(self) -> list:
        rng = self.rng
        text = (f"Retrying Redis connection to 10.0.{int(rng.random() * 8)}.{2 + int(rng.random() * 250)}:6379 "
                f"(attempt {1 + int(rng.random() * 5)})")
        return [(0, ("redis_retry_warning", "stdout", "WARNING", "WARNING", 6, "textPayload", text, None, None, None,
                     ("template", "Retrying Redis connection to 10.0.<*>.<*>:6379 (attempt <*>)")))]

    def _ev_rate_limit(self) -> list:
        rng = self.rng
        text = (f"Rate limiter fallback engaged for tenant {rng.getrandbits(64):016x} "
                f"(limit {(1 + int(rng.random() * 12)) * 10}/min)")
        return [(0, ("rate_limiter_fallback", "stdout", "WARNING", "WARNING", 6, "textPayload", text, None, None, None,
                     ("template", "Rate limiter fallback engaged for tenant <*> (limit <*>/min)")))]

    def _auth_req(self, status: int) -> _Line:
        rng = self.rng
        kind = "auth_verify_200" if status == 200 else "auth_verify_401"
        return self._req(kind, "POST", "/auth/verify", "/auth/verify", status, self._latency(12, 0.5, 2, 400),
                         ua="python-httpx/0.28.1", ip=self.egress_ips[int(rng.random() * 3)], host=_AUTH_HOST,
                         req_size=900 + int(rng.random() * 200), resp_size=(420 if status == 200 else 64),
                         proto="HTTP/2.0")

    def _ev_auth_ok(self) -> list:
        return [(0, self._auth_req(200))]

    def _ev_auth_ok_issued(self) -> list:
        rng = self.rng
        payload = {
            "message": "Access token issued",
            "event": "token_issued",
            "user_id": self._user(),
            "token_type": "access",
            "expires_in": 900,
            "client_id": "netra-backend",
        }
        digits = 0 if rng.random() < 0.3 else 3
        line = ("auth_token_issued", "stdout", "INFO", "INFO", digits, "jsonPayload", payload, None, None, None, None)
        return [(0, self._auth_req(200)), (self._off(1, 10), line)]

    def _ev_auth_401(self) -> list:
        return [(0, self._auth_req(401))]

    # -- the stream ----------------------------------------------------------------------------

    def _ordered(self) -> Iterator[tuple[int, _Target, dict | None, _Line]]:
        """All lines as (t, target, labels, line) in time order: the skeleton, plus background
        events filling the other ``entries - len(skeleton)`` slots at sorted uniform times, split
        over the revisions by traffic (baseline, then a linear shift to the canary)."""
        skeleton, route = self._skeleton()
        n_slots = max(0, self.config.entries - len(skeleton))
        # pending lines ordered by (time, sequence): the skeleton, and the later lines of events
        heap: list = []
        seq = 0
        for t, tgt, labels, line in skeleton:
            heappush(heap, (t, seq, tgt, labels, line))
            seq += 1

        rand = self.rng.random
        mixes = self._mixes()
        base_ready, can_ready = route["base_ready"], route["can_ready"]
        base_times = [t for t, _ in base_ready]
        can_times = [t for t, _ in can_ready]
        base_first = base_times[0]
        c_ready, shift_end = route["c_ready"], route["shift_end"]
        shift_len = max(1, shift_end - c_ready)
        second = self.config.second_service
        auth_share = 0.15 if second else 0.0
        auth_labels = [self._instance_labels(), self._instance_labels()]
        lo = self.start_ns if second else base_first
        span = self.end_ns - lo
        end_1 = self.end_ns - 1
        targets = (self.t_base, self.t_canary, self.t_auth)
        u = 0.0
        remaining = n_slots
        while remaining > 0:
            # the next of `remaining` sorted uniform times
            u = 1.0 - (1.0 - u) * rand() ** (1.0 / remaining)
            t = lo + int(u * span)
            if t > end_1:
                t = end_1
            if t < base_first or rand() < auth_share:
                w, labels = 2, auth_labels[rand() < 0.5]
            else:
                if t < c_ready:
                    w = 0
                elif t >= shift_end:
                    w = 1
                else:
                    w = 1 if rand() * shift_len < t - c_ready else 0
                if w:
                    labels = can_ready[int(rand() * bisect_right(can_times, t))][1]
                else:
                    labels = base_ready[int(rand() * bisect_right(base_times, t))][1]
            mix = mixes[w]
            tgt = targets[w]
            lines = mix.builders[mix.pick(rand(), remaining)]()
            remaining -= 1
            while heap and heap[0][0] <= t:
                item = heappop(heap)
                yield item[0], item[2], item[3], item[4]
            # the event's first line is due now; the others wait in the heap
            yield t, tgt, labels, lines[0][1]
            for off, line in lines[1:]:
                heappush(heap, (t + off, seq, tgt, labels, line))
                seq += 1
                # the event's other entries use up slots too
                u = 1.0 - (1.0 - u) * rand() ** (1.0 / remaining)
                remaining -= 1
        while heap:
            item = heappop(heap)
            yield item[0], item[2], item[3], item[4]

    def _generate(self) -> Iterator[dict]:
        self._setup()
        truth = self.truth
        n_total = self.config.entries
        if n_total == 0:
            return
        rand = self.rng_emit.random
        getrandbits = self.rng_emit.getrandbits
        cache: dict[int, str] = {}
        strftime, gmtime = time.strftime, time.gmtime
        log_names = self.log_names
        sev_num = SEVERITY_NUM
        kinds = truth.kinds
        endpoints = truth.endpoints
        eff_counter = truth.effective_severity
        by_rev = truth.by_revision
        end_1 = self.end_ns - 1
        last = 0
        finer = {0: 3, 3: 6, 6: 9}
        units = {0: _NS, 3: _MS, 6: _US}
        # insertId: hex seconds, entry number, random bits (24 hex digits up to 16.7M entries)
        iid_bits = 4 * max(6, len(f"{n_total:x}"))
        iid_mask = (1 << iid_bits) - 1
        iid_fmt = f"%0{8 + iid_bits // 4 + 10}x"
        iid_shift = iid_bits + 40
        ns, ms = _NS, _MS

        for emitted, (t, tgt, labels, line) in enumerate(self._ordered(), 1):
            kind, log, sev, eff, digits, pkey, payload, http, extra, endpoint, note = line
            # timestamp: ascending, at the wanted precision when that keeps the order
            if t > end_1:
                t = end_1
            if t < last:
                t = last
            while digits < 9:
                tf = t - t % units[digits]
                if tf >= last:
                    t = tf
                    break
                digits = finer[digits]
            last = t
            sec, frac = divmod(t, ns)
            p = cache.get(sec)
            if p is None:
                if len(cache) > 512:
                    cache.clear()
                p = cache[sec] = strftime("%Y-%m-%dT%H:%M:%S", gmtime(sec))
            if digits == 9:
                ts = f"{p}.{frac:09d}Z"
            else:
                suffix = "+00:00" if rand() < 0.05 and log != "activity" else "Z"
                if digits == 6:
                    ts = f"{p}.{frac // 1000:06d}{suffix}"
                elif digits == 3:
                    ts = f"{p}.{frac // 1000000:03d}{suffix}"
                else:
                    ts = p + suffix
            x = rand()
            rt = t + 15 * ms + int(x * x * x * 1_400 * ms)
            rsec, rfrac = divmod(rt, ns)
            rp = cache.get(rsec)
            if rp is None:
                rp = cache[rsec] = strftime("%Y-%m-%dT%H:%M:%S", gmtime(rsec))
            if log == "activity":
                iid = "-" + "".join(_ALNUM[int(rand() * 36)] for _ in range(12))
            else:
                iid = iid_fmt % ((sec << iid_shift) | ((emitted & iid_mask) << 40) | getrandbits(40))
            if note is not None:
                tag = note[0]
                if tag == "pylog":
                    payload = f"{_text_time(t, 'pylog')} - {payload[0]} - WARNING - {payload[1]}"
                elif tag == "loguru":
                    mod, fn, ln, msg = payload
                    payload = (f"\x1b[32m{_text_time(t, 'loguru')}\x1b[0m | \x1b[31m\x1b[1mERROR   \x1b[0m | "
                               f"\x1b[36m{mod}\x1b[0m:\x1b[36m{fn}\x1b[0m:\x1b[36m{ln}\x1b[0m - "
                               f"\x1b[31m\x1b[1m{msg}\x1b[0m")
                elif tag == "template":
                    truth.unclassified_templates[(tgt.revision, note[1])] += 1
                else:
                    truth.secrets.append(note[1])
            entry: dict[str, Any] = {
                "logName": log_names[log],
                "resource": tgt.resource,
                "timestamp": ts,
                "receiveTimestamp": f"{rp}.{rfrac:09d}Z",
            }
            if sev is not None:
                entry["severity"] = sev
            entry["insertId"] = iid
            if http is not None:
                entry["httpRequest"] = http
            if pkey is not None:
                entry[pkey] = payload
            if labels is not None:
                entry["labels"] = labels
            if extra is not None:
                entry.update(extra)
            # truth
            rtr = tgt.truth
            if rtr.entries == 0:
                by_rev[(tgt.service, tgt.revision)] = rtr
            rtr.entries += 1
            if sev_num[eff] >= _ERROR_NUM:
                rtr.errors += 1
            if http is not None:
                rtr.requests += 1
                status = endpoint[2]
                if status >= 500:
                    rtr.status_5xx += 1
                elif status >= 400:
                    rtr.status_4xx += 1
                endpoints[(tgt.service, *endpoint)] += 1
            kinds[(tgt.service, tgt.revision, kind)] += 1
            eff_counter[eff] += 1
            if kind == "deploy_audit":
                truth.deploys.append((tgt.service, payload["response"]["status"]["latestCreatedRevisionName"], ts))
            truth.entries = emitted
            yield entry
            if emitted >= n_total:
                return


# --------------------------------------------------------------------------------------------
# convenience and files
# --------------------------------------------------------------------------------------------


def sample_entries(config: SampleConfig = SampleConfig()) -> tuple[list[dict], SampleTruth]:  # noqa: B008
    """All entries (independent copies, ascending time) and the truth; for small sizes.

    >>> entries, truth = sample_entries(SampleConfig(entries=200, second_service=False))
    >>> {e["resource"]["labels"]["service_name"] for e in entries}
    {'netra-backend-staging'}
    """
    gen = SampleGenerator(config)
    entries = [orjson.loads(orjson.dumps(e)) for e in gen]
    return entries, gen.truth


class _YamlDumper(yaml.SafeDumper):
    """gcloud-style YAML: sorted keys, multi-line strings as literal blocks, emoji as they are."""


class _YamlFastDumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # type: ignore[misc]
    """The same with libyaml (5x faster), which however escapes characters beyond U+FFFF."""


def _yaml_str(dumper: yaml.SafeDumper, data: str) -> yaml.Node:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_YamlDumper.add_representer(str, _yaml_str)
_YamlFastDumper.add_representer(str, _yaml_str)

_FMTS = ("jsonl", "json", "yaml")


def _reverse_chunks(f: BinaryIO, sep: bytes, block: int = 1 << 20) -> Iterator[bytes]:
    """Chunks of a `sep`-terminated file, last first, in bounded memory."""
    f.seek(0, os.SEEK_END)
    pos = f.tell()
    tail = b""
    while pos > 0:
        n = min(block, pos)
        pos -= n
        f.seek(pos)
        parts = (f.read(n) + tail).split(sep)
        tail = parts[0]
        for part in reversed(parts[1:]):
            if part:
                yield part
    if tail:
        yield tail


def write_sample(
    path: str | Path,
    config: SampleConfig = SampleConfig(),  # noqa: B008
    *,
    fmt: str = "jsonl",
) -> SampleTruth:
    """Write a sample file and return its truth.

    fmt: ``jsonl`` (one entry per line, ascending time), ``json`` (one pretty-printed JSON array
    with sorted keys, NEWEST FIRST like ``gcloud logging read --format=json``), ``yaml``
    (gcloud-style YAML documents with sorted keys separated by ``---``, ascending time). A path
    ending in ``.gz`` is gzip-compressed (deterministic header: no name, mtime 0). Streaming in
    constant memory (the json array is spooled to a temporary file and read back from its end);
    written to a temporary file in the same directory, then ``os.replace()``d.

    >>> import gzip, pathlib, tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     truth = write_sample(pathlib.Path(d) / "s.jsonl.gz", SampleConfig(entries=150))
    ...     lines = gzip.decompress((pathlib.Path(d) / "s.jsonl.gz").read_bytes()).splitlines()
    >>> len(lines) == truth.entries == 150
    True
    """
    if fmt not in _FMTS:
        raise UsageError(f"unknown sample format {fmt!r}; use one of {', '.join(_FMTS)}")
    path = Path(path)
    parent = path.parent
    if not parent.is_dir():
        raise InputError(f"directory does not exist: {parent}")
    gen = SampleGenerator(config)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=parent)
    spool_path: str | None = None
    try:
        with os.fdopen(fd, "wb") as raw:
            sink: BinaryIO = raw
            if path.name.endswith(".gz"):
                sink = gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6)  # type: ignore[assignment]
            out = _BackgroundWriter(sink)
            try:
                if fmt == "jsonl":
                    _write_jsonl(out, gen)
                elif fmt == "yaml":
                    _write_yaml(out, gen)
                else:
                    sfd, spool_path = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".spool", dir=parent)
                    with os.fdopen(sfd, "w+b") as spool:
                        _write_json_newest_first(out, gen, spool)
            finally:
                out.stop()
                if sink is not raw:
                    sink.close()
            out.check()
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    finally:
        if spool_path is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(spool_path)
    return gen.truth


class _BackgroundWriter:
    """Writes chunks on a thread, in order: file writes and zlib release the GIL, so writing and
    compressing overlap with generating. At most `depth` chunks wait (bounded memory)."""

    def __init__(self, out: BinaryIO, depth: int = 8) -> None:
        self._out = out
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="logaudit-sample-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            chunk = self._queue.get()
            if chunk is None:
                return
            if self._error is None:
                try:
                    self._out.write(chunk)
                except BaseException as exc:  # re-raised in the producing thread
                    self._error = exc

    def write(self, chunk: bytes) -> None:
        self.check()
        self._queue.put(chunk)

    def stop(self) -> None:
        """Wait until everything queued is written (never raises)."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    def check(self) -> None:
        if self._error is not None:
            raise self._error


def _write_batched(out: BinaryIO | _BackgroundWriter, chunks: Iterable[bytes], batch: int = 2000) -> None:
    buf: list[bytes] = []
    append = buf.append
    for chunk in chunks:
        append(chunk)
        if len(buf) >= batch:
            out.write(b"".join(buf))
            buf.clear()
    if buf:
        out.write(b"".join(buf))


def _write_jsonl(out: BinaryIO | _BackgroundWriter, entries: Iterable[dict]) -> None:
    dumps = orjson.dumps
    opt = orjson.OPT_APPEND_NEWLINE
    _write_batched(out, (dumps(e, option=opt) for e in entries))


def _write_yaml(out: BinaryIO | _BackgroundWriter, entries: Iterable[dict]) -> None:
    def docs() -> Iterator[bytes]:
        first = True
        opts = {"sort_keys": True, "allow_unicode": True, "default_flow_style": False, "width": 4096,
                "encoding": "utf-8"}
        for e in entries:
            text = yaml.dump(e, Dumper=_YamlFastDumper, **opts)
            if b"\\U" in text:  # an escaped emoji: gcloud prints it as it is
                text = yaml.dump(e, Dumper=_YamlDumper, **opts)
            if first:
                first = False
                yield text
            else:
                yield b"---\n" + text

    _write_batched(out, docs(), batch=200)


def _write_json_newest_first(out: BinaryIO | _BackgroundWriter, entries: Iterable[dict], spool: BinaryIO) -> None:
    # NUL never occurs in JSON text (control characters are escaped), so it separates elements.
    dumps = orjson.dumps
    opt = orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS
    _write_batched(spool, (b"  " + dumps(e, option=opt).replace(b"\n", b"\n  ") + b"\0" for e in entries))
    spool.flush()
    if spool.tell() == 0:
        out.write(b"[]\n")
        return
    out.write(b"[\n")

    def elements() -> Iterator[bytes]:
        first = True
        for chunk in _reverse_chunks(spool, b"\0"):
            if first:
                first = False
                yield chunk
            else:
                yield b",\n" + chunk

    _write_batched(out, elements(), batch=500)
    out.write(b"\n]\n")
