"""Property: for any severity text, payload level and message, the warehouse view reads the entry's
severity, effective severity and message as the local normaliser does."""

from __future__ import annotations

import pytest
from bq_tables import canonical_rows, differences, load_all_logs, load_sink
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from logaudit.core.db import connect
from logaudit.sources.severity import SEVERITY_ALIASES, SEVERITY_NUM
from logaudit.store.normalize import normalize_batch
from logaudit.store.schema import ENTRY_COLUMNS
from logaudit.warehouse.dialect import to_duckdb
from logaudit.warehouse.entry_view import CANONICAL_COLUMNS, all_logs_view, sink_view

_WORDS = [*SEVERITY_NUM, *SEVERITY_ALIASES, "WARN", "FATAL", "loud", ""]
_severity = st.one_of(
    st.none(), st.sampled_from(_WORDS),
    st.builds(lambda w, pre, post: pre + w.lower() + post, st.sampled_from(_WORDS), st.sampled_from(["", " ", "\t"]),
              st.sampled_from(["", " ", "\n"])),
    st.from_regex(r"[0-9]{1,5}", fullmatch=True))
_level_text = st.sampled_from(["[ERROR]", "[WARN]", " - CRITICAL - ", "| INFO |", "FATAL:", " NOTICE:",
                               "Traceback (most recent call last):", "\x1b[33mWARNING: x\x1b[0m", "error:", "DEBUG"])
_message = st.one_of(st.none(), st.text(max_size=30),
                     st.builds(lambda a, w, b: a + w + b, st.text(max_size=8), _level_text, st.text(max_size=8)))


@st.composite
def _entries(draw) -> list[dict]:
    out = []
    for i in range(draw(st.integers(1, 12))):
        e = {"logName": "projects/p/logs/run.googleapis.com%2Fstdout", "insertId": f"e{i}",
             "timestamp": f"2025-09-10T03:00:{i:02d}.5Z", "receiveTimestamp": "2025-09-10T03:01:00Z",
             "resource": {"type": "cloud_run_revision", "labels": {"service_name": "s", "revision_name": "s-00001-abc"}}}
        severity, message = draw(_severity), draw(_message)
        if severity is not None:
            e["severity"] = severity
        payload_level = draw(st.one_of(st.none(), _severity))
        if payload_level is not None or draw(st.booleans()):
            e["jsonPayload"] = {"message": message, **({"level": payload_level} if payload_level is not None else {})}
        elif message is not None:
            e["textPayload"] = message
        out.append(e)
    return out


@pytest.mark.slow
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_entries())
def test_severity_and_message_rules_agree_with_ingest(entries: list[dict]) -> None:
    import orjson
    import pyarrow as pa

    table, rejects = normalize_batch(pa.array([orjson.dumps(e).decode() for e in entries]),
                                     pa.array(range(1, len(entries) + 1), pa.int64()), "x")
    assert rejects == []
    assert table.column_names == ENTRY_COLUMNS
    con = connect()
    con.register("local_rows", table)
    want = canonical_rows(con, "local_rows")
    load_all_logs(con, "p.d._AllLogs", entries)
    tables = load_sink(con, "p.s", entries, sharded=False)
    for sql in (all_logs_view("p.d._AllLogs"), sink_view(tables)):
        got = canonical_rows(con, f"({to_duckdb(sql)})")
        assert differences(got, want) == {}
    assert len(CANONICAL_COLUMNS) == 26
