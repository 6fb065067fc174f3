"""The `_AllLogs` entry view through the official BigQuery client, against bqemulator: rows
inserted with `insert_rows_json`, the view run as a query job, the result read as Arrow, equal to
the local store's entries for the same input. It proves the client, job and type path; BigQuery's
own semantics are the DuckDB parity tests' (test_entry_view_parity.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa
import pytest
from bq_emulator import CALL_TIMEOUT, client, emulator_python, retry, running_emulator
from bq_tables import all_logs_rows
from test_entry_view_parity import hostile_entries

from logaudit.core.db import connect, sql_list
from logaudit.sources.sample import SampleConfig, sample_entries
from logaudit.store.store import Store
from logaudit.warehouse.entry_view import CANONICAL_COLUMNS, all_logs_view

# starts a subprocess emulator and loads 631 entries into it (about 10 s)
pytestmark = pytest.mark.slow

TABLE = "p.d._AllLogs"
#: the columns the audit leans on most, named in failure messages first; every canonical column is compared
KEY_COLUMNS = ("timestamp", "log_name", "insert_id", "effective_severity", "service", "revision", "http_status",
               "http_latency_ms", "message")
COLUMNS = (*KEY_COLUMNS, *(c for c in CANONICAL_COLUMNS if c not in KEY_COLUMNS))
DUPLICATED = 25
ENTRIES = 600 + 31


@pytest.fixture(scope="module")
def entries() -> list[dict]:
    """The sample generator's entries and the hostile ones of the DuckDB parity tests."""
    sample, _ = sample_entries(SampleConfig(entries=600))
    return sample + hostile_entries()


@pytest.fixture(scope="module")
def bigquery(tmp_path_factory: pytest.TempPathFactory, entries: list[dict]):
    """The official client on an emulator holding `p.d._AllLogs`: the entries, then the first
    DUPLICATED of them again (a later receive_timestamp: what a retried write leaves)."""
    from google.cloud import bigquery as bq

    python = emulator_python()
    with running_emulator(python, tmp_path_factory.mktemp("bqemulator")) as emulator:
        bqc = client(emulator)
        bqc.create_dataset("p.d", retry=retry(), timeout=CALL_TIMEOUT)
        table = bqc.create_table(bq.Table(TABLE, schema=_all_logs_schema(bq)), retry=retry(), timeout=CALL_TIMEOUT)
        rows = [_json_row(r) for r in all_logs_rows(entries)]
        again = [{**r, "receive_timestamp": "2030-01-01T00:00:00Z"} for r in rows[:DUPLICATED]]
        for start in range(0, len(rows), 200):
            assert bqc.insert_rows_json(table, rows[start:start + 200], retry=retry(), timeout=CALL_TIMEOUT) == []
        assert bqc.insert_rows_json(table, again, retry=retry(), timeout=CALL_TIMEOUT) == []
        yield bqc
        bqc.close()


def _all_logs_schema(bq) -> list:
    """`_AllLogs`'s columns as Log Analytics types them (docs/bigquery.md): JSON payloads and labels, RECORDs."""
    f = bq.SchemaField
    http = [f(n, "STRING") for n in ("request_method", "request_url")] + [
        f("request_size", "INT64"), f("status", "INT64"), f("response_size", "INT64")] + [
        f(n, "STRING") for n in ("user_agent", "remote_ip", "server_ip", "referer", "protocol")] + [
        f("latency", "RECORD", fields=[f("seconds", "INT64"), f("nanos", "INT64")])]
    return [f("timestamp", "TIMESTAMP"), f("receive_timestamp", "TIMESTAMP"),
            *(f(n, "STRING") for n in ("log_name", "log_id", "insert_id", "trace", "span_id")),
            f("trace_sampled", "BOOL"), f("severity", "STRING"), f("severity_number", "INT64"),
            f("resource", "RECORD", fields=[f("type", "STRING"), f("labels", "JSON")]),
            f("labels", "JSON"), f("json_payload", "JSON"), f("proto_payload", "JSON"), f("text_payload", "STRING"),
            f("http_request", "RECORD", fields=http)]


def _json_row(row: dict) -> dict:
    """A `bq_tables.all_logs_rows` row for `insert_rows_json`: times as RFC 3339 texts (JSON
    columns are already JSON texts), no None values."""
    def clean(value):
        if isinstance(value, datetime):
            return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items() if v is not None}
        return value

    return clean(row)


def _query(bqc, sql: str) -> pa.Table:
    rows = bqc.query_and_wait(sql, api_timeout=CALL_TIMEOUT, wait_timeout=CALL_TIMEOUT, retry=retry(),
                              job_retry=None)
    return rows.to_arrow(create_bqstorage_client=False)


def _micros(t: datetime | None) -> int | None:
    return None if t is None else int(t.timestamp()) * 1_000_000 + t.microsecond


def _keyed(table: pa.Table) -> list[tuple]:
    """COLUMNS of each row, times as epoch microseconds, in key order (log_name, insert_id, timestamp)."""
    cols = {c: table.column(c).to_pylist() for c in COLUMNS}
    for c in ("timestamp", "receive_timestamp"):
        cols[c] = [_micros(t) for t in cols[c]]
    return sorted(zip(*(cols[c] for c in COLUMNS), strict=True), key=lambda r: (r[1], r[2], r[0]))


@pytest.fixture(scope="module")
def local(entries: list[dict], tmp_path_factory: pytest.TempPathFactory) -> list[tuple]:
    store = Store(tmp_path_factory.mktemp("store") / "store")
    store.ingest_entries(entries, "x")
    return _keyed(connect().sql(
        f"SELECT * FROM read_parquet({sql_list([str(f) for f in store.entry_files()])})").to_arrow_table())


@pytest.fixture(scope="module")
def deduped(bigquery) -> pa.Table:
    return _query(bigquery, all_logs_view(TABLE))


@pytest.fixture(scope="module")
def every_copy(bigquery) -> pa.Table:
    return _query(bigquery, all_logs_view(TABLE, dedupe=False))


def test_the_view_through_the_client_equals_the_local_store(deduped: pa.Table, local: list[tuple]) -> None:
    got = _keyed(deduped)
    assert len(got) == len(local) == ENTRIES
    diff = [(w[2], c, g[i], w[i]) for g, w in zip(got, local, strict=True) for i, c in enumerate(COLUMNS)
            if g[i] != w[i] or type(g[i]) is not type(w[i])]
    assert diff == []


def test_result_types_come_back_as_bigquery_types(deduped: pa.Table) -> None:
    types = {c: str(deduped.schema.field(c).type) for c in KEY_COLUMNS}
    assert types == {"timestamp": "timestamp[us, tz=UTC]", "log_name": "string", "insert_id": "string",
                     "effective_severity": "string", "service": "string", "revision": "string",
                     "http_status": "int64", "http_latency_ms": "double", "message": "string"}


def test_duplicates_count_once_and_the_first_received_is_kept_unless_dedupe_is_off(
        deduped: pa.Table, every_copy: pa.Table) -> None:
    def late(table: pa.Table) -> int:
        return sum(1 for t in table.column("receive_timestamp").to_pylist() if t.year == 2030)

    assert (deduped.num_rows, late(deduped)) == (ENTRIES, 0)
    assert (every_copy.num_rows, late(every_copy)) == (ENTRIES + DUPLICATED, DUPLICATED)


def test_since_until_select_the_same_entries_as_the_local_window(bigquery, local: list[tuple]) -> None:
    """The window's bounds are TIMESTAMP literals: the emulator reads them as BigQuery does."""
    since, until = datetime(2025, 9, 9, 22, tzinfo=UTC), datetime(2025, 9, 10, 3, 0, 5, 123456, tzinfo=UTC)
    got = _keyed(_query(bigquery, all_logs_view(TABLE, since=since, until=until)))
    want = [r for r in local if _micros(since) <= r[0] < _micros(until)]
    assert 0 < len(want) < len(local)
    assert got == want
