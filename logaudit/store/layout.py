"""What a store is on disk, below the `Store` class: its marker and folders, atomic writes that
fail with a `StoreWriteError` saying what to do, and the framing check of a Parquet file.

>>> parquet_framing_problem(Path("no-such-file.parquet"))
'missing'
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from logaudit.core.atomic import atomic_write_bytes
from logaudit.core.errors import StoreDamagedError, StoreWriteError

#: The store's format, recorded in MARKER; a store of a newer format is refused, not misread.
STORE_FORMAT = 1


MARKER = "logaudit-store.json"


#: Where `Store.repair` moves damaged files (never read by logaudit).
QUARANTINE = "quarantine"


_SCRATCH: dict[Path, Path] = {}


def atomic_write(path: Path, data: bytes) -> None:
    """Write `data` to `path` atomically (`core.atomic`): readers see old or new, never half.

    Raises StoreWriteError (and leaves no temporary file) when the operating system refuses.
    """
    with write_errors(path):
        atomic_write_bytes(path, data)


@contextlib.contextmanager
def write_errors(path: Path, tmp: Path | None = None) -> Iterator[None]:
    """Turn an OSError raised while writing `path` (through `tmp`) into StoreWriteError, removing `tmp`."""
    try:
        yield
    except OSError as err:
        if tmp is not None:
            with contextlib.suppress(OSError):
                tmp.unlink()
        raise write_failure(path, err) from None


READ_ONLY_ERRNOS = frozenset({errno.EROFS, errno.EACCES, errno.EPERM})


#: What the operating system says when a write cannot be done (as opposed to a file that is unreadable).
WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS})


_WRITE_FAULTS = {
    errno.ENOSPC: ("disk full while writing {path}: free space and re-run; {state}", None),
    errno.EDQUOT: ("disk quota exceeded while writing {path}: free space or raise the quota, and re-run; {state}", None),
    errno.EFBIG: ("file size limit exceeded while writing {path}: raise the limit (ulimit -f) and re-run; {state}", None),
    errno.EROFS: ("read-only file system: cannot write {path}; {state}",
                  "reading a read-only store works; ingest and pull need a writable one"),
    errno.EACCES: ("permission denied writing {path}; {state}", "check the owner and permissions of the store"),
    errno.EPERM: ("permission denied writing {path}; {state}", "check the owner and permissions of the store"),
    errno.EIO: ("I/O error while writing {path}: check the disk before re-running; {state}", None),
}


def write_failure(path: str | os.PathLike, err: OSError, state: str = "the store is unchanged") -> StoreWriteError:
    """The StoreWriteError for `err` (an OSError raised while writing `path`)."""
    code = err.errno
    text, hint = _WRITE_FAULTS.get(code, ("{reason} while writing {path}; {state}", None))
    reason = os.strerror(code) if code else (err.strerror or str(err))
    return StoreWriteError(text.format(path=path, state=state, reason=reason), path=str(path), errno=code, hint=hint)


def parquet_framing_problem(path: Path) -> str | None:
    """What is wrong with the framing of a Parquet file (magic bytes, footer length), or None.

    Two small reads: cheap enough to run on every file before it is queried, and it catches
    what damage usually is (a truncated copy, an interrupted transfer, a file that is not Parquet).
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return "missing"
    except OSError as err:
        return f"cannot be opened ({err.strerror})"
    try:
        size = os.fstat(fd).st_size
        if size < 12:
            return f"not a Parquet file: {size} bytes (truncated?)"
        head, tail = os.pread(fd, 4, 0), os.pread(fd, 8, size - 8)
    except OSError as err:
        return f"cannot be read ({err.strerror})"
    finally:
        os.close(fd)
    if head != b"PAR1":
        return "not a Parquet file (no PAR1 header)"
    if tail[4:] != b"PAR1":
        return "truncated or damaged Parquet file (no footer at the end)"
    if int.from_bytes(tail[:4], "little") + 12 > size:
        return "truncated or damaged Parquet file (footer longer than the file)"
    return None


def damaged_error(root: Path, damaged: list[tuple[Path, str]]) -> StoreDamagedError:
    """The error for damaged files of the store at `root`: names them and the fix."""
    first, why = damaged[0]
    rels = [relative_path(root, p) for p, _ in damaged]
    days = sorted({r.split("/")[1].removeprefix("date=") for r in rels if r.startswith("entries/date=")})
    kind = "entry file" if rels[0].startswith("entries/") else "store file"
    others = len(damaged) - 1
    more = f" (and {others} more damaged file{'s' if others > 1 else ''})" if others else ""
    hint = (f"`logaudit store check --store {root}` lists every damaged file; `logaudit store repair "
            f"--store {root}` moves them to {root / QUARANTINE}/")
    hint += f"; then re-ingest the sources of {', '.join(days)}" if days else "; re-run the command afterwards"
    what = why if why.startswith("not ") else f"damaged {kind}: {why}"  # foreign files say what they are not
    return StoreDamagedError(f"{first}: {what}{more}", problems=[(str(p), w) for p, w in damaged], hint=hint)


def scratch_dir(root: Path, *, create: bool = True) -> Path | None:
    """A private temporary directory standing in for the caches of the read-only store at
    `root` (one per store and process, removed when the process ends); None if not `create`d."""
    if root not in _SCRATCH and create:
        path = Path(tempfile.mkdtemp(prefix="logaudit-cache-"))
        atexit.register(shutil.rmtree, path, True)
        _SCRATCH[root] = path
    return _SCRATCH.get(root)


def relative_path(root: Path, path: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


__all__ = ["MARKER", "QUARANTINE", "READ_ONLY_ERRNOS", "STORE_FORMAT", "WRITE_ERRNOS", "atomic_write", "damaged_error",
           "parquet_framing_problem", "relative_path", "scratch_dir", "write_errors", "write_failure"]
