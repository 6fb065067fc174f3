"""Keep freed memory in the process, so that big temporaries are reused, not faulted in again.

`tune_memory` asks mimalloc (Arrow's allocator) to keep freed memory for `ARROW_PURGE_DELAY_MS`
and raises glibc's thresholds (`tune_allocator`). The command line calls it first thing,
classification workers call `tune_allocator` on start, a notebook may call `logaudit.tune_memory()`
once, first; importing logaudit does neither. Why and what it gains: docs/architecture.md, "Memory".

>>> from logaudit.core.memory import tune_allocator
>>> tune_allocator() in (True, False)
True
"""

from __future__ import annotations

import ctypes
import os
import sys

#: Blocks up to this size are carved from the heap, not mapped (glibc's ceiling for the setting).
MMAP_THRESHOLD_BYTES = 32 << 20
#: The heap is trimmed only when more than this much of its top is free.
TRIM_BYTES = 256 << 20

#: How long mimalloc keeps freed memory before handing it back (its own default: 10 ms).
ARROW_PURGE_DELAY_MS = 10_000
#: The variable mimalloc reads it from, once, when pyarrow loads.
PURGE_DELAY_ENV = "MIMALLOC_PURGE_DELAY"

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_done: bool | None = None


def tune_memory() -> bool:
    """Keep freed memory in this process (it changes the whole process's allocators).

    Sets $MIMALLOC_PURGE_DELAY to `ARROW_PURGE_DELAY_MS` unless it is set (a value the user
    chose wins); mimalloc reads it when pyarrow loads, so call this before anything imports
    pyarrow. Then `tune_allocator`; returns what it returns.
    """
    os.environ.setdefault(PURGE_DELAY_ENV, str(ARROW_PURGE_DELAY_MS))
    return tune_allocator()


def tune_allocator() -> bool:
    """Set glibc's mmap and trim thresholds (once per process); whether they were set.

    The memory stays with the process, up to `TRIM_BYTES` of it free. Elsewhere than glibc it
    does nothing.
    """
    global _done
    if _done is None:
        _done = False
        if sys.platform.startswith("linux"):
            try:
                mallopt = ctypes.CDLL(None).mallopt
                _done = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(
                    mallopt(_M_TRIM_THRESHOLD, TRIM_BYTES))
            except (OSError, AttributeError):  # not glibc (musl has no thresholds to set)
                _done = False
    return _done


__all__ = ["ARROW_PURGE_DELAY_MS", "PURGE_DELAY_ENV", "tune_allocator", "tune_memory"]
