"""`logaudit ingest` and `logaudit store info`."""

from __future__ import annotations

import sys

import click

from logaudit.cli import echo_json, format_option, handle_errors, main, store_option
from logaudit.progress import byte_progress
from logaudit.store import Store

EXIT_REJECTED = 1


@main.command()
@click.argument("paths", nargs=-1, required=True)
@store_option
@format_option("text", "json")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@handle_errors
def ingest(paths: tuple[str, ...], store_dir: str | None, fmt: str, quiet: bool) -> None:
    """Ingest exported log files or directories (gcloud JSON/YAML, JSON Lines, .gz, sink layout).

    Exit code 0 when every entry was ingested, 1 when some input was rejected (see
    STORE/rejects/), 3 when a path cannot be read.
    """
    store = Store(store_dir)
    with byte_progress(paths, enabled=not quiet and fmt == "text") as progress:
        report = store.ingest_paths(paths, progress=progress)
    if fmt == "json":
        echo_json(report.to_dict() | {"rejects": report.rejects[:100]})
    else:
        for s in report.sources:
            click.echo(
                f"{s.source}: {s.read} read, {s.new_rows} new, {s.duplicates} duplicate, {s.rejected} rejected"
                + (f", {s.blank} blank lines" if s.blank else "")
            )
        click.echo(
            f"total: {report.read} read, {report.new_rows} new, {report.duplicates} duplicate, "
            f"{report.rejected} rejected in {report.seconds:.2f} s -> {store.root}"
        )
        for r in report.rejects[:20]:
            click.secho(f"rejected {r['source']}:{r['position']}: {r['reason']}", fg="yellow", err=True)
        if report.rejected > 20:
            click.secho(f"... {report.rejected - 20} more in {store.root}/rejects/{report.ingest_id}.jsonl", fg="yellow", err=True)
    if report.rejected:
        sys.exit(EXIT_REJECTED)


@main.group()
def store() -> None:
    """Inspect the local store."""


@store.command("info")
@store_option
@format_option("text", "json")
@handle_errors
def store_info(store_dir: str | None, fmt: str) -> None:
    """Entries, time range, files and the ingest manifest."""
    info = Store(store_dir, create=False).info()
    if fmt == "json":
        echo_json(info)
        return
    click.echo(f"store:      {info['store']}")
    click.echo(f"entries:    {info['entries']} in {info['files']} files, {info['partitions']} date partitions, {info['bytes'] / 1e6:.1f} MB")
    click.echo(f"time range: {info['first']} .. {info['last']}")
    click.echo(f"ingests:    {len(info['ingests'])} ({info['rejected_total']} rejected in all)")
    for m in info["ingests"][-10:]:
        srcs = ", ".join(s["source"] for s in m.get("sources", []))[:80]
        click.echo(
            f"  {m['started']} {m.get('kind', 'ingest'):6} {m['status']:11} read {m['read']}, new {m['new_rows']}, "
            f"dup {m['duplicates']}, rejected {m['rejected']}  {srcs}"
        )
