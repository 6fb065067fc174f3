"""Keep freed memory in the process, so that big temporaries are reused, not faulted in again.

Classifying or summarizing a million entries makes hundreds of megabytes of short-lived arrays
(masks, offsets, row numbers, joined texts). By default both allocators involved hand freed
memory of that size back to the operating system at once: glibc (NumPy's) above its mmap
threshold or by trimming its heap, and mimalloc (Arrow's) 10 ms after it is freed. The next call
then touches every page afresh, and on virtual machines that reclaim memory eagerly those page
faults cost as much as the work itself (measured on the reference machine: 0.3-0.6 s of system
time in some 0.4 s classifications of 1M entries).

* Importing this module (`logaudit/__init__` does so first) asks mimalloc to keep freed memory
  for `ARROW_PURGE_DELAY_MS` instead. mimalloc reads the setting once, when pyarrow loads, so it
  only takes effect when logaudit is imported before pyarrow; a value the user set wins.
* `tune_allocator` raises glibc's thresholds; the memory stays with the process, up to
  `TRIM_BYTES` of it free. The command line calls it on start and classification workers on
  theirs; a notebook may call it once (it changes the whole process's allocator). Elsewhere
  than glibc it does nothing.

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

os.environ.setdefault("MIMALLOC_PURGE_DELAY", str(ARROW_PURGE_DELAY_MS))

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
