"""The aggregates the analyses speak in, and the `Engine` protocol that computes them.

Summary, compare and the report need a handful of aggregates of one window of logs: counts per
revision, latency histograms, endpoint x status counts, pattern counts, unclassified template
counts and time series. They are defined here once, as small typed values that do not depend on
where the logs are: an `Engine` computes them for a `Window` (since/until, service, revision) and
only they cross the engine boundary (a few thousand rows at most, never entries). The DuckDB
engine over the local store is `logaudit.analysis.engine_duckdb.DuckDBEngine` (`Audit(store).engine`);
the BigQuery one is `logaudit.analysis.engine_warehouse.WarehouseEngine`. See docs/analysis.md.

>>> engine = Audit("logaudit-store").engine                                  # doctest: +SKIP
>>> [(r.revision, r.errors) for r in engine.revisions(Window(service="api"))]  # doctest: +SKIP

Conventions: timestamps are aware UTC datetimes (pandas Timestamps where an engine has
nanoseconds), None where there is no value; log text (examples) is returned as stored: consumers
redact it; request paths are normalized (`window.normalize_path`) and redacted by the engine, so
that endpoints merge after redaction.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Protocol, runtime_checkable

import pyarrow as pa

from logaudit.analysis.comparison import LATENCY_BINS_PER_E
from logaudit.analysis.templates import group_templates
from logaudit.analysis.window import Window
from logaudit.catalog.catalog import CATEGORIES

#: Latency percentiles every engine reports per revision (and p95 per endpoint).
QUANTILES = {"p50": 0.5, "p95": 0.95, "p99": 0.99}
#: Key of `PatternStats.by_revision` for matches of entries without a revision.
NO_REVISION = "(none)"


# ============================================================================ per revision
@dataclass(frozen=True)
class RevisionStats:
    """What one (service, revision) adds up to in a window.

    `errors`: entries with effective severity >= ERROR; `requests`: entries with an HTTP status;
    latency figures leave out WebSocket upgrades (status 101), whose latency is how long the
    connection stayed open. Percentiles are exact (continuous quantiles) where the engine can;
    `latency_n`/`latency_sum` give the mean. `deploy_time`: the first audit-log entry naming the
    revision. `traffic_share`: this revision's share of its service's requests among the
    revisions of the same call (None when the service had no request). `instance_starts`: None
    when the engine does not count them.
    """

    service: str | None
    revision: str
    first_seen: datetime
    last_seen: datetime
    deploy_time: datetime | None
    entries: int
    errors: int
    requests: int
    status_4xx: int
    status_5xx: int
    latency_n: int
    latency_sum: float | None
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    latency_p99_ms: float | None
    traffic_share: float | None
    instance_starts: int | None = None

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.entries if self.entries else None

    @property
    def request_error_rate(self) -> float | None:
        return self.status_5xx / self.requests if self.requests else None

    @property
    def latency_mean(self) -> float | None:
        return self.latency_sum / self.latency_n if self.latency_n and self.latency_sum is not None else None

    @property
    def latency_ms(self) -> dict[str, float | None]:
        return {"p50": self.latency_p50_ms, "p95": self.latency_p95_ms, "p99": self.latency_p99_ms}


@dataclass(frozen=True)
class Totals:
    """Entries of a window (after its service/revision filters) and the services they come from."""

    entries: int
    services: list[str]


# ============================================================================ latency
def latency_bin(ms: float) -> int:
    """The histogram bin of a latency: round(ln(max(ms, 0.001)) * LATENCY_BINS_PER_E), halves away from zero.

    >>> latency_bin(100.0)
    921
    """
    x = math.log(max(ms, 0.001)) * LATENCY_BINS_PER_E
    return int(math.floor(x + 0.5)) if x >= 0 else -int(math.floor(-x + 0.5))


def bin_bounds(b: int) -> tuple[float, float]:
    """The latencies (ms) bin `b` holds: [exp((b - 0.5) / k), exp((b + 0.5) / k)), k = LATENCY_BINS_PER_E."""
    return math.exp((b - 0.5) / LATENCY_BINS_PER_E), math.exp((b + 0.5) / LATENCY_BINS_PER_E)


@dataclass(frozen=True)
class LatencyHistogram:
    """Request latencies of one (service, revision) as counts per fixed log-spaced bin.

    Bins are 1/LATENCY_BINS_PER_E wide in ln(ms) (0.5 %): every engine gets the same counts
    (`latency_bin` in SQL: ``round(ln(greatest(ms, 0.001)) * 200)``), histograms of days or
    revisions merge by adding counts, and a percentile read from them is within one bin of the
    exact one. Status 101 (WebSocket upgrades) is left out, as for the percentiles.
    """

    service: str | None
    revision: str
    counts: Mapping[int, int] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return sum(self.counts.values())

    def merge(self, other: LatencyHistogram) -> LatencyHistogram:
        out = dict(self.counts)
        for b, c in other.counts.items():
            out[b] = out.get(b, 0) + c
        return LatencyHistogram(self.service, self.revision, out)

    def quantile(self, q: float) -> float | None:
        """The centre (ms) of the bin holding the `q` quantile (nearest rank), None when empty."""
        total = self.n
        if not total:
            return None
        rank = max(1, math.ceil(q * total))
        seen = 0
        for b in sorted(self.counts):
            seen += self.counts[b]
            if seen >= rank:
                return math.exp(b / LATENCY_BINS_PER_E)
        return None  # pragma: no cover - rank <= total


# ============================================================================ endpoints
@dataclass(frozen=True)
class EndpointStats:
    """Requests per (service, method, normalized path, status): count, share of the service's
    requests in the call's rows, p95 latency (ms, exact where the engine can; 101s left out)."""

    service: str | None
    method: str | None
    path: str | None
    status: int
    count: int
    share: float | None
    latency_p95_ms: float | None


# ============================================================================ patterns and templates
@dataclass(frozen=True)
class PatternStats:
    """Entries one catalog pattern matched in the window: count, first and last match, count per
    revision (`NO_REVISION` for entries without one; revisions in sorted order) and the text of
    the latest match (as stored; None when not asked for)."""

    id: str
    count: int
    first_seen: datetime
    last_seen: datetime
    by_revision: dict[str, int]
    example: str | None = None


@dataclass(frozen=True)
class TemplateStats:
    """Messages at or above a severity that no pattern matched, grouped by template, per (service,
    revision): count, highest severity number, first and last seen, the latest message (as stored)."""

    template: str
    service: str | None
    revision: str | None
    count: int
    max_severity: int
    first_seen: datetime
    last_seen: datetime
    example: str | None


@dataclass(frozen=True)
class TemplateTotal:
    """One template over a window: `TemplateStats` rows merged (`merge_templates_by_text`)."""

    template: str
    count: int
    first_seen: datetime
    last_seen: datetime
    revisions: list[str]
    max_severity: int
    example: str | None


def grouping(templates: Iterable[str]) -> dict[str, str]:
    """Each first-stage template (the masks of `templates.template`) -> its template under the
    one grouping every output uses (`templates.group_templates`, over all of them at once)."""
    keys = sorted(set(templates))
    return dict(zip(keys, group_templates(keys), strict=True))


def group_template_stats(rows: Iterable[TemplateStats]) -> list[TemplateStats]:
    """`rows` with their templates grouped (`grouping`), to merge with `merge_templates_by_text`."""
    rows = list(rows)
    to = grouping(r.template for r in rows)
    return [replace(r, template=to[r.template]) for r in rows]


def merge_templates_by_text(rows: Iterable[TemplateStats], limit: int | None = None) -> list[TemplateTotal]:
    """Per template: counts summed, first/last seen, the sorted revisions, the highest severity and
    the latest example (ties: the greatest text); most frequent first, then by template."""
    acc: dict[str, list] = {}
    for r in rows:
        cur = acc.get(r.template)
        if cur is None:
            acc[r.template] = [r.count, r.first_seen, r.last_seen, {r.revision} - {None}, r.max_severity,
                               (r.last_seen, r.example)]
            continue
        cur[0] += r.count
        cur[1] = min(cur[1], r.first_seen)
        cur[2] = max(cur[2], r.last_seen)
        if r.revision is not None:
            cur[3].add(r.revision)
        cur[4] = max(cur[4], r.max_severity)
        cur[5] = max(cur[5], (r.last_seen, r.example), key=_example_key)
    out = [TemplateTotal(t, n, lo, hi, sorted(revs), sev, ex[1]) for t, (n, lo, hi, revs, sev, ex) in acc.items()]
    out.sort(key=lambda t: (-t.count, t.template))
    return out[:limit] if limit else out


def _example_key(pair: tuple[datetime, str | None]) -> tuple[datetime, bool, str]:
    ts, text = pair
    return ts, text is not None, text or ""


def latest_example(rows: Iterable[TemplateStats]) -> str | None:
    """The example of the latest of `rows` (ties: the greatest text), None for no rows."""
    best = max(((r.last_seen, r.example) for r in rows), key=_example_key, default=None)
    return None if best is None else best[1]


# ============================================================================ health
#: Catalog patterns (patterns/cloud_run.yaml) that mark the health facts of an instance start:
#: the platform's start line, a start that ends in failure (the worker or the application never
#: booted, the container exited with an error), the platform's startup probe giving up, and the
#: application being ready. The rules stay in the catalog; these ids only say which rules count.
START_PATTERNS = ("instance-started",)
BOOT_FAILURE_PATTERNS = ("gunicorn-worker-boot-failed", "gunicorn-app-load-failed", "application-startup-failed",
                         "container-exit")
STARTUP_PROBE_PATTERNS = ("startup-probe-failed", "container-failed-to-listen")
READY_PATTERNS = ("application-startup-complete",)
#: `HealthStats.evidence` kinds.
HEALTH_KINDS = ("start", "boot_failure", "startup_probe", "ready", "request", "failed_request")


@dataclass(frozen=True)
class HealthEvidence:
    """Entries of one kind of health fact: how many, first and last, the latest one's text (as stored)."""

    entries: int
    first_seen: datetime | None
    last_seen: datetime | None
    example: str | None


@dataclass(frozen=True)
class HealthStats:
    """Health facts of one (service, revision) in a window, per instance start.

    An instance start is an entry of a `START_PATTERNS` pattern; the entries of the same instance
    (`instance_id`; entries without one count as one instance) up to its next start belong to it.
    `failed_starts`: starts with a `BOOT_FAILURE_PATTERNS` entry; `probe_failed_starts`: with a
    `STARTUP_PROBE_PATTERNS` entry; `ready_starts`: with a `READY_PATTERNS` entry or a successful
    request. Entries of an instance before its first start in the window count in `evidence` but
    in no start. `successful_requests`: status 200-399 (a WebSocket upgrade, 101, is not one).
    `evidence`: per `HEALTH_KINDS` kind with an entry (`failed_request`: requests with a status
    outside 200-399 other than 101).
    """

    service: str | None
    revision: str
    instance_starts: int
    failed_starts: int
    probe_failed_starts: int
    ready_starts: int
    requests: int
    successful_requests: int
    evidence: dict[str, HealthEvidence] = field(default_factory=dict)


@dataclass(frozen=True)
class RootCause:
    """The first error of instance starts: per (service, revision) and root-cause line, how many
    starts logged it first, first and last time, the latest such entry's text (as stored).

    The first error of a start is its first entry with effective severity >= ERROR that is not a
    request log; its root-cause line is the last non-blank line of the message when the message
    holds a Python traceback (``Traceback (most recent call last):``), else its first non-blank
    line, unmasked (`ModuleNotFoundError: No module named 'app.monitoring'`).
    """

    service: str | None
    revision: str
    line: str
    starts: int
    first_seen: datetime
    last_seen: datetime
    example: str | None


# ============================================================================ time series
#: `Engine.timeline`: per time bucket and (service, revision) of the window, zero-filled from the
#: bucket holding `since` (else the first entry) to `until` (else the last entry).
TIMELINE_SCHEMA = pa.schema([
    ("bucket", pa.timestamp("us", tz="UTC")),   # bucket start, a multiple of the step since the epoch
    ("service", pa.string()), ("revision", pa.string()),
    ("entries", pa.int64()), ("errors", pa.int64()), ("error_rate", pa.float64()),
    ("requests", pa.int64()), ("status_5xx", pa.int64()), ("request_error_rate", pa.float64()),
    *((c, pa.int64()) for c in CATEGORIES),     # pattern matches per category
])
#: `Engine.status_series`: requests per time bucket and status class ("2xx", ...), over the
#: window's entries with an HTTP status (revision or not); buckets without requests are absent.
STATUS_SERIES_SCHEMA = pa.schema([
    ("bucket", pa.timestamp("ns", tz="UTC")), ("status_class", pa.string()), ("requests", pa.int64()),
])


def step_ns(step: timedelta) -> int:
    """A bucket width in nanoseconds (whole microseconds)."""
    return int(step / timedelta(microseconds=1)) * 1000


# ============================================================================ the engine
@runtime_checkable
class Engine(Protocol):
    """Computes the aggregates of a window of logs; only aggregates leave it.

    Every method takes a `Window`: `since <= timestamp < until` (None: unbounded) and exact
    `service` / `revision` filters. Results are ordered as documented per method, so that two
    engines over the same entries return equal values (tested for DuckDB against the outputs).
    """

    name: str

    def hold(self) -> AbstractContextManager[None]:
        """Within the block the engine may reuse work between calls (e.g. loaded aggregates of
        one span); outside, each call stands alone. Blocks nest."""
        ...

    def totals(self, window: Window) -> Totals:
        """Entries and the sorted services of the window."""
        ...

    def revisions(self, window: Window, *, percentiles: bool = True) -> list[RevisionStats]:
        """Per (service, revision), revisions not None; by service, first seen, revision.
        `percentiles=False`: latency percentiles None (not computed)."""
        ...

    def latency_histograms(self, window: Window) -> list[LatencyHistogram]:
        """Per (service, revision) with a latency; by service, revision."""
        ...

    def endpoints(self, window: Window) -> list[EndpointStats]:
        """Per (service, method, path, status); by service, count (descending), path, method, status."""
        ...

    def patterns(self, window: Window, *, examples: bool = True) -> list[PatternStats]:
        """Per pattern with a match in the window; by id. `examples=False`: no example text."""
        ...

    def templates(self, window: Window, *, min_severity: int) -> list[TemplateStats]:
        """Per (template, service, revision) of unmatched messages at `min_severity` or above."""
        ...

    def health(self, window: Window) -> list[HealthStats]:
        """Per (service, revision) with an entry counted by the health facts; by service, revision."""
        ...

    def root_causes(self, window: Window) -> list[RootCause]:
        """Per (service, revision, root-cause line); by service, revision, starts (descending), line."""
        ...

    def timeline(self, window: Window, step: timedelta) -> pa.Table:
        """`TIMELINE_SCHEMA`, by bucket, service, revision."""
        ...

    def status_series(self, window: Window, step: timedelta) -> pa.Table:
        """`STATUS_SERIES_SCHEMA`, by bucket, status class."""
        ...

    def close(self) -> None:
        ...


__all__ = ["BOOT_FAILURE_PATTERNS", "CATEGORIES", "HEALTH_KINDS", "NO_REVISION", "QUANTILES", "READY_PATTERNS",
           "START_PATTERNS", "STARTUP_PROBE_PATTERNS", "STATUS_SERIES_SCHEMA", "TIMELINE_SCHEMA", "Engine",
           "EndpointStats", "HealthEvidence", "HealthStats", "LatencyHistogram", "PatternStats", "RevisionStats",
           "RootCause", "TemplateStats", "TemplateTotal", "Totals", "bin_bounds", "latency_bin", "latest_example",
           "merge_templates_by_text", "step_ns", "grouping", "group_template_stats"]
