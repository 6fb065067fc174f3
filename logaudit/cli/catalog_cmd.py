"""`logaudit catalog check`, `logaudit catalog test` and `logaudit classify`."""

from __future__ import annotations

import shutil
import sys
import textwrap

import click

from logaudit.catalog.catalog import NO_SHIPPED_ENV, CatalogLoadError, describe_catalogs, load_catalogs
from logaudit.catalog.selftest import run_self_test
from logaudit.cli import ExpandedPath, echo_json, format_option, handle_errors, main, store_option
from logaudit.cli.catalog_options import catalog_options, catalog_paths
from logaudit.core.errors import ExitCode

paths_argument = click.argument("paths", nargs=-1, type=ExpandedPath())
no_shipped_option = click.option(
    "--no-shipped-catalogs", is_flag=True, envvar=NO_SHIPPED_ENV,
    help=f"Check only PATHS, without the catalogs shipped with logaudit (also ${NO_SHIPPED_ENV}=1).")


def _load_or_report(paths: tuple[str, ...], no_shipped: bool, collect: bool, fmt: str):
    """Load the catalogs a run with these PATHS would use; with --format json, problems are
    printed as JSON (exit 4) instead of raised."""
    try:
        return load_catalogs(catalog_paths(paths, no_shipped), collect=collect)
    except CatalogLoadError as err:
        if fmt != "json":
            raise
        echo_json({"ok": False, "problems": [p.to_dict() for p in err.problems]})
        sys.exit(ExitCode.CATALOG)


@main.group()
def catalog() -> None:
    """Pattern catalogs: the known log lines findings are made of (see docs/catalog.md)."""


@catalog.command("check")
@paths_argument
@no_shipped_option
@click.option("--collect", is_flag=True, help="Report every problem instead of stopping at the first.")
@click.option("--engine", type=click.Choice(["local", "bigquery"]), default="local", show_default=True,
              help="bigquery: also say how each pattern runs in BigQuery (exact, prefilter or local).")
@format_option("text", "json")
@handle_errors
def check(paths: tuple[str, ...], no_shipped_catalogs: bool, collect: bool, engine: str, fmt: str) -> None:
    """Load and validate the shipped catalogs together with the catalog files or directories
    PATHS (default: $LOGAUDIT_CATALOG), as `--catalog PATHS` would load them.

    Problems are reported as FILE:LINE: PATTERN-ID: message, with a hint; exit code 4. A regex
    that may backtrack catastrophically is a problem unless marked `allow_backtracking: true`.
    With `--engine bigquery`, each pattern's BigQuery mode follows (docs/catalog.md, "BigQuery modes").
    """
    from logaudit.catalog.pushdown import check_bigquery
    from logaudit.catalog.translate import plan_pattern

    cat = _load_or_report(paths, no_shipped_catalogs, collect, fmt)
    plans = {p.id: plan_pattern(p) for p in cat}
    bigquery = check_bigquery(cat) if engine == "bigquery" else None
    if fmt == "json":
        echo_json({
            "ok": True,
            "catalogs": [s.to_dict() | {"file": s.file} for s in cat.sources],
            "patterns": [p.to_dict() | {"engine_mode": plans[p.id].mode, "engine_note": plans[p.id].note,
                                        "linear": p.analysis.linear, "time_limit_note": p.time_limit_note}
                         for p in cat],
        } | ({"bigquery": bigquery.to_dict()} if bigquery else {}))
        return
    for src in cat.sources:
        click.echo(f"{src.resource or src.file}: catalog {src.name} ({src.origin}), {src.patterns} patterns"
                   + (f", {src.overrides} replacing earlier ones" if src.overrides else ""))
    for p in cat:
        for note in (plans[p.id].note, p.time_limit_note):
            if note:
                click.secho(f"{p.location}: {p.id}: note: {note}", fg="yellow")
    if bigquery:
        _echo_bigquery(bigquery)
    click.echo(f"ok: {len(cat)} patterns in {len(cat.sources)} catalog(s)")


def _echo_bigquery(check) -> None:
    """One line per pattern (its reason wrapped below it), then the count per mode."""
    width = min(shutil.get_terminal_size().columns, 100)
    for pattern, plan in check.plans:
        click.echo(f"bigquery {plan.mode:9s} {pattern.id}")
        if plan.reason:
            click.echo(textwrap.fill(plan.reason, width, initial_indent=" " * 19, subsequent_indent=" " * 19,
                                     break_on_hyphens=False))
    click.echo("bigquery: " + ", ".join(f"{n} {mode}" for mode, n in check.counts.items()))


@catalog.command("test")
@paths_argument
@no_shipped_option
@format_option("text", "json")
@handle_errors
def test(paths: tuple[str, ...], no_shipped_catalogs: bool, fmt: str) -> None:
    """Run every example and counter-example of the shipped catalogs and of PATHS (default:
    $LOGAUDIT_CATALOG), loaded as `--catalog PATHS` would load them; exit code 4 when any fails."""
    cat = _load_or_report(paths, no_shipped_catalogs, True, fmt)
    report = run_self_test(cat)
    if fmt == "json":
        echo_json(report.to_dict() | {"catalogs": cat.describe()})
    else:
        click.echo(f"catalogs: {describe_catalogs(cat.describe())}")
        for f in report.failures:
            click.secho(f"FAIL {f}", fg="red")
        for pid in report.without_examples:
            click.secho(f"warning: {cat.get(pid).location}: {pid}: no examples", fg="yellow")
        status = "ok" if report.ok else "FAILED"
        click.echo(f"{status}: {report.patterns} patterns, {report.examples} examples, "
                   f"{report.counter_examples} counter-examples, {len(report.failures)} failure(s)")
    if not report.ok:
        sys.exit(ExitCode.CATALOG)


@main.command()
@store_option
@catalog_options()
@click.option("--patterns", "pattern_paths", multiple=True, type=ExpandedPath(exists=True), hidden=True,
              help="Deprecated: --catalog.")
@click.option("--since", default=None, metavar="WHEN", help="Only entries from this time (6h, 2d, 2025-09-09T18:00:00Z).")
@click.option("--until", default=None, metavar="WHEN", help="Only entries before this time.")
@click.option("--workers", type=click.IntRange(1, 64), default=None, help="Processes (default: up to 2).")
@click.option("--all", "show_all", is_flag=True, help="List patterns without matches too.")
@format_option("text", "json")
@handle_errors
def classify(store_dir: str | None, catalogs: tuple[str, ...], no_shipped_catalogs: bool,
             pattern_paths: tuple[str, ...], since: str | None, until: str | None, workers: int | None, show_all: bool, fmt: str) -> None:
    """Classify the store's entries against the pattern catalogs (cached; only new work is done).

    The results are what the `matches` view holds for queries; see docs/catalog.md. Exit codes:
    0 done, 3 no store, 4 bad catalog, 64 bad usage, 70 internal error, 130 interrupted.
    """
    from logaudit.catalog.classify import classify_store
    from logaudit.core.timeparse import parse_window
    from logaudit.store.store import require_store

    lo, hi = parse_window(since, until)
    cat = load_catalogs(catalog_paths(catalogs + pattern_paths, no_shipped_catalogs))
    store = require_store(store_dir)
    report = classify_store(store, cat, lo, hi, workers=workers)
    if fmt == "json":
        echo_json(report.to_dict() | {"catalogs": cat.describe()})
        return
    by_id = cat.by_id
    rows = [(by_id[pid].category, pid, n) for pid, n in report.matches.items() if n or show_all]
    order = {"critical": 0, "warning": 1, "positive": 2, "info": 3}
    for category, pid, n in sorted(rows, key=lambda r: (order[r[0]], -r[2], r[1])):
        extra = ""
        if report.timeouts.get(pid) or report.skipped.get(pid):
            extra = f"  ({report.timeouts.get(pid, 0)} timeouts, {report.skipped.get(pid, 0)} skipped)"
        click.echo(f"{category:9s} {n:9d}  {pid}{extra}")
    click.echo(f"catalogs: {describe_catalogs(cat.describe())}")
    click.echo(
        f"{report.entries} entries in {report.files} files: {report.matched_entries} classified, "
        f"{report.unclassified} unclassified; {report.files_evaluated} files and {report.patterns_evaluated} "
        f"patterns evaluated, {report.cache_hits} cached results reused, in {report.seconds:.2f} s"
    )
    if report.cut:
        click.secho(f"{report.cut} texts longer than the match limit were cut before matching", fg="yellow")
    for slow in report.slow_patterns:
        click.secho(f"warning: {slow['file']}:{slow['line']}: {slow['pattern_id']}: {slow['message']}", fg="yellow")
