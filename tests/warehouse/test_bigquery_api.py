"""What bqemulator cannot show (its dry runs report 0 bytes): the official client against a tiny
HTTP server on 127.0.0.1 that answers `jobs.insert` as the BigQuery API does (a dry run's
`totalBytesProcessed` and schema; an error body with a reason), and records each request. Plus the
pure helpers (labels, prices, parameters, refs)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from bq_api_fake import FakeBigQuery, dry_run_job, error, serving

from logaudit.core.errors import UsageError, WarehouseError
from logaudit.warehouse.bigquery import (
    DEFAULT_MAX_BYTES,
    BigQueryRunner,
    estimate_usd,
    format_bytes,
    label_value,
    parse_ref,
    query_parameters,
)
from logaudit.warehouse.runner import QueryRecord

GIB = 2**30
SCHEMA = {"fields": [{"name": "n", "type": "INTEGER", "mode": "NULLABLE"}]}


@pytest.fixture
def fake() -> Iterator[FakeBigQuery]:
    with serving() as server:
        yield server


def _runner(fake: FakeBigQuery, **kwargs) -> BigQueryRunner:
    return BigQueryRunner("p", endpoint=fake.url, timeout=10, **kwargs)


def test_a_query_over_max_bytes_is_refused_after_its_dry_run_and_never_runs(fake: FakeBigQuery) -> None:
    fake.answer = lambda body: (200, dry_run_job(body, 150 * GIB))
    runner = _runner(fake)
    with pytest.raises(WarehouseError) as caught:
        runner.query("SELECT COUNT(*) AS n FROM `p.d._AllLogs` WHERE severity = @s", {"s": "ERROR"}, purpose="health")
    assert caught.value.message == "query health would process 150.0 GiB, more than --max-bytes 100.0 GiB (about 0.92 USD)"
    assert caught.value.hint == "raise --max-bytes, or narrow --since/--until"
    assert caught.value.exit_code == 5
    assert [b["configuration"]["dryRun"] for b in fake.inserts] == [True]
    assert fake.inserts[0]["configuration"]["query"]["useQueryCache"] is False
    assert runner.queries == [QueryRecord("health", "SELECT COUNT(*) AS n FROM `p.d._AllLogs` WHERE severity = @s",
                                          ("s",), 150 * GIB)]


def test_dry_run_mode_records_every_querys_bytes_and_runs_none(fake: FakeBigQuery) -> None:
    fake.answer = lambda body: (200, dry_run_job(body, 3 * GIB))
    runner = _runner(fake, dry_run=True, max_bytes=GIB)
    first = runner.query("SELECT 1 AS n", purpose="a")
    runner.query("SELECT 2 AS n", purpose="b")
    assert (first.column_names, first.num_rows, str(first.schema.field("n").type)) == (["n"], 0, "int64")
    assert [q.bytes_processed for q in runner.queries] == [3 * GIB, 3 * GIB]
    assert runner.bytes_processed == 6 * GIB
    assert all(b["configuration"]["dryRun"] for b in fake.inserts) and len(fake.inserts) == 2


def test_the_job_carries_the_byte_limit_labels_and_timeout_and_a_billing_error_names_the_option(
        fake: FakeBigQuery) -> None:
    def answer(body: dict):
        if body["configuration"].get("dryRun"):
            return 200, dry_run_job(body, 1000)
        return 400, error(400, "INVALID_ARGUMENT", "bytesBilledLimitExceeded",
                          "Query exceeded limit for bytes billed: 5000. 10485760 or higher required.")

    fake.answer = answer
    runner = _runner(fake, max_bytes=5000, labels={"team": "sre"})
    with pytest.raises(WarehouseError) as caught:
        runner.query("SELECT 1 AS n", purpose="Errors by Revision")
    assert caught.value.message == ("query Errors by Revision would bill more than --max-bytes: Query exceeded limit "
                                    "for bytes billed: 5000. 10485760 or higher required.")
    assert caught.value.hint == "raise --max-bytes, or narrow --since/--until"
    job = fake.inserts[1]["configuration"]
    assert (job["query"]["maximumBytesBilled"], job["labels"], job["jobTimeoutMs"]) == (
        "5000", {"app": "logaudit", "analysis": "errors_by_revision", "team": "sre"}, "10000")


def test_a_missing_permission_is_named_with_the_roles(fake: FakeBigQuery) -> None:
    fake.answer = lambda body: (403, error(
        403, "PERMISSION_DENIED", "accessDenied",
        "Access Denied: Project p: User does not have bigquery.jobs.create permission in project p."))
    with pytest.raises(WarehouseError) as caught:
        _runner(fake).query("SELECT 1 AS n", purpose="health")
    assert caught.value.message == "query health: permission denied: missing bigquery.jobs.create"
    assert "BigQuery Job User (roles/bigquery.jobUser) on the billing project p" in caught.value.hint


def test_a_dataset_not_found_in_the_real_apis_words(fake: FakeBigQuery) -> None:
    fake.answer = lambda body: (404, error(404, "NOT_FOUND", "notFound",
                                           "Not found: Dataset my-proj:logs was not found in location EU"))
    with pytest.raises(WarehouseError) as caught:
        _runner(fake).query("SELECT 1 AS n", purpose="health")
    assert caught.value.message == "dataset or table my-proj.logs not found in location EU (query health)"
    assert "PROJECT.DATASET._AllLogs" in caught.value.hint


# ----------------------------------------------------------------------------- pure helpers
def test_labels_are_sanitised_and_bad_user_labels_refused() -> None:
    assert label_value("Health: 5xx by revision") == "health__5xx_by_revision"
    assert label_value("x" * 80) == "x" * 63
    assert label_value("réseau-α_1") == "r_seau-__1"
    with pytest.raises(UsageError):
        BigQueryRunner("p", endpoint="http://127.0.0.1:9", labels={"Team": "sre"})
    with pytest.raises(UsageError):
        BigQueryRunner("p", endpoint="http://127.0.0.1:9", labels={"app": "mine"})


def test_prices_and_sizes() -> None:
    assert estimate_usd(2**40) == 6.25
    assert estimate_usd(0) == 0.0
    assert estimate_usd(DEFAULT_MAX_BYTES) == pytest.approx(0.6103515625)
    assert [format_bytes(n) for n in (0, 1023, 1024, 150 * GIB, 3 * 2**50)] == [
        "0 B", "1023 B", "1.0 KiB", "150.0 GiB", "3072.0 TiB"]


def test_only_the_parameters_the_sql_uses_are_sent_and_none_is_refused() -> None:
    sent = query_parameters("SELECT @since, @since_day, @names", {
        "since_day": 3, "since": "x", "names": [], "ids": [1], "unused": None})
    assert [(p.name, getattr(p, "type_", None) or p.array_type) for p in sent] == [
        ("names", "STRING"), ("since", "STRING"), ("since_day", "INT64")]
    with pytest.raises(ValueError, match="parameter @x is None"):
        query_parameters("SELECT @x", {"x": None})
    with pytest.raises(TypeError):
        query_parameters("SELECT @x", {"x": [1, "a"]})


def test_refs() -> None:
    assert parse_ref("my-project.logs") == ("my-project", "logs", None)
    assert parse_ref("`example.com:proj.logs._AllLogs`") == ("example.com:proj", "logs", "_AllLogs")
    with pytest.raises(UsageError):
        parse_ref("logs")
    with pytest.raises(UsageError):
        parse_ref("a.b.c.d")
