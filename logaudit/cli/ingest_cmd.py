"""`logaudit ingest` and `logaudit store info|check|repair|clear-cache`."""

from __future__ import annotations

import sys

import click

from logaudit.cli import ExpandedPath, echo_json, format_option, handle_errors, main, store_option
from logaudit.core.errors import ExitCode
from logaudit.core.progress import byte_progress
from logaudit.store.derived import KINDS
from logaudit.store.ingest import ingest as ingest_into
from logaudit.store.store import MAX_NOTES_SHOWN, Store, store_root


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
@click.option("--credentials", "credentials_file", default=None, type=ExpandedPath(exists=True, dir_okay=False),
              help="Service-account key for gs:// (default: Application Default Credentials).")
@handle_errors
def ingest(paths: tuple[str, ...], store_dir: str | None, fmt: str, quiet: bool, since: str | None,
           until: str | None, storage_endpoint: str | None, credentials_file: str | None) -> None:
    """Ingest exported log files or directories (gcloud JSON/YAML, JSON Lines, .gz, sink layout),
    or Cloud Storage sink exports given as gs://BUCKET/PREFIX.

    Exit code 0 when every entry was ingested, 7 when some input was rejected (see
    STORE/rejects/) or a file could not be read to its end (the other files are still read and
    stored), 3 when a path does not exist (nothing is read), the store cannot be written (disk
    full, read-only) or holds a damaged file, 5 when Cloud Storage fails or refuses, 6 when
    another process writes to the store, 64 bad usage, 70 internal error, 130 interrupted.
    """
    with byte_progress(paths, enabled=not quiet and fmt == "text") as progress:
        report = ingest_into(paths, store_dir, since=since, until=until, storage_endpoint=storage_endpoint,
                             credentials_file=credentials_file, progress=progress)
    root = store_root(store_dir)
    if fmt == "json":
        echo_json(report.to_dict() | {"rejects": report.rejects[:100]})
    else:
        for s in report.sources:
            click.echo(
                f"{s.source}: {s.read} read, {s.new_rows} new, {s.duplicates} duplicate, {s.rejected} rejected"
                + (f", {s.blank} blank lines" if s.blank else "")
                + (f", {s.unreadable_fields} unreadable fields stored as null" if s.unreadable_fields else "")
            )
        failed = f", {report.files_failed} damaged or unreadable files" if report.files_failed else ""
        click.echo(
            f"total: {report.read} read, {report.new_rows} new, {report.duplicates} duplicate, "
            f"{report.rejected} rejected{failed} in {report.seconds:.2f} s -> {root}"
        )
        for s in report.sources:
            for n in s.notes:
                click.secho(f"{n['level']} {s.source}: {n['message']}", fg=_NOTE_COLOURS[n["level"]], err=True)
                if n.get("hint"):
                    click.secho(f"  hint: {n['hint']}", fg=_NOTE_COLOURS[n["level"]], err=True)
        for r in report.rejects[:20]:
            click.secho(f"rejected {r['source']}:{r['position']}: {r['reason']}", fg="yellow", err=True)
        if report.rejected > 20:
            click.secho(f"... {report.rejected - 20} more in {root}/rejects/{report.ingest_id}.jsonl", fg="yellow", err=True)
        for n in report.field_notes[:20]:
            click.secho(f"note {n['source']}:{n['position']}: {n['note']}", fg="yellow", err=True)
        if report.unreadable_fields > 20:
            click.secho(f"... {report.unreadable_fields - 20} more notes (the first {MAX_NOTES_SHOWN} are in "
                        f"{root}/manifest/{report.ingest_id}.json)", fg="yellow", err=True)
    if report.rejected or report.files_failed:
        sys.exit(ExitCode.PARTIAL)


_NOTE_COLOURS = {"info": None, "warning": "yellow", "error": "red"}


@main.group()
def store() -> None:
    """Inspect, verify and repair the local store (see docs/store.md)."""


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
    click.echo(f"derived:    {_sizes(info['derived'])}")
    click.echo(f"ingests:    {len(info['ingests'])} ({info['rejected_total']} rejected in all)")
    for m in info["ingests"][-10:]:
        srcs = ", ".join(s["source"] for s in m.get("sources", []))[:80]
        click.echo(
            f"  {m.get('started')} {m.get('kind', 'ingest'):6} {m['status']:11} read {m.get('read', 0)}, "
            f"new {m.get('new_rows', 0)}, dup {m.get('duplicates', 0)}, rejected {m.get('rejected', 0)}  {srcs}"
        )
        if m.get("error"):
            click.echo(f"    {m['error']}")
    for rel in info["manifest_unreadable"]:
        click.secho(f"warning: {info['store']}/{rel}: unreadable manifest record; `logaudit store check` and "
                    "`logaudit store repair` deal with it (the entries it recorded are kept)", fg="yellow", err=True)


def _sizes(kinds: dict[str, dict[str, int]]) -> str:
    """`matches 12 files 1.2 MB, aggregates 0 files 0.0 MB, ...`"""
    return ", ".join(f"{k} {v['files']} file{'' if v['files'] == 1 else 's'} {v['bytes'] / 1e6:.1f} MB"
                     for k, v in kinds.items())


@store.command("clear-cache")
@store_option
@format_option("text", "json")
@click.option("--kind", type=click.Choice([*KINDS, "legacy"]), default=None,
              help="Only this kind of derived data (default: all, and the caches of earlier versions).")
@handle_errors
def store_clear_cache(store_dir: str | None, fmt: str, kind: str | None) -> None:
    """Remove the store's derived data (classification results, aggregates, hour slices):
    commands compute it again when next needed. Run it while no other command uses the store.

    Exit code 0; 3 on a read-only store or when there is no store.
    """
    store = Store(store_dir, create=False)
    removed = store.clear_derived(kind)
    if fmt == "json":
        echo_json({"store": str(store.root), "removed": removed})
        return
    click.echo(f"removed from {store.root}: {_sizes(removed)}" if removed else f"no derived data in {store.root}")


@store.command("check")
@store_option
@format_option("text", "json")
@click.option("--quick", is_flag=True, help="Footers and schemas only, not every row (much faster on a big store).")
@handle_errors
def store_check(store_dir: str | None, fmt: str, quick: bool) -> None:
    """Verify every file of the store: entry Parquet files (footer, schema, row counts, every
    column readable), the manifest, rejects, caches; stale temporary files and ingests marked
    running that no process runs. Works on a read-only store.

    Exit code 0 when the store is clean, 3 when anything is damaged or stale (each problem is
    listed with its file and its fix) or there is no store.
    """
    report = Store(store_dir, create=False, verify=False).check(quick=quick)
    if fmt == "json":
        echo_json(report.to_dict())
    else:
        for p in report.problems:
            click.secho(f"{p.kind}: {report.store}/{p.path}: {p.problem}", fg="red")
            click.echo(f"  fix: {p.fix}")
        files = sum(report.checked.values())
        note = " (an ingest or pull is running: its temporary files were not judged)" if report.writer_running else ""
        if report.ok:
            click.echo(f"ok: {files} files checked in {report.store}, no problems{note}")
        else:
            click.echo(f"{len(report.problems)} problem(s) in {files} files checked in {report.store}{note}; "
                       f"`logaudit store repair --store {report.store}` fixes them")
    if not report.ok:
        sys.exit(ExitCode.INPUT)


@store.command("repair")
@store_option
@format_option("text", "json")
@handle_errors
def store_repair(store_dir: str | None, fmt: str) -> None:
    """Move damaged files to STORE/quarantine/<time>/, remove temporary files of writes that
    never finished, and mark ingests that are still `running` but have no process `interrupted`.

    Holds the store's lock: exit code 6 while an ingest or pull runs, 3 on a read-only store
    or when there is no store.
    """
    report = Store(store_dir, create=False, verify=False).repair()
    if fmt == "json":
        echo_json(report.to_dict())
        return
    for a in report.actions:
        click.echo(f"{a.action} {a.path}: {a.reason}" + (f" -> {a.to}" if a.to else ""))
    if not report.actions:
        click.echo(f"nothing to repair in {report.store}")
        return
    click.echo(f"{len(report.actions)} repair(s) in {report.store}")
    days = sorted({a.path.split("/")[1].removeprefix("date=") for a in report.actions
                   if a.action == "quarantined" and a.path.startswith("entries/")})
    if days:
        click.secho(f"entries of {', '.join(days)} were quarantined: re-ingest the sources of those days "
                    "(`logaudit store info` lists every ingest)", fg="yellow")
