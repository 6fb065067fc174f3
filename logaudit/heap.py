"""Keep large freed blocks in the heap, so that big temporaries are reused, not faulted in again.

Classifying or summarizing a million entries makes hundreds of megabytes of short-lived NumPy
arrays (masks, offsets, row numbers), each up to tens of megabytes. By default glibc returns a
freed block of that size to the operating system at once (above its mmap threshold, or by
trimming the heap), so the next call touches every page afresh: on virtual machines that
reclaim memory eagerly those page faults cost as much as the work itself (measured: 0.3-0.6 s
of system time on a 0.4 s classification of 1M entries, in some runs). `tune_allocator` raises
both thresholds; the memory stays with the process, up to `TRIM_BYTES` of it free.

The command line calls it on start and classification workers on theirs; a notebook may call it
once (it changes the whole process's allocator). Elsewhere than glibc it does nothing.

>>> from logaudit.heap import tune_allocator
>>> tune_allocator() in (True, False)
True
"""

from __future__ import annotations

import ctypes
import sys

#: Blocks up to this size are carved from the heap, not mapped (glibc's ceiling for the setting).
MMAP_THRESHOLD_BYTES = 32 << 20
#: The heap is trimmed only when more than this much of its top is free.
TRIM_BYTES = 256 << 20

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_done: bool | None = None


def tune_allocator() -> bool:
    """Set glibc's mmap and trim thresholds (once per process); whether they were set."""
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
