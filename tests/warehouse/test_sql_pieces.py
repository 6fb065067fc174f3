"""The small GoogleSQL pieces the warehouse aggregates are built from, run on DuckDB (transpiled)
against their Python reference: path normalisation, globs, time buckets, templates; and the
helpers around them (parameters written in, sizes)."""

from __future__ import annotations

import fnmatch
from datetime import UTC, datetime

import duckdb
import pytest
import re2
from hypothesis import given, settings
from hypothesis import strategies as st

from logaudit.analysis.templates import template
from logaudit.analysis.warehouse_sql import bucket_expr, normalized_path, template_expr
from logaudit.analysis.window import normalize_path
from logaudit.catalog.pushdown import glob_re2
from logaudit.cli.warehouse_options import parse_bytes
from logaudit.core.errors import UsageError
from logaudit.warehouse.dialect import inline_parameters, parse_bigquery, to_duckdb

CON = duckdb.connect()


def _one(sql: str, **params):
    return CON.execute(to_duckdb(sql), params).fetchone()[0]


_segment = st.one_of(st.sampled_from(["", "api", "v1", "{id}", "8f3a2b1c-1234-4abc-9def-0123456789ab",
                                      "deadbeef", "DEADBEEF00", "1234", "0", "abc123", "7x", "users"]),
                     st.text(alphabet="abc0123456789-_.", max_size=12))


@pytest.mark.slow  # 300 DuckDB queries (4 s)
@settings(max_examples=300, deadline=None)
@given(st.lists(_segment, max_size=7))
def test_the_sql_path_normalisation_is_normalize_path(segments: list[str]) -> None:
    path = "/".join(segments)
    assert _one(f"SELECT {normalized_path('p')} FROM (SELECT CAST($p AS STRING) AS p)", p=path) == normalize_path(path)


def test_ids_next_to_each_other_all_become_id() -> None:
    path = "/a/12/34/56/deadbeef0/x"
    assert _one(f"SELECT {normalized_path('p')} FROM (SELECT CAST($p AS STRING) AS p)", p=path) \
        == "/a/{id}/{id}/{id}/{id}/x" == normalize_path(path)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="ab*?[]!-c\n", max_size=8), st.text(alphabet="abc-\n[]!", max_size=8))
def test_a_glob_as_re2_matches_what_fnmatchcase_matches(glob: str, text: str) -> None:
    assert (re2.search(glob_re2(glob), text) is not None) == fnmatch.fnmatchcase(text, glob)


@pytest.mark.parametrize(("when", "step", "bucket"), [
    ("1970-01-01T00:00:00Z", 60_000_000, 0),
    ("1970-01-01T00:00:59.999999Z", 60_000_000, 0),
    ("1969-12-31T23:59:59.999999Z", 60_000_000, -1),   # before the epoch: rounded down, not towards zero
    ("1969-12-31T23:59:00Z", 60_000_000, -1),
    ("1969-12-31T23:58:59Z", 60_000_000, -2),
    ("2025-09-10T03:04:05.5Z", 300_000_000, 5858244),
])
def test_time_buckets_round_down_on_both_sides_of_the_epoch(when: str, step: int, bucket: int) -> None:
    ts = datetime.fromisoformat(when.replace("Z", "+00:00"))
    assert _one(f"SELECT {bucket_expr('t')} FROM (SELECT CAST($t AS TIMESTAMPTZ) AS t)", t=ts, step=step) == bucket
    assert bucket == int((ts - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds() * 1_000_000) // step


@pytest.mark.parametrize("message", [
    "Request 8f3a2b1c-1234-4abc-9def-0123456789ab took 123 ms at 2025-09-10T03:00:00Z",
    "user 'alice' failed: code=42 ip 10.0.0.1:8080",
    'JSON {"id": "abc", "n": 17} 0x1f',
    "worker rdd_11_0 exited \t\t with\nstatus 3",
])
def test_the_sql_template_is_the_python_template(message: str) -> None:
    assert _one(f"SELECT {template_expr('m')} FROM (SELECT CAST($m AS STRING) AS m)", m=message) == template(message)


def test_parameters_written_in_are_literals_a_user_can_paste() -> None:
    sql = inline_parameters("SELECT 1 FROM t WHERE s = @service AND ts >= @since AND l >= @level "
                            "AND m IN UNNEST(@texts) AND REGEXP_CONTAINS(x, r'a@b')",
                            {"service": "it's", "since": datetime(2025, 9, 10, tzinfo=UTC), "level": 400,
                             "texts": ["a", "b"]})
    assert sql == ("SELECT 1 FROM t WHERE s = 'it\\'s' AND ts >= CAST('2025-09-10 00:00:00.000000+00' AS TIMESTAMP) "
                   "AND l >= 400 AND m IN UNNEST(['a', 'b']) AND REGEXP_CONTAINS(x, 'a@b')")
    parse_bigquery(sql)


def test_div_keeps_the_parentheses_of_its_operands() -> None:
    assert to_duckdb("SELECT DIV(a - 1, b + 1) AS q FROM t") == "SELECT (a - 1) // (b + 1) AS q FROM t"
    assert _one("SELECT DIV(10 - 4, 1 + 1)") == 3


@pytest.mark.parametrize(("text", "n"), [("42", 42), ("10GB", 10**10), ("1.5 TiB", int(1.5 * 2**40)), ("100gib", 100 * 2**30),
                                         ("5KB", 5000)])
def test_sizes(text: str, n: int) -> None:
    assert parse_bytes(text) == n


def test_a_size_that_is_not_one_is_refused() -> None:
    with pytest.raises(UsageError, match=r"--max-bytes 'lots': not a size"):
        parse_bytes("lots")
