"""BigQuery through the official `google-cloud-bigquery` client: `BigQueryRunner` runs one
GoogleSQL query (a dry run first, refused above a byte limit, labelled, with a deadline) and
returns its small result as Arrow; `open_source` turns `PROJECT.DATASET._AllLogs` or a log sink's
`PROJECT.DATASET` into a `WarehouseSource`. docs/bigquery.md ("Running in BigQuery") is the
user's side of it.

The client is imported inside the functions: `import logaudit` stays light.

>>> estimate_usd(2**40)
6.25
>>> label_value("Health: 5xx by revision")
'health__5xx_by_revision'
"""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from logaudit.core.errors import UsageError, WarehouseError
from logaudit.warehouse.entry_view import SinkTable
from logaudit.warehouse.runner import QueryRecord
from logaudit.warehouse.source import WarehouseSource

#: On-demand list price per TiB scanned (US multi-region, 2026). An estimate: regions, editions
#: and committed capacity price differently (cloud.google.com/bigquery/pricing).
PRICE_PER_TIB_USD = 6.25
#: The most one query may scan unless raised: 100 GiB, about 0.61 USD at the list price. A day
#: or a week of one service's logs is far less; a query that would scan more has most likely
#: lost its time window (a year of a project's logs), and a refused dry run costs nothing.
DEFAULT_MAX_BYTES = 100 * 2**30
#: Seconds one query may run (BigQuery cancels the job after it, and so does the runner).
DEFAULT_TIMEOUT = 900.0
#: Seconds one API call (and its retries) may take; the client's own default retries for 600 s.
API_TIMEOUT = 60.0
#: The environment variable naming an endpoint (an emulator) when `endpoint` is not given.
ENDPOINT_VARIABLE = "LOGAUDIT_BIGQUERY_ENDPOINT"
JOB_USER_ROLE = "BigQuery Job User (roles/bigquery.jobUser)"
DATA_VIEWER_ROLE = "BigQuery Data Viewer (roles/bigquery.dataViewer)"
CREDENTIALS_HINT = "run `gcloud auth application-default login` (Application Default Credentials)"
LINK_HINT = ("check the name; a Log Analytics view is PROJECT.DATASET._AllLogs of a linked dataset: make the "
             "log bucket an analytics bucket (`gcloud logging buckets update BUCKET --location=LOCATION "
             "--enable-analytics`), then link it (`gcloud logging links create LINK_ID --bucket=BUCKET "
             "--location=LOCATION`); a log sink's dataset is PROJECT.DATASET")
MAX_BYTES_HINT = "raise --max-bytes, or narrow --since/--until"

_LABEL_KEY = re.compile(r"[a-z][a-z0-9_-]{0,62}")
_LABEL_VALUE = re.compile(r"[a-z0-9_-]{0,63}")
_PARAM = re.compile(r"(?<![@\w])@([A-Za-z_]\w*)")
_REF = re.compile(r"(?P<project>(?:[a-z0-9.-]+:)?[A-Za-z0-9][-A-Za-z0-9]*)\.(?P<dataset>\w+)"
                  r"(?:\.(?P<table>[-\w]+))?")
_SHARD = re.compile(r"(?P<prefix>.+_)(?P<day>[0-9]{8})")
_POLL_SECONDS = (0.2, 0.5, 1.0, 2.0)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def estimate_usd(bytes_processed: int) -> float:
    """What scanning `bytes_processed` bytes costs at the on-demand list price (an estimate).

    >>> estimate_usd(100 * 2**30)
    0.6103515625
    """
    return bytes_processed / 2**40 * PRICE_PER_TIB_USD


def format_bytes(n: int) -> str:
    """A byte count in binary units, as BigQuery bills them (per TiB).

    >>> format_bytes(150 * 2**30), format_bytes(512)
    ('150.0 GiB', '512 B')
    """
    if n < 1024:
        return f"{n} B"
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        n /= 1024
        if n < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}"
    raise AssertionError("unreachable")


def label_value(text: str) -> str:
    """`text` as a BigQuery label value: lower case, `[a-z0-9_-]`, other characters as `_`, at
    most 63 characters."""
    return re.sub(r"[^a-z0-9_-]", "_", text.lower())[:63]


def _job_labels(user: Mapping[str, str] | None) -> dict[str, str]:
    """The user's labels, checked: BigQuery refuses a job whose labels break its rules."""
    labels = dict(user or {})
    for key, value in labels.items():
        if key in ("app", "analysis"):
            raise UsageError(f"label {key!r} is set by logaudit", hint="choose another label key")
        if not _LABEL_KEY.fullmatch(key) or not _LABEL_VALUE.fullmatch(value):
            raise UsageError(f"not a BigQuery label: {key}={value}",
                             hint="keys: a lower-case letter, then up to 62 of a-z 0-9 _ -; values: up to 63 of those")
    if len(labels) > 62:
        raise UsageError(f"{len(labels)} labels: BigQuery allows 64 per job, logaudit sets 2")
    return labels


def _scalar(name: str, value: Any):
    from google.cloud.bigquery import ScalarQueryParameter

    if isinstance(value, bool):
        return ScalarQueryParameter(name, "BOOL", value)
    if isinstance(value, int):
        return ScalarQueryParameter(name, "INT64", value)
    if isinstance(value, float):
        return ScalarQueryParameter(name, "FLOAT64", value)
    if isinstance(value, str):
        return ScalarQueryParameter(name, "STRING", value)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"parameter @{name}: a datetime without a time zone (give it one, e.g. UTC)")
        return ScalarQueryParameter(name, "TIMESTAMP", value)
    raise TypeError(f"parameter @{name}: {type(value).__name__} is not a BigQuery parameter type")


def query_parameters(sql: str, params: Mapping[str, Any] | None) -> list:
    """The named parameters of `params` that `sql` uses (`@name`), typed: bool BOOL, int INT64,
    float FLOAT64, str STRING, aware datetime TIMESTAMP, a list of str (or empty) ARRAY<STRING>,
    a list of int ARRAY<INT64>. A None value is never sent (BigQuery needs a type): the SQL must
    not use it, or ValueError says which.
    """
    from google.cloud.bigquery import ArrayQueryParameter

    used = set(_PARAM.findall(sql))
    out = []
    for name, value in sorted((params or {}).items()):
        if name not in used:
            continue
        if value is None:
            raise ValueError(f"parameter @{name} is None: BigQuery needs a typed value; leave it out of the SQL")
        if isinstance(value, list | tuple):
            kind = "STRING" if all(isinstance(v, str) for v in value) else "INT64"
            if kind == "INT64" and not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
                raise TypeError(f"parameter @{name}: a list holds only str or only int")
            out.append(ArrayQueryParameter(name, kind, list(value)))
        else:
            out.append(_scalar(name, value))
    return out


def _server_message(err: Exception) -> str:
    """The first line of what the server said, without the client's request line or job id (and
    so never the SQL text)."""
    errors = getattr(err, "errors", None) or []
    text = (errors[0].get("message") if errors and isinstance(errors[0], dict) else None) or getattr(
        err, "message", None) or str(err)
    return text.strip().splitlines()[0][:300] if text.strip() else type(err).__name__


def _reason(err: Exception) -> str:
    errors = getattr(err, "errors", None) or []
    return str(errors[0].get("reason", "")) if errors and isinstance(errors[0], dict) else ""


def _object_name(text: str) -> str | None:
    """`p.d.t` of the table or dataset a server message names (`Table p:d.t`)."""
    found = re.search(r"\b(?:Table|Dataset) ([-\w.:]*\w)", text)
    return found.group(1).replace(":", ".") if found else None


def _job_id(err: Exception, job: Any) -> str | None:
    job = job or getattr(err, "query_job", None)
    if job is not None and getattr(job, "job_id", None):
        return job.job_id
    found = re.search(r"Job ID: (\S+)", getattr(err, "message", "") or "")
    return found.group(1) if found else None


def warehouse_error(err: Exception, *, purpose: str, sql: str | None, billing_project: str | None,
                    job: Any = None) -> WarehouseError:
    """One clear `WarehouseError` for what the client raised (never the SQL text in the message:
    it is on `.sql`)."""
    import google.auth.exceptions as auth_exc
    from google.api_core import exceptions as api_exc

    job_id = _job_id(err, job)
    said = _server_message(err)
    where = f"query {purpose}"
    if isinstance(err, auth_exc.DefaultCredentialsError):
        return WarehouseError("no Google Cloud credentials found (Application Default Credentials)",
                              hint=CREDENTIALS_HINT, sql=sql)
    if isinstance(err, auth_exc.RefreshError):
        return WarehouseError(f"{where}: the Google Cloud credentials were refused ({said})",
                              hint=CREDENTIALS_HINT, sql=sql)
    if isinstance(err, api_exc.Forbidden):
        return _forbidden(said, where, billing_project, sql, job_id)
    if isinstance(err, api_exc.NotFound):
        name = _object_name(said)
        location = re.search(r"in location (\S+)", said)
        return WarehouseError(
            f"dataset or table {name or '(unnamed)'} not found{f' in location {location.group(1)}' if location else ''}"
            f" ({where})", hint=LINK_HINT, sql=sql, job_id=job_id)
    if "bytesBilledLimitExceeded" in _reason(err) or "limit for bytes billed" in said:
        return WarehouseError(f"{where} would bill more than --max-bytes: {said}", hint=MAX_BYTES_HINT,
                              sql=sql, job_id=job_id)
    if isinstance(err, api_exc.RetryError):
        cause = _server_message(err.cause) if err.cause is not None else said
        return WarehouseError(f"{where}: BigQuery did not answer in time ({cause})",
                              hint="check the network (or the endpoint), then run again", sql=sql, job_id=job_id)
    code = getattr(err, "code", None)
    status = f"{int(code)} " if isinstance(code, int) else ""
    return WarehouseError(f"{where} failed{f' (job {job_id})' if job_id else ''}: {status}{said}",
                          sql=sql, job_id=job_id)


def _forbidden(said: str, where: str, billing_project: str | None, sql: str | None,
               job_id: str | None) -> WarehouseError:
    permission = re.search(r"\b(bigquery\.[A-Za-z]+\.[A-Za-z]+)\b", said)
    name = _object_name(said)
    parts = [f"{where}: permission denied"]
    if name:
        parts.append(f" on {name}")
    if permission:
        parts.append(f": missing {permission.group(1)}")
    if "not exist" in said:
        parts.append(" (or it does not exist)")
    hint = (f"the account needs {JOB_USER_ROLE} on the billing project {billing_project or '(the billing project)'} "
            f"and {DATA_VIEWER_ROLE} on the dataset (for a Log Analytics view: on its linked dataset)")
    return WarehouseError("".join(parts), hint=hint, sql=sql, job_id=job_id)


def _empty_table(schema: Sequence) -> pa.Table:
    """An empty Arrow table of a BigQuery schema, typed as the client types a result."""
    from google.cloud.bigquery.table import RowIterator

    rows = RowIterator(client=None, api_request=None, path=None, schema=list(schema),
                       first_page_response={"rows": [], "totalRows": "0"})
    return rows.to_arrow(create_bqstorage_client=False)


class _Progress:
    """One stderr line per running query: rewritten in place on a terminal, else a line at the
    start, every 15 s and at the end."""

    def __init__(self, enabled: bool, purpose: str) -> None:
        self.enabled, self.purpose = enabled, purpose
        self.start = time.monotonic()
        self.last = -1e9
        self.tty = enabled and sys.stderr.isatty()

    def _text(self, state: str, bytes_processed: int | None) -> str:
        done = "" if bytes_processed is None else f", {format_bytes(bytes_processed)} processed"
        return f"bigquery: {self.purpose}: {state} {time.monotonic() - self.start:.0f} s{done}"

    def update(self, bytes_processed: int | None) -> None:
        now = time.monotonic()
        if not self.enabled or (not self.tty and now - self.last < 15):
            return
        self.last = now
        text = self._text("running", bytes_processed)
        print(f"\r{text}\x1b[K" if self.tty else text, end="" if self.tty else "\n", file=sys.stderr, flush=True)

    def finish(self, bytes_processed: int | None) -> None:
        if self.enabled:
            text = self._text("done in", bytes_processed)
            print(f"\r{text}\x1b[K" if self.tty else text, file=sys.stderr, flush=True)


class BigQueryRunner:
    """Runs GoogleSQL in BigQuery (the `Runner` protocol, name "bigquery").

    Credentials are found as gcloud finds them: Application Default Credentials (`gcloud auth
    application-default login`, a service account's metadata server, GOOGLE_APPLICATION_CREDENTIALS).
    With an `endpoint` (or `LOGAUDIT_BIGQUERY_ENDPOINT`), an emulator's URL, the client is
    anonymous. Jobs run and bill in `billing_project`: given, else the ADC project (GOOGLE_CLOUD_PROJECT,
    `gcloud config set project`); with an endpoint it must be given (`for_source` takes the
    source's project). Credentials are never printed.

    Each `query` is dry-run first and recorded in `queries` with the bytes it would scan; above
    `max_bytes` it is refused (`WarehouseError`, nothing billed), else it runs with
    `maximum_bytes_billed=max_bytes`, labels `app=logaudit`, `analysis=<purpose>` and `labels`, and
    `timeout` seconds at most. With `dry_run=True` nothing runs (and nothing is refused): each
    query returns an empty table with the columns it would return, so every query of an analysis
    gets its bytes recorded. `progress=True` shows a line on stderr while a job runs. Results are
    read through the REST API, not the BigQuery Storage API: they are aggregates (small), and the
    Storage API would need one more permission (bigquery.readsessions.create).
    """

    name = "bigquery"

    def __init__(self, billing_project: str | None = None, *, endpoint: str | None = None,
                 max_bytes: int = DEFAULT_MAX_BYTES, dry_run: bool = False, labels: Mapping[str, str] | None = None,
                 progress: bool = False, client: Any = None, timeout: float = DEFAULT_TIMEOUT) -> None:
        if max_bytes <= 0:
            raise UsageError(f"--max-bytes {max_bytes}: must be more than 0")
        self.endpoint = endpoint if endpoint is not None else (os.environ.get(ENDPOINT_VARIABLE) or None)
        self.client = client if client is not None else _make_client(billing_project, self.endpoint)
        self.billing_project: str = billing_project or self.client.project
        self.max_bytes = max_bytes
        self.dry_run = dry_run
        self.labels = _job_labels(labels)
        self.progress = progress
        self.timeout = timeout
        self.queries: list[QueryRecord] = []

    @classmethod
    def for_source(cls, ref: str, billing_project: str | None = None, **kwargs: Any) -> BigQueryRunner:
        """A runner for the source `ref` (`PROJECT.DATASET[._AllLogs]`): billing in
        `billing_project`, else the ADC project (without an endpoint), else `ref`'s project.

        >>> BigQueryRunner.for_source("p.d._AllLogs", endpoint="http://127.0.0.1:9050").billing_project
        'p'
        """
        project = parse_ref(ref)[0]
        endpoint = kwargs.get("endpoint")
        if endpoint is None:
            endpoint = os.environ.get(ENDPOINT_VARIABLE) or None
        if billing_project is None and endpoint is None and kwargs.get("client") is None:
            try:
                return cls(None, **kwargs)
            except UsageError as err:
                if "no billing project" not in err.message:
                    raise
        return cls(billing_project or project, **kwargs)

    @property
    def bytes_processed(self) -> int:
        """The bytes the recorded queries scan (or would scan), as their dry runs said."""
        return sum(q.bytes_processed or 0 for q in self.queries)

    def _retry(self):
        from google.cloud.bigquery import DEFAULT_RETRY

        return DEFAULT_RETRY.with_deadline(min(API_TIMEOUT, self.timeout))

    def _config(self, qparams: list, purpose: str, *, dry_run: bool):
        from google.cloud.bigquery import QueryJobConfig

        if dry_run:
            return QueryJobConfig(dry_run=True, use_query_cache=False, query_parameters=qparams)
        return QueryJobConfig(query_parameters=qparams, maximum_bytes_billed=self.max_bytes,
                              labels={"app": "logaudit", "analysis": label_value(purpose), **self.labels},
                              job_timeout_ms=int(self.timeout * 1000))

    def query(self, sql: str, params: Mapping[str, Any] | None = None, *, purpose: str) -> pa.Table:
        """The result of one SELECT as Arrow (module docstring; `query_parameters` for the types)."""
        return self._query(sql, params, purpose=purpose, run=not self.dry_run)

    def _query(self, sql: str, params: Mapping[str, Any] | None, *, purpose: str, run: bool) -> pa.Table:
        qparams = query_parameters(sql, params)
        with _translated(self, purpose, sql):
            dry = self.client.query(sql, job_config=self._config(qparams, purpose, dry_run=True),
                                    retry=self._retry(), timeout=API_TIMEOUT, job_retry=None)
        scanned = int(dry.total_bytes_processed or 0)
        self.queries.append(QueryRecord(purpose, sql, tuple(p.name for p in qparams), scanned))
        if not run:
            return _empty_table(dry.schema or [])
        if scanned > self.max_bytes:
            raise WarehouseError(f"query {purpose} would process {format_bytes(scanned)}, more than --max-bytes "
                                 f"{format_bytes(self.max_bytes)} (about {estimate_usd(scanned):.2f} USD)",
                                 hint=MAX_BYTES_HINT, sql=sql)
        return self._run(sql, qparams, purpose)

    def _run(self, sql: str, qparams: list, purpose: str) -> pa.Table:
        shown = _Progress(self.progress, purpose)
        job = None
        with _translated(self, purpose, sql, lambda: job):
            job = self.client.query(sql, job_config=self._config(qparams, purpose, dry_run=False),
                                    retry=self._retry(), timeout=API_TIMEOUT, job_retry=None)
            polls = 0
            while not job.done(retry=self._retry(), timeout=API_TIMEOUT):
                if time.monotonic() - shown.start > self.timeout:
                    job.cancel(retry=self._retry(), timeout=API_TIMEOUT)
                    raise WarehouseError(f"query {purpose} did not finish within {self.timeout:.0f} s (job "
                                         f"{job.job_id}); it was cancelled", hint=MAX_BYTES_HINT.replace(
                                             "raise --max-bytes, or ", ""), sql=sql, job_id=job.job_id)
                shown.update(job.total_bytes_processed or job.estimated_bytes_processed)
                time.sleep(_POLL_SECONDS[min(polls, len(_POLL_SECONDS) - 1)])
                polls += 1
            rows = job.result(retry=self._retry(), timeout=API_TIMEOUT, job_retry=None)
            table = rows.to_arrow(create_bqstorage_client=False)
        shown.finish(job.total_bytes_processed)
        return table

    def close(self) -> None:
        self.client.close()


class _translated:
    """Turns what the client raises inside the block into one `WarehouseError`."""

    def __init__(self, runner: BigQueryRunner, purpose: str, sql: str | None, job=lambda: None) -> None:
        self.runner, self.purpose, self.sql, self.job = runner, purpose, sql, job

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, err, tb) -> bool:
        if err is None or isinstance(err, WarehouseError):
            return False
        import google.auth.exceptions as auth_exc
        from google.api_core import exceptions as api_exc

        if isinstance(err, api_exc.GoogleAPIError | auth_exc.GoogleAuthError):
            raise warehouse_error(err, purpose=self.purpose, sql=self.sql, job=self.job(),
                                  billing_project=self.runner.billing_project) from err
        return False


def _make_client(project: str | None, endpoint: str | None):
    import google.auth.exceptions as auth_exc
    from google.cloud import bigquery

    if endpoint:
        from google.auth.credentials import AnonymousCredentials

        if not project:
            raise UsageError(f"no billing project for the BigQuery endpoint {endpoint}",
                             hint="name the project the jobs run in")
        return bigquery.Client(project=project, credentials=AnonymousCredentials(),
                               client_options={"api_endpoint": endpoint})
    try:
        return bigquery.Client(project=project)
    except auth_exc.DefaultCredentialsError as err:
        raise WarehouseError("no Google Cloud credentials found (Application Default Credentials)",
                             hint=CREDENTIALS_HINT) from err
    except OSError as err:  # the client's "Project was not passed and could not be determined"
        raise UsageError("no billing project: none given and none in the environment",
                         hint="name the project BigQuery jobs run in (and bill to), or set one with "
                              "`gcloud config set project PROJECT`") from err


# ------------------------------------------------------------------------------ sources
def parse_ref(ref: str) -> tuple[str, str, str | None]:
    """(project, dataset, table or None) of `PROJECT.DATASET[.TABLE]`; UsageError otherwise.

    >>> parse_ref("my-project.logs._AllLogs")
    ('my-project', 'logs', '_AllLogs')
    """
    found = _REF.fullmatch(ref.strip().strip("`"))
    if not found:
        raise UsageError(f"not a BigQuery log dataset: {ref!r}",
                         hint="write PROJECT.DATASET._AllLogs (a Log Analytics linked dataset) or "
                              "PROJECT.DATASET (a log sink's dataset)")
    return found["project"], found["dataset"], found["table"]


def open_source(runner_or_client: Any, ref: str, *, dedupe: bool = True) -> WarehouseSource:
    """The source `ref` names: `PROJECT.DATASET._AllLogs` a Log Analytics view; `PROJECT.DATASET`
    a classic log sink's dataset, whose log tables (those with `logName` and `timestamp`) are
    listed with their field paths, date shards (`<prefix>_YYYYMMDD`) grouped into one wildcard
    table (`sink_tables`). `runner_or_client` is a `BigQueryRunner` (its metadata query is recorded
    in `queries`) or a `google.cloud.bigquery.Client`.
    """
    project, dataset, table = parse_ref(ref)
    if table is not None:
        if table != "_AllLogs":
            raise UsageError(f"{ref}: a table other than _AllLogs",
                             hint="give a Log Analytics view as PROJECT.DATASET._AllLogs, a log sink as its "
                                  "dataset PROJECT.DATASET")
        return WarehouseSource.all_logs(f"{project}.{dataset}.{table}", dedupe=dedupe)
    runner = runner_or_client if isinstance(runner_or_client, BigQueryRunner) else BigQueryRunner(
        client=runner_or_client)
    return WarehouseSource.sink(f"{project}.{dataset}", sink_tables(runner, f"{project}.{dataset}"), dedupe=dedupe)


def _sql_type(field: Any) -> str:
    """A schema field's GoogleSQL type as INFORMATION_SCHEMA spells it (`INT64`,
    `STRUCT<a STRING, b ARRAY<INT64>>`)."""
    legacy = {"INTEGER": "INT64", "FLOAT": "FLOAT64", "BOOLEAN": "BOOL", "RECORD": "STRUCT"}
    kind = legacy.get(field.field_type, field.field_type)
    if kind == "STRUCT":
        kind = "STRUCT<" + ", ".join(f"{f.name} {_sql_type(f)}" for f in field.fields) + ">"
    return f"ARRAY<{kind}>" if field.mode == "REPEATED" else kind


def field_paths(schema: Sequence) -> dict[str, str]:
    """{field path: GoogleSQL type} of a table schema, records and their fields alike, as
    `INFORMATION_SCHEMA.COLUMN_FIELD_PATHS` lists them."""
    paths: dict[str, str] = {}

    def walk(prefix: str, fields: Sequence) -> None:
        for f in fields:
            paths[prefix + f.name] = _sql_type(f)
            if f.fields:
                walk(f"{prefix}{f.name}.", f.fields)

    walk("", schema)
    return paths


#: (table name, a base table (not a view), created, {field path: type})
_Listed = tuple[str, bool, datetime | None, dict[str, str]]


def _column_field_paths(runner: BigQueryRunner, dataset: str) -> list[_Listed]:
    """Each table of `dataset`, from INFORMATION_SCHEMA in one query."""
    sql = (f"SELECT c.table_name, t.table_type, t.creation_time, c.field_path, c.data_type\n"
           f"FROM `{dataset}`.INFORMATION_SCHEMA.COLUMN_FIELD_PATHS AS c\n"
           f"JOIN `{dataset}`.INFORMATION_SCHEMA.TABLES AS t USING (table_name)")
    rows = runner._query(sql, None, purpose="sink tables", run=True).to_pylist()
    found: dict[str, _Listed] = {}
    for row in rows:
        name = row["table_name"]
        listed = found.setdefault(name, (name, row["table_type"] == "BASE TABLE", row["creation_time"], {}))
        listed[3][row["field_path"]] = row["data_type"]
    return list(found.values())


def _tables_api(runner: BigQueryRunner, dataset: str) -> list[_Listed]:
    """The same through the tables API: one call to list, one per base table."""
    client, retry = runner.client, runner._retry()
    found: list[_Listed] = []
    with _translated(runner, "sink tables", None):
        for item in client.list_tables(dataset, retry=retry, timeout=API_TIMEOUT):
            if item.table_type != "TABLE":
                found.append((item.table_id, False, None, {}))
                continue
            table = client.get_table(item.reference, retry=retry, timeout=API_TIMEOUT)
            found.append((table.table_id, True, table.created, field_paths(table.schema)))
    return found


def _is_log_table(paths: Mapping[str, str]) -> bool:
    names = {p.lower() for p in paths}
    return {"logname", "timestamp"} <= names


def sink_tables(runner: BigQueryRunner, dataset: str) -> list[SinkTable]:
    """The log tables of a sink dataset `project.dataset`, sorted by name: a table with `logName`
    and `timestamp`; date shards `<prefix>_YYYYMMDD` as one `SinkTable("<p.d.prefix_>",
    sharded=True)` whose columns are those of the most recently created shard (a wildcard
    table's schema in BigQuery is that shard's: a column only older shards hold cannot be
    referenced through it), other tables as they are.

    The field paths come from `INFORMATION_SCHEMA.COLUMN_FIELD_PATHS` (one query, whatever the
    number of tables); where that view does not exist (an emulator), from the tables API (one
    call per table).
    """
    from google.api_core.exceptions import BadRequest

    try:
        try:
            tables = _column_field_paths(runner, dataset)
        except WarehouseError as err:
            if not isinstance(err.__cause__, BadRequest):
                raise
            tables = _tables_api(runner, dataset)
    except WarehouseError as err:
        if "not found" in err.message or "permission denied" in err.message:
            raise WarehouseError(f"log sink dataset {dataset}: {err.message}", hint=err.hint, sql=err.sql,
                                 job_id=err.job_id) from err
        raise
    if not tables:
        raise WarehouseError(f"dataset {dataset} holds no tables", hint=LINK_HINT)
    groups: dict[str, list[_Listed]] = {}
    for listed in tables:
        shard = _SHARD.fullmatch(listed[0])
        if listed[1]:
            groups.setdefault(shard["prefix"] + "*" if shard else listed[0], []).append(listed)
    out = []
    for key, members in groups.items():
        newest = max(members, key=lambda m: (m[2] is not None, m[2] or _EPOCH, m[0]))
        if _is_log_table(newest[3]):
            out.append(SinkTable(f"{dataset}.{key.rstrip('*')}", dict(newest[3]), sharded=key.endswith("*")))
    if not out:
        views = " (it holds _AllLogs: give PROJECT.DATASET._AllLogs)" if any(t[0] == "_AllLogs" for t in tables) else ""
        raise WarehouseError(f"dataset {dataset} holds no log tables (tables with logName and timestamp){views}",
                             hint=LINK_HINT)
    return sorted(out, key=lambda t: t.name)


__all__ = ["API_TIMEOUT", "DEFAULT_MAX_BYTES", "DEFAULT_TIMEOUT", "ENDPOINT_VARIABLE", "PRICE_PER_TIB_USD",
           "BigQueryRunner", "estimate_usd", "field_paths", "format_bytes", "label_value", "open_source",
           "parse_ref", "query_parameters", "sink_tables", "warehouse_error"]
