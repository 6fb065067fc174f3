"""The canonical entry table: one row per Cloud Logging LogEntry, one Arrow schema.

Every file, pull and query in logaudit speaks this schema. Columns a given entry does not
carry (a request log has no message, a stdout line has no httpRequest) are null, never invented.

>>> from logaudit.store.schema import ENTRY_SCHEMA
>>> ENTRY_SCHEMA.field("timestamp").type
TimestampType(timestamp[ns, tz=UTC])
"""

from __future__ import annotations

import pyarrow as pa

TS = pa.timestamp("ns", tz="UTC")

#: The instants a `timestamp[ns]` column holds: nanoseconds since 1970 in a signed 64-bit integer,
#: less the two extreme values DuckDB reserves for -infinity/infinity (pandas reads the lowest as
#: NaT): 1677-09-21T00:12:43.145224194Z to 2262-04-11T23:47:16.854775806Z.
MIN_TIMESTAMP_NS = -(2**63) + 2
MAX_TIMESTAMP_NS = 2**63 - 2

ENTRY_FIELDS: list[tuple[str, pa.DataType, str]] = [
    ("timestamp", TS, "When the event happened (LogEntry.timestamp; receiveTimestamp when absent). UTC, ns."),
    ("receive_timestamp", TS, "When Cloud Logging received the entry. UTC, ns."),
    ("log_name", pa.string(), "Full logName, URL-encoded as given (projects/P/logs/run.googleapis.com%2Fstdout)."),
    ("log_id", pa.string(), "Decoded log id (run.googleapis.com/stdout)."),
    ("insert_id", pa.string(), "LogEntry.insertId; for an entry without one, `sha256:` and the SHA-256 of its canonical JSON."),
    ("severity", pa.string(), "Severity as given (`error`, `WARN`, `500`); null when the entry has none."),
    ("severity_num", pa.int16(), "LogSeverity level of `severity` (DEFAULT 0 ... EMERGENCY 800; `warn` 400, `450` 400); null when absent/unrecognised."),
    ("effective_severity", pa.string(), "`severity`, or when missing/DEFAULT, the payload's `severity`/`level`, else the level a person reads in the entry."),
    ("effective_severity_num", pa.int16(), "Numeric value of `effective_severity`."),
    ("resource_type", pa.string(), "resource.type (cloud_run_revision, ...)."),
    ("project_id", pa.string(), "resource.labels.project_id, else the project in logName."),
    ("service", pa.string(), "resource.labels.service_name; when empty, the service in a Cloud Run revision name (SERVICE-NNNNN-xxx)."),
    ("revision", pa.string(), "resource.labels.revision_name (null when empty, e.g. audit entries)."),
    ("configuration", pa.string(), "resource.labels.configuration_name (null when empty)."),
    ("location", pa.string(), "resource.labels.location."),
    ("instance_id", pa.string(), "labels.instanceId (the Cloud Run instance)."),
    ("trace", pa.string(), "LogEntry.trace."),
    ("span_id", pa.string(), "LogEntry.spanId."),
    ("trace_sampled", pa.bool_(), "LogEntry.traceSampled."),
    ("http_method", pa.string(), "httpRequest.requestMethod (App Engine request logs: protoPayload.method)."),
    ("http_url", pa.string(), "httpRequest.requestUrl (App Engine: protoPayload.resource, the path and query)."),
    ("http_path", pa.string(), "Path part of http_url, without query string."),
    ("http_status", pa.int32(), "httpRequest.status (App Engine: protoPayload.status)."),
    ("http_latency_ms", pa.float64(), "httpRequest.latency (\"0.123s\" or {seconds, nanos}; App Engine: protoPayload.latency) in milliseconds."),
    ("http_user_agent", pa.string(), "httpRequest.userAgent (App Engine: protoPayload.userAgent)."),
    ("http_remote_ip", pa.string(), "httpRequest.remoteIp (App Engine: protoPayload.ip)."),
    ("http_server_ip", pa.string(), "httpRequest.serverIp."),
    ("http_protocol", pa.string(), "httpRequest.protocol (App Engine: protoPayload.httpVersion)."),
    ("http_request_size", pa.int64(), "httpRequest.requestSize (bytes)."),
    ("http_response_size", pa.int64(), "httpRequest.responseSize (bytes; App Engine: protoPayload.responseSize)."),
    ("message", pa.string(), "Human-readable text: textPayload, else jsonPayload.message/msg/..., else an audit rendering or protoPayload.status.message. ANSI codes stripped."),
    ("payload_type", pa.string(), "text | json | proto; null when the entry has no payload."),
    ("payload_json", pa.string(), "jsonPayload or protoPayload as JSON text."),
    ("payload_text", pa.string(), "textPayload exactly as given (ANSI codes kept)."),
    ("labels_json", pa.string(), "LogEntry.labels as JSON text."),
    ("audit_method", pa.string(), "protoPayload.methodName of audit entries."),
    ("audit_principal", pa.string(), "protoPayload.authenticationInfo.principalEmail."),
    ("audit_status_code", pa.int32(), "protoPayload.status.code (0 when the status is present and empty: OK)."),
    ("audit_resource_name", pa.string(), "protoPayload.resourceName."),
    ("audit_revision", pa.string(), "Revision an audit entry created (response.status.latestCreatedRevisionName)."),
    ("operation_id", pa.string(), "LogEntry.operation.id."),
    ("operation_first", pa.bool_(), "LogEntry.operation.first."),
    ("operation_last", pa.bool_(), "LogEntry.operation.last."),
    ("source_location_file", pa.string(), "sourceLocation.file."),
    ("source_location_line", pa.int64(), "sourceLocation.line."),
    ("source_location_function", pa.string(), "sourceLocation.function."),
    ("source", pa.string(), "Where the row came from: a file path, gs:// URI or pull:PROJECT."),
    ("source_position", pa.int64(), "Line number (JSON Lines, YAML) or element number (JSON array) in `source`."),
]

ENTRY_SCHEMA: pa.Schema = pa.schema([pa.field(name, typ) for name, typ, _ in ENTRY_FIELDS])
ENTRY_COLUMNS: list[str] = [name for name, _, _ in ENTRY_FIELDS]
#: Columns holding text that patterns may match against.
TEXT_COLUMNS: frozenset[str] = frozenset(
    name for name, typ, _ in ENTRY_FIELDS if pa.types.is_string(typ)
)
#: Low-cardinality columns entry files store dictionary-encoded (the rest -- ids, payloads -- only
#: cost time). Parquet falls back to plain pages on its own when a column turns out to vary a lot.
DICTIONARY_COLUMNS: tuple[str, ...] = (
    "log_name", "log_id", "severity", "effective_severity", "resource_type", "project_id", "service", "revision",
    "configuration", "location", "http_method", "http_protocol", "http_path", "payload_type", "source",
    "audit_method", "http_status", "severity_num", "effective_severity_num")
#: Entries are the same entry when these agree (Cloud Logging's own identity).
DEDUP_KEY: tuple[str, str, str] = ("log_name", "insert_id", "timestamp")


def schema_markdown() -> str:
    """The entry table as a Markdown table (used to keep docs/entry-table.md honest)."""
    rows = ["| column | type | meaning |", "|---|---|---|"]
    rows += [f"| `{n}` | `{t}` | {d} |" for n, t, d in ENTRY_FIELDS]
    return "\n".join(rows) + "\n"
