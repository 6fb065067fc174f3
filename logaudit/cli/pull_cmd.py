"""`logaudit pull`: read entries from the Cloud Logging API into the store (see docs/pull.md)."""

from __future__ import annotations

import contextlib
import gc
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import click

from logaudit.cli import (
    ExpandedPath,
    echo_json,
    format_option,
    handle_errors,
    interrupted,
    main,
    store_option,
)
from logaudit.core.errors import ExitCode
from logaudit.core.timeparse import format_ns, parse_duration
from logaudit.sources import cloud_logging as cl
from logaudit.sources.severity import SEVERITY_NUM
from logaudit.store import pull as store_pull
from logaudit.store.store import Store, default_store_path

#: Seconds between plain progress lines when stderr is not a terminal.
PLAIN_INTERVAL = 10.0


def _duration_text(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


def progress_line(p: cl.PullProgress) -> str:
    """One plain progress line (used when stderr is not a terminal)."""
    where = f", at {format_ns(p.position_ns)}" if p.position_ns is not None else ""
    frac = p.fraction
    share = f" ({frac:.0%} of the window)" if frac is not None else ""
    retries = sum(p.retries.values())
    return (f"pull {p.project}: {p.entries} entries, {p.pages} pages, {p.requests} requests, {p.rate:,.0f} entries/s"
            f"{where}{share}, elapsed {_duration_text(p.elapsed)}, quota waits {p.quota_wait_seconds:.1f} s"
            + (f", {retries} retries" if retries else "")
            + (f", eta {_duration_text(p.eta_seconds)}" if p.eta_seconds and not p.done else ""))


@contextlib.contextmanager
def pull_progress(enabled: bool, *, stream=None, force_terminal: bool | None = None
                  ) -> Iterator[Callable[[cl.PullProgress], None] | None]:
    """A progress callback: a rich bar on a terminal, a plain line every PLAIN_INTERVAL s otherwise."""
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    console = (Console(stderr=True, force_terminal=force_terminal) if stream is None
               else Console(file=stream, force_terminal=force_terminal))
    if not console.is_terminal:
        out = stream or sys.stderr
        last = [time.monotonic()]

        def plain(p: cl.PullProgress) -> None:
            now = time.monotonic()
            if now - last[0] >= PLAIN_INTERVAL:
                last[0] = now
                print(progress_line(p), file=out, flush=True)

        yield plain
        return
    bar = Progress(
        TextColumn("[bold]pull[/] {task.fields[project]}"), BarColumn(),
        TextColumn("{task.fields[entries]:,} entries · {task.fields[pages]} pages · {task.fields[rate]:,.0f}/s"),
        TextColumn("· quota waits {task.fields[waits]:.1f}s{task.fields[retries]}"),
        TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
        console=console, transient=True,
    )
    task = None

    def update(p: cl.PullProgress) -> None:
        nonlocal task
        total = max(1, (p.end_ns - p.start_ns) // 1_000_000)
        done = total * (p.fraction or 0.0)
        retries = sum(p.retries.values())
        fields = dict(project=p.project, entries=p.entries, pages=p.pages, rate=p.rate, waits=p.quota_wait_seconds,
                      retries=f" · {retries} retries" if retries else "")
        if task is None:
            task = bar.add_task("pull", total=total, **fields)
        bar.update(task, completed=done, **fields)

    with bar:
        yield update


@main.command()
@click.option("--project", "-p", required=True, help="Google Cloud project ID to read logs from.")
@click.option("--service", "-s", "services", multiple=True, metavar="NAME",
              help="Cloud Run service (repeat for several).")
@click.option("--revision", "-r", "revisions", multiple=True, metavar="NAME",
              help="Cloud Run revision (repeat for several).")
@click.option("--since", default="1d", show_default=True, metavar="WHEN",
              help="Start of the window: a duration before now (30m, 6h, 2d, 1w) or a time (2025-09-09T18:00:00Z).")
@click.option("--until", default=None, metavar="WHEN", help="End of the window, exclusive (default: now, open-ended).")
@click.option("--filter", "extra_filter", default=None, metavar="EXPR",
              help="Extra Logging query-language expression, combined with AND.")
@click.option("--severity-at-least", default=None, metavar="LEVEL",
              type=click.Choice(list(SEVERITY_NUM), case_sensitive=False), help="Minimum severity.")
@store_option
@click.option("--credentials", "credentials_file", default=None, type=ExpandedPath(exists=True, dir_okay=False),
              help="Service-account key JSON (default: Application Default Credentials).")
@click.option("--endpoint", envvar=cl.ENDPOINT_ENV, default=None, metavar="URL",
              help=f"Cloud Logging endpoint, e.g. http://127.0.0.1:8085 (env {cl.ENDPOINT_ENV}); "
                   "anonymous credentials unless --credentials.")
@click.option("--max-requests-per-minute", default=60.0, show_default=True, type=click.FloatRange(min=0, min_open=True),
              help="Client-side pacing; the default read quota is 60 entries.list requests per minute per project.")
@click.option("--page-size", default=cl.MAX_PAGE_SIZE, show_default=True, type=click.IntRange(1, cl.MAX_PAGE_SIZE),
              help="Entries per request.")
@click.option("--max-retry-time", default="5m", show_default=True, metavar="DURATION",
              help="Give up when one request keeps failing this long (429, 5xx, resets, timeouts).")
@click.option("--dry-run", is_flag=True, help="Print the filter and the request that would be sent, then stop.")
@format_option("text", "json")
@click.option("--quiet", "-q", is_flag=True, help="No progress output.")
@click.option("--flush-entries", default=5000, hidden=True, type=click.IntRange(1))
@click.option("--flush-seconds", default=5.0, hidden=True, type=click.FloatRange(0))
@click.option("--request-timeout", default=60.0, hidden=True, type=click.FloatRange(0, min_open=True))
@click.option("--backoff-initial", default=0.1, hidden=True, type=click.FloatRange(0))
@handle_errors
def pull(project: str, services: tuple[str, ...], revisions: tuple[str, ...], since: str, until: str | None,
         extra_filter: str | None, severity_at_least: str | None, store_dir: str | None,
         credentials_file: str | None, endpoint: str | None, max_requests_per_minute: float, page_size: int,
         max_retry_time: str, dry_run: bool, fmt: str, quiet: bool, flush_entries: int, flush_seconds: float,
         request_timeout: float, backoff_initial: float) -> None:
    """Pull Cloud Run log entries from the Cloud Logging API into the store.

    Entries come oldest first, 1000 a request, paced to the read quota; each one is stored
    exactly once. An interrupted pull (error, Ctrl-C, killed) resumes when the same command is
    run again; re-running a finished pull only asks for the last timestamp again.

    Exit codes: 0 done, 3 store problem, 5 Cloud Logging failed or refused (the message says how
    far it got), 6 store locked, 7 some entries rejected (the rest stored), 64 bad usage,
    70 internal error, 130 interrupted.
    """
    options = dict(services=services, revision=revisions, since=since, until=until, extra_filter=extra_filter,
                   severity_at_least=severity_at_least, endpoint=endpoint, page_size=page_size)
    root = store_dir if store_dir is not None else default_store_path()
    if dry_run:
        plan = store_pull.plan_pull(root, project, **options)
        _print_plan(plan, fmt, max_requests_per_minute)
        return
    retry_seconds = parse_duration(max_retry_time, name="--max-retry-time").total_seconds()
    # Everything imported so far lives as long as the process: keep it out of the collector's
    # full passes, which otherwise pause the pager for ~0.1 s several times a minute.
    gc.freeze()
    previous = _stop_on_sigterm()
    try:
        with pull_progress(not quiet and fmt == "text") as progress:
            report = store_pull.pull(root, project, credentials_file=credentials_file,
                             max_requests_per_minute=max_requests_per_minute, max_retry_seconds=retry_seconds,
                             progress=progress, flush_entries=flush_entries, flush_seconds=flush_seconds,
                             request_timeout=request_timeout, backoff_initial=backoff_initial, **options)
    except KeyboardInterrupt:
        interrupted("interrupted: the pages received so far are stored; run the same command again to resume")
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    store = Store(root)
    if fmt == "json":
        echo_json(report.to_dict() | {"rejects": report.rejects[:100]})
    else:
        _print_report(report, store)
    if report.rejected:
        sys.exit(ExitCode.PARTIAL)


def _stop_on_sigterm() -> Any:
    """Treat SIGTERM like Ctrl-C (write what arrived, save the cursor); returns the old handler."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def stop(signum: int, frame: Any) -> None:
        # only a flag: an exception raised here could land anywhere, e.g. inside a DuckDB query,
        # which would turn it into an error of its own; the pull checks the flag twice a second
        store_pull.request_stop()

    return signal.signal(signal.SIGTERM, stop)


def _print_plan(plan: cl.PullPlan, fmt: str, per_minute: float) -> None:
    if fmt == "json":
        echo_json(plan.to_dict() | {"max_requests_per_minute": per_minute})
        return
    click.echo(f"filter: {plan.filter}")
    if plan.resumed_from:
        click.echo(f"resuming from the stored cursor at {plan.resumed_from} ({plan.cursor_file})")
    if plan.up_to_date:
        click.echo("nothing to request: the store already covers this window")
        return
    click.echo(f"POST {plan.url}")
    click.echo(json_text(plan.body))
    click.echo(f"(then follows nextPageToken, at most {per_minute:g} requests per minute)")


def json_text(obj: object) -> str:
    import json

    return json.dumps(obj, indent=2, ensure_ascii=False)


def _print_report(report: store_pull.PullReport, store: Store) -> None:
    if report.status == "up-to-date":
        click.echo(f"pull {report.project}: nothing to request, the store already covers the window "
                   f"(up to {report.boundary or report.resumed_from}) -> {store.root}")
        return
    if report.resumed_from:
        click.echo(f"resumed from {report.resumed_from}")
    retries = ", ".join(f"{n} x {k}" for k, n in sorted(report.retries.items()))
    click.echo(
        f"pull {report.project}: {report.entries} entries in {report.pages} pages ({report.requests} requests"
        + (f"; retried {retries}" if retries else "") + "): "
        f"{report.new_rows} new, {report.duplicates} duplicate, {report.rejected} rejected "
        f"in {report.seconds:.2f} s (quota waits {report.quota_wait_seconds:.1f} s) -> {store.root}"
    )
    if report.boundary:
        click.echo(f"stored up to {report.boundary}; the next run of this command starts there")
    for r in report.rejects[:20]:
        click.secho(f"rejected {r['source']}:{r['position']}: {r['reason']}", fg="yellow", err=True)


__all__ = ["progress_line", "pull", "pull_progress"]
