"""`logaudit ingest` and `logaudit store info`."""

from __future__ import annotations

import itertools
import sys

import click

from logaudit.cli import echo_json, format_option, handle_errors, main, store_option
from logaudit.errors import UsageError
from logaudit.progress import byte_progress
from logaudit.store import MAX_NOTES_SHOWN, Store

EXIT_REJECTED = 1


@main.command()
@click.argument("paths", nargs=-1, required=True)
@store_option
@format_option("text", "json")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.option("--since", default=None, metavar="WHEN",
              help="gs:// only: read the sink's hourly files from this time (6h, 2d, 2025-09-09T18:00:00Z).")
@click.option("--until", default=None, metavar="WHEN", help="gs:// only: ... up to this time (exclusive).")
@click.option("--storage-endpoint", envvar="LOGAUDIT_STORAGE_ENDPOINT", default=None, metavar="URL",
              help="Cloud Storage endpoint for gs:// (an emulator; STORAGE_EMULATOR_HOST works too).")
@click.option("--credentials", "credentials_file", default=None, type=click.Path(exists=True, dir_okay=False),
              help="Service-account key for gs:// (default: Application Default Credentials).")
@handle_errors
def ingest(paths: tuple[str, ...], store_dir: str | None, fmt: str, quiet: bool, since: str | None,
           until: str | None, storage_endpoint: str | None, credentials_file: str | None) -> None:
    """Ingest exported log files or directories (gcloud JSON/YAML, JSON Lines, .gz, sink layout),
    or Cloud Storage sink exports given as gs://BUCKET/PREFIX.

    Exit code 0 when every entry was ingested, 1 when some input was rejected (see
    STORE/rejects/), 3 when a path cannot be read, 5 when Cloud Storage fails or refuses.
    """
    from logaudit.sources import gcs
    from logaudit.sources.files import discover, iter_batches
    from logaudit.timeparse import parse_window

    remote = [p for p in paths if gcs.is_gs_uri(p)]
    local = [p for p in paths if not gcs.is_gs_uri(p)]
    if (since or until) and not remote:
        raise UsageError("--since/--until select the hourly files of gs:// sink exports; local paths are read whole")
    if not remote:
        store = Store(store_dir)
        with byte_progress(paths, enabled=not quiet and fmt == "text") as progress:
            report = store.ingest_paths(paths, progress=progress)
    else:
        lo, hi = parse_window(since, until)
        files = discover(local) if local else []
        _, remote_sources = gcs.gcs_sources(remote, since=lo, until=hi, endpoint=storage_endpoint,
                                            credentials_file=credentials_file)
        sources = itertools.chain([(str(f), iter_batches(f)) for f in files], remote_sources)
        store = Store(store_dir)
        with byte_progress(paths, enabled=not quiet and fmt == "text") as progress:
            report = store.ingest_batches(sources, progress=progress)
    if fmt == "json":
        echo_json(report.to_dict() | {"rejects": report.rejects[:100]})
    else:
        for s in report.sources:
            click.echo(
                f"{s.source}: {s.read} read, {s.new_rows} new, {s.duplicates} duplicate, {s.rejected} rejected"
                + (f", {s.blank} blank lines" if s.blank else "")
                + (f", {s.unreadable_fields} unreadable fields stored as null" if s.unreadable_fields else "")
            )
        click.echo(
            f"total: {report.read} read, {report.new_rows} new, {report.duplicates} duplicate, "
            f"{report.rejected} rejected in {report.seconds:.2f} s -> {store.root}"
        )
        for r in report.rejects[:20]:
            click.secho(f"rejected {r['source']}:{r['position']}: {r['reason']}", fg="yellow", err=True)
        if report.rejected > 20:
            click.secho(f"... {report.rejected - 20} more in {store.root}/rejects/{report.ingest_id}.jsonl", fg="yellow", err=True)
        for n in report.field_notes[:20]:
            click.secho(f"note {n['source']}:{n['position']}: {n['note']}", fg="yellow", err=True)
        if report.unreadable_fields > 20:
            click.secho(f"... {report.unreadable_fields - 20} more notes (the first {MAX_NOTES_SHOWN} are in "
                        f"{store.root}/manifest/{report.ingest_id}.json)", fg="yellow", err=True)
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
