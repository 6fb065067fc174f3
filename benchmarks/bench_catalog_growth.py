"""Benchmark: what a catalog change costs classification, against the catalog before it.

    python benchmarks/bench_catalog_growth.py --baseline-rev main          # patterns/ at main vs now
    python benchmarks/bench_catalog_growth.py --baseline old/ --current patterns/ --entries 200000

Both catalogs classify the same sample entries (`logaudit.sources.sample`, as bench_classify.py builds
them) with the engine (`match_table`, one process, in memory), and the same entries with most
catalogued lines replaced by unknown ones (a production-like mix). The runs alternate, baseline
and current in turn (this host's speed drifts over seconds; alternating measures both over the
same stretch of time), and the best of --repeat runs of each is compared: the ratio is the
current catalog's throughput over the baseline's (below 1.0: slower). CPU seconds are compared
as well as wall-clock ones: on a machine other work shares, the process's CPU time varies far
less from run to run than its wall-clock time.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

# logaudit before pyarrow, as in the CLI: it sets Arrow's allocator up when pyarrow loads (logaudit/heap.py)
import logaudit  # noqa: E402, I001, F401
import pyarrow as pa  # noqa: E402

from bench_classify import build_store, noisy_table  # noqa: E402
from logaudit.catalog.cache import read_entry_file  # noqa: E402
from logaudit.catalog.catalog import load_catalogs  # noqa: E402
from logaudit.catalog.engine import compile_patterns, match_table  # noqa: E402
from logaudit.core.memory import tune_allocator  # noqa: E402


def catalog_at(rev: str, folder: Path) -> Path:
    """patterns/*.yaml as they were at git revision `rev`, written into `folder`."""
    names = subprocess.run(["git", "-C", str(ROOT), "ls-tree", "--name-only", rev, "patterns/"],
                           check=True, capture_output=True, text=True).stdout.split()
    for name in names:
        if name.endswith((".yaml", ".yml")):
            text = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:{name}"],
                                  check=True, capture_output=True, text=True).stdout
            (folder / Path(name).name).write_text(text, encoding="utf-8")
    return folder


def best_alternating(tbl: pa.Table, compiled: dict[str, object], repeat: int) -> dict[str, tuple[float, float, int]]:
    """name -> (best wall s, best CPU s, matches) of `match_table`, the catalogs run in turn `repeat` times."""
    best = {name: (float("inf"), float("inf"), 0) for name in compiled}
    names = list(compiled)
    for k in range(repeat):
        for name in names if k % 2 == 0 else names[::-1]:
            c0, w0 = time.process_time(), time.perf_counter()
            res = match_table(tbl, compiled[name])
            wall, cpu = time.perf_counter() - w0, time.process_time() - c0
            best[name] = (min(best[name][0], wall), min(best[name][1], cpu), len(res))
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--baseline", action="append", help="baseline catalog file/dir (repeatable)")
    src.add_argument("--baseline-rev", help="git revision whose patterns/ is the baseline (e.g. main)")
    ap.add_argument("--current", action="append", default=None, help="current catalog file/dir (default: patterns/)")
    ap.add_argument("--entries", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out")
    args = ap.parse_args()

    tune_allocator()  # as the command line does on start
    args.out.mkdir(parents=True, exist_ok=True)
    store_root = build_store(args.out, args.entries, args.seed)
    from logaudit.store import Store

    with tempfile.TemporaryDirectory() as tmp:
        base_paths = args.baseline or [catalog_at(args.baseline_rev, Path(tmp))]
        catalogs = {"baseline": load_catalogs(base_paths), "current": load_catalogs(args.current or [ROOT / "patterns"])}
    compiled = {name: compile_patterns(list(cat)) for name, cat in catalogs.items()}
    files = Store(store_root).entry_files()
    # read as the store path reads each file (low-cardinality columns dictionary-encoded)
    tbl = pa.concat_tables([read_entry_file(f, compiled["current"]) for f in files]).combine_chunks()
    n = tbl.num_rows
    print(f"baseline {len(catalogs['baseline'])} patterns, current {len(catalogs['current'])} patterns; {n} entries, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; best of {args.repeat} alternating runs",
          flush=True)
    mixes = {"sample mix": tbl}
    res = match_table(tbl, compiled["baseline"])
    mixes["production-like mix (5% catalogued)"] = noisy_table(tbl, res, list(catalogs["baseline"]),
                                                               known_share=0.05, seed=args.seed)
    for label, table in mixes.items():
        best = best_alternating(table, compiled, args.repeat)
        (b_wall, b_cpu, b_matches), (c_wall, c_cpu, c_matches) = best["baseline"], best["current"]
        print(f"{label}: baseline {b_wall:.3f} s ({b_cpu:.3f} s CPU) = {n / b_wall:,.0f} entries/s "
              f"[{b_matches} matches], current {c_wall:.3f} s ({c_cpu:.3f} s CPU) = {n / c_wall:,.0f} entries/s "
              f"[{c_matches} matches]; throughput ratio current/baseline {b_wall / c_wall:.3f} "
              f"(by CPU {b_cpu / c_cpu:.3f})", flush=True)
    print(f"load average now {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
