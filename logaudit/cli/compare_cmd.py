"""`logaudit compare`: judge a canary revision against its baseline; the exit code is the verdict."""

from __future__ import annotations

import click

from logaudit.cli import (
    ExpandedPath,
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


@main.command("compare")
@click.option("--service", help="Cloud Run service (default: the one whose newest revision was deployed last).")
@click.option("--baseline", help="Baseline revision (default: the revision serving the traffic just before the "
              "canary's deploy, from the audit log and the requests; without a deploy in the window, the revision "
              "deployed or first seen before the canary). The output says how it was chosen.")
@click.option("--canary", help="Canary revision (default: the service's newest revision).")
@click.option("--since", help="Window start: a duration before now (30m, 6h, 2d) or RFC 3339 / ISO time. "
              "Default: each revision from its first entry.")
@click.option("--until", help="Window end (exclusive), same forms. Default: each revision to its last entry.")
@click.option("--config", "gate_path", envvar="LOGAUDIT_GATE", type=ExpandedPath(dir_okay=False),
              help="Gate file with the thresholds (see docs/gate.example.yaml). Default: $LOGAUDIT_GATE, "
              "else built-in defaults.")
@catalog_options()
@click.option("--all-metrics", is_flag=True, help="Text format: list every pattern rate, not only those that "
              "did not Pass.")
@click.option("--no-redact", is_flag=True, help="Show messages without redacting secrets (never for shared output).")
@keep_emails_option
@store_option
@format_option("text", "json", "markdown")
@click.pass_context
@warehouse_options
@handle_errors
def compare_cmd(ctx: click.Context, service: str | None, baseline: str | None, canary: str | None,
                since: str | None, until: str | None, gate_path: str | None, catalogs: tuple[str, ...],
                no_shipped_catalogs: bool, all_metrics: bool, no_redact: bool, keep_emails: bool, store_dir: str | None, fmt: str,
                warehouse: WarehouseArgs) -> None:
    """Compare a canary revision with its baseline from their logs; exit with the verdict.

    Judges the request and entry error rates, latency and every catalog pattern's rate
    (Pass / High / Low / Inconclusive), lists patterns and unclassified templates new in the
    canary, and decides READY / MARGINAL / NOT READY under the gate's thresholds.

    With --bigquery both revisions are read where the logs sit in BigQuery (docs/bigquery.md).

    Exit codes: 0 READY, 1 MARGINAL, 2 NOT READY; 3 no store or unreadable input,
    4 bad catalog, 5 BigQuery refused (permission, dataset, --max-bytes), 64 bad usage (bad option or gate file, unknown service or
    revision, nothing to compare), 70 internal error, 130 interrupted.
    """
    from logaudit.analysis.gate import load_gate
    from logaudit.analysis.judge import compare
    from logaudit.present.comparison import render_markdown, render_text

    gate = load_gate(gate_path) if gate_path else None
    audit = open_audit(store_dir, catalog_paths(catalogs, no_shipped_catalogs),
                       make_redactor(no_redact=no_redact, keep_emails=keep_emails), warehouse)
    if show_plan(audit, "compare", warehouse, fmt, since=since, until=until, service=service):
        return
    result = compare(audit, service=service, baseline=baseline, canary=canary, since=since, until=until, gate=gate)
    data = result.to_dict()
    if fmt == "json":
        echo_json(data)
    elif fmt == "markdown":
        click.echo(render_markdown(data), nl=False)
    else:
        render_text(data, all_metrics=all_metrics)
    ctx.exit(result.exit_code)
