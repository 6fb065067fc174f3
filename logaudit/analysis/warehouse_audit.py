"""`WarehouseAudit`: the audit of logs that sit in BigQuery, computed there.

It is an `Audit` whose engine is a `WarehouseEngine`: `summary`, `compare`, the report and the
DataFrame methods the report draws from (`revisions`, `patterns`, `endpoints`, `unclassified`,
`timeline`) read only the engine's aggregates, so they give what a local store of the same
entries gives. What needs the entries themselves (`sql`, `connection`, `pattern_entries`,
pattern field values) needs a local store: pull or export the window (docs/bigquery.md).

>>> audit = WarehouseAudit.bigquery("my-project.logs._AllLogs")            # doctest: +SKIP
>>> audit.summary(since="6h")["revisions"]                                  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
import pyarrow as pa

from logaudit.analysis.aggregates import group_template_stats, merge_templates_by_text
from logaudit.analysis.audit import Audit, default_catalog
from logaudit.analysis.engine_warehouse import WarehouseEngine
from logaudit.analysis.window import Window, iso, resolve_window
from logaudit.catalog.catalog import Catalog, load_catalogs
from logaudit.core.errors import UnknownFilterError, UsageError
from logaudit.core.redact import Redactor, load_redactor
from logaudit.sources.severity import SEVERITY_NUM
from logaudit.store.schema import ENTRY_SCHEMA
from logaudit.warehouse.runner import PlanRunner, QueryRecord, Runner
from logaudit.warehouse.source import WarehouseSource

#: The analyses `plan` lists the queries of, and the Engine calls each makes.
PLANS: dict[str, tuple[str, ...]] = {
    "summarize": ("totals", "revisions", "endpoints", "patterns", "templates", "histograms", "health",
                  "root_causes"),
    "compare": ("revisions", "histograms", "patterns", "templates", "health", "root_causes", "timeline"),
    "report": ("totals", "revisions", "endpoints", "patterns", "templates", "histograms", "health",
               "root_causes", "timeline", "status_series"),
}


class WarehouseAudit(Audit):
    """An `Audit` of a BigQuery log dataset (`source`), its queries run by `runner`."""

    def __init__(self, source: WarehouseSource, runner: Runner, catalog: Catalog | list | None = None, *,
                 redactor: Redactor | None = None) -> None:
        self.store = None
        self.catalog = default_catalog() if catalog is None else \
            catalog if isinstance(catalog, Catalog) else load_catalogs(catalog)
        self.redactor = redactor if redactor is not None else load_redactor()
        self.source = source
        self.runner = runner
        self._engine = WarehouseEngine(runner, source, self.catalog, self.redactor)

    @classmethod
    def bigquery(cls, ref: str, *, catalog: Catalog | list | None = None, redactor: Redactor | None = None,
                 billing_project: str | None = None, endpoint: str | None = None, max_bytes: int | None = None,
                 dedupe: bool = True, dry_run: bool = False, progress: bool = False,
                 labels: Mapping[str, str] | None = None) -> WarehouseAudit:
        """The audit of `ref`: `PROJECT.DATASET._AllLogs` (Log Analytics) or `PROJECT.DATASET`
        (a classic log sink). Credentials are ADC unless `endpoint` (or $LOGAUDIT_BIGQUERY_ENDPOINT)
        names an emulator; every query is dry-run first and refused above `max_bytes`."""
        from logaudit.warehouse.bigquery import BigQueryRunner, open_source

        kwargs: dict[str, Any] = {"endpoint": endpoint, "dry_run": dry_run, "progress": progress,
                                  "labels": dict(labels or {})}
        if max_bytes is not None:
            kwargs["max_bytes"] = max_bytes
        runner = BigQueryRunner.for_source(ref, billing_project, **kwargs)
        try:
            source = open_source(runner, ref, dedupe=dedupe)
        except BaseException:
            runner.close()
            raise
        return cls(source, runner, catalog, redactor=redactor)

    # ------------------------------------------------------------------ what needs a local store
    def connection(self, window: Window) -> Any:
        raise UsageError("this needs the entries themselves, which stay in BigQuery",
                         hint="pull or export the window into a local store (logaudit pull / export)")

    # ------------------------------------------------------------------ windows
    def window(self, since: Any = None, until: Any = None, service: str | None = None,
               revision: str | None = None, *, now: datetime | None = None) -> Window:
        """`resolve_window`; a --service or --revision with no entry in the window raises
        `UnknownFilterError` naming what the window holds (the dataset's whole history is not
        scanned for it: that would bill every byte of it)."""
        if isinstance(since, Window):
            return since
        w = resolve_window(since, until, service, revision, now=now)
        if (service is not None or revision is not None) and self.engine.totals(w).entries == 0:
            span = Window(w.since, w.until)
            revs = self.engine.revisions(span, percentiles=False)
            if service is not None and service not in {r.service for r in revs}:
                services = sorted({r.service for r in revs if r.service is not None})
                raise UnknownFilterError(
                    f"--service {service!r}: no entry of this service in the window", option="--service",
                    value=service, choices=services, stored=[],
                    hint=f"services in this window: {', '.join(services)}" if services else
                    "the window holds no entry: widen --since/--until")
            revisions = sorted({r.revision for r in revs if service is None or r.service == service})
            raise UnknownFilterError(
                f"--revision {revision!r}: no entry of this revision in the window", option="--revision",
                value=revision or "", choices=revisions, stored=[],
                hint=f"revisions in this window: {', '.join(revisions)}" if revisions else
                "the window holds no entry: widen --since/--until")
        return w

    # ------------------------------------------------------------------ the DataFrames, from the engine
    def revisions(self, **window: Any) -> pd.DataFrame:
        w = self.window(**window)
        rows = [{"service": r.service, "revision": r.revision, "first_seen": r.first_seen, "last_seen": r.last_seen,
                 "deploy_time": r.deploy_time, "entries": r.entries, "errors": r.errors, "error_rate": r.error_rate,
                 "requests": r.requests, "status_4xx": r.status_4xx, "status_5xx": r.status_5xx,
                 "request_error_rate": r.request_error_rate, "latency_p50_ms": r.latency_p50_ms,
                 "latency_p95_ms": r.latency_p95_ms, "latency_p99_ms": r.latency_p99_ms,
                 "traffic_share": r.traffic_share} for r in self.engine.revisions(w)]
        return pd.DataFrame(rows, columns=["service", "revision", "first_seen", "last_seen", "deploy_time", "entries",
                                           "errors", "error_rate", "requests", "status_4xx", "status_5xx",
                                           "request_error_rate", "latency_p50_ms", "latency_p95_ms",
                                           "latency_p99_ms", "traffic_share"])

    def patterns(self, fields: bool = True, **window: Any) -> pd.DataFrame:
        """As `Audit.patterns`: with `fields`, the top-10 values of each named group, extracted in
        BigQuery (`REGEXP_EXTRACT`) and redacted."""
        w = self.window(**window)
        stats = self._summary_patterns(self.engine.patterns(w))
        values = self.engine.field_values(w, [p["id"] for p in stats]) if fields else [None] * len(stats)
        rows = []
        for p, groups in zip(stats, values, strict=True):
            rows.append({"id": p["id"], "category": p["category"], "title": p["title"], "count": p["count"],
                         "first_seen": pd.Timestamp(p["first_seen"]), "last_seen": pd.Timestamp(p["last_seen"]),
                         "by_revision": p["by_revision"], "example": self.redactor.redact(p["example"])
                         if p["example"] is not None else None} | ({"fields": self._redacted(groups)} if fields else {}))
        cols = ["id", "category", "title", "count", "first_seen", "last_seen", "by_revision", "example"]
        return pd.DataFrame(rows, columns=cols + (["fields"] if fields else []))

    def _redacted(self, groups: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
        """Field values redacted; two values that redact to one text add up (as `Audit.patterns`)."""
        out: dict[str, dict[str, int]] = {}
        for name, values in groups.items():
            into = out.setdefault(name, {})
            for value, n in values.items():
                red = self.redactor.redact(value) or ""
                into[red] = into.get(red, 0) + n
        return out

    def endpoints(self, **window: Any) -> pd.DataFrame:
        w = self.window(**window)
        return pd.DataFrame([{"service": e.service, "method": e.method, "path": e.path, "status": e.status,
                              "count": e.count, "share": e.share, "latency_p95_ms": e.latency_p95_ms}
                             for e in self.engine.endpoints(w)],
                            columns=["service", "method", "path", "status", "count", "share", "latency_p95_ms"])

    def unclassified(self, min_severity: str = "WARNING", limit: int | None = 50, **window: Any) -> pd.DataFrame:
        w = self.window(**window)
        level = SEVERITY_NUM.get(min_severity.upper())
        if level is None:
            raise UsageError(f"unknown severity {min_severity!r}", hint=f"one of {', '.join(SEVERITY_NUM)}")
        rows = merge_templates_by_text(group_template_stats(self.engine.templates(w, min_severity=level)), limit=limit)
        return pd.DataFrame([{"template": self.redactor.redact(t.template), "count": t.count,
                              "first_seen": t.first_seen, "last_seen": t.last_seen, "revisions": t.revisions,
                              "max_severity_num": t.max_severity, "example": self.redactor.redact(t.example)
                              if t.example is not None else None} for t in rows],
                            columns=["template", "count", "first_seen", "last_seen", "revisions", "max_severity_num",
                                     "example"])

    def summary(self, *, comparison: Any = None, **window: Any) -> dict[str, Any]:
        """`Audit.summary`; for an empty window `store` is None (the dataset is not a store)."""
        w = self.window(**window)
        with self.engine.hold():
            if self.engine.totals(w).entries:
                return super().summary(comparison=comparison, since=w)
        return {"window": {"since": iso(w.since), "until": iso(w.until)},
                "filters": {"service": w.service, "revision": w.revision}, "entries": 0, "services": [],
                "revisions": [], "patterns": [], "endpoints": [], "unclassified": [], "verdict": None,
                "verdict_note": "no entries in this window", "store": None, "catalogs": self.catalog.describe()}

    # ------------------------------------------------------------------ entries
    def fetch_entries(self, since: datetime | None, until: datetime | None, service: str | None = None) -> pa.Table:
        """The entries of `since <= timestamp < until` (one service's, when given) as Arrow in the
        store's schema (`ENTRY_SCHEMA`; columns the entry views do not give are null): what an
        export writes. This is the one query that brings entries back, not aggregates."""
        where = " WHERE service = @service" if service is not None else ""
        sql = f"WITH entries AS (\n{self.source.entries_sql(since, until)}\n)\nSELECT * FROM entries{where}"
        got = self.runner.query(sql, {"service": service} if service is not None else {}, purpose="export-entries")
        cols = []
        for f in ENTRY_SCHEMA:
            if f.name in got.column_names:
                cols.append(got.column(f.name).cast(f.type))
            else:
                cols.append(pa.nulls(got.num_rows, f.type))
        return pa.Table.from_arrays(cols, schema=ENTRY_SCHEMA)

    # ------------------------------------------------------------------ plans
    def plan(self, analysis: str = "summarize", *, bucket: timedelta = timedelta(minutes=5), **window: Any
             ) -> list[QueryRecord]:
        """The queries `analysis` (`PLANS`) sends for a window, without running them: one per
        aggregate, with its parameters written in (`dialect.inline_parameters`), ready to paste
        into the Log Analytics page. Queries that depend on an earlier answer (texts re-checked
        locally, redacted paths) are shown with no such answer."""
        from logaudit.warehouse.dialect import inline_parameters

        if analysis not in PLANS:
            raise UsageError(f"unknown analysis {analysis!r}", hint=f"one of {', '.join(PLANS)}")
        w = resolve_window(window.get("since"), window.get("until"), window.get("service"), window.get("revision"))
        runner = PlanRunner()
        engine = WarehouseEngine(runner, self.source, self.catalog, self.redactor)
        level = SEVERITY_NUM["WARNING"]
        calls = {"totals": lambda: engine.totals(w), "revisions": lambda: engine.revisions(w),
                 "endpoints": lambda: engine.endpoints(w), "patterns": lambda: engine.patterns(w),
                 "templates": lambda: engine.templates(w, min_severity=level),
                 "histograms": lambda: engine.latency_histograms(w), "health": lambda: engine.health(w),
                 "root_causes": lambda: engine.root_causes(w), "timeline": lambda: engine.timeline(w, bucket),
                 "status_series": lambda: engine.status_series(w, bucket)}
        for name in PLANS[analysis]:
            calls[name]()
        return [QueryRecord(r.purpose, inline_parameters(r.sql, values), r.params)
                for r, values in zip(runner.queries, runner.values, strict=True)]

    def close(self) -> None:
        self._engine.close()
        self.runner.close()


__all__ = ["PLANS", "WarehouseAudit"]
