"""`DuckDBEngine`: the `aggregates.Engine` over the local Parquet store.

Underneath: the per-entry-file aggregates of `observe.FileAggregates` (cached per file and hour;
a window that cuts a file re-reads only the hours it cuts) for revisions, histograms, endpoints,
patterns and templates, and DuckDB queries over the views of `Audit.connection` (`entries`,
`matches`) for the time series. Only aggregates leave it.

>>> engine = Audit("logaudit-store").engine                  # doctest: +SKIP
>>> with engine.hold():                                       # doctest: +SKIP
...     revisions = engine.revisions(window)                  # the span's aggregates are loaded once
...     endpoints = engine.endpoints(window)
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pandas as pd
import pyarrow as pa

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
    step_ns,
)
from logaudit.analysis.observe import FileAggregates
from logaudit.analysis.window import Window
from logaudit.core.timeparse import to_ns
from logaudit.sources.severity import SEVERITY_NUM
from logaudit.store.schema import MIN_TIMESTAMP_NS

#: A request that failed: a status outside 200-399 other than a WebSocket upgrade (101).
_BAD_REQUEST = "e.http_status <> 101 AND NOT e.http_status BETWEEN 200 AND 399"
#: The segments of a `_health_tables` prefix an entry can be in (two starts at one instant: the later one's)
_SPANS = "SELECT * FROM {prefix}_segs WHERE t1 IS NULL OR t1 > t0"
#: Severity floor of the per-file template aggregates the engine loads unless asked for another.
DEFAULT_LEVEL = SEVERITY_NUM["WARNING"]


class DuckDBEngine:
    """Aggregates of the store of `audit` (its catalog, its redactor for request paths)."""

    name = "duckdb"

    def __init__(self, audit: Any) -> None:
        self.audit = audit
        self._depth = 0
        self._held: dict[tuple[Window, int], tuple[FileAggregates, bool]] = {}  # -> (aggregates, owned)
        self._pinned: dict[Window, Any] = {}  # span -> connection, while held: one file set per answer
        self._health: dict[Window, tuple[Any, str, dict[str, Any]]] = {}  # window -> its health tables, while held

    # ------------------------------------------------------------------ per-span aggregates
    @contextmanager
    def hold(self, aggregates: FileAggregates | None = None) -> Iterator[None]:
        """Keep the per-file aggregates of each span loaded until the outermost block ends;
        `aggregates` already loaded by the caller are used (and left open) for their span."""
        self._depth += 1
        if aggregates is not None:
            self._held.setdefault((aggregates.window, aggregates.level), (aggregates, False))
        try:
            yield
        finally:
            self._depth -= 1
            if self._depth == 0:
                self._release()

    def _release(self) -> None:
        for agg, owned in self._held.values():
            if owned:
                agg.close()
        self._held.clear()
        self._pinned.clear()
        self._health.clear()

    def _connection(self, window: Window) -> Any:
        """The connection of the window's span (its views depend on the span only). While held,
        the first one stays: every aggregate of one answer reads the same entry files, even when an
        ingest adds files meanwhile."""
        span = Window(window.since, window.until)
        con = self._pinned.get(span)
        if con is None:
            con = self.audit.connection(span)  # brings classification up to date; new when files changed
            if self._depth:
                self._pinned[span] = con
        return con

    @contextmanager
    def _aggregates(self, window: Window, level: int | None = None) -> Iterator[FileAggregates]:
        """The per-file aggregates of the window's span (any level unless `level` is given)."""
        span = Window(window.since, window.until)
        con = self._connection(span)
        for (w, lvl), (agg, _) in self._held.items():
            if w == span and agg.con is con and (level is None or lvl == level):
                yield agg
                return
        lvl = DEFAULT_LEVEL if level is None else level
        agg = FileAggregates(self.audit, con, span, lvl)
        if self._depth:
            old = self._held.pop((span, lvl), None)
            if old is not None and old[1]:
                old[0].close()
            self._held[(span, lvl)] = (agg, True)
            yield agg
            return
        try:
            yield agg
        finally:
            agg.close()

    # ------------------------------------------------------------------ the Engine methods
    def totals(self, window: Window) -> Totals:
        with self._aggregates(window) as agg:
            entries, services = agg.totals(window.service, window.revision)
        return Totals(entries, services)

    def revisions(self, window: Window, *, percentiles: bool = True) -> list[RevisionStats]:
        with self._aggregates(window) as agg:
            where, params = agg.filters(window.service, window.revision)
            df = agg.con.execute(f"""
                WITH per AS (
                    SELECT service, revision, min(first_ts) AS first_seen, max(last_ts) AS last_seen,
                           sum(n)::BIGINT AS entries, sum(errors)::BIGINT AS errors, sum(requests)::BIGINT AS requests,
                           sum(status_4xx)::BIGINT AS status_4xx, sum(status_5xx)::BIGINT AS status_5xx,
                           sum(latency_n)::BIGINT AS latency_n,
                           -- exact, so the mean does not depend on the order the parts are added in
                           sum(latency_sum::DECIMAL(38, 9))::DOUBLE AS latency_sum
                    FROM logaudit_cmp_base WHERE kind = 'rev' AND revision IS NOT NULL AND {where}
                    GROUP BY ALL
                ),
                deploys AS (
                    SELECT service, revision, min(first_ts) AS deploy_time
                    FROM logaudit_cmp_base WHERE kind = 'deploy' GROUP BY ALL
                )
                SELECT per.*, d.deploy_time,
                       CASE WHEN sum(per.requests) OVER (PARTITION BY per.service) > 0
                            THEN per.requests / sum(per.requests) OVER (PARTITION BY per.service) END AS traffic_share
                FROM per LEFT JOIN deploys d USING (service, revision)
                ORDER BY per.service, per.first_seen, per.revision
            """, params).df()  # pandas keeps the timestamps' nanoseconds
            q = self._percentiles(agg, where, params) if percentiles else {}
        out = []
        for r in df.itertuples(index=False):
            p50, p95, p99 = q.get((_text(r.service), r.revision)) or (None, None, None)
            out.append(RevisionStats(
                service=_text(r.service), revision=r.revision, first_seen=r.first_seen, last_seen=r.last_seen,
                deploy_time=_ts(r.deploy_time), entries=int(r.entries), errors=int(r.errors),
                requests=int(r.requests), status_4xx=int(r.status_4xx), status_5xx=int(r.status_5xx),
                latency_n=int(r.latency_n), latency_sum=_num(r.latency_sum), latency_p50_ms=_num(p50),
                latency_p95_ms=_num(p95), latency_p99_ms=_num(p99), traffic_share=_num(r.traffic_share)))
        return out

    @staticmethod
    def _percentiles(agg: FileAggregates, where: str, params: dict[str, Any]) -> dict[tuple, tuple]:
        """p50/p95/p99 per (service, revision): continuous quantiles of the latencies. A
        revision's are the same whatever the service/revision filter, so a table of them made for
        the same filter, the window (unfiltered) or its service by `endpoints` is read when there is one; else only
        the per-revision ones are computed."""
        query = f"""SELECT service, revision, quantile_cont(v, [0.5, 0.95, 0.99])
                    FROM (SELECT service, revision, unnest(latencies) AS v FROM logaudit_cmp_base
                          WHERE kind = 'endpoint' AND revision IS NOT NULL AND {where})
                    GROUP BY ALL"""
        filters = [(where, params), agg.filters(None, None)]
        if "service" in params:
            filters.append(agg.filters(params["service"], None))
        for fwhere, fparams in filters:
            name = agg.latency_name(fwhere, fparams)
            if name in agg.latency_tables:
                query = f"SELECT service, revision, q FROM {name} WHERE per_revision AND revision IS NOT NULL AND {where}"
                break
        return {(s, r): tuple(q) for s, r, q in agg.con.execute(query, params).fetchall()}

    def latency_histograms(self, window: Window) -> list[LatencyHistogram]:
        with self._aggregates(window) as agg:
            where, params = agg.filters(window.service, window.revision)
            rows = agg.con.execute(f"""
                SELECT service, revision, bin, sum(n)::BIGINT FROM logaudit_cmp_base
                WHERE kind = 'hist' AND revision IS NOT NULL AND {where}
                GROUP BY ALL ORDER BY service, revision, bin
            """, params).fetchall()
        hists: dict[tuple[str | None, str], dict[int, int]] = {}
        for service, revision, b, n in rows:
            hists.setdefault((service, revision), {})[int(b)] = int(n)
        return [LatencyHistogram(s, r, counts) for (s, r), counts in hists.items()]

    def endpoints(self, window: Window) -> list[EndpointStats]:
        with self._aggregates(window) as agg:
            df = agg.endpoint_table(window.service, window.revision)
        return [EndpointStats(_text(e.service), _text(e.method), _text(e.path), int(e.status), int(e.count), _num(e.share),
                              _num(e.latency_p95_ms)) for e in df.itertuples(index=False)]

    def patterns(self, window: Window, *, examples: bool = True) -> list[PatternStats]:
        span = Window(window.since, window.until)
        with self._aggregates(window) as agg:
            if examples:
                rows = agg.pattern_rows(window.service, window.revision)
            else:  # one pass: counts per revision, first and last match
                rows = self._pattern_counts(agg, window)
        rows.sort(key=lambda r: r[0])
        texts = self.audit.examples(span, [(f, r) for _, _, _, _, f, r, _ in rows], redact=False) if examples \
            else [None] * len(rows)
        return [PatternStats(pid, n, lo, hi, by_rev, ex)
                for (pid, n, lo, hi, _, _, by_rev), ex in zip(rows, texts, strict=True)]

    @staticmethod
    def _pattern_counts(agg: FileAggregates, window: Window) -> list[tuple]:
        """`FileAggregates.pattern_rows` without the example's place."""
        where, params = agg.filters(window.service, window.revision)
        df = agg.con.execute(f"""
            SELECT key, revision, sum(n)::BIGINT AS n, min(first_ts) AS lo, max(example_ts) AS hi
            FROM logaudit_cmp_cat WHERE kind = 'pattern' AND {where} GROUP BY ALL ORDER BY 1, 2
        """, params).df()
        out: dict[str, list] = {}
        for t in df.itertuples(index=False):
            rev = _text(t.revision)
            cur = out.setdefault(t.key, [t.key, 0, t.lo, t.hi, None, 0, {}])
            cur[1] += int(t.n)
            cur[2], cur[3] = min(cur[2], t.lo), max(cur[3], t.hi)
            cur[6][rev if rev is not None else NO_REVISION] = int(t.n)
        return [tuple(v) for v in out.values()]

    def templates(self, window: Window, *, min_severity: int = DEFAULT_LEVEL) -> list[TemplateStats]:
        with self._aggregates(window, min_severity) as agg:
            where, params = agg.filters(window.service, window.revision)
            df = agg.con.execute(f"""
                SELECT key AS template, service, revision, sum(n)::BIGINT AS count, max(sev) AS sev,
                       min(first_ts) AS first_seen, max(example_ts) AS last_seen,
                       arg_max(example, (example_ts, example)) AS example
                FROM logaudit_cmp_cat WHERE kind = 'template' AND sev >= $level AND {where}
                GROUP BY ALL ORDER BY template, service, revision
            """, params | {"level": min_severity}).df()  # pandas keeps the timestamps' nanoseconds
        return [TemplateStats(t.template, _text(t.service), _text(t.revision), int(t.count), int(t.sev),
                              t.first_seen, t.last_seen, _text(t.example)) for t in df.itertuples(index=False)]

    def timeline(self, window: Window, step: timedelta) -> pa.Table:
        audit, ns = self.audit, step_ns(step)
        where, params = audit.filters(window)
        con = self._connection(window)
        lo, hi = con.execute(
            f"SELECT min(epoch_ns(timestamp)), max(epoch_ns(timestamp)) FROM entries WHERE revision IS NOT NULL AND {where}",
            params).fetchall()[0]
        if lo is None:
            return TIMELINE_SCHEMA.empty_table()
        lo = to_ns(window.since) if window.since else lo
        hi = to_ns(window.until) if window.until else hi + 1
        lo = (lo // ns) * ns
        # buckets are counted from `lo`; near the ends of the nanosecond range (a store may hold
        # 1677-09-21 to 2262-04-11) the arithmetic needs 128 bits, elsewhere 64 are faster
        wide = lo < -(2**63) or hi - lo >= 2**63
        expr = "epoch_ns({})::HUGEINT" if wide else "epoch_ns({})"
        index = f"(({expr.format('timestamp')} - $lo) // $step)::BIGINT"
        mindex = f"(({expr.format('m.timestamp')} - $lo) // $step)::BIGINT"
        start = (f"greatest($lo::HUGEINT + t.i::HUGEINT * $step, {MIN_TIMESTAMP_NS})::BIGINT" if wide
                 else "$lo + t.i * $step")
        mwhere, _ = audit.filters(window, "m")
        cats = ", ".join(f"coalesce(c.{c}, 0) AS {c}" for c in CATEGORIES)
        cat_cols = ", ".join(f"count(*) FILTER (m.category = '{c}') AS {c}" for c in CATEGORIES)
        table = con.sql(f"""
            WITH revs AS (SELECT DISTINCT service, revision FROM entries WHERE revision IS NOT NULL AND {where}),
            grid AS (
                SELECT t.i AS b_i, {start} AS b_ns, revs.service, revs.revision
                FROM range($n) t(i), revs
            ),
            agg AS (
                SELECT {index} AS b_i, service, revision,
                       count(*) AS entries,
                       count(*) FILTER (effective_severity_num >= 500) AS errors,
                       count(http_status) AS requests,
                       count(*) FILTER (http_status >= 500) AS status_5xx
                FROM entries WHERE revision IS NOT NULL AND {where}
                GROUP BY ALL
            ),
            c AS (
                SELECT {mindex} AS b_i, m.service, m.revision, {cat_cols}
                FROM matches m WHERE m.revision IS NOT NULL AND {mwhere}
                GROUP BY ALL
            )
            SELECT make_timestamp_ns(g.b_ns)::TIMESTAMPTZ AS bucket, g.service, g.revision,
                   coalesce(a.entries, 0) AS entries, coalesce(a.errors, 0) AS errors,
                   CASE WHEN a.entries > 0 THEN a.errors / a.entries ELSE 0 END AS error_rate,
                   coalesce(a.requests, 0) AS requests, coalesce(a.status_5xx, 0) AS status_5xx,
                   CASE WHEN a.requests > 0 THEN a.status_5xx / a.requests ELSE 0 END AS request_error_rate,
                   {cats}
            FROM grid g
            LEFT JOIN agg a USING (b_i, service, revision)
            LEFT JOIN c USING (b_i, service, revision)
            ORDER BY bucket, g.service, g.revision
        """, params=params | {"step": ns, "lo": lo, "n": -(-(hi - lo) // ns)}).to_arrow_table()
        return table.cast(TIMELINE_SCHEMA)

    def status_series(self, window: Window, step: timedelta) -> pa.Table:
        audit = self.audit
        where, params = audit.filters(window)
        table = self._connection(window).sql(f"""
            SELECT make_timestamp_ns((epoch_ns(timestamp) // $step) * $step)::TIMESTAMPTZ AS bucket,
                   CAST(http_status // 100 AS VARCHAR) || 'xx' AS status_class, count(*) AS requests
            FROM entries WHERE http_status IS NOT NULL AND {where}
            GROUP BY ALL ORDER BY 1, 2
        """, params=params | {"step": step_ns(step)}).to_arrow_table()
        return table.cast(STATUS_SERIES_SCHEMA)

    # ------------------------------------------------------------------ health
    def _health_tables(self, window: Window) -> tuple[Any, str, dict[str, Any]]:
        """The window's connection, the names' prefix and the parameters of three small temporary
        tables made once per window while held: `{p}_s`, the entries of catalog lifecycle patterns
        with their instance start (`seq`: starts of the instance so far; 0 before its first start in
        the window); `{p}_segs`, each start's segment [t0, t1) of its instance; `{p}_req`, the
        requests per (service, revision): counts, first and last. Requests and errors are many and
        only aggregated, never ordered one by one."""
        con = self._connection(window)
        made = self._health.get(window)
        if made is not None and made[0] is con:
            return made
        audit = self.audit
        where, params = audit.filters(window, "e")
        mwhere, _ = audit.filters(window, "m")
        prefix = f"logaudit_health_{len(self._health)}"
        marked = list(START_PATTERNS + BOOT_FAILURE_PATTERNS + STARTUP_PROBE_PATTERNS + READY_PATTERNS)
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE {prefix}_s AS
            WITH marks AS (
                SELECT m.log_name, m.insert_id, m.timestamp,
                       bool_or(list_contains($start, m.pattern_id)) AS is_start,
                       bool_or(list_contains($fail, m.pattern_id)) AS is_fail,
                       bool_or(list_contains($probe, m.pattern_id)) AS is_probe,
                       bool_or(list_contains($ready, m.pattern_id)) AS is_ready
                FROM matches m WHERE list_contains($marked, m.pattern_id) AND m.revision IS NOT NULL AND {mwhere}
                GROUP BY ALL
            )
            SELECT e.service, e.revision, e.instance_id, e.timestamp, e.insert_id,
                   k.is_start, k.is_fail, k.is_probe, k.is_ready,
                   coalesce(e.message, e.http_method || ' ' || e.http_path || ' -> ' || e.http_status) AS text,
                   sum(k.is_start::INTEGER) OVER (
                       PARTITION BY e.service, e.revision, e.instance_id
                       ORDER BY e.timestamp, k.is_start DESC, e.insert_id ROWS UNBOUNDED PRECEDING) AS seq
            FROM entries e JOIN marks k
              ON k.insert_id = e.insert_id AND k.timestamp = e.timestamp AND k.log_name IS NOT DISTINCT FROM e.log_name
            WHERE e.revision IS NOT NULL AND {where}
        """, params | {"marked": marked, "start": list(START_PATTERNS), "fail": list(BOOT_FAILURE_PATTERNS),
                       "probe": list(STARTUP_PROBE_PATTERNS), "ready": list(READY_PATTERNS)})
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE {prefix}_segs AS
            SELECT service, revision, instance_id, seq, t0,
                   lead(t0) OVER (PARTITION BY service, revision, instance_id ORDER BY seq) AS t1
            FROM (SELECT service, revision, instance_id, seq, min(timestamp) AS t0
                  FROM {prefix}_s WHERE seq > 0 GROUP BY ALL)
        """)
        with self._aggregates(window) as agg:  # the requests: from the per-file aggregates
            awhere, aparams = agg.filters(window.service, window.revision)
            con.execute(f"""
                CREATE OR REPLACE TEMP TABLE {prefix}_req AS
                SELECT service, revision, sum(requests)::BIGINT AS n, sum(ok_n)::BIGINT AS ok,
                       min(req_first) AS lo, max(req_last) AS hi, sum(bad_n)::BIGINT AS bad_n,
                       min(bad_first) AS bad_lo, max(bad_last) AS bad_hi
                FROM logaudit_cmp_base WHERE kind = 'rev' AND revision IS NOT NULL AND {awhere}
                GROUP BY ALL HAVING sum(requests) > 0
            """, aparams)
            con.execute(f"""
                CREATE OR REPLACE TEMP TABLE {prefix}_ok AS
                SELECT service, revision, instance_id, ok_first, ok_last
                FROM logaudit_cmp_base WHERE kind = 'inst' AND ok_n > 0 AND {awhere}
            """, aparams)
            con.execute(f"""
                CREATE OR REPLACE TEMP TABLE {prefix}_err AS
                SELECT service, revision, instance_id, unnest(err_ts) AS timestamp
                FROM logaudit_cmp_base WHERE kind = 'inst' AND err_ts IS NOT NULL AND {awhere}
            """, aparams)
        made = (con, prefix, params)
        if self._depth:
            self._health[window] = made
        return made

    def _served(self, con: Any, prefix: str, where: str, params: dict[str, Any]) -> str:
        """A temporary table `{prefix}_served` of the segments without a ready entry in which a
        request succeeded (the others are ready anyway). The aggregates' first and last successful
        request per instance and hour decide, unless a segment lies between the two; only those
        segments' requests are read."""
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE {prefix}_served AS
            WITH cand AS (
                SELECT g.* FROM ({_SPANS.format(prefix=prefix)}) g
                ANTI JOIN (SELECT * FROM {prefix}_s WHERE is_ready) s
                  ON s.seq = g.seq AND s.service IS NOT DISTINCT FROM g.service AND s.revision = g.revision
                 AND s.instance_id IS NOT DISTINCT FROM g.instance_id
            ),
            inside AS (  -- t0 <= ts < t1
                SELECT c.*, o.ok_first, o.ok_last FROM cand c JOIN {prefix}_ok o
                  ON o.service IS NOT DISTINCT FROM c.service AND o.revision = c.revision
                 AND o.instance_id IS NOT DISTINCT FROM c.instance_id
            )
            SELECT service, revision, instance_id, seq, t0, t1,
                   bool_or((ok_first >= t0 AND (t1 IS NULL OR ok_first < t1))
                           OR (ok_last >= t0 AND (t1 IS NULL OR ok_last < t1))) AS served
            FROM inside
            WHERE (ok_last >= t0) AND (t1 IS NULL OR ok_first < t1)
            GROUP BY ALL
        """)
        unsure = con.execute(f"SELECT service, revision, instance_id, seq, t0, t1 FROM {prefix}_served "
                             "WHERE NOT served ORDER BY t0").fetchall()
        # one bounded read per unsure segment (a few: each lies inside one hour of one instance)
        for service, revision, instance, seq, t0, t1 in unsure:
            hit = con.execute(f"""
                SELECT count(*) > 0 FROM (SELECT 1 FROM entries e
                    WHERE e.revision = $revision AND e.service IS NOT DISTINCT FROM $service
                      AND e.instance_id IS NOT DISTINCT FROM $instance AND e.http_status BETWEEN 200 AND 399
                      AND e.timestamp >= $t0 AND e.timestamp < $t1 AND {where} LIMIT 1)
            """, params | {"revision": revision, "service": service, "instance": instance, "t0": t0, "t1": t1}
            ).fetchone()[0]
            if hit:
                con.execute(f"UPDATE {prefix}_served SET served = true WHERE revision = $revision AND seq = $seq "
                            "AND service IS NOT DISTINCT FROM $service AND instance_id IS NOT DISTINCT FROM $instance",
                            {"revision": revision, "seq": seq, "service": service, "instance": instance})
        return f"(SELECT * FROM {prefix}_served WHERE served)"

    def health(self, window: Window) -> list[HealthStats]:
        con, p, params = self._health_tables(window)
        where, _ = self.audit.filters(window, "e")
        served = self._served(con, p, where, params)
        marked = " UNION ALL ".join(
            f"SELECT service, revision, '{kind}' AS kind, count(*) AS n, min(timestamp) AS lo, max(timestamp) AS hi, "
            f"arg_max(text, (timestamp, insert_id)) AS example FROM {p}_s WHERE {cond} GROUP BY ALL"
            for kind, cond in (("start", "is_start"), ("boot_failure", "is_fail"), ("startup_probe", "is_probe"),
                               ("ready", "is_ready")))
        # requests: the example's text is made for the one row chosen (the latest; ties: the
        # greatest insertId), not for every request
        ev = con.execute(f"""
            WITH q AS (
                SELECT service, revision, 'request' AS kind, n, lo, hi FROM {p}_req
                UNION ALL
                SELECT service, revision, 'failed_request', bad_n, bad_lo, bad_hi FROM {p}_req WHERE bad_n > 0
            )
            {marked}
            UNION ALL
            SELECT q.service, q.revision, q.kind, q.n, q.lo, q.hi,
                   arg_max(coalesce(e.message, e.http_method || ' ' || e.http_path || ' -> ' || e.http_status),
                           e.insert_id) AS example
            FROM q JOIN entries e
              ON e.timestamp = q.hi AND e.revision = q.revision AND e.service IS NOT DISTINCT FROM q.service
             AND e.http_status IS NOT NULL AND (q.kind = 'request' OR {_BAD_REQUEST})
            WHERE {where}
            GROUP BY ALL
            ORDER BY service, revision, kind""", params).df()
        counts = con.execute(f"""
            WITH marked_segs AS (
                SELECT service, revision, instance_id, seq, bool_or(is_fail) AS failed, bool_or(is_probe) AS probe,
                       bool_or(is_ready) AS ready
                FROM {p}_s WHERE seq > 0 GROUP BY ALL
            ),
            per_seg AS (
                SELECT m.service, m.revision, count(*) FILTER (m.failed) AS failed, count(*) FILTER (m.probe) AS probe,
                       count(*) FILTER (m.ready OR v.seq IS NOT NULL) AS ready
                FROM marked_segs m LEFT JOIN {served} v
                  ON v.service IS NOT DISTINCT FROM m.service AND v.revision = m.revision
                 AND v.instance_id IS NOT DISTINCT FROM m.instance_id AND v.seq = m.seq
                GROUP BY ALL
            ),
            starts AS (SELECT service, revision, count(*) FILTER (is_start) AS starts FROM {p}_s GROUP BY ALL),
            revs AS (SELECT service, revision FROM starts UNION SELECT service, revision FROM {p}_req)
            SELECT r.service, r.revision, coalesce(st.starts, 0), coalesce(ps.failed, 0), coalesce(ps.probe, 0),
                   coalesce(ps.ready, 0), coalesce(q.n, 0), coalesce(q.ok, 0)
            FROM revs r
            LEFT JOIN starts st ON st.service IS NOT DISTINCT FROM r.service AND st.revision = r.revision
            LEFT JOIN per_seg ps ON ps.service IS NOT DISTINCT FROM r.service AND ps.revision = r.revision
            LEFT JOIN {p}_req q ON q.service IS NOT DISTINCT FROM r.service AND q.revision = r.revision
            ORDER BY r.service, r.revision
        """).fetchall()
        evidence: dict[tuple[str | None, str], dict[str, HealthEvidence]] = {}
        for t in ev.itertuples(index=False):
            evidence.setdefault((_text(t.service), t.revision), {})[t.kind] = HealthEvidence(
                int(t.n), _ts(t.lo), _ts(t.hi), _text(t.example))
        return [HealthStats(service, revision, int(starts), int(failed), int(probe), int(ready), int(requests),
                            int(ok), evidence.get((service, revision), {}))
                for service, revision, starts, failed, probe, ready, requests, ok in counts]

    def root_causes(self, window: Window) -> list[RootCause]:
        con, p, params = self._health_tables(window)
        where, _ = self.audit.filters(window, "e")
        # Each start's first error: an entry of ERROR or worse that is not a request, with a text
        # (ties: the least insertId). The aggregates list the errors' times per instance and hour;
        # an as-of join places them in their start's segment, and the text is read for the
        # entries at each first error's instant only.
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE {p}_first AS
            SELECT g.service, g.revision, g.instance_id, g.seq, min(r.timestamp) AS ts
            FROM {p}_err r ASOF JOIN ({_SPANS.format(prefix=p)}) g
              ON r.service IS NOT DISTINCT FROM g.service AND r.revision = g.revision
             AND r.instance_id IS NOT DISTINCT FROM g.instance_id AND r.timestamp >= g.t0
            GROUP BY ALL
        """)
        instants = [r[0] for r in con.execute(f"SELECT DISTINCT ts FROM {p}_first").fetchall()]
        if not instants:
            return []
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE {p}_causes AS
            SELECT f.service, f.revision, f.instance_id, f.seq, f.ts,
                   arg_min(coalesce(e.message, e.http_method || ' ' || e.http_path || ' -> ' || e.http_status),
                           e.insert_id) AS msg
            FROM {p}_first f JOIN entries e
              ON e.timestamp = f.ts AND e.revision = f.revision AND e.service IS NOT DISTINCT FROM f.service
             AND e.instance_id IS NOT DISTINCT FROM f.instance_id
            WHERE e.http_status IS NULL AND e.effective_severity_num >= 500 AND e.message IS NOT NULL
              AND list_contains($instants, e.timestamp) AND {where}
            GROUP BY ALL
        """, params | {"instants": instants})
        df = con.execute(f"""
            WITH lined AS (
                SELECT *, list_filter(regexp_split_to_array(msg, '\\r\\n|\\n|\\r'), lambda x: regexp_matches(x, '\\S'))
                    AS lines FROM {p}_causes
            ),
            causes AS (
                SELECT service, revision, msg, ts,
                       CASE WHEN contains(msg, 'Traceback (most recent call last):') THEN lines[-1] ELSE lines[1] END
                           AS line
                FROM lined WHERE len(lines) > 0
            )
            SELECT service, revision, line, count(*) AS starts, min(ts) AS lo, max(ts) AS hi,
                   arg_max(msg, (ts, msg)) AS example
            FROM causes GROUP BY ALL
            ORDER BY service, revision, starts DESC, line
        """).df()
        return [RootCause(_text(t.service), t.revision, t.line, int(t.starts), t.lo, t.hi, _text(t.example))
                for t in df.itertuples(index=False)]

    def close(self) -> None:
        self._depth = 0
        self._release()


def _ts(value: Any) -> Any:
    """A timestamp, or None for a missing one (NaT)."""
    return None if value is None or value is pd.NaT or (isinstance(value, float) and value != value) else value


def _num(value: Any) -> float | None:
    if value is None:
        return None
    f = float(value)
    return None if f != f else f


def _text(value: Any) -> str | None:
    """A text column's value; None for NULL (which pandas gives as NaN)."""
    return value if isinstance(value, str) else None
