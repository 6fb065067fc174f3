"""`BigQueryRunner` and `open_source` with the official client against bqemulator: parameters,
the query record, dry-run mode, errors, progress, and a sink dataset's tables detected. The
emulator's dry runs report 0 bytes: the byte limit is tested in test_bigquery_api.py."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from bq_emulator import CALL_TIMEOUT, client, emulator_python, retry, running_emulator

from logaudit.core.errors import UsageError, WarehouseError
from logaudit.warehouse.bigquery import BigQueryRunner, field_paths, open_source
from logaudit.warehouse.entry_view import SinkTable
from logaudit.warehouse.runner import QueryRecord, Runner

# starts a subprocess emulator (about 3 s) and runs a few dozen jobs
pytestmark = pytest.mark.slow

STDOUT_COMMON = {"logName": "STRING", "timestamp": "TIMESTAMP", "textPayload": "STRING",
                 "resource": "STRUCT<type STRING, labels STRUCT<service_name STRING>>", "resource.type": "STRING",
                 "resource.labels": "STRUCT<service_name STRING>", "resource.labels.service_name": "STRING"}


def _sink_schemas(bq) -> dict[str, list]:
    """A sink's tables, in creation order: two date shards of one log (the later one without
    `oldField` and with `jsonPayload`), an unsharded audit log, and two tables that are not logs."""
    f = bq.SchemaField
    resource = f("resource", "RECORD", fields=[f("type", "STRING"), f("labels", "RECORD", fields=[
        f("service_name", "STRING")])])
    common = [f("logName", "STRING"), f("timestamp", "TIMESTAMP"), f("textPayload", "STRING"), resource]
    return {
        "run_googleapis_com_stdout_20250910": [*common, f("oldField", "STRING")],
        "run_googleapis_com_stdout_20250911": [*common, f("jsonPayload", "RECORD", fields=[f("message", "STRING")])],
        "cloudaudit_googleapis_com_activity": [
            f("logName", "STRING"), f("timestamp", "TIMESTAMP"),
            f("protopayload_auditlog", "RECORD", fields=[f("methodName", "STRING")])],
        "notes": [f("day", "STRING"), f("count", "INTEGER")],
        "report_20250910": [f("logName", "STRING"), f("tags", "STRING", mode="REPEATED")],
    }


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory):
    """bqemulator holding `p.sink` (the tables of `_sink_schemas`, one stdout row per shard) and an
    empty dataset `p.empty`."""
    from google.cloud import bigquery as bq

    with running_emulator(emulator_python(), tmp_path_factory.mktemp("bqemulator")) as emu:
        bqc = client(emu)
        for name in ("p.sink", "p.empty"):
            bqc.create_dataset(name, retry=retry(), timeout=CALL_TIMEOUT)
        for name, schema in _sink_schemas(bq).items():
            bqc.create_table(bq.Table(f"p.sink.{name}", schema=schema), retry=retry(), timeout=CALL_TIMEOUT)
        for day in ("10", "11"):
            rows = [{"logName": "projects/p/logs/run.googleapis.com%2Fstdout", "timestamp": f"2025-09-{day}T12:00:00Z",
                     "textPayload": f"hello {day}", "resource": {"type": "cloud_run_revision",
                                                                  "labels": {"service_name": "api"}}}]
            assert bqc.insert_rows_json(f"p.sink.run_googleapis_com_stdout_202509{day}", rows, retry=retry(),
                                        timeout=CALL_TIMEOUT) == []
        bqc.close()
        yield emu


@pytest.fixture
def runner(emulator):
    r = BigQueryRunner("p", endpoint=emulator.url, timeout=CALL_TIMEOUT)
    yield r
    r.close()


def test_it_is_a_runner(runner: BigQueryRunner) -> None:
    assert isinstance(runner, Runner)
    assert (runner.name, runner.billing_project) == ("bigquery", "p")


def test_parameters_of_every_type_come_back_as_sent(runner: BigQueryRunner) -> None:
    when = datetime(2025, 9, 10, 12, 30, 1, 250000, tzinfo=UTC)
    params = {"b": True, "i": 42, "f": 2.5, "s": "it's", "t": when, "names": ["a", "b"], "unused": "x",
              "nothing": None}
    got = runner.query("SELECT @b AS b, @i AS i, @f AS f, @s AS s, @t AS t, ARRAY_LENGTH(@names) AS n, "
                       "@names[OFFSET(1)] AS second", params, purpose="types").to_pylist()
    assert got == [{"b": True, "i": 42, "f": 2.5, "s": "it's", "t": when, "n": 2, "second": "b"}]


def test_each_query_is_recorded_with_its_purpose_parameters_and_bytes(runner: BigQueryRunner) -> None:
    runner.query("SELECT @i + 1 AS j", {"i": 1, "other": 2}, purpose="first")
    runner.query("SELECT 1 AS one", None, purpose="second")
    assert runner.queries == [QueryRecord("first", "SELECT @i + 1 AS j", ("i",), 0),
                              QueryRecord("second", "SELECT 1 AS one", (), 0)]
    assert runner.bytes_processed == 0


def test_a_dry_run_returns_no_rows_and_the_columns_and_types_the_query_returns(emulator) -> None:
    sql = ("SELECT 1 AS i, 'x' AS s, TIMESTAMP '2025-09-10 00:00:00+00' AS t, [1, 2] AS a, "
           "STRUCT(1 AS x, 'y' AS z) AS st, 2.5 AS f")
    live = BigQueryRunner("p", endpoint=emulator.url, timeout=CALL_TIMEOUT)
    dry = BigQueryRunner("p", endpoint=emulator.url, timeout=CALL_TIMEOUT, dry_run=True)
    ran, planned = live.query(sql, purpose="shape"), dry.query(sql, purpose="shape")
    assert (ran.num_rows, planned.num_rows) == (1, 0)
    assert planned.schema == ran.schema
    assert planned.column_names == ["i", "s", "t", "a", "st", "f"]
    assert dry.queries == [QueryRecord("shape", sql, (), 0)]


def test_a_missing_table_is_named(runner: BigQueryRunner) -> None:
    with pytest.raises(WarehouseError) as caught:
        runner.query("SELECT COUNT(*) AS n FROM `p.sink.nope`", purpose="health")
    assert caught.value.message == "dataset or table p.sink.nope not found in location US (query health)"
    assert "gcloud logging links create" in caught.value.hint
    assert caught.value.sql == "SELECT COUNT(*) AS n FROM `p.sink.nope`"
    assert caught.value.exit_code == 5


def test_a_missing_dataset_reads_as_the_server_says_permission_denied_or_missing(runner: BigQueryRunner) -> None:
    """bqemulator answers as BigQuery does to an account that may not see the dataset: 403."""
    with pytest.raises(WarehouseError) as caught:
        runner.query("SELECT * FROM `p.nope.t`", purpose="health")
    assert caught.value.message == "query health: permission denied on p.nope.t (or it does not exist)"
    assert caught.value.hint == (
        "the account needs BigQuery Job User (roles/bigquery.jobUser) on the billing project p and BigQuery "
        "Data Viewer (roles/bigquery.dataViewer) on the dataset (for a Log Analytics view: on its linked dataset)")


def test_a_failed_query_says_which_and_never_quotes_the_sql(runner: BigQueryRunner) -> None:
    with pytest.raises(WarehouseError) as caught:
        runner.query("SELECT missing_column FROM UNNEST([1]) AS x", purpose="broken")
    assert caught.value.message.startswith(f"query broken failed (job {caught.value.job_id}): 400 ")
    assert "UNNEST" not in str(caught.value)
    assert caught.value.sql == "SELECT missing_column FROM UNNEST([1]) AS x"


def test_progress_is_one_line_on_stderr_when_asked_and_nothing_otherwise(emulator, capfd) -> None:
    quiet = BigQueryRunner("p", endpoint=emulator.url, timeout=CALL_TIMEOUT)
    quiet.query("SELECT 1 AS one", purpose="count")
    assert capfd.readouterr() == ("", "")
    shown = BigQueryRunner("p", endpoint=emulator.url, timeout=CALL_TIMEOUT, progress=True)
    shown.query("SELECT 1 AS one", purpose="count")
    out, err = capfd.readouterr()
    assert out == ""
    assert re.fullmatch(r"bigquery: count: done in [0-9]+ s(, [0-9.]+ [KMGT]?i?B processed)?\n", err), err


def test_a_sink_dataset_yields_its_log_tables_shards_grouped_by_the_newest_shard(runner: BigQueryRunner) -> None:
    source = open_source(runner, "p.sink")
    assert (source.kind, source.ref, source.dedupe) == ("sink", "p.sink", True)
    assert list(source.tables) == [
        SinkTable("p.sink.cloudaudit_googleapis_com_activity",
                  {"logName": "STRING", "timestamp": "TIMESTAMP",
                   "protopayload_auditlog": "STRUCT<methodName STRING>", "protopayload_auditlog.methodName": "STRING"}),
        SinkTable("p.sink.run_googleapis_com_stdout_",
                  {**STDOUT_COMMON, "jsonPayload": "STRUCT<message STRING>", "jsonPayload.message": "STRING"},
                  sharded=True),
    ]
    # bqemulator has no INFORMATION_SCHEMA.COLUMN_FIELD_PATHS: its dry run failed (nothing recorded)
    # and the tables API answered
    assert runner.queries == []


def test_the_tables_api_types_columns_as_information_schema_does(emulator, runner: BigQueryRunner) -> None:
    """The fallback's field types against the emulator's INFORMATION_SCHEMA.COLUMNS (top-level columns)."""
    from google.cloud import bigquery as bq

    listed = runner.query("SELECT table_name, column_name, data_type FROM `p.sink`.INFORMATION_SCHEMA.COLUMNS",
                          purpose="columns").to_pylist()
    for name, schema in _sink_schemas(bq).items():
        want = {r["column_name"]: r["data_type"] for r in listed if r["table_name"] == name}
        assert {k: v for k, v in field_paths(schema).items() if "." not in k} == want, name


def test_an_all_logs_ref_is_the_log_analytics_view(emulator) -> None:
    source = open_source(client(emulator), "p.d._AllLogs", dedupe=False)
    assert (source.kind, source.table, source.dedupe) == ("all_logs", "p.d._AllLogs", False)


def test_datasets_without_log_tables_and_bad_refs_are_refused(runner: BigQueryRunner) -> None:
    with pytest.raises(WarehouseError) as empty:
        open_source(runner, "p.empty")
    assert empty.value.message == "dataset p.empty holds no tables"
    with pytest.raises(UsageError) as bad:
        open_source(runner, "just-a-name")
    assert bad.value.message == "not a BigQuery log dataset: 'just-a-name'"
    assert bad.value.hint == ("write PROJECT.DATASET._AllLogs (a Log Analytics linked dataset) or PROJECT.DATASET "
                              "(a log sink's dataset)")
    with pytest.raises(UsageError):
        open_source(runner, "p.sink.notes")


def test_for_source_bills_the_sources_project_with_an_endpoint(emulator) -> None:
    runner = BigQueryRunner.for_source("p.sink", endpoint=emulator.url, timeout=CALL_TIMEOUT)
    assert runner.billing_project == "p"
    with pytest.raises(UsageError) as caught:
        BigQueryRunner(endpoint=emulator.url)
    assert caught.value.message == f"no billing project for the BigQuery endpoint {emulator.url}"
