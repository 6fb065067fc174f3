"""The generated GoogleSQL: it parses as BigQuery SQL, reads only the columns the canonical entries
need, and the DuckDB text it becomes keeps BigQuery's meaning where sqlglot alone would not."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache

import pytest
import sqlglot

from logaudit.core.db import connect
from logaudit.core.errors import UsageError
from logaudit.warehouse.dialect import parse_bigquery, table_columns, to_duckdb
from logaudit.warehouse.entry_view import CANONICAL_COLUMNS, SinkTable, all_logs_view, sink_view

SINCE, UNTIL = datetime(2025, 9, 9, 22, tzinfo=UTC), datetime(2025, 9, 11, tzinfo=UTC)

# The column maps of three sink tables: a requests table with fields the audit does not need (they
# must not be read); a stdout table whose JSON payload fields the sink lower-cased, one of them a
# record, one a number; an audit table.
REQUESTS = ("proj.logs.run_googleapis_com_requests_", {
    "logName": "STRING", "timestamp": "TIMESTAMP", "receiveTimestamp": "TIMESTAMP", "insertId": "STRING",
    "severity": "STRING", "trace": "STRING", "spanId": "STRING", "traceSampled": "BOOL",
    "resource": "STRUCT<...>", "resource.type": "STRING", "resource.labels": "STRUCT<...>",
    "resource.labels.service_name": "STRING", "resource.labels.revision_name": "STRING",
    "resource.labels.project_id": "STRING", "resource.labels.location": "STRING",
    "labels": "STRUCT<...>", "labels.instanceId": "STRING",
    "httpRequest": "STRUCT<...>", "httpRequest.requestMethod": "STRING", "httpRequest.requestUrl": "STRING",
    "httpRequest.status": "INT64", "httpRequest.latency": "STRING", "httpRequest.userAgent": "STRING",
    "httpRequest.remoteIp": "STRING", "httpRequest.responseSize": "INT64"}, True)
STDOUT = ("proj.logs.run_googleapis_com_stdout", {
    "logName": "STRING", "timestamp": "TIMESTAMP", "receiveTimestamp": "TIMESTAMP", "insertId": "STRING",
    "textPayload": "STRING", "jsonPayload": "STRUCT<...>", "jsonPayload.message": "STRING",
    "jsonPayload.statusdetails": "STRING", "jsonPayload.error": "STRUCT<...>", "jsonPayload.error.code": "INT64",
    "jsonPayload.level": "INT64", "jsonPayload.agent": "STRING"}, False)
AUDIT = ("proj.logs.cloudaudit_googleapis_com_activity_", {
    "logName": "STRING", "timestamp": "TIMESTAMP", "receiveTimestamp": "TIMESTAMP", "insertId": "STRING",
    "severity": "STRING", "protopayload_auditlog": "STRUCT<...>", "protopayload_auditlog.methodName": "STRING",
    "protopayload_auditlog.resourceName": "STRING", "protopayload_auditlog.serviceName": "STRING",
    "protopayload_auditlog.status": "STRUCT<...>", "protopayload_auditlog.status.code": "INT64",
    "protopayload_auditlog.status.message": "STRING", "protopayload_auditlog.authenticationInfo": "STRUCT<...>",
    "protopayload_auditlog.authenticationInfo.principalEmail": "STRING",
    "protopayload_auditlog.responseJson": "STRING", "protopayload_auditlog.requestJson": "STRING"}, True)
NAMES = ["all_logs", "all_logs_window_no_dedupe", "sink", "sink_window", "sink_bare_table"]


@cache
def _queries() -> dict[str, str]:
    tables = [SinkTable(name, columns, sharded) for name, columns, sharded in (REQUESTS, STDOUT, AUDIT)]
    return {
        "all_logs": all_logs_view("proj.logs._AllLogs"),
        "all_logs_window_no_dedupe": all_logs_view("proj.logs._AllLogs", since=SINCE, until=UNTIL, dedupe=False),
        "sink": sink_view(tables),
        "sink_window": sink_view(tables, since=SINCE, until=UNTIL),
        "sink_bare_table": sink_view([SinkTable("proj.logs.empty_log", {})], dedupe=False),
    }


@pytest.mark.parametrize("name", NAMES)
def test_every_query_parses_as_bigquery_and_yields_the_canonical_columns(name: str) -> None:
    tree = parse_bigquery(_queries()[name])
    assert tree.named_selects == list(CANONICAL_COLUMNS)
    assert ("QUALIFY ROW_NUMBER() OVER (PARTITION BY log_name, insert_id, timestamp ORDER BY receive_timestamp) = 1"
            in _queries()[name]) is ("dedupe" not in name and "bare" not in name)


def test_all_logs_reads_only_the_columns_it_needs() -> None:
    assert table_columns(_queries()["all_logs"]) == {"proj.logs._AllLogs": {
        "timestamp", "receive_timestamp", "log_name", "log_id", "insert_id", "severity", "trace",
        "resource.labels", "labels", "text_payload", "json_payload", "proto_payload",
        "http_request.request_method", "http_request.request_url", "http_request.status",
        "http_request.latency.seconds", "http_request.latency.nanos", "http_request.user_agent"}}


def test_sink_tables_read_only_the_fields_they_have_and_need() -> None:
    assert table_columns(_queries()["sink_window"]) == {
        "proj.logs.run_googleapis_com_requests_*": {
            "_TABLE_SUFFIX", "logName", "timestamp", "receiveTimestamp", "insertId", "severity", "trace",
            "resource.labels.service_name", "resource.labels.revision_name", "resource.labels.location",
            "labels.instanceId", "httpRequest.requestMethod", "httpRequest.requestUrl", "httpRequest.status",
            "httpRequest.latency", "httpRequest.userAgent"},
        "proj.logs.run_googleapis_com_stdout": {
            "logName", "timestamp", "receiveTimestamp", "insertId", "textPayload", "jsonPayload.message",
            "jsonPayload.statusdetails", "jsonPayload.level"},
        "proj.logs.cloudaudit_googleapis_com_activity_*": {
            "_TABLE_SUFFIX", "logName", "timestamp", "receiveTimestamp", "insertId", "severity",
            "protopayload_auditlog.methodName", "protopayload_auditlog.resourceName",
            "protopayload_auditlog.status", "protopayload_auditlog.status.code",
            "protopayload_auditlog.status.message", "protopayload_auditlog.authenticationInfo.principalEmail",
            "protopayload_auditlog.responseJson"},
    }
    assert table_columns(_queries()["sink_bare_table"]) == {"proj.logs.empty_log": set()}


def test_missing_and_mistyped_sink_fields_are_typed() -> None:
    sql = _queries()["sink"]
    assert "CAST(NULL AS STRING) AS j_error" in sql  # a record where a text was expected
    assert "SAFE_CAST(jsonPayload.level AS STRING) AS j_level" in sql  # a number
    assert "SAFE_CAST(protopayload_auditlog.status.code AS STRING) AS p_status_code" in sql
    assert "FROM `proj.logs.run_googleapis_com_requests_*` WHERE _TABLE_SUFFIX" not in sql  # no window, all shards
    window = _queries()["sink_window"]
    assert ("FROM `proj.logs.run_googleapis_com_requests_*` WHERE _TABLE_SUFFIX >= '20250909' AND "
            "_TABLE_SUFFIX <= '20250910' AND timestamp >= TIMESTAMP '2025-09-09 22:00:00.000000+00' AND "
            "timestamp < TIMESTAMP '2025-09-11 00:00:00.000000+00'") in window
    assert "FROM `proj.logs.run_googleapis_com_stdout` WHERE timestamp >= TIMESTAMP" in window


def test_a_sink_view_needs_a_table() -> None:
    with pytest.raises(UsageError) as err:
        sink_view([])
    assert (err.value.message, err.value.hint) == ("a sink view needs at least one table",
                                                   "list the sink dataset's log tables")


@pytest.mark.parametrize("name", ["p.d.t` WHERE FALSE --", "d.t", "p.d.t;DROP", ""])
def test_a_table_name_that_is_not_one_is_refused(name: str) -> None:
    with pytest.raises(UsageError, match="^not a BigQuery table name: ") as err:
        all_logs_view(name)
    assert err.value.hint == "write it as PROJECT.DATASET.TABLE"
    with pytest.raises(UsageError, match="^not a BigQuery table name: "):
        sink_view([SinkTable(name, {}, sharded=True)])


def test_domain_scoped_projects_and_dashes_are_table_names() -> None:
    assert "FROM `example.com:proj.logs._AllLogs`" in all_logs_view("example.com:proj.logs._AllLogs")
    assert "FROM `my-proj.logs.run_googleapis_com_stdout_*`" in sink_view(
        [SinkTable("my-proj.logs.run_googleapis_com_stdout_", {}, sharded=True)])


@pytest.mark.parametrize("name", NAMES)
def test_every_query_transpiles_to_duckdb_that_duckdb_parses(name: str) -> None:
    sql = to_duckdb(_queries()[name])
    assert "COUNTIF" not in sql.upper().replace("COUNT_IF", "")
    connect().extract_statements(sql)


def test_parse_errors_are_sqlglots() -> None:
    with pytest.raises(sqlglot.errors.ParseError):
        parse_bigquery("SELECT FROM WHERE (")


def _one(sql: str) -> tuple:
    return connect().execute(to_duckdb(sql)).fetchall()[0]


def test_countif_over_no_true_row_is_zero_as_in_bigquery() -> None:
    sql = "SELECT COUNTIF(x > 1) AS n FROM UNNEST([CAST(NULL AS INT64), NULL]) AS x"
    assert to_duckdb("SELECT COUNTIF(x > 1) AS n FROM t") == "SELECT COALESCE(COUNT_IF(x > 1), 0) AS n FROM t"
    assert _one(sql) == (0,)
    bare = sqlglot.transpile("SELECT COUNTIF(x > 1) FROM (SELECT CAST(NULL AS INT64) AS x)", read="bigquery",
                             write="duckdb")[0]
    assert connect().execute(bare).fetchall() == [(None,)]  # the trap the rewrite avoids
    assert to_duckdb("SELECT COALESCE(COUNTIF(x), 0) FROM t") == "SELECT COALESCE(COUNT_IF(x), 0) FROM t"


def test_the_functions_the_views_use_keep_their_bigquery_meaning_on_duckdb() -> None:
    # REGEXP_EXTRACT: the group when there is one, NULL when nothing matches
    assert _one(r"SELECT REGEXP_EXTRACT('checkout-00012-abc', r'^([a-z]+)-[0-9]+'), "
                r"REGEXP_EXTRACT('abc', r'x'), REGEXP_EXTRACT('a[ERROR]b', r'\[(?:ERROR|INFO)\]')") == (
        "checkout", None, "[ERROR]")
    # REGEXP_REPLACE replaces every match; ESC written as \x1b
    assert _one(r"SELECT REGEXP_REPLACE('\x1b[31mred\x1b[0m', r'\x1b\[[0-9;?]*[ -/]*[@-~]', '')") == ("red",)
    # LTRIM with the characters given trims only those; TRIM with blanks
    assert _one("SELECT LTRIM('\\t  x', ' '), TRIM(' \\tWARN\\n', ' \\t\\n\\r')") == ("\t  x", "WARN")
    # SPLIT of an empty text is one empty text; SAFE_OFFSET past the end is NULL
    assert _one("SELECT SPLIT('', '?')[SAFE_OFFSET(0)], SPLIT('a', '?')[SAFE_OFFSET(1)]") == ("", None)
    # JSON_VALUE: scalars as text, objects and JSON null as NULL
    assert _one("""SELECT JSON_VALUE(j, '$.a'), JSON_VALUE(j, '$.b'), JSON_VALUE(j, '$.c'), JSON_VALUE(j, '$.d')
                   FROM (SELECT JSON '{"a": "x\\u00e9", "b": 42, "c": {"q": 1}, "d": null}' AS j)""") == (
        "xé", "42", None, None)
    # [[:ascii:]], DIV and LEAST
    assert _one("SELECT REGEXP_CONTAINS('ınfo', r'^[[:ascii:]]*$'), REGEXP_CONTAINS('info', r'^[[:ascii:]]*$'), "
                "DIV(450, 100) * 100, LEAST(800, 9000)") == (False, True, 400, 800)
