"""The aggregates of `logaudit.analysis.aggregates`, written once in GoogleSQL.

Each function returns one SELECT over two common table expressions every query starts with
(`prelude`): `entries`, the canonical entries of the window's time range (a warehouse source's
entry view, `logaudit.warehouse.source`), and `e`, those of the window's service and revision
(`@service`, `@revision`). Queries that need the catalog add `m`, one row per (entry, matching
pattern) with the pattern's index `pid` (`MatchSQL`). The same text runs in BigQuery and,
transpiled by `logaudit.warehouse.dialect.to_duckdb`, on DuckDB: the tests' proof that the
warehouse path gives the local engine's numbers.

Only aggregates come back: rows per revision, per latency bin, per endpoint, per pattern and
revision, per template, per time bucket. Timestamps are compared in microseconds (BigQuery's
resolution). A computed key is computed in a subquery and grouped as a column there: the
emulator's translation to DuckDB does not group by a SELECT alias or position of an expression.

>>> sql = totals_sql("SELECT * FROM t", service=True)
>>> "WHERE service = @service" in sql
True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from logaudit.analysis.comparison import LATENCY_BINS_PER_E
from logaudit.analysis.templates import MASKS, MAX_TEMPLATE_CHARS
from logaudit.analysis.window import ID_SEGMENT_RE
from logaudit.catalog.pushdown import PatternSQL
from logaudit.core.googlesql import string_literal

#: The text of an entry as examples show it: the message, else `METHOD path -> status`.
TEXT = "COALESCE(message, CONCAT(http_method, ' ', http_path, ' -> ', CAST(http_status AS STRING)))"
#: Latency of a request that counts in percentiles and histograms (WebSocket upgrades left out).
LATENCY_ROW = "http_status <> 101 AND http_latency_ms IS NOT NULL"
#: A µs offset that makes every timestamp from year 1 on a non-negative number of 18 digits.
_MICROS_OFFSET = 62135596800000000


def latest_text(ts: str, text: str) -> str:
    """An aggregate: `text` of the row with the greatest `ts` (ties: the greatest text); the
    timestamp is prefixed as fixed-width digits so one MAX orders by both, on any engine."""
    return (f"SUBSTR(MAX(CONCAT(LPAD(CAST(UNIX_MICROS({ts}) + {_MICROS_OFFSET} AS STRING), 18, '0'), {text})), 19)")


def earliest_text(ts: str, text: str) -> str:
    """An aggregate: `text` of the row with the least `ts` (ties: the least text)."""
    return (f"SUBSTR(MIN(CONCAT(LPAD(CAST(UNIX_MICROS({ts}) + {_MICROS_OFFSET} AS STRING), 18, '0'), {text})), 19)")


def prelude(entries_sql: str, *, service: bool = False, revision: bool = False) -> str:
    """`WITH entries AS (...), e AS (...)`: the window's entries, then its service/revision filters."""
    conds = [c for c, on in (("service = @service", service), ("revision = @revision", revision)) if on]
    where = f" WHERE {' AND '.join(conds)}" if conds else ""
    return f"WITH entries AS (\n{entries_sql}\n),\ne AS (SELECT * FROM entries{where})"


# ------------------------------------------------------------------------------------ the catalog
@dataclass(frozen=True)
class MatchSQL:
    """The catalog's patterns in SQL: pattern `i` of `patterns` has `pid` i. `confirmed` maps a
    pattern index to the parameter holding the field values re-checked locally as matches."""

    patterns: Sequence[PatternSQL]
    confirmed: dict[int, str]

    def test(self, i: int) -> str | None:
        """The condition under which an entry matches pattern `i` (None: it matches none)."""
        p = self.patterns[i]
        parts = []
        if p.sure:
            parts.append(f"({p.sure})")
        if p.candidate and i in self.confirmed:
            parts.append(f"({p.candidate} AND {p.field} IN UNNEST(@{self.confirmed[i]}))")
        return " OR ".join(parts) or None

    def pids(self, only: Sequence[int] | None = None) -> str:
        """An array per entry: the index of each pattern it matches, NULL for the others."""
        wanted = range(len(self.patterns)) if only is None else only
        items = [f"IF({t}, {i}, NULL)" for i in wanted if (t := self.test(i))]
        return "[" + ", ".join(items or ["CAST(NULL AS INT64)"]) + "]"

    def cte(self, only: Sequence[int] | None = None, columns: str = "e.*") -> str:
        """`m AS (...)`: one row per (entry of `e`, pattern it matches), with `pid`."""
        return (f"m AS (SELECT {columns}, pid FROM e CROSS JOIN UNNEST({self.pids(only)}) AS pid "
                "WHERE pid IS NOT NULL)")

    def matched(self) -> str:
        """A per-entry condition: the entry matches at least one pattern."""
        return f"(SELECT COUNT(1) FROM UNNEST({self.pids()}) AS p WHERE p IS NOT NULL) > 0"


def candidates_sql(entries_sql: str, patterns: Sequence[PatternSQL], wanted: Sequence[int], limit: int) -> str:
    """The distinct (pid, field value) pairs to re-check locally, at most `limit` + 1 of them."""
    arms = [f"SELECT DISTINCT {i} AS pid, {patterns[i].field} AS v FROM entries "
            f"WHERE {patterns[i].candidate} AND {patterns[i].field} IS NOT NULL" for i in wanted]
    return f"WITH entries AS (\n{entries_sql}\n)\n" + "\nUNION ALL\n".join(arms) + f"\nLIMIT {limit + 1}"


# ------------------------------------------------------------------------------------ per window
def totals_sql(entries_sql: str, *, service: bool = False, revision: bool = False) -> str:
    return f"{prelude(entries_sql, service=service, revision=revision)}\nSELECT service, COUNT(*) AS n FROM e GROUP BY service"


def revisions_sql(entries_sql: str, *, service: bool = False, revision: bool = False, percentiles: bool = True) -> str:
    """Per (service, revision): counts, first/last seen, deploy time, exact latency percentiles.

    The deploy time is the first audit entry naming the revision in the time range, whatever the
    filters (an audit entry is not the revision's own). The latency sum is added in integer
    nanoseconds, so it does not depend on the order rows are added in."""
    pct = ""
    join = ""
    if percentiles:
        over = "OVER (PARTITION BY service, revision)"
        pct = (",\nlat AS (SELECT DISTINCT service, revision, "
               + ", ".join(f"PERCENTILE_CONT(http_latency_ms, {q}) {over} AS {name}"
                           for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)))
               + f" FROM e WHERE revision IS NOT NULL AND {LATENCY_ROW})")
        join = ("\nLEFT JOIN lat ON lat.service IS NOT DISTINCT FROM per.service AND lat.revision = per.revision")
    cols = "lat.p50, lat.p95, lat.p99" if percentiles else \
        "CAST(NULL AS FLOAT64) AS p50, CAST(NULL AS FLOAT64) AS p95, CAST(NULL AS FLOAT64) AS p99"
    return f"""{prelude(entries_sql, service=service, revision=revision)},
per AS (
  SELECT service, revision, MIN(timestamp) AS first_seen, MAX(timestamp) AS last_seen, COUNT(*) AS entries,
         COUNTIF(effective_severity_num >= 500) AS errors, COUNT(http_status) AS requests,
         COUNTIF(http_status BETWEEN 400 AND 499) AS status_4xx, COUNTIF(http_status >= 500) AS status_5xx,
         COUNTIF({LATENCY_ROW}) AS latency_n,
         SUM(IF({LATENCY_ROW}, CAST(ROUND(http_latency_ms * 1000000) AS INT64), NULL)) AS latency_ns
  FROM e WHERE revision IS NOT NULL GROUP BY service, revision
),
deploys AS (
  SELECT service, audit_revision AS revision, MIN(timestamp) AS deploy_time
  FROM entries WHERE audit_revision IS NOT NULL GROUP BY service, audit_revision
){pct}
SELECT per.service, per.revision, per.first_seen, per.last_seen, d.deploy_time, per.entries, per.errors,
       per.requests, per.status_4xx, per.status_5xx, per.latency_n, per.latency_ns, {cols}
FROM per LEFT JOIN deploys d ON d.service IS NOT DISTINCT FROM per.service AND d.revision = per.revision{join}"""


def _bin() -> str:
    return f"CAST(ROUND(LN(GREATEST(http_latency_ms, 0.001)) * {LATENCY_BINS_PER_E}) AS INT64)"


def histograms_sql(entries_sql: str, *, service: bool = False, revision: bool = False) -> str:
    return (f"{prelude(entries_sql, service=service, revision=revision)}\n"
            f"SELECT service, revision, bin, COUNT(*) AS n FROM (SELECT service, revision, {_bin()} AS bin FROM e "
            f"WHERE revision IS NOT NULL AND {LATENCY_ROW}) GROUP BY service, revision, bin")


def normalized_path(col: str = "http_path") -> str:
    """`window.normalize_path` in SQL: every segment that is an id becomes `{id}`. A match takes
    the slash after it, which may be the one before the next id: the second pass gets those."""
    segment = ID_SEGMENT_RE.pattern.removeprefix("^").removesuffix("$")
    one = f"REGEXP_REPLACE(@@, {string_literal('/' + segment + '/')}, '/{{id}}/')"
    twice = one.replace("@@", one.replace("@@", f"CONCAT('/', {col}, '/')"))
    return f"SUBSTR({twice}, 2, LENGTH({twice}) - 2)"


def paths_sql(entries_sql: str, *, service: bool = False, revision: bool = False) -> str:
    """The distinct normalized paths of the window's requests (redacted locally, `endpoints_sql`)."""
    return (f"{prelude(entries_sql, service=service, revision=revision)}\n"
            f"SELECT DISTINCT {normalized_path()} AS path FROM e WHERE http_status IS NOT NULL")


def endpoints_sql(entries_sql: str, redacted: Sequence[str] = (), *, service: bool = False,
                  revision: bool = False) -> str:
    """Per (service, method, path, status): count and exact p95 latency. A normalized path that
    redaction changes becomes its redacted form `redacted[i]` when it is one of the parameter
    `@renamed_i` (so redacted paths merge, and the paths holding secrets stay out of the text)."""
    path = normalized_path()
    if redacted:
        cases = " ".join(f"WHEN np IN UNNEST(@renamed_{i}) THEN {string_literal(v)}" for i, v in enumerate(redacted))
        path = f"CASE {cases} ELSE np END"
    else:
        path = "np"
    keys = "service, http_method, path, http_status"
    return f"""{prelude(entries_sql, service=service, revision=revision)},
r AS (SELECT service, http_method, {path} AS path, http_status, http_latency_ms
      FROM (SELECT *, {normalized_path()} AS np FROM e WHERE http_status IS NOT NULL)),
c AS (SELECT {keys}, COUNT(*) AS n FROM r GROUP BY {keys}),
lat AS (SELECT DISTINCT {keys}, PERCENTILE_CONT(http_latency_ms, 0.95) OVER (PARTITION BY {keys}) AS p95
        FROM r WHERE {LATENCY_ROW})
SELECT c.service, c.http_method AS method, c.path, c.http_status AS status, c.n, lat.p95
FROM c LEFT JOIN lat ON lat.service IS NOT DISTINCT FROM c.service AND lat.http_method IS NOT DISTINCT FROM c.http_method
  AND lat.path IS NOT DISTINCT FROM c.path AND lat.http_status = c.http_status"""


def patterns_sql(entries_sql: str, matches: MatchSQL, *, service: bool = False, revision: bool = False,
                 examples: bool = True) -> str:
    """Per (pattern, revision): matches, first and last, and the latest match's text."""
    example = latest_text("timestamp", TEXT) if examples else "CAST(NULL AS STRING)"
    return f"""{prelude(entries_sql, service=service, revision=revision)},
{matches.cte()}
SELECT pid, revision, COUNT(*) AS n, MIN(timestamp) AS first_seen, MAX(timestamp) AS last_seen, {example} AS example
FROM m GROUP BY pid, revision"""


def _quoted(text: str) -> str:
    """A quoted GoogleSQL literal with control characters as `\\xHH` escapes (a replacement text)."""
    out = "".join("\\\\" if c == "\\" else "\\'" if c == "'" else f"\\x{ord(c):02x}" if ord(c) < 32 else c
                  for c in text)
    return f"'{out}'"


def field_values_sql(entries_sql: str, matches: MatchSQL, arms: Sequence[tuple[int, str, str]], *,
                     service: bool = False, revision: bool = False, top: int = 50) -> str:
    """The most frequent values of named groups, per (pid, name): each arm (pattern index, group
    name, RE2 with that group as its only capture) extracts from the rows its pattern matches in
    SQL (`sure`); rows matched after a local check are counted by `local_texts_sql`."""
    union = "\nUNION ALL\n".join(
        f"SELECT {i} AS pid, {string_literal(name)} AS name, "
        f"REGEXP_EXTRACT({matches.patterns[i].field}, {string_literal(expr)}) AS v FROM e WHERE {matches.patterns[i].sure}"
        for i, name, expr in arms)
    return f"""{prelude(entries_sql, service=service, revision=revision)},
x AS (
{union}
),
c AS (SELECT pid, name, v, COUNT(*) AS n FROM x WHERE v IS NOT NULL GROUP BY pid, name, v)
SELECT pid, name, v, n FROM (
  SELECT pid, name, v, n, ROW_NUMBER() OVER (PARTITION BY pid, name ORDER BY n DESC, v) AS rk FROM c
) WHERE rk <= {top}"""


def local_texts_sql(entries_sql: str, matches: MatchSQL, wanted: Sequence[int], *, service: bool = False,
                    revision: bool = False) -> str:
    """Per (pid, text): the rows of pattern `pid` matched after a local check (`MatchSQL.confirmed`)."""
    union = "\nUNION ALL\n".join(
        f"SELECT {i} AS pid, {matches.patterns[i].field} AS v FROM e WHERE {matches.patterns[i].candidate} "
        f"AND {matches.patterns[i].field} IN UNNEST(@{matches.confirmed[i]})"
        + (f" AND NOT ({matches.patterns[i].sure})" if matches.patterns[i].sure else "")
        for i in wanted)
    return (f"{prelude(entries_sql, service=service, revision=revision)},\nx AS (\n{union}\n)\n"
            "SELECT pid, v, COUNT(*) AS n FROM x GROUP BY pid, v")


def template_expr(col: str = "message") -> str:
    """`templates.template` in SQL (what `templates.template_sql` is for DuckDB)."""
    expr = f"SUBSTR({col}, 1, {MAX_TEMPLATE_CHARS})"
    for pattern, replacement in MASKS:
        expr = f"REGEXP_REPLACE({expr}, {string_literal(pattern)}, {_quoted(replacement)})"
    return expr


def templates_sql(entries_sql: str, matches: MatchSQL, trigger: str | None = None, *, service: bool = False,
                  revision: bool = False) -> str:
    """Per (template, service, revision) of messages at `@level` or above no pattern matched.

    Messages are redacted before they are templated (as locally): a message the redaction
    `trigger` finds is returned as `raw`, grouped by itself, for the caller to redact and
    template; the others are templated here (`template` NULL or `raw` NULL, never both)."""
    secret = f"REGEXP_CONTAINS(message, {string_literal(trigger)})" if trigger else "FALSE"
    return f"""{prelude(entries_sql, service=service, revision=revision)},
u AS (
  SELECT service, revision, message, effective_severity_num AS sev, timestamp FROM e
  WHERE effective_severity_num >= @level AND message IS NOT NULL AND NOT ({matches.matched()})
),
per AS (  -- identical messages are templated once
  SELECT service, revision, message, COUNT(*) AS n, MAX(sev) AS sev, MIN(timestamp) AS first_seen,
         MAX(timestamp) AS last_seen, {secret} AS secret
  FROM u GROUP BY service, revision, message
)
SELECT template, raw, service, revision, SUM(n) AS n, MAX(sev) AS sev, MIN(first_seen) AS first_seen,
       MAX(last_seen) AS last_seen, {latest_text("last_seen", "message")} AS example
FROM (SELECT *, IF(secret, NULL, {template_expr()}) AS template, IF(secret, message, NULL) AS raw FROM per)
GROUP BY template, raw, service, revision"""


def bucket_expr(ts: str = "timestamp") -> str:
    """The index of a timestamp's time bucket: `@step` µs wide, counted from the epoch, rounded
    down (`DIV` rounds towards zero: a timestamp before 1970 with a remainder is one lower)."""
    us = f"UNIX_MICROS({ts})"
    return f"(DIV({us}, @step) - IF(MOD({us}, @step) < 0, 1, 0))"


def timeline_sql(entries_sql: str, matches: MatchSQL, categories: dict[str, list[int]], *,
                 service: bool = False, revision: bool = False) -> str:
    """Per (bucket, service, revision) with entries: counts and matches per pattern category."""
    cats = ", ".join(f"COUNTIF(pid IN ({', '.join(map(str, ids))})) AS {c}" if ids else f"0 AS {c}"
                     for c, ids in categories.items())
    zero = ", ".join(f"COALESCE(k.{c}, 0) AS {c}" for c in categories)
    return f"""{prelude(entries_sql, service=service, revision=revision)},
{matches.cte(columns="e.timestamp, e.service, e.revision")},
a AS (
  SELECT b, service, revision, COUNT(*) AS entries, COUNTIF(effective_severity_num >= 500) AS errors,
         COUNT(http_status) AS requests, COUNTIF(http_status >= 500) AS status_5xx
  FROM (SELECT *, {bucket_expr()} AS b FROM e WHERE revision IS NOT NULL) GROUP BY b, service, revision
),
k AS (SELECT b, service, revision, {cats}
      FROM (SELECT *, {bucket_expr()} AS b FROM m WHERE revision IS NOT NULL) GROUP BY b, service, revision)
SELECT a.b, a.service, a.revision, a.entries, a.errors, a.requests, a.status_5xx, {zero}
FROM a LEFT JOIN k ON k.b = a.b AND k.service IS NOT DISTINCT FROM a.service AND k.revision = a.revision"""


def status_series_sql(entries_sql: str, *, service: bool = False, revision: bool = False) -> str:
    return (f"{prelude(entries_sql, service=service, revision=revision)}\n"
            "SELECT b, status_class, COUNT(*) AS requests FROM ("
            f"SELECT {bucket_expr()} AS b, CONCAT(CAST(DIV(http_status, 100) AS STRING), 'xx') AS status_class "
            "FROM e WHERE http_status IS NOT NULL) GROUP BY b, status_class")


# ------------------------------------------------------------------------------------ health
#: A request that succeeded (a WebSocket upgrade, 101, is not one), and one that failed.
_OK = "http_status BETWEEN 200 AND 399"
_BAD = "http_status <> 101 AND NOT http_status BETWEEN 200 AND 399"
#: An error that is not a request, with a text: what a start's root cause is read from.
_TEXT_ERROR = "http_status IS NULL AND effective_severity_num >= 500 AND message IS NOT NULL"
#: The lifecycle marks of `HealthStats`, each a flag column `is_<kind>` of `lifecycle`.
MARK_KINDS = ("start", "boot_failure", "startup_probe", "ready")


def lifecycle(matches: MatchSQL, marks: dict[str, Sequence[int]], also: str) -> str:
    """`k AS (...), s AS (...)`: the entries of `e` with a revision that carry a lifecycle mark
    (`marks`: kind of `MARK_KINDS` -> indexes of its patterns) or meet `also`, each with its flags
    and `seq`, the number of its instance's starts up to it, ordered by (timestamp, start first,
    insertId): the entries of one start are those of its `seq` (0: before the instance's first
    start in the window; two starts at one instant: the later one's)."""
    flags = []
    for kind in MARK_KINDS:
        tests = [t for i in marks.get(kind, ()) if (t := matches.test(i))]
        flags.append(f"COALESCE({' OR '.join(f'({t})' for t in tests) or 'FALSE'}, FALSE) AS is_{kind}")
    marked = " OR ".join(f"is_{kind}" for kind in MARK_KINDS)
    return f"""k AS (
  SELECT service, revision, instance_id, timestamp, insert_id, http_status, message, effective_severity_num,
         {TEXT} AS text, {", ".join(flags)}
  FROM e WHERE revision IS NOT NULL
),
s AS (
  SELECT *, {marked} AS marked,
         SUM(IF(is_start, 1, 0)) OVER (PARTITION BY service, revision, instance_id
                                      ORDER BY timestamp, is_start DESC, insert_id
                                      ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS seq
  FROM k WHERE {marked} OR ({also})
)"""


def health_sql(entries_sql: str, matches: MatchSQL, marks: dict[str, Sequence[int]], *, service: bool = False,
               revision: bool = False) -> str:
    """Per (service, revision) with a lifecycle mark or a request, and per evidence kind of it: the
    start counts (`HealthStats`) and the kind's entries, first, last and latest text (ties: the
    greatest insertId). A start is ready by a READY mark or a successful request of its segment."""
    kinds = [f"IF(is_{kind}, '{kind}', NULL)" for kind in MARK_KINDS]
    kinds += ["IF(http_status IS NOT NULL, 'request', NULL)", f"IF({_BAD}, 'failed_request', NULL)"]
    on = "{a}.service IS NOT DISTINCT FROM per.service AND {a}.revision = per.revision"
    return f"""{prelude(entries_sql, service=service, revision=revision)},
{lifecycle(matches, marks, "http_status IS NOT NULL")},
ev AS (
  SELECT service, revision, kind, timestamp, text,
         ROW_NUMBER() OVER (PARTITION BY service, revision, kind ORDER BY timestamp DESC, insert_id DESC) AS rk
  FROM s CROSS JOIN UNNEST([{", ".join(kinds)}]) AS kind WHERE kind IS NOT NULL
),
evidence AS (
  SELECT service, revision, kind, COUNT(*) AS n, MIN(timestamp) AS lo, MAX(timestamp) AS hi,
         MAX(IF(rk = 1, text, NULL)) AS example
  FROM ev GROUP BY service, revision, kind
),
segs AS (
  SELECT service, revision, instance_id, seq, LOGICAL_OR(is_boot_failure) AS failed,
         LOGICAL_OR(is_startup_probe) AS probe, LOGICAL_OR(is_ready OR COALESCE({_OK}, FALSE)) AS ready
  FROM s WHERE seq > 0 GROUP BY service, revision, instance_id, seq
),
starts AS (
  SELECT service, revision, COUNTIF(failed) AS failed, COUNTIF(probe) AS probe, COUNTIF(ready) AS ready
  FROM segs GROUP BY service, revision
),
per AS (
  SELECT service, revision, COUNTIF(is_start) AS starts, COUNTIF(marked) AS marked, COUNT(http_status) AS requests,
         COUNTIF({_OK}) AS ok
  FROM s GROUP BY service, revision
)
SELECT per.service, per.revision, per.starts, COALESCE(g.failed, 0) AS failed, COALESCE(g.probe, 0) AS probe,
       COALESCE(g.ready, 0) AS ready, per.requests, per.ok, v.kind, v.n, v.lo, v.hi, v.example
FROM per
LEFT JOIN starts g ON {on.format(a="g")}
LEFT JOIN evidence v ON {on.format(a="v")}
WHERE per.marked > 0 OR per.requests > 0"""


def root_causes_sql(entries_sql: str, matches: MatchSQL, marks: dict[str, Sequence[int]], *,
                    service: bool = False, revision: bool = False) -> str:
    """Per (service, revision, message) that is a start's first error (the first entry of its
    segment that is an error, not a request, with a text; ties: the least insertId): how many
    starts, the first and last such error. Its root-cause line is cut from the message locally."""
    return f"""{prelude(entries_sql, service=service, revision=revision)},
{lifecycle(matches, marks, _TEXT_ERROR)},
f AS (
  SELECT service, revision, timestamp, message,
         ROW_NUMBER() OVER (PARTITION BY service, revision, instance_id, seq ORDER BY timestamp, insert_id) AS rk
  FROM s WHERE seq > 0 AND {_TEXT_ERROR}
)
SELECT service, revision, message, COUNT(*) AS starts, MIN(timestamp) AS lo, MAX(timestamp) AS hi
FROM f WHERE rk = 1 GROUP BY service, revision, message"""


__all__ = ["LATENCY_ROW", "MARK_KINDS", "TEXT", "MatchSQL", "bucket_expr", "candidates_sql", "earliest_text",
           "endpoints_sql", "health_sql", "histograms_sql", "latest_text", "lifecycle", "normalized_path",
           "paths_sql", "patterns_sql", "prelude", "revisions_sql", "root_causes_sql", "status_series_sql",
           "template_expr", "templates_sql", "timeline_sql", "totals_sql"]
