"""Every query the WarehouseEngine builds: BigQuery SQL that reads only the entry view's columns
of the source, and, with a catalog of 5,000 patterns, shorter than BigQuery's limit on the text
of a query (1,024 KB unresolved GoogleSQL: docs/bigquery.md)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from functools import cache

import pytest
from bq_tables import ALL_LOGS_DDL, attach_dataset

import logaudit.analysis.warehouse_sql as q
from logaudit.analysis.engine_warehouse import WarehouseEngine
from logaudit.analysis.window import Window
from logaudit.catalog.catalog import Pattern, default_catalog_paths, load_catalogs
from logaudit.catalog.pushdown import pattern_sql
from logaudit.core.db import connect
from logaudit.core.redact import Redactor
from logaudit.warehouse.dialect import parse_bigquery, table_columns
from logaudit.warehouse.runner import DuckDBRunner
from logaudit.warehouse.source import WarehouseSource

# building 23 queries through DuckDB and 5,000 patterns' RE2 plans take ~20 s on 2 cores
pytestmark = pytest.mark.slow

TABLE = "p.d._AllLogs"
#: BigQuery's limit on the length of an unresolved GoogleSQL query.
MAX_QUERY_BYTES = 1024 * 1024
#: What the `_AllLogs` entry view reads (tests/warehouse/test_sql_shapes.py checks the view alone).
VIEW_COLUMNS = {"timestamp", "receive_timestamp", "log_name", "log_id", "insert_id", "severity", "trace",
                "resource.labels", "labels", "text_payload", "json_payload", "proto_payload",
                "http_request.request_method", "http_request.request_url", "http_request.status",
                "http_request.latency.seconds", "http_request.latency.nanos", "http_request.user_agent"}
WORDS = ["timeout", "refused", "upstream", "database", "connection", "payment", "token", "expired", "quota",
         "worker", "deadline", "exceeded", "invalid", "request", "session", "tenant", "shard", "replica", "lock"]


def generated_patterns(n: int, seed: int = 0) -> list[Pattern]:
    """`n` realistic patterns of about 35-45 characters: literals with `\\b` and `\\d`, alternations,
    classes and bounded repeats, anchors; one in five ignores case."""
    r = random.Random(seed)
    out = []
    for i in range(n):
        a, b, c = r.sample(WORDS, 3)
        regex = [rf"\b{a} {b} after \d+ ms", rf"(?:{a}|{b}|{c}) failed: code [45]\d\d",
                 rf"{a}[-_ ]{b} id=[0-9a-f]{{8}} rejected", rf"^{a} {b}: {c} not available"][i % 4]
        out.append(Pattern(f"gen-{i:05d}", f"generated {i}", "warning", regex, ignore_case=i % 5 == 0))
    return out


def _queries(engine: WarehouseEngine, window: Window) -> list[tuple[str, str]]:
    engine.runner.queries.clear()
    engine.totals(window)
    engine.revisions(window)
    engine.revisions(window, percentiles=False)
    engine.latency_histograms(window)
    engine.endpoints(window)
    engine.patterns(window)
    engine.patterns(window, examples=False)
    engine.templates(window, min_severity=400)
    engine.timeline(window, timedelta(minutes=5))
    engine.status_series(window, timedelta(minutes=5))
    return [(r.purpose, r.sql) for r in engine.runner.queries]


@cache
def _built() -> list[tuple[str, str]]:
    """The queries of every method over an empty `_AllLogs` table, shipped catalog, two windows."""
    con = connect()
    attach_dataset(con, "p.d")
    con.execute(f'CREATE TABLE "p"."d"."_AllLogs" {ALL_LOGS_DDL}')
    catalog = load_catalogs(default_catalog_paths([], shipped=True))
    engine = WarehouseEngine(DuckDBRunner(con), WarehouseSource.all_logs(TABLE), catalog, Redactor())
    since = datetime(2025, 9, 10, tzinfo=UTC)
    return (_queries(engine, Window()) +
            _queries(engine, Window(since, since + timedelta(hours=1), "api", "api-00001-abc")))


def test_every_method_runs_its_queries() -> None:
    purposes = [p for p, _ in _built()]
    assert purposes[:10] == ["totals", "revisions", "revisions", "latency-histograms", "endpoint-paths", "endpoints",
                             "recheck-candidates", "patterns", "patterns", "templates"]
    # the whole range's re-checked texts serve the hour inside it: fetched once
    assert len(purposes) == 23 and purposes.count("recheck-candidates") == 1


def _tables(sql: str) -> dict[str, set[str]]:
    """The tables a query reads (not its CTEs) and their columns."""
    return {t: cols for t, cols in table_columns(sql).items() if "." in t}


@pytest.mark.parametrize("index", range(23))
def test_every_query_is_bigquery_sql_over_the_view_columns(index: int) -> None:
    purpose, sql = _built()[index]
    parse_bigquery(sql)
    read = _tables(sql)
    assert set(read) == {TABLE}, purpose
    assert read[TABLE] <= VIEW_COLUMNS, (purpose, read[TABLE] - VIEW_COLUMNS)
    assert len(sql.encode()) < 64 * 1024, purpose  # the shipped catalog is far from the limit


@cache
def _catalog_sql(n: int) -> dict[str, str]:
    pushed = [pattern_sql(p) for p in generated_patterns(n)]
    matches = q.MatchSQL(pushed, {})
    entries = WarehouseSource.all_logs(TABLE).entries_sql(datetime(2025, 9, 10, tzinfo=UTC),
                                                          datetime(2025, 9, 11, tzinfo=UTC))
    cats = {"critical": [], "warning": list(range(n)), "positive": [], "info": []}
    wanted = [i for i, p in enumerate(pushed) if p.candidate]
    return {"patterns": q.patterns_sql(entries, matches, service=True), "templates": q.templates_sql(entries, matches),
            "timeline": q.timeline_sql(entries, matches, cats),
            "recheck-candidates": q.candidates_sql(entries, pushed, wanted, 200_000)}


def test_a_catalog_of_5000_patterns_fits_the_query_length_limit() -> None:
    """About 136 bytes of SQL per pattern (`IF(REGEXP_CONTAINS(...) AND <ASCII test>, pid, NULL)`),
    written once per query: 5,000 patterns take about two thirds of the limit."""
    sizes = {k: len(v.encode()) for k, v in _catalog_sql(5000).items()}
    assert max(sizes.values()) < MAX_QUERY_BYTES, sizes
    assert 600_000 < sizes["templates"] < 750_000 and 600_000 < sizes["timeline"] < 800_000, sizes
    # the catalog part grows linearly: each pattern once, not once per use
    small = {k: len(v.encode()) for k, v in _catalog_sql(50).items()}
    for k in ("patterns", "templates", "timeline"):
        assert (sizes[k] - small[k]) / 4950 < 150, (k, sizes[k], small[k])


def test_the_generated_catalog_queries_parse() -> None:
    for purpose, sql in _catalog_sql(50).items():
        tree = parse_bigquery(sql)
        assert set(_tables(sql)) == {TABLE}, purpose
        assert tree is not None
