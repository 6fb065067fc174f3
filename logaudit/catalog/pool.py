"""Worker processes for one classification run: `run_tasks` evaluates entry files in this process
and in forked (or spawned) workers, handing a worker its next file as soon as it finishes one.
"""

from __future__ import annotations

import contextlib
import gc
import multiprocessing
import os
import queue
import threading
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pyarrow as pa

from logaudit.catalog.cache import FileOutcome, FileTask, evaluate_file
from logaudit.catalog.engine import compile_patterns
from logaudit.core.memory import tune_allocator


@contextlib.contextmanager
def _worker_pool(size: int) -> Any:
    """Worker processes for one classification run.

    Forked where the platform can (instant; the workers inherit the compiled catalog and the
    caller's `__main__` needs no `if __name__ == "__main__"` guard), else spawned. They only run
    this module's code (Arrow, Hyperscan, `regex`) and end with the run, so they hold no file
    descriptors (locks) of the caller for longer than that.
    """
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    if method == "fork":
        # pyarrow imports pandas lazily on its first pa.array(): do it once here, not in every worker
        pa.array([0])
    pool = ProcessPoolExecutor(max_workers=size, mp_context=multiprocessing.get_context(method),
                               initializer=tune_allocator)
    try:
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def run_tasks(tasks: list[FileTask], workers: int, max_chars: int,
               use_hyperscan: bool) -> Iterable[tuple[FileTask, FileOutcome]]:
    """Evaluate tasks in this process and `workers - 1` worker processes; yield as they finish.

    A worker is handed its next task from the moment it finishes one (a done-callback), not when
    this process next looks up from its own task, so no core idles while work is pending.
    """
    if workers <= 1 or len(tasks) <= 1:
        for task in tasks:
            yield task, evaluate_file(task)
        return
    # biggest files first, so that the last task to finish is a small one
    pending = sorted(tasks, key=lambda t: -Path(t.entry_path).stat().st_size)
    for subset in {tuple(t.keys): t.patterns for t in pending}.values():
        compile_patterns(subset, max_chars=max_chars, use_hyperscan=use_hyperscan)  # the workers inherit it
    lock = threading.Lock()
    finished: queue.SimpleQueue = queue.SimpleQueue()
    with _worker_pool(workers - 1) as pool:

        def take() -> FileTask | None:
            with lock:
                return pending.pop(0) if pending else None

        def submit(task: FileTask) -> None:
            future = pool.submit(evaluate_file, task)
            future.add_done_callback(lambda f, task=task: done(task, f))

        def done(task: FileTask, future: Any) -> None:
            finished.put((task, future))
            if not future.cancelled() and future.exception() is None:
                nxt = take()
                if nxt is not None:
                    with contextlib.suppress(RuntimeError):  # the pool is shutting down after an error
                        submit(nxt)

        gc.freeze()  # the workers fork now: keep the GC off the pages they inherit
        try:
            for _ in range(workers - 1):
                task = take()
                if task is not None:
                    submit(task)
        finally:
            gc.unfreeze()
        left = len(tasks)
        while left:
            task = take()
            if task is not None:  # this process works too, while there is work
                yield task, evaluate_file(task)
                left -= 1
            else:  # nothing left to take: wait for a worker
                ptask, future = finished.get()
                yield ptask, future.result()
                left -= 1
            while left and not finished.empty():  # what the workers finished meanwhile
                ptask, future = finished.get()
                yield ptask, future.result()
                left -= 1


def resolve_workers(workers: int | None) -> int:
    if workers is not None:
        return max(1, workers)
    return max(1, min(2, os.cpu_count() or 1))


__all__ = ["run_tasks", "resolve_workers"]
