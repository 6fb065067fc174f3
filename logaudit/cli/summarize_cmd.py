"""`logaudit summarize`: the deployment audit in one command."""

from __future__ import annotations

import click

from logaudit.cli import (
    echo_json,
    format_option,
    handle_errors,
    keep_emails_option,
    main,
    make_redactor,
    store_option,
)
from logaudit.cli.catalog_options import catalog_options, catalog_paths
from logaudit.cli.warehouse_options import WarehouseArgs, open_audit, show_plan, warehouse_options


@main.command()
@click.option("--since", help="Window start: a duration before now (30m, 6h, 2d) or RFC 3339 / ISO time. Default: start of store.")
@click.option("--until", help="Window end (exclusive), same forms. Default: now.")
@click.option("--service", help="Only this Cloud Run service.")
@click.option("--revision", help="Only this revision.")
@catalog_options()
@click.option("--no-redact", is_flag=True, help="Show messages without redacting secrets (never for shared output).")
@keep_emails_option
@store_option
@format_option("text", "json", "markdown")
@warehouse_options
@handle_errors
def summarize(since: str | None, until: str | None, service: str | None, revision: str | None,
              catalogs: tuple[str, ...], no_shipped_catalogs: bool, no_redact: bool, keep_emails: bool,
              store_dir: str | None, fmt: str, warehouse: WarehouseArgs) -> None:
    """Summarize a window of the store: error patterns, revisions, endpoints, what is new.

    With --bigquery the window is read where it sits in BigQuery (docs/bigquery.md).

    Exit code 0 (also for an empty window, which is reported as such), 3 when there is no
    store, 4 for a bad catalog, 5 when BigQuery refuses (permission, dataset, --max-bytes), 64 for bad options (a --service or --revision the store does not
    hold is one: the message lists those the window holds), 70 internal error, 130 interrupted.
    """
    from logaudit.present.summary import render_markdown, render_text

    audit = open_audit(store_dir, catalog_paths(catalogs, no_shipped_catalogs),
                       make_redactor(no_redact=no_redact, keep_emails=keep_emails), warehouse)
    window = {"since": since, "until": until, "service": service, "revision": revision}
    if show_plan(audit, "summarize", warehouse, fmt, **window):
        return
    summary = audit.summary(**window)
    if fmt == "json":
        echo_json(summary)
    elif fmt == "markdown":
        click.echo(render_markdown(summary), nl=False)
    else:
        render_text(summary)
