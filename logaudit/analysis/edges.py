"""Aggregates of the hours a window cuts, from small cached per-hour slices of rows.

`FileAggregates` (`logaudit.analysis.observe`) keeps aggregates per entry file and hour. A window that starts or ends
mid-hour (``--since 6h`` at any time of day) needs the rows of the two hours it cuts. Reading
them from the entry files decodes whole row groups and runs several SQL aggregations
(docs/compare.md, "Speed", has the figures). Instead, the first window that cuts an
hour keeps that hour's rows as an Arrow file (only the columns the aggregates use, the pattern
matches, and the templates of unmatched messages), sorted by time. Any later window cutting the
same hour, at any instant, takes a contiguous range of it and aggregates it in Arrow:

>>> from logaudit.analysis.audit import Audit
>>> from logaudit.analysis.observe import FileAggregates
>>> audit = Audit("logaudit-store")                                   # doctest: +SKIP
>>> w = Window(since=..., until=...)                                  # doctest: +SKIP
>>> FileAggregates(audit, audit.connection(w), w, 400)                # doctest: +SKIP

The result has the rows and columns SQL over the same rows gives (tested against it). Slices are
the store's derived data kind ``slices`` (`logaudit.store.derived`), whose shape is that of the
two aggregate kinds (catalog, severity level, masks, redaction, latency bins, path rules) and
the slice format (`slice_shape`). A slice is keyed by that shape, the hour and the entry files
that have rows in it (name and size; entry files never change), so a pull that adds a file, or
an edited pattern, makes a new one. The newest `KEEP` slice files are kept.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

import logaudit.analysis.comparison as comparison_module
from logaudit.analysis.comparison import BUCKET_NS, LATENCY_BINS_PER_E
from logaudit.analysis.templates import template_sql
from logaudit.catalog.cache import chunk_files
from logaudit.core.db import arrow_table, sql_list, time_filter
from logaudit.core.errors import StoreWriteError
from logaudit.core.timeparse import to_ns

KEEP = 24  # slice files kept (two per hour: rows and pattern matches)
ROWS_COLUMNS = ("file", "entry_row", "ts", "service", "revision", "sev", "status", "err", "s4", "s5", "lat_ok",
                "audit_revision", "method", "path", "bin", "instance_id", "ok", "bad", "req_ts", "ok_ts", "bad_ts",
                "err_ts", "message", "template")
HITS_COLUMNS = ("file", "entry_row", "ts", "service", "revision", "pattern_id")

_TS = pa.timestamp("ns", tz="UTC")  # what DuckDB returns for TIMESTAMPTZ in the session zone of `db.connect`
#: The columns of `FileAggregates` parts (see `_compute_base` / `_compute_cat`), without `filename`.
BASE_SCHEMA = pa.schema([
    ("kind", pa.string()), ("bucket", pa.int64()), ("service", pa.string()), ("revision", pa.string()),
    ("first_ts", _TS), ("last_ts", _TS), ("n", pa.int64()), ("errors", pa.int64()), ("requests", pa.int64()),
    ("status_4xx", pa.int64()), ("status_5xx", pa.int64()), ("latency_n", pa.int64()), ("latency_sum", pa.float64()),
    ("bin", pa.int32()), ("method", pa.string()), ("path", pa.string()), ("status", pa.int32()),
    ("latencies", pa.list_(pa.float64())), ("ok_n", pa.int64()), ("req_first", _TS), ("req_last", _TS),
    ("bad_n", pa.int64()), ("bad_first", _TS), ("bad_last", _TS), ("instance_id", pa.string()),
    ("ok_first", _TS), ("ok_last", _TS), ("err_ts", pa.list_(_TS)),
])
CAT_SCHEMA = pa.schema([
    ("kind", pa.string()), ("bucket", pa.int64()), ("service", pa.string()), ("revision", pa.string()),
    ("key", pa.string()), ("sev", pa.int16()), ("n", pa.int64()), ("first_ts", _TS), ("example_ts", _TS),
    ("example_file", pa.string()), ("example_row", pa.int64()), ("example", pa.string()),
])



def hour_spans(since_ns: int | None, until_ns: int | None, bucket_ns: int) -> list[tuple[int, int, int]]:
    """The (hour, start, end) pieces of a window that do not cover their hour, in nanoseconds.

    >>> h = 3_600 * 10**9
    >>> hour_spans(h // 2, 3 * h, h)
    [(0, 1800000000000, 3600000000000)]
    >>> hour_spans(h // 2, h // 2 + 5, h)
    [(0, 1800000000000, 1800000000005)]
    """
    lo = None if since_ns is None else -(-since_ns // bucket_ns)
    hi = None if until_ns is None else until_ns // bucket_ns
    if lo is not None and hi is not None and lo > hi:  # inside one hour
        return [(hi, since_ns, until_ns)] if since_ns < until_ns else []  # type: ignore[list-item]
    spans = []
    if since_ns is not None and since_ns < lo * bucket_ns:  # type: ignore[operator]
        spans.append((lo - 1, since_ns, lo * bucket_ns))  # type: ignore[operator]
    if until_ns is not None and hi * bucket_ns < until_ns:  # type: ignore[operator]
        spans.append((hi, hi * bucket_ns, until_ns))  # type: ignore[operator]
    return spans


def slice_shape(agg: Any) -> dict[str, Any]:
    """What shapes the slices of one `FileAggregates`: its two aggregate shapes and the slice columns."""
    return {"aggregates": agg.base_data.digest, "aggregates-cat": agg.cat_data.digest,
            "bucket_ns": comparison_module.BUCKET_NS,
            "rows_columns": list(ROWS_COLUMNS), "hits_columns": list(HITS_COLUMNS),
            "sql": hashlib.sha256(_rows_sql("SRC", "WHERE", "TEMPLATE").encode()).hexdigest()[:16]}


class EdgeSlices:
    """Builds, caches and aggregates the per-hour slices of one `FileAggregates`."""

    def __init__(self, agg: Any) -> None:
        self.agg = agg
        self.data = agg.store.derived("slices", slice_shape(agg))
        self.folder = self.data.folder

    def aggregates(self, spans: list[tuple[int, int, int]], files: list[Path],
                   ranges: dict[Path, tuple[Any, Any]], only: list[Path]) -> tuple[pa.Table | None, pa.Table | None]:
        """Base and category aggregates (`BASE_SCHEMA`, `CAT_SCHEMA`) of the rows of the files `only`
        inside the spans. A slice holds every file of `files` (by `ranges`) with rows in its hour, so
        that it does not depend on the window."""
        base, cat = [], []
        keep = pa.array([self.agg.file_key(f) for f in only], pa.string())
        for hour, start, end in spans:
            lo, hi = hour * BUCKET_NS, (hour + 1) * BUCKET_NS
            in_hour = [f for f in files if ranges.get(f) and ranges[f][0] is not None
                       and to_ns(ranges[f][0]) < hi and to_ns(ranges[f][1]) >= lo]
            if not in_hour:
                continue
            rows, hits = self._slice(hour, in_hour)
            rows, hits = (_mine(_between(t, start, end), keep) for t in (rows, hits))
            base.append(_base(rows, hour))
            cat.append(_cat(rows, hits, hour))
        return (pa.concat_tables(base, promote_options="permissive") if base else None,
                pa.concat_tables(cat, promote_options="permissive") if cat else None)

    # ------------------------------------------------------------------ the cached slices
    def _slice(self, hour: int, files: list[Path]) -> tuple[pa.Table, pa.Table]:
        import pyarrow.feather as feather

        digest = self.data.key(hour, *sorted(f"{self.agg.file_key(f)}\t{f.stat().st_size}" for f in files))
        paths = [self.folder / f"{hour}-{digest}-{kind}.arrow" for kind in ("rows", "hits")]
        try:
            rows, hits = (feather.read_table(p, memory_map=True) for p in paths)
            if tuple(rows.column_names) == ROWS_COLUMNS and tuple(hits.column_names) == HITS_COLUMNS:
                rows.validate(full=True)  # damage inside the data (offsets, indices) raises here, not later
                hits.validate(full=True)
                return rows, hits
        except (OSError, pa.ArrowInvalid):  # missing or damaged: built again
            pass
        rows, hits = self._build(hour, files)
        if not self.data.writable:  # a read-only store: computed, not cached
            return rows, hits
        try:
            for path, table in zip(paths, (rows, hits), strict=True):
                self.data.write(path, lambda tmp, t=table: feather.write_feather(t, tmp, compression="uncompressed"))
            self._prune()
        except (OSError, StoreWriteError):  # a full cache only costs speed
            pass
        return rows, hits

    def _prune(self) -> None:
        """The newest KEEP slice files of this shape stay; other shapes go once unused (`Derived.prune`)."""
        olds = sorted(self.folder.glob("*.arrow"), key=lambda p: p.stat().st_mtime, reverse=True)
        for old in olds[KEEP:]:
            old.unlink(missing_ok=True)
        self.data.prune(per_entry=False)

    def _build(self, hour: int, files: list[Path]) -> tuple[pa.Table, pa.Table]:
        """The hour's rows of `files` (sorted by time, then message, then row) and their pattern matches."""
        agg, con = self.agg, self.agg.con
        start = datetime.fromtimestamp(hour * BUCKET_NS // 10**9, UTC)
        end = datetime.fromtimestamp((hour + 1) * BUCKET_NS // 10**9, UTC)
        src = f"read_parquet({sql_list([str(f) for f in files])}, filename=true, hive_partitioning=false, file_row_number=true)"
        keys = pa.table({"path": [str(f) for f in files], "entry_key": [agg.file_key(f) for f in files]})
        chunks = chunk_files(agg.root, files, None, set(agg.fingerprints))
        hits_sql = "SELECT NULL::VARCHAR AS file, NULL::BIGINT AS entry_row, NULL::TIMESTAMPTZ AS ts, NULL::VARCHAR AS service, " \
                   "NULL::VARCHAR AS revision, NULL::VARCHAR AS pattern_id WHERE false"
        if chunks:
            hits_sql = f"""SELECT c.entry_file AS file, c.entry_row, c.timestamp AS ts, c.service, c.revision, p.pattern_id
                           FROM read_parquet({sql_list(chunks)}, hive_partitioning=false) c
                           JOIN logaudit_patterns_table p ON c.fingerprint = p.fingerprint
                           WHERE {time_filter('c.timestamp', start, end)}
                             AND c.entry_file IN (SELECT entry_key FROM logaudit_edge_keys)"""
        con.register("logaudit_edge_keys", keys)
        try:
            hits = arrow_table(con, f"SELECT * FROM ({hits_sql}) ORDER BY ts, entry_row, file, pattern_id")
            con.register("logaudit_edge_hits", hits)
            agg.register_paths("logaudit_edge_paths", src, time_filter("timestamp", start, end))
            rows = arrow_table(con, _rows_sql(src, time_filter("s.timestamp", start, end),
                                         template_sql(agg.redactor.sql("message"))), {"level": agg.level})
        finally:
            for name in ("logaudit_edge_keys", "logaudit_edge_hits", "logaudit_edge_paths"):
                con.unregister(name)
        return (_encode(rows, ("file", "service", "revision", "audit_revision", "method", "path", "template", "instance_id")),
                _encode(hits, ("file", "service", "revision", "pattern_id")))


def _rows_sql(src: str, where: str, template: str) -> str:
    """The query of a slice's rows: entry files `src` (a `read_parquet(...)`), rows `where`, and
    `template` the templating expression of their messages."""
    return f"""
                WITH m AS (SELECT DISTINCT file, entry_row FROM logaudit_edge_hits),
                r AS (
                    SELECT k.entry_key AS file, s.file_row_number AS entry_row, s.timestamp AS ts, s.service, s.revision,
                           s.effective_severity_num AS sev, s.http_status AS status,
                           coalesce((s.effective_severity_num >= 500)::TINYINT, 0) AS err,
                           coalesce((s.http_status BETWEEN 400 AND 499)::TINYINT, 0) AS s4,
                           coalesce((s.http_status >= 500)::TINYINT, 0) AS s5,
                           CASE WHEN s.http_status <> 101 THEN s.http_latency_ms END AS lat_ok,
                           s.audit_revision, s.http_method AS method, p.path,
                           CASE WHEN s.http_status <> 101 AND s.http_latency_ms IS NOT NULL THEN CAST(round(
                               ln(greatest(s.http_latency_ms, 0.001)) * {LATENCY_BINS_PER_E}) AS INTEGER) END AS bin,
                           s.instance_id,
                           coalesce((s.http_status BETWEEN 200 AND 399)::TINYINT, 0) AS ok,
                           coalesce((s.http_status <> 101 AND NOT s.http_status BETWEEN 200 AND 399)::TINYINT, 0) AS bad,
                           CASE WHEN s.http_status IS NOT NULL THEN s.timestamp END AS req_ts,
                           CASE WHEN s.http_status BETWEEN 200 AND 399 THEN s.timestamp END AS ok_ts,
                           CASE WHEN s.http_status <> 101 AND NOT s.http_status BETWEEN 200 AND 399
                                THEN s.timestamp END AS bad_ts,
                           CASE WHEN s.http_status IS NULL AND s.effective_severity_num >= 500
                                 AND s.message IS NOT NULL THEN s.timestamp END AS err_ts,
                           CASE WHEN s.effective_severity_num >= $level AND NOT EXISTS (
                               SELECT 1 FROM m WHERE m.file = k.entry_key AND m.entry_row = s.file_row_number)
                               THEN s.message END AS message
                    FROM {src} s JOIN logaudit_edge_keys k ON k.path = s.filename
                    LEFT JOIN logaudit_edge_paths p ON p.raw = s.http_path AND s.http_status IS NOT NULL
                    WHERE {where}
                )
                SELECT *, {template} AS template
                FROM r ORDER BY ts, message, entry_row, file
"""


def _encode(table: pa.Table, columns: tuple[str, ...]) -> pa.Table:
    """Repeated strings as dictionaries: a third of the size, and grouping on them is twice as fast."""
    for name in columns:
        i = table.schema.get_field_index(name)
        table = table.set_column(i, name, pc.dictionary_encode(table[name]))
    return table


# ---------------------------------------------------------------------- aggregation in Arrow
def _between(table: pa.Table, start: int, end: int) -> pa.Table:
    """The rows with start <= ts < end of a table sorted by ts."""
    ts = np.asarray(table["ts"].combine_chunks().cast(pa.int64()).fill_null(np.iinfo(np.int64).min))
    i, j = np.searchsorted(ts, [start, end], side="left")
    return table.slice(i, j - i)


def _mine(table: pa.Table, keys: pa.Array) -> pa.Table:
    """The rows of the entry files `keys` (usually all of them)."""
    files = table["file"].combine_chunks()
    inside = pc.is_in(files.dictionary, value_set=keys)
    if pc.all(inside).as_py() is not False:
        return table
    return table.filter(pc.take(inside, files.indices))


def _group(table: pa.Table, keys: list[str], aggs: list[tuple[Any, ...]]) -> pa.Table:
    # ordered ("last") aggregates need a single thread; the inputs are small
    return table.group_by(keys, use_threads=False).aggregate(aggs)


def _base(rows: pa.Table, hour: int) -> pa.Table:
    parts = []
    rev = _group(rows, ["file", "service", "revision"], [
        ("ts", "min"), ("ts", "max"), ([], "count_all"), ("err", "sum"), ("status", "count"),
        ("s4", "sum"), ("s5", "sum"), ("lat_ok", "count"), ("lat_ok", "sum"), ("ok", "sum"), ("req_ts", "min"),
        ("req_ts", "max"), ("bad", "sum"), ("bad_ts", "min"), ("bad_ts", "max")])
    parts.append(_named(rev, "rev", hour, {
        "ts_min": "first_ts", "ts_max": "last_ts", "count_all": "n", "err_sum": "errors", "status_count": "requests",
        "s4_sum": "status_4xx", "s5_sum": "status_5xx", "lat_ok_count": "latency_n", "lat_ok_sum": "latency_sum",
        "ok_sum": "ok_n", "req_ts_min": "req_first", "req_ts_max": "req_last", "bad_sum": "bad_n",
        "bad_ts_min": "bad_first", "bad_ts_max": "bad_last"}))
    marked = rows.filter(pc.and_(pc.or_(pc.equal(rows["ok"], 1), pc.is_valid(rows["err_ts"])),
                                 pc.is_valid(rows["revision"])))
    inst = _group(marked, ["file", "service", "revision", "instance_id"],
                  [("ok", "sum"), ("ok_ts", "min"), ("ok_ts", "max"), ("err_ts", "list")])
    inst = inst.set_column(inst.schema.get_field_index("err_ts_list"), "err_ts", _drop_nulls(inst["err_ts_list"]))
    parts.append(_named(inst, "inst", hour, {"ok_sum": "ok_n", "ok_ts_min": "ok_first", "ok_ts_max": "ok_last"}))
    deployed = rows.filter(pc.is_valid(rows["audit_revision"]))
    dep = _group(deployed, ["file", "service", "audit_revision"], [("ts", "min"), ([], "count_all")])
    dep = dep.append_column("last_ts", dep["ts_min"])
    parts.append(_named(dep, "deploy", hour, {"audit_revision": "revision", "ts_min": "first_ts", "count_all": "n"}))
    hist = _group(rows.filter(pc.is_valid(rows["bin"])), ["file", "service", "revision", "bin"], [([], "count_all")])
    parts.append(_named(hist, "hist", hour, {"count_all": "n"}))
    requests = rows.filter(pc.is_valid(rows["status"]))
    ep = _group(requests, ["file", "service", "revision", "method", "path", "status"],
                [([], "count_all"), ("lat_ok", "list")])
    ep = ep.set_column(ep.schema.get_field_index("lat_ok_list"), "latencies", _drop_nulls(ep["lat_ok_list"]))
    parts.append(_named(ep, "endpoint", hour, {"count_all": "n"}))
    return _conform(parts, BASE_SCHEMA)


def _cat(rows: pa.Table, hits: pa.Table, hour: int) -> pa.Table:
    pat = _group(hits, ["file", "service", "revision", "pattern_id"],
                 [([], "count_all"), ("ts", "min"), ("ts", "max"), ("entry_row", "last")])
    pat = pat.append_column("example_file", pat["file"])
    pat = _named(pat, "pattern", hour, {"pattern_id": "key", "count_all": "n", "ts_min": "first_ts",
                                         "ts_max": "example_ts", "entry_row_last": "example_row"})
    unmatched = rows.filter(pc.is_valid(rows["template"]))
    tpl = _group(unmatched, ["file", "service", "revision", "template", "sev"],
                 [([], "count_all"), ("ts", "min"), ("ts", "max"), ("message", "last")])
    tpl = _named(tpl, "template", hour, {"template": "key", "count_all": "n", "ts_min": "first_ts",
                                          "ts_max": "example_ts", "message_last": "example"})
    return _conform([pat, tpl], CAT_SCHEMA)


def _named(table: pa.Table, kind: str, hour: int, names: dict[str, str]) -> pa.Table:
    table = table.rename_columns([names.get(c, c) for c in table.column_names])
    n = table.num_rows
    return table.append_column("kind", pa.array([kind] * n, pa.string())) \
        .append_column("bucket", pa.array(np.full(n, hour, dtype=np.int64)))


def _conform(parts: list[pa.Table], schema: pa.Schema) -> pa.Table:
    """The parts in `schema`'s columns and types (missing columns null; `file` dropped)."""
    out = []
    for t in parts:
        cols = [t[f.name].cast(f.type) if f.name in t.column_names else pa.nulls(t.num_rows, f.type) for f in schema]
        out.append(pa.Table.from_arrays(cols, schema=schema))
    return pa.concat_tables(out)


def _drop_nulls(lists: Any) -> pa.Array:
    """Lists without their null items; a list left empty becomes null (like SQL `list() FILTER`)."""
    lists = lists.combine_chunks() if isinstance(lists, pa.ChunkedArray) else lists
    values, parents = pc.list_flatten(lists), pc.list_parent_indices(lists)
    keep = pc.is_valid(values)
    counts = np.bincount(np.asarray(parents.filter(keep)), minlength=len(lists))
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), values.filter(keep), mask=pa.array(counts == 0))
