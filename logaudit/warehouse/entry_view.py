"""The canonical entries of a BigQuery log dataset, as one GoogleSQL SELECT per source.

A source is a Log Analytics linked dataset's `_AllLogs` view (`all_logs_view`) or the tables of
a classic log sink (`sink_view`: one table per log, date-sharded or partitioned). Either SELECT
yields `CANONICAL_COLUMNS`, computed by the rules the local store ingests with
(`logaudit.store.normalize`): the message's precedence, the effective severity read from the
text, the service read from a revision name, latency in milliseconds. Only the columns those
rules need are referenced (BigQuery bills the referenced columns). Duplicates (log_name,
insert_id, timestamp) count once unless `dedupe=False`. docs/bigquery.md has the mapping.

>>> sql = all_logs_view("my-project.my_dataset._AllLogs")
>>> sql.startswith("SELECT timestamp, receive_timestamp, log_name")
True
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from logaudit.core.errors import UsageError
from logaudit.sources.severity import SEVERITY_ALIASES, SEVERITY_NAME, SEVERITY_NUM

#: The entry columns the analyses read (a subset of `logaudit.store.schema.ENTRY_COLUMNS`).
CANONICAL_COLUMNS: tuple[str, ...] = (
    "timestamp", "receive_timestamp", "log_name", "log_id", "insert_id", "severity", "severity_num",
    "effective_severity", "effective_severity_num", "service", "revision", "configuration", "location",
    "instance_id", "trace", "http_method", "http_url", "http_path", "http_status", "http_latency_ms",
    "http_user_agent", "message", "audit_method", "audit_revision", "audit_status_code", "audit_resource_name")

# The inputs each source extracts (`_raw_*`), named alike so the rules below are written once.
_JSON_MESSAGE_KEYS = ("message", "msg", "text", "log", "event", "error", "statusDetails")
_RAW_COLUMNS: tuple[str, ...] = (
    "timestamp", "receive_timestamp", "log_name", "log_id", "insert_id", "severity", "service_name", "revision_name",
    "configuration_name", "location", "instance_id", "trace", "http_method", "http_url", "http_status",
    "latency_seconds", "latency_nanos", "http_user_agent", "text_payload",
    *(f"j_{k.lower()}" for k in (*_JSON_MESSAGE_KEYS, "severity", "level")),
    "p_method", "p_principal", "p_has_status", "p_status_code", "p_status_message", "p_resource_name",
    "p_latest_revision",
)

# Level words a person reads in unstructured text, tried in this order (normalize._LEVEL_WORDS).
_LEVEL_WORDS = ("DEBUG", "INFO", "NOTICE", "WARNING", "WARN", "ERROR", "CRITICAL", "FATAL")
_LEVEL_WORD = "|".join(_LEVEL_WORDS)
# normalize._TEXT_LEVEL_RE without capturing groups (REGEXP_EXTRACT allows at most one): the
# first match is cut out, then its level word.
_TEXT_LEVEL_RE = (rf"\[(?:{_LEVEL_WORD})\]|\s-\s(?:{_LEVEL_WORD})\s-\s|\|\s*(?:{_LEVEL_WORD})\s*\||"
                  rf"^\s*(?:{_LEVEL_WORD}):")
_ANSI_RE = r"\x1b\[[0-9;?]*[ -/]*[@-~]"
_REVISION_RE = r"^([a-z](?:[-a-z0-9]*[a-z0-9])?)-[0-9]{5,}-[a-z0-9]{3}$"
_BLANKS = "' \\t\\n\\r'"  # the characters the local normaliser trims from a severity


def _severity_num_sql(col: str) -> str:
    """GoogleSQL for the LogSeverity level of a severity text (normalize._severity_sql): names and
    aliases in any ASCII case, blanks around ignored, digits truncated to their hundred (above 800
    EMERGENCY); NULL otherwise.

    >>> "WHEN 'WARN' THEN 400" in _severity_num_sql("s")
    True
    """
    text = f"TRIM({col}, {_BLANKS})"
    words = {**SEVERITY_NUM, **{alias: SEVERITY_NUM[name] for alias, name in SEVERITY_ALIASES.items()}}
    cases = " ".join(f"WHEN '{word}' THEN {num}" for word, num in words.items())
    digits = (f"CASE WHEN LENGTH(LTRIM({text}, '0')) > 3 THEN 800 "
              f"ELSE LEAST(800, DIV(SAFE_CAST({text} AS INT64), 100) * 100) END")
    return (f"CASE WHEN REGEXP_CONTAINS({text}, r'^[0-9]+$') THEN {digits} "
            f"WHEN REGEXP_CONTAINS({col}, r'^[[:ascii:]]*$') THEN CASE UPPER({text}) {cases} END END")


def _severity_name_sql(col: str) -> str:
    return f"CASE {col} " + " ".join(f"WHEN {num} THEN '{name}'" for num, name in SEVERITY_NAME.items()) + " END"


def _text_level_sql(col: str) -> str:
    """The level a person reads in a message's first 4096 characters; NULL when none."""
    word = f"REGEXP_EXTRACT(REGEXP_EXTRACT(SUBSTR({col}, 1, 4096), r'{_TEXT_LEVEL_RE}'), r'{_LEVEL_WORD}')"
    cases = " ".join(f"WHEN '{w}' THEN {SEVERITY_NUM[SEVERITY_ALIASES.get(w, w)]}" for w in _LEVEL_WORDS)
    return f"CASE {word} {cases} END"


def _url_path_sql(col: str) -> str:
    """Path of a URL without query or fragment; '/' when it has none (normalize._url_path_sql)."""
    cut = f"SPLIT(SPLIT({col}, '?')[SAFE_OFFSET(0)], '#')[SAFE_OFFSET(0)]"
    rest = f"SUBSTR({cut}, STRPOS({cut}, '://') + 3)"
    return (f"CASE WHEN {col} IS NULL THEN NULL WHEN STRPOS({cut}, '://') = 0 THEN COALESCE(NULLIF({cut}, ''), '/') "
            f"WHEN STRPOS({rest}, '/') = 0 THEN '/' ELSE SUBSTR({rest}, STRPOS({rest}, '/')) END")


def _message_sql() -> str:
    """textPayload, else the first of jsonPayload's message keys, else the audit rendering."""
    proto = ("CASE WHEN p_method IS NULL THEN p_status_message "
             "ELSE p_method || ' by ' || COALESCE(p_principal, 'unknown principal') || ': ' || "
             "CASE WHEN COALESCE(p_status_code, '0') = '0' THEN COALESCE(p_status_message, 'OK') "
             "ELSE 'status ' || p_status_code || COALESCE(' ' || p_status_message, '') END END")
    json_keys = ", ".join(f"j_{k.lower()}" for k in _JSON_MESSAGE_KEYS)
    return f"REGEXP_REPLACE(COALESCE(text_payload, {json_keys}, {proto}), r'{_ANSI_RE}', '')"


def _entries_sql(raw: str, dedupe: bool) -> str:
    """The canonical columns over `raw` (a subquery of `_RAW_COLUMNS`), in three steps: values read
    directly, then the effective severity, then the names."""
    derived = f"""SELECT COALESCE(timestamp, receive_timestamp) AS timestamp, receive_timestamp, log_name, log_id,
    insert_id, severity, {_severity_num_sql('severity')} AS severity_num,
    {_severity_num_sql('COALESCE(j_severity, j_level)')} AS payload_severity_num,
    CASE WHEN service_name <> '' THEN service_name
         ELSE NULLIF(REGEXP_EXTRACT(revision_name, r'{_REVISION_RE}'), '') END AS service,
    NULLIF(revision_name, '') AS revision, NULLIF(configuration_name, '') AS configuration,
    NULLIF(location, '') AS location, instance_id, trace, http_method, http_url, {_url_path_sql('http_url')} AS http_path,
    http_status,
    CASE WHEN latency_seconds IS NOT NULL OR latency_nanos IS NOT NULL
         THEN CAST(COALESCE(latency_seconds, 0) * 1000000000 + COALESCE(latency_nanos, 0) AS FLOAT64) / 1000000 END
      AS http_latency_ms,
    http_user_agent, {_message_sql()} AS message, p_method AS audit_method, p_latest_revision AS audit_revision,
    CASE WHEN p_method IS NOT NULL AND p_has_status THEN SAFE_CAST(COALESCE(p_status_code, '0') AS INT64) END
      AS audit_status_code,
    p_resource_name AS audit_resource_name
  FROM ({raw})"""
    effective = f"""SELECT *, CASE
      WHEN severity_num > 0 THEN severity_num
      WHEN payload_severity_num > 0 THEN payload_severity_num
      WHEN http_status >= 500 THEN 500
      WHEN http_status >= 400 THEN 400
      WHEN message IS NULL THEN 0
      WHEN STARTS_WITH(LTRIM(SUBSTR(message, 1, 64), ' '), 'Traceback (most recent call last)') THEN 500
      ELSE COALESCE({_text_level_sql('message')}, 0) END AS effective_severity_num
  FROM ({derived})"""
    columns = ", ".join(f"{_severity_name_sql('effective_severity_num')} AS effective_severity"
                        if c == "effective_severity" else c for c in CANONICAL_COLUMNS)
    # BigQuery refuses QUALIFY in a query with no WHERE, GROUP BY or HAVING: hence WHERE TRUE
    keep = ("\nWHERE TRUE QUALIFY ROW_NUMBER() OVER (PARTITION BY log_name, insert_id, timestamp "
            "ORDER BY receive_timestamp) = 1") if dedupe else ""
    return f"SELECT {columns}\nFROM ({effective}){keep}"


def _timestamp_literal(when: datetime) -> str:
    return f"TIMESTAMP '{when.astimezone(UTC).strftime('%Y-%m-%d %H:%M:%S.%f')}+00'"


def _time_where(column: str, since: datetime | None, until: datetime | None) -> list[str]:
    conds = []
    if since is not None:
        conds.append(f"{column} >= {_timestamp_literal(since)}")
    if until is not None:
        conds.append(f"{column} < {_timestamp_literal(until)}")
    return conds


def _where(conds: list[str]) -> str:
    return f" WHERE {' AND '.join(conds)}" if conds else ""


#: A table path: project (letters, digits, `-`, `:` and `.` of a domain-scoped project), dataset,
#: table (letters, digits, `_`, `-`, and a trailing `*` for a wildcard).
_TABLE_RE = re.compile(r"[A-Za-z0-9][-A-Za-z0-9.:]*\.[A-Za-z0-9_]+\.[-A-Za-z0-9_]+\*?")


def _quoted(table: str) -> str:
    """`project.dataset.table` quoted for GoogleSQL; a name that is not one is refused (never
    pasted into SQL as given)."""
    if not _TABLE_RE.fullmatch(table):
        raise UsageError(f"not a BigQuery table name: {table!r}", hint="write it as PROJECT.DATASET.TABLE")
    return f"`{table}`"


def all_logs_view(table: str, *, dedupe: bool = True, since: datetime | None = None,
                  until: datetime | None = None) -> str:
    """GoogleSQL for the canonical entries of a Log Analytics `_AllLogs` view (or any table of its
    schema), `since <= timestamp < until` when given.

    >>> "FROM `p.d._AllLogs`" in all_logs_view("p.d._AllLogs")
    True
    """
    audit = "proto_payload, '$.audit_log"
    raw = f"""SELECT timestamp, receive_timestamp, log_name, log_id, insert_id, severity,
    JSON_VALUE(resource.labels, '$.service_name') AS service_name,
    JSON_VALUE(resource.labels, '$.revision_name') AS revision_name,
    JSON_VALUE(resource.labels, '$.configuration_name') AS configuration_name,
    JSON_VALUE(resource.labels, '$.location') AS location,
    JSON_VALUE(labels, '$.instanceId') AS instance_id, trace,
    http_request.request_method AS http_method, http_request.request_url AS http_url, http_request.status AS http_status,
    http_request.latency.seconds AS latency_seconds, http_request.latency.nanos AS latency_nanos,
    http_request.user_agent AS http_user_agent, text_payload,
    {", ".join(f"JSON_VALUE(json_payload, '$.{k}') AS j_{k.lower()}" for k in (*_JSON_MESSAGE_KEYS, "severity", "level"))},
    JSON_VALUE({audit}.method_name') AS p_method,
    JSON_VALUE({audit}.authentication_info.principal_email') AS p_principal,
    JSON_QUERY({audit}.status') IS NOT NULL AS p_has_status,
    JSON_VALUE({audit}.status.code') AS p_status_code,
    JSON_VALUE({audit}.status.message') AS p_status_message,
    JSON_VALUE({audit}.resource_name') AS p_resource_name,
    JSON_VALUE({audit}.response.status.latestCreatedRevisionName') AS p_latest_revision
  FROM {_quoted(table)}{_where(_time_where('timestamp', since, until))}"""
    return _entries_sql(raw, dedupe)


@dataclass(frozen=True)
class SinkTable:
    """One log's table in a classic sink dataset.

    `name` is `project.dataset.table`; for a date-sharded log it is the shards' prefix
    (`p.d.run_googleapis_com_stdout_`, read as the wildcard table `..._*`). `columns` maps each
    field path to its BigQuery type, as `INFORMATION_SCHEMA.COLUMN_FIELD_PATHS` lists them
    (`{"httpRequest.status": "INT64", "httpRequest.latency": "STRING", ...}`); a field the table
    lacks is read as a typed NULL. Names are matched without regard to case.
    """

    name: str
    columns: Mapping[str, str] = field(default_factory=dict)
    sharded: bool = False


def _struct(kind: str) -> bool:
    return kind.upper().startswith(("STRUCT", "RECORD"))


def _sink_name(columns: Mapping[str, str], path: str) -> str | None:
    """The field `path` as the table spells it (names match without regard to case); None when absent."""
    return next((name for name in columns if name.lower() == path.lower()), None)


def _sink_field(columns: Mapping[str, str], path: str, sql_type: str) -> str:
    """The field `path` of a sink table as `sql_type`; a typed NULL when the table lacks it or holds
    a record there. Values of the type are read as they are, other scalars cast."""
    name = _sink_name(columns, path)
    if name is None or _struct(columns[name]):
        return f"CAST(NULL AS {sql_type})"
    if columns[name].upper() == sql_type:
        return name
    return f"SAFE_CAST({name} AS {sql_type})"


def _sink_latency(columns: Mapping[str, str]) -> tuple[str, str]:
    """(seconds, nanos) of httpRequest.latency: a record {seconds, nanos}, or a Duration text
    `"0.123s"` (0-9 fraction digits; anything else reads as no latency)."""
    name = _sink_name(columns, "httpRequest.latency")
    if name is not None and not _struct(columns[name]):
        text = _sink_field(columns, "httpRequest.latency", "STRING")
        seconds = f"SAFE_CAST(REGEXP_EXTRACT({text}, r'^([0-9]{{1,12}})(?:\\.[0-9]{{1,9}})?s$') AS INT64)"
        nanos = (f"CASE WHEN REGEXP_CONTAINS({text}, r'^[0-9]{{1,12}}(?:\\.[0-9]{{1,9}})?s$') THEN SAFE_CAST(RPAD("
                 f"COALESCE(REGEXP_EXTRACT({text}, r'\\.([0-9]{{1,9}})s$'), '0'), 9, '0') AS INT64) END")
        return seconds, nanos
    return (_sink_field(columns, "httpRequest.latency.seconds", "INT64"),
            _sink_field(columns, "httpRequest.latency.nanos", "INT64"))


def _shard_suffix(since: datetime | None, until: datetime | None) -> list[str]:
    """The `_TABLE_SUFFIX` range of the shards that can hold [since, until)."""
    conds = []
    if since is not None:
        conds.append(f"_TABLE_SUFFIX >= '{since.astimezone(UTC):%Y%m%d}'")
    if until is not None:
        conds.append(f"_TABLE_SUFFIX <= '{(until.astimezone(UTC) - timedelta(microseconds=1)):%Y%m%d}'")
    return conds


def _sink_select(table: SinkTable, since: datetime | None, until: datetime | None) -> str:
    """The `_RAW_COLUMNS` of one sink table."""
    cols = table.columns
    audit = "protopayload_auditlog"
    log_name = _sink_field(cols, "logName", "STRING")
    seconds, nanos = _sink_latency(cols)
    response = _sink_field(cols, f"{audit}.responseJson", "STRING")
    status = _sink_name(cols, f"{audit}.status")
    values = {
        "timestamp": _sink_field(cols, "timestamp", "TIMESTAMP"),
        "receive_timestamp": _sink_field(cols, "receiveTimestamp", "TIMESTAMP"),
        "log_name": log_name,
        # a log id holds letters, digits and `/_-.`: only the slash is escaped in a log name
        "log_id": f"REPLACE(REPLACE(REGEXP_EXTRACT({log_name}, r'/logs/([^/]*)'), '%2F', '/'), '%2f', '/')",
        "insert_id": _sink_field(cols, "insertId", "STRING"),
        "severity": _sink_field(cols, "severity", "STRING"),
        **{k: _sink_field(cols, f"resource.labels.{k}", "STRING")
           for k in ("service_name", "revision_name", "configuration_name", "location")},
        "instance_id": _sink_field(cols, "labels.instanceId", "STRING"),
        "trace": _sink_field(cols, "trace", "STRING"),
        "http_method": _sink_field(cols, "httpRequest.requestMethod", "STRING"),
        "http_url": _sink_field(cols, "httpRequest.requestUrl", "STRING"),
        "http_status": _sink_field(cols, "httpRequest.status", "INT64"),
        "latency_seconds": seconds, "latency_nanos": nanos,
        "http_user_agent": _sink_field(cols, "httpRequest.userAgent", "STRING"),
        "text_payload": _sink_field(cols, "textPayload", "STRING"),
        **{f"j_{k.lower()}": _sink_field(cols, f"jsonPayload.{k}", "STRING")
           for k in (*_JSON_MESSAGE_KEYS, "severity", "level")},
        "p_method": _sink_field(cols, f"{audit}.methodName", "STRING"),
        "p_principal": _sink_field(cols, f"{audit}.authenticationInfo.principalEmail", "STRING"),
        "p_has_status": "FALSE" if status is None else f"{status} IS NOT NULL",
        "p_status_code": _sink_field(cols, f"{audit}.status.code", "STRING"),
        "p_status_message": _sink_field(cols, f"{audit}.status.message", "STRING"),
        "p_resource_name": _sink_field(cols, f"{audit}.resourceName", "STRING"),
        "p_latest_revision": f"JSON_VALUE({response}, '$.status.latestCreatedRevisionName')",
    }
    select = ", ".join(f"{values[name]} AS {name}" for name in _RAW_COLUMNS)
    conds = _time_where(values["timestamp"], since, until)
    source = _quoted(table.name + "*") if table.sharded else _quoted(table.name)
    if table.sharded:
        conds = _shard_suffix(since, until) + conds
    return f"SELECT {select}\n  FROM {source}{_where(conds)}"


def sink_view(tables: Sequence[SinkTable], *, dedupe: bool = True, since: datetime | None = None,
              until: datetime | None = None) -> str:
    """GoogleSQL for the canonical entries of a classic log sink's tables (one per log),
    `since <= timestamp < until` when given (and, for date-sharded tables, only the shards of
    those days).

    >>> t = SinkTable("p.d.run_googleapis_com_stdout_", {"timestamp": "TIMESTAMP"}, sharded=True)
    >>> "FROM `p.d.run_googleapis_com_stdout_*`" in sink_view([t])
    True
    """
    if not tables:
        raise UsageError("a sink view needs at least one table", hint="list the sink dataset's log tables")
    raw = "\n  UNION ALL\n  ".join(_sink_select(t, since, until) for t in tables)
    return _entries_sql(raw, dedupe)


__all__ = ["CANONICAL_COLUMNS", "SinkTable", "all_logs_view", "sink_view"]
