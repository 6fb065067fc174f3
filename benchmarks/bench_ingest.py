"""Ingest benchmark: logaudit ingest vs DuckDB's own read_json -> Parquet, same file, same run.

    python benchmarks/bench_ingest.py [--entries 1000000] [--keep]

Generates N sample entries as JSON Lines (logaudit.sample), then times, each in a fresh
process so peak RSS is measured per tool:
  * logaudit: `logaudit ingest` into an empty store (parse, flatten, infer severity,
    deduplicate, reject bad lines with line numbers, atomic Parquet writes);
  * baseline: one DuckDB statement, `COPY (SELECT <the same flattening> FROM read_json(file))
    TO out.parquet` -- what you would write by hand, without dedup, rejects or line numbers.
Prints entries/s and peak RSS for both and the ratio. Target: ratio <= 1.5, logaudit RSS < 1 GB.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BASELINE = r"""
import sys, duckdb, json
from logaudit.store.normalize import (
    _PARSE_SELECT,
    _FINISH_CTES,
    _KEEP_SQL,
    _DERIVED_SELECT,
    _DERIVED,
    _STRUCTURE,
)
from logaudit.store.schema import ENTRY_COLUMNS
src, out = sys.argv[1], sys.argv[2]
def duck_type(v):
    if isinstance(v, dict):
        return "STRUCT(" + ", ".join(f'"{k}" {duck_type(x)}' for k, x in v.items()) + ")"
    return v
cols = "{" + ", ".join(f"'{k}': '{duck_type(v)}'" for k, v in json.loads(_STRUCTURE).items()) + "}"
parse = (f"SELECT {_PARSE_SELECT} FROM (SELECT NULL::BIGINT AS pos, * "
         f"FROM read_json('{src}', format='newline_delimited', columns={cols}))")
rest = [c if c not in ("source", "source_position") else ("'bench' AS source" if c == "source" else "pos AS source_position")
        for c in ENTRY_COLUMNS if c not in _DERIVED]
query = f"WITH parsed AS ({parse}), {_FINISH_CTES} SELECT {_DERIVED_SELECT}, {', '.join(rest)} FROM e WHERE {_KEEP_SQL}"
con = duckdb.connect(config={"threads": 2})
con.execute("SET enable_progress_bar = false")
con.execute(f"COPY ({query}) TO '{out}' (FORMAT parquet, COMPRESSION zstd)")
"""


def run(cmd: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one child process (wait4 gives that child's own rusage)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[:3]} failed with exit code {proc.returncode}")
    return seconds, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--keep", action="store_true", help="keep the generated file and store")
    args = parser.parse_args()
    from logaudit.sources.sample import SampleConfig, write_sample

    work = Path(tempfile.mkdtemp(prefix="logaudit-bench-"))
    src = work / "entries.jsonl"
    t0 = time.perf_counter()
    write_sample(src, SampleConfig(entries=args.entries))
    print(f"generated {args.entries} entries ({src.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t0:.1f} s")

    base_s, base_rss = run([sys.executable, "-c", BASELINE, str(src), str(work / "baseline.parquet")])
    ours_s, ours_rss = run([sys.executable, "-m", "logaudit", "ingest", "--quiet", "--store", str(work / "store"), str(src)])
    from logaudit.store.store import Store

    stored = Store(work / "store").info()["entries"]
    assert stored == args.entries, f"store holds {stored} entries, expected {args.entries}"
    ratio = ours_s / base_s
    result = {
        "entries": args.entries,
        "logaudit_s": round(ours_s, 2), "logaudit_entries_per_s": round(args.entries / ours_s),
        "logaudit_peak_rss_mb": round(ours_rss),
        "duckdb_read_json_s": round(base_s, 2), "duckdb_entries_per_s": round(args.entries / base_s),
        "duckdb_peak_rss_mb": round(base_rss),
        "ratio": round(ratio, 2),
    }
    print(
        f"logaudit ingest {ours_s:.2f} s ({args.entries / ours_s:,.0f} entries/s, peak RSS {ours_rss:.0f} MB); "
        f"duckdb read_json->parquet {base_s:.2f} s ({args.entries / base_s:,.0f} entries/s, peak RSS {base_rss:.0f} MB); "
        f"ratio {ratio:.2f}x (target <= 1.5x, RSS < 1024 MB)"
    )
    print(json.dumps(result))
    if not args.keep:
        shutil.rmtree(work)
    else:
        print(f"kept {work}")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
