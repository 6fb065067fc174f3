"""The one file lock of logaudit: POSIX `flock` on a lock file.

The kernel releases an `flock` when its process dies, so a killed run never leaves a stale
local lock behind (the gs:// export lock, an object with an expiry, is `logaudit.export`'s).
The store's writer lock, the classification cache's lock, `ingest --check`'s probes and the
local export lock all use `FileLock`; each caller words its own LockedError.

>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / ".lock"
>>> with FileLock(path) as lock:
...     lock.acquire(wait=False)
True
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import Any


class FileLock:
    """An open lock file; `acquire` takes the lock, leaving the block (or `close`) releases it.

    `create=False` raises FileNotFoundError when the file does not exist; `shared=True` opens it
    read-only and takes a shared lock (enough to see whether a writer holds it).
    """

    def __init__(self, path: str | os.PathLike, *, create: bool = True, shared: bool = False) -> None:
        self.path, self.shared = Path(path), shared
        flags = (os.O_RDONLY if shared else os.O_RDWR) | (os.O_CREAT if create else 0)
        self.fd: int | None = os.open(self.path, flags, 0o644)

    def acquire(self, *, wait: bool = True) -> bool:
        """Take the lock, waiting for it when `wait`; False when another process holds it (not `wait`)."""
        mode = fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX
        try:
            fcntl.flock(self._fd(), mode | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            return False
        return True

    def read(self, size: int = 4096) -> bytes:
        """The start of the lock file (what its holder wrote about itself)."""
        return os.pread(self._fd(), size, 0)

    def write(self, data: bytes) -> None:
        """Replace the lock file's content (who holds it), for the next run's message."""
        os.ftruncate(self._fd(), 0)
        os.pwrite(self._fd(), data, 0)

    def close(self) -> None:
        """Release the lock and close the file. The unlock is explicit: a forked child may still
        share the descriptor, and closing alone would leave the lock held by it."""
        if self.fd is None:
            return
        fd, self.fd = self.fd, None
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)

    def _fd(self) -> int:
        if self.fd is None:
            raise ValueError(f"{self.path}: lock file already closed")
        return self.fd

    def __enter__(self) -> FileLock:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


__all__ = ["FileLock"]
