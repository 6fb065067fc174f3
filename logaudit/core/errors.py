"""Typed errors. The library raises these; only the CLI turns them into messages and exit codes.

Exit codes, the same for every command (docs/cli.md has the table of which command returns which):

====  ==========================================================
0     success; READY (compare)
1     MARGINAL (compare)
2     NOT READY (compare)
3     input or store problem (missing path, damaged store, refused write)
4     catalog problem (invalid pattern file, failing examples)
5     Cloud Logging / Cloud Storage problem (quota, permission, credentials)
6     another run holds the store's (or the export's) lock
7     some input was rejected, or a file was not read to its end (ingest, pull); the rest was stored
64    bad usage (bad option or value, unknown --service / --revision, bad gate file)
70    internal error: a bug (the traceback is in a file the message names)
130   interrupted
====  ==========================================================
"""

from __future__ import annotations

from enum import IntEnum, unique

from logaudit.core.secret_rules import redact_message


@unique
class ExitCode(IntEnum):
    """The exit codes of the `logaudit` command (one meaning each)."""

    OK = 0
    MARGINAL = 1
    NOT_READY = 2
    INPUT = 3
    CATALOG = 4
    SOURCE = 5
    LOCKED = 6
    PARTIAL = 7
    USAGE = 64
    INTERNAL = 70
    INTERRUPTED = 130


class LogauditError(Exception):
    """Base class: `str(err)` is the one-line message a user sees; `exit_code` what the CLI returns.

    Secrets in the message are redacted (it may quote a log line or a server's answer); email
    addresses are kept, since they name the accounts a permission error is about.
    """

    exit_code: int = ExitCode.INPUT

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        message = redact_message(message) if isinstance(message, str) else message
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

    exit_code = ExitCode.LOCKED


class CatalogError(LogauditError):
    """A pattern catalog that does not load or whose examples fail."""

    exit_code = ExitCode.CATALOG


class SourceError(LogauditError):
    """Cloud Logging or Cloud Storage refused or failed."""

    exit_code = ExitCode.SOURCE


class WarehouseError(SourceError):
    """BigQuery refused or failed a query: a missing permission or dataset, the byte limit, a
    job error. `sql` is the query (None before one ran), `job_id` the job's id when it had one."""

    def __init__(self, message: str, *, hint: str | None = None, sql: str | None = None,
                 job_id: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.sql = sql
        self.job_id = job_id


class UsageError(LogauditError):
    """An option value that makes no sense (bad duration, unknown format)."""

    exit_code = ExitCode.USAGE


class UnknownFilterError(UsageError):
    """A `--service` or `--revision` that the store does not hold (a misspelling, most likely).

    `option` is "--service" or "--revision", `value` what was given, `choices` what the window
    holds (its services, or the revisions of the service asked for) and `stored` what the whole
    store holds.
    """

    def __init__(self, message: str, *, option: str, value: str, choices: list[str], stored: list[str],
                 hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.option = option
        self.value = value
        self.choices = choices
        self.stored = stored
