"""Benchmark: `logaudit compare` (baseline vs canary) over a 10M-entry store, warm.

    python benchmarks/bench_compare.py                         # 10M entries over 10 days
    python benchmarks/bench_compare.py --entries 1000000 --repeat 5
    LOGAUDIT_BENCH_STORE=/data/bench-store python benchmarks/bench_compare.py

The store is generated once by `benchmarks/common.py` (`SampleGenerator(SampleConfig(entries=N,
hours=240))`) and cached at --store, else $LOGAUDIT_BENCH_STORE, else a folder in the temp
directory; the summarize benchmark reuses the same store. The first `compare` classifies the store against the catalog (cached
under STORE/derived/matches/) and is reported as "cold"; then --repeat warm runs in fresh `Audit`
objects (new DuckDB connections, cached classification, OS file cache warm) and the best and
median are printed. Target: warm < 2 s on 2 cores for 10M entries.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import bench_store  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--entries", type=int, default=10_000_000)
    ap.add_argument("--hours", type=float, default=240.0)
    ap.add_argument("--store", type=Path, default=None, help="store directory (generated when missing)")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--build-only", action="store_true", help="only make sure the store exists")
    args = ap.parse_args(argv)
    store, _ = bench_store(args.entries, args.hours / 24, args.store)
    root = store.root
    if args.build_only:
        return 0
    from logaudit.analysis.audit import Audit
    from logaudit.analysis.judge import compare

    t0 = time.perf_counter()
    first = compare(Audit(root))
    cold = time.perf_counter() - t0
    times = []
    result = first
    for _ in range(args.repeat):
        audit = Audit(root)
        t0 = time.perf_counter()
        result = compare(audit)
        times.append(time.perf_counter() - t0)
        audit.close()
    d = result.to_dict()
    print(f"store: {root} ({args.entries:,} entries, {args.hours:g} h), cpus: {os.cpu_count()}")
    print(f"{d['service']}: {d['canary']} vs {d['baseline']} -> {d['verdict']} (score {d['score']:.0f}), "
          f"{len(d['metrics'])} metrics, {len(d['new_patterns'])} new patterns, {len(d['new_templates'])} new templates")
    print(f"first run (classifies the store if needed): {cold:.2f} s")
    print(f"warm: best {min(times):.3f} s, median {statistics.median(times):.3f} s over {len(times)} runs"
          f"  (target < 2 s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
