"""Progress display: a rich bar on a terminal, periodic plain lines otherwise, nothing when quiet."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)


def _total_bytes(paths: Sequence[str]) -> int | None:
    total = 0
    for raw in paths:
        p = Path(raw)
        if p.is_file():
            total += p.stat().st_size
        elif p.is_dir():
            total += sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
        else:
            return None
    return total


@contextlib.contextmanager
def byte_progress(paths: Sequence[str], enabled: bool = True) -> Iterator[Callable[[str, int, int], None] | None]:
    """Yield a `progress(source, bytes_done_in_source, rows_in_source)` callback (or None)."""
    if not enabled:
        yield None
        return
    console = Console(stderr=True)
    if not console.is_terminal:
        last = [time.monotonic()]

        def plain(source: str, done: int, rows: int) -> None:
            now = time.monotonic()
            if now - last[0] >= 5:
                last[0] = now
                print(f"ingest: {os.path.basename(source)}: {rows} entries read", file=sys.stderr)

        yield plain
        return
    bar = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                   TextColumn("{task.fields[rows]} entries"), TimeElapsedColumn(), console=console, transient=True)
    task = bar.add_task("ingest", total=_total_bytes(paths), rows=0)
    seen: dict[str, int] = {}

    def update(source: str, done: int, rows: int) -> None:
        seen[source] = done
        bar.update(task, completed=sum(seen.values()), rows=rows, description=f"ingest {os.path.basename(source)}")

    with bar:
        yield update
