"""`logaudit sample` (generate realistic logs) and `logaudit demo` (the main job on the bundled sample)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from logaudit.cli import ExpandedPath, echo_json, format_option, handle_errors, main, store_option
from logaudit.cli.catalog_options import catalog_options, catalog_paths
from logaudit.sources.bundled import sample_path
from logaudit.sources.sample import SCENARIOS, SampleConfig, write_sample
from logaudit.store.store import Store


@main.command()
@click.argument("out", type=ExpandedPath(dir_okay=False))
@click.option("--entries", "-n", type=int, default=5000, show_default=True, help="Exact number of entries.")
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--start", default="2025-09-09T20:00:00Z", show_default=True, help="Window start (RFC 3339).")
@click.option("--hours", type=float, default=8.0, show_default=True, help="Window length.")
@click.option("--no-regression", is_flag=True, help="The canary behaves like the baseline (= --scenario healthy).")
@click.option("--scenario", type=click.Choice(SCENARIOS), default=SCENARIOS[0], show_default=True,
              help="What the deploy does (docs/sample.md): the canary regresses, is healthy, crash-loops (alone or "
                   "after a crash-looping baseline), is healthy while the old revision scales down, is killed out of "
                   "memory, or gets a dozen requests.")
@click.option("--no-secrets", is_flag=True, help="Do not plant fake secrets in messages.")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "json", "yaml"]), default="jsonl", show_default=True,
              help="jsonl, gcloud-style json array (newest first) or yaml documents; OUT ending in .gz compresses.")
@click.option("--truth", type=ExpandedPath(dir_okay=False), help="Also write the generator's exact counts as JSON here.")
@handle_errors
def sample(out: str, entries: int, seed: int, start: str, hours: float, no_regression: bool, scenario: str,
           no_secrets: bool, fmt: str, truth: str | None) -> None:
    """Write deterministic, realistic Cloud Run logs (a deploy of netra-backend-staging) to OUT."""
    if no_regression and scenario not in ("canary-regression", "healthy"):
        raise click.UsageError(f"--no-regression applies to --scenario canary-regression only (it makes it "
                               f"healthy); --scenario {scenario} defines its canary itself")
    config = SampleConfig(entries=entries, seed=seed, start=start, hours=hours,
                          regression=not no_regression, plant_secrets=not no_secrets, scenario=scenario)
    result = write_sample(out, config, fmt=fmt)
    if truth:
        Path(truth).write_text(json.dumps(result.to_dict(), indent=1) + "\n")
    click.echo(f"wrote {result.entries} entries to {out}")


@main.command()
@store_option
@catalog_options()
@format_option("text", "json", "markdown")
@handle_errors
def demo(store_dir: str | None, catalogs: tuple[str, ...], no_shipped_catalogs: bool, fmt: str) -> None:
    """Ingest the bundled sample (a staging deploy of netra-backend) and summarize it.

    Needs no cloud account: the sample is shipped with logaudit (`data/sample/` in the
    repository). Afterwards try `logaudit summarize --since 2025-09-10T00:00:00Z` or `logaudit compare`.
    """
    from logaudit.analysis.audit import Audit
    from logaudit.present.summary import render_markdown, render_text

    paths = catalog_paths(catalogs, no_shipped_catalogs)
    store = Store(store_dir)
    path = sample_path()
    report = store.ingest_paths([path])
    summary = Audit(store, paths).summary()
    if fmt == "json":
        echo_json(summary)
        return
    # two lines: the store's path has any length, the counts line fits 80 columns
    click.echo(f"ingested {path.name}: {report.read} read, {report.new_rows} new, {report.duplicates} duplicate",
               err=True)
    click.echo(f"store: {store.root}", err=True)
    if fmt == "markdown":
        click.echo(render_markdown(summary), nl=False)
    else:
        render_text(summary)
