"""The `logaudit` command: a thin layer over the library.

Each sub-command lives in its own module in this package, calls one library function, and
lets `run_cli` turn typed library errors into a one-line message and an exit code.
"""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Callable
from functools import wraps
from typing import Any

import click

from logaudit.errors import LogauditError
from logaudit.heap import tune_allocator

store_option = click.option(
    "--store",
    "store_dir",
    envvar="LOGAUDIT_STORE",
    default=None,
    type=click.Path(file_okay=False),
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
    click.echo(json.dumps(obj, indent=2, ensure_ascii=False, default=str))


def handle_errors(fn: Callable) -> Callable:
    """Turn LogauditError into `error: ...` on stderr and its exit code; Ctrl-C into 130."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except LogauditError as err:
            click.secho(f"error: {err}", fg="red", err=True)
            sys.exit(err.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)

    return wrapper


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
