"""Summary benchmark: `Audit.summary` (what `summarize --format json` prints) over a 10M-entry store.

    python benchmarks/bench_summarize.py [--entries 10000000] [--days 10]

Times, for a 6 h window (the last 6 hours of the data; and the same shifted to cut hours at both
ends) and for the whole store:
  * logaudit: the library call behind `summarize --format json`, warm (a fresh Audit after one
    warm-up run, so classification results are cached and files are in the OS cache), and the
    CLI as a separate process;
  * baseline (a): one hand-written DuckDB GROUP BY over the same Parquet files computing only
    per-revision counts and latency quantiles;
  * baseline (b): pandas on the same columns loaded in memory (load time and group time).
Targets: library call within 3x of (a) for both windows; CLI process under 1.5 s for 6 h.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import duckdb  # noqa: E402
import pandas as pd  # noqa: E402
from common import bench_store  # noqa: E402

from logaudit.analysis.audit import Audit  # noqa: E402
from logaudit.core.timeparse import format_rfc3339  # noqa: E402


def best_of(fn, runs: int = 3) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(runs):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=10)
    args = parser.parse_args()
    store, info = bench_store(args.entries, args.days)
    start = datetime.fromisoformat(info["start"].replace("Z", "+00:00")).astimezone(UTC)
    end = start + timedelta(hours=info["hours"])
    # the last 6 hours of the data (they end on a whole hour), the same cut mid-hour at both ends
    # (`--since 6h` at a random time of day: rows of the cut hours are read again), and everything
    odd = timedelta(minutes=20, seconds=34.5)
    windows = {"6h": (end - timedelta(hours=6), end), "6h-mid-hour": (end - timedelta(hours=6) - odd, end - odd),
               "all": (None, None)}
    files = [str(f) for f in store.entry_files()]

    t0 = time.perf_counter()
    Audit(store).summary()  # classify once (cached afterwards)
    print(f"first summary (classifies the store): {time.perf_counter() - t0:.1f} s")
    results = {}
    for name, (since, until) in windows.items():
        def lib(since=since, until=until):
            return Audit(store).summary(since=since, until=until)

        lib()
        lib_s, summary = best_of(lib)

        def duck(since=since, until=until):
            con = duckdb.connect(config={"threads": 2})
            where = "TRUE" if since is None else "timestamp >= $since AND timestamp < $until"
            params = {} if since is None else {"since": since, "until": until}
            return con.execute(f"""
                SELECT service, revision, count(*) AS entries,
                       count(*) FILTER (effective_severity_num >= 500) AS errors,
                       count(http_status) AS requests,
                       count(*) FILTER (http_status >= 500) AS status_5xx,
                       quantile_cont(http_latency_ms, [0.5, 0.95, 0.99]) AS latency
                FROM read_parquet($files) WHERE {where} GROUP BY ALL""", params | {"files": files}).fetchall()

        duck_s, _ = best_of(duck)
        cols = ["timestamp", "service", "revision", "effective_severity_num", "http_status", "http_latency_ms"]
        filters = None if since is None else [("timestamp", ">=", pd.Timestamp(since)), ("timestamp", "<", pd.Timestamp(until))]
        t0 = time.perf_counter()
        frame = pd.read_parquet(files, columns=cols, filters=filters)
        load_s = time.perf_counter() - t0

        def group(frame=frame):
            g = frame.groupby(["service", "revision"])
            out = g.agg(entries=("timestamp", "size"), requests=("http_status", "count"),
                        p50=("http_latency_ms", lambda s: s.quantile(0.5)),
                        p95=("http_latency_ms", lambda s: s.quantile(0.95)),
                        p99=("http_latency_ms", lambda s: s.quantile(0.99)))
            out["errors"] = (frame["effective_severity_num"] >= 500).groupby([frame["service"], frame["revision"]]).sum()
            return out

        group_s, _ = best_of(group, runs=1)
        del frame
        cli = [sys.executable, "-m", "logaudit", "summarize", "--store", str(store.root), "--format", "json"]
        if since is not None:
            cli += ["--since", format_rfc3339(since), "--until", format_rfc3339(until)]
        subprocess.run(cli, check=True, capture_output=True)
        cli_s, proc = best_of(lambda cli=cli: subprocess.run(cli, check=True, capture_output=True))
        assert json.loads(proc.stdout)["entries"] == summary["entries"]
        results[name] = {
            "entries": summary["entries"], "logaudit_s": round(lib_s, 3), "cli_s": round(cli_s, 3),
            "duckdb_groupby_s": round(duck_s, 3), "pandas_load_s": round(load_s, 2), "pandas_group_s": round(group_s, 2),
            "ratio_vs_duckdb": round(lib_s / duck_s, 2),
        }
        print(f"{name} window ({summary['entries']:,} entries): logaudit summary {lib_s:.3f} s, CLI process {cli_s:.3f} s; "
              f"(a) duckdb group-by {duck_s:.3f} s -> ratio {lib_s / duck_s:.2f}x (target <= 3x); "
              f"(b) pandas load {load_s:.2f} s + group {group_s:.2f} s"
              + ("; CLI target < 1.5 s" if name.startswith("6h") else ""))
    print(json.dumps(results))


if __name__ == "__main__":
    main()
