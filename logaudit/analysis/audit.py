"""DuckDB analytics over the store: the numbers behind `logaudit summarize`, as DataFrames.

`Audit` opens a store with a pattern catalog; every method takes the same window filters
(`since`, `until`, `service`, `revision`) and returns a pandas DataFrame. The CLI, the reports
and the notebooks all call these methods, so they always agree.

>>> from logaudit.analysis.audit import Audit
>>> audit = Audit("logaudit-store")                          # doctest: +SKIP
>>> audit.revisions(since="6h")[["revision", "errors"]]      # doctest: +SKIP

Window semantics: `since <= timestamp < until`. Times are RFC 3339 / ISO dates (any offset) or
durations before now (`30m`, `6h`, `2d`); datetimes must be timezone-aware.
"""

from __future__ import annotations

import os
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa

from logaudit.analysis.aggregates import (
    Engine,
    PatternStats,
    group_template_stats,
    grouping,
    merge_templates_by_text,
)
from logaudit.analysis.engine_duckdb import DuckDBEngine
from logaudit.analysis.judge import summary_verdict
from logaudit.analysis.templates import template_sql
from logaudit.analysis.window import Window, iso, normalize_path, resolve_window
from logaudit.catalog.catalog import CATEGORIES, Catalog, default_catalog_paths, load_catalogs
from logaudit.catalog.views import register_views
from logaudit.core.db import connect, sql_list, time_filter
from logaudit.core.errors import UnknownFilterError, UsageError
from logaudit.core.jsonable import plain
from logaudit.core.redact import Redactor, load_redactor, redact_frame
from logaudit.core.timeparse import parse_duration
from logaudit.sources.severity import SEVERITY_NUM
from logaudit.store.store import Store

#: Most unclassified templates the summary lists.
SUMMARY_TEMPLATES = 50

def default_catalog() -> Catalog:
    """The shipped catalogs plus those in $LOGAUDIT_CATALOG (`catalog.default_catalog_paths`)."""
    return load_catalogs(default_catalog_paths())


class Audit:
    """Analytics over one store, with one catalog and one redactor.

    `catalog` may be a `Catalog`, catalog file/directory paths (exactly those), or None for the
    default: the shipped catalogs plus $LOGAUDIT_CATALOG (`default_catalog_paths(["team.yaml"])`
    gives the shipped ones plus team.yaml).
    `redactor` redacts every text the methods return (default: `load_redactor()`, the default
    rules plus $LOGAUDIT_REDACT_CONFIG); `Redactor(enabled=False)` returns log text as stored.
    """

    def __init__(self, store: Store | str | os.PathLike | None = None, catalog: Catalog | list | None = None,
                 *, redactor: Redactor | None = None) -> None:
        self.store = store if isinstance(store, Store) else Store(store, create=False)
        if catalog is None:
            catalog = default_catalog()
        elif not isinstance(catalog, Catalog):
            catalog = load_catalogs(catalog)
        self.catalog = catalog
        self.redactor = redactor if redactor is not None else load_redactor()
        # per window: the connection and the entry files its views were made for
        self._cons: dict[Window, tuple[duckdb.DuckDBPyConnection, tuple[Path, ...]]] = {}
        self._rows: set[Window] = set()
        self._made: dict[int, tuple[Path, ...]] = {}
        self._probe: duckdb.DuckDBPyConnection | None = None  # for the --service / --revision check
        self._engine: Engine | None = None

    @property
    def engine(self) -> Engine:
        """The `aggregates.Engine` the analyses of this audit read their numbers from (DuckDB
        over the store: `engine_duckdb.DuckDBEngine`)."""
        if self._engine is None:
            self._engine = DuckDBEngine(self)
        return self._engine

    # ------------------------------------------------------------------ plumbing
    def connection(self, window: Window) -> duckdb.DuckDBPyConnection:
        """A DuckDB connection with the views `entries`, `matches`, `patterns`, `unclassified` for the window.

        The store is classified against the catalog first (only new files / changed patterns are evaluated).
        The connection is kept for the next call unless the store's files for the window changed
        (an ingest or a pull since), which makes a new one: views and matches never go stale.
        """
        files = tuple(self.store.entry_files(window.since, window.until))
        cached = self._cons.get(window)
        if cached is not None and cached[1] == files:
            return cached[0]
        if cached is not None:  # not closed here: a caller may still be using it (it closes when unused)
            self._rows.discard(window)
        con = connect()
        # the views read the files listed here: the per-file aggregates (`classified_files`) too
        register_views(con, self.store, self.catalog, since=window.since, until=window.until, files=list(files))
        self._cons[window] = (con, files)
        self._made[id(con)] = files  # also for a connection replaced meanwhile but still in use
        return con

    def classified_files(self, window: Window, con: duckdb.DuckDBPyConnection) -> list[Path]:
        """The entry files of the window that `con` (from `connection(window)`) classified and made its views of.

        Per-file aggregates take this list rather than listing the store again, so a file that a
        pull adds meanwhile is not aggregated (and cached) before it is classified.
        """
        return list(self._made[id(con)])

    def _with_rows(self, window: Window) -> duckdb.DuckDBPyConnection:
        """`connection(window)` plus the view `entries_rows`: the entries with their file and row
        (matches point at (entry_file, entry_row)); created when first needed."""
        con = self.connection(window)
        if window not in self._rows:
            files = [str(f) for f in self.store.entry_files(window.since, window.until)]
            if files:
                con.execute(f"""CREATE OR REPLACE TEMP VIEW entries_rows AS
                    SELECT * FROM read_parquet({sql_list(files)}, filename=true, file_row_number=true)
                    WHERE {time_filter('timestamp', window.since, window.until)}""")
            else:
                con.execute("CREATE OR REPLACE TEMP VIEW entries_rows AS SELECT *, ''::VARCHAR AS filename, "
                            "0::BIGINT AS file_row_number FROM entries WHERE false")
            self._rows.add(window)
        return con

    def window(self, since: Any = None, until: Any = None, service: str | None = None,
               revision: str | None = None, *, now: datetime | None = None) -> Window:
        """`resolve_window`, with `service` and `revision` checked against the store.

        A service (or revision) the store holds no entry of is most likely misspelled: that raises
        `UnknownFilterError` (a `UsageError`) naming the services (or the service's revisions)
        the window holds. One the store holds, but not in this window, is an empty window.

        >>> audit.window("6h", service="netra-backend-stagin")   # doctest: +SKIP
        UnknownFilterError: --service 'netra-backend-stagin': the store holds no entry of this service
          hint: services in this window: netra-auth-service, netra-backend-staging
        """
        if isinstance(since, Window):  # already resolved (and checked)
            return since
        w = resolve_window(since, until, service, revision, now=now)
        if service is not None or revision is not None:
            self._check_filters(w)
        return w

    def _check_filters(self, w: Window) -> None:
        """Raise `UnknownFilterError` when no entry of the store has w's service (and revision)."""
        if self._holds(w, Window(w.since, w.until)) or self._holds(w, Window()):
            return
        in_window, in_store = self._pairs(Window(w.since, w.until)), self._pairs(Window())
        services = sorted({s for s, _ in in_window})
        if w.service is not None and w.service not in {s for s, _ in in_store}:
            raise UnknownFilterError(
                f"--service {w.service!r}: the store holds no entry of this service", option="--service",
                value=w.service, choices=services, stored=sorted({s for s, _ in in_store}),
                hint=_listing("services", services, sorted({s for s, _ in in_store})))
        if w.service is not None:
            revisions = sorted({r for s, r in in_window if s == w.service and r is not None})
            stored = sorted({r for s, r in in_store if s == w.service and r is not None})
            raise UnknownFilterError(
                f"--revision {w.revision!r}: the store holds no entry of this revision of service {w.service!r}",
                option="--revision", value=w.revision or "", choices=revisions, stored=stored,
                hint=_listing(f"revisions of {w.service}", revisions, stored))
        revisions = sorted({r for _, r in in_window if r is not None})
        by_service = "; ".join(f"{s}: {', '.join(sorted({r for x, r in in_window if x == s and r is not None}))}"
                               for s in services)
        raise UnknownFilterError(
            f"--revision {w.revision!r}: the store holds no entry of this revision", option="--revision",
            value=w.revision or "", choices=revisions, stored=sorted({r for _, r in in_store if r is not None}),
            hint=f"revisions in this window: {by_service}" if by_service else
            _listing("revisions", [], sorted({r for _, r in in_store if r is not None})))

    def _scan(self, span: Window, select: str, where: str = "TRUE", params: dict[str, Any] | None = None,
              *, limit: str = "") -> list[tuple]:
        """Rows of a query straight over the entry files of `span` (no classification, no views)."""
        files = [str(f) for f in self.store.entry_files(span.since, span.until)]
        if not files:
            return []
        if self._probe is None:
            self._probe = connect()
        return self._probe.execute(f"SELECT {select} FROM read_parquet({sql_list(files)}, hive_partitioning=false) "
                                   f"WHERE {time_filter('timestamp', span.since, span.until)} AND {where} {limit}", params or {}).fetchall()

    def _holds(self, w: Window, span: Window) -> bool:
        where, params = self.filters(w)
        return bool(self._scan(span, "1", where, params, limit="LIMIT 1"))

    def _pairs(self, span: Window) -> list[tuple[str, str | None]]:
        """The distinct (service, revision) pairs of the entries in `span` (services not null)."""
        return self._scan(span, "DISTINCT service, revision", "service IS NOT NULL")

    @staticmethod
    def filters(w: Window, alias: str = "") -> tuple[str, dict[str, Any]]:
        """The SQL condition (on `alias`'s columns) and parameters of a window's service/revision
        filters, for the engine's queries over `entries` and `matches`."""
        prefix = f"{alias}." if alias else ""
        conds, params = [], {}
        if w.service is not None:
            conds.append(f"{prefix}service = $service")
            params["service"] = w.service
        if w.revision is not None:
            conds.append(f"{prefix}revision = $revision")
            params["revision"] = w.revision
        return (" AND ".join(conds) or "TRUE"), params

    def _df(self, w: Window, query: str, params: dict[str, Any] | None = None) -> pd.DataFrame:
        return self.connection(w).execute(query, params or {}).df()

    # ------------------------------------------------------------------ public API
    def sql(self, query: str, params: dict[str, Any] | list | None = None, *, redact: bool = True,
            **window: Any) -> pd.DataFrame:
        """Run SQL over the views `entries`, `matches`, `patterns`, `unclassified`; parameters are bound.

        Every text in the result is redacted by the audit's redactor (also inside lists and
        structs); `redact=False` returns the stored text (for trusted local work only).

        >>> audit.sql("SELECT count(*) AS n FROM entries WHERE service = $s", {"s": "api"})  # doctest: +SKIP
        """
        w = self.window(**window)
        df = self.connection(w).execute(query, params or {}).df()
        return redact_frame(df, self.redactor) if redact else df

    def entries_count(self, **window: Any) -> int:
        w = self.window(**window)
        where, params = self.filters(w)
        return int(self.connection(w).execute(f"SELECT count(*) FROM entries WHERE {where}", params).fetchall()[0][0])

    def revisions(self, **window: Any) -> pd.DataFrame:
        """Per (service, revision): first/last seen, deploy time, entries, errors, error rate,
        requests, 4xx, 5xx, request error rate, latency p50/p95/p99 (ms), traffic share.

        Latency percentiles leave out WebSocket upgrades (status 101): their "latency" is how
        long the connection stayed open, not how fast the service answered.
        """
        w = self.window(**window)
        where, params = self.filters(w, "e")
        return self._df(w, f"""
            WITH per AS (
                SELECT e.service, e.revision,
                       min(e.timestamp) AS first_seen, max(e.timestamp) AS last_seen,
                       count(*) AS entries,
                       count(*) FILTER (e.effective_severity_num >= 500) AS errors,
                       count(e.http_status) AS requests,
                       count(*) FILTER (e.http_status BETWEEN 400 AND 499) AS status_4xx,
                       count(*) FILTER (e.http_status >= 500) AS status_5xx,
                       quantile_cont(e.http_latency_ms, 0.5) FILTER (e.http_status <> 101) AS latency_p50_ms,
                       quantile_cont(e.http_latency_ms, 0.95) FILTER (e.http_status <> 101) AS latency_p95_ms,
                       quantile_cont(e.http_latency_ms, 0.99) FILTER (e.http_status <> 101) AS latency_p99_ms
                FROM entries e
                WHERE e.revision IS NOT NULL AND {where}
                GROUP BY ALL
            ),
            deploys AS (
                SELECT service, audit_revision AS revision, min(timestamp) AS deploy_time
                FROM entries WHERE audit_revision IS NOT NULL GROUP BY ALL
            )
            SELECT per.service, per.revision, per.first_seen, per.last_seen, d.deploy_time,
                   per.entries, per.errors, per.errors / per.entries AS error_rate,
                   per.requests, per.status_4xx, per.status_5xx,
                   CASE WHEN per.requests > 0 THEN per.status_5xx / per.requests END AS request_error_rate,
                   per.latency_p50_ms, per.latency_p95_ms, per.latency_p99_ms,
                   CASE WHEN sum(per.requests) OVER (PARTITION BY per.service) > 0
                        THEN per.requests / sum(per.requests) OVER (PARTITION BY per.service) END AS traffic_share
            FROM per LEFT JOIN deploys d USING (service, revision)
            ORDER BY per.service, per.first_seen, per.revision
        """, params)

    def timeline(self, bucket: str = "5m", **window: Any) -> pd.DataFrame:
        """Per time bucket and revision: entries, errors, error_rate, requests, 5xx, request error
        rate and matches per pattern category. Buckets with no entries appear as zeros
        (`Engine.timeline`, `aggregates.TIMELINE_SCHEMA`)."""
        w = self.window(**window)
        table = self.engine.timeline(w, parse_duration(bucket, name="bucket"))
        if table.num_rows == 0:
            return pd.DataFrame(columns=table.schema.names)
        return table.to_pandas()

    def patterns(self, fields: bool = True, **window: Any) -> pd.DataFrame:
        """Per matched pattern: category, title, count, first/last seen, count per revision, one
        example message (the latest, redacted) and, with `fields`, the top-10 value counts of
        each extracted field."""
        w = self.window(**window)
        where, params = self.filters(w, "m")
        con = self.connection(w)
        df = con.execute(f"""
            SELECT m.pattern_id AS id, any_value(m.category) AS category, any_value(m.title) AS title,
                   count(*) AS count, min(m.timestamp) AS first_seen, max(m.timestamp) AS last_seen,
                   arg_max(m.entry_file, (m.timestamp, m.entry_file, m.entry_row)) AS example_file,
                   arg_max(m.entry_row, (m.timestamp, m.entry_file, m.entry_row)) AS example_row
            FROM matches m WHERE {where}
            GROUP BY m.pattern_id
            ORDER BY array_position({list(CATEGORIES)}, any_value(m.category)), count DESC, id
        """, params).df()
        per_rev: dict[str, dict[str, int]] = {}
        for pid, rev, n in con.execute(
                f"SELECT pattern_id, revision, count(*) FROM matches m WHERE {where} GROUP BY ALL ORDER BY 1, 2",
                params).fetchall():
            per_rev.setdefault(pid, {})[rev if rev is not None else "(none)"] = n
        df["by_revision"] = [per_rev.get(pid, {}) for pid in df["id"]]
        df["example"] = self.examples(w, list(zip(df["example_file"], df["example_row"], strict=True)))
        df = df.drop(columns=["example_file", "example_row"])
        if fields:
            df["fields"] = self._field_counts(w, list(df["id"]))
        return df

    def examples(self, w: Window, refs: list[tuple[str, int]], *, redact: bool = True) -> list[str | None]:
        """The message (or `METHOD path -> status` for request logs) of each (entry_file, entry_row),
        redacted (`redact=False`: for a caller that redacts them with the rest)."""
        if not refs:
            return []
        root = str(Path(self.store.root) / "entries")
        wanted = pd.DataFrame({"filename": [f"{root}/{f}" for f, _ in refs], "row": [int(r) for _, r in refs]})
        con = self.connection(w)
        con.register("logaudit_example_refs", wanted)
        files = sorted(set(wanted["filename"]))
        rows = con.execute(f"""
            SELECT filename, file_row_number,
                   coalesce(message, http_method || ' ' || http_path || ' -> ' || http_status) AS text
            FROM read_parquet({sql_list(files)}, filename=true, file_row_number=true)
            WHERE file_row_number IN (SELECT row FROM logaudit_example_refs)
        """).fetchall()
        con.unregister("logaudit_example_refs")
        found = {(f, r): t for f, r, t in rows}
        texts = [found.get((f, r)) for f, r in zip(wanted["filename"], wanted["row"], strict=True)]
        return self.redactor.redact_all(texts) if redact else texts

    def _field_counts(self, w: Window, pattern_ids: list[str]) -> list[dict[str, dict[str, int]]]:
        """Per pattern: the top-10 values of each extracted field, redacted (in one pass for all)."""
        where, params = self.filters(w, "m")
        found: list[tuple[int, str, str, int]] = []
        for i, pid in enumerate(pattern_ids):
            names = self.catalog.get(pid).group_names if pid in self.catalog.by_id else ()
            for name in names:
                rows = self.connection(w).execute(f"""
                    SELECT v, count(*) AS n FROM (
                        SELECT json_extract_string(m.fields_json, $path) AS v FROM matches m
                        WHERE m.pattern_id = $pid AND {where})
                    WHERE v IS NOT NULL GROUP BY v ORDER BY n DESC, v LIMIT 10
                """, params | {"pid": pid, "path": "$." + json_path_key(name)}).fetchall()
                found += [(i, name, v, int(n)) for v, n in rows]
        out: list[dict[str, dict[str, int]]] = [{} for _ in pattern_ids]
        values = self.redactor.redact_all(v for _, _, v, _ in found)
        for (i, name, _, n), v in zip(found, values, strict=True):
            counts = out[i].setdefault(name, {})
            counts[v or ""] = counts.get(v or "", 0) + n  # two values may redact to the same text
        return out

    def pattern_entries(self, pattern_id: str, limit: int | None = 100, **window: Any) -> pd.DataFrame:
        """The entries a pattern matched (newest first): timestamp, revision, instance, message
        (redacted), extracted fields, and where the entry came from (source, line)."""
        w = self.window(**window)
        where, params = self.filters(w, "m")
        params |= {"pid": pattern_id, "root": str(Path(self.store.root) / "entries") + "/"}
        self._with_rows(w)
        df = self._df(w, f"""
            SELECT e.timestamp, e.service, e.revision, e.instance_id, e.effective_severity,
                   coalesce(e.message, e.http_method || ' ' || e.http_path || ' -> ' || e.http_status) AS message,
                   m.fields_json AS fields, e.source, e.source_position
            FROM matches m JOIN entries_rows e
              ON e.filename = $root || m.entry_file AND e.file_row_number = m.entry_row
            WHERE m.pattern_id = $pid AND {where}
            ORDER BY e.timestamp DESC
            {"LIMIT " + str(int(limit)) if limit else ""}
        """, params)
        df["message"] = self.redactor.redact_all(df["message"])
        df["fields"] = self.redactor.redact_all(df["fields"])  # JSON text: the rules keep it valid JSON
        return df

    def endpoints(self, **window: Any) -> pd.DataFrame:
        """Per (service, method, normalized path, status): count, share of the service's requests, p95 latency.

        Ids in paths (UUIDs, 8+ hex characters, numbers) become `{id}`. Raw paths are grouped first
        and only the distinct paths are normalized, so the cost does not grow with traffic.
        """
        w = self.window(**window)
        where, params = self.filters(w)
        con = self.connection(w)
        raw = con.sql(f"""
            SELECT service, http_method AS method, http_path, http_status AS status, count(*) AS count,
                   list(http_latency_ms) FILTER (http_status <> 101 AND http_latency_ms IS NOT NULL) AS latencies
            FROM entries WHERE http_status IS NOT NULL AND {where}
            GROUP BY ALL
        """, params=params or None).to_arrow_table()
        # normalized, then redacted (request paths can carry emails and tokens), as the summary does
        paths = self.redactor.redact_all(normalize_path(p) for p in raw.column("http_path").to_pylist())
        raw = raw.append_column("path", pa.array(paths, pa.string()))
        con.register("logaudit_raw_endpoints", raw)
        df = con.execute("""
            SELECT service, method, path, status, sum(count)::BIGINT AS count,
                   sum(count) / sum(sum(count)) OVER (PARTITION BY service) AS share,
                   list_aggregate(flatten(list(latencies)), 'quantile_cont', 0.95) AS latency_p95_ms
            FROM logaudit_raw_endpoints
            GROUP BY 1, 2, 3, 4
            ORDER BY service, count DESC, path, method, status
        """).df()
        con.unregister("logaudit_raw_endpoints")
        return df

    def unclassified(self, min_severity: str = "WARNING", limit: int | None = 50, **window: Any) -> pd.DataFrame:
        """The most frequent messages at `min_severity` or above that match no pattern, grouped by
        template (numbers, ids, hex, IPs, quoted values masked); with count, example, revisions."""
        w = self.window(**window)
        level = SEVERITY_NUM.get(min_severity.upper())
        if level is None:
            raise UsageError(f"unknown severity {min_severity!r}", hint=f"one of {', '.join(SEVERITY_NUM)}")
        where, params = self.filters(w)
        params |= {"level": level}
        params |= {"root": str(Path(self.store.root) / "entries") + "/"}
        self._with_rows(w)
        df = self._df(w, f"""
            WITH w AS (
                SELECT filename, file_row_number, timestamp, revision, message, effective_severity_num
                FROM entries_rows
                WHERE effective_severity_num >= $level AND message IS NOT NULL AND {where}
            ),
            hit AS (SELECT $root || entry_file AS filename, entry_row::BIGINT AS file_row_number FROM matches),
            u AS (SELECT w.* FROM w ANTI JOIN hit USING (filename, file_row_number)),
            -- identical messages are templated once
            g AS (
                SELECT message, count(*) AS n, min(timestamp) AS first_seen, max(timestamp) AS last_seen,
                       list(DISTINCT revision) FILTER (revision IS NOT NULL) AS revisions,
                       max(effective_severity_num) AS sev
                FROM u GROUP BY message
            )
            SELECT {template_sql(self.redactor.sql('message'))} AS template, sum(n)::BIGINT AS count,
                   min(first_seen) AS first_seen, max(last_seen) AS last_seen,
                   list_sort(list_distinct(flatten(list(revisions)))) AS revisions,
                   max(sev) AS max_severity_num,
                   arg_max(message, (last_seen, message)) AS example
            FROM g
            GROUP BY 1
        """, params)
        df["revisions"] = [list(v) if hasattr(v, "__iter__") else [] for v in df["revisions"]]
        df = _grouped(df, limit)
        df["example"] = self.redactor.redact_all(df["example"])
        df["template"] = self.redactor.redact_all(df["template"])
        return df

    def summary(self, *, comparison: Any = None, **window: Any) -> dict[str, Any]:
        """Everything `summarize --format json` prints (see docs/summary-json.md).

        `comparison`: the `Comparison` of this window already judged (e.g. by an export that
        writes it too), whose `verdict_dict()` becomes `verdict`: one judgement, not two.

        Every number is an aggregate of `self.engine` (`logaudit.analysis.aggregates`): the same
        numbers as `revisions()`, `patterns(fields=False)`, `endpoints()` and `unclassified()`
        (tested), computed once per window from the engine's per-file aggregates.
        """
        w = self.window(**window)
        engine = self.engine
        with engine.hold():
            totals = engine.totals(w)
            if totals.entries == 0:
                info = self.store.info()
                return {"window": {"since": iso(w.since), "until": iso(w.until)},
                        "filters": {"service": w.service, "revision": w.revision}, "entries": 0, "services": [],
                        "revisions": [], "patterns": [], "endpoints": [], "unclassified": [], "verdict": None,
                        "verdict_note": "no entries in this window",
                        "store": {"entries": info["entries"], "first": info["first"], "last": info["last"]},
                        "catalogs": self.catalog.describe()}
            endpoints = engine.endpoints(w)  # first: its latency table has the revisions' percentiles too
            revisions = engine.revisions(w)
            patterns = self._summary_patterns(engine.patterns(w))
            unclassified = merge_templates_by_text(
                group_template_stats(engine.templates(w, min_severity=SEVERITY_NUM["WARNING"])), limit=SUMMARY_TEMPLATES)
            # compare's verdict for the newest deploy in the window (None and why: e.g. no service has two revisions)
            verdict, verdict_note = (comparison.verdict_dict(), None) if comparison is not None else \
                summary_verdict(self, w, engine=engine)
        # every text once more, in one pass: examples and templates are redacted already, and
        # the rest (paths, verdict reasons, ...) is redacted wherever it may quote log text; every
        # value plain (a service DuckDB returns as NULL is None here, never NaN); `catalogs` (no
        # log text) is added after
        return self.redactor.redact_tree(plain({
            "window": {"since": iso(w.since), "until": iso(w.until)},
            "filters": {"service": w.service, "revision": w.revision},
            "entries": totals.entries,
            "services": totals.services,
            "revisions": [
                {
                    "service": r.service, "revision": r.revision,
                    "first_seen": iso(r.first_seen), "last_seen": iso(r.last_seen),
                    "deploy_time": iso(r.deploy_time),
                    "entries": r.entries, "errors": r.errors, "error_rate": _num(r.error_rate),
                    "requests": r.requests, "status_4xx": r.status_4xx, "status_5xx": r.status_5xx,
                    "request_error_rate": _num(r.request_error_rate),
                    "latency_ms": {k: _num(v) for k, v in r.latency_ms.items()},
                    "traffic_share": _num(r.traffic_share),
                }
                for r in revisions
            ],
            "patterns": patterns,
            "endpoints": [
                {"service": e.service, "method": e.method, "path": e.path, "status": e.status, "count": e.count,
                 "share": _num(e.share), "latency_p95_ms": _num(e.latency_p95_ms)}
                for e in endpoints
            ],
            "unclassified": [
                {"template": u.template, "count": u.count, "example": u.example,
                 "first_seen": iso(u.first_seen), "last_seen": iso(u.last_seen), "revisions": u.revisions}
                for u in unclassified
            ],
            "verdict": verdict,
            "verdict_note": verdict_note,
        })) | {"catalogs": self.catalog.describe()}

    def _summary_patterns(self, stats: list[PatternStats]) -> list[dict[str, Any]]:
        """The summary's `patterns`: ordered like `patterns()` (category, count, id); `summary` redacts them."""
        order = {c: i for i, c in enumerate(CATEGORIES)}
        info = {}
        for p in stats:
            pat = self.catalog.by_id.get(p.id)
            info[p.id] = (pat.category, pat.title) if pat is not None else ("info", p.id)
        stats = sorted(stats, key=lambda p: (order.get(info[p.id][0], len(order)), -p.count, p.id))
        return [
            {"id": p.id, "category": info[p.id][0], "title": info[p.id][1], "count": p.count,
             "first_seen": iso(p.first_seen), "last_seen": iso(p.last_seen), "by_revision": p.by_revision,
             "example": p.example}
            for p in stats
        ]

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()
        for con, _ in self._cons.values():
            con.close()
        if self._probe is not None:
            self._probe.close()
            self._probe = None
        self._cons.clear()
        self._rows.clear()
        self._made.clear()


def json_path_key(name: str) -> str:
    """A JSON path member for a field name (quoted when it is not a plain identifier)."""
    return name if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) else '"' + name.replace('"', '\\"') + '"'


def _listing(what: str, in_window: list[str], in_store: list[str]) -> str:
    """`services in this window: a, b`, or what the store holds when the window holds none."""
    if in_window:
        return f"{what} in this window: {', '.join(in_window)}"
    if in_store:
        return f"no {what} in this window; in the store: {', '.join(in_store)}"
    return "the store holds no entries: ingest or pull logs first"


def _num(value: Any) -> float | None:
    if value is None:
        return None
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return None if f != f else round(f, 6)




def _grouped(df: pd.DataFrame, limit: int | None) -> pd.DataFrame:
    """First-stage templates merged under the one grouping (`aggregates.grouping`): counts summed,
    first/last seen, revisions united, the highest severity, the latest example (ties: the
    greatest text); most frequent first, then by template; at most `limit`."""
    columns = list(df.columns)
    if df.empty:
        return df
    df = df.assign(template=df["template"].map(grouping(df["template"])))
    out = []
    for template, g in df.groupby("template", sort=False):
        last = g.sort_values(["last_seen", "example"], na_position="first").iloc[-1]
        out.append({"template": template, "count": int(g["count"].sum()), "first_seen": g["first_seen"].min(),
                    "last_seen": g["last_seen"].max(), "revisions": sorted({r for rs in g["revisions"] for r in rs}),
                    "max_severity_num": g["max_severity_num"].max(), "example": last["example"]})
    merged = pd.DataFrame(out, columns=columns).sort_values(["count", "template"], ascending=[False, True])
    return (merged.head(int(limit)) if limit else merged).reset_index(drop=True)

__all__ = ["CATEGORIES", "Audit", "Window", "default_catalog", "resolve_window"]
