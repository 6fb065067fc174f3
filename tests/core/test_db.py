"""The SQL helpers of logaudit.core.db: every quoted text reaches DuckDB unchanged."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logaudit.core.db import connect, sql_list, sql_strings, sql_text

# DuckDB strings are UTF-8 without NUL
texts = st.text(st.characters(exclude_characters="\x00", exclude_categories=("Cs",)), max_size=30)


def test_quoting_examples():
    assert sql_text("it's") == "'it''s'"
    assert sql_strings(["a", "b'c"]) == "'a', 'b''c'"
    assert sql_list(["a.parquet", "it's.parquet"]) == "['a.parquet', 'it''s.parquet']"
    assert sql_list([]) == "[]"


@pytest.mark.slow
@settings(max_examples=200, deadline=None)
@given(st.lists(texts, max_size=6))
def test_duckdb_reads_back_what_was_quoted(values):
    con = connect(threads=1)
    try:
        assert con.execute(f"SELECT {sql_list(values)}::VARCHAR[]").fetchone()[0] == values
        if values:
            assert con.execute(f"SELECT [{sql_strings(values)}]::VARCHAR[], {sql_text(values[0])}").fetchone() == \
                (values, values[0])
            probe = values[-1]
            assert con.execute(f"SELECT {sql_text(probe)} IN ({sql_strings(values)})").fetchone()[0] is True
    finally:
        con.close()
