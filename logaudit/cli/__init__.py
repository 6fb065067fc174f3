"""The `logaudit` command: a thin layer over the library.

Each sub-command lives in its own module in this package, calls one library function, and
lets `handle_errors` turn typed library errors into a one-line message and an exit code. The
group itself gives every command the same codes for the rest (docs/cli.md): 64 for any usage
error (click's own included), 130 when interrupted, 70 with one line naming a traceback file
for an unexpected exception (a bug).
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from functools import wraps
from typing import Any, NoReturn

import click

from logaudit.core.errors import ExitCode, InputError, LogauditError
from logaudit.core.memory import tune_memory
from logaudit.core.secret_rules import redact_message


class ExpandedPath(click.Path):
    """click.Path with a leading `~` expanded: the shell does not expand it in environment
    variables (LOGAUDIT_STORE='~/x') or quoted arguments."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str):
            value = os.path.expanduser(value)
        return super().convert(value, param, ctx)


store_option = click.option(
    "--store",
    "store_dir",
    envvar="LOGAUDIT_STORE",
    default=None,
    type=ExpandedPath(file_okay=False),
    help="Store directory (default: $LOGAUDIT_STORE, else ./logaudit-store).",
)


keep_emails_option = click.option(
    "--keep-emails", is_flag=True,
    help="Do not redact email addresses (secrets still are). Default: $LOGAUDIT_REDACT_CONFIG, else redacted.")


def make_redactor(*, no_redact: bool = False, keep_emails: bool = False) -> Any:
    """The redactor of a command: disabled with --no-redact, else the configured one (emails kept with --keep-emails)."""
    from logaudit.core.redact import Redactor, load_redactor

    return Redactor(enabled=False) if no_redact else load_redactor(emails=False if keep_emails else None)


def format_option(*choices: str, default: str = "text") -> Callable:
    """`--format` (parameter `fmt`): how a command prints what it did; every reporting command has `json`."""
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(list(choices)),
        default=default,
        show_default=True,
        help="Output format.",
    )


def echo_json(obj: Any) -> None:
    """Print `obj` as strict JSON: missing values (NaN, NaT, ...) are null, never `NaN`."""
    from logaudit.present.display import to_json

    click.echo(to_json(obj))


def handle_errors(fn: Callable) -> Callable:
    """Turn LogauditError into `error: ...` on stderr and its exit code; Ctrl-C into 130.

    A failure of the operating system, DuckDB or Arrow that a damaged store file or a refused
    write explains becomes that typed error (`explain_failure`); anything else is a bug and
    goes on to the group, which reports it (exit 70).
    """

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except LogauditError as err:
            _fail(err)
        except KeyboardInterrupt:
            interrupted()
        except Exception as err:
            typed = explain_failure(err, kwargs.get("store_dir"), uses_store="store_dir" in kwargs)
            if typed is None:
                raise
            _fail(typed)

    return wrapper


def _fail(err: LogauditError) -> NoReturn:
    click.secho(f"error: {err}", fg="red", err=True)
    sys.exit(err.exit_code)


def interrupted(message: str = "interrupted") -> NoReturn:
    """Ctrl-C or SIGTERM: one line, exit 130."""
    click.echo(message, err=True)
    sys.exit(ExitCode.INTERRUPTED)


def report_bug(err: BaseException, *, what: str = "") -> NoReturn:
    """An unexpected exception: one line saying it is a bug and where its traceback was written
    (a file in the temp directory; also printed with `logaudit --debug`), exit 70. Secrets are redacted."""
    import traceback

    ctx = click.get_current_context(silent=True)
    debug = bool(ctx is not None and ctx.find_root().params.get("debug"))
    text = redact_message("".join(traceback.format_exception(err)))
    if debug:
        click.echo(text, err=True, nl=False)
    saved = _save_traceback(text)
    detail = redact_message(" ".join(str(err).split()))[:200]
    where = f"traceback in {saved}" if saved else "the traceback could not be saved"
    click.secho(f"error: {what}internal error (a bug in logaudit, please report it): {type(err).__name__}"
                + (f": {detail}" if detail else "") + f"; {where}"
                + ("" if debug else " (`logaudit --debug ...` prints it)"), fg="red", err=True)
    sys.exit(ExitCode.INTERNAL)


def _save_traceback(text: str) -> str | None:
    """Write a bug's traceback, with the version and command line, to a new private file in the temp directory."""
    import platform
    import tempfile
    from importlib.metadata import PackageNotFoundError, version

    try:
        release = version("logaudit")
    except PackageNotFoundError:
        release = "unknown"
    ctx = click.get_current_context(silent=True)
    args = ctx.meta.get("logaudit.args", sys.argv[1:]) if ctx is not None else sys.argv[1:]
    head = (f"logaudit {release}, Python {platform.python_version()}, {platform.platform()}\n"
            f"time: {datetime.now(UTC).isoformat(timespec='seconds')}\n"
            f"command: {redact_message(' '.join(['logaudit', *map(str, args)]))}\n\n")
    try:
        fd, path = tempfile.mkstemp(prefix="logaudit-traceback-", suffix=".txt")  # mode 0600
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(head + text)
    except OSError:
        return None
    return path


def explain_failure(err: BaseException, store_dir: str | None, *, uses_store: bool = True) -> LogauditError | None:
    """The typed error behind an untyped failure of a command using the store at `store_dir`
    (None: the default store): what `Store.explain` finds, else an OSError as one line naming
    its file. Commands that use no store pass `uses_store=False`."""
    from logaudit.store.layout import WRITE_ERRNOS, write_failure
    from logaudit.store.store import Store

    store = None
    if uses_store:
        with contextlib.suppress(LogauditError):
            store = Store(store_dir, create=False, verify=False)
    typed = store.explain(err) if store is not None else None
    if typed is not None or not isinstance(err, OSError):
        return typed
    if err.errno in WRITE_ERRNOS:
        return write_failure(err.filename or "a file", err)
    if err.filename:
        return InputError(f"{err.filename}: {err.strerror or err}")
    return None


class _NoteHandler(logging.Handler):
    """Library notes (logger `logaudit`, e.g. a read-only store) as one line on stderr each."""

    def emit(self, record: logging.LogRecord) -> None:
        click.secho(f"note: {record.getMessage()}", fg="yellow", err=True)


def _show_notes() -> None:
    logger = logging.getLogger("logaudit")
    if not any(isinstance(h, _NoteHandler) for h in logger.handlers):
        logger.addHandler(_NoteHandler())
        logger.propagate = False


#: Sub-command -> the module that defines it (imported when the command runs, so that
#: `logaudit summarize` does not pay for the imports of `pull` or `sample`).
_COMMANDS = {
    "catalog": "catalog_cmd", "classify": "catalog_cmd", "compare": "compare_cmd", "demo": "sample_cmd",
    "export": "report_cmd", "ingest": "ingest_cmd", "pull": "pull_cmd", "report": "report_cmd",
    "sample": "sample_cmd", "store": "ingest_cmd", "summarize": "summarize_cmd",
}


@contextlib.contextmanager
def _usage_exit_code() -> Iterator[None]:
    """click's usage errors (unknown option, bad value, missing argument) exit with 64 like ours."""
    try:
        yield
    except click.UsageError as err:
        err.exit_code = ExitCode.USAGE
        raise


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(_COMMANDS))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in _COMMANDS:
            importlib.import_module(f"logaudit.cli.{_COMMANDS[cmd_name]}")  # registers itself on `main`
        return super().get_command(ctx, cmd_name)

    def make_context(self, info_name: str | None, args: list[str], parent: click.Context | None = None,
                     **extra: Any) -> click.Context:
        given = list(args)
        with _usage_exit_code():
            ctx = super().make_context(info_name, args, parent=parent, **extra)
        ctx.meta["logaudit.args"] = given  # for the traceback file of a bug
        return ctx

    def invoke(self, ctx: click.Context) -> Any:
        try:
            with _usage_exit_code():
                return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except KeyboardInterrupt:
            interrupted()
        except Exception as err:
            report_bug(err)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="logaudit")
@click.option("--debug", is_flag=True, envvar="LOGAUDIT_DEBUG",
              help="On an internal error (exit 70), print the traceback too (env LOGAUDIT_DEBUG=1).")
def main(debug: bool) -> None:
    """Audit Google Cloud Run deployments from their logs.

    Exit codes (every command; docs/cli.md): 0 success or READY, 1 MARGINAL, 2 NOT READY,
    3 input or store problem, 4 catalog problem, 5 Cloud Logging / Cloud Storage problem,
    6 store locked, 7 some input rejected (the rest stored), 64 bad usage, 70 internal error,
    130 interrupted.
    """
    _show_notes()


def run() -> None:
    """The `logaudit` console script and `python -m logaudit`: tune memory first (before any
    command's module loads pyarrow; docs/architecture.md, "Memory"), then the command line."""
    tune_memory()
    main()
