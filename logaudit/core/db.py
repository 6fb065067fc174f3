"""DuckDB connections: every connection logaudit opens comes from `connect`.

A connection's session time zone is UTC, whatever the machine's zone (`TZ`): DuckDB casts a
TIMESTAMP to TIMESTAMPTZ, truncates to days and hands TIMESTAMPTZ values to pandas in the
session zone, so a local default would shift bucket labels and day boundaries. The progress
bar is off (the CLI draws its own; DuckDB's would write over it).

>>> from logaudit.core.db import connect
>>> con = connect()
>>> con.execute("SELECT current_setting('TimeZone')").fetchone()[0]
'UTC'
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import duckdb

#: Threads a connection uses unless told otherwise (the machines logaudit runs on are small and shared).
DEFAULT_THREADS = 2

# Session settings, not config: TimeZone needs the ICU extension, which loads with the first query.
_SESSION = "SET TimeZone = 'UTC'; SET Calendar = 'gregorian'"


def connect(*, threads: int | None = DEFAULT_THREADS, config: dict[str, Any] | None = None) -> duckdb.DuckDBPyConnection:
    """A new in-memory DuckDB connection: UTC session time zone, Gregorian calendar, no progress bar.

    `threads=None` leaves DuckDB's default (one per core); `config` adds other DuckDB options
    (e.g. `{"memory_limit": "2GB"}`).
    """
    options = dict(config or {})
    if threads is not None:
        options["threads"] = threads
    con = duckdb.connect(config=options)
    con.execute(_SESSION)
    # in a Jupyter kernel without ipywidgets DuckDB refuses the setting (and shows no bar there)
    with contextlib.suppress(duckdb.InvalidInputException):
        con.execute("SET enable_progress_bar = false")
    return con


def sql_text(text: str) -> str:
    """A SQL string literal: `'...'` with quotes doubled. The one quoting of logaudit's SQL.

    >>> sql_text("it's")
    "'it''s'"
    """
    return "'" + text.replace("'", "''") + "'"


def sql_strings(values: Iterable[str]) -> str:
    """Quoted strings separated by commas, for `x IN (...)`.

    >>> sql_strings(["a", "b"])
    "'a', 'b'"
    """
    return ", ".join(sql_text(v) for v in values)


def sql_list(paths: Iterable[str]) -> str:
    """A DuckDB list literal of quoted strings (file paths), e.g. for `read_parquet`.

    >>> sql_list(["a.parquet", "it's.parquet"])
    "['a.parquet', 'it''s.parquet']"
    """
    return "[" + sql_strings(paths) + "]"


def time_filter(column: str, since: datetime | None, until: datetime | None) -> str:
    """SQL condition `since <= column < until` (TIMESTAMPTZ literals in UTC); `TRUE` when unbounded."""
    conds = []
    if since is not None:
        conds.append(f"{column} >= TIMESTAMPTZ '{since.astimezone(UTC).isoformat()}'")
    if until is not None:
        conds.append(f"{column} < TIMESTAMPTZ '{until.astimezone(UTC).isoformat()}'")
    return " AND ".join(conds) if conds else "TRUE"


def arrow_table(con: Any, query: str, params: dict[str, Any] | None = None) -> Any:
    """A query's result as a pyarrow Table (DuckDB 2.x and 1.x)."""
    rel = con.sql(query, params=params)
    if hasattr(rel, "to_arrow_table"):
        return rel.to_arrow_table()
    return rel.arrow()  # pragma: no cover - DuckDB 1.x


__all__ = ["DEFAULT_THREADS", "arrow_table", "connect", "sql_list", "sql_strings", "sql_text", "time_filter"]
