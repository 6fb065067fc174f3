"""The `logaudit` command: a thin layer over the library.

Each sub-command lives in its own module in this package, calls one library function, and
lets `run_cli` turn typed library errors into a one-line message and an exit code.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import sys
from collections.abc import Callable
from functools import wraps
from typing import Any

import click

from logaudit.errors import InputError, LogauditError
from logaudit.heap import tune_allocator


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
    from logaudit.redact import Redactor, load_redactor

    return Redactor(enabled=False) if no_redact else load_redactor(emails=False if keep_emails else None)


def format_option(*choices: str, default: str = "text") -> Callable:
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
    from logaudit.display import to_json

    click.echo(to_json(obj))


def handle_errors(fn: Callable) -> Callable:
    """Turn LogauditError into `error: ...` on stderr and its exit code; Ctrl-C into 130.

    A failure of the operating system, DuckDB or Arrow that a damaged store file or a refused
    write explains becomes that typed error (`explain_failure`); anything else is a bug and
    keeps its traceback.
    """

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except LogauditError as err:
            _fail(err)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)
        except Exception as err:
            typed = explain_failure(err, kwargs.get("store_dir"), uses_store="store_dir" in kwargs)
            if typed is None:
                raise
            _fail(typed)

    return wrapper


def _fail(err: LogauditError) -> None:
    click.secho(f"error: {err}", fg="red", err=True)
    sys.exit(err.exit_code)


def explain_failure(err: BaseException, store_dir: str | None, *, uses_store: bool = True) -> LogauditError | None:
    """The typed error behind an untyped failure of a command using the store at `store_dir`
    (None: the default store): what `Store.explain` finds, else an OSError as one line naming
    its file. Commands that use no store pass `uses_store=False`."""
    from logaudit.store import WRITE_ERRNOS, Store, write_failure

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


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(_COMMANDS))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in _COMMANDS:
            importlib.import_module(f"logaudit.cli.{_COMMANDS[cmd_name]}")  # registers itself on `main`
        return super().get_command(ctx, cmd_name)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="logaudit")
def main() -> None:
    """Audit Google Cloud Run deployments from their logs."""
    tune_allocator()
    _show_notes()
