"""The BigQuery options of the reporting commands: what `--print-sql` prints (nothing runs),
what `--dry-run` asks BigQuery (dry runs only; the official client against a local server that
answers like the BigQuery API), and the usage errors."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from bq_api_fake import FakeBigQuery, dry_run_job, serving
from sqlglot import exp

from logaudit.warehouse.dialect import parse_bigquery

TABLE = "p.d._AllLogs"
WINDOW = ("--since", "2025-09-10T00:00:00Z", "--until", "2025-09-10T06:00:00Z")
GIB = 2**30
#: The queries `summarize` sends, in order (docs/bigquery.md, "What runs where").
SUMMARIZE = ["totals", "revisions", "endpoint-paths", "endpoints", "recheck-candidates", "patterns", "templates",
             "latency-histograms", "health", "root-causes"]


@pytest.fixture
def fake() -> Iterator[FakeBigQuery]:
    with serving() as server:
        yield server


def _statements(text: str, analysis: str) -> list[tuple[str, str]]:
    parts = text.split(f"-- logaudit {analysis}: ")[1:]
    return [(p.split("\n", 1)[0], p.split("\n", 1)[1].strip().removesuffix(";")) for p in parts]


@pytest.mark.slow  # builds every query of an analysis (2-4 s)
def test_print_sql_prints_every_query_ready_to_paste_and_runs_nothing(cli) -> None:
    result = cli("summarize", "--bigquery", TABLE, *WINDOW, "--service", "api", "--print-sql")
    assert result.exit_code == 0, result.output
    queries = _statements(result.stdout, "summarize")
    assert [purpose for purpose, _ in queries] == SUMMARIZE
    for purpose, sql in queries:
        tree = parse_bigquery(sql)  # GoogleSQL
        assert list(tree.find_all(exp.Parameter)) == [], purpose  # every parameter written in
        assert TABLE in sql and "2025-09-10 00:00:00" in sql and "2025-09-10 06:00:00" in sql, purpose
    assert "service = 'api'" in dict(queries)["totals"]


@pytest.mark.slow  # builds every query of an analysis (2-4 s)
def test_print_sql_as_json(cli) -> None:
    result = cli("compare", "--bigquery", TABLE, *WINDOW, "--print-sql", "--format", "json")
    assert result.exit_code == 0, result.output
    queries = json.loads(result.stdout)["queries"]
    assert {q["purpose"] for q in queries} >= {"revisions", "latency-histograms", "health", "timeline"}
    assert all(set(q) == {"purpose", "sql"} for q in queries)


@pytest.mark.slow  # builds every query of an analysis (2-4 s)
def test_dry_run_sends_only_dry_runs_and_prints_bytes_and_price(cli, fake: FakeBigQuery) -> None:
    fake.answer = lambda body: (200, dry_run_job(body, 3 * GIB))
    result = cli("summarize", "--bigquery", TABLE, "--bigquery-endpoint", fake.url, "--billing-project", "bill",
                 *WINDOW, "--dry-run", "--max-bytes", "2GiB", "--format", "json")
    assert result.exit_code == 0, result.output
    got = json.loads(result.stdout)
    assert [q["purpose"] for q in got["queries"]] == SUMMARIZE
    assert {q["bytes"] for q in got["queries"]} == {3 * GIB}
    assert all(q["over_max_bytes"] for q in got["queries"])
    assert got["total_bytes"] == 3 * GIB * len(SUMMARIZE) and got["max_bytes"] == 2 * GIB
    assert got["estimated_usd"] == pytest.approx(3 * len(SUMMARIZE) / 1024 * 6.25)
    assert fake.inserts and all(b["configuration"]["dryRun"] is True for b in fake.inserts)
    assert {b["jobReference"]["projectId"] for b in fake.inserts} == {"bill"}


@pytest.mark.slow  # builds every query of an analysis (2-4 s)
def test_dry_run_as_text_names_the_queries_over_the_limit(cli, fake: FakeBigQuery) -> None:
    fake.answer = lambda body: (200, dry_run_job(body, 3 * GIB))
    result = cli("report", "--bigquery", TABLE, "--bigquery-endpoint", fake.url, *WINDOW, "--dry-run",
                 "--max-bytes", "4GB")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["totals", "3,221,225,472", "bytes"]
    assert lines[-1].startswith("total ")
    assert "about $" in lines[-1] and "per TiB" in lines[-1]


@pytest.mark.parametrize(("args", "message"), [
    (("summarize", "--dry-run"), "error: --dry-run needs --bigquery"),
    (("compare", "--print-sql", "--no-dedupe"), "error: --print-sql, --no-dedupe needs --bigquery"),
    (("summarize", "--bigquery", TABLE, "--max-bytes", "lots", "--print-sql"), "error: --max-bytes 'lots': not a size"),
    (("export", "--bigquery", TABLE, "--out", "x", "--dry-run"),
     "error: export failed: --dry-run and --print-sql are for summarize, compare and report"),
    (("summarize", "--bigquery", "nodots", "--print-sql"), "error: "),
])
def test_bigquery_usage_errors_are_exit_64(cli, tmp_path, args: tuple[str, ...], message: str) -> None:
    result = cli(*args, "--store", tmp_path / "none")
    assert result.exit_code == 64, result.output
    assert result.output.startswith(message), result.output


@pytest.mark.slow  # builds every query of an analysis (2-4 s)
def test_no_dedupe_leaves_out_the_shuffle(cli) -> None:
    dedupe = cli("summarize", "--bigquery", TABLE, *WINDOW, "--print-sql")
    every = cli("summarize", "--bigquery", TABLE, *WINDOW, "--print-sql", "--no-dedupe")
    assert dedupe.exit_code == every.exit_code == 0
    with_qualify = [p for p, sql in _statements(dedupe.stdout, "summarize") if "QUALIFY ROW_NUMBER()" in sql]
    assert with_qualify == SUMMARIZE
    assert "QUALIFY" not in every.stdout
