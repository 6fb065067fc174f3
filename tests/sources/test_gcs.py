"""`logaudit ingest gs://...`: Cloud Storage sink exports through the real google-cloud-storage
client, against a local storage emulator (gcp-storage-emulator) on 127.0.0.1."""

from __future__ import annotations

import gzip
import json
import socket
from datetime import UTC, datetime

import orjson
import pytest
from fake_logging import make_entries, ts_ns

from logaudit.core.errors import SourceError, UsageError
from logaudit.sources import gcs
from logaudit.store.store import Store

BUCKET = "audit-sink"


def sink_name(entry: dict) -> str:
    log_id = entry["logName"].split("/logs/")[1].replace("%2F", "/")
    ts = entry["timestamp"]
    return f"{log_id}/{ts[0:4]}/{ts[5:7]}/{ts[8:10]}/{ts[11:13]}:00:00_{ts[11:13]}:59:59_S0.json"


def group_by_object(entries: list[dict]) -> dict[str, list[dict]]:
    objects: dict[str, list[dict]] = {}
    for e in entries:
        objects.setdefault(sink_name(e), []).append(e)
    return objects


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def emulator():
    from gcp_storage_emulator.server import create_server

    port = free_port()
    server = create_server("127.0.0.1", port, in_memory=True)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture(scope="module")
def sink(emulator, reference_entries):
    """A bucket in sink layout: reference samples (2026-11-28 09h-10h) plus stdout over three days."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    client = storage.Client(project="test", credentials=AnonymousCredentials(), client_options={"api_endpoint": emulator})
    bucket = client.create_bucket(BUCKET)
    spread = make_entries(24, start_ns=ts_ns("2026-11-27T00:10:00Z"), step_ns=3 * 3600 * 10**9, prefix="h")  # 3-hourly, 3 days
    entries = reference_entries + spread
    objects = group_by_object(entries)
    for name, group in objects.items():
        data = b"".join(orjson.dumps(e) + b"\n" for e in group)
        if name.startswith("run.googleapis.com/stdout/2026/11/29/06:"):
            data = gzip.compress(data)  # gzip by content, not by name
        bucket.blob(name).upload_from_string(data, content_type="application/json")
    bucket.blob("README.txt").upload_from_string(b"not a log")
    bucket.blob("manual/extra.jsonl").upload_from_string(orjson.dumps(reference_entries[0]) + b"\n{broken\n")
    return {"entries": entries, "objects": objects, "spread": spread, "reference": reference_entries, "client": client}


def keys(entries) -> list[tuple]:
    return sorted((e["logName"], e["insertId"], ts_ns(e["timestamp"])) for e in entries)


def stored(store_dir) -> list[tuple]:
    t = Store(store_dir).read_entries()
    return sorted(zip(t["log_name"].to_pylist(), t["insert_id"].to_pylist(), t["timestamp"].cast("int64").to_pylist(), strict=True))


@pytest.mark.slow
def test_ingest_a_whole_sink_bucket(cli, sink, emulator, store_dir):
    result = cli("ingest", f"gs://{BUCKET}", "--storage-endpoint", emulator, "--store", store_dir, "-q")
    assert result.exit_code == 7  # the broken line in manual/extra.jsonl is rejected, the rest stored
    got = stored(store_dir)
    assert got == keys(sink["entries"])
    lines = result.stdout.splitlines()
    expected_sources = sorted([*sink["objects"], "manual/extra.jsonl"])
    assert [line.split(": ")[0] for line in lines[:-1]] == [
        f"gs://{BUCKET}/{name}" for name in expected_sources]
    assert lines[expected_sources.index("manual/extra.jsonl")] == (
        f"gs://{BUCKET}/manual/extra.jsonl: 2 read, 1 new, 0 duplicate, 1 rejected")
    assert result.stderr.startswith(f"rejected gs://{BUCKET}/manual/extra.jsonl:2: ")
    # reading the same bucket again adds nothing
    again = cli("ingest", f"gs://{BUCKET}/run.googleapis.com/", "--storage-endpoint", emulator, "--store", store_dir,
                "--format", "json")
    assert again.exit_code == 0
    report = orjson.loads(again.stdout)
    assert (report["new_rows"], report["duplicates"], report["rejected"]) == (0, 28, 0)


@pytest.mark.timezone
def test_since_until_limit_the_hours_read(cli, sink, emulator, store_dir):
    result = cli("ingest", f"gs://{BUCKET}/run.googleapis.com/stdout/", "--since", "2026-11-28T09:30:00Z",
                 "--until", "2026-11-28T12:00:00Z", "--storage-endpoint", emulator, "--store", store_dir, "-q")
    assert result.exit_code == 0, result.output
    names = [line.split(": ")[0] for line in result.stdout.splitlines()[:-1]]
    assert names == [f"gs://{BUCKET}/run.googleapis.com/stdout/2026/11/28/{h}:00:00_{h}:59:59_S0.json" for h in ("09", "10")]
    expected = [e for e in sink["entries"] if sink_name(e) in {n.split(f"gs://{BUCKET}/")[1] for n in names}]
    assert stored(store_dir) == keys(expected)
    assert len(expected) == 1 + 2  # the 09:10 entry (its hour overlaps), the two stdout samples at 10h


@pytest.mark.timezone
def test_the_walk_lists_only_folders_in_the_window(sink):
    class Spy:
        def __init__(self, client):
            self.client, self.listed = client, []

        def list_blobs(self, bucket, prefix=None, delimiter=None):
            self.listed.append(prefix or "")
            return self.client.list_blobs(bucket, prefix=prefix, delimiter=delimiter)

    spy = Spy(sink["client"])
    since, until = datetime(2026, 11, 29, 2, 30, tzinfo=UTC), datetime(2026, 11, 29, 6, 30, tzinfo=UTC)
    found = gcs.list_objects(spy, f"gs://{BUCKET}/", since=since, until=until)
    assert [o.name for o in found] == [
        "manual/extra.jsonl",
        "run.googleapis.com/stdout/2026/11/29/03:00:00_03:59:59_S0.json",
        "run.googleapis.com/stdout/2026/11/29/06:00:00_06:59:59_S0.json",
    ]
    assert sorted(spy.listed) == sorted([
        "", "cloudaudit.googleapis.com/", "cloudaudit.googleapis.com/activity/",
        "cloudaudit.googleapis.com/activity/2026/", "cloudaudit.googleapis.com/activity/2026/11/",
        "manual/", "run.googleapis.com/",
        "run.googleapis.com/requests/", "run.googleapis.com/requests/2026/", "run.googleapis.com/requests/2026/11/",
        "run.googleapis.com/stderr/", "run.googleapis.com/stderr/2026/", "run.googleapis.com/stderr/2026/11/",
        "run.googleapis.com/stdout/", "run.googleapis.com/stdout/2026/", "run.googleapis.com/stdout/2026/11/",
        "run.googleapis.com/stdout/2026/11/29/",
    ])


def test_gzipped_objects_and_the_emulator_variable(cli, sink, emulator, store_dir, monkeypatch):
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", emulator)
    monkeypatch.delenv("LOGAUDIT_STORAGE_ENDPOINT", raising=False)
    result = cli("ingest", f"gs://{BUCKET}/run.googleapis.com/stdout/2026/11/29/06:", "--store", store_dir, "-q")
    assert result.exit_code == 0, result.output
    expected = [e for e in sink["spread"] if e["timestamp"].startswith("2026-11-29T06:")]
    assert len(expected) == 1
    assert stored(store_dir) == keys(expected)


def test_local_files_and_gs_uris_in_one_ingest_share_dedup(cli, sink, emulator, store_dir, tmp_path):
    local = tmp_path / "dump.jsonl"
    local.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in sink["reference"]))
    result = cli("ingest", local, f"gs://{BUCKET}/cloudaudit.googleapis.com/", "--storage-endpoint", emulator,
                 "--store", store_dir, "--format", "json")
    assert result.exit_code == 0, result.output
    report = orjson.loads(result.stdout)
    assert [(s["source"], s["new_rows"], s["duplicates"]) for s in report["sources"]] == [
        (str(local), 6, 0),
        (f"gs://{BUCKET}/cloudaudit.googleapis.com/activity/2026/11/28/09:00:00_09:59:59_S0.json", 0, 2),
    ]


def test_errors(cli, sink, emulator, store_dir):
    missing = cli("ingest", "gs://no-such-bucket/logs/", "--storage-endpoint", emulator, "--store", store_dir, "-q")
    assert missing.exit_code == 5
    assert missing.stderr == ("error: gs://no-such-bucket/logs/: not found (404)\n"
                              "  hint: check the bucket name and prefix: gs://BUCKET/PREFIX\n")
    empty = cli("ingest", f"gs://{BUCKET}/run.googleapis.com/", "--since", "2027-01-01", "--storage-endpoint", emulator,
                "--store", store_dir, "-q")
    assert empty.exit_code == 3
    assert empty.stderr.splitlines()[0] == f"error: gs://{BUCKET}/run.googleapis.com/: no log files in the --since/--until window"
    local_only = cli("ingest", "somewhere.jsonl", "--since", "6h", "--store", store_dir)
    assert local_only.exit_code == 64  # bad usage
    assert local_only.stderr == ("error: --since/--until select the hourly files of gs:// sink exports; "
                                 "local paths are read whole\n")
    bad = cli("ingest", "gs://", "--storage-endpoint", emulator, "--store", store_dir)
    assert bad.exit_code == 64
    assert not list(Store(store_dir).root.glob("manifest/*.json"))


@pytest.mark.timezone
def test_names_and_windows():
    assert gcs.parse_gs_uri("gs://b-1/x/y") == ("b-1", "x/y")
    assert gcs.parse_gs_uri("gs://bucket") == ("bucket", "")
    with pytest.raises(UsageError):
        gcs.parse_gs_uri("gs://UPPER/x")
    assert gcs.hour_of("a/b/2026/11/28/23:00:00_23:59:59_A3.json") == datetime(2026, 11, 28, 23, tzinfo=UTC)
    assert gcs.hour_of("a/2026/11/28/23:00:00_22:59:59_S0.json") is None
    assert gcs.hour_of("a/2026/02/30/01:00:00_01:59:59_S0.json") is None
    since, until = datetime(2026, 11, 28, 9, 30, tzinfo=UTC), datetime(2026, 11, 28, 11, tzinfo=UTC)
    name = "run.googleapis.com/stdout/2026/11/28/{h}:00:00_{h}:59:59_S0.json"
    assert [h for h in ("08", "09", "10", "11") if gcs.wanted(name.format(h=h), since, until)] == ["09", "10"]
    assert gcs.wanted("other/dump.json.gz", since, until)
    assert not gcs.wanted("other/notes.txt", None, None)
    assert not gcs.wanted("other/.hidden.json", None, None)


def test_damaged_object_is_read_up_to_the_damage_and_the_others_still_are(emulator, store_dir):
    """A truncated .gz in the bucket: what it holds is ingested, it gets an error note, the next
    object is read, and the counts stay exact."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    client = storage.Client(project="test", credentials=AnonymousCredentials(), client_options={"api_endpoint": emulator})
    bucket = client.create_bucket("damaged-sink")
    first = make_entries(400, prefix="cut")
    packed = gzip.compress(b"".join(orjson.dumps(e) + b"\n" for e in first))
    bucket.blob("a/cut.jsonl.gz").upload_from_string(packed[: len(packed) // 2])
    bucket.blob("b/good.jsonl").upload_from_string(b"".join(orjson.dumps(e) + b"\n" for e in make_entries(3, prefix="ok")))
    objects, sources = gcs.gcs_sources(["gs://damaged-sink/"], client=client)
    report = Store(store_dir).ingest_batches(sources)
    cut, good = report.sources
    assert cut.source == "gs://damaged-sink/a/cut.jsonl.gz" and cut.failed
    assert 0 < cut.new_rows < 400 and cut.rejected == 1 and cut.read == cut.new_rows + 1
    assert cut.notes[0]["message"].startswith(f"the gzip data ends early at compressed byte {len(packed) // 2}")
    assert (good.read, good.new_rows, good.failed) == (3, 3, False)
    assert report.files_failed == 1
    assert sorted(Store(store_dir).read_entries()["insert_id"].to_pylist()) == sorted(
        [e["insertId"] for e in first[: cut.new_rows]] + ["ok00000000", "ok00000001", "ok00000002"])


def test_the_library_ingests_local_files_and_gs_uris_in_one_call(sink, emulator, tmp_path):
    """`logaudit.ingest` is what `logaudit ingest` runs: the same sources, counts and rows."""
    import logaudit

    local = tmp_path / "dump.jsonl"
    local.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in sink["reference"]))
    store = tmp_path / "store"
    report = logaudit.ingest([local, f"gs://{BUCKET}/cloudaudit.googleapis.com/"], store, storage_endpoint=emulator)
    assert [(s.source, s.new_rows, s.duplicates) for s in report.sources] == [
        (str(local), 6, 0),
        (f"gs://{BUCKET}/cloudaudit.googleapis.com/activity/2026/11/28/09:00:00_09:59:59_S0.json", 0, 2),
    ]
    assert stored(store) == keys(sink["reference"])
    with pytest.raises(UsageError, match="^--since/--until select the hourly files of gs:// sink exports"):
        logaudit.ingest([local], store, since="6h")
    missing = tmp_path / "never-made"
    with pytest.raises(logaudit.SourceError, match="no-such-bucket"):
        logaudit.ingest(["gs://no-such-bucket/logs/"], missing, storage_endpoint=emulator)
    assert not missing.exists()  # the bucket is listed before the store is opened
# ---------------------------------------------------------------------------- one Storage client helper
def _service_account_key(path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    path.write_text(json.dumps({"type": "service_account", "project_id": "p", "private_key_id": "k1",
                                "private_key": pem, "client_email": "sa@p.iam.gserviceaccount.com",
                                "client_id": "1", "token_uri": "https://oauth2.googleapis.com/token"}))
    return path


def test_reading_and_export_clients_come_from_one_helper(tmp_path, monkeypatch):
    from google.auth.credentials import AnonymousCredentials

    from logaudit.period_export import WRITE_SCOPES, storage_client
    from logaudit.sources.gcs import READ_SCOPES, make_client

    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    monkeypatch.delenv("LOGAUDIT_STORAGE_ENDPOINT", raising=False)
    key = _service_account_key(tmp_path / "key.json")
    assert tuple(make_client(credentials_file=key)._credentials.scopes) == READ_SCOPES
    assert tuple(storage_client(credentials_file=key)._credentials.scopes) == WRITE_SCOPES
    for make in (make_client, storage_client):
        client = make(endpoint="http://127.0.0.1:9/")
        assert isinstance(client._credentials, AnonymousCredentials)
        assert client._connection.API_BASE_URL == "http://127.0.0.1:9"
        with pytest.raises(UsageError, match=r"--storage-endpoint '127.0.0.1:9': expected a URL starting with http"):
            make(endpoint="127.0.0.1:9")
        with pytest.raises(UsageError, match=r"--credentials .*missing.json: no such file"):
            make(credentials_file=tmp_path / "missing.json")
        (tmp_path / "bad.json").write_text("{}")
        with pytest.raises(SourceError, match=r"bad.json: not a usable service-account key") as err:
            make(credentials_file=tmp_path / "bad.json")
        assert err.value.exit_code == 5
