"""The entry views, transpiled to DuckDB, over tables shaped like BigQuery's give exactly the rows
the local store holds for the same entries: every canonical column, every row."""

from __future__ import annotations

import duckdb
import pytest
from bq_tables import canonical_rows, differences, load_all_logs, load_sink

from logaudit.core.db import connect, sql_list
from logaudit.sources.sample import SampleConfig, sample_entries
from logaudit.store.store import Store
from logaudit.warehouse.dialect import to_duckdb
from logaudit.warehouse.entry_view import CANONICAL_COLUMNS, SinkTable, all_logs_view, sink_view

# builds a 3,000-entry store and its BigQuery-shaped twins (4 s): the full suite runs it
pytestmark = pytest.mark.slow

LOG = "projects/netra-staging/logs/"
STDOUT, REQUESTS, AUDIT = LOG + "run.googleapis.com%2Fstdout", LOG + "run.googleapis.com%2Frequests", \
    LOG + "cloudaudit.googleapis.com%2Factivity"
RESOURCE = {"type": "cloud_run_revision", "labels": {
    "project_id": "netra-staging", "service_name": "netra-backend-staging",
    "revision_name": "netra-backend-staging-00316-m2x", "configuration_name": "netra-backend-staging",
    "location": "us-central1"}}


def _entry(n: int, log: str = STDOUT, **fields) -> dict:
    base = {"logName": log, "resource": RESOURCE, "insertId": f"hostile-{n:03d}",
            "timestamp": f"2025-09-10T03:00:{n % 60:02d}.123456789Z", "receiveTimestamp": "2025-09-10T03:01:00.5Z",
            "labels": {"instanceId": "00f1"}}
    base.update(fields)
    return {k: v for k, v in base.items() if v is not None}


def _request(n: int, url: str = "https://api.example.com/v1/x?q=1", status: int = 200, latency: str = "0.5s",
             **fields) -> dict:
    return _entry(n, REQUESTS, httpRequest={"requestMethod": "GET", "requestUrl": url, "status": status,
                                            "latency": latency, "userAgent": "curl/8"}, **fields)


def hostile_entries() -> list[dict]:
    """Entries whose severity lives only in their text, missing and empty fields, odd values."""
    return [
        _entry(1, textPayload="ERROR: database unreachable"),
        _entry(2, textPayload="[2025-09-16 00:42:53 +0000] [11] [WARNING] Worker timeout"),
        _entry(3, textPayload="2025-09-10 03:00:03 - auth - CRITICAL - token store down"),
        _entry(4, textPayload="2025-09-10 03:00:04 | ERROR    | app:run:12 - failed"),
        _entry(5, textPayload="  Traceback (most recent call last):\n  File \"x.py\", line 1"),
        _entry(6, severity="DEFAULT", textPayload="ERROR: default severity, error text"),
        _entry(7, jsonPayload={"severity": "warn", "message": "payload says warn"}),
        _entry(8, jsonPayload={"foo": "bar"}),
        _entry(9, jsonPayload={"msg": "msg key"}),
        _entry(10, jsonPayload={"statusDetails": "status details key", "level": "error"}),
        _entry(11, resource={"type": "cloud_run_revision"}, labels=None),
        _entry(12),
        _entry(13, resource=None, labels=None, textPayload="no resource at all"),
        _request(14, status=503, latency="1.5s"),
        _request(15, status=404, latency="2s"),
        _request(16, url="/relative/path?x=1#frag", latency="0.000000001s"),
        _request(17, url="https://host.example.com", latency="12.345678901s"),
        _request(18, url="", latency=None),
        _request(19, url="https://h.example.com/a#b?c", severity="INFO"),
        _entry(20, textPayload="\x1b[31mERROR: in red\x1b[0m"),
        _entry(21, severity="warn", textPayload="lower-case alias"),
        _entry(22, severity=" error ", textPayload="blanks around"),
        _entry(23, severity="450", textPayload="digits"),
        _entry(24, severity="9000", textPayload="digits above EMERGENCY"),
        _entry(25, severity="ınfo", textPayload="dotless i: not ASCII, no severity"),
        _entry(26, severity="loud", textPayload="INFO: unknown severity name"),
        _entry(27, resource={"type": "cloud_run_revision", "labels": {
            "service_name": "", "revision_name": "checkout-api-00012-abc", "location": ""}},
               textPayload="service read from the revision name"),
        _entry(28, AUDIT, severity="ERROR", protoPayload={
            "@type": "type.googleapis.com/google.cloud.audit.AuditLog", "methodName": "google.cloud.run.v1.Services.ReplaceService",
            "status": {"code": 7, "message": "Permission denied"}, "resourceName": "namespaces/p/services/s",
            "authenticationInfo": {"principalEmail": "dev@example.com"}}),
        _entry(29, AUDIT, protoPayload={
            "@type": "type.googleapis.com/google.cloud.audit.AuditLog", "methodName": "google.cloud.run.v1.Services.DeleteService",
            "resourceName": "namespaces/p/services/s"}),
        _entry(30, textPayload=""),
        _entry(31, severity="NOTICE"),
    ]


@pytest.fixture(scope="module")
def entries() -> list[dict]:
    sample, _ = sample_entries(SampleConfig(entries=3000))
    extra = hostile_entries()
    return sample + extra + sample[:40:4] + extra[:3]  # exact duplicates, counted once


@pytest.fixture(scope="module")
def local_rows(entries: list[dict], tmp_path_factory: pytest.TempPathFactory) -> list[tuple]:
    store = Store(tmp_path_factory.mktemp("wh") / "store")
    store.ingest_entries(entries, "x")
    con = connect()
    return canonical_rows(con, f"read_parquet({sql_list([str(f) for f in store.entry_files()])})")


@pytest.fixture(scope="module")
def loaded(entries: list[dict]) -> tuple[duckdb.DuckDBPyConnection, dict[str, list[SinkTable]]]:
    """One connection holding `p.d._AllLogs` and two sinks of the entries: `p.sink` date-sharded
    with Duration texts, `p.part` partitioned with {seconds, nanos} records."""
    con = connect()
    load_all_logs(con, "p.d._AllLogs", entries)
    return con, {"p.sink": load_sink(con, "p.sink", entries, sharded=True, latency="STRING"),
                 "p.part": load_sink(con, "p.part", entries, sharded=False, latency="RECORD")}


def _run(con: duckdb.DuckDBPyConnection, sql: str) -> list[tuple]:
    return canonical_rows(con, f"({to_duckdb(sql)})")


def test_all_logs_view_equals_the_local_store(loaded, local_rows: list[tuple]) -> None:
    con, _ = loaded
    got = _run(con, all_logs_view("p.d._AllLogs"))
    assert len(got) == len(local_rows) == 3031
    assert differences(got, local_rows) == {}


def test_a_missing_severity_stored_as_default_reads_the_same(entries: list[dict], local_rows: list[tuple]) -> None:
    """Entries without severity as `DEFAULT`/0 rather than NULL: only `severity` and
    `severity_num` show it; the effective severity is read from the text all the same."""
    con = connect()
    load_all_logs(con, "p.d._AllLogs", entries, no_severity="default")
    got = _run(con, all_logs_view("p.d._AllLogs"))
    diff = differences(got, local_rows)
    assert set(diff) == {"severity", "severity_num"}
    without = sum(1 for e in {(e["logName"], e["insertId"]): e for e in entries}.values() if "severity" not in e)
    assert len(diff["severity"]) == len(diff["severity_num"]) == without == 249
    assert {(g, w) for _, g, w in diff["severity"]} == {("DEFAULT", None)}
    assert {(g, w) for _, g, w in diff["severity_num"]} == {(0, None)}


@pytest.mark.parametrize(("dataset", "sharded"), [("p.sink", True), ("p.part", False)])
def test_sink_view_equals_the_local_store(loaded, local_rows: list[tuple], dataset: str, sharded: bool) -> None:
    con, sinks = loaded
    tables = sinks[dataset]
    assert [t.name.rsplit(".", 1)[1] for t in tables] == [
        f"{name}{'_' if sharded else ''}" for name in (
            "cloudaudit_googleapis_com_activity", "run_googleapis_com_requests", "run_googleapis_com_stderr",
            "run_googleapis_com_stdout", "run_googleapis_com_varlog_system")]
    got = _run(con, sink_view(tables))
    assert len(got) == 3031
    assert differences(got, local_rows) == {}


def test_duplicates_are_kept_with_no_dedupe(loaded, entries: list[dict], local_rows: list[tuple]) -> None:
    con, sinks = loaded
    for sql in (all_logs_view("p.d._AllLogs", dedupe=False), sink_view(sinks["p.sink"], dedupe=False)):
        got = _run(con, sql)
        assert len(got) == len(entries) == 3044
        assert sorted(set(got)) == sorted(local_rows)


def test_time_window_and_shards(loaded, local_rows: list[tuple]) -> None:
    """since <= timestamp < until, on _AllLogs and on date shards (only the days' shards read)."""
    from datetime import UTC, datetime

    since, until = datetime(2025, 9, 10, 1, 0, tzinfo=UTC), datetime(2025, 9, 10, 3, 0, 30, tzinfo=UTC)
    lo, hi = int(since.timestamp() * 1e6), int(until.timestamp() * 1e6)
    ts = CANONICAL_COLUMNS.index("timestamp")
    want = [r for r in local_rows if lo <= r[ts] < hi]
    con, sinks = loaded
    tables = sinks["p.sink"]
    assert 0 < len(want) < len(local_rows)
    assert differences(_run(con, all_logs_view("p.d._AllLogs", since=since, until=until)), want) == {}
    sql = sink_view(tables, since=since, until=until)
    assert "_TABLE_SUFFIX >= '20250910' AND _TABLE_SUFFIX <= '20250910'" in sql
    assert differences(_run(con, sql), want) == {}


def test_hostile_entries_read_as_the_local_store_reads_them(local_rows: list[tuple]) -> None:
    """Spot checks of what the hostile entries become (the parity tests compare every value)."""
    cols = {c: i for i, c in enumerate(CANONICAL_COLUMNS)}
    rows = {r[cols["insert_id"]]: r for r in local_rows if r[cols["insert_id"]].startswith("hostile-")}

    def get(n: int, col: str):
        return rows[f"hostile-{n:03d}"][cols[col]]

    assert [get(n, "effective_severity") for n in (1, 2, 3, 4, 5, 6, 7, 8, 10, 20, 25, 26)] == [
        "ERROR", "WARNING", "CRITICAL", "ERROR", "ERROR", "ERROR", "WARNING", "DEFAULT", "ERROR", "ERROR",
        "DEFAULT", "INFO"]
    assert [get(n, "severity_num") for n in (21, 22, 23, 24, 25, 26)] == [400, 500, 400, 800, None, None]
    assert [get(n, "http_path") for n in (14, 16, 17, 18, 19)] == ["/v1/x", "/relative/path", "/", "/", "/a"]
    assert [get(n, "http_latency_ms") for n in (14, 15, 16, 17, 18)] == [1500.0, 2000.0, 1e-06, 12345.678901, None]
    assert [get(n, "effective_severity_num") for n in (14, 15)] == [500, 400]
    assert get(20, "message") == "ERROR: in red"
    assert get(27, "service") == "checkout-api" and get(27, "location") is None
    assert [get(n, "message") for n in (8, 9, 10, 30, 31)] == [None, "msg key", "status details key", "", None]
    assert get(28, "message") == ("google.cloud.run.v1.Services.ReplaceService by dev@example.com: "
                                  "status 7 Permission denied")
    assert [get(n, "audit_status_code") for n in (28, 29)] == [7, None]
    assert get(29, "message") == "google.cloud.run.v1.Services.DeleteService by unknown principal: OK"


def test_a_sink_table_without_columns_reads_them_as_typed_nulls(entries: list[dict], local_rows: list[tuple]) -> None:
    """A requests table created before httpRequest and labels existed: those columns are NULL,
    typed (the view still runs), and the rest of the rows is unchanged."""
    con = connect()
    tables = load_sink(con, "p.sink", entries, drop={"run_googleapis_com_requests": ["httpRequest", "labels"]})
    requests = next(t for t in tables if "requests" in t.name)
    assert not any(k.lower().startswith(("httprequest", "labels")) for k in requests.columns)
    sql = sink_view(tables)
    assert "CAST(NULL AS INT64) AS http_status" in sql
    got = _run(con, sql)
    diff = differences(got, local_rows)
    n_requests = sum(1 for r in local_rows if r[CANONICAL_COLUMNS.index("log_id")] == "run.googleapis.com/requests")
    assert n_requests > 1000
    http_cols = {"http_method", "http_url", "http_path", "http_status", "http_latency_ms", "http_user_agent",
                 "instance_id", "effective_severity", "effective_severity_num"}
    assert set(diff) <= http_cols and {"http_status", "http_latency_ms", "instance_id"} <= set(diff)
    assert len(diff["http_status"]) == n_requests
    assert all(got_value is None for col in diff if col.startswith("http_") for _, got_value, _ in diff[col])
