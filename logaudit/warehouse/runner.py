"""Where warehouse SQL runs: a `Runner` takes one GoogleSQL query and its named parameters and
returns the (small) result as Arrow.

Two runners exist: `logaudit.warehouse.bigquery.BigQueryRunner` (the official client: dry run,
byte limit, labels, progress) and `DuckDBRunner` here, which runs the same text transpiled to
DuckDB (`dialect.to_duckdb`) over local tables shaped like BigQuery's: the tests' proof that
the warehouse path gives the local engine's numbers, and the benchmark's baseline.

>>> from logaudit.core.db import connect
>>> runner = DuckDBRunner(connect())
>>> runner.query("SELECT @n + 1 AS m", {"n": 41}, purpose="doc").to_pylist()
[{'m': 42}]
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import pyarrow as pa

from logaudit.warehouse.dialect import to_duckdb


@dataclass(frozen=True)
class QueryRecord:
    """One query a runner ran (or, in a dry run, would run): what for, its text, its parameters'
    names, the bytes BigQuery said it would process (None when the runner cannot tell)."""

    purpose: str
    sql: str
    params: tuple[str, ...]
    bytes_processed: int | None = None


@runtime_checkable
class Runner(Protocol):
    """Runs GoogleSQL; `queries` lists what ran, in order (for `--print-sql` and `--dry-run`)."""

    name: str
    queries: list[QueryRecord]

    def query(self, sql: str, params: Mapping[str, Any] | None = None, *, purpose: str) -> pa.Table:
        """The result of one SELECT. Parameters are GoogleSQL named parameters (`@since`): None,
        bool, int, float, str, aware datetime, or a list of str."""
        ...

    def close(self) -> None:
        ...


@dataclass
class DuckDBRunner:
    """Runs warehouse SQL on a DuckDB connection holding tables shaped like BigQuery's."""

    con: Any
    name: str = "duckdb"
    queries: list[QueryRecord] = field(default_factory=list)

    def query(self, sql: str, params: Mapping[str, Any] | None = None, *, purpose: str) -> pa.Table:
        params = dict(params or {})
        self.queries.append(QueryRecord(purpose, sql, tuple(sorted(params))))
        used = {k: v for k, v in params.items() if f"@{k}" in sql}
        return self.con.sql(to_duckdb(sql), params=used).to_arrow_table()

    def close(self) -> None:
        self.con.close()


@dataclass
class PlanRunner:
    """Runs nothing: records each query and answers with no rows (`--print-sql`: the queries an
    analysis sends, for a user to read or paste into the Log Analytics page)."""

    name: str = "plan"
    queries: list[QueryRecord] = field(default_factory=list)
    values: list[dict[str, Any]] = field(default_factory=list)

    def query(self, sql: str, params: Mapping[str, Any] | None = None, *, purpose: str) -> pa.Table:
        self.queries.append(QueryRecord(purpose, sql, tuple(sorted(params or {}))))
        self.values.append(dict(params or {}))
        return pa.table({})

    def close(self) -> None:
        pass


__all__ = ["DuckDBRunner", "PlanRunner", "QueryRecord", "Runner"]
