"""Typed errors. The library raises these; only the CLI turns them into messages and exit codes.

Exit codes (documented in docs/cli.md; `compare` in docs/compare.md):

====  ==========================================================
0     success; READY (compare)
1     some input was rejected, or a file not read to its end (ingest); MARGINAL (compare)
2     usage error (bad option); NOT READY (compare)
3     input or store problem (missing path, corrupt store)
4     catalog problem (invalid pattern file, failing examples)
5     Cloud Logging / Cloud Storage problem (quota, permission, credentials)
6     another run holds the lock
64    usage error of `compare` only (bad option, bad gate file, nothing to
      compare): 2 is NOT READY there, so a CI step can tell the two apart
====  ==========================================================
"""

from __future__ import annotations


class LogauditError(Exception):
    """Base class: `str(err)` is the one-line message a user sees; `exit_code` what the CLI returns.

    Secrets in the message are redacted (it may quote a log line or a server's answer); email
    addresses are kept, since they name the accounts a permission error is about.
    """

    exit_code = 3

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        from logaudit.redact import MESSAGES

        message = MESSAGES.redact(message) if isinstance(message, str) else message
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"

    def __reduce__(self) -> tuple:
        # Errors cross process boundaries (classification workers): keep the hint and any
        # attributes a subclass sets, whatever its __init__ takes.
        return _rebuild, (type(self), self.args, self.__dict__)


def _rebuild(cls: type, args: tuple, state: dict) -> LogauditError:
    err = cls.__new__(cls)
    err.args = args
    err.__dict__.update(state)
    return err


class InputError(LogauditError):
    """A path that does not exist, cannot be read, or is not a log export."""


class StoreError(LogauditError):
    """The store is missing, locked, or holds something it should not."""


class StoreWriteError(StoreError):
    """Writing into the store failed: disk full, quota, read-only file system, I/O error.

    `path` is the file being written, `errno` the operating system's error number;
    `files_written` / `rows_written` what the failing write had stored before (whole files).
    """

    def __init__(self, message: str, *, path: str, errno: int | None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.path = path
        self.errno = errno
        self.files_written = 0
        self.rows_written = 0


class StoreDamagedError(StoreError):
    """Files in the store that cannot be read (truncated, corrupt, or not logaudit's).

    `problems` holds (path, what is wrong) pairs, damaged files first.
    """

    def __init__(self, message: str, *, problems: list[tuple[str, str]], hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.problems = problems


class LockedError(StoreError):
    """Another logaudit process holds the lock."""

    exit_code = 6


class CatalogError(LogauditError):
    """A pattern catalog that does not load or whose examples fail."""

    exit_code = 4


class SourceError(LogauditError):
    """Cloud Logging or Cloud Storage refused or failed."""

    exit_code = 5


class UsageError(LogauditError):
    """An option value that makes no sense (bad duration, unknown format)."""

    exit_code = 2
