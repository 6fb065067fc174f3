"""Acceptance: `summarize`, `compare` and `report` with `--bigquery ... --bigquery-endpoint URL`
against bqemulator (the official client, a real HTTP server on 127.0.0.1) print exactly what the
same commands print over a local store of the same entries.

The emulator holds the sample (timestamps in microseconds, BigQuery's resolution) as a Log
Analytics `_AllLogs` table, with some entries written twice (counted once). It proves the
client, job and type path end to end; the SQL's semantics are the DuckDB parity tests'."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from bq_emulator import CALL_TIMEOUT, client, emulator_python, retry, running_emulator
from bq_tables import all_logs_rows, bigquery_schema, sink_tables
from test_emulator import _all_logs_schema, _json_row

from logaudit.sources.sample import SampleConfig, sample_entries
from logaudit.store.store import Store

# starts a subprocess emulator and loads 1,000 entries into it; each command runs a dozen queries
# there (about 5 minutes for the module on two cores)
pytestmark = pytest.mark.slow

TABLE = "p.d._AllLogs"
SINK = "p.sink"
SINCE, UNTIL = "2025-09-09T20:00:00Z", "2025-09-10T04:00:00Z"
DUPLICATED = 40


@pytest.fixture(scope="module")
def entries() -> list[dict]:
    sample, _ = sample_entries(SampleConfig(entries=1000))
    for e in sample:  # BigQuery keeps microseconds
        e["timestamp"] = re.sub(r"(\.\d{6})\d+Z$", r"\1Z", e["timestamp"])
    return sample


@pytest.fixture(scope="module")
def store(entries: list[dict], tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bqcmd") / "store"
    Store(root).ingest_entries(entries, "sample")
    return root


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory, entries: list[dict]):
    """The emulator's URL; it holds `p.d._AllLogs`: the entries, then the first DUPLICATED again;
    and `p.sink`, a classic sink's dataset of the entries (a table per log)."""
    from google.cloud import bigquery as bq

    python = emulator_python()
    with running_emulator(python, tmp_path_factory.mktemp("bqemulator")) as emulator:
        bqc = client(emulator)
        bqc.create_dataset("p.d", retry=retry(), timeout=CALL_TIMEOUT)
        table = bqc.create_table(bq.Table(TABLE, schema=_all_logs_schema(bq)), retry=retry(), timeout=CALL_TIMEOUT)
        rows = [_json_row(r) for r in all_logs_rows(entries)]
        rows += [{**r, "receive_timestamp": "2030-01-01T00:00:00Z"} for r in rows[:DUPLICATED]]
        for start in range(0, len(rows), 500):
            assert bqc.insert_rows_json(table, rows[start:start + 500], retry=retry(), timeout=CALL_TIMEOUT) == []
        bqc.create_dataset(SINK, retry=retry(), timeout=CALL_TIMEOUT)
        for log, arrow in sink_tables(entries).items():
            sink = bqc.create_table(bq.Table(f"{SINK}.{log}", schema=bigquery_schema(arrow.schema, bq)),
                                    retry=retry(), timeout=CALL_TIMEOUT)
            rows = [_json_row(r) for r in arrow.to_pylist()]
            for start in range(0, len(rows), 500):
                assert bqc.insert_rows_json(sink, rows[start:start + 500], retry=retry(), timeout=CALL_TIMEOUT) == []
        bqc.close()
        yield emulator.url


def _json(cli, *args: str, codes: tuple[int, ...] = (0,)) -> dict:
    result = cli(*args, "--format", "json")
    assert result.exit_code in codes, result.output
    return json.loads(result.stdout)


def test_summarize_in_bigquery_is_the_store_summary(cli, store: Path, endpoint: str) -> None:
    window = ("--since", SINCE, "--until", UNTIL)
    local = _json(cli, "summarize", "--store", store, *window)
    remote = _json(cli, "summarize", "--bigquery", TABLE, "--bigquery-endpoint", endpoint, *window)
    assert local["entries"] == 1000 and local["verdict"] is not None
    assert remote == local


def test_summarize_of_a_sink_dataset_in_bigquery_is_the_store_summary(cli, store: Path, endpoint: str) -> None:
    window = ("--since", SINCE, "--until", UNTIL)
    local = _json(cli, "summarize", "--store", store, *window)
    remote = _json(cli, "summarize", "--bigquery", SINK, "--bigquery-endpoint", endpoint, *window)
    assert remote == local


def test_compare_in_bigquery_gives_the_store_verdict_and_reasons(cli, store: Path, endpoint: str) -> None:
    args = ("--service", "netra-backend-staging", "--since", SINCE, "--until", UNTIL)
    local = _json(cli, "compare", "--store", store, *args, codes=(0, 1, 2))
    remote = _json(cli, "compare", "--bigquery", TABLE, "--bigquery-endpoint", endpoint, *args, codes=(0, 1, 2))
    assert (remote["verdict"], remote["reasons"]) == (local["verdict"], local["reasons"])
    assert remote == local


def test_report_in_bigquery_writes_the_store_summary(cli, store: Path, endpoint: str, tmp_path: Path) -> None:
    window = ("--since", SINCE, "--until", UNTIL, "--report-format", "md", "--no-charts")
    cli("report", "--store", store, *window, "--out", tmp_path / "local")
    result = cli("report", "--bigquery", TABLE, "--bigquery-endpoint", endpoint, *window, "--out", tmp_path / "bq")
    assert result.exit_code == 0, result.output
    local = json.loads((tmp_path / "local" / "summary.json").read_text())
    remote = json.loads((tmp_path / "bq" / "summary.json").read_text())
    assert remote == local
    text = (tmp_path / "bq" / "report.md").read_text()
    assert "**Source:** `p.d._AllLogs`: BigQuery Log Analytics view p.d.\\_AllLogs" in text
    assert "Ingests and pulls" not in text


def test_duplicates_count_twice_with_no_dedupe(endpoint: str) -> None:
    from logaudit.analysis.warehouse_audit import WarehouseAudit

    for dedupe, entries in ((True, 1000), (False, 1000 + DUPLICATED)):
        audit = WarehouseAudit.bigquery(TABLE, endpoint=endpoint, dedupe=dedupe)
        try:
            assert audit.engine.totals(audit.window(SINCE, UNTIL)).entries == entries
        finally:
            audit.close()


def test_a_missing_table_is_a_bigquery_error_naming_it(cli, endpoint: str) -> None:
    result = cli("summarize", "--bigquery", "p.nope._AllLogs", "--bigquery-endpoint", endpoint, "--since", SINCE,
                 "--until", UNTIL)
    assert result.exit_code == 5, result.output
    assert "p.nope" in result.output
