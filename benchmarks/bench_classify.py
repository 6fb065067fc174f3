"""Benchmark: classify sample entries against the shipped catalogs, next to two baselines.

    python benchmarks/bench_classify.py                    # 1M sample entries, patterns/
    python benchmarks/bench_classify.py --entries 200000 --patterns my.yaml --naive-rows 100000

Measured in one run, on the same entries and patterns:

* **logaudit engine**: `match_table` on the in-memory entry table (read as the store path reads
  each file), one process, best of --repeat runs;
* **logaudit store**: `classify_store` from Parquet to the match cache with --workers processes
  (cold: cache emptied first, best of --repeat), then a re-run that finds everything cached;
* **naive loop**: for every entry and every pattern, `regex.search` on the pattern's field
  (then its `when` conditions), in Python; on --naive-rows entries, scaled to all. It runs in
  --repeat parts, each right after one engine run: this host's speed drifts over seconds, and
  interleaving measures both over the same stretch of time;
* **DuckDB**: one query with ``count(*) FILTER (WHERE regexp_matches(field, regex))`` per
  pattern (RE2: patterns RE2 cannot compile are left out and named).

The engine's counts are checked against the naive loop's on the rows both saw.
Data is generated once into benchmarks/out/ (logaudit.sample) and reused.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import resource
import shutil
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# memory tuned before pyarrow loads, as the command line does (docs/architecture.md, "Memory")
import logaudit  # noqa: E402, I001

logaudit.tune_memory()
import duckdb  # noqa: E402
import pyarrow as pa  # noqa: E402

from logaudit.catalog.cache import read_entry_file  # noqa: E402
from logaudit.catalog.catalog import load_catalogs  # noqa: E402
from logaudit.catalog.classify import classify_store  # noqa: E402
from logaudit.catalog.engine import compile_patterns, match_table  # noqa: E402
from logaudit.core.memory import tune_allocator  # noqa: E402


class Timing:
    """Best wall-clock and CPU seconds (this process and its finished children) of the runs measured."""

    def __init__(self) -> None:
        self.wall = self.cpu = float("inf")

    @contextlib.contextmanager
    def measure(self):
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        c0, w0 = time.process_time() + usage.ru_utime + usage.ru_stime, time.perf_counter()
        yield
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.wall = min(self.wall, time.perf_counter() - w0)
        self.cpu = min(self.cpu, time.process_time() + usage.ru_utime + usage.ru_stime - c0)

    def __str__(self) -> str:
        return f"{self.wall:.3f} s ({self.cpu:.3f} s CPU)"


def build_store(out: Path, entries: int, seed: int) -> Path:
    from logaudit.sources.sample import SampleConfig, SampleGenerator
    from logaudit.store.store import Store

    root = out / f"store-{entries}-{seed}"
    if (root / ".complete").exists():
        return root
    shutil.rmtree(root, ignore_errors=True)
    t0 = time.perf_counter()
    print(f"generating and ingesting {entries} sample entries into {root} ...", flush=True)
    Store(root).ingest_entries(SampleGenerator(SampleConfig(entries=entries, seed=seed)), "sample",
                               batch_size=200_000)
    (root / ".complete").write_text("ok\n")
    print(f"  done in {time.perf_counter() - t0:.1f} s", flush=True)
    return root


def plain(col: pa.ChunkedArray) -> pa.ChunkedArray:
    """The column decoded: a dictionary column's `to_pylist` is several times slower than a plain one's."""
    return col.cast(col.type.value_type) if pa.types.is_dictionary(col.type) else col


def naive_counts(tbl: pa.Table, patterns: list, start: int, stop: int) -> Counter:
    """Per entry of rows [start, stop), per pattern: regex.search on its field, then its `when` conditions."""
    cols = {c: plain(tbl.column(c).slice(start, stop - start)).to_pylist() for c in {p.field for p in patterns}
            | {w.column for p in patterns for w in p.when}}
    plan = [(p.id, p.compiled.search, cols[p.field], [(cols[w.column], w) for w in p.when]) for p in patterns]
    counts: Counter = Counter()
    for i in range(stop - start):
        for pid, search, values, conds in plan:
            v = values[i]
            if v is not None and search(v) is not None and all(w.matches_value(col[i]) for col, w in conds):
                counts[pid] += 1
    return counts


def interleaved(tbl: pa.Table, compiled, patterns: list, rows: int, parts: int):
    """The engine on the whole table `parts` times, each run followed by one part of the naive loop.

    The host's speed drifts over seconds (other tenants): interleaving has both measured over the
    same stretch of time. Returns (engine timing, its result, naive wall s, naive CPU s, naive counts).
    """
    engine, res = Timing(), None
    naive_wall = naive_cpu = 0.0
    counts: Counter = Counter()
    bounds = [rows * k // parts for k in range(parts + 1)]
    for start, stop in itertools.pairwise(bounds):
        with engine.measure():
            res = match_table(tbl, compiled)
        part = Timing()
        with part.measure():
            counts += naive_counts(tbl, patterns, start, stop)
        naive_wall, naive_cpu = naive_wall + part.wall, naive_cpu + part.cpu
    return engine, res, naive_wall, naive_cpu, counts


def duckdb_baseline(tbl: pa.Table, patterns: list, threads: int) -> tuple[duckdb.DuckDBPyConnection, str, list[str]]:
    """A connection with the table registered, the query to time, and the patterns RE2 cannot compile."""
    con = duckdb.connect(config={"threads": threads})
    con.register("t", tbl)
    usable, skipped = [], []
    for p in patterns:
        rx = ("(?i)" if p.ignore_case else "") + p.regex
        try:
            con.execute(f"SELECT regexp_matches('', '{rx.replace(chr(39), chr(39) * 2)}')").fetchall()
            usable.append((p, rx))
        except duckdb.Error:
            skipped.append(p.id)
    exprs = ", ".join(f"count(*) FILTER (WHERE regexp_matches({p.field}, '{rx.replace(chr(39), chr(39) * 2)}'))"
                      for p, rx in usable)
    return con, f"SELECT {exprs} FROM t", skipped


def noisy_table(tbl: pa.Table, res, patterns: list, known_share: float, seed: int) -> pa.Table:
    """`tbl` with most messages that match a pattern replaced by messages that match none."""
    import numpy as np

    msg_pats = np.array([p.field == "message" for p in patterns])
    matched = np.zeros(tbl.num_rows, dtype=bool)
    matched[res.rows[msg_pats[res.patterns]]] = True
    messages = tbl.column("message").combine_chunks()
    valid = np.asarray(messages.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    unknown = np.flatnonzero(valid & ~matched)
    rng = np.random.default_rng(seed)
    replace = np.flatnonzero(valid & matched & (rng.random(tbl.num_rows) >= known_share))
    take = np.arange(tbl.num_rows)
    take[replace] = rng.choice(unknown, size=len(replace))
    return tbl.set_column(tbl.schema.get_field_index("message"), "message", messages.take(pa.array(take)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--entries", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--patterns", action="append", default=None, help="catalog file/dir (default: patterns/)")
    ap.add_argument("--naive-rows", type=int, default=None, help="rows for the naive loop (default: all)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out")
    args = ap.parse_args()

    tuned = tune_allocator()  # as the command line does on start
    args.out.mkdir(parents=True, exist_ok=True)
    store_root = build_store(args.out, args.entries, args.seed)
    from logaudit.store.store import Store

    store = Store(store_root)
    cat = load_catalogs(args.patterns or [ROOT / "patterns"])
    patterns = list(cat)
    print(f"{len(patterns)} patterns, {args.entries} entries, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.2f} (other work on the machine slows every number); "
          f"allocator thresholds raised as by the CLI: {'yes' if tuned else 'no (not glibc)'}", flush=True)

    t0 = time.perf_counter()
    compiled = compile_patterns(patterns)
    compile_s = time.perf_counter() - t0
    files = store.entry_files()
    t0 = time.perf_counter()
    # read as the store path reads each file (low-cardinality columns dictionary-encoded)
    tbl = pa.concat_tables([read_entry_file(f, compiled) for f in files]).combine_chunks()
    read_s = time.perf_counter() - t0
    n = tbl.num_rows

    # --- the engine (one process, in memory), interleaved with the naive loop
    rows = min(args.naive_rows or n, n)
    best, res, naive_wall, naive_cpu, counts = interleaved(tbl, compiled, patterns, rows, args.repeat)
    engine_counts = Counter(patterns[i].id for i in res.patterns.tolist())
    print(f"engine (1 process, in memory): {best} = {n / best.wall:,.0f} entries/s "
          f"[{len(res)} matches; compile {compile_s * 1000:.0f} ms, parquet read {read_s:.2f} s]", flush=True)
    sub = Counter(patterns[i].id for i, r in zip(res.patterns.tolist(), res.rows.tolist(), strict=True) if r < rows)
    assert +counts == +sub, f"engine and naive loop disagree: {set(counts.items()) ^ set(sub.items())}"
    naive_wall, naive_cpu = naive_wall * n / rows, naive_cpu * n / rows
    scaled = "" if rows == n else f" (measured on {rows} rows, scaled)"
    print(f"naive regex loop: {naive_wall:.2f} s ({naive_cpu:.2f} s CPU) for {n} entries{scaled}, in "
          f"{args.repeat} parts each after one engine run; same counts as the engine", flush=True)

    # --- the store path: Parquet -> match cache, with --workers processes (forked per run)
    store_best = Timing()
    for _ in range(args.repeat):
        shutil.rmtree(store_root / "derived" / "matches", ignore_errors=True)
        with store_best.measure():
            report = classify_store(store, cat, workers=args.workers)
    t0 = time.perf_counter()
    warm = classify_store(store, cat, workers=args.workers)
    warm_s = time.perf_counter() - t0
    idle = max(store_best.cpu / report.workers, 0.001)
    print(f"store (Parquet -> cache, {report.workers} workers): cold {store_best} = {n / store_best.wall:,.0f} "
          f"entries/s (CPU of all processes / {report.workers} cores: {idle:.3f} s = {n / idle:,.0f} entries/s); "
          f"fully cached re-run {warm_s:.3f} s ({warm.cache_hits} cached results)", flush=True)
    assert dict(report.matches) == {p.id: engine_counts.get(p.id, 0) for p in patterns}, "store != engine"

    # --- DuckDB
    con, query, skipped = duckdb_baseline(tbl, patterns, threads=os.cpu_count() or 2)
    duck = Timing()
    with duck.measure():
        con.execute(query).fetchall()
    con.close()
    print(f"duckdb regexp_matches ({len(patterns) - len(skipped)} RE2-compatible patterns, "
          f"{os.cpu_count()} threads): {duck}" + (f"; left out: {', '.join(skipped)}" if skipped else ""))

    # --- the same entries with mostly unknown lines (production logs: few lines are catalogued)
    noisy = noisy_table(tbl, res, patterns, known_share=0.05, seed=args.seed)
    noisy_t, nres, nn_wall, nn_cpu, ncounts = interleaved(noisy, compiled, patterns, rows, args.repeat)
    nsub = Counter(patterns[i].id for i, r in zip(nres.patterns.tolist(), nres.rows.tolist(), strict=True)
                   if r < rows)
    assert +ncounts == +nsub, "engine and naive loop disagree on the noisy mix"
    nn_wall, nn_cpu = nn_wall * n / rows, nn_cpu * n / rows
    print(f"production-like mix (5% of messages are catalogued lines, the rest unknown): engine {noisy_t} = "
          f"{n / noisy_t.wall:,.0f} entries/s [{len(nres)} matches], naive loop {nn_wall:.2f} s "
          f"({nn_cpu:.2f} s CPU), ratio {nn_wall / noisy_t.wall:.1f}x (by CPU {nn_cpu / noisy_t.cpu:.1f}x)", flush=True)

    print()
    print(f"logaudit {best.wall:.3f} s ({n / best.wall:,.0f} entries/s, 1 process; store path with "
          f"{report.workers} workers {store_best.wall:.3f} s = {n / store_best.wall:,.0f} entries/s), "
          f"naive regex loop {naive_wall:.2f} s, duckdb regexp_matches {duck.wall:.2f} s, "
          f"ratio naive/logaudit {naive_wall / best.wall:.1f}x (store path {naive_wall / store_best.wall:.1f}x), "
          f"duckdb/logaudit {duck.wall / best.wall:.1f}x")
    print(f"by CPU time: logaudit {best.cpu:.3f} s, store path {store_best.cpu:.3f} s over {report.workers} "
          f"processes, naive {naive_cpu:.2f} s, duckdb {duck.cpu:.2f} s; ratio naive/logaudit "
          f"{naive_cpu / best.cpu:.1f}x; load average now {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
