"""Ingest in one call: exported log files and directories, and Cloud Storage sink exports
(``gs://BUCKET/PREFIX``), into a store. `logaudit ingest` is this function.

>>> import logaudit
>>> logaudit.ingest(["exports/", "gs://my-logs/run.googleapis.com"], "logaudit-store", since="6h")  # doctest: +SKIP
IngestReport(...)
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable

from logaudit.core.errors import UsageError
from logaudit.core.timeparse import parse_window
from logaudit.sources import gcs
from logaudit.sources.files import discover, iter_batches
from logaudit.store.store import IngestReport, Progress, Store


def ingest(paths: Iterable[str | os.PathLike], store: Store | str | os.PathLike | None = None, *,
           since: str | None = None, until: str | None = None, storage_endpoint: str | None = None,
           credentials_file: str | os.PathLike | None = None, progress: Progress | None = None) -> IngestReport:
    """Ingest `paths` into `store` (a `Store`, its folder, or None for the default store).

    Local paths are files or directories (gcloud JSON/YAML, JSON Lines, .gz, the sink layout),
    read whole; `gs://` URIs are sink exports, read from `since` to `until` (the hourly files;
    durations or RFC 3339 times), listed before anything is written. `storage_endpoint` and
    `credentials_file` are for Cloud Storage. Raises `UsageError` for `since`/`until` without a
    `gs://` path, `SourceError` when Cloud Storage fails or refuses, `InputError`, `StoreError`
    and `LockedError` as `Store.ingest_batches` does.
    """
    paths = [os.fspath(p) for p in paths]
    remote = [p for p in paths if gcs.is_gs_uri(p)]
    local = [os.path.expanduser(p) for p in paths if not gcs.is_gs_uri(p)]
    if (since or until) and not remote:
        raise UsageError("--since/--until select the hourly files of gs:// sink exports; local paths are read whole")
    if not remote:
        return _open(store).ingest_paths(paths, progress=progress)
    lo, hi = parse_window(since, until)
    files = discover(local) if local else []
    _, remote_sources = gcs.gcs_sources(remote, since=lo, until=hi, endpoint=storage_endpoint,
                                        credentials_file=credentials_file)
    sources = itertools.chain([(str(f), iter_batches(f)) for f in files], remote_sources)
    return _open(store).ingest_batches(sources, progress=progress)


def _open(store: Store | str | os.PathLike | None) -> Store:
    return store if isinstance(store, Store) else Store(store)


__all__ = ["ingest"]
