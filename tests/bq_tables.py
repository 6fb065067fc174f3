"""BigQuery log tables rebuilt in DuckDB from LogEntry dicts, shaped like the real ones.

`load_all_logs` writes a Log Analytics `_AllLogs` table (snake_case columns, RECORDs as STRUCTs,
`labels`, `resource.labels`, `json_payload` and `proto_payload` as JSON, microsecond timestamps);
`load_sink` writes a classic sink's tables (camelCase RECORDs, one table per log, date-sharded
`..._YYYYMMDD` shards with a wildcard stand-in carrying `_TABLE_SUFFIX`, or partitioned).
`project.dataset` is a DuckDB catalog and schema, so the GoogleSQL table names resolve as written.
"""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import unquote

import duckdb
import orjson
import pyarrow as pa

from logaudit.core.timeparse import parse_rfc3339_ns
from logaudit.sources.severity import SEVERITY_NUM
from logaudit.warehouse.entry_view import CANONICAL_COLUMNS, SinkTable

ALL_LOGS_DDL = """(
    timestamp TIMESTAMPTZ, receive_timestamp TIMESTAMPTZ, log_name VARCHAR, log_id VARCHAR, insert_id VARCHAR,
    trace VARCHAR, span_id VARCHAR, trace_sampled BOOLEAN, severity VARCHAR, severity_number BIGINT,
    resource STRUCT(type VARCHAR, labels JSON), labels JSON, json_payload JSON, proto_payload JSON,
    text_payload VARCHAR,
    http_request STRUCT(request_method VARCHAR, request_url VARCHAR, request_size BIGINT, status BIGINT,
                        response_size BIGINT, user_agent VARCHAR, remote_ip VARCHAR, server_ip VARCHAR,
                        referer VARCHAR, protocol VARCHAR, latency STRUCT(seconds BIGINT, nanos BIGINT)))"""


def attach_dataset(con: duckdb.DuckDBPyConnection, dataset: str) -> None:
    """Make `project.dataset` a DuckDB catalog and schema."""
    project, name = dataset.split(".")
    con.execute(f'ATTACH IF NOT EXISTS \':memory:\' AS "{project}"')
    con.execute(f'CREATE SCHEMA IF NOT EXISTS "{project}"."{name}"')


def micros(text: str | None) -> datetime | None:
    """An RFC 3339 time cut to microseconds, as BigQuery stores it."""
    if text is None:
        return None
    return datetime.fromtimestamp(0, UTC) + timedelta(microseconds=parse_rfc3339_ns(text) // 1000)


def duration(value: Any) -> tuple[int, int] | None:
    """(seconds, nanos) of a Duration text `"0.123s"`."""
    if not isinstance(value, str) or not re.fullmatch(r"[0-9]{1,12}(\.[0-9]{1,9})?s", value):
        return None
    whole = Decimal(value[:-1]) * 1_000_000_000
    return int(whole) // 1_000_000_000, int(whole) % 1_000_000_000


def _latency_record(value: Any) -> dict | None:
    parts = duration(value)
    return None if parts is None else {"seconds": parts[0], "nanos": parts[1]}


def _int(value: Any) -> int | None:
    return int(value) if value is not None and re.fullmatch(r"-?[0-9]+", str(value)) else None


def _json(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


def _audit_json(proto: dict | None) -> str | None:
    """protoPayload as `_AllLogs` holds an AuditLog: under `audit_log`, its fields in snake_case
    (`request`, `response` and `metadata` are Structs: their keys stay as given)."""
    if proto is None or not str(proto.get("@type", "")).endswith("google.cloud.audit.AuditLog"):
        return None

    def convert(value: Any, keep: bool) -> Any:
        if isinstance(value, dict):
            return {(k if keep else _snake(k)): convert(v, keep or k in ("request", "response", "metadata"))
                    for k, v in value.items() if k != "@type" or keep}
        if isinstance(value, list):
            return [convert(v, keep) for v in value]
        return value

    return _json({"audit_log": convert(proto, False)})


def all_logs_rows(entries: list[dict], *, no_severity: str = "null") -> list[dict]:
    """`_AllLogs` rows of `entries`; an entry without severity gets NULL (`no_severity="null"`) or
    `DEFAULT`/0 (`"default"`)."""
    rows = []
    for e in entries:
        http = e.get("httpRequest")
        severity = e.get("severity")
        if severity is None and no_severity == "default":
            severity = "DEFAULT"
        resource = e.get("resource") or {}
        rows.append({
            "timestamp": micros(e.get("timestamp") or e.get("receiveTimestamp")),
            "receive_timestamp": micros(e.get("receiveTimestamp")),
            "log_name": e.get("logName"),
            "log_id": unquote(e["logName"].split("/logs/", 1)[1]) if "/logs/" in e.get("logName", "") else None,
            "insert_id": e.get("insertId"), "trace": e.get("trace"), "span_id": e.get("spanId"),
            "trace_sampled": e.get("traceSampled"), "severity": severity,
            "severity_number": SEVERITY_NUM.get(str(severity).upper()) if severity is not None else None,
            "resource": {"type": resource.get("type"), "labels": _json(resource.get("labels"))} if resource else None,
            "labels": _json(e.get("labels")), "json_payload": _json(e.get("jsonPayload")),
            "proto_payload": _audit_json(e.get("protoPayload")), "text_payload": e.get("textPayload"),
            "http_request": None if http is None else {
                "request_method": http.get("requestMethod"), "request_url": http.get("requestUrl"),
                "request_size": _int(http.get("requestSize")), "status": _int(http.get("status")),
                "response_size": _int(http.get("responseSize")), "user_agent": http.get("userAgent"),
                "remote_ip": http.get("remoteIp"), "server_ip": http.get("serverIp"), "referer": http.get("referer"),
                "protocol": http.get("protocol"),
                "latency": _latency_record(http.get("latency")),
            },
        })
    return rows


def _table(rows: list[dict]) -> pa.Table:
    """Rows as a table whose columns and record fields are those of any row (`from_pylist` would
    take the first row's keys only)."""
    return pa.Table.from_struct_array(pa.array(rows))


def load_all_logs(con: duckdb.DuckDBPyConnection, table: str, entries: list[dict], *,
                  no_severity: str = "null") -> None:
    """Create `table` (`project.dataset._AllLogs`) holding `entries`."""
    attach_dataset(con, table.rsplit(".", 1)[0])
    quoted = ".".join(f'"{p}"' for p in table.split("."))
    con.execute(f"CREATE TABLE {quoted} {ALL_LOGS_DDL}")
    arrow = _table(all_logs_rows(entries, no_severity=no_severity))
    types = dict(con.execute(f"SELECT column_name, column_type FROM (DESCRIBE {quoted})").fetchall())
    casts = ", ".join(f'CAST("{c}" AS {types[c]}) AS "{c}"' for c in arrow.column_names)
    con.register("bq_rows", arrow)
    try:
        con.execute(f"INSERT INTO {quoted} BY NAME SELECT {casts} FROM bq_rows")
    finally:
        con.unregister("bq_rows")


# ------------------------------------------------------------------------------------- sinks
def sink_name(log_id: str) -> str:
    """A log id's table name in a sink dataset (`run.googleapis.com/stdout` -> `run_googleapis_com_stdout`)."""
    return re.sub(r"[^A-Za-z0-9]", "_", log_id)


def _lower_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {k.lower(): _lower_keys(v) for k, v in value.items()}
    return value


def sink_row(e: dict, *, latency: str) -> dict:
    """A sink table's row: LogEntry fields in camelCase RECORDs, jsonPayload keys lower-cased, an
    AuditLog under `protopayload_auditlog` (its response as `responseJson` text)."""
    row: dict[str, Any] = {
        "logName": e.get("logName"), "timestamp": micros(e.get("timestamp") or e.get("receiveTimestamp")),
        "receiveTimestamp": micros(e.get("receiveTimestamp")), "insertId": e.get("insertId"),
        "severity": e.get("severity"), "trace": e.get("trace"), "spanId": e.get("spanId"),
        "textPayload": e.get("textPayload"),
    }
    if e.get("resource"):
        row["resource"] = {"type": e["resource"].get("type"), "labels": e["resource"].get("labels") or None}
    if e.get("labels"):
        row["labels"] = e["labels"]
    if e.get("jsonPayload") is not None:
        row["jsonPayload"] = _lower_keys(e["jsonPayload"]) or None
    http = e.get("httpRequest")
    if http is not None:
        row["httpRequest"] = {
            "requestMethod": http.get("requestMethod"), "requestUrl": http.get("requestUrl"),
            "status": _int(http.get("status")), "userAgent": http.get("userAgent"),
            "requestSize": _int(http.get("requestSize")), "remoteIp": http.get("remoteIp"),
            "latency": http.get("latency") if latency == "STRING" else _latency_record(http.get("latency")),
        }
    proto = e.get("protoPayload")
    if proto is not None and str(proto.get("@type", "")).endswith("google.cloud.audit.AuditLog"):
        status = proto.get("status")
        row["protopayload_auditlog"] = {
            "methodName": proto.get("methodName"), "resourceName": proto.get("resourceName"),
            "serviceName": proto.get("serviceName"),
            "authenticationInfo": {"principalEmail": (proto.get("authenticationInfo") or {}).get("principalEmail")},
            "status": None if status is None else {"code": status.get("code"), "message": status.get("message")},
            "responseJson": _json(proto.get("response")),
        }
    return row


def _no_null_types(typ: pa.DataType) -> pa.DataType:
    """A field no row filled has Arrow's null type: BigQuery would have typed it, say STRING."""
    if pa.types.is_null(typ):
        return pa.string()
    if pa.types.is_struct(typ):
        return pa.struct([pa.field(f.name, _no_null_types(f.type)) for f in typ])
    if pa.types.is_list(typ):
        return pa.list_(_no_null_types(typ.value_type))
    return typ


_BQ_TYPES = [(pa.types.is_string, "STRING"), (pa.types.is_integer, "INT64"), (pa.types.is_floating, "FLOAT64"),
             (pa.types.is_boolean, "BOOL"), (pa.types.is_timestamp, "TIMESTAMP"), (pa.types.is_list, "ARRAY")]


def field_paths(schema: pa.Schema) -> dict[str, str]:
    """{field path: BigQuery type} of a table, as `INFORMATION_SCHEMA.COLUMN_FIELD_PATHS` lists it."""
    paths: dict[str, str] = {}

    def walk(prefix: str, typ: pa.DataType) -> None:
        if pa.types.is_struct(typ):
            paths[prefix] = "STRUCT<...>"
            for f in typ:
                walk(f"{prefix}.{f.name}", f.type)
        else:
            paths[prefix] = next(name for test, name in _BQ_TYPES if test(typ))

    for f in schema:
        walk(f.name, f.type)
    return paths


def sink_tables(entries: list[dict], *, latency: str = "RECORD") -> dict[str, pa.Table]:
    """A sink's rows per log table name (one table per log, not sharded), typed as BigQuery would."""
    by_log: dict[str, list[dict]] = defaultdict(list)
    for e in entries:
        by_log[sink_name(unquote(e["logName"].split("/logs/", 1)[1]))].append(e)
    out = {}
    for log, group in sorted(by_log.items()):
        arrow = _table([sink_row(e, latency=latency) for e in group])
        out[log] = arrow.cast(pa.schema([pa.field(f.name, _no_null_types(f.type)) for f in arrow.schema]))
    return out


def bigquery_schema(schema: pa.Schema, bq: Any) -> list:
    """The `google.cloud.bigquery.SchemaField`s of an Arrow schema (structs as RECORDs, lists REPEATED)."""
    def field(name: str, typ: pa.DataType, mode: str = "NULLABLE"):
        if pa.types.is_struct(typ):
            return bq.SchemaField(name, "RECORD", mode=mode, fields=[field(f.name, f.type) for f in typ])
        if pa.types.is_list(typ):
            return field(name, typ.value_type, "REPEATED")
        return bq.SchemaField(name, next(t for test, t in _BQ_TYPES if test(typ)), mode=mode)

    return [field(f.name, f.type) for f in schema]


def load_sink(con: duckdb.DuckDBPyConnection, dataset: str, entries: list[dict], *, sharded: bool = True,
              latency: str = "STRING", drop: dict[str, list[str]] | None = None) -> list[SinkTable]:
    """Create a sink's tables for `entries` in `dataset` (one per log; date shards when `sharded`)
    and return them as `SinkTable`s. `drop` removes top-level columns from a log's tables (a
    table created before a field existed)."""
    attach_dataset(con, dataset)
    project, name = dataset.split(".")
    by_log: dict[str, list[dict]] = defaultdict(list)
    for e in entries:
        by_log[sink_name(unquote(e["logName"].split("/logs/", 1)[1]))].append(e)
    tables = []
    for log, group in sorted(by_log.items()):
        arrow = _table([sink_row(e, latency=latency) for e in group])
        arrow = arrow.cast(pa.schema([pa.field(f.name, _no_null_types(f.type)) for f in arrow.schema]))
        arrow = arrow.drop_columns([c for c in (drop or {}).get(log, []) if c in arrow.column_names])
        con.register("bq_sink_rows", arrow)
        try:
            if not sharded:
                con.execute(f'CREATE TABLE "{project}"."{name}"."{log}" AS SELECT * FROM bq_sink_rows')
            else:
                days = sorted({r[0] for r in con.execute(
                    "SELECT DISTINCT strftime(timestamp, '%Y%m%d') FROM bq_sink_rows").fetchall()})
                for day in days:
                    con.execute(f'CREATE TABLE "{project}"."{name}"."{log}_{day}" AS SELECT * FROM bq_sink_rows '
                                f"WHERE strftime(timestamp, '%Y%m%d') = '{day}'")
                union = " UNION ALL ".join(f"SELECT *, '{d}' AS _TABLE_SUFFIX FROM \"{project}\".\"{name}\".\"{log}_{d}\""
                                           for d in days)
                con.execute(f'CREATE VIEW "{project}"."{name}"."{log}_*" AS {union}')
        finally:
            con.unregister("bq_sink_rows")
        tables.append(SinkTable(f"{dataset}.{log}" + ("_" if sharded else ""), field_paths(arrow.schema), sharded))
    return tables


# ------------------------------------------------------------------------------------ compare
def _select_canonical(source: str) -> str:
    cols = ", ".join(f"epoch_ns(CAST({c} AS TIMESTAMP_NS)) // 1000 AS {c}" if c in ("timestamp", "receive_timestamp") else c
                     for c in CANONICAL_COLUMNS)
    return f"SELECT {cols} FROM {source} ORDER BY log_name, insert_id, timestamp"


def canonical_rows(con: duckdb.DuckDBPyConnection, source: str) -> list[tuple]:
    """The canonical columns of `source` (a table or a parenthesised query), timestamps as epoch
    microseconds, in key order."""
    return con.execute(_select_canonical(source)).fetchall()


def differences(got: list[tuple], want: list[tuple]) -> dict[str, list[tuple]]:
    """{column: [(key, got, want), ...]} where two key-ordered row lists disagree; `{"rows": ...}`
    when they hold different keys."""
    key = [CANONICAL_COLUMNS.index(c) for c in ("log_name", "insert_id", "timestamp")]
    if [tuple(r[i] for i in key) for r in got] != [tuple(r[i] for i in key) for r in want]:
        return {"rows": [(len(got), len(want))]}
    found: dict[str, list[tuple]] = {}
    for g, w in zip(got, want, strict=True):
        for i, col in enumerate(CANONICAL_COLUMNS):
            if g[i] != w[i] or type(g[i]) is not type(w[i]) and not (isinstance(g[i], int) and isinstance(w[i], int)):
                found.setdefault(col, []).append((g[key[1]], g[i], w[i]))
    return found
