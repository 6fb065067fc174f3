"""Read Cloud Logging sink exports from Cloud Storage, streaming, into the store.

A Cloud Storage sink writes hourly JSON-lines files
`gs://BUCKET/LOG_ID/YYYY/MM/DD/HH:00:00_HH:59:59_S0.json` (shards `Sn`, `An`). Given
`gs://BUCKET/PREFIX` and an optional [since, until) window, `list_objects` walks the bucket with
`/` as delimiter and skips every year, month and day folder outside the window, so a 6-hour
window lists a handful of folders however many years the bucket holds; `open_sources` yields
`(gs://uri, batches)` pairs for `Store.ingest_batches`, reading each object as a stream through
`logaudit.sources.files.iter_stream_batches` (the same formats, deduplication and rejects as
local files; a damaged object is read up to the damage and gets an "error" note, and the
ingest goes on with the next object).

Selection is by hourly file: an hour that overlaps the window is read whole. Objects that do
not follow the sink naming are read when their name ends in a log suffix (.json, .jsonl, ...,
optionally .gz), whatever the window, since their time cannot be told from the name.

Credentials: `--credentials KEY.json`, else Application Default Credentials; with an endpoint
(`--storage-endpoint`, or `STORAGE_EMULATOR_HOST` which the client honours) anonymous ones.

>>> parse_gs_uri("gs://my-sink/run.googleapis.com/stdout/2026/")
('my-sink', 'run.googleapis.com/stdout/2026/')
>>> hour_of("run.googleapis.com/stdout/2026/11/28/10:00:00_10:59:59_S0.json").isoformat()
'2026-11-28T10:00:00+00:00'
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from logaudit.core.errors import InputError, SourceError, UsageError
from logaudit.sources.credentials import CREDENTIALS_HINT, google_credentials
from logaudit.sources.files import LOG_SUFFIXES, Batch, iter_stream_batches

ENDPOINT_ENV = "LOGAUDIT_STORAGE_ENDPOINT"
EMULATOR_ENV = "STORAGE_EMULATOR_HOST"
READ_SCOPES = ("https://www.googleapis.com/auth/devstorage.read_only",)
VIEWER_ROLE = "roles/storage.objectViewer"
CHUNK_BYTES = 8 << 20

_SINK_FILE = re.compile(r"(?:^|/)(\d{4})/(\d{2})/(\d{2})/(\d{2}):00:00_(\d{2}):59:59_[SA]\d+\.json$", re.ASCII)
_YEAR_DIR = re.compile(r"(?:^|/)(\d{4})/$", re.ASCII)
_MONTH_DIR = re.compile(r"(?:^|/)(\d{4})/(\d{2})/$", re.ASCII)
_DAY_DIR = re.compile(r"(?:^|/)(\d{4})/(\d{2})/(\d{2})/$", re.ASCII)
_MAX_DEPTH = 12


@dataclass(frozen=True)
class GcsObject:
    bucket: str
    name: str
    size: int | None

    @property
    def uri(self) -> str:
        return f"gs://{self.bucket}/{self.name}"


def is_gs_uri(text: str) -> bool:
    return str(text).startswith("gs://")


def parse_gs_uri(uri: str) -> tuple[str, str]:
    """`gs://BUCKET/PREFIX` -> (bucket, prefix). Raises UsageError."""
    if not is_gs_uri(uri):
        raise UsageError(f"{uri}: not a gs:// URI")
    bucket, _, prefix = uri[5:].partition("/")
    if not bucket or not re.fullmatch(r"[a-z0-9][a-z0-9._-]{1,221}[a-z0-9]", bucket):
        raise UsageError(f"{uri}: not a valid Cloud Storage bucket name", hint="expected gs://BUCKET/PREFIX")
    return bucket, prefix


def hour_of(name: str) -> datetime | None:
    """The hour a sink file covers (from its name), or None when the name is not a sink file's."""
    m = _SINK_FILE.search(name)
    if not m or m.group(4) != m.group(5):
        return None
    try:
        return datetime(int(m.group(1)), int(m.group(2)), int(m.group(3)), int(m.group(4)), tzinfo=UTC)
    except ValueError:
        return None


def _overlaps(start: datetime, end: datetime, since: datetime | None, until: datetime | None) -> bool:
    return (until is None or start < until) and (since is None or end > since)


def _folder_range(prefix: str) -> tuple[datetime, datetime] | None:
    """[start, end) of a `YYYY/`, `YYYY/MM/` or `YYYY/MM/DD/` folder prefix, else None."""
    try:
        if m := _DAY_DIR.search(prefix):
            start = datetime(int(m[1]), int(m[2]), int(m[3]), tzinfo=UTC)
            return start, start + timedelta(days=1)
        if m := _MONTH_DIR.search(prefix):
            y, mo = int(m[1]), int(m[2])
            return datetime(y, mo, 1, tzinfo=UTC), datetime(y + mo // 12, mo % 12 + 1, 1, tzinfo=UTC)
        if m := _YEAR_DIR.search(prefix):
            return datetime(int(m[1]), 1, 1, tzinfo=UTC), datetime(int(m[1]) + 1, 1, 1, tzinfo=UTC)
    except ValueError:
        return None
    return None


def _is_log_file(name: str) -> bool:
    base = name.rsplit("/", 1)[-1]
    return bool(base) and not base.startswith(".") and base.removesuffix(".gz").endswith(LOG_SUFFIXES)


def wanted(name: str, since: datetime | None, until: datetime | None) -> bool:
    """Whether an object is read: a sink file whose hour overlaps the window, or any other log file."""
    if not _is_log_file(name):
        return False
    hour = hour_of(name)
    if hour is None:
        return True
    return _overlaps(hour, hour + timedelta(hours=1), since, until)


def make_client(*, endpoint: str | None = None, credentials_file: str | os.PathLike | None = None,
                scopes: Sequence[str] = READ_SCOPES) -> Any:
    """A google-cloud-storage Client: the key file, else anonymous with an endpoint or the
    emulator variable, else Application Default Credentials. The one place a Storage client is
    made: reading sinks with READ_SCOPES, `logaudit.export` writing with its write scopes."""
    from google.cloud import storage

    endpoint = endpoint or os.environ.get(ENDPOINT_ENV) or None
    if endpoint and not endpoint.startswith(("http://", "https://")):
        raise UsageError(f"--storage-endpoint {endpoint!r}: expected a URL starting with http:// or https://")
    credentials = google_credentials(credentials_file, scopes,
                                     anonymous=bool(endpoint or os.environ.get(EMULATOR_ENV)))
    options = {"api_endpoint": endpoint.rstrip("/")} if endpoint else None
    return storage.Client(project="<none>", credentials=credentials, client_options=options)


def _translate(err: Exception, what: str) -> SourceError:
    """A Cloud Storage failure as a SourceError with a hint."""
    from google.api_core import exceptions as gexc

    if isinstance(err, gexc.NotFound):
        return SourceError(f"{what}: not found (404)", hint="check the bucket name and prefix: gs://BUCKET/PREFIX")
    if isinstance(err, gexc.Forbidden | gexc.Unauthorized):
        return SourceError(f"{what}: permission denied ({getattr(err, 'code', 403)})",
                           hint=f"the account needs {VIEWER_ROLE} (Storage Object Viewer) on the bucket; {CREDENTIALS_HINT}")
    code = getattr(err, "code", None)
    return SourceError(f"{what}: Cloud Storage failed: {type(err).__name__}{f' ({code})' if code else ''}: {err}",
                       hint="re-run the command: entries already stored are skipped")


def _list(client: Any, bucket: str, prefix: str, delimiter: str | None) -> tuple[list[tuple[str, int | None]], list[str]]:
    import google.auth.exceptions
    import requests
    from google.api_core import exceptions as gexc

    try:
        it = client.list_blobs(bucket, prefix=prefix or None, delimiter=delimiter)
        blobs = [(b.name, b.size) for b in it]
        return blobs, sorted(getattr(it, "prefixes", ()) or ())
    except (gexc.GoogleAPICallError, requests.exceptions.RequestException) as err:
        raise _translate(err, f"gs://{bucket}/{prefix}") from None
    except google.auth.exceptions.GoogleAuthError as err:
        raise SourceError(f"gs://{bucket}/{prefix}: credentials failed: {err}", hint=CREDENTIALS_HINT) from None


def list_objects(client: Any, uri: str, *, since: datetime | None = None, until: datetime | None = None) -> list[GcsObject]:
    """The objects under `uri` to read, sorted by name.

    Without a window: one flat listing. With one: a walk by folders that skips year, month and
    day folders outside [since, until), then the hourly files that overlap it.
    """
    bucket, prefix = parse_gs_uri(uri)
    if since is None and until is None:
        blobs, _ = _list(client, bucket, prefix, None)
        found = [GcsObject(bucket, n, s) for n, s in blobs if wanted(n, None, None)]
    else:
        found = []
        stack = [(prefix, 0)]
        while stack:
            current, depth = stack.pop()
            blobs, folders = _list(client, bucket, current, "/")
            found.extend(GcsObject(bucket, n, s) for n, s in blobs if wanted(n, since, until))
            for folder in folders:
                span = _folder_range(folder)
                if span is not None and not _overlaps(span[0], span[1], since, until):
                    continue
                if depth + 1 > _MAX_DEPTH:
                    deep, _ = _list(client, bucket, folder, None)
                    found.extend(GcsObject(bucket, n, s) for n, s in deep if wanted(n, since, until))
                else:
                    stack.append((folder, depth + 1))
    found = sorted(set(found), key=lambda o: o.name)
    return found


def _object_batches(client: Any, obj: GcsObject, batch_size: int) -> Iterator[Batch]:
    import google.auth.exceptions
    import requests
    from google.api_core import exceptions as gexc

    try:
        blob = client.bucket(obj.bucket).blob(obj.name)
        with blob.open("rb", chunk_size=CHUNK_BYTES) as fh:
            yield from iter_stream_batches(fh, obj.uri, batch_size)
    except (gexc.GoogleAPICallError, requests.exceptions.RequestException) as err:
        raise _translate(err, obj.uri) from None
    except google.auth.exceptions.GoogleAuthError as err:
        raise SourceError(f"{obj.uri}: credentials failed: {err}", hint=CREDENTIALS_HINT) from None
    except OSError as err:  # opening it; read errors and damaged data become notes on its batches
        raise InputError(f"{obj.uri}: cannot read: {err}", hint="re-run the command: entries already stored are skipped") from err


def open_sources(client: Any, objects: Sequence[GcsObject], *, batch_size: int = 100_000) -> Iterator[tuple[str, Iterator[Batch]]]:
    """(gs:// URI, batches) for each object, opened lazily, for `Store.ingest_batches`."""
    for obj in objects:
        yield obj.uri, _object_batches(client, obj, batch_size)


def gcs_sources(uris: Sequence[str], *, since: datetime | None = None, until: datetime | None = None,
                endpoint: str | None = None, credentials_file: str | os.PathLike | None = None,
                batch_size: int = 100_000, client: Any = None) -> tuple[list[GcsObject], Iterator[tuple[str, Iterator[Batch]]]]:
    """List every URI now (so a bad bucket fails before anything is written) and return the
    objects plus the lazy (uri, batches) sources to ingest."""
    for uri in uris:
        parse_gs_uri(uri)
    client = client or make_client(endpoint=endpoint, credentials_file=credentials_file)
    objects: dict[GcsObject, None] = {}
    for uri in uris:
        listed = list_objects(client, uri, since=since, until=until)
        if not listed:
            window = "" if since is None and until is None else " in the --since/--until window"
            raise InputError(f"{uri}: no log files{window}",
                             hint="a sink writes LOG_ID/YYYY/MM/DD/HH:00:00_HH:59:59_S0.json, the first files "
                                  "2-3 hours after the sink is created; check the prefix and the window")
        objects.update(dict.fromkeys(listed))
    objects_list = list(objects)
    return objects_list, open_sources(client, objects_list, batch_size=batch_size)


__all__ = ["GcsObject", "gcs_sources", "hour_of", "is_gs_uri", "list_objects", "make_client", "open_sources",
           "parse_gs_uri", "wanted"]
