"""The canonical entry table: every field lands in the right column with the right type."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from oracles import (
    LEVEL_NAME,
    STORE_MAX_NS,
    STORE_MIN_NS,
    STORE_RANGE,
    boundary_texts,
    latency_values,
    oracle_latency_ms,
    oracle_rfc3339,
    oracle_severity,
    rfc3339_texts,
    severity_text,
    severity_values,
)

from logaudit.store.normalize import content_id, normalize_batch, normalize_entry, parse_timestamps
from logaudit.store.schema import ENTRY_COLUMNS, ENTRY_SCHEMA


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
    from logaudit.analysis.audit import Audit
    from logaudit.sources.sample import SampleConfig, SampleGenerator
    from logaudit.store.store import Store

    entries = list(SampleGenerator(SampleConfig(entries=300)))
    bad = next(e for e in entries if "latency" in e.get("httpRequest", {}))
    entries.append(dict(bad, insertId="nan-latency", httpRequest=dict(bad["httpRequest"], latency="NaNs")))
    store = Store(tmp_path / "store")
    store.ingest_entries(entries, "nan")
    summary = Audit(store).summary()
    assert summary["entries"] == 301
    assert all(r["latency_ms"]["p50"] is not None for r in summary["revisions"] if r["requests"])


# ---------------------------------------------------------------------------- timestamps: strict, exact reasons
def _normalize_lines(values: list) -> tuple[dict[int, dict], dict[int, str], list[tuple[int, str]]]:
    """Normalize JSON values (position = index + 1): rows and rejects by position, and notes."""
    notes: list[tuple[int, str]] = []
    table, rejects = normalize_batch(pa.array([json.dumps(v) for v in values]),
                                     pa.array(range(1, len(values) + 1), pa.int64()), "t", notes=notes)
    rows = {r["source_position"]: r for r in table.to_pylist()}
    return rows, dict(rejects), notes


def _expected_timestamp(text: str) -> tuple[int | None, str | None]:
    """(epoch ns, None) when the store takes `text`, else (None, the reject reason)."""
    kind, value = oracle_rfc3339(text)
    quoted = json.dumps(text, ensure_ascii=False)
    if kind == "shape":
        return None, f"timestamp {quoted} is not an RFC 3339 time"
    if kind == "invalid":
        return None, f"timestamp {quoted} is not a valid time: {value}"
    if not STORE_MIN_NS <= value <= STORE_MAX_NS:
        return None, (f"timestamp {quoted} is outside the range of times the store can hold ({STORE_RANGE}: "
                      "nanoseconds since 1970 in 64 bits)")
    return value, None


@pytest.mark.parametrize("text", [
    "2025-09-10T24:00:00Z",  # was read as the next midnight
    "2025-09-10T02:18:34+99:99",  # was shifted by 99 h 99 min
    "2025-09-10T02:18:34-24:00",
    "0001-01-01T00:00:00Z",  # was "not an RFC 3339 time"
    "9999-12-31T23:59:59Z",
    "2025-09-10T23:59:60Z",  # not the last day of a month
    "1677-09-21T00:12:43.145224193Z",  # one nanosecond before the store's first instant
    "1677-09-21T00:12:43.145224192Z",  # the lowest int64: made the whole batch fail
    "2262-04-11T23:47:16.854775807Z",  # the highest int64, which DuckDB reads as infinity
    "2025-09-10T02:18: 4Z",  # DuckDB's cast skips the space: was read as 02:18:00
    "2025-09-10T02:18:34. 123Z",
    " 2025-09-10T02:18:34Z",
    "2025-02-29T00:00:00Z",
])
def test_timestamps_are_rejected_with_the_precise_reason(text):
    rows, rejects, _ = _normalize_lines([{"logName": "projects/p/logs/x", "timestamp": text, "textPayload": "a"}])
    expected_ns, reason = _expected_timestamp(text)
    assert expected_ns is None
    assert (rows, rejects) == ({}, {1: reason})
    assert parse_timestamps([text]) == [None]


def test_reject_reasons_word_for_word():
    _, rejects, _ = _normalize_lines([
        {"logName": "x", "timestamp": "2025-09-10T24:00:00Z"},
        {"logName": "x", "timestamp": "2025-09-10T02:18:34+99:99"},
        {"logName": "x", "timestamp": "0001-01-01T00:00:00Z"},
        {"logName": "x", "timestamp": "2025-09-10T23:59:60Z"},
        {"logName": "x", "timestamp": "2025-09-10T02:18:34Z", "receiveTimestamp": "2025-09-10T02:18:34+24:00"},
    ])
    assert rejects == {
        1: 'timestamp "2025-09-10T24:00:00Z" is not a valid time: hour 24 is not in 00..23',
        2: 'timestamp "2025-09-10T02:18:34+99:99" is not a valid time: offset +99:99 is out of range '
           '(hours 00..23, minutes 00..59)',
        3: 'timestamp "0001-01-01T00:00:00Z" is outside the range of times the store can hold '
           '(1677-09-21T00:12:43.145224194Z to 2262-04-11T23:47:16.854775806Z: nanoseconds since 1970 in 64 bits)',
        4: 'timestamp "2025-09-10T23:59:60Z" is not a valid time: second 60 (a leap second) is only possible at '
           '23:59:60 UTC on the last day of a month',
        5: 'receiveTimestamp "2025-09-10T02:18:34+24:00" is not a valid time: offset +24:00 is out of range '
           '(hours 00..23, minutes 00..59)',
    }


@pytest.mark.parametrize(("text", "expected"), [
    ("2016-12-31T23:59:60Z", "2017-01-01T00:00:00Z"),  # a leap second: the instant after 23:59:59
    ("2016-12-31T23:59:60.25Z", "2017-01-01T00:00:00.25Z"),
    ("2017-01-01T05:29:60+05:30", "2017-01-01T00:00:00Z"),
    ("1677-09-21T00:12:43.145224194Z", "1677-09-21T00:12:43.145224194Z"),  # the store's first instant
    ("2262-04-11T23:47:16.854775806Z", "2262-04-11T23:47:16.854775806Z"),  # and its last
    ("2262-04-12T00:47:16.854775806+01:00", "2262-04-11T23:47:16.854775806Z"),
    ("1677-09-20T23:12:43.145224194-01:00", "1677-09-21T00:12:43.145224194Z"),
    ("2025-09-10T02:18:34.123456789+00:00", "2025-09-10T02:18:34.123456789Z"),
])
def test_edge_timestamps_are_kept_exactly(text, expected):
    rows, rejects, _ = _normalize_lines([{"logName": "x", "timestamp": text}])
    want = oracle_rfc3339(expected)[1]
    assert rejects == {}
    assert rows[1]["timestamp"].value == want
    assert parse_timestamps([text]) == [want]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(rfc3339_texts, boundary_texts()), min_size=1, max_size=60))
def test_timestamps_agree_with_an_independent_reading(texts):
    """Every text is kept with the oracle's instant, or rejected with the oracle's reason (both
    the common-shape fast path and the general path; receiveTimestamp the same way)."""
    entries = [{"logName": "x", "timestamp": t} for t in texts] + [{"logName": "x", "receiveTimestamp": t} for t in texts]
    rows, rejects, _ = _normalize_lines(entries)
    for pos, text in enumerate(texts, start=1):
        expected_ns, reason = _expected_timestamp(text)
        if expected_ns is None:
            assert (pos not in rows, rejects.get(pos)) == (True, reason), text
            assert rejects.get(pos + len(texts)) == "receiveTimestamp" + reason.removeprefix("timestamp"), text
        else:
            assert (pos not in rejects, rows[pos]["timestamp"].value) == (True, expected_ns), text
            assert rows[pos + len(texts)]["receive_timestamp"].value == expected_ns, text
    assert parse_timestamps(texts) == [_expected_timestamp(t)[0] for t in texts]


# ---------------------------------------------------------------------------- severity
@pytest.mark.parametrize(("given", "num", "effective"), [
    ("error", 500, "ERROR"), ("Error", 500, "ERROR"), ("WARN", 400, "WARNING"), ("warning", 400, "WARNING"),
    ("500", 500, "ERROR"), (500, 500, "ERROR"), (450, 400, "WARNING"), ("450", 400, "WARNING"),
    (" INFO\n", 200, "INFO"), ("Information", 200, "INFO"), ("fatal", 600, "CRITICAL"), ("ERR", 500, "ERROR"),
    ("crit", 600, "CRITICAL"), ("emerg", 800, "EMERGENCY"), ("e", 500, "ERROR"), ("W", 400, "WARNING"),
    ("0", 0, "DEFAULT"), (99, 0, "DEFAULT"), (850, 800, "EMERGENCY"), (1000, 800, "EMERGENCY"),
    ("99999999999999999999", 800, "EMERGENCY"), ("0000500", 500, "ERROR"), ("DEFAULT", 0, "DEFAULT"),
    ("verbose", 100, "DEBUG"), ("trace", 100, "DEBUG"), ("severe", 500, "ERROR"), ("panic", 800, "EMERGENCY"),
    ("loud", None, "DEFAULT"), ("-100", None, "DEFAULT"), (500.0, None, "DEFAULT"), ("5 00", None, "DEFAULT"),
    ("\u0131nfo", None, "DEFAULT"), (True, None, "DEFAULT"),
])
def test_severity_spellings(given, num, effective):
    rows, _, notes = _normalize_lines([{"logName": "x", "timestamp": "2025-09-10T02:18:34Z", "severity": given}])
    row = rows[1]
    text = severity_text(given) if not isinstance(given, (bool, float)) else json.dumps(given)
    assert (row["severity"], row["severity_num"], row["effective_severity"]) == (text, num, effective)
    expected_notes = [] if num is not None else [
        (1, f"severity {json.dumps(text, ensure_ascii=False)} is not a LogSeverity name, alias or number "
            "(see docs/entry-table.md); read as no severity")]
    assert notes == expected_notes


@settings(max_examples=100, deadline=None)
@given(st.lists(severity_values, min_size=1, max_size=50))
def test_severity_agrees_with_the_documented_table(values):
    entries = [{"logName": "x", "timestamp": "2025-09-10T02:18:34Z"} | ({} if v is None else {"severity": v})
               for v in values]
    rows, rejects, notes = _normalize_lines(entries)
    assert rejects == {}
    noted = {pos for pos, note in notes if note.startswith("severity ")}
    for pos, value in enumerate(values, start=1):
        level = oracle_severity(value)
        assert rows[pos]["severity_num"] == level, value
        assert rows[pos]["effective_severity"] == LEVEL_NAME[level or 0], value
        assert (pos in noted) == (value is not None and level is None), value


def test_payload_severity_or_level_counts_when_the_entry_has_none():
    base = {"logName": "projects/p/logs/run.googleapis.com%2Fstdout", "timestamp": "2025-09-10T02:18:34Z"}
    rows, _, notes = _normalize_lines([
        base | {"jsonPayload": {"message": "db down", "severity": "error"}},
        base | {"jsonPayload": {"message": "slow", "level": "warn"}},
        base | {"jsonPayload": {"message": "x", "level": 500}},
        base | {"severity": "DEFAULT", "jsonPayload": {"message": "x", "level": "CRITICAL"}},
        base | {"severity": "INFO", "jsonPayload": {"message": "x", "level": "error"}},  # the entry's own wins
        base | {"jsonPayload": {"message": "x", "level": 30}},  # pino's 30 is no LogSeverity level
        base | {"jsonPayload": {"message": "[ERROR] boom", "level": "chatty"}},  # unreadable: the text decides
        base | {"jsonPayload": {"message": "x", "severity": "info", "level": "error"}},  # severity before level
    ])
    assert [rows[i]["effective_severity"] for i in range(1, 9)] == [
        "ERROR", "WARNING", "ERROR", "CRITICAL", "INFO", "DEFAULT", "ERROR", "INFO"]
    assert [rows[i]["severity"] for i in range(1, 9)] == [None, None, None, "DEFAULT", "INFO", None, None, None]
    assert notes == []  # the payload's own fields are the application's: not noted


def test_lowercase_and_numeric_severities_count_as_errors(tmp_path):
    from logaudit.analysis.audit import Audit
    from logaudit.store.store import Store

    base = {"logName": "projects/p/logs/run.googleapis.com%2Fstdout", "insertId": "",
            "resource": {"type": "cloud_run_revision", "labels": {"service_name": "s", "revision_name": "s-00001-abc"}}}
    sevs = ["error", "ERROR", "500", 500, 550, "err", "WARN", "warning", 400, "info"]
    entries = [base | {"insertId": f"i{n}", "timestamp": f"2025-09-10T02:18:{n:02d}Z", "severity": s,
                       "textPayload": f"line {n}"} for n, s in enumerate(sevs)]
    store = Store(tmp_path / "store")
    assert store.ingest_entries(entries, "sev").new_rows == 10
    revisions = Audit(store).revisions()
    assert revisions[["revision", "entries", "errors"]].to_dict("records") == [
        {"revision": "s-00001-abc", "entries": 10, "errors": 6}]


# ---------------------------------------------------------------------------- latency
@pytest.mark.parametrize(("latency", "expected"), [
    ("0.001115s", 1.115),  # was 1.1150000000000002
    ("0.123456789s", 123.456789), ("1s", 1000.0), ("0s", 0.0), ("1.5s", 1500.0),
    ({"seconds": 1, "nanos": 500000000}, 1500.0), ({"seconds": "2", "nanos": "5"}, 2000.000005),
    ({"nanos": 1115000}, 1.115), ({"seconds": 3}, 3000.0), ({}, 0.0), ({"seconds": None, "nanos": 7000000}, 7.0),
    ("315576000000s", 315576000000000.0), ({"seconds": 315576000000, "nanos": 999999999}, 315576000000999.999999),
])
def test_latency_is_read_exactly(latency, expected):
    rows, _, notes = _normalize_lines([{"timestamp": "2025-09-10T02:18:34Z", "httpRequest": {"latency": latency}}])
    assert rows[1]["http_latency_ms"] == expected
    assert notes == []


@pytest.mark.parametrize("latency", [
    "abc", "-1s", "1.5", "1e3s", ".5s", "1.s", "1.1234567891s", "315576000001s", " 1s", "{}", 0.5, 12, True,
    {"seconds": -1}, {"seconds": 1.5}, {"seconds": 1, "nanos": 1000000000}, {"seconds": 1, "extra": 2},
    {"seconds": 315576000001}, ["1s"],
])
def test_unreadable_latency_is_null_with_a_note(latency):
    rows, rejects, notes = _normalize_lines([{"timestamp": "2025-09-10T02:18:34Z", "httpRequest": {"latency": latency}}])
    assert rejects == {} and rows[1]["http_latency_ms"] is None
    shown = json.dumps(latency, separators=(",", ":"))
    assert notes == [(1, f'httpRequest.latency {shown} is not a Duration ("0.123s", or {{"seconds": 0, "nanos": '
                         '123000000}) from 0 to 315576000000 s; stored as null')]


@settings(max_examples=100, deadline=None)
@given(st.lists(latency_values, min_size=1, max_size=50))
def test_latency_agrees_with_an_independent_reading(values):
    entries = [{"timestamp": "2025-09-10T02:18:34Z", "httpRequest": {"latency": v}} for v in values]
    rows, _, notes = _normalize_lines(entries)
    noted = {pos for pos, note in notes if note.startswith("httpRequest.latency ")}
    for pos, value in enumerate(values, start=1):
        expected = oracle_latency_ms(value)
        assert rows[pos]["http_latency_ms"] == expected, value
        assert (pos in noted) == (value is not None and expected is None), value


def test_other_unreadable_fields_are_noted():
    rows, _, notes = _normalize_lines([{
        "timestamp": "2025-09-10T02:18:34Z", "traceSampled": "yes", "operation": {"id": "o", "first": "maybe"},
        "sourceLocation": {"file": "a.py", "line": "forty"},
        "httpRequest": {"status": "OK", "requestSize": "1kB", "responseSize": -1.5, "latency": "1s"}}])
    row = rows[1]
    assert (row["http_status"], row["http_request_size"], row["http_response_size"], row["trace_sampled"],
            row["operation_first"], row["source_location_line"], row["http_latency_ms"]) == (
        None, None, None, None, None, None, 1000.0)
    assert [n for _, n in notes] == [
        'httpRequest.requestSize "1kB" is not an integer; stored as null',
        'httpRequest.responseSize "-1.5" is not an integer; stored as null',
        'httpRequest.status "OK" is not an integer; stored as null',
        'operation.first "maybe" is not true or false; stored as null',
        'sourceLocation.line "forty" is not an integer; stored as null',
        'traceSampled "yes" is not true or false; stored as null',
    ]


# ---------------------------------------------------------------------------- real shapes
@pytest.mark.parametrize(("revision", "service"), [
    ("netra-backend-staging-00317-696", "netra-backend-staging"),
    ("hello-00007-xyz", "hello"),
    ("my-svc-v2-00001-abc", "my-svc-v2"),
    ("a-00001-abc", "a"),
    ("hello-100000-abc", "hello"),  # generations past 99999
    ("hello-blue", None),  # a custom revision suffix: the service cannot be told
    ("hello-0001-abc", None),
    ("hello-00001-abcd", None),
    ("Hello-00001-abc", None),
    ("00001-abc", None),
    ("-00001-abc", None),
    ("hello--00001-abc", None),  # a service name does not end with a dash
])
def test_service_from_the_revision_name_when_empty(revision, service):
    labels = {"project_id": "p", "service_name": "", "revision_name": revision, "location": "us-central1"}
    entry = {"timestamp": "2025-09-10T02:18:34Z", "resource": {"type": "cloud_run_revision", "labels": labels}}
    row = normalize_entry(entry)
    assert (row["service"], row["revision"]) == (service, revision)
    assert normalize_entry(entry | {"resource": {"type": "cloud_run_revision", "labels": labels | {
        "service_name": "given"}}})["service"] == "given"


def test_cloud_run_system_event_keeps_its_status_message():
    """Cloud Run system_event audit entries (shapes of public samples): with and without methodName."""
    labels = {"location": "us-central1", "revision_name": "", "service_name": "user-test", "project_id": "p",
              "configuration_name": ""}
    ready = {
        "protoPayload": {"@type": "type.googleapis.com/google.cloud.audit.AuditLog",
                         "status": {"message": "Ready condition status changed to True for Service user-test."},
                         "serviceName": "run.googleapis.com", "resourceName": "namespaces/p/services/user-test"},
        "insertId": "-xujmfncgd0", "resource": {"type": "cloud_run_revision", "labels": labels},
        "timestamp": "2021-05-25T07:12:50.482143Z", "severity": "INFO",
        "logName": "projects/p/logs/cloudaudit.googleapis.com%2Fsystem_event",
        "receiveTimestamp": "2021-05-25T07:12:51.131933174Z"}
    failed = ready | {"severity": "ERROR", "insertId": "8xxs9pcgp8", "resource": {
        "type": "cloud_run_revision", "labels": labels | {"service_name": "", "revision_name": "antidote-00005-rbd"}},
        "protoPayload": {"@type": "type.googleapis.com/google.cloud.audit.AuditLog",
                         "methodName": "/Services.ReplaceService",
                         "resourceName": "namespaces/p/revisions/antidote-00005-rbd",
                         "status": {"code": 9, "message": "Ready condition status changed to False for Revision "
                                    "antidote-00005-rbd with message: The user-provided container failed to start"}}}
    ready_row, failed_row = normalize_entry(ready), normalize_entry(failed)
    assert ready_row["message"] == "Ready condition status changed to True for Service user-test."
    assert (ready_row["service"], ready_row["payload_type"], ready_row["audit_method"]) == ("user-test", "proto", None)
    assert failed_row["message"] == (
        "/Services.ReplaceService by unknown principal: status 9 Ready condition status changed to False for "
        "Revision antidote-00005-rbd with message: The user-provided container failed to start")
    assert (failed_row["service"], failed_row["revision"], failed_row["effective_severity"]) == (
        "antidote", "antidote-00005-rbd", "ERROR")
    ok = failed | {"protoPayload": failed["protoPayload"] | {"status": {"message": "Ready condition status changed"}}}
    assert normalize_entry(ok)["message"] == "/Services.ReplaceService by unknown principal: Ready condition status changed"


def test_app_engine_request_log_fills_the_http_columns():
    entry = {
        "protoPayload": {
            "@type": "type.googleapis.com/google.appengine.logging.v1.RequestLog",
            "appId": "s~my-app", "versionId": "20250910t021800", "moduleId": "default", "requestId": "5f7a",
            "ip": "203.0.113.9", "startTime": "2025-09-10T02:18:34.000Z", "endTime": "2025-09-10T02:18:34.123Z",
            "latency": "0.123456s", "megaCycles": "12", "method": "POST", "resource": "/api/items?id=7",
            "httpVersion": "HTTP/1.1", "status": 502, "responseSize": "1543", "userAgent": "curl/8.5.0",
            "host": "my-app.appspot.com", "instanceIndex": -1, "finished": True,
            "line": [{"time": "2025-09-10T02:18:34.1Z", "severity": "ERROR", "logMessage": "upstream failed"}]},
        "httpRequest": {"status": 502},
        "resource": {"type": "gae_app", "labels": {"project_id": "my-app", "module_id": "default",
                                                   "version_id": "20250910t021800", "zone": "us16"}},
        "timestamp": "2025-09-10T02:18:34Z", "severity": "ERROR",
        "logName": "projects/my-app/logs/appengine.googleapis.com%2Frequest_log", "insertId": "5f7a-1",
        "receiveTimestamp": "2025-09-10T02:18:35.1Z"}
    row = normalize_entry(entry)
    assert {k: row[k] for k in ("http_method", "http_url", "http_path", "http_status", "http_latency_ms",
                                "http_user_agent", "http_remote_ip", "http_protocol", "http_response_size",
                                "http_request_size", "project_id", "service", "message")} == {
        "http_method": "POST", "http_url": "/api/items?id=7", "http_path": "/api/items", "http_status": 502,
        "http_latency_ms": 123.456, "http_user_agent": "curl/8.5.0", "http_remote_ip": "203.0.113.9",
        "http_protocol": "HTTP/1.1", "http_response_size": 1543, "http_request_size": None, "project_id": "my-app",
        "service": None, "message": None}
    bad = entry | {"protoPayload": entry["protoPayload"] | {"latency": "soon"}, "httpRequest": {}}
    rows, _, notes = _normalize_lines([bad])
    assert rows[1]["http_latency_ms"] is None and rows[1]["http_status"] == 502
    assert notes == [(1, 'protoPayload.latency "soon" is not a Duration ("0.123s", or {"seconds": 0, "nanos": '
                         '123000000}) from 0 to 315576000000 s; stored as null')]


def test_load_balancer_request_log_normalizes_fully():
    entry = {
        "insertId": "1l3g2k1f6ubxzo",
        "jsonPayload": {"@type": "type.googleapis.com/google.cloud.loadbalancing.type.LoadBalancerLogEntry",
                        "statusDetails": "failed_to_connect_to_backend", "backendTargetProjectNumber": "projects/123",
                        "remoteIp": "198.51.100.4"},
        "httpRequest": {"requestMethod": "GET", "requestUrl": "https://shop.example.com/cart?x=1", "requestSize": "76",
                        "status": 502, "responseSize": "326", "userAgent": "Mozilla/5.0", "remoteIp": "198.51.100.4",
                        "serverIp": "10.128.0.7", "latency": "0.030245s", "protocol": "HTTP/2.0", "cacheLookup": True},
        "resource": {"type": "http_load_balancer", "labels": {
            "project_id": "shop", "backend_service_name": "web", "forwarding_rule_name": "fr", "url_map_name": "um",
            "target_proxy_name": "tp", "zone": "global"}},
        "timestamp": "2025-09-10T02:18:34.567891Z", "severity": "WARNING", "logName": "projects/shop/logs/requests",
        "trace": "projects/shop/traces/8ab7", "receiveTimestamp": "2025-09-10T02:18:35.000000001Z",
        "spanId": "41ef3c"}
    row = normalize_entry(entry)
    assert {k: row[k] for k in ("log_id", "resource_type", "project_id", "service", "http_method", "http_url",
                                "http_path", "http_status", "http_latency_ms", "http_request_size",
                                "http_response_size", "http_user_agent", "http_remote_ip", "http_server_ip",
                                "http_protocol", "trace", "span_id", "message", "effective_severity",
                                "payload_type")} == {
        "log_id": "requests", "resource_type": "http_load_balancer", "project_id": "shop", "service": None,
        "http_method": "GET", "http_url": "https://shop.example.com/cart?x=1", "http_path": "/cart",
        "http_status": 502, "http_latency_ms": 30.245, "http_request_size": 76, "http_response_size": 326,
        "http_user_agent": "Mozilla/5.0", "http_remote_ip": "198.51.100.4", "http_server_ip": "10.128.0.7",
        "http_protocol": "HTTP/2.0", "trace": "projects/shop/traces/8ab7", "span_id": "41ef3c",
        "message": "failed_to_connect_to_backend", "effective_severity": "WARNING", "payload_type": "json"}


# ---------------------------------------------------------------------------- identity without insertId
def test_entries_without_insert_id_get_a_content_id():
    a = {"logName": "projects/p/logs/x", "timestamp": "2025-09-10T02:18:34Z", "textPayload": "one"}
    b = a | {"textPayload": "two"}
    rows, _, _ = _normalize_lines([a, b, a | {"insertId": ""}, a | {"insertId": "given"}])
    ids = [rows[i]["insert_id"] for i in (1, 2, 3, 4)]
    assert ids[0] == content_id(json.dumps(a)) and ids[0].startswith("sha256:") and len(ids[0]) == 71
    assert ids[0] != ids[1]
    assert ids[2] == content_id(json.dumps(a | {"insertId": ""}))
    assert ids[3] == "given"


def test_content_id_is_canonical():
    entry = {"logName": "projects/p/logs/x", "timestamp": "2025-09-10T02:18:34Z",
             "jsonPayload": {"b": [1, {"y": 2, "x": 1.5}], "a": "é"}}
    renderings = [
        json.dumps(entry), json.dumps(entry, indent=2), json.dumps(entry, sort_keys=True, separators=(",", ":")),
        json.dumps(dict(reversed(list(entry.items())))), json.dumps(entry, ensure_ascii=True),
        json.dumps(entry).replace("1.5", "1.50"),
    ]
    assert len({content_id(t) for t in renderings}) == 1
    assert content_id(json.dumps(entry | {"jsonPayload": {"a": "é", "b": [{"x": 1.5, "y": 2}, 1]}})) != content_id(
        renderings[0])  # list order is content
    assert content_id('{"a": NaN}') == content_id('{"a":NaN}')  # not JSON to orjson: the standard library reads it
