"""Turn raw LogEntry JSON text into rows of the canonical entry table.

The work is one DuckDB query over a batch of lines: DuckDB parses each line once
(`from_json` with an explicit structure, payloads kept as JSON text) and flattens it in C++,
which is what keeps ingest close to DuckDB's own `read_json` speed. The same function serves
single entries, so there is exactly one implementation of the rules (docs/entry-table.md).
Python touches single rows only where they are the exception: the content key of an entry
without insertId, notes on fields that could not be read, and the wording of rejects.

>>> from logaudit.store.normalize import normalize_entry
>>> row = normalize_entry({"logName": "projects/p/logs/run.googleapis.com%2Fstdout",
...                        "timestamp": "2025-09-10T02:18:34.619410Z", "textPayload": "[ERROR] boom"})
>>> row["log_id"], row["effective_severity"]
('run.googleapis.com/stdout', 'ERROR')
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass
from typing import Any

import duckdb
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from logaudit.core.db import connect
from logaudit.core.timeparse import TimestampError, format_ns, parse_rfc3339_ns
from logaudit.sources.files import loads_exact
from logaudit.sources.severity import SEVERITY_ALIASES, SEVERITY_NUM
from logaudit.store.schema import ENTRY_COLUMNS, ENTRY_SCHEMA, MAX_TIMESTAMP_NS, MIN_TIMESTAMP_NS

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
            "latency": "JSON",  # a Duration string, or the {seconds, nanos} object some converters write
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

# RFC 3339 with 0-9 fractional digits and Z or +hh:mm (also accepts t/z and a space separator),
# its parts captured: date, hour, minute, second, fraction, offset sign, hours, minutes.
_RFC3339 = r"(\d{4}-\d{2}-\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:[Zz]|([+-])(\d{2}):(\d{2}))"
# The shape almost every export uses, with values DuckDB's own cast can take exactly: hours 00-23,
# minutes and seconds 00-59 (the cast checks the date). The cast alone skips spaces, so the digits
# are checked here.
_RFC3339_COMMON = r"[0-9]{4}-[0-9]{2}-[0-9]{2}T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,9})?(Z|\+00:00)"


def _ts_ns_sql(col: str) -> str:
    """SQL for epoch nanoseconds of an RFC 3339 string column, with the checks of
    `logaudit.core.timeparse` (month, day, hour 00-23, minute, second 00-60 with leap seconds only at
    23:59:60 UTC on a month's last day, offset within +-23:59) and the store's range; NULL when it
    is not one. The reason for a NULL comes from `timeparse` (see `_timestamp_reason`).

    Each intermediate value is a lambda parameter, so it is written (and planned) once.
    """
    parts = f"regexp_extract({col}, '{_RFC3339}', ['d', 'h', 'm', 's', 'f', 'sign', 'oh', 'om'])"
    offset = "TRY_CAST(p.oh AS BIGINT) * 3600 + TRY_CAST(p.om AS BIGINT) * 60"
    fields = (f"{{'day': TRY_CAST(p.d AS DATE), 'hh': CAST(p.h AS BIGINT), 'mi': CAST(p.m AS BIGINT), "
              f"'ss': CAST(p.s AS BIGINT), 'frac': CAST(rpad(p.f, 9, '0') AS BIGINT), "
              f"'off': CASE p.sign WHEN '' THEN 0 WHEN '-' THEN -({offset}) ELSE {offset} END, "
              f"'off_ok': p.sign = '' OR (TRY_CAST(p.oh AS BIGINT) <= 23 AND TRY_CAST(p.om AS BIGINT) <= 59)}}")
    # UTC seconds of the instant, with second 60 read as 59 (a leap second is the instant after)
    base = "(q.day - DATE '1970-01-01') * 86400 + q.hh * 3600 + q.mi * 60 + least(q.ss, 59) - q.off"
    leap_ok = "(b + 1) % 86400 = 0 AND dayofmonth(DATE '1970-01-01' + CAST((b + 1) // 86400 AS INTEGER)) = 1"
    valid = f"q.day IS NOT NULL AND q.hh <= 23 AND q.mi <= 59 AND q.ss <= 60 AND q.off_ok AND (q.ss < 60 OR ({leap_ok}))"
    ns = "(b + CASE WHEN q.ss = 60 THEN 1 ELSE 0 END)::HUGEINT * 1000000000 + q.frac"
    return (
        f"(CASE WHEN regexp_full_match({col}, '{_RFC3339}') THEN list_transform([{parts}], lambda p: "
        f"list_transform([{fields}], lambda q: list_transform([{base}], lambda b: list_transform([{ns}], lambda n: "
        f"CASE WHEN {valid} AND n BETWEEN {MIN_TIMESTAMP_NS} AND {MAX_TIMESTAMP_NS} THEN CAST(n AS BIGINT) END"
        f")[1])[1])[1])[1] END)"
    )


def _ts_fast_sql(col: str) -> str:
    """Epoch ns. The common shape (`_RFC3339_COMMON`, years 1678-2261) is converted by DuckDB's
    cast (which rejects days that do not exist); any other text takes `_ts_ns_sql`."""
    return (f"CASE WHEN regexp_full_match({col}, '{_RFC3339_COMMON}') AND substr({col}, 1, 4) BETWEEN '1678' AND '2261' "
            f"THEN epoch_ns(TRY_CAST({col} AS TIMESTAMP_NS)) ELSE {_ts_ns_sql(col)} END")


def _severity_sql(col: str) -> str:
    """SQL for the LogSeverity level (0-800) of a severity text; NULL when it is not one.

    Names and `SEVERITY_ALIASES` in any case (ASCII only: byte and character counts agree),
    surrounding blanks ignored; digits are the numeric value truncated to its hundred, above 800
    EMERGENCY (as Google's logging agent reads them). The exact names are tried first; the rest
    is looked up in lists, not a long CASE (each WHEN costs planning time on every batch).
    """
    text = f"trim({col}, ' ' || chr(9) || chr(10) || chr(13))"
    words = {**SEVERITY_NUM, **{alias: SEVERITY_NUM[name] for alias, name in SEVERITY_ALIASES.items()}}
    digits = f"CASE WHEN length(ltrim({text}, '0')) > 3 THEN 800 ELSE least(800, CAST({text} AS INTEGER) // 100 * 100) END"
    exact = " ".join(f"WHEN '{name}' THEN {num}" for name, num in SEVERITY_NUM.items())  # what real entries hold
    return (f"CASE {col} {exact} ELSE coalesce(CASE WHEN strlen({text}) = length({text}) THEN {list(words.values())}"
            f"[list_position({list(words)}, upper({text}))] END, "
            f"CASE WHEN regexp_full_match({text}, '[0-9]+') THEN {digits} END) END")


def _int_sql(col: str, sql_type: str) -> str:
    """SQL for an integer given as a JSON number or string: digits with an optional sign, or a
    whole number written with a fraction of zeros (`200.0`, as converters from float columns
    write); NULL otherwise (DuckDB's own cast would round `1.5`, read hex and skip blanks)."""
    return (f"(CASE WHEN regexp_full_match({col}, '-?[0-9]+') THEN TRY_CAST({col} AS {sql_type}) "
            f"WHEN regexp_full_match({col}, '-?[0-9]+\\.0+') THEN TRY_CAST(split_part({col}, '.', 1) AS {sql_type}) END)")


#: The longest Duration: protobuf's bound on `seconds`.
_MAX_DURATION_S = 315_576_000_000


def _latency_ms_sql(col: str) -> str:
    """SQL for milliseconds of a Duration given as JSON text: a string `"0.123s"` (0-9 fraction
    digits) or the object `{"seconds": N, "nanos": M}` some converters write (BigQuery's shape; a
    missing field is 0, numbers may be strings). Exact: integer nanoseconds, then one division.
    NULL for anything else, a negative value or one beyond protobuf's Duration range."""
    # a string holding an escape is no Duration: it fails the pattern with its backslash
    decimal = f"TRY_CAST(regexp_extract({col}, '^\"([0-9]{{1,12}}(\\.[0-9]{{1,9}})?)s\"$', 1) AS DECIMAL(21, 9))"
    seconds, nanos = f"json_extract_string({col}, '$.seconds')", f"json_extract_string({col}, '$.nanos')"
    return (
        f"(CASE WHEN {decimal} < {_MAX_DURATION_S + 1} THEN ({decimal} * 1000000000)::HUGEINT::DOUBLE / 1000000.0 "
        f"WHEN starts_with({col}, '{{') AND list_has_all(['seconds', 'nanos'], json_keys({col})) "
        f"AND coalesce(regexp_full_match({seconds}, '[0-9]{{1,12}}'), true) "
        f"AND coalesce(regexp_full_match({nanos}, '[0-9]{{1,9}}'), true) "
        f"AND coalesce(CAST({seconds} AS BIGINT), 0) <= {_MAX_DURATION_S} "
        f"THEN (coalesce(CAST({seconds} AS HUGEINT), 0) * 1000000000 + coalesce(CAST({nanos} AS HUGEINT), 0))::DOUBLE"
        f" / 1000000.0 END)"
    )


# Level words a person reads in unstructured text, in the order they are tried, and their numbers.
_LEVEL_WORDS = ["DEBUG", "INFO", "NOTICE", "WARNING", "WARN", "ERROR", "CRITICAL", "FATAL"]
_LEVEL_NUMS = [SEVERITY_NUM[SEVERITY_ALIASES.get(word, word)] for word in _LEVEL_WORDS]
_LEVEL_WORD = "|".join(_LEVEL_WORDS)
_TEXT_LEVEL_RE = (
    rf"\[({_LEVEL_WORD})\]"  # gunicorn: [2025-09-16 00:42:53 +0000] [11] [ERROR]
    rf"|\s-\s({_LEVEL_WORD})\s-\s"  # python logging: ... - auth - WARNING - ...
    rf"|\|\s*({_LEVEL_WORD})\s*\|"  # loguru: ... | ERROR    | ...
    rf"|^\s*({_LEVEL_WORD}):"  # CRITICAL: / ERROR: prefixes
)
_ANSI_RE = r"\x1b\[[0-9;?]*[ -/]*[@-~]"

_SEVERITY_NAME_CASE = (
    f"{list(SEVERITY_NUM)}[list_position({list(SEVERITY_NUM.values())}, {{col}})]"
)
_BOOL = "CASE lower({col}) WHEN 'true' THEN true WHEN 'false' THEN false END"

# Cloud Run revision names are SERVICE-NNNNN-xxx (generation, three random characters); a
# service name is lower-case letters, digits and dashes, starting with a letter.
_REVISION_RE = r"([a-z]([-a-z0-9]*[a-z0-9])?)-[0-9]{5,}-[a-z0-9]{3}"

# What stage 2 reads from the payloads, each extracted in one pass over the payload's JSON.
_JSON_PATHS = ["$.message", "$.msg", "$.text", "$.log", "$.event", "$.error", "$.statusDetails",
               "$.severity", "$.level"]
_JF = {name: i + 1 for i, name in enumerate(["message", "msg", "text", "log", "event", "error", "statusDetails",
                                             "severity", "level"])}
_PROTO_PATHS = ["$.methodName", "$.authenticationInfo.principalEmail", "$.status.code", "$.status.message",
                "$.resourceName", "$.response.status.latestCreatedRevisionName", '$."@type"', "$.method",
                "$.resource", "$.status", "$.userAgent", "$.ip", "$.responseSize", "$.httpVersion"]
_PF = {name: i + 1 for i, name in enumerate(["methodName", "principal", "status_code", "status_message", "resourceName",
                                             "latestCreatedRevisionName", "type", "method", "resource", "status",
                                             "userAgent", "ip", "responseSize", "httpVersion"])}
_APP_ENGINE_REQUEST = "type.googleapis.com/google.appengine.logging.v1.RequestLog"


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
# `in_*` columns are texts as given that stage 2 converts (and that notes quote when they cannot be).
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
    {_severity_sql("severity")} AS severity_num,
    resource.type AS resource_type,
    coalesce(nullif(resource.labels.project_id, ''),
             CASE WHEN starts_with(logName, 'projects/') THEN split_part(logName, '/', 2) END) AS project_id,
    CASE WHEN resource.labels.service_name <> '' THEN resource.labels.service_name
         ELSE nullif(regexp_extract(resource.labels.revision_name, '^{_REVISION_RE}$', 1), '') END AS service,
    nullif(resource.labels.revision_name, '') AS revision,
    nullif(resource.labels.configuration_name, '') AS configuration,
    nullif(resource.labels.location, '') AS location,
    labels->>'instanceId' AS instance_id,
    trace,
    spanId AS span_id,
    traceSampled AS in_trace_sampled,
    {_BOOL.format(col="traceSampled")} AS trace_sampled,
    httpRequest.requestMethod AS in_http_method,
    httpRequest.requestUrl AS in_http_url,
    httpRequest.status AS in_http_status,
    httpRequest.latency AS in_http_latency,
    httpRequest.userAgent AS in_http_user_agent,
    httpRequest.remoteIp AS in_http_remote_ip,
    httpRequest.serverIp AS http_server_ip,
    httpRequest.protocol AS in_http_protocol,
    httpRequest.requestSize AS in_http_request_size,
    {_int_sql("httpRequest.requestSize", "BIGINT")} AS http_request_size,
    httpRequest.responseSize AS in_http_response_size,
    CASE WHEN jsonPayload IS NOT NULL THEN json_extract_string(jsonPayload, {_JSON_PATHS}) END AS jf,
    CASE WHEN protoPayload IS NOT NULL THEN json_extract_string(protoPayload, {_PROTO_PATHS}) END AS pf,
    CASE WHEN textPayload IS NOT NULL THEN 'text' WHEN jsonPayload IS NOT NULL THEN 'json'
         WHEN protoPayload IS NOT NULL THEN 'proto' END AS payload_type,
    coalesce(jsonPayload, protoPayload)::VARCHAR AS payload_json,
    textPayload AS payload_text,
    labels::VARCHAR AS labels_json,
    operation.id AS operation_id,
    operation.first AS in_operation_first,
    {_BOOL.format(col="operation.first")} AS operation_first,
    operation.last AS in_operation_last,
    {_BOOL.format(col="operation.last")} AS operation_last,
    sourceLocation.file AS source_location_file,
    sourceLocation.line AS in_source_location_line,
    {_int_sql("sourceLocation.line", "BIGINT")} AS source_location_line,
    sourceLocation.function AS source_location_function
"""
_PARSE_SQL = f"SELECT {_PARSE_SELECT} FROM (SELECT pos, unnest(from_json(line, '{_STRUCTURE}')) FROM batch)"
# try() makes the parse much slower, so it is only used for batches holding a line that is not JSON.
_PARSE_SQL_TOLERANT = f"SELECT {_PARSE_SELECT} FROM (SELECT pos, unnest(try(from_json(line, '{_STRUCTURE}'))) FROM batch)"

# Stage 2, over stage 1's Arrow output: the values that depend on other derived values or on the
# payload fields stage 1 extracted. Each expensive expression appears exactly once (a CTE column
# referenced twice is computed twice).
_TEXT_LEVEL_SQL = (
    f"{_LEVEL_NUMS}[list_position({_LEVEL_WORDS}, regexp_extract("
    f"regexp_extract(left(message, 4096), '{_TEXT_LEVEL_RE}', 0), '({_LEVEL_WORD})', 1))]"
)


def _pf(name: str) -> str:
    return f"pf[{_PF[name]}]"


def _gae(name: str) -> str:
    """An App Engine request log's field (NULL for other entries)."""
    return f"CASE WHEN {_pf('type')} = '{_APP_ENGINE_REQUEST}' THEN {_pf(name)} END"


_PROTO_MESSAGE = (
    f"CASE WHEN {_pf('methodName')} IS NULL THEN {_pf('status_message')} "  # Cloud Run system_event entries
    f"ELSE {_pf('methodName')} || ' by ' || coalesce({_pf('principal')}, 'unknown principal') || ': ' || "
    f"CASE WHEN coalesce({_pf('status_code')}, '0') = '0' THEN coalesce({_pf('status_message')}, 'OK') "
    f"ELSE 'status ' || {_pf('status_code')} || coalesce(' ' || {_pf('status_message')}, '') END END"
)
_JSON_MESSAGE = "coalesce(" + ", ".join(
    f"jf[{_JF[k]}]" for k in ("message", "msg", "text", "log", "event", "error", "statusDetails")) + ")"

_FINISH_CTES = f"""
h AS (
    SELECT *,
        coalesce(in_http_method, {_gae('method')}) AS http_method,
        coalesce(in_http_url, {_gae('resource')}) AS http_url,
        coalesce(in_http_status, {_gae('status')}) AS http_status_text,
        coalesce(in_http_latency, CASE WHEN {_pf('type')} = '{_APP_ENGINE_REQUEST}'
                                       THEN json_extract(payload_json, '$.latency') END) AS http_latency_text,
        coalesce(in_http_user_agent, {_gae('userAgent')}) AS http_user_agent,
        coalesce(in_http_remote_ip, {_gae('ip')}) AS http_remote_ip,
        coalesce(in_http_protocol, {_gae('httpVersion')}) AS http_protocol,
        coalesce(in_http_response_size, {_gae('responseSize')}) AS http_response_size_text,
        coalesce(payload_text, {_JSON_MESSAGE}, {_PROTO_MESSAGE}) AS message_raw
    FROM parsed
),
m AS (
    SELECT *,
        {_int_sql("http_status_text", "INTEGER")} AS http_status,
        CASE WHEN contains(message_raw, '\x1b') THEN regexp_replace(message_raw, '{_ANSI_RE}', '', 'g')
             ELSE message_raw END AS message,
        {_severity_sql(f"coalesce(jf[{_JF['severity']}], jf[{_JF['level']}])")} AS payload_severity_num
    FROM h
),
e AS (
    SELECT *,
        CASE
            WHEN severity_num > 0 THEN severity_num
            WHEN payload_severity_num > 0 THEN payload_severity_num
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
    message,
    http_method,
    http_url,
    {_url_path_sql("http_url")} AS http_path,
    http_status,
    {_latency_ms_sql("http_latency_text")} AS http_latency_ms,
    http_user_agent,
    http_remote_ip,
    http_protocol,
    {_int_sql("http_response_size_text", "BIGINT")} AS http_response_size,
    {_pf('methodName')} AS audit_method,
    {_pf('principal')} AS audit_principal,
    CASE WHEN {_pf('methodName')} IS NOT NULL AND {_pf('status')} IS NOT NULL
         THEN {_int_sql(f"coalesce({_pf('status_code')}, '0')", "INTEGER")} END AS audit_status_code,
    {_pf('resourceName')} AS audit_resource_name,
    {_pf('latestCreatedRevisionName')} AS audit_revision"""
_FINISH_SQL = (f"WITH {_FINISH_CTES} SELECT {_KEEP_SQL} AS keep, {_DERIVED_SELECT}, "
               "http_status_text, http_latency_text, http_response_size_text FROM e")
#: Stage 2 returns only what it derives; every other column comes from stage 1 unchanged.
_DERIVED = ("timestamp", "receive_timestamp", "effective_severity", "effective_severity_num", "message",
            "http_method", "http_url", "http_path", "http_status", "http_latency_ms", "http_user_agent",
            "http_remote_ip", "http_protocol", "http_response_size", "audit_method", "audit_principal",
            "audit_status_code", "audit_resource_name", "audit_revision")

# Lines that did not become rows: what is wrong (the reason is worded in `_reject_reason`).
_REJECT_SQL = f"""
WITH src AS (SELECT pos, line, try(from_json(line, '{_STRUCTURE}')) AS j FROM batch),
typed AS (
    SELECT pos, line, j, CASE WHEN json_valid(line) THEN json_type(line) END AS jt,
        {_ts_ns_sql("j.timestamp")} AS ts, {_ts_ns_sql("j.receiveTimestamp")} AS rts
    FROM src
),
found AS (
    SELECT pos,
        CASE
            WHEN jt IS NULL THEN 'json'
            WHEN jt <> 'OBJECT' THEN 'type'
            WHEN j.timestamp IS NOT NULL AND ts IS NULL THEN 'timestamp'
            WHEN j.receiveTimestamp IS NOT NULL AND rts IS NULL THEN 'receiveTimestamp'
            WHEN ts IS NOT NULL OR rts IS NOT NULL THEN NULL
            WHEN j.logName IS NULL AND j.insertId IS NULL AND j.resource IS NULL THEN 'keys'
            ELSE 'untimed'
        END AS kind,
        j, jt, line
    FROM typed
)
SELECT pos, kind,
    CASE kind WHEN 'type' THEN lower(jt) WHEN 'timestamp' THEN j.timestamp WHEN 'receiveTimestamp' THEN j.receiveTimestamp
              WHEN 'keys' THEN array_to_string(list_slice(json_keys(line), 1, 8), ', ') END AS detail
FROM found
WHERE kind IS NOT NULL
ORDER BY pos
"""


def _reject_reason(kind: str, detail: str | None) -> str:
    if kind == "json":
        return "not valid JSON"
    if kind == "type":
        return f"not a LogEntry: a JSON {detail}, expected an object"
    if kind in ("timestamp", "receiveTimestamp"):
        return _timestamp_reason(kind, detail or "")
    if kind == "keys":
        return f"not a LogEntry: no timestamp, logName, insertId or resource (keys: {detail})"
    return "no timestamp and no receiveTimestamp"


_STORE_RANGE = f"{format_ns(MIN_TIMESTAMP_NS)} to {format_ns(MAX_TIMESTAMP_NS)}"


def _timestamp_reason(field: str, text: str) -> str:
    """Why `text` is not a timestamp the store can hold, in the words of `logaudit.core.timeparse`."""
    quoted = json.dumps(text, ensure_ascii=False)
    try:
        ns = parse_rfc3339_ns(text)
    except TimestampError as err:
        if err.detail is None:
            return f"{field} {quoted} is not an RFC 3339 time"
        return f"{field} {quoted} is not a valid time: {err.detail}"
    if not MIN_TIMESTAMP_NS <= ns <= MAX_TIMESTAMP_NS:
        return (f"{field} {quoted} is outside the range of times the store can hold ({_STORE_RANGE}: "
                "nanoseconds since 1970 in 64 bits)")
    return f"{field} {quoted} could not be read"  # the SQL and timeparse disagree: a bug, said plainly


# Fields that, when given but not readable, are stored as null with a note:
# (the field as the entry spells it, the column holding the text given, the column with its value,
# what the text should have been). http_latency_text holds JSON text; the others plain text.
_CHECKED: tuple[tuple[str, str, str, str], ...] = (
    ("severity", "severity", "severity_num",
     "a LogSeverity name, alias or number (see docs/entry-table.md); read as no severity"),
    ("httpRequest.status", "http_status_text", "http_status", "an integer; stored as null"),
    ("httpRequest.latency", "http_latency_text", "http_latency_ms",
     'a Duration ("0.123s", or {"seconds": 0, "nanos": 123000000}) from 0 to 315576000000 s; stored as null'),
    ("httpRequest.requestSize", "in_http_request_size", "http_request_size", "an integer; stored as null"),
    ("httpRequest.responseSize", "http_response_size_text", "http_response_size", "an integer; stored as null"),
    ("traceSampled", "in_trace_sampled", "trace_sampled", "true or false; stored as null"),
    ("operation.first", "in_operation_first", "operation_first", "true or false; stored as null"),
    ("operation.last", "in_operation_last", "operation_last", "true or false; stored as null"),
    ("sourceLocation.line", "in_source_location_line", "source_location_line", "an integer; stored as null"),
)
#: The protoPayload field an App Engine request log holds a checked value in.
_APP_ENGINE_FIELD = {"http_status_text": ("in_http_status", "protoPayload.status"),
                     "http_latency_text": ("in_http_latency", "protoPayload.latency"),
                     "http_response_size_text": ("in_http_response_size", "protoPayload.responseSize")}

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
        con = connect()
        # macros are checked when created: give them empty stand-ins for the per-batch tables
        con.register("batch", pa.table({"pos": pa.array([], pa.int64()), "line": pa.array([], pa.string())}))
        con.register("parsed", con.sql(_PARSE_SQL).to_arrow_table())
        con.execute(f"CREATE TEMP MACRO logaudit_parse() AS TABLE {_PARSE_SQL}")
        con.execute(f"CREATE TEMP MACRO logaudit_parse_tolerant() AS TABLE {_PARSE_SQL_TOLERANT}")
        con.execute(f"CREATE TEMP MACRO logaudit_finish() AS TABLE {_FINISH_SQL}")
        con.execute(f"CREATE TEMP MACRO logaudit_rejects() AS TABLE {_REJECT_SQL}")
        con.unregister("parsed")
        con.unregister("batch")
        _local.con = con
    return con


def normalize_batch(
    lines: pa.Array, positions: pa.Array, source: str, *, notes: list[tuple[int, str]] | None = None
) -> tuple[pa.Table, list[tuple[int, str]]]:
    """Normalize a batch of JSON texts (one LogEntry each) into (rows, [(position, reason)]).

    `lines` is a string array, `positions` the line/element number of each. Rows come back in
    the canonical schema, in input order; every input becomes a row or a reject, never both.
    A row whose field was given but cannot be read (a latency "abc", a severity "loud") keeps
    that column null; when `notes` is a list, (position, what and why) is appended to it for each.
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
        keep = derived.column("keep")
        if keep.null_count or pc.all(keep).as_py() is False:
            parsed, derived = parsed.filter(keep), derived.filter(keep)
        table = _with_content_ids(_assemble(parsed, derived, source), lines, positions)
        if notes is not None:
            notes.extend(_field_notes(parsed, derived))
        rejects = con.sql("SELECT * FROM logaudit_rejects()").fetchall() if table.num_rows < len(lines) else []
    finally:
        con.unregister("batch")
    return table, [(int(p), _reject_reason(kind, detail)) for p, kind, detail in rejects]


def _assemble(parsed: pa.Table, derived: pa.Table, source: str) -> pa.Table:
    """The canonical table from stage 1's columns and stage 2's derived ones (no copies of the rest)."""
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
    return pa.Table.from_arrays(arrays, schema=ENTRY_SCHEMA)


def _with_content_ids(table: pa.Table, lines: pa.Array, positions: pa.Array) -> pa.Table:
    """Give each row without an insertId (or with an empty one) `content_id` of its entry as
    insert_id, so entries that differ stay apart and the same entry read twice is one entry.
    Cloud Logging assigns every entry an insertId, so this is the exception, done per row."""
    ids = table.column("insert_id").combine_chunks()
    missing = pc.fill_null(pc.equal(ids, ""), True)
    if not pc.any(missing).as_py():
        return table
    rows = pc.indices_nonzero(missing)
    where = pc.index_in(table.column("source_position").take(rows), value_set=positions)
    texts = lines.take(where).to_pylist()
    filled = pc.replace_with_mask(ids, missing, pa.array([content_id(t) for t in texts], pa.string()))
    return table.set_column(table.schema.get_field_index("insert_id"), "insert_id", filled)


def content_id(text: str) -> str:
    """`sha256:` and the SHA-256 (hex) of a LogEntry's canonical JSON: keys sorted at every level,
    no whitespace, numbers and strings as parsed (so `1.50` and `1.5`, `"\\u00e9"` and `"é"` are
    the same). The same entry from a pretty-printed JSON array, JSON Lines or YAML gets the same id.

    >>> content_id('{"b": 1, "a": [1.50, "x"]}') == content_id('{"a":[1.5,"x"],"b":1}')
    True
    """
    try:
        canonical = orjson.dumps(loads_exact(text.encode("utf-8", "surrogatepass")), option=orjson.OPT_SORT_KEYS)
    except (orjson.JSONDecodeError, TypeError):
        # NaN/Infinity, lone surrogates or integers beyond 64 bits, which orjson refuses: the
        # standard library reads them
        try:
            canonical = json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"),
                                   ensure_ascii=False).encode("utf-8", "surrogatepass")
        except ValueError:
            canonical = text.strip().encode("utf-8", "surrogatepass")
    return "sha256:" + hashlib.sha256(canonical).hexdigest()


def _field_notes(parsed: pa.Table, derived: pa.Table) -> list[tuple[int, str]]:
    """(position, note) for each field given as text but left null because it could not be read.
    Found with vectorised compares; only the (rare) rows with such a field are looked at one by one."""
    columns = {name: (parsed if name in parsed.column_names else derived).column(name)
               for _, given, value, _ in _CHECKED for name in (given, value)}
    found: list[tuple[int, str]] = []
    for field, given, value, expected in _CHECKED:
        unread = pc.and_(pc.is_valid(columns[given]), pc.is_null(columns[value]))
        if not pc.any(unread).as_py():
            continue
        rows = pc.indices_nonzero(unread)
        texts = columns[given].take(rows).to_pylist()
        label = [field] * len(texts)
        if given in _APP_ENGINE_FIELD:
            own, proto_field = _APP_ENGINE_FIELD[given]
            label = [field if v is not None else proto_field for v in parsed.column(own).take(rows).to_pylist()]
        for pos, name, text in zip(parsed.column("pos").take(rows).to_pylist(), label, texts, strict=True):
            shown = text if given == "http_latency_text" else json.dumps(text, ensure_ascii=False)
            found.append((pos, f"{name} {shown} is not {expected}"))
    return sorted(found)


def normalize_entry(entry: Any, source: str = "<memory>") -> dict[str, Any]:
    """Normalize one LogEntry (a dict, or JSON text) into a row dict; raises ValueError with the reason if it is not one."""
    text = entry if isinstance(entry, str) else orjson.dumps(entry).decode()
    table, rejects = normalize_batch(pa.array([text]), pa.array([1], pa.int64()), source)
    if rejects:
        raise ValueError(rejects[0][1])
    return table.to_pylist()[0]


def parse_timestamps(values: list[str | None]) -> list[int | None]:
    """Epoch nanoseconds for RFC 3339 strings, by the rules entries are read with (None where the
    text is not one, or not an instant the store can hold).

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


__all__ = ["ENTRY_COLUMNS", "Reject", "content_id", "normalize_batch", "normalize_entry", "parse_timestamps"]
