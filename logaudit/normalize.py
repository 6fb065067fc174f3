"""Turn raw LogEntry JSON text into rows of the canonical entry table.

The work is one DuckDB query over a batch of lines: DuckDB parses each line once
(`from_json` with an explicit structure, payloads kept as JSON text) and flattens it in C++,
which is what keeps ingest close to DuckDB's own `read_json` speed. The same function serves
single entries, so there is exactly one implementation of the rules.

>>> from logaudit.normalize import normalize_entry
>>> row = normalize_entry({"logName": "projects/p/logs/run.googleapis.com%2Fstdout",
...                        "timestamp": "2025-09-10T02:18:34.619410Z", "textPayload": "[ERROR] boom"})
>>> row["log_id"], row["effective_severity"]
('run.googleapis.com/stdout', 'ERROR')
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import duckdb
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from logaudit.schema import ENTRY_COLUMNS, ENTRY_SCHEMA, SEVERITY_NUM

# The structure DuckDB parses each line into. Anything not named here is ignored; payloads and
# label maps stay JSON text so arbitrary shapes never break the parse.
_STRUCTURE = orjson.dumps(
    {
        "logName": "VARCHAR",
        "resource": {
            "type": "VARCHAR",
            "labels": {k: "VARCHAR" for k in ("project_id", "service_name", "revision_name", "configuration_name", "location")},
        },
        "timestamp": "VARCHAR",
        "receiveTimestamp": "VARCHAR",
        "severity": "VARCHAR",
        "insertId": "VARCHAR",
        "httpRequest": {
            "requestMethod": "VARCHAR",
            "requestUrl": "VARCHAR",
            "requestSize": "VARCHAR",
            "status": "VARCHAR",
            "responseSize": "VARCHAR",
            "userAgent": "VARCHAR",
            "remoteIp": "VARCHAR",
            "serverIp": "VARCHAR",
            "latency": "VARCHAR",
            "protocol": "VARCHAR",
        },
        "labels": "JSON",
        "trace": "VARCHAR",
        "spanId": "VARCHAR",
        "traceSampled": "VARCHAR",
        "textPayload": "VARCHAR",
        "jsonPayload": "JSON",
        "protoPayload": "JSON",
        "operation": {"id": "VARCHAR", "producer": "VARCHAR", "first": "VARCHAR", "last": "VARCHAR"},
        "sourceLocation": {"file": "VARCHAR", "line": "VARCHAR", "function": "VARCHAR"},
    }
).decode()

# RFC 3339 with 0-9 fractional digits and Z or +hh:mm (also accepts t/z and a space separator).
_RFC3339 = r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$"


def _ts_ns_sql(col: str) -> str:
    """SQL for epoch nanoseconds of an RFC 3339 string column; NULL when it is not one."""
    off = f"right({col}, 6)"
    offset_s = (
        f"(CASE WHEN right({col}, 1) IN ('Z', 'z') THEN 0 ELSE "
        f"(CASE WHEN left({off}, 1) = '-' THEN -1 ELSE 1 END) * "
        f"(TRY_CAST(substr({off}, 2, 2) AS BIGINT) * 3600 + TRY_CAST(substr({off}, 5, 2) AS BIGINT) * 60) END)"
    )
    local = f"regexp_replace({col}, '([Zz]|[+-]\\d{{2}}:\\d{{2}})$', '')"
    return (
        f"(CASE WHEN regexp_matches({col}, '{_RFC3339}') THEN "
        f"epoch_ns(TRY_CAST({local} AS TIMESTAMP_NS)) - {offset_s} * 1000000000 END)"
    )


# Level words a person reads in unstructured text, in the order they are tried.
_LEVEL_WORD = "DEBUG|INFO|NOTICE|WARNING|WARN|ERROR|CRITICAL|FATAL"
_TEXT_LEVEL_RE = (
    rf"\[({_LEVEL_WORD})\]"  # gunicorn: [2025-09-16 00:42:53 +0000] [11] [ERROR]
    rf"|\s-\s({_LEVEL_WORD})\s-\s"  # python logging: ... - auth - WARNING - ...
    rf"|\|\s*({_LEVEL_WORD})\s*\|"  # loguru: ... | ERROR    | ...
    rf"|^\s*({_LEVEL_WORD}):"  # CRITICAL: / ERROR: prefixes
)
_ANSI_RE = r"\x1b\[[0-9;?]*[ -/]*[@-~]"

_SEVERITY_CASE = "CASE upper(trim({col})) " + " ".join(
    f"WHEN '{name}' THEN {num}" for name, num in SEVERITY_NUM.items()
) + " END"

_SEVERITY_NAME_CASE = (
    f"{list(SEVERITY_NUM)}[list_position({list(SEVERITY_NUM.values())}, {{col}})]"
)
_BOOL = "CASE lower({col}) WHEN 'true' THEN true WHEN 'false' THEN false END"


def _ts_fast_sql(col: str) -> str:
    """Epoch ns. The common `YYYY-MM-DDTHH:MM:SS[.f{1,9}]Z` shape is checked by position and
    converted by DuckDB's cast (which rejects bad digits); any other shape takes `_ts_ns_sql`."""
    return (
        f"CASE WHEN right({col}, 1) = 'Z' AND substr({col}, 5, 1) = '-' AND substr({col}, 8, 1) = '-' "
        f"AND substr({col}, 11, 1) = 'T' AND substr({col}, 14, 1) = ':' AND substr({col}, 17, 1) = ':' "
        f"AND (length({col}) = 20 OR (substr({col}, 20, 1) = '.' AND length({col}) BETWEEN 22 AND 30)) "
        f"THEN epoch_ns(TRY_CAST({col} AS TIMESTAMP_NS)) ELSE {_ts_ns_sql(col)} END"
    )


def _url_path_sql(col: str) -> str:
    """Path of a URL (no query or fragment); '/' when the URL has none. String functions, no regex."""
    cut = f"split_part(split_part({col}, '?', 1), '#', 1)"
    rest = f"substr({cut}, strpos({cut}, '://') + 3)"
    return (
        f"CASE WHEN {col} IS NULL THEN NULL WHEN NOT contains({cut}, '://') THEN coalesce(nullif({cut}, ''), '/') "
        f"WHEN strpos({rest}, '/') = 0 THEN '/' ELSE substr({rest}, strpos({rest}, '/')) END"
    )


# Stage 1: parse each line once (UNNEST is a barrier: later expressions read columns, they do not
# re-run the parse) and extract every field with expressions that each read the parse only once.
_PARSE_SELECT = f"""
    pos,
    {_ts_fast_sql("timestamp")} AS ts_ns,
    {_ts_fast_sql("receiveTimestamp")} AS rts_ns,
    timestamp IS NOT NULL AS has_ts,
    receiveTimestamp IS NOT NULL AS has_rts,
    logName AS log_name,
    CASE WHEN contains(logName, '/logs/') THEN url_decode(split_part(logName, '/logs/', 2)) END AS log_id,
    insertId AS insert_id,
    severity,
    {_SEVERITY_CASE.format(col="severity")} AS severity_num,
    resource.type AS resource_type,
    coalesce(nullif(resource.labels.project_id, ''),
             CASE WHEN starts_with(logName, 'projects/') THEN split_part(logName, '/', 2) END) AS project_id,
    nullif(resource.labels.service_name, '') AS service,
    nullif(resource.labels.revision_name, '') AS revision,
    nullif(resource.labels.configuration_name, '') AS configuration,
    nullif(resource.labels.location, '') AS location,
    labels->>'instanceId' AS instance_id,
    trace,
    spanId AS span_id,
    {_BOOL.format(col="traceSampled")} AS trace_sampled,
    httpRequest.requestMethod AS http_method,
    httpRequest.requestUrl AS http_url,
    {_url_path_sql("httpRequest.requestUrl")} AS http_path,
    TRY_CAST(httpRequest.status AS INTEGER) AS http_status,
    -- a Duration is finite: "NaNs" or "infs" (which DOUBLE parses) would poison every percentile
    CASE WHEN isfinite(TRY_CAST(rtrim(httpRequest.latency, 's') AS DOUBLE))
         THEN TRY_CAST(rtrim(httpRequest.latency, 's') AS DOUBLE) * 1000.0 END AS http_latency_ms,
    httpRequest.userAgent AS http_user_agent,
    httpRequest.remoteIp AS http_remote_ip,
    httpRequest.serverIp AS http_server_ip,
    httpRequest.protocol AS http_protocol,
    TRY_CAST(httpRequest.requestSize AS BIGINT) AS http_request_size,
    TRY_CAST(httpRequest.responseSize AS BIGINT) AS http_response_size,
    coalesce(
        textPayload,
        CASE WHEN jsonPayload IS NOT NULL THEN list_filter(json_extract_string(jsonPayload,
            ['$.message', '$.msg', '$.text', '$.log', '$.event', '$.error']), lambda x: x IS NOT NULL)[1] END,
        CASE WHEN protoPayload IS NOT NULL THEN (
            SELECT CASE WHEN a[1] IS NOT NULL THEN a[1] || ' by ' || coalesce(a[2], 'unknown principal') || ': '
                || CASE WHEN coalesce(a[3], '0') = '0' THEN 'OK' ELSE 'status ' || a[3] || coalesce(' ' || a[4], '') END END
            FROM (SELECT json_extract_string(protoPayload,
                ['$.methodName', '$.authenticationInfo.principalEmail', '$.status.code', '$.status.message']) AS a))
        END
    ) AS message_raw,
    CASE WHEN textPayload IS NOT NULL THEN 'text' WHEN jsonPayload IS NOT NULL THEN 'json'
         WHEN protoPayload IS NOT NULL THEN 'proto' END AS payload_type,
    coalesce(jsonPayload, protoPayload)::VARCHAR AS payload_json,
    textPayload AS payload_text,
    labels::VARCHAR AS labels_json,
    protoPayload->>'methodName' AS audit_method,
    protoPayload->>'$.authenticationInfo.principalEmail' AS audit_principal,
    CASE WHEN protoPayload->>'methodName' IS NOT NULL AND (protoPayload->'status') IS NOT NULL
         THEN TRY_CAST(coalesce(protoPayload->>'$.status.code', '0') AS INTEGER) END AS audit_status_code,
    protoPayload->>'resourceName' AS audit_resource_name,
    protoPayload->>'$.response.status.latestCreatedRevisionName' AS audit_revision,
    operation.id AS operation_id,
    {_BOOL.format(col="operation.first")} AS operation_first,
    {_BOOL.format(col="operation.last")} AS operation_last,
    sourceLocation.file AS source_location_file,
    TRY_CAST(sourceLocation.line AS BIGINT) AS source_location_line,
    sourceLocation.function AS source_location_function
"""
_PARSE_SQL = f"SELECT {_PARSE_SELECT} FROM (SELECT pos, unnest(from_json(line, '{_STRUCTURE}')) FROM batch)"
# try() makes the parse much slower, so it is only used for batches holding a line that is not JSON.
_PARSE_SQL_TOLERANT = f"SELECT {_PARSE_SELECT} FROM (SELECT pos, unnest(try(from_json(line, '{_STRUCTURE}'))) FROM batch)"

# Stage 2, over stage 1's Arrow output: the values that depend on other derived values. Each
# expensive expression appears exactly once (a CTE column referenced twice is computed twice).
_LEVEL_WORDS = ["DEBUG", "INFO", "NOTICE", "WARNING", "WARN", "ERROR", "CRITICAL", "FATAL"]
_LEVEL_NUMS = [100, 200, 300, 400, 400, 500, 600, 600]
_TEXT_LEVEL_SQL = (
    f"{_LEVEL_NUMS}[list_position({_LEVEL_WORDS}, regexp_extract("
    f"regexp_extract(left(message, 4096), '{_TEXT_LEVEL_RE}', 0), '({_LEVEL_WORD})', 1))]"
)
_FINISH_CTES = f"""
m AS (
    SELECT *,
        CASE WHEN contains(message_raw, '\x1b') THEN regexp_replace(message_raw, '{_ANSI_RE}', '', 'g')
             ELSE message_raw END AS message
    FROM parsed
),
e AS (
    SELECT *,
        CASE
            WHEN severity_num > 0 THEN severity_num
            WHEN http_status >= 500 THEN 500
            WHEN http_status >= 400 THEN 400
            WHEN message IS NULL THEN 0
            WHEN starts_with(ltrim(left(message, 64)), 'Traceback (most recent call last)') THEN 500
            ELSE coalesce({_TEXT_LEVEL_SQL}, 0)
        END AS eff_num
    FROM m
)
"""
_KEEP_SQL = ("coalesce(ts_ns, rts_ns) IS NOT NULL AND (ts_ns IS NOT NULL OR NOT has_ts) "
             "AND (rts_ns IS NOT NULL OR NOT has_rts)")
_DERIVED_SELECT = f"""
    make_timestamp_ns(coalesce(ts_ns, rts_ns)) AS timestamp,
    make_timestamp_ns(rts_ns) AS receive_timestamp,
    {_SEVERITY_NAME_CASE.format(col="eff_num")} AS effective_severity,
    eff_num AS effective_severity_num,
    message"""
_FINISH_SQL = f"WITH {_FINISH_CTES} SELECT {_KEEP_SQL} AS keep, {_DERIVED_SELECT} FROM e"
#: Stage 2 returns only what it derives; every other column comes from stage 1 unchanged.
_DERIVED = ("timestamp", "receive_timestamp", "effective_severity", "effective_severity_num", "message")

# Lines that did not become rows, with the reason a person can act on.
_REJECT_SQL = f"""
WITH src AS (SELECT pos, line, try(from_json(line, '{_STRUCTURE}')) AS j FROM batch),
typed AS (
    SELECT pos, line, j, CASE WHEN json_valid(line) THEN json_type(line) END AS jt FROM src
)
SELECT pos,
    CASE
        WHEN jt IS NULL THEN 'not valid JSON'
        WHEN jt <> 'OBJECT' THEN 'not a LogEntry: a JSON ' || lower(jt) || ', expected an object'
        WHEN j.timestamp IS NOT NULL AND {_ts_ns_sql("j.timestamp")} IS NULL
            THEN 'timestamp ' || to_json(j.timestamp)::VARCHAR || ' is not an RFC 3339 time'
        WHEN j.receiveTimestamp IS NOT NULL AND {_ts_ns_sql("j.receiveTimestamp")} IS NULL
            THEN 'receiveTimestamp ' || to_json(j.receiveTimestamp)::VARCHAR || ' is not an RFC 3339 time'
        WHEN j.logName IS NULL AND j.insertId IS NULL AND j.resource IS NULL
            THEN 'not a LogEntry: no timestamp, logName, insertId or resource (keys: '
                 || array_to_string(list_slice(json_keys(line), 1, 8), ', ') || ')'
        ELSE 'no timestamp and no receiveTimestamp'
    END AS reason
FROM typed
WHERE jt IS NULL OR jt <> 'OBJECT'
   OR coalesce({_ts_ns_sql("j.timestamp")}, {_ts_ns_sql("j.receiveTimestamp")}) IS NULL
   OR (j.timestamp IS NOT NULL AND {_ts_ns_sql("j.timestamp")} IS NULL)
   OR (j.receiveTimestamp IS NOT NULL AND {_ts_ns_sql("j.receiveTimestamp")} IS NULL)
ORDER BY pos
"""

@dataclass(frozen=True)
class Reject:
    """A line or element that is not a LogEntry: where it is and why."""

    source: str
    position: int
    reason: str
    text: str

    def __str__(self) -> str:
        return f"{self.source}:{self.position}: {self.reason}"


_local = threading.local()


def _connection() -> duckdb.DuckDBPyConnection:
    """One connection per thread, with the statements parsed once as table macros: a batch then
    costs binding and execution only (parsing the long SQL each time cost ~20 ms per batch)."""
    con = getattr(_local, "con", None)
    if con is None:
        con = duckdb.connect(config={"threads": 2})
        # macros are checked when created: give them empty stand-ins for the per-batch tables
        con.register("batch", pa.table({"pos": pa.array([], pa.int64()), "line": pa.array([], pa.string())}))
        con.register("parsed", con.sql(_PARSE_SQL).to_arrow_table())
        con.execute(f"CREATE TEMP MACRO logaudit_parse() AS TABLE {_PARSE_SQL}")
        con.execute(f"CREATE TEMP MACRO logaudit_parse_tolerant() AS TABLE {_PARSE_SQL_TOLERANT}")
        con.execute(f"CREATE TEMP MACRO logaudit_finish() AS TABLE {_FINISH_SQL}")
        con.unregister("parsed")
        con.unregister("batch")
        _local.con = con
    return con


def normalize_batch(
    lines: pa.Array, positions: pa.Array, source: str
) -> tuple[pa.Table, list[tuple[int, str]]]:
    """Normalize a batch of JSON texts (one LogEntry each) into (rows, [(position, reason)]).

    `lines` is a string array, `positions` the line/element number of each. Rows come back in
    the canonical schema, in input order; every input becomes a row or a reject, never both.
    """
    con = _connection()
    batch = pa.table({"pos": positions, "line": lines})  # noqa: F841 - read by DuckDB
    con.register("batch", batch)
    try:
        try:
            parsed = con.sql("SELECT * FROM logaudit_parse()").to_arrow_table()
        except duckdb.InvalidInputException:
            parsed = con.sql("SELECT * FROM logaudit_parse_tolerant()").to_arrow_table()
        con.register("parsed", parsed)
        derived = con.sql("SELECT * FROM logaudit_finish()").to_arrow_table()
        con.unregister("parsed")
        table = _assemble(parsed, derived, source)
        rejects = con.sql(_REJECT_SQL).fetchall() if table.num_rows < len(lines) else []
    finally:
        con.unregister("batch")
    return table, [(int(p), r) for p, r in rejects]


def _assemble(parsed: pa.Table, derived: pa.Table, source: str) -> pa.Table:
    """The canonical table from stage 1's columns and stage 2's derived ones (no copies of the
    rest), without the rows stage 2 found to have no usable timestamp."""
    arrays = []
    for field in ENTRY_SCHEMA:
        if field.name in _DERIVED:
            col = derived.column(field.name)
        elif field.name == "source":
            col = pa.array([source] * parsed.num_rows, pa.string())
        elif field.name == "source_position":
            col = parsed.column("pos")
        else:
            col = parsed.column(field.name)
        if pa.types.is_timestamp(field.type):
            col = col.cast(pa.timestamp("ns")).cast(field.type)
        elif col.type != field.type:
            col = col.cast(field.type)
        arrays.append(col)
    table = pa.Table.from_arrays(arrays, schema=ENTRY_SCHEMA)
    keep = derived.column("keep")
    return table if keep.null_count == 0 and pc.all(keep).as_py() is not False else table.filter(keep)


def normalize_entry(entry: Any, source: str = "<memory>") -> dict[str, Any]:
    """Normalize one LogEntry (a dict, or JSON text) into a row dict; raises ValueError with the reason if it is not one."""
    text = entry if isinstance(entry, str) else orjson.dumps(entry).decode()
    table, rejects = normalize_batch(pa.array([text]), pa.array([1], pa.int64()), source)
    if rejects:
        raise ValueError(rejects[0][1])
    return table.to_pylist()[0]


def parse_timestamps(values: list[str | None]) -> list[int | None]:
    """Epoch nanoseconds for RFC 3339 strings (None where the text is not one).

    >>> parse_timestamps(["2025-09-10T02:18:34.619410Z", "2025-09-10T04:18:34+02:00", "nope"])
    [1757470714619410000, 1757470714000000000, None]
    """
    con = _connection()
    tbl = pa.table({"t": pa.array(values, pa.string())})  # noqa: F841 - read by DuckDB
    con.register("ts_batch", tbl)
    try:
        rows = con.execute(f"SELECT {_ts_ns_sql('t')} FROM ts_batch").fetchall()
    finally:
        con.unregister("ts_batch")
    return [r[0] for r in rows]


__all__ = ["ENTRY_COLUMNS", "Reject", "normalize_batch", "normalize_entry", "parse_timestamps"]
