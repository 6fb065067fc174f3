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
    """Base class: `str(err)` is the one-line message a user sees; `exit_code` what the CLI returns."""

    exit_code = 3

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"


class InputError(LogauditError):
    """A path that does not exist, cannot be read, or is not a log export."""


class StoreError(LogauditError):
    """The store is missing, locked, or holds something it should not."""


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
