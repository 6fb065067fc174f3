"""BigQuery benchmark: the warehouse SQL's text size, the bytes it references, and its speed.

    python benchmarks/bench_bigquery.py [--entries 1000000] [--skip-speed]

Prints, with no BigQuery account (nothing is sent anywhere):
  1. query text: bytes of the largest queries (patterns, templates, timeline) and their share of
     BigQuery's 1,024 KB limit on a query's text, and the build time (`WarehouseEngine`
     construction, then each query's text, through a `PlanRunner` that runs nothing), for
     catalogs of 50, 500 and 5,000 generated patterns;
  2. bytes referenced: the columns each query of `WarehouseAudit.plan("summarize" | "compare" |
     "report")` references (`dialect.table_columns`), sized by BigQuery's documented data-size
     rules over an `_AllLogs`-shaped table of the generated entries, per query and per analysis
     per million entries, with the on-demand price (`estimate_usd`). An estimate, not a dry run;
  3. speed: the summary's engine calls (totals, revisions, endpoints, patterns, templates at
     WARNING, latency histograms) and a 5-minute timeline, the warehouse GoogleSQL transpiled to
     DuckDB (`DuckDBRunner`) over the `_AllLogs` table next to the local engine
     (`Audit(store).engine`) over a store of the same entries (timestamps cut to microseconds, as
     BigQuery keeps them). Both must give equal results (asserted), so both timings do equal work.

The generated entries (`logaudit.sources.sample`, seed 7, over 8 hours) are written once into
$LOGAUDIT_BENCH_BIGQUERY (default: a folder in the system temp directory named after their
number): a store and a DuckDB file holding `p.d._AllLogs`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from itertools import islice
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "warehouse"))

import duckdb  # noqa: E402
import pandas as pd  # noqa: E402
from bq_tables import ALL_LOGS_DDL, all_logs_rows, attach_dataset  # noqa: E402
from test_query_budget import generated_patterns  # noqa: E402

from logaudit.analysis.audit import Audit  # noqa: E402
from logaudit.analysis.engine_warehouse import MAX_CANDIDATES, WarehouseEngine  # noqa: E402
from logaudit.analysis.warehouse_audit import PLANS, WarehouseAudit  # noqa: E402
from logaudit.analysis.window import Window  # noqa: E402
from logaudit.core.errors import WarehouseError  # noqa: E402
from logaudit.core.redact import Redactor  # noqa: E402
from logaudit.sources.sample import SampleConfig, SampleGenerator  # noqa: E402
from logaudit.store.store import Store  # noqa: E402
from logaudit.warehouse.bigquery import estimate_usd, format_bytes  # noqa: E402
from logaudit.warehouse.dialect import table_columns  # noqa: E402
from logaudit.warehouse.runner import DuckDBRunner, PlanRunner, QueryRecord  # noqa: E402
from logaudit.warehouse.source import WarehouseSource  # noqa: E402

TABLE = "p.d._AllLogs"
#: BigQuery's limit on the text of a query (unresolved GoogleSQL): cloud.google.com/bigquery/quotas
MAX_QUERY_BYTES = 1024 * 1024
STEP = timedelta(minutes=5)
WARNING = 400
CHUNK = 100_000


# --------------------------------------------------------------------------------- data
def _micros(entries: list[dict]) -> list[dict]:
    """BigQuery keeps microseconds: the store gets the same times."""
    return [{**e, **{k: re.sub(r"(\.\d{6})\d+Z$", r"\1Z", e[k]) for k in ("timestamp", "receiveTimestamp") if k in e}}
            for e in entries]


def _insert_all_logs(con: duckdb.DuckDBPyConnection, entries: list[dict]) -> None:
    """Append `entries` to `TABLE` as `_AllLogs` rows (tests/bq_tables.py: `load_all_logs` in parts)."""
    import pyarrow as pa

    arrow = pa.Table.from_struct_array(pa.array(all_logs_rows(entries)))
    types = dict(con.execute('SELECT column_name, column_type FROM (DESCRIBE "p"."d"."_AllLogs")').fetchall())
    casts = ", ".join(f'CAST("{c}" AS {types[c]}) AS "{c}"' for c in arrow.column_names)
    con.register("bq_rows", arrow)
    try:
        con.execute(f'INSERT INTO "p"."d"."_AllLogs" BY NAME SELECT {casts} FROM bq_rows')
    finally:
        con.unregister("bq_rows")


def bench_data(entries: int) -> tuple[Path, Store, SampleConfig]:
    """The cache folder, its store and the config of its entries; generated once."""
    root = Path(os.environ.get("LOGAUDIT_BENCH_BIGQUERY")
                or Path(tempfile.gettempdir()) / "logaudit-bench-bigquery") / str(entries)
    config = SampleConfig(entries=entries)
    marker = root / "bench.json"
    if marker.exists() and json.loads(marker.read_text()).get("entries") == entries:
        return root, Store(root / "store", create=False), config
    if root.exists():
        import shutil

        shutil.rmtree(root)  # an interrupted build: start again rather than add to it
    root.mkdir(parents=True)
    print(f"generating {entries:,} entries into a store and an _AllLogs table in {root} (once)", flush=True)
    t0 = time.perf_counter()
    store = Store(root / "store")
    con = duckdb.connect()
    con.execute(f"ATTACH '{root / 'all_logs.duckdb'}' AS p")
    attach_dataset(con, "p.d")
    con.execute(f'CREATE TABLE "p"."d"."_AllLogs" {ALL_LOGS_DDL}')
    gen = iter(SampleGenerator(config))
    stored = 0
    while chunk := _micros(list(islice(gen, CHUNK))):
        report = store.ingest_entries(chunk, "bench", batch_size=CHUNK)
        stored += report.new_rows + report.duplicates
        _insert_all_logs(con, chunk)
    con.close()
    assert stored == entries, stored
    info = {"entries": entries, "start": config.start, "hours": config.hours,
            "build_seconds": round(time.perf_counter() - t0, 1)}
    marker.write_text(json.dumps(info))
    print(f"generated in {info['build_seconds']} s", flush=True)
    return root, store, config


def _window(config: SampleConfig) -> Window:
    start = datetime.fromisoformat(config.start.replace("Z", "+00:00")).astimezone(UTC)
    return Window(start, start + timedelta(hours=config.hours))


# ----------------------------------------------------------------------- 1. query text
def query_text(window: Window) -> list[dict[str, Any]]:
    """Sizes and build times of the catalog-bearing queries for generated catalogs."""
    print("\n== 1. query text: the largest queries with generated catalogs (BigQuery limit 1,024 KB) ==")
    rows = []
    for n in (50, 500, 5000):
        patterns = generated_patterns(n)
        runner = PlanRunner()
        t0 = time.perf_counter()
        engine = WarehouseEngine(runner, WarehouseSource.all_logs(TABLE), patterns, Redactor())
        construct = time.perf_counter() - t0
        calls = [lambda e=engine: e.patterns(window),
                 lambda e=engine: e.templates(window, min_severity=WARNING),
                 lambda e=engine: e.timeline(window, STEP)]
        for call in calls:
            before = len(runner.queries)
            t0 = time.perf_counter()
            call()
            built = time.perf_counter() - t0
            for record in runner.queries[before:]:
                size = len(record.sql.encode())
                rows.append({"patterns": n, "query": record.purpose, "bytes": size,
                             "share_of_limit": round(size / MAX_QUERY_BYTES, 4), "build_s": round(built, 3)})
                print(f"{n:>5} patterns  {record.purpose:<20} {size:>9,} bytes = {size / MAX_QUERY_BYTES:6.1%} of "
                      f"the limit; built in {built:.3f} s")
        print(f"{n:>5} patterns  WarehouseEngine construction (RE2 plan of each pattern): {construct:.2f} s")
        rows.append({"patterns": n, "query": "construction", "build_s": round(construct, 3)})
    return rows


# ------------------------------------------------------------------ 2. bytes referenced
def _size_sql(path: str, kind: str) -> str:
    """BigQuery's logical size of one column or record field, summed over the table."""
    ref = ".".join(f'"{p}"' for p in path.split("."))
    per_value = {"VARCHAR": f"2 + strlen({ref})", "JSON": f"strlen(CAST({ref} AS VARCHAR))",
                 "BIGINT": "8", "TIMESTAMP WITH TIME ZONE": "8", "BOOLEAN": "1", "DOUBLE": "8"}[kind]
    return f"coalesce(sum(CASE WHEN {ref} IS NULL THEN 0 ELSE {per_value} END), 0)"


def _leaf_types(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """{field path: DuckDB type} of every leaf of `TABLE`, records walked."""
    def walk(prefix: str, kind: str, out: dict[str, str]) -> None:
        if kind.startswith("STRUCT("):
            body = kind[len("STRUCT("):-1]
            depth, start = 0, 0
            for i, ch in enumerate(body + ","):
                depth += ch == "("
                depth -= ch == ")"
                if ch == "," and depth == 0:
                    name, sub = body[start:i].strip().split(" ", 1)
                    walk(f"{prefix}.{name.strip(chr(34))}", sub, out)
                    start = i + 1
        else:
            out[prefix] = kind

    out: dict[str, str] = {}
    for name, kind in con.execute('SELECT column_name, column_type FROM (DESCRIBE "p"."d"."_AllLogs")').fetchall():
        walk(name, kind, out)
    return out


def column_bytes(con: duckdb.DuckDBPyConnection, paths: set[str]) -> dict[str, int]:
    """{path: bytes} for each referenced column (a record: the sum of its fields)."""
    leaves = _leaf_types(con)
    wanted = {p: [leaf for leaf in leaves if leaf == p or leaf.startswith(p + ".")] for p in sorted(paths)}
    exprs = sorted({leaf for ls in wanted.values() for leaf in ls})
    sizes = con.execute("SELECT " + ", ".join(_size_sql(leaf, leaves[leaf]) for leaf in exprs)
                        + ' FROM "p"."d"."_AllLogs"').fetchone()
    by_leaf = dict(zip(exprs, (int(s) for s in sizes), strict=True))
    return {p: sum(by_leaf[leaf] for leaf in ls) for p, ls in wanted.items()}


def _plan(audit: WarehouseAudit, analysis: str, window: Window) -> tuple[list[QueryRecord], list[str]]:
    """`audit.plan(analysis)`, and the Engine calls left out. Where the engine refuses a call
    (`WarehouseError`, e.g. health not yet in BigQuery) `plan` raises: the calls are then made
    one by one on a `PlanRunner`, the refused ones left out and named."""
    try:
        return audit.plan(analysis, since=window.since, until=window.until), []
    except WarehouseError:
        pass
    runner = PlanRunner()
    engine = WarehouseEngine(runner, audit.source, audit.catalog, audit.redactor)
    calls = {"totals": lambda: engine.totals(window), "revisions": lambda: engine.revisions(window),
             "endpoints": lambda: engine.endpoints(window), "patterns": lambda: engine.patterns(window),
             "templates": lambda: engine.templates(window, min_severity=WARNING),
             "histograms": lambda: engine.latency_histograms(window), "health": lambda: engine.health(window),
             "root_causes": lambda: engine.root_causes(window), "timeline": lambda: engine.timeline(window, STEP),
             "status_series": lambda: engine.status_series(window, STEP)}
    skipped = []
    for name in PLANS[analysis]:
        try:
            calls[name]()
        except WarehouseError:
            skipped.append(name)
    return list(runner.queries), skipped


def bytes_referenced(db: Path, window: Window, entries: int) -> dict[str, Any]:
    print("\n== 2. bytes referenced per analysis, per million entries (an estimate, not a dry run) ==")
    print("Method: BigQuery's documented data-size rules (cloud.google.com/bigquery/pricing#data): STRING "
          "2 bytes + UTF-8 length, INT64/TIMESTAMP 8, BOOL 1, JSON its UTF-8 text length, NULL 0, a record "
          "the sum of its referenced fields; summed over the generated _AllLogs table and scaled to 1M entries.")
    print("BigQuery bills the referenced columns of every query (each query of an analysis scans them "
          "again), at least 10 MB per table per query; Log Analytics storage and editions may bill differently.")
    print("Every column the entry view references is counted: BigQuery may prune view columns a query never "
          "uses, so this is an upper bound; `--dry-run` asks BigQuery for the billed figure.")
    con = duckdb.connect()
    con.execute(f"ATTACH '{db}' AS p (READ_ONLY)")
    audit = WarehouseAudit(WarehouseSource.all_logs(TABLE), PlanRunner())
    plans = {a: _plan(audit, a, window) for a in ("summarize", "compare", "report")}
    referenced = {a: [(r.purpose, table_columns(r.sql).get(TABLE, set())) for r in records]
                  for a, (records, _) in plans.items()}
    sizes = column_bytes(con, {c for qs in referenced.values() for _, cols in qs for c in cols})
    con.close()
    scale = 1_000_000 / entries
    print("column sizes per million entries: " + ", ".join(
        f"{c} {format_bytes(int(s * scale))}" for c, s in sorted(sizes.items(), key=lambda kv: -kv[1])))
    out: dict[str, Any] = {"column_bytes_per_million": {c: int(s * scale) for c, s in sizes.items()}}
    for analysis, queries in referenced.items():
        per_query = [(purpose, int(sum(sizes[c] for c in cols) * scale)) for purpose, cols in queries]
        total = sum(b for _, b in per_query)
        skipped = plans[analysis][1]
        print(f"{analysis}: {len(per_query)} queries, {format_bytes(total)} per million entries, about "
              f"{estimate_usd(total):.5f} USD per million entries (on-demand list price)"
              + (f"; left out, not computed in BigQuery yet: {', '.join(skipped)}" if skipped else ""))
        for purpose, b in per_query:
            print(f"    {purpose:<20} {format_bytes(b):>10}  {estimate_usd(b):.5f} USD")
        out[analysis] = {"queries": dict(per_query), "bytes_per_million": total, "usd_per_million": estimate_usd(total),
                         "skipped": skipped}
    return out


# ------------------------------------------------------------------------------ 3. speed
def _plain(value: Any) -> Any:
    """Dataclasses as dicts, timestamps as aware UTC: what two engines must agree on."""
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if dataclasses.is_dataclass(value):
        return _plain(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (pd.Timestamp, datetime)):
        ts = pd.Timestamp(value)
        return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return value


def _calls(engine: Any, window: Window) -> Iterator[tuple[str, Callable[[], Any]]]:
    yield "totals", lambda: engine.totals(window)
    yield "revisions", lambda: engine.revisions(window)
    yield "endpoints", lambda: engine.endpoints(window)
    yield "patterns", lambda: engine.patterns(window)
    yield "templates(WARNING)", lambda: engine.templates(window, min_severity=WARNING)
    yield "latency_histograms", lambda: engine.latency_histograms(window)
    yield "timeline(5 min)", lambda: engine.timeline(window, STEP).to_pylist()


def _timed(engine: Any, window: Window) -> dict[str, tuple[float, Any]]:
    out = {}
    for name, call in _calls(engine, window):
        t0 = time.perf_counter()
        result = call()
        out[name] = (time.perf_counter() - t0, _plain(result))
    return out


class CountingRunner(DuckDBRunner):
    """A `DuckDBRunner` that counts the rows each purpose brought back."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        super().__init__(con)
        self.rows: dict[str, int] = {}

    def query(self, sql: str, params: dict[str, Any] | None = None, *, purpose: str) -> Any:
        table = super().query(sql, params, purpose=purpose)
        self.rows[purpose] = self.rows.get(purpose, 0) + table.num_rows
        return table


def speed(db: Path, store: Store, window: Window) -> dict[str, Any]:
    print("\n== 3. the warehouse SQL on DuckDB (an _AllLogs table) vs the local engine (a store), same entries ==")
    t0 = time.perf_counter()
    Audit(store).summary()  # classifies the store once (cached), as a local user's first run does
    print(f"local: first summary (classifies the store, cached afterwards): {time.perf_counter() - t0:.1f} s")
    local = _timed(Audit(store).engine, window)
    con = duckdb.connect(config={"threads": 2})
    con.execute(f"ATTACH '{db}' AS p (READ_ONLY)")
    audit = Audit(store)
    runner = CountingRunner(con)
    # the cap on (pattern, text) pairs re-checked locally (MAX_CANDIDATES) is lifted to time equal
    # work; the pairs fetched are printed against it
    warehouse = _timed(WarehouseEngine(runner, WarehouseSource.all_logs(TABLE), audit.catalog, audit.redactor,
                                       max_candidates=2**62), window)
    con.close()
    fetched = runner.rows.get("recheck-candidates", 0)
    print(f"re-checked locally: {fetched:,} distinct (pattern, text) pairs fetched once (the default cap is "
          f"{MAX_CANDIDATES:,}" + (": with it the engine refuses this window)" if fetched > MAX_CANDIDATES else ")"))
    rows = {}
    for name in local:
        (w_s, w_res), (l_s, l_res) = warehouse[name], local[name]
        assert w_res == l_res, f"{name}: the warehouse SQL and the local engine disagree"
        rows[name] = {"warehouse_duckdb_s": round(w_s, 3), "local_s": round(l_s, 3), "ratio": round(w_s / l_s, 2)}
        print(f"{name:<20} warehouse SQL on DuckDB {w_s:8.3f} s, local engine {l_s:7.3f} s, ratio {w_s / l_s:6.1f}x"
              "  (equal results)")
    w_total, l_total = sum(v[0] for v in warehouse.values()), sum(v[0] for v in local.values())
    print(f"{'total':<20} warehouse SQL on DuckDB {w_total:8.3f} s, local engine {l_total:7.3f} s, "
          f"ratio {w_total / l_total:6.1f}x")
    rows["total"] = {"warehouse_duckdb_s": round(w_total, 3), "local_s": round(l_total, 3),
                     "ratio": round(w_total / l_total, 2)}
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--skip-speed", action="store_true", help="sections 1 and 2 only")
    args = parser.parse_args()
    started = time.perf_counter()
    root, store, config = bench_data(args.entries)
    window = _window(config)
    results: dict[str, Any] = {"entries": args.entries, "query_text": query_text(window),
                               "bytes": bytes_referenced(root / "all_logs.duckdb", window, args.entries)}
    if not args.skip_speed:
        results["speed"] = speed(root / "all_logs.duckdb", store, window)
    print(f"\nbenchmark ran in {time.perf_counter() - started:.0f} s")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
