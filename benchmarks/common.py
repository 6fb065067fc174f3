"""Shared benchmark fixtures: a large generated store, built once and reused.

The store lives in $LOGAUDIT_BENCH_STORE (default: a folder in the system temp directory named
after its size) and is rebuilt only when missing or incomplete. A benchmark asking for another
size than the folder holds gets a sibling folder named after its size (`STORE-200000-2d`): a
store is never added to.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

from logaudit.sources.sample import SampleConfig, SampleGenerator
from logaudit.store.store import Store


def bench_store(entries: int = 10_000_000, days: float = 10, path: str | os.PathLike | None = None) -> tuple[Store, dict]:
    """A store holding `entries` generated entries over `days` days, plus its generation info."""
    root = Path(path or os.environ.get("LOGAUDIT_BENCH_STORE")
                or Path(tempfile.gettempdir()) / f"logaudit-bench-{entries}-{days:g}d")
    marker = root / "bench.json"
    if marker.exists():
        info = json.loads(marker.read_text())
        if info.get("entries") == entries and info.get("days") == days:
            return Store(root, create=False), info
        # a store of another size is never added to: this size gets a folder of its own next to it
        root = root.with_name(f"{root.name}-{entries}-{days:g}d")
        marker = root / "bench.json"
        if marker.exists():
            info = json.loads(marker.read_text())
            if info.get("entries") == entries and info.get("days") == days:
                return Store(root, create=False), info
    config = SampleConfig(entries=entries, hours=24.0 * days)
    print(f"building benchmark store: {entries:,} entries over {days} days in {root} (once)", flush=True)
    t0 = time.perf_counter()
    store = Store(root)
    report = store.ingest_entries(SampleGenerator(config), "bench", batch_size=100_000)
    # a store left without its marker (interrupted after ingest) already holds them: duplicates
    assert report.new_rows + report.duplicates == entries, report.to_dict()
    info = {"entries": entries, "days": days, "start": config.start, "hours": config.hours,
            "build_seconds": round(time.perf_counter() - t0, 1)}
    marker.write_text(json.dumps(info))
    print(f"built in {info['build_seconds']} s", flush=True)
    return store, info
