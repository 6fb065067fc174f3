"""`logaudit report` (Markdown + self-contained HTML with charts) and `logaudit export` (scheduled,
atomic, locked exports to a directory or gs://). See docs/report.md and docs/export.md."""

from __future__ import annotations

import signal
import sys
from typing import Any, NoReturn

import click

from logaudit.cli import (
    ExpandedPath,
    echo_json,
    explain_failure,
    format_option,
    handle_errors,
    interrupted,
    keep_emails_option,
    main,
    make_redactor,
    report_bug,
    store_option,
)
from logaudit.cli.catalog_options import catalog_options, catalog_paths
from logaudit.cli.warehouse_options import WarehouseArgs, open_audit, show_plan, warehouse_options
from logaudit.core.errors import ExitCode, UsageError

#: What `report --format` takes; a list of documents (the old meaning of --format) still works.
OUTPUT_FORMATS = ("text", "json")


@main.command()
@click.option("--since", help="Window start: a duration before now (30m, 6h, 2d) or RFC 3339 / ISO time. Default: start of store.")
@click.option("--until", help="Window end (exclusive), same forms. Default: now.")
@click.option("--service", help="Only this Cloud Run service.")
@click.option("--out", "out_dir", default="logaudit-report", show_default=True, type=ExpandedPath(file_okay=False),
              help="Directory for report.md, report.html, summary.json and charts/.")
@click.option("--report-format", "formats", default=None, show_default="md,html", metavar="md,html",
              help="Which documents to write: md, html or both (comma-separated).")
@click.option("--bucket", default=None, metavar="DURATION",
              help="Timeline bucket for the charts (default: 24-96 points over the window).")
@click.option("--no-charts", is_flag=True, help="Draw no charts (the documents without figures; much faster).")
@catalog_options()
@keep_emails_option
@store_option
@click.option("--format", "fmt", default="text", show_default=True, metavar="[text|json]",
              help="Output format of what was written (json: docs/report.md).")
@click.option("--json", "as_json", is_flag=True, hidden=True, help="Deprecated: --format json.")
@warehouse_options
@handle_errors
def report(since: str | None, until: str | None, service: str | None, out_dir: str, formats: str | None,
           bucket: str | None, no_charts: bool, catalogs: tuple[str, ...], no_shipped_catalogs: bool, keep_emails: bool,
           store_dir: str | None, fmt: str,
           as_json: bool, warehouse: WarehouseArgs) -> None:
    """Write a deployment report for a window: executive summary (with the compare verdict when
    available), error patterns, per-revision health, endpoints, new vs pre-existing issues, a
    readiness checklist and the data's provenance, with charts. Messages are redacted.

    With --bigquery the window is read where it sits in BigQuery (docs/bigquery.md).

    Exit codes: 0 written (also for an empty window, which the report says), 3 no store or a
    write refused, 4 bad catalog, 5 BigQuery refused (permission, dataset, --max-bytes), 64 bad
    usage (an unknown --service among them), 70 internal error, 130 interrupted.
    """
    from logaudit.present.report import build_report, parse_formats

    fmt, formats = _report_formats(fmt, formats)
    fmts = parse_formats(formats)
    audit = open_audit(store_dir, catalog_paths(catalogs, no_shipped_catalogs), make_redactor(keep_emails=keep_emails),
                       warehouse)
    if show_plan(audit, "report", warehouse, fmt, since=since, until=until, service=service):
        return
    try:
        result = build_report(audit, since=since, until=until, service=service, out_dir=out_dir, formats=fmts,
                              bucket=bucket, with_charts=not no_charts)
    finally:
        audit.close()
    if as_json or fmt == "json":
        echo_json(result.to_dict())
        return
    verdict = (result.summary.get("verdict") or {}).get("verdict")
    click.echo(f"report of {result.summary['entries']:,} entries" + (f", verdict {verdict}" if verdict else "")
               + f", {len(result.charts)} charts -> {result.out_dir}")
    for path in (result.markdown, result.html, result.summary_path):
        if path is not None:
            click.echo(f"  {path}")


def _report_formats(fmt: str, formats: str | None) -> tuple[str, str]:
    """(output format, documents): `--format md,html` is the old spelling of `--report-format md,html`."""
    from logaudit.present.report import parse_formats

    if fmt in OUTPUT_FORMATS:
        return fmt, formats or "md,html"
    try:
        parse_formats(fmt, option="--format")
    except UsageError:
        raise UsageError(f"--format {fmt!r}: not an output format", hint="--format text or json; the documents to "
                         "write are chosen with --report-format md, html or md,html") from None
    if formats is not None:
        raise UsageError(f"--format {fmt!r} and --report-format {formats!r}: give the documents once, "
                         "with --report-format")
    click.secho(f"note: --format {fmt} is deprecated: use --report-format {fmt} (--format is text or json)",
                fg="yellow", err=True)
    return "text", fmt


def _export_failed(err: Any) -> NoReturn:
    reason = " ".join(err.message.split())
    hint = f" (hint: {' '.join(err.hint.split())})" if err.hint else ""
    click.secho(f"error: export failed: {reason}{hint}", fg="red", err=True)
    sys.exit(err.exit_code)


def _terminate(signum: int, frame: Any) -> None:  # pragma: no cover - exercised by the kill tests
    from logaudit.store.pull import request_stop

    request_stop()  # a pull inside the export stops even if the interrupt lands in a DuckDB query
    raise KeyboardInterrupt


@main.command("export")
@click.option("--since", default="24h", show_default=True, metavar="WHEN",
              help="Period start: a duration before now (rounded down to --align) or an RFC 3339 time.")
@click.option("--until", default=None, metavar="WHEN", help="Period end, exclusive. Default: now rounded down to --align.")
@click.option("--out", "dest", required=True, envvar="LOGAUDIT_EXPORT_DEST", metavar="DEST",
              help="A directory or gs://BUCKET/PREFIX (env LOGAUDIT_EXPORT_DEST).")
@click.option("--project", "-p", default=None, help="Pull the period from this project's Cloud Logging first (incremental).")
@click.option("--service", "-s", default=None, help="Only this Cloud Run service (default: every service in the period).")
@click.option("--align", default="1h", show_default=True, metavar="DURATION",
              help="Round 'now' down to a multiple of this, so re-runs export the same period ('none' to disable).")
@click.option("--report-format", "formats", default="md,html", show_default=True, metavar="md,html",
              help="Report documents in each period.")
@catalog_options()
@keep_emails_option
@store_option
@click.option("--credentials", "credentials_file", default=None, type=ExpandedPath(exists=True, dir_okay=False),
              help="Service-account key JSON for Cloud Logging and Cloud Storage (default: Application Default Credentials).")
@click.option("--storage-endpoint", default=None, metavar="URL",
              help="Cloud Storage endpoint (an emulator); also LOGAUDIT_STORAGE_ENDPOINT / STORAGE_EMULATOR_HOST.")
@click.option("--logging-endpoint", default=None, metavar="URL", help="Cloud Logging endpoint (an emulator).")
@click.option("--max-requests-per-minute", default=60.0, show_default=True, type=click.FloatRange(min=0, min_open=True),
              help="Pull pacing (the default Cloud Logging read quota is 60 requests per minute).")
@click.option("--lock-ttl", default="1h", show_default=True, metavar="DURATION",
              help="A gs:// lock object older than this is a killed run's and is taken over.")
@format_option("text", "json")
@click.option("--quiet", "-q", is_flag=True, help="Only errors.")
@warehouse_options
def export_command(since: str, until: str | None, dest: str, project: str | None, service: str | None, align: str,
                   formats: str, catalogs: tuple[str, ...], no_shipped_catalogs: bool, keep_emails: bool,
                   store_dir: str | None, credentials_file: str | None,
                   storage_endpoint: str | None, logging_endpoint: str | None, max_requests_per_minute: float,
                   lock_ttl: str, fmt: str, quiet: bool, warehouse: WarehouseArgs) -> None:
    """Export a period per service to DEST/<service>/<period>/: entries (Parquet, redacted),
    matches, summary JSON, compare JSON, the report. For cron and Cloud Run jobs: a re-run of the
    same period replaces it atomically, a lock stops overlapping runs, a failed or killed run
    leaves the previous export intact.

    With --bigquery the period's entries are fetched from a BigQuery log dataset (as Arrow)
    rather than read from the store (docs/bigquery.md).

    Exit codes: 0 exported, 3 store / destination problem, 4 bad catalog, 5 Cloud Logging /
    Cloud Storage / BigQuery failed, 6 another export to DEST is running, 64 bad usage (an unknown --service
    among them), 70 internal error, 130 interrupted. On failure one line on stderr says why.
    """
    from logaudit.core.errors import LogauditError
    from logaudit.core.timeparse import parse_duration
    from logaudit.period_export import export

    previous = signal.signal(signal.SIGTERM, _terminate)  # Cloud Run / cron kill: clean up like Ctrl-C
    try:
        ttl = parse_duration(lock_ttl, name="--lock-ttl").total_seconds()
        if warehouse.dry_run or warehouse.print_sql:
            raise UsageError("--dry-run and --print-sql are for summarize, compare and report",
                             hint="run `logaudit report --bigquery ... --dry-run` for the period to see its cost")
        catalogs_used = catalog_paths(catalogs, no_shipped_catalogs)
        redactor = make_redactor(keep_emails=keep_emails)
        bigquery = open_audit(store_dir, catalogs_used, redactor, warehouse) if warehouse.ref else None
        pull_options: dict[str, Any] = {"max_requests_per_minute": max_requests_per_minute}
        if logging_endpoint:
            pull_options["endpoint"] = logging_endpoint
        result = export(store_dir, dest, since=since, until=until, project=project, service=service,
                        catalog=catalogs_used, formats=formats, align=align, pull_options=pull_options,
                        redactor=redactor, bigquery=bigquery,
                        storage_endpoint=storage_endpoint, credentials_file=credentials_file, lock_ttl=ttl,
                        progress=None if quiet or fmt == "json" else lambda msg: click.echo(msg, err=True))
    except LogauditError as err:
        _export_failed(err)
    except KeyboardInterrupt:
        interrupted("error: export interrupted; the previous export of the period is unchanged")
    except OSError as err:
        typed = explain_failure(err, store_dir)
        if typed is not None:
            _export_failed(typed)
        where = f"{err.filename}: " if err.filename else ""
        click.secho(f"error: export failed: {where}{err.strerror or err}", fg="red", err=True)
        sys.exit(ExitCode.INPUT)
    except Exception as err:  # a bug: still one line for cron / Cloud Logging, and exit 70
        typed = explain_failure(err, store_dir)
        if typed is not None:
            _export_failed(typed)
        report_bug(err, what="export failed: ")
    finally:
        signal.signal(signal.SIGTERM, previous)
    if fmt == "json":
        echo_json(result.to_dict())
        return
    if quiet:
        return
    if not result.periods:
        click.echo(f"nothing to export: no entries in {result.since} .. {result.until}"
                   + (f" (pulled {result.pull.get('new_rows', 0)} new entries)" if result.pull else ""))
        return
    for p in result.periods:
        compare = p.compare.get("verdict") or p.compare.get("status")
        click.echo(f"exported {p.service} {p.period}: {p.entries:,} entries, {len(p.files) + 1} files, compare {compare}"
                   f"{' (replaced the previous export)' if p.replaced else ''} -> {p.location}")


__all__ = ["export_command", "report"]
