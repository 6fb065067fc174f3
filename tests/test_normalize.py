"""The canonical entry table: every field lands in the right column with the right type."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logaudit.normalize import normalize_batch, normalize_entry, parse_timestamps
from logaudit.schema import ENTRY_COLUMNS, ENTRY_SCHEMA


def ns(text: str) -> int:
    return pd.Timestamp(text).value


def test_request_log_lands_in_http_columns(reference_entries):
    row = normalize_entry(reference_entries[0], source="samples.json")
    assert row["timestamp"].value == ns("2026-11-28T10:00:01.123456789Z")
    assert row["receive_timestamp"].value == ns("2026-11-28T10:00:01.456789012Z")
    assert row["log_name"] == "projects/my-project/logs/run.googleapis.com%2Frequests"
    assert row["log_id"] == "run.googleapis.com/requests"
    assert row["insert_id"] == "6745f0a1000e2b3c4d5e6f70"
    assert (row["severity"], row["severity_num"], row["effective_severity"]) == ("INFO", 200, "INFO")
    assert (row["resource_type"], row["project_id"], row["service"], row["revision"], row["configuration"],
            row["location"]) == ("cloud_run_revision", "my-project", "hello", "hello-00007-xyz", "hello", "us-central1")
    assert row["instance_id"].startswith("0069c7a988a1") and len(row["instance_id"]) == 74
    assert row["trace"] == "projects/my-project/traces/4bf92f3577b34da6a3ce929d0e0e4736"
    assert row["span_id"] == "00f067aa0ba902b7"
    assert row["trace_sampled"] is True
    assert row["http_method"] == "GET"
    assert row["http_url"] == "https://hello-abc123xyz-uc.a.run.app/api/items?id=42"
    assert row["http_path"] == "/api/items"
    assert row["http_status"] == 200
    assert row["http_latency_ms"] == pytest.approx(123.456789, abs=1e-9)
    assert (row["http_request_size"], row["http_response_size"]) == (512, 1543)
    assert row["http_user_agent"] == "Mozilla/5.0 (X11; Linux x86_64) curl/8.5.0"
    assert (row["http_remote_ip"], row["http_server_ip"], row["http_protocol"]) == ("203.0.113.7", "216.239.32.53", "HTTP/1.1")
    # a request log has no payload: nothing is invented
    assert (row["message"], row["payload_type"], row["payload_json"], row["payload_text"]) == (None, None, None, None)
    assert json.loads(row["labels_json"]) == reference_entries[0]["labels"]
    assert (row["source"], row["source_position"]) == ("samples.json", 1)


def test_text_payload_without_severity(reference_entries):
    row = normalize_entry(reference_entries[1])
    assert row["timestamp"].value == ns("2026-11-28T10:00:01.2Z")
    assert row["severity"] is None and row["severity_num"] is None
    assert row["effective_severity"] == "DEFAULT" and row["effective_severity_num"] == 0
    assert row["message"] == row["payload_text"] == "GET /api/items?id=42 -> loaded 17 items from cache"
    assert row["payload_type"] == "text"
    assert row["http_status"] is None and row["trace"] is None


def test_json_payload_message_and_source_location(reference_entries):
    row = normalize_entry(reference_entries[2])
    assert row["message"] == "slow upstream call to inventory service"
    assert row["payload_type"] == "json"
    assert json.loads(row["payload_json"]) == reference_entries[2]["jsonPayload"]
    assert row["receive_timestamp"].value == ns("2026-11-28T10:00:01.600000001Z")
    assert (row["source_location_file"], row["source_location_line"], row["source_location_function"]) == (
        "/app/inventory.py", 88, "fetch_items")
    assert json.loads(row["labels_json"]) == {"instanceId": reference_entries[2]["labels"]["instanceId"], "env": "prod"}


def test_traceback_keeps_lines(reference_entries):
    row = normalize_entry(reference_entries[3])
    assert row["message"].splitlines() == reference_entries[3]["textPayload"].splitlines()
    assert row["effective_severity"] == "ERROR"
    assert row["timestamp"].value == ns("2026-11-28T10:00:02.000001Z")


def test_audit_entries_yield_method_principal_status(reference_entries):
    v1 = normalize_entry(reference_entries[4])
    assert v1["audit_method"] == "google.cloud.run.v1.Services.ReplaceService"
    assert v1["audit_principal"] == "deployer@my-project.iam.gserviceaccount.com"
    assert v1["audit_status_code"] == 0
    assert v1["audit_resource_name"] == "namespaces/my-project/services/hello"
    assert v1["audit_revision"] == "hello-00007-xyz"
    assert v1["revision"] is None and v1["configuration"] is None  # empty labels are null, not ""
    assert v1["message"] == "google.cloud.run.v1.Services.ReplaceService by deployer@my-project.iam.gserviceaccount.com: OK"
    assert v1["payload_type"] == "proto"
    assert json.loads(v1["payload_json"])["methodName"] == "google.cloud.run.v1.Services.ReplaceService"
    v2 = normalize_entry(reference_entries[5])
    assert v2["audit_method"] == "google.cloud.run.v2.Services.UpdateService"
    assert v2["audit_principal"] == "ci@my-project.iam.gserviceaccount.com"
    assert v2["audit_revision"] is None
    assert v2["operation_id"] == "projects/my-project/locations/us-central1/operations/1b2c3d4e-5f60-4718-9a0b-1c2d3e4f5a6b"
    assert (v2["operation_first"], v2["operation_last"]) == (True, None)


def test_failed_audit_status_rendered():
    row = normalize_entry({
        "timestamp": "2025-09-10T02:18:34Z",
        "protoPayload": {"methodName": "google.cloud.run.v1.Services.ReplaceService",
                         "authenticationInfo": {"principalEmail": "a@b.c"},
                         "status": {"code": 7, "message": "Permission denied"}},
    })
    assert row["audit_status_code"] == 7
    assert row["message"] == "google.cloud.run.v1.Services.ReplaceService by a@b.c: status 7 Permission denied"


def test_rows_match_the_one_schema(reference_entries):
    table, rejects = normalize_batch(
        pa.array([json.dumps(e) for e in reference_entries]), pa.array(range(1, 7), pa.int64()), "s")
    assert rejects == []
    assert table.schema == ENTRY_SCHEMA
    assert table.column_names == ENTRY_COLUMNS
    assert table["source_position"].to_pylist() == [1, 2, 3, 4, 5, 6]


@pytest.mark.parametrize(
    ("text", "severity", "status", "expected"),
    [
        ("[2025-09-16 00:42:53 +0000] [11] [ERROR] Worker failed to boot.", None, None, "ERROR"),
        ("[2025-09-16 00:42:53 +0000] [1] [INFO] Starting gunicorn 23.0.0", None, None, "INFO"),
        ("2025-09-07 13:35:00 - auth - WARNING - token about to expire", None, None, "WARNING"),
        ("2025-09-07 13:35:00.123 | ERROR    | app.agents:run:88 - timed out", None, None, "ERROR"),
        ("2025-09-07 13:35:00.123 | \x1b[31mERROR\x1b[0m    | app - boom", None, None, "ERROR"),
        ("Traceback (most recent call last):\n  File \"x.py\", line 1", None, None, "ERROR"),
        ("CRITICAL: database unreachable", "DEFAULT", None, "CRITICAL"),
        ("ERROR: cannot connect", None, None, "ERROR"),
        ("WARN: slow", None, None, "WARNING"),
        ("FATAL: out of memory", None, None, "CRITICAL"),
        ("all good", None, None, "DEFAULT"),
        ("an error happened somewhere", None, None, "DEFAULT"),  # the word alone is not a level
        ("[ERROR] but the app said INFO", "INFO", None, "INFO"),  # a given severity wins
        (None, None, 503, "ERROR"),
        (None, None, 404, "WARNING"),
        (None, None, 200, "DEFAULT"),
        (None, "DEFAULT", 500, "ERROR"),
        ("The request failed because either the HTTP response was malformed", None, 503, "ERROR"),
    ],
)
def test_effective_severity(text, severity, status, expected):
    entry = {"timestamp": "2025-09-10T02:18:34Z", "logName": "projects/p/logs/run.googleapis.com%2Fstderr"}
    if text is not None:
        entry["textPayload"] = text
    if severity:
        entry["severity"] = severity
    if status:
        entry["httpRequest"] = {"status": status, "requestUrl": "https://x/y"}
    assert normalize_entry(entry)["effective_severity"] == expected


def test_ansi_codes_stripped_from_message_but_kept_in_payload():
    raw = "\x1b[1m\x1b[31mERROR\x1b[0m connection lost"
    row = normalize_entry({"timestamp": "2025-09-10T02:18:34Z", "textPayload": raw})
    assert row["message"] == "ERROR connection lost"
    assert row["payload_text"] == raw


def test_json_payload_message_fallbacks():
    base = {"timestamp": "2025-09-10T02:18:34Z"}
    assert normalize_entry(base | {"jsonPayload": {"msg": "m1"}})["message"] == "m1"
    assert normalize_entry(base | {"jsonPayload": {"event": "e1", "level": "info"}})["message"] == "e1"
    assert normalize_entry(base | {"jsonPayload": {"other": 1}})["message"] is None


def test_timestamp_falls_back_to_receive_timestamp():
    row = normalize_entry({"receiveTimestamp": "2025-09-10T02:18:34.123456789Z", "logName": "x"})
    assert row["timestamp"].value == row["receive_timestamp"].value == ns("2025-09-10T02:18:34.123456789Z")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-09-10T02:18:34Z", "2025-09-10T02:18:34Z"),
        ("2025-09-10T02:18:34.619Z", "2025-09-10T02:18:34.619Z"),
        ("2025-09-10T02:18:34.619410Z", "2025-09-10T02:18:34.619410Z"),
        ("2025-09-10T02:18:34.619410123Z", "2025-09-10T02:18:34.619410123Z"),
        ("2025-09-10T02:18:34.5Z", "2025-09-10T02:18:34.500Z"),
        ("2025-09-10T04:18:34.619410123+02:00", "2025-09-10T02:18:34.619410123Z"),
        ("2025-09-09T21:48:34-04:30", "2025-09-10T02:18:34Z"),
        ("2025-09-10T02:18:34+00:00", "2025-09-10T02:18:34Z"),
        ("2025-09-10 02:18:34.1z", "2025-09-10T02:18:34.100Z"),
    ],
)
def test_timestamp_shapes_parse_exactly(text, expected):
    assert parse_timestamps([text]) == [ns(expected)]


@pytest.mark.parametrize(
    "text",
    ["", "yesterday", "2025-09-10", "2025-09-10T02:18:34", "2025-09-10T02:18:34.1234567891Z",
     "2025-02-30T00:00:00Z", "2025-09-10T25:00:00Z", "2025-09-10T02:18:34.Z", "2025-09-10T02:18:34+2:00"],
)
def test_bad_timestamps_are_none(text):
    assert parse_timestamps([text]) == [None]


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@settings(max_examples=300, deadline=None)
@given(
    moment=st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1)),
    nanos=st.integers(0, 999_999_999),
    digits=st.sampled_from([0, 1, 3, 6, 9]),
    offset_min=st.integers(-14 * 60, 14 * 60),
    zulu=st.booleans(),
)
def test_timestamp_parsing_property(moment, nanos, digits, offset_min, zulu):
    """Any RFC 3339 rendering of an instant parses to that instant, to the nanosecond."""
    frac = str(nanos).rjust(9, "0")[:digits]
    kept_ns = int(frac.ljust(9, "0")) if digits else 0
    if zulu:
        offset_min = 0
    local = moment.replace(microsecond=0)
    zone = "Z" if zulu else f"{'+' if offset_min >= 0 else '-'}{abs(offset_min) // 60:02d}:{abs(offset_min) % 60:02d}"
    text = local.strftime("%Y-%m-%dT%H:%M:%S") + (f".{frac}" if digits else "") + zone
    local_utc = local.replace(tzinfo=UTC)
    expected = (int((local_utc - _EPOCH).total_seconds()) - offset_min * 60) * 1_000_000_000 + kept_ns
    assert parse_timestamps([text]) == [expected]


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
_entry_keys = st.sampled_from([
    "logName", "timestamp", "receiveTimestamp", "severity", "insertId", "resource", "httpRequest", "labels",
    "textPayload", "jsonPayload", "protoPayload", "trace", "operation", "sourceLocation", "traceSampled",
])
_ts_values = st.sampled_from(["2025-09-10T02:18:34Z", "2025-09-10T02:18:34.123456789+01:00", "bad", ""]) | _json


@settings(max_examples=200, deadline=None)
@given(st.lists(st.dictionaries(_entry_keys, _json | _ts_values, max_size=8) | _json, min_size=1, max_size=12))
def test_normalization_never_raises_and_accounts_for_every_input(values):
    """Any JSON value becomes exactly one row or one reject with a reason: never both, never neither."""
    lines = pa.array([json.dumps(v) for v in values])
    positions = pa.array(range(1, len(values) + 1), pa.int64())
    table, rejects = normalize_batch(lines, positions, "prop")
    kept = table["source_position"].to_pylist()
    rejected = [p for p, _ in rejects]
    assert sorted(kept + rejected) == list(range(1, len(values) + 1))
    assert all(reason for _, reason in rejects)
    assert table.schema == ENTRY_SCHEMA
    assert table["timestamp"].null_count == 0


@pytest.mark.parametrize(("latency", "expected"), [
    ("0.25s", 250.0), ("1.5s", 1500.0), ("0s", 0.0),
    ("NaNs", None), ("infs", None), ("-infs", None), ("1e400s", None), ("abc", None), (None, None),
])
def test_latency_is_finite_milliseconds_or_null(latency, expected):
    entry = {"logName": "projects/p/logs/run.googleapis.com%2Frequests", "timestamp": "2026-11-28T10:00:00Z",
             "insertId": "a", "resource": {"type": "cloud_run_revision", "labels": {"service_name": "s"}},
             "httpRequest": {"status": 200, "latency": latency}}
    assert normalize_entry(entry)["http_latency_ms"] == expected


def test_a_nan_latency_does_not_break_the_summary(tmp_path):
    from logaudit.query import Audit
    from logaudit.sample import SampleConfig, SampleGenerator
    from logaudit.store import Store

    entries = list(SampleGenerator(SampleConfig(entries=300)))
    bad = next(e for e in entries if "latency" in e.get("httpRequest", {}))
    entries.append(dict(bad, insertId="nan-latency", httpRequest=dict(bad["httpRequest"], latency="NaNs")))
    store = Store(tmp_path / "store")
    store.ingest_entries(entries, "nan")
    summary = Audit(store).summary()
    assert summary["entries"] == 301
    assert all(r["latency_ms"]["p50"] is not None for r in summary["revisions"] if r["requests"])
