"""Observing: pick the two revisions and aggregate, per entry file and cached, what `judge` needs."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import logaudit.analysis.templates as template_module
import logaudit.analysis.window as window_module
from logaudit.analysis.aggregates import grouping, latest_example
from logaudit.analysis.comparison import (
    BUCKET_NS,
    LATENCY_BINS_PER_E,
    Observations,
    PatternCounts,
    Side,
    TemplateCounts,
)
from logaudit.analysis.edges import EdgeSlices, hour_spans
from logaudit.analysis.gate import Gate
from logaudit.analysis.templates import template_sql
from logaudit.analysis.window import Window, iso, normalize_path, resolve_window
from logaudit.catalog.cache import chunk_files
from logaudit.core.db import arrow_table, sql_list
from logaudit.core.errors import StoreWriteError, UsageError
from logaudit.core.timeparse import to_ns
from logaudit.sources.severity import SEVERITY_NUM
from logaudit.store.derived import entry_key
from logaudit.store.layout import parquet_framing_problem

# ========================================================================================== SQL
_BASE_SCHEMA_COLS = ("filename", "kind", "bucket", "service", "revision", "first_ts", "last_ts", "n", "errors",
                     "requests", "status_4xx", "status_5xx", "latency_n", "latency_sum", "bin", "method", "path",
                     "status", "latencies", "ok_n", "req_first", "req_last", "bad_n", "bad_first", "bad_last",
                     "instance_id", "ok_first", "ok_last", "err_ts")
_CAT_SCHEMA_COLS = ("filename", "kind", "bucket", "service", "revision", "key", "sev", "n", "first_ts", "example",
                    "example_ts", "example_file", "example_row")
#: Aggregates are kept per hour of each file (`bucket`: hours since the epoch), so that a window
#: cutting a file needs the file's rows again only for the hours it cuts.


_BUCKET_SQL = f"epoch_ns(timestamp) // {BUCKET_NS}"
#: A successful request (a WebSocket upgrade, 101, is not one) and a failed one (`HealthStats`).
_OK = "http_status BETWEEN 200 AND 399"
_BAD = "http_status <> 101 AND NOT http_status BETWEEN 200 AND 399"
#: An error that is not a request, with a text: what a root cause is read from (`Engine.root_causes`).
_TEXT_ERROR = "http_status IS NULL AND effective_severity_num >= 500 AND message IS NOT NULL"


def base_shape() -> dict[str, Any]:
    """What shapes the per-file aggregates (derived kind ``aggregates``) besides the entry file:
    read when called, so that a changed constant or query is a changed shape."""
    return {"columns": list(_BASE_SCHEMA_COLS), "bucket_ns": BUCKET_NS, "latency_bins_per_e": LATENCY_BINS_PER_E,
            "path_ids": [window_module.ID_SEGMENT_RE.pattern, window_module.ID_SEGMENT_RE.flags],
            "sql": _digest(_base_sql("SRC"))}


def cat_shape(level: int, patterns: list[tuple[str, str]], redactor: Any) -> dict[str, Any]:
    """What shapes the per-file pattern and template counts (derived kind ``aggregates-cat``):
    the catalog's fingerprints, the severity level, the template masks and cut, the redaction
    rules (templates are made from redacted messages) and the query."""
    return {"columns": list(_CAT_SCHEMA_COLS), "bucket_ns": BUCKET_NS, "level": level,
            "patterns": [list(p) for p in patterns], "masks": [list(m) for m in template_module.MASKS],
            "max_template_chars": template_module.MAX_TEMPLATE_CHARS, "redaction": [list(r) for r in redactor.rules],
            "sql": _digest(_cat_sql("SRC", "MATCHES", "KEYS", template_module.template_sql(redactor.sql("u.message"))))}


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def observe(audit: Any, *, service: str | None = None, baseline: str | None = None, canary: str | None = None,
            since: Any = None, until: Any = None, gate: Gate | None = None,
            aggregates: FileAggregates | None = None, engine: Any = None) -> Observations:
    """Pick the two revisions and gather what `judge` needs, from the aggregates of `engine`
    (default `audit.engine`; `logaudit.analysis.aggregates`): counts, latency percentiles and
    histogram per revision, pattern counts, unclassified templates.

    Aggregates are computed per entry file in DuckDB (counts, latency histogram, pattern
    counts, unclassified templates) and kept as the store's derived data (kinds ``aggregates``
    and ``aggregates-cat``, `logaudit.store.derived`); entry files are immutable, so a later comparison only reads
    the small cached aggregates of the files inside its window and aggregates again the
    files a --since/--until boundary cuts. The result is the same as aggregating the
    window's rows directly (tested).
    """
    gate = gate or Gate()
    engine = engine if engine is not None else audit.engine
    w0 = since if isinstance(since, Window) else resolve_window(since, until)
    window = Window(w0.since, w0.until)
    level = SEVERITY_NUM[gate.new_templates.min_severity]
    reuse = aggregates if aggregates is not None and aggregates.window == window and aggregates.level == level else None
    with engine.hold(reuse) if reuse is not None else engine.hold():
        revisions = [r for r in engine.revisions(window, percentiles=False) if r.service is not None]
        service, base_side, can_side, choice = _pick(
            [(r.service, r.revision, _micro(r.first_seen), _micro(r.last_seen), _micro(r.deploy_time))
             for r in revisions], service, baseline, canary,
            lambda svc, side: serving_before_deploy(engine, window, svc, side))
        choice.update(_cut(window, base_side))
        scope = Window(window.since, window.until, service)
        _fill(engine, scope, base_side, can_side)
        patterns = _pattern_counts(audit, engine.patterns(scope, examples=False), base_side.revision,
                                   can_side.revision)
        templates = _template_counts(audit, engine.templates(scope, min_severity=level), base_side.revision,
                                     can_side.revision)
        health_stats, root_causes = _health(audit, engine, scope, base_side.revision, can_side.revision)
    return Observations(service, base_side, can_side, patterns, templates, window.since, window.until,
                        baseline_choice=choice, health_stats=health_stats, root_causes=root_causes)


_HOUR, _SECOND = timedelta(hours=1), timedelta(seconds=1)


def serving_before_deploy(engine: Any, window: Window, service: str, canary: Side) -> tuple[str, datetime] | None:
    """The revision of `service` (not the canary) that served the last requests before the
    canary's deploy (its first audit-log entry in the window), and the start of the second
    holding them; None without a deploy time or without such requests.

    Reads request counts per revision and time bucket (`Engine.timeline`): per second in the hour
    before the deploy; when that hour has none, per hour over the window before it, then per
    second in the last hour with requests. In the last second with requests, the revision with
    the most (ties: the smallest name).
    """
    if canary.deploy_time is None:
        return None
    deploy = _aware(canary.deploy_time)
    since = window.since
    if since is not None and since >= deploy:
        return None
    near = deploy - _HOUR if since is None else max(deploy - _HOUR, since)
    found = _last_requests(engine, Window(near, deploy, service), _SECOND, canary.revision)
    if found is None and (since is None or since < near):
        hour = _last_requests(engine, Window(since, near, service), _HOUR, canary.revision)
        if hour is not None:
            lo = hour[1] if since is None else max(hour[1], since)
            found = _last_requests(engine, Window(lo, min(hour[1] + _HOUR, near), service), _SECOND, canary.revision)
    return found


def _last_requests(engine: Any, window: Window, step: timedelta, leave_out: str) -> tuple[str, datetime] | None:
    """(revision with the most requests in the window's last bucket with requests, its start)."""
    table = engine.timeline(window, step)
    per: dict[datetime, dict[str, int]] = {}
    for bucket, rev, n in zip(*(table[c].to_pylist() for c in ("bucket", "revision", "requests")), strict=True):
        if n and rev != leave_out:
            counts = per.setdefault(bucket, {})
            counts[rev] = counts.get(rev, 0) + n
    if not per:
        return None
    start = max(per)
    return min(per[start], key=lambda r: (-per[start][r], r)), start


def _aware(value: datetime) -> datetime:
    """Engines may return naive UTC times (DuckDB's TIMESTAMP): UTC-aware, to compare with windows."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _cut(window: Window, base: Side) -> dict[str, Any]:
    """Whether the window cuts the baseline short: it began serving before the window (no deploy
    of it inside), so its first entry is where the window (or the store) starts."""
    cut = base.deploy_time is None  # deploy times come from the window's own audit entries
    text = None
    if cut:
        start = "the window" if window.since is not None else "the store's data"
        text = (f"{start} cuts the baseline short: {base.revision} was deployed before it (no deploy of it in "
                f"the audit log here); its first entry in the window is at {iso(base.first_seen)}")
    return {"baseline_cut": cut, "baseline_cut_text": text}


def _health(audit: Any, engine: Any, scope: Any, b: str, c: str) -> tuple[dict[str, Any], dict[str, list[Any]]]:
    """Per side: its `HealthStats` and `RootCause` rows (`Engine.health`, `Engine.root_causes`), texts redacted."""
    sides = {b: "baseline", c: "canary"}
    stats = {sides[h.revision]: h for h in engine.health(scope) if h.revision in sides}
    causes: dict[str, list[Any]] = {}
    for r in engine.root_causes(scope):
        if r.revision in sides:
            causes.setdefault(sides[r.revision], []).append(r)
    evidence = [(side, kind) for side, h in stats.items() for kind in h.evidence]
    rows = [r for side in causes for r in causes[side]]
    texts = iter(audit.redactor.redact_all([stats[s].evidence[k].example for s, k in evidence]
                                           + [t for r in rows for t in (r.line, r.example)]))
    for side, h in stats.items():
        stats[side] = replace(h, evidence={k: replace(e, example=next(texts) or None) for k, e in h.evidence.items()})
    for side in causes:
        causes[side] = [replace(r, line=next(texts) or "", example=next(texts) or None) for r in causes[side]]
    return stats, causes


def _fill(engine: Any, scope: Any, *sides: Side) -> None:
    """Counts, latency mean, percentiles and histogram of each side, from the engine's aggregates."""
    by_rev = {s.revision: s for s in sides}
    for r in engine.revisions(scope):
        side = by_rev.get(r.revision)
        if side is None:
            continue
        side.entries, side.errors, side.requests = r.entries, r.errors, r.requests
        side.status_5xx, side.latency_n, side.latency_mean = r.status_5xx, r.latency_n, r.latency_mean
        side.latency_quantiles = dict(r.latency_ms)
    for h in engine.latency_histograms(scope):
        if h.revision in by_rev:
            by_rev[h.revision].latency_hist.update(h.counts)


def _pattern_counts(audit: Any, stats: list[Any], b: str, c: str) -> list[PatternCounts]:
    """Per pattern matched in either revision (by id): its matches in each."""
    out = []
    for p in stats:
        nb, nc = p.by_revision.get(b, 0), p.by_revision.get(c, 0)
        if nb or nc:
            pat = audit.catalog.by_id.get(p.id)
            cat, title = (pat.category, pat.title) if pat is not None else ("info", p.id)
            out.append(PatternCounts(p.id, cat, title, nb, nc))
    return out


def _template_counts(audit: Any, rows: list[Any], b: str, c: str) -> list[TemplateCounts]:
    """Unclassified templates of either revision under the one grouping (`aggregates.grouping`);
    most frequent in the canary first. Templates are made from redacted messages; their examples
    are redacted here (one pass)."""
    per: dict[str, list[Any]] = {}
    for r in rows:
        if r.revision in (b, c):
            per.setdefault(r.template, []).append(r)
    trows = [(t, sum(r.count for r in rs if r.revision == b), sum(r.count for r in rs if r.revision == c),
              max(r.max_severity for r in rs), latest_example(r for r in rs if r.revision == c))
             for t, rs in per.items()]
    mapping = grouping(t for t, _, _, _, _ in trows)
    merged: dict[str, TemplateCounts] = {}
    for t, nb, nc, sev, example in trows:
        key = mapping.get(t, t)
        cur = merged.get(key)
        if cur is None:
            merged[key] = TemplateCounts(key, nb, nc, sev, example)
        else:
            cur.baseline += nb
            cur.canary += nc
            cur.max_severity = max(cur.max_severity, sev)
            cur.example = cur.example or example
    templates = sorted(merged.values(), key=lambda x: (-x.canary, -x.baseline, x.template))
    examples = audit.redactor.redact_all(tc.example for tc in templates)
    for tc, example in zip(templates, examples, strict=True):
        tc.example = example or None
    return templates


def _micro(value: Any) -> Any:
    """A timestamp as a Python datetime (microseconds), None for none: how sides report their times."""
    if value is None:
        return None
    return value.to_pydatetime(warn=False) if hasattr(value, "to_pydatetime") else value


class FileAggregates:
    """Per-entry-file aggregates for the DuckDB engine (`engine_duckdb.DuckDBEngine`), merged per window.

    Kept as derived data under STORE/derived/aggregates/<digest>/ (counts, a latency histogram
    and deploy times per revision, endpoint counts with their latencies: `base_shape`) and
    STORE/derived/aggregates-cat/<digest>/ (pattern counts with first/last match, unclassified
    templates: `cat_shape`), per entry file and hour. They are loaded into temporary
    tables of the window's connection (`logaudit_cmp_base`, `logaudit_cmp_cat`).
    """

    def __init__(self, audit: Any, con: Any, window: Any, level: int) -> None:
        import pyarrow as pa

        self.con = con
        self.window = window
        self.level = level
        self.latency_tables: list[str] = []
        self.root = Path(audit.store.root)
        self.store = audit.store
        self.writable = audit.store.writable  # a read-only store: aggregates are computed, not cached
        self.files = audit.classified_files(window, con)
        pats = con.execute("SELECT pattern_id, fingerprint FROM patterns ORDER BY ALL").fetchall()
        self.fingerprints = [fp for _, fp in pats]
        self.categories = {pid: (cat, title) for pid, cat, title in
                           con.execute("SELECT pattern_id, category, title FROM patterns").fetchall()}
        self.redactor = audit.redactor
        self.base_data = audit.store.derived("aggregates", base_shape())
        self.cat_data = audit.store.derived("aggregates-cat", cat_shape(level, pats, self.redactor))
        self.cat_tag = self.cat_data.digest
        self._names: list[str] = []
        self.pa = pa
        base_parts, cat_parts = self._load()
        self._register("logaudit_cmp_base", base_parts, _BASE_SCHEMA_COLS)
        self._register("logaudit_cmp_cat", cat_parts, _CAT_SCHEMA_COLS)
        self._redact_paths()

    def _redact_paths(self) -> None:
        """Request paths can carry emails and tokens: redacted here, so endpoints merge after redaction."""
        if not self.redactor.enabled:
            return
        hit = "kind = 'endpoint' AND regexp_matches(path, $trigger)"
        params = {"trigger": self.redactor.trigger}
        if self.con.execute(f"SELECT count(*) FROM logaudit_cmp_base WHERE {hit}", params).fetchone()[0]:
            self.con.execute(f"UPDATE logaudit_cmp_base SET path = {self.redactor.sql('path')} WHERE {hit}", params)

    # -------------------------------------------------------------------------- cache plumbing
    def file_key(self, path: Path) -> str:
        """The key of an entry file in the derived data: its path under entries/ (else its absolute path)."""
        return entry_key(self.root, path)

    def _load(self) -> tuple[list[Any], list[Any]]:
        """Cached aggregate files and freshly computed tables (files missing, or cut by the window)
        for the two views; each part is a list of parquet paths or Arrow tables."""
        sizes = {f: f.stat().st_size for f in self.files}
        base_paths = {f: self.base_data.entry_folder(f) / f"base-{sizes[f]}.parquet" for f in self.files}
        base_cached = [f for f in self.files if _intact(base_paths[f])]
        base_missing = [f for f in self.files if f not in set(base_cached)]
        fresh_base: dict[Path, Any] = {}
        if base_missing:
            fresh = self._compute_base(base_missing)
            for f in base_missing:
                part = _rows_of(fresh, str(f)).drop_columns(["filename"])
                self._write(self.base_data, base_paths[f], "base-", part)
                fresh_base[f] = part
        if self.window.since is None and self.window.until is None:
            whole = list(self.files)
            cut: list[Path] = []
            partial: list[Path] = []
            ranges = {}
        else:
            ranges = self._ranges(base_cached, base_paths, fresh_base)
            whole = [f for f in self.files if self._inside(ranges.get(f))]
            cut = [f for f in self.files if f not in set(whole) and self._overlaps(ranges.get(f))]
            partial = [f for f in cut if self._in_partial_hours(ranges[f])]
        # files a window boundary cuts: their whole hours inside the window from the cache, their
        # rows again only for the hours the boundary cuts
        base_parts: list[Any] = [[str(base_paths[f]) for f in whole if f not in fresh_base]]
        base_parts += [fresh_base[f] for f in whole if f in fresh_base]
        base_parts += self._hours_inside([base_paths[f] for f in cut if f not in fresh_base],
                                         [fresh_base[f] for f in cut if f in fresh_base])
        edge_base, edge_cat = EdgeSlices(self).aggregates(self._spans(), self.files, ranges, partial) \
            if partial else (None, None)
        if edge_base is not None:
            base_parts.append(edge_base)
        cat_paths = {f: self.cat_data.entry_folder(f) / f"cat-{sizes[f]}.parquet" for f in whole + cut}
        cat_missing = [f for f in whole + cut if not _intact(cat_paths[f])]
        fresh_cat: dict[Path, Any] = {}
        if cat_missing:
            fresh = self._compute_cat(cat_missing)
            for f in cat_missing:
                fresh_cat[f] = _rows_of(fresh, str(f)).drop_columns(["filename"])
                self._write(self.cat_data, cat_paths[f], "cat-", fresh_cat[f])
            self._prune()
        cat_parts: list[Any] = [[str(cat_paths[f]) for f in whole if f not in fresh_cat]]
        cat_parts += [fresh_cat[f] for f in whole if f in fresh_cat]
        cat_parts += self._hours_inside([cat_paths[f] for f in cut if f not in fresh_cat],
                                        [fresh_cat[f] for f in cut if f in fresh_cat])
        if edge_cat is not None:
            cat_parts.append(edge_cat)
        return base_parts, cat_parts

    def _full_hours(self) -> tuple[int | None, int | None]:
        """The buckets wholly inside the window: lo <= bucket < hi (None: unbounded)."""
        w = self.window
        lo = None if w.since is None else -(-to_ns(w.since) // BUCKET_NS)
        hi = None if w.until is None else to_ns(w.until) // BUCKET_NS
        return lo, hi

    def _hours_inside(self, paths: list[Path], tables: list[Any]) -> list[Any]:
        """Parts of cached aggregates (files, or tables just computed) limited to the window's whole hours."""
        import pyarrow.compute as pc

        lo, hi = self._full_hours()
        conds = [c for c in (None if lo is None else f"bucket >= {lo}", None if hi is None else f"bucket < {hi}") if c]
        parts: list[Any] = []
        if paths:
            parts.append(("filtered", [str(p) for p in paths], " AND ".join(conds) or "TRUE"))
        for t in tables:
            keep = [m for m in (None if lo is None else pc.greater_equal(t["bucket"], lo),
                                None if hi is None else pc.less(t["bucket"], hi)) if m is not None]
            parts.append(t.filter(pc.and_(*keep) if len(keep) == 2 else keep[0]) if keep else t)
        return parts

    def _spans(self) -> list[tuple[int, int, int]]:
        """The (hour, start ns, end ns) pieces of the window in the hours it cuts."""
        w = self.window
        return hour_spans(None if w.since is None else to_ns(w.since),
                          None if w.until is None else to_ns(w.until), BUCKET_NS)

    def _in_partial_hours(self, rng: tuple[Any, Any]) -> bool:
        """Whether a file spanning `rng` has rows in an hour the window cuts (else the cache serves it all)."""
        lo_ts, hi_ts = (to_ns(v) for v in rng)  # whole microseconds (cached) or nanoseconds: both fine
        return any(lo_ts < b and hi_ts >= a for _, a, b in self._spans())

    def _ranges(self, cached: list[Path], paths: dict[Path, Path], fresh: dict[Path, Any]
                ) -> dict[Path, tuple[Any, Any]]:
        """First and last timestamp of each entry file, from its aggregates."""
        out = {f: _time_range(t) for f, t in fresh.items()}
        if cached:
            by_cache = {str(paths[f]): f for f in cached}
            rows = self.con.execute("""
                SELECT filename, min(first_ts), max(last_ts) FROM read_parquet($paths, filename=true)
                WHERE kind = 'rev' GROUP BY filename
            """, {"paths": list(by_cache)}).fetchall()
            for name, lo, hi in rows:
                out[by_cache[name]] = (lo, hi)
        return out

    def _inside(self, rng: tuple[Any, Any] | None) -> bool:
        if rng is None or rng[0] is None:
            return False
        lo, hi = rng
        w = self.window
        return (w.since is None or lo >= w.since) and (w.until is None or hi < w.until)

    def _overlaps(self, rng: tuple[Any, Any] | None) -> bool:
        """Whether a file whose timestamps span `rng` has rows in the window (files are listed by day)."""
        if rng is None or rng[0] is None:
            return False
        lo, hi = rng
        w = self.window
        return (w.until is None or lo < w.until) and (w.since is None or hi >= w.since)

    @staticmethod
    def _write(data: Any, path: Path, prefix: str, table: Any) -> None:
        """Write atomically (`Derived.write`); other versions of the same file go. Never fails the
        comparison: a cache that cannot be written only costs speed."""
        import pyarrow.parquet as pq

        if not data.writable:
            return
        try:
            data.write(path, lambda tmp: pq.write_table(table, tmp, compression="zstd"))
            for old in path.parent.glob(f"{prefix}*.parquet"):
                if old.name != path.name:
                    old.unlink(missing_ok=True)
        except (OSError, StoreWriteError):
            pass

    def _prune(self) -> None:
        """Drop aggregates of entry files that no longer exist (compacted away) and of shapes no
        longer used (`Derived.prune`)."""
        self.base_data.prune()
        self.cat_data.prune()

    def _register(self, name: str, parts: list[Any], cols: tuple[str, ...]) -> None:
        """A temporary table of cached aggregate files (lists of paths; ("filtered", paths, where))
        and Arrow tables (read once, queried several times)."""
        paths = [p for part in parts if isinstance(part, list) for p in part]
        tables = [t for t in parts if not isinstance(t, list | tuple) and t.num_rows]
        selects = []
        if paths:
            selects.append(f"SELECT * FROM read_parquet({sql_list(paths)}, union_by_name=true)")
        for _, fpaths, where in [p for p in parts if isinstance(p, tuple) and p[1]]:
            selects.append(f"SELECT * FROM read_parquet({sql_list(fpaths)}, union_by_name=true) WHERE {where}")
        arrow = self.pa.concat_tables(tables, promote_options="permissive") if tables else _empty(self.pa, cols[1:])
        self.con.register(f"{name}_arrow", arrow)
        self._names.append(f"{name}_arrow")
        selects.append(f"SELECT * FROM {name}_arrow")
        self.con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS " + " UNION ALL BY NAME ".join(selects))

    def close(self) -> None:
        with contextlib.suppress(Exception):  # the connection may be closed already
            self.con.execute("DROP TABLE IF EXISTS logaudit_cmp_base; DROP TABLE IF EXISTS logaudit_cmp_cat")
            for name in self.latency_tables:
                self.con.execute(f"DROP TABLE IF EXISTS {name}")
        self.latency_tables.clear()
        for name in self._names:
            with contextlib.suppress(Exception):
                self.con.unregister(name)
        self._names.clear()

    # -------------------------------------------------------------------------- computing
    def _source(self, files: list[Path], *, rows: bool = False) -> str:
        extra = ", file_row_number=true" if rows else ""
        return f"read_parquet({sql_list([str(f) for f in files])}, filename=true, hive_partitioning=false{extra})"

    def register_paths(self, name: str, src: str, where: str = "TRUE") -> None:
        """Register `name`: (raw, path) for the request paths of `src`, normalized so that ids do not
        split endpoints. Only the distinct raw paths go through Python."""
        raw = [r[0] for r in self.con.execute(
            f"SELECT DISTINCT http_path FROM {src} WHERE {where} AND http_status IS NOT NULL").fetchall()]
        self.con.register(name, self.pa.table({
            "raw": self.pa.array(raw, self.pa.string()),
            "path": self.pa.array([normalize_path(p) for p in raw], self.pa.string())}))

    def _compute_base(self, files: list[Path]) -> Any:
        src = self._source(files)
        self.register_paths("logaudit_cmp_paths", src)
        try:
            return self._compute_base_sql(src)
        finally:
            self.con.unregister("logaudit_cmp_paths")

    def _compute_base_sql(self, src: str) -> Any:
        return arrow_table(self.con, _base_sql(src))

    def _compute_cat(self, files: list[Path]) -> Any:
        src = self._source(files, rows=True)
        keys = self.pa.table({"path": [str(f) for f in files], "entry_key": [self.file_key(f) for f in files]})
        name = "logaudit_cmp_keys"
        # these files' matches only (the `matches` view reads every file of the window)
        chunks = chunk_files(self.root, files, None, set(self.fingerprints))
        matches = "(SELECT entry_file, entry_row, timestamp, service, revision, pattern_id FROM matches WHERE false)"
        if chunks:
            matches = f"""(SELECT c.entry_file, c.entry_row, c.timestamp, c.service, c.revision, p.pattern_id
                           FROM read_parquet({sql_list(chunks)}, hive_partitioning=false) c
                           JOIN logaudit_patterns_table p ON c.fingerprint = p.fingerprint)"""
        self.con.register(name, keys)
        try:
            return arrow_table(self.con, _cat_sql(src, matches, name, template_sql(self.redactor.sql('u.message'))),
                          {"level": self.level})
        finally:
            self.con.unregister(name)

    # -------------------------------------------------------------------------- the summary's answers
    @staticmethod
    def filters(service: str | None, revision: str | None) -> tuple[str, dict[str, Any]]:
        """The SQL condition and parameters selecting a service's and revision's aggregate rows."""
        conds, params = ["TRUE"], {}
        if service is not None:
            conds.append("service = $service")
            params["service"] = service
        if revision is not None:
            conds.append("revision = $revision")
            params["revision"] = revision
        return " AND ".join(conds), params

    def totals(self, service: str | None = None, revision: str | None = None) -> tuple[int, list[str]]:
        """(entries, services) of the window."""
        where, params = self.filters(service, revision)
        n, services = self.con.execute(f"""
            SELECT coalesce(sum(n), 0)::BIGINT, list(DISTINCT service ORDER BY service) FILTER (service IS NOT NULL)
            FROM logaudit_cmp_base WHERE kind = 'rev' AND {where}
        """, params).fetchall()[0]
        return int(n), list(services or [])

    def revision_table(self, service: str | None = None, revision: str | None = None) -> Any:
        """What `Audit.revisions` returns, from the aggregates (same columns, same order)."""
        where, params = self.filters(service, revision)
        return self.con.execute(f"""
            WITH per AS (
                SELECT service, revision, min(first_ts) AS first_seen, max(last_ts) AS last_seen,
                       sum(n)::BIGINT AS entries, sum(errors)::BIGINT AS errors, sum(requests)::BIGINT AS requests,
                       sum(status_4xx)::BIGINT AS status_4xx, sum(status_5xx)::BIGINT AS status_5xx
                FROM logaudit_cmp_base WHERE kind = 'rev' AND revision IS NOT NULL AND {where}
                GROUP BY ALL
            ),
            lat AS (SELECT service, revision, q FROM {self._latencies(where, params)} WHERE per_revision),
            deploys AS (
                SELECT service, revision, min(first_ts) AS deploy_time
                FROM logaudit_cmp_base WHERE kind = 'deploy' GROUP BY ALL
            )
            SELECT per.service, per.revision, per.first_seen, per.last_seen, d.deploy_time,
                   per.entries, per.errors, per.errors / per.entries AS error_rate,
                   per.requests, per.status_4xx, per.status_5xx,
                   CASE WHEN per.requests > 0 THEN per.status_5xx / per.requests END AS request_error_rate,
                   lat.q[1] AS latency_p50_ms, lat.q[2] AS latency_p95_ms, lat.q[3] AS latency_p99_ms,
                   CASE WHEN sum(per.requests) OVER (PARTITION BY per.service) > 0
                        THEN per.requests / sum(per.requests) OVER (PARTITION BY per.service) END AS traffic_share
            FROM per LEFT JOIN deploys d USING (service, revision)
                     LEFT JOIN lat ON lat.service IS NOT DISTINCT FROM per.service AND lat.revision = per.revision
            ORDER BY per.service, per.first_seen, per.revision
        """, params).df()

    def endpoint_table(self, service: str | None = None, revision: str | None = None) -> Any:
        """What `Audit.endpoints` returns, from the aggregates."""
        where, params = self.filters(service, revision)
        lat = self._latencies(where, params)
        return self.con.execute(f"""
            WITH c AS (
                SELECT service, method, path, status, sum(n)::BIGINT AS count,
                       sum(n) / sum(sum(n)) OVER (PARTITION BY service) AS share
                FROM logaudit_cmp_base WHERE kind = 'endpoint' AND {where}
                GROUP BY 1, 2, 3, 4
            )
            SELECT c.service, c.method, c.path, c.status, c.count, c.share, l.q[2] AS latency_p95_ms
            FROM c LEFT JOIN (SELECT * FROM {lat} WHERE NOT per_revision) l
              ON l.service IS NOT DISTINCT FROM c.service AND l.method IS NOT DISTINCT FROM c.method
             AND l.path IS NOT DISTINCT FROM c.path AND l.status = c.status
            ORDER BY c.service, c.count DESC, c.path, c.method, c.status
        """, params).df()

    @staticmethod
    def latency_name(where: str, params: dict[str, Any]) -> str:
        """The temporary table holding the latency lists of one filter (`latency_tables`)."""
        return "logaudit_cmp_lat_" + hashlib.sha256(repr((where, sorted(params.items()))).encode()).hexdigest()[:8]

    def _latencies(self, where: str, params: dict[str, Any]) -> str:
        """A temporary table of latency percentiles (p50, p95, p99) per revision and per endpoint,
        computed in one pass over the latencies (made once per filter)."""
        name = self.latency_name(where, params)
        if name not in self.latency_tables:
            self.con.execute(f"""
                CREATE OR REPLACE TEMP TABLE {name} AS
                SELECT service, revision, method, path, status, GROUPING(method) = 0 AS per_endpoint,
                       GROUPING(revision) = 0 AS per_revision, quantile_cont(v, [0.5, 0.95, 0.99]) AS q
                FROM (SELECT service, revision, method, path, status, unnest(latencies) AS v FROM logaudit_cmp_base
                      WHERE kind = 'endpoint' AND {where})
                GROUP BY GROUPING SETS ((service, revision), (service, method, path, status))
            """, params)
            self.latency_tables.append(name)
        return name

    def pattern_rows(self, service: str | None = None, revision: str | None = None
                     ) -> list[tuple[str, int, Any, Any, str, int, dict[str, int]]]:
        """Per matched pattern: (id, count, first_seen, last_seen, example entry file, row, {revision: count})."""
        where, params = self.filters(service, revision)
        by_rev: dict[str, dict[str, int]] = {}
        for pid, rev, n in self.con.execute(f"""
            SELECT key, revision, sum(n)::BIGINT FROM logaudit_cmp_cat WHERE kind = 'pattern' AND {where}
            GROUP BY ALL ORDER BY 1, 2
        """, params).fetchall():
            by_rev.setdefault(pid, {})[rev if rev is not None else "(none)"] = int(n)
        df = self.con.execute(f"""
            SELECT key, sum(n)::BIGINT AS n, min(first_ts) AS lo, max(example_ts) AS hi,
                   arg_max(example_file, (example_ts, example_file, example_row)) AS f,
                   arg_max(example_row, (example_ts, example_file, example_row)) AS r
            FROM logaudit_cmp_cat WHERE kind = 'pattern' AND {where} GROUP BY key
        """, params).df()  # pandas keeps the timestamps' nanoseconds
        return [(t.key, int(t.n), t.lo, t.hi, t.f, int(t.r), by_rev.get(t.key, {})) for t in df.itertuples()]

def _base_sql(src: str) -> str:
    """The query of the per-file aggregates of the entry files `src` (a `read_parquet(...)`)."""
    return f"""
            WITH src AS (SELECT * FROM {src})
            SELECT filename, 'rev' AS kind, {_BUCKET_SQL} AS bucket, service, revision,
                   min(timestamp) AS first_ts, max(timestamp) AS last_ts,
                   count(*) AS n, count(*) FILTER (effective_severity_num >= 500) AS errors,
                   count(http_status) AS requests, count(*) FILTER (http_status BETWEEN 400 AND 499) AS status_4xx,
                   count(*) FILTER (http_status >= 500) AS status_5xx,
                   count(http_latency_ms) FILTER (http_status <> 101) AS latency_n,
                   (sum(http_latency_ms::DECIMAL(38, 6)) FILTER (http_status <> 101))::DOUBLE AS latency_sum,
                   NULL::INTEGER AS bin, count(*) FILTER ({_OK}) AS ok_n,
                   min(timestamp) FILTER (http_status IS NOT NULL) AS req_first,
                   max(timestamp) FILTER (http_status IS NOT NULL) AS req_last,
                   count(*) FILTER ({_BAD}) AS bad_n, min(timestamp) FILTER ({_BAD}) AS bad_first,
                   max(timestamp) FILTER ({_BAD}) AS bad_last
            FROM src GROUP BY filename, bucket, service, revision
            UNION ALL BY NAME
            SELECT filename, 'inst' AS kind, {_BUCKET_SQL} AS bucket, service, revision, instance_id,
                   count(*) FILTER ({_OK}) AS ok_n, min(timestamp) FILTER ({_OK}) AS ok_first,
                   max(timestamp) FILTER ({_OK}) AS ok_last,
                   list(timestamp ORDER BY timestamp) FILTER ({_TEXT_ERROR}) AS err_ts
            FROM src WHERE revision IS NOT NULL AND ({_OK} OR {_TEXT_ERROR})
            GROUP BY filename, bucket, service, revision, instance_id
            UNION ALL BY NAME
            SELECT filename, 'deploy' AS kind, {_BUCKET_SQL} AS bucket, service, audit_revision AS revision,
                   min(timestamp) AS first_ts, min(timestamp) AS last_ts, count(*) AS n
            FROM src WHERE audit_revision IS NOT NULL GROUP BY filename, bucket, service, audit_revision
            UNION ALL BY NAME
            SELECT filename, 'hist' AS kind, {_BUCKET_SQL} AS bucket, service, revision,
                   CAST(round(ln(greatest(http_latency_ms, 0.001)) * {LATENCY_BINS_PER_E}) AS INTEGER) AS bin,
                   count(*) AS n
            FROM src WHERE http_status <> 101 AND http_latency_ms IS NOT NULL GROUP BY ALL
            UNION ALL BY NAME
            SELECT s.filename, 'endpoint' AS kind, epoch_ns(s.timestamp) // {BUCKET_NS} AS bucket,
                   s.service, s.revision, s.http_method AS method, p.path,
                   s.http_status AS status, count(*) AS n,
                   list(s.http_latency_ms) FILTER (s.http_status <> 101 AND s.http_latency_ms IS NOT NULL) AS latencies
            FROM src s LEFT JOIN logaudit_cmp_paths p ON p.raw = s.http_path
            WHERE s.http_status IS NOT NULL GROUP BY ALL
        """


def _cat_sql(src: str, matches: str, keys: str, template: str) -> str:
    """The query of the per-file pattern and template counts: entry files `src`, their matches
    (a subquery), the table `keys` of their entry keys, `template` the templating expression."""
    return f"""
                WITH k AS (SELECT * FROM {keys}),
                mx AS {matches},
                m AS (SELECT DISTINCT entry_file, entry_row FROM mx WHERE entry_file IN (SELECT entry_key FROM k)),
                e AS (
                    SELECT s.filename, s.file_row_number AS entry_row, s.service, s.revision, s.timestamp, s.message,
                           s.effective_severity_num AS sev, k.entry_key
                    FROM {src} s JOIN k ON k.path = s.filename
                    WHERE s.effective_severity_num >= $level AND s.message IS NOT NULL
                )
                SELECT k.path AS filename, 'pattern' AS kind, epoch_ns(mm.timestamp) // {BUCKET_NS} AS bucket,
                       mm.service, mm.revision, mm.pattern_id AS key,
                       NULL::SMALLINT AS sev, count(*) AS n, min(mm.timestamp) AS first_ts,
                       max(mm.timestamp) AS example_ts, any_value(mm.entry_file) AS example_file,
                       arg_max(mm.entry_row, (mm.timestamp, mm.entry_row))::BIGINT AS example_row
                FROM mx mm JOIN k ON mm.entry_file = k.entry_key
                GROUP BY ALL
                UNION ALL BY NAME
                SELECT u.filename, 'template' AS kind, u.bucket, u.service, u.revision, {template} AS key,
                       u.sev, sum(u.n)::BIGINT AS n, min(u.first_ts) AS first_ts,
                       arg_max(u.message, (u.example_ts, u.message)) AS example, max(u.example_ts) AS example_ts
                FROM (  -- identical messages are templated once
                    SELECT e.filename, epoch_ns(e.timestamp) // {BUCKET_NS} AS bucket, e.service, e.revision, e.sev,
                           e.message, count(*) AS n,
                           min(e.timestamp) AS first_ts, max(e.timestamp) AS example_ts
                    FROM e ANTI JOIN m ON m.entry_file = e.entry_key AND m.entry_row = e.entry_row
                    GROUP BY ALL
                ) u
                GROUP BY u.filename, u.bucket, u.service, u.revision, key, u.sev
"""


def _intact(path: Path) -> bool:
    """A cached aggregate file that can be used: present and a whole Parquet file (a damaged
    one is computed again and replaced)."""
    return parquet_framing_problem(path) is None


def _rows_of(table: Any, filename: str) -> Any:
    import pyarrow.compute as pc

    return table.filter(pc.equal(table["filename"], filename))


def _time_range(table: Any) -> tuple[Any, Any]:
    import pyarrow.compute as pc

    if table is None or table.num_rows == 0:
        return (None, None)
    rev = table.filter(pc.equal(table["kind"], "rev"))
    if rev.num_rows == 0:
        return (None, None)
    return (pc.min(rev["first_ts"]).as_py(), pc.max(rev["last_ts"]).as_py())


def _empty(pa: Any, cols: tuple[str, ...]) -> Any:
    types = {"filename": pa.string(), "kind": pa.string(), "bucket": pa.int64(), "service": pa.string(), "revision": pa.string(),
             "first_ts": pa.timestamp("ns", tz="UTC"), "last_ts": pa.timestamp("ns", tz="UTC"), "n": pa.int64(),
             "errors": pa.int64(), "requests": pa.int64(), "status_5xx": pa.int64(), "latency_n": pa.int64(),
             "latency_sum": pa.float64(), "bin": pa.int32(), "key": pa.string(), "sev": pa.int16(),
             "example": pa.string(), "example_ts": pa.timestamp("ns", tz="UTC"), "status_4xx": pa.int64(),
             "method": pa.string(), "path": pa.string(), "status": pa.int32(), "latencies": pa.list_(pa.float64()),
             "example_file": pa.string(), "example_row": pa.int64(), "ok_n": pa.int64(), "bad_n": pa.int64(),
             "instance_id": pa.string(), **{c: pa.timestamp("ns", tz="UTC") for c in (
                 "req_first", "req_last", "bad_first", "bad_last", "ok_first", "ok_last")},
             "err_ts": pa.list_(pa.timestamp("ns", tz="UTC"))}
    return pa.table({c: pa.array([], types[c]) for c in cols})


def _pick(rows: list[tuple[str, str, Any, Any, Any]], service: str | None, baseline: str | None,
          canary: str | None, serving_before: Callable[[str, Side], tuple[str, datetime] | None] | None = None,
          ) -> tuple[str, Side, Side, dict[str, Any]]:
    """Choose (service, baseline, canary, how the baseline was chosen): by default the service's
    newest revision (deploy time, else first seen) as the canary and, as the baseline, the
    revision that served the traffic just before the canary's deploy (`serving_before`), else the
    revision deployed (or first seen) before the canary. The choice is {"rule", "text"}, rule one
    of `BASELINE_RULES`."""
    by_service: dict[str, list[Side]] = {}
    for svc, rev, first, last, deploy in rows:
        by_service.setdefault(svc, []).append(Side(rev, first, last, deploy))
    for revs in by_service.values():
        revs.sort(key=lambda s: (s.deploy_time or s.first_seen, s.revision))
    if not by_service:
        raise UsageError("no Cloud Run revisions in this window: nothing to compare",
                         hint="widen --since/--until, or ingest / pull logs first")
    if service is None:
        named = [r for r in (canary, baseline) if r]
        if named:
            owners = sorted({s for s, revs in by_service.items() if any(x.revision == named[0] for x in revs)})
            if not owners:
                raise UsageError(f"revision {named[0]!r} has no entries in this window", hint=_revision_hint(by_service))
            if len(owners) > 1:
                raise UsageError(f"revision {named[0]!r} belongs to several services: {', '.join(owners)}",
                                 hint="name one with --service")
            service = owners[0]
        else:
            multi = {s: revs for s, revs in by_service.items() if len(revs) >= 2}
            if not multi:
                raise UsageError("no service has two revisions in this window: nothing to compare",
                                 hint=_revision_hint(by_service))
            service = max(multi, key=lambda s: (_order_key(multi[s][-1]), s))
    revs = by_service.get(service)
    if not revs:
        raise UsageError(f"service {service!r} has no entries in this window",
                         hint=f"services here: {', '.join(sorted(by_service))}")
    names = [s.revision for s in revs]
    for label, rev in (("--canary", canary), ("--baseline", baseline)):
        if rev is not None and rev not in names:
            raise UsageError(f"{label} {rev!r}: no entries of service {service!r} in this window",
                             hint=f"revisions of {service}: {', '.join(names)}")
    if canary is None:
        canary = names[-1]
        if baseline == canary:
            raise UsageError(f"--baseline {baseline!r} is the newest revision; name a --canary too")
    pick = {s.revision: s for s in revs}
    if baseline is not None:
        choice = {"rule": "given", "text": f"{baseline} was named as the baseline (--baseline)"}
    else:
        baseline, choice = _default_baseline(service, names, pick[canary], serving_before)
    if baseline == canary:
        raise UsageError(f"baseline and canary are the same revision {canary!r}")
    return service, pick[baseline], pick[canary], choice


#: How `compare` chose the baseline (JSON `baseline_choice.rule`, docs/compare.md).
BASELINE_RULES = ("deploy-audit-traffic", "first-seen", "given")


def _default_baseline(service: str, names: list[str], can: Side,
                      serving_before: Callable[[str, Side], tuple[str, datetime] | None] | None
                      ) -> tuple[str, dict[str, Any]]:
    canary = can.revision
    found = serving_before(service, can) if serving_before is not None else None
    if found is not None and found[0] in names:
        rev, second = found
        return rev, {"rule": "deploy-audit-traffic",
                     "text": f"{rev} served the last requests before {canary} was deployed at {iso(can.deploy_time)} "
                             f"(audit log), in the second from {iso(second)}"}
    i = names.index(canary)
    if i == 0:
        raise UsageError(f"{canary!r} is the oldest revision of {service!r} in this window: no baseline before it",
                         hint=f"revisions of {service}: {', '.join(names)}; name one with --baseline")
    why = (f"no deploy of {canary} in the audit log of this window" if can.deploy_time is None else
           f"no request of another revision before {canary}'s deploy at {iso(can.deploy_time)}")
    return names[i - 1], {"rule": "first-seen",
                          "text": f"{names[i - 1]} is the revision deployed (else first seen) just before {canary} "
                                  f"({why})"}


def _order_key(side: Side) -> Any:
    return side.deploy_time or side.first_seen


def _revision_hint(by_service: dict[str, list[Side]]) -> str:
    return "; ".join(f"{s}: {', '.join(x.revision for x in revs)}" for s, revs in sorted(by_service.items()))
