"""`WarehouseEngine`: the `aggregates.Engine` over a BigQuery log dataset.

Every aggregate is one GoogleSQL query (`warehouse_sql`) over the source's entry view, run by a
`logaudit.warehouse.runner.Runner`: in BigQuery (`BigQueryRunner`), or transpiled on DuckDB over
tables shaped like BigQuery's (`DuckDBRunner`, the tests' and the benchmark's). Only aggregates
come back. Catalog patterns run inside the query as RE2 (`catalog.pushdown`); a pattern RE2
cannot run exactly has its candidate texts fetched once per time range and checked here with
`regex`, and the texts that match go back into the queries as a parameter.

>>> engine = WarehouseEngine(runner, WarehouseSource.all_logs("p.d._AllLogs"), catalog, redactor)  # doctest: +SKIP
>>> engine.revisions(Window(service="api"))                                                           # doctest: +SKIP
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pyarrow as pa

import logaudit.analysis.warehouse_sql as q
from logaudit.analysis.aggregates import (
    BOOT_FAILURE_PATTERNS,
    CATEGORIES,
    NO_REVISION,
    READY_PATTERNS,
    START_PATTERNS,
    STARTUP_PROBE_PATTERNS,
    STATUS_SERIES_SCHEMA,
    TIMELINE_SCHEMA,
    EndpointStats,
    HealthEvidence,
    HealthStats,
    LatencyHistogram,
    PatternStats,
    RevisionStats,
    RootCause,
    TemplateStats,
    Totals,
)
from logaudit.analysis.templates import template
from logaudit.analysis.window import Window
from logaudit.catalog.pushdown import PatternSQL, pattern_sql
from logaudit.core.errors import WarehouseError
from logaudit.warehouse.runner import Runner
from logaudit.warehouse.source import WarehouseSource

#: Distinct texts a time range may hold for the patterns that are checked locally (prefilter
#: candidates, local-only patterns); more is refused rather than fetched.
MAX_CANDIDATES = 200_000
_LINE_BREAK = re.compile(r"\r\n|\n|\r")
_NOT_BLANK = re.compile(r"[^\t\n\f\r ]")
_TRACEBACK = "Traceback (most recent call last):"
_MARKS = {"start": START_PATTERNS, "boot_failure": BOOT_FAILURE_PATTERNS, "startup_probe": STARTUP_PROBE_PATTERNS,
          "ready": READY_PATTERNS}


class WarehouseEngine:
    """Aggregates of `source` computed where it lives (`runner`), with `catalog`'s patterns;
    request paths are redacted with `redactor` (other texts are returned as stored)."""

    def __init__(self, runner: Runner, source: WarehouseSource, catalog: Any, redactor: Any, *,
                 max_candidates: int = MAX_CANDIDATES) -> None:
        self.runner = runner
        self.source = source
        self.catalog = catalog
        self.redactor = redactor
        self.name = runner.name
        self.max_candidates = max_candidates
        self.pushed: list[PatternSQL] = [pattern_sql(p) for p in catalog]
        self._depth = 0
        self._memo: dict[tuple, Any] = {}
        self._confirmed: list[tuple[Window, dict[int, list[str]]]] = []

    # ------------------------------------------------------------------ plumbing
    @contextmanager
    def hold(self, aggregates: Any = None) -> Iterator[None]:
        """Within the block an aggregate asked twice for the same window runs one query."""
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
            if self._depth == 0:
                self._memo.clear()

    def _once(self, key: tuple, compute: Callable[[], Any]) -> Any:
        if key in self._memo:
            return self._memo[key]
        value = compute()
        if self._depth:
            self._memo[key] = value
        return value

    def _run(self, purpose: str, build: Callable[..., str], window: Window, *args: Any,
             params: dict[str, Any] | None = None, **kw: Any) -> list[dict[str, Any]]:
        sql = build(self.source.entries_sql(window.since, window.until), *args,
                    service=window.service is not None, revision=window.revision is not None, **kw)
        values = {**(params or {}), **{k: v for k, v in (("service", window.service), ("revision", window.revision))
                                       if v is not None}}
        return [{k: int(v) if isinstance(v, Decimal) else v for k, v in row.items()}
                for row in self.runner.query(sql, values, purpose=purpose).to_pylist()]

    def _matches(self, window: Window) -> tuple[q.MatchSQL, dict[str, Any]]:
        """The catalog in SQL for the window, and the parameters of its re-checked texts."""
        confirmed = self._confirmed_texts(Window(window.since, window.until))
        names = {i: f"confirmed_{i}" for i, texts in confirmed.items() if texts}
        return q.MatchSQL(self.pushed, names), {names[i]: confirmed[i] for i in names}

    def _confirmed_texts(self, span: Window) -> dict[int, list[str]]:
        """Per pattern checked locally: the texts of the span that it matches. Matching depends on
        the text only, so the answer for a span that holds this one is reused."""
        for have, texts in self._confirmed:
            if _holds(have, span):
                return texts
        wanted = [i for i, p in enumerate(self.pushed) if p.candidate]
        texts: dict[int, list[str]] = {}
        if wanted:
            sql = q.candidates_sql(self.source.entries_sql(span.since, span.until), self.pushed, wanted,
                                   self.max_candidates)
            rows = self.runner.query(sql, {}, purpose="recheck-candidates").to_pylist()
            if len(rows) > self.max_candidates:
                ids = ", ".join(self.pushed[i].pattern.id for i in wanted[:5]) + \
                    (f" and {len(wanted) - 5} more" if len(wanted) > 5 else "")
                raise WarehouseError(
                    f"the patterns checked outside BigQuery ({ids}) have more than {self.max_candidates:,} "
                    "candidate texts in this window (distinct per pattern)",
                    hint="narrow --since/--until, or make those patterns RE2-exact "
                         "(`logaudit catalog check --engine bigquery` says why each is not)")
            for row in rows:
                pat = self.pushed[row["pid"]].pattern
                if pat.compiled.search(row["v"]) is not None:
                    texts.setdefault(row["pid"], []).append(row["v"])
        self._confirmed.append((span, texts))
        return texts

    # ------------------------------------------------------------------ the Engine methods
    def totals(self, window: Window) -> Totals:
        def compute() -> Totals:
            rows = self._run("totals", q.totals_sql, window)
            return Totals(sum(r["n"] for r in rows), sorted(r["service"] for r in rows if r["service"] is not None))
        return self._once(("totals", window), compute)

    def revisions(self, window: Window, *, percentiles: bool = True) -> list[RevisionStats]:
        def compute() -> list[RevisionStats]:
            rows = self._run("revisions", q.revisions_sql, window, percentiles=percentiles)
            per_service: dict[str | None, int] = {}
            for r in rows:
                per_service[r["service"]] = per_service.get(r["service"], 0) + r["requests"]
            out = [RevisionStats(
                service=r["service"], revision=r["revision"], first_seen=_ts(r["first_seen"]),
                last_seen=_ts(r["last_seen"]), deploy_time=_ts(r["deploy_time"]), entries=r["entries"],
                errors=r["errors"], requests=r["requests"], status_4xx=r["status_4xx"], status_5xx=r["status_5xx"],
                latency_n=r["latency_n"], latency_sum=None if r["latency_ns"] is None else int(r["latency_ns"]) / 1e6,
                latency_p50_ms=r["p50"], latency_p95_ms=r["p95"], latency_p99_ms=r["p99"],
                traffic_share=r["requests"] / per_service[r["service"]] if per_service[r["service"]] else None)
                for r in rows]
            return sorted(out, key=lambda r: (*_nulls_last(r.service), r.first_seen, r.revision))
        if not percentiles:
            held = self._memo.get(("revisions", window, True))
            if held is not None:
                return held
        return self._once(("revisions", window, percentiles), compute)

    def latency_histograms(self, window: Window) -> list[LatencyHistogram]:
        def compute() -> list[LatencyHistogram]:
            hists: dict[tuple[str | None, str], dict[int, int]] = {}
            for r in self._run("latency-histograms", q.histograms_sql, window):
                hists.setdefault((r["service"], r["revision"]), {})[int(r["bin"])] = int(r["n"])
            return [LatencyHistogram(s, rev, dict(sorted(c.items())))
                    for (s, rev), c in sorted(hists.items(), key=lambda kv: (*_nulls_last(kv[0][0]), kv[0][1]))]
        return self._once(("histograms", window), compute)

    def endpoints(self, window: Window) -> list[EndpointStats]:
        def compute() -> list[EndpointStats]:
            renamed: dict[str, list[str]] = {}  # redacted form -> the normalized paths that redact to it
            if self.redactor.enabled:
                for r in self._run("endpoint-paths", q.paths_sql, window):
                    path = r["path"]
                    if path is not None and (red := self.redactor.redact(path)) != path:
                        renamed.setdefault(red, []).append(path)
            targets = sorted(renamed)
            rows = self._run("endpoints", q.endpoints_sql, window, targets,
                             params={f"renamed_{i}": sorted(renamed[t]) for i, t in enumerate(targets)})
            total: dict[str | None, int] = {}
            for r in rows:
                total[r["service"]] = total.get(r["service"], 0) + r["n"]
            out = [EndpointStats(r["service"], r["method"], r["path"], int(r["status"]), int(r["n"]),
                                 r["n"] / total[r["service"]], r["p95"]) for r in rows]
            return sorted(out, key=lambda e: (*_nulls_last(e.service), -e.count, *_nulls_last(e.path),
                                              *_nulls_last(e.method), e.status))
        return self._once(("endpoints", window), compute)

    def patterns(self, window: Window, *, examples: bool = True) -> list[PatternStats]:
        def compute() -> list[PatternStats]:
            matches, params = self._matches(window)
            acc: dict[int, list] = {}
            for r in self._run("patterns", q.patterns_sql, window, matches, params=params, examples=examples):
                cur = acc.setdefault(r["pid"], [0, None, None, {}, None])
                lo, hi = _ts(r["first_seen"]), _ts(r["last_seen"])
                cur[0] += r["n"]
                cur[1] = lo if cur[1] is None else min(cur[1], lo)
                if cur[2] is None or (hi, r["example"] or "") > (cur[2], cur[4] or ""):
                    cur[4] = r["example"]
                cur[2] = hi if cur[2] is None else max(cur[2], hi)
                cur[3][r["revision"] if r["revision"] is not None else NO_REVISION] = r["n"]
            out = [PatternStats(self.pushed[pid].pattern.id, n, lo, hi, dict(sorted(by.items())), ex)
                   for pid, (n, lo, hi, by, ex) in acc.items()]
            return sorted(out, key=lambda p: p.id)
        return self._once(("patterns", window, examples), compute)

    def field_values(self, window: Window, pattern_ids: list[str], *, top: int = 10) -> list[dict[str, dict[str, int]]]:
        """Per pattern id: the `top` most frequent values of each named group (as stored; the
        caller redacts), by count then value. Rows matched in BigQuery are extracted there
        (`REGEXP_EXTRACT` with the group's RE2 form); rows matched after a local check are
        counted per text and extracted here."""
        index = {p.pattern.id: i for i, p in enumerate(self.pushed)}
        wanted = [index[pid] for pid in pattern_ids if pid in index and self.pushed[index[pid]].pattern.group_names]
        counts: dict[int, dict[str, dict[str, int]]] = {i: {} for i in wanted}
        matches, params = self._matches(window)
        arms = [(i, name, expr) for i in wanted if self.pushed[i].sure
                for name, expr in self.pushed[i].plan.extract.items()]
        if arms:
            for r in self._run("field-values", q.field_values_sql, window, matches, arms, params=params):
                counts[r["pid"]].setdefault(r["name"], {})[r["v"]] = int(r["n"])
        local = [i for i in wanted if i in matches.confirmed]
        if local:
            for r in self._run("field-values-local", q.local_texts_sql, window, matches, local, params=params):
                found = self.pushed[r["pid"]].pattern.compiled.search(r["v"])
                for name, value in (found.groupdict() if found else {}).items():
                    if value is not None:
                        into = counts[r["pid"]].setdefault(name, {})
                        into[value] = into.get(value, 0) + int(r["n"])
        out = []
        for pid in pattern_ids:
            groups = counts.get(index.get(pid, -1), {})
            out.append({name: dict(sorted(values.items(), key=lambda kv: (-kv[1], kv[0]))[:top])
                        for name, values in groups.items()})
        return out

    def templates(self, window: Window, *, min_severity: int) -> list[TemplateStats]:
        def compute() -> list[TemplateStats]:
            matches, params = self._matches(window)
            trigger = self.redactor.trigger if self.redactor.enabled else None
            rows = self._run("templates", q.templates_sql, window, matches, trigger,
                             params={**params, "level": min_severity})
            acc: dict[tuple, list] = {}
            for r in rows:  # a message holding a secret: redacted, then templated, as locally
                text = r["template"] if r["raw"] is None else template(self.redactor.redact(r["raw"]))
                key = (text, r["service"], r["revision"])
                lo, hi = _ts(r["first_seen"]), _ts(r["last_seen"])
                cur = acc.get(key)
                if cur is None:
                    acc[key] = [int(r["n"]), int(r["sev"]), lo, hi, r["example"]]
                    continue
                cur[0] += int(r["n"])
                cur[1] = max(cur[1], int(r["sev"]))
                cur[2] = min(cur[2], lo)
                if (hi, r["example"] or "") > (cur[3], cur[4] or ""):
                    cur[4] = r["example"]
                cur[3] = max(cur[3], hi)
            out = [TemplateStats(t, svc, rev, n, sev, lo, hi, ex) for (t, svc, rev), (n, sev, lo, hi, ex) in acc.items()]
            return sorted(out, key=lambda t: (t.template, *_nulls_last(t.service), *_nulls_last(t.revision)))
        return self._once(("templates", window, min_severity), compute)

    def timeline(self, window: Window, step: timedelta) -> pa.Table:
        def compute() -> pa.Table:
            step_us = _step_us(step)
            matches, params = self._matches(window)
            cats = {c: [i for i, p in enumerate(self.pushed) if p.pattern.category == c] for c in CATEGORIES}
            rows = self._run("timeline", q.timeline_sql, window, matches, cats,
                             params={**params, "step": step_us})
            if not rows:
                return TIMELINE_SCHEMA.empty_table()
            first = _bucket_of(window.since, step_us) if window.since else min(r["b"] for r in rows)
            last = _bucket_of(window.until, step_us, end=True) if window.until else max(r["b"] for r in rows)
            revs = sorted({(r["service"], r["revision"]) for r in rows}, key=lambda k: (*_nulls_last(k[0]), k[1]))
            got = {(r["b"], r["service"], r["revision"]): r for r in rows}
            cols: dict[str, list] = {name: [] for name in TIMELINE_SCHEMA.names}
            for b in range(first, last + 1):
                start = _from_us(b * step_us)
                for service, revision in revs:
                    r = got.get((b, service, revision))
                    entries, errors = (r["entries"], r["errors"]) if r else (0, 0)
                    requests, s5 = (r["requests"], r["status_5xx"]) if r else (0, 0)
                    for name, value in (("bucket", start), ("service", service), ("revision", revision),
                                        ("entries", entries), ("errors", errors),
                                        ("error_rate", errors / entries if entries else 0.0),
                                        ("requests", requests), ("status_5xx", s5),
                                        ("request_error_rate", s5 / requests if requests else 0.0)):
                        cols[name].append(value)
                    for c in CATEGORIES:
                        cols[c].append(r[c] if r else 0)
            return pa.table(cols, schema=TIMELINE_SCHEMA)
        return self._once(("timeline", window, step), compute)

    def status_series(self, window: Window, step: timedelta) -> pa.Table:
        def compute() -> pa.Table:
            step_us = _step_us(step)
            rows = sorted(self._run("status-series", q.status_series_sql, window, params={"step": step_us}),
                          key=lambda r: (r["b"], r["status_class"]))
            return pa.table({"bucket": [_from_us(r["b"] * step_us) for r in rows],
                             "status_class": [r["status_class"] for r in rows],
                             "requests": [r["requests"] for r in rows]}, schema=STATUS_SERIES_SCHEMA)
        return self._once(("status", window, step), compute)

    def _marks(self) -> dict[str, list[int]]:
        """Per lifecycle mark kind: the indexes of its catalog patterns."""
        return {kind: [i for i, p in enumerate(self.pushed) if p.pattern.id in ids] for kind, ids in _MARKS.items()}

    def health(self, window: Window) -> list[HealthStats]:
        def compute() -> list[HealthStats]:
            matches, params = self._matches(window)
            per: dict[tuple[str | None, str], dict[str, Any]] = {}
            for r in sorted(self._run("health", q.health_sql, window, matches, self._marks(), params=params),
                            key=lambda r: r["kind"] or ""):
                cur = per.setdefault((r["service"], r["revision"]), {**r, "evidence": {}})
                if r["kind"] is not None:
                    cur["evidence"][r["kind"]] = HealthEvidence(r["n"], _ts(r["lo"]), _ts(r["hi"]), r["example"])
            return [HealthStats(s, rev, r["starts"], r["failed"], r["probe"], r["ready"], r["requests"], r["ok"],
                                r["evidence"])
                    for (s, rev), r in sorted(per.items(), key=lambda kv: (*_nulls_last(kv[0][0]), kv[0][1]))]
        return self._once(("health", window), compute)

    def root_causes(self, window: Window) -> list[RootCause]:
        def compute() -> list[RootCause]:
            matches, params = self._matches(window)
            acc: dict[tuple[str | None, str, str], list] = {}
            for r in self._run("root-causes", q.root_causes_sql, window, matches, self._marks(), params=params):
                line = _root_cause_line(r["message"])
                if line is None:
                    continue
                lo, hi = _ts(r["lo"]), _ts(r["hi"])
                cur = acc.setdefault((r["service"], r["revision"], line), [0, lo, hi, r["message"]])
                cur[0] += r["starts"]
                cur[1] = min(cur[1], lo)
                if (hi, r["message"]) > (cur[2], cur[3]):
                    cur[3] = r["message"]
                cur[2] = max(cur[2], hi)
            out = [RootCause(s, rev, line, n, lo, hi, ex) for (s, rev, line), (n, lo, hi, ex) in acc.items()]
            return sorted(out, key=lambda c: (*_nulls_last(c.service), c.revision, -c.starts, c.line))
        return self._once(("root_causes", window), compute)

    def close(self) -> None:
        self._memo.clear()
        self._confirmed.clear()


# ------------------------------------------------------------------------------------ helpers
def _holds(outer: Window, inner: Window) -> bool:
    lo_ok = outer.since is None or (inner.since is not None and inner.since >= outer.since)
    hi_ok = outer.until is None or (inner.until is not None and inner.until <= outer.until)
    return lo_ok and hi_ok


def _nulls_last(value: Any) -> tuple[bool, Any]:
    return (value is None, value if value is not None else "")


def _ts(value: Any) -> Any:
    """A UTC pandas Timestamp (what the local engine returns), None for NULL."""
    if value is None:
        return None
    import pandas as pd

    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _root_cause_line(message: str) -> str | None:
    """The root-cause line of a first error's message (`RootCause`): its last non-blank line when
    it holds a Python traceback, else its first; None when every line is blank. Blank is RE2's
    whitespace only, as where the local engine cuts it."""
    lines = [x for x in _LINE_BREAK.split(message) if _NOT_BLANK.search(x)]
    if not lines:
        return None
    return lines[-1] if _TRACEBACK in message else lines[0]


def _step_us(step: timedelta) -> int:
    us = step // timedelta(microseconds=1)
    if us <= 0:
        raise ValueError("a time bucket must be at least one microsecond")
    return int(us)


def _us(when: datetime) -> int:
    return (when - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def _bucket_of(when: datetime, step_us: int, *, end: bool = False) -> int:
    """The bucket index holding `when` (`end`: the last bucket before the exclusive bound)."""
    return (_us(when) - (1 if end else 0)) // step_us


def _from_us(us: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)


__all__ = ["MAX_CANDIDATES", "WarehouseEngine"]
