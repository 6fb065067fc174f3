"""GoogleSQL in, DuckDB out: the one place sqlglot is used, over a narrow, tested set of functions.

Every query logaudit sends to BigQuery is GoogleSQL text; `to_duckdb` turns it into DuckDB SQL so
the same text runs over a local copy in tests. sqlglot (BigQuery dialect) is trusted only for what
tests/warehouse checks: `REGEXP_CONTAINS`, `REGEXP_EXTRACT` (one group or none), `REGEXP_REPLACE`,
`JSON_VALUE`/`JSON_QUERY` with a path, `SPLIT(...)[SAFE_OFFSET(0)]`, `STARTS_WITH`, `STRPOS`,
`SUBSTR`, `TRIM`/`LTRIM` with explicit characters, `RPAD`, `DIV`, `LEAST`, `SAFE_CAST`, `COALESCE`,
`NULLIF`, `QUALIFY ROW_NUMBER()`, `COUNTIF`. What it gets wrong, and how the SQL avoids it:

- `COUNTIF` over no true row is 0 in BigQuery, NULL in DuckDB's `count_if` when every input is
  NULL: `to_duckdb` wraps each one in `COALESCE(..., 0)`.
- `NUMERIC` becomes DuckDB's `DECIMAL` (18, 3), which rounds nanoseconds: the views never cast to
  NUMERIC (Durations are split into integer seconds and nanoseconds instead).
- Dot access into a JSON column (`json_payload.message`) is read by DuckDB as a struct field: the
  views always pass a JSONPath (`JSON_VALUE(json_payload, '$.message')`).
- `\\x..` escapes in raw strings become the characters themselves (a NUL would end DuckDB's
  string): the views use `[[:ascii:]]` rather than `[\\x00-\\x7f]`; only `\\x1b` (ESC) is written.
- `LTRIM(x)` trims every Unicode blank in BigQuery but only spaces in DuckDB: characters are
  always given (`LTRIM(x, ' ')`, the local normaliser's rule).
- `DIV(a - b, c)` is written `a - b // c` (the operands lose their parentheses, so `//` binds
  first): `to_duckdb` puts each compound operand of `DIV` in parentheses.
- `REGEXP_EXTRACT` returns its capturing group in BigQuery, but sqlglot counts the groups with
  Python's `re`, which refuses RE2 syntax such as `\\x{80}`, and then extracts the whole match:
  `to_duckdb` counts them with RE2 and asks for the group.
- `_TABLE_SUFFIX` has no DuckDB equivalent: it stays a column name; a DuckDB stand-in for a
  wildcard table is a view named like it that carries `_TABLE_SUFFIX` (see tests/warehouse).

>>> to_duckdb("SELECT COUNTIF(x > 1) AS n FROM t")
'SELECT COALESCE(COUNT_IF(x > 1), 0) AS n FROM t'
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

import re2
import sqlglot
from sqlglot import exp


def parse_bigquery(sql: str) -> exp.Expression:
    """Parse one GoogleSQL statement; raises `sqlglot.errors.ParseError` when it is not one.

    >>> parse_bigquery("SELECT 1 AS one").sql("bigquery")
    'SELECT 1 AS one'
    """
    return sqlglot.parse_one(sql, read="bigquery")


def _zero_countif(node: exp.Expression) -> exp.Expression:
    if isinstance(node, exp.CountIf) and not isinstance(node.parent, exp.Coalesce):
        return exp.Coalesce(this=node.copy(), expressions=[exp.Literal.number(0)])
    return node


def _paren_div(node: exp.Expression) -> exp.Expression:
    if isinstance(node, exp.IntDiv):
        for key in ("this", "expression"):
            arg = node.args.get(key)
            if isinstance(arg, exp.Binary):
                node.set(key, exp.Paren(this=arg.copy()))
    return node


def _extract_group(node: exp.Expression) -> exp.Expression:
    if isinstance(node, exp.RegexpExtract) and node.args.get("group") is None:
        pattern = node.args.get("expression")
        if isinstance(pattern, exp.RawString) or (isinstance(pattern, exp.Literal) and pattern.is_string):
            try:
                groups = re2.compile(pattern.this).groups
            except re2.error:
                groups = 0
            if groups == 1:
                node.set("group", exp.Literal.number(1))
    return node


def to_duckdb(sql: str) -> str:
    """The DuckDB text of a GoogleSQL query (module docstring: what is rewritten and why).

    >>> to_duckdb("SELECT DIV(a - 1, b + 1) AS q FROM t")
    'SELECT (a - 1) // (b + 1) AS q FROM t'
    """
    tree = parse_bigquery(sql).transform(_zero_countif).transform(_paren_div).transform(_extract_group)
    return tree.sql("duckdb")


def _literal(value: object) -> exp.Expression:
    if value is None:
        return exp.Null()
    if isinstance(value, bool):
        return exp.Boolean(this=value)
    if isinstance(value, (int, float)):
        return exp.Literal.number(repr(value))
    if isinstance(value, datetime):
        text = value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f+00")
        return exp.Cast(this=exp.Literal.string(text), to=exp.DataType.build("TIMESTAMPTZ"))
    if isinstance(value, (list, tuple)):
        return exp.Array(expressions=[_literal(v) for v in value])
    return exp.Literal.string(str(value))


def inline_parameters(sql: str, params: Mapping[str, object]) -> str:
    """The query with each named parameter (`@service`) written as a literal: text a user can
    paste where parameters cannot be given (the Log Analytics page).

    >>> inline_parameters("SELECT 1 FROM t WHERE s = @service", {"service": "api"})
    "SELECT 1 FROM t WHERE s = 'api'"
    """
    def put(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Parameter) and node.name in params:
            return _literal(params[node.name])
        return node

    return parse_bigquery(sql).transform(put).sql("bigquery")


def table_columns(sql: str) -> dict[str, set[str]]:
    """The columns a query reads from each table (`http_request.latency.seconds` for a record's
    field): the references in the SELECT that names the table, not those of its subqueries.
    BigQuery bills these.

    >>> sorted(table_columns("SELECT a.b, c FROM t WHERE _TABLE_SUFFIX > '1'")["t"])
    ['_TABLE_SUFFIX', 'a.b', 'c']
    """
    found: dict[str, set[str]] = {}
    for table in parse_bigquery(sql).find_all(exp.Table):
        select = table.find_ancestor(exp.Select)
        cols = found.setdefault(".".join(p.name for p in table.parts), set())
        if select is None:
            continue
        for col in select.find_all(exp.Column):
            if col.find_ancestor(exp.Select) is select:
                cols.add(".".join(part.name for part in col.parts))
    return found


__all__ = ["inline_parameters", "parse_bigquery", "table_columns", "to_duckdb"]
