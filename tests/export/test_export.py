"""`logaudit export`: one period per service, replaced atomically on re-runs, locked against
overlapping runs, intact after a killed run, redacted; to a directory and to gs:// (a storage
emulator on 127.0.0.1 that enforces generation preconditions like Cloud Storage does)."""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import in_namespace, ingest_bundled_sample, needs_mounts
from fake_logging import FakeLogging, make_entries, ts_ns
from hypothesis import given
from hypothesis import strategies as st

from logaudit import period_export as ex
from logaudit.analysis.audit import Audit
from logaudit.core.errors import LockedError, SourceError, UsageError
from logaudit.core.redact import Redactor
from logaudit.store.schema import ENTRY_SCHEMA

REPO = Path(__file__).resolve().parents[2]
SINCE, UNTIL = "2025-09-09T20:00:00Z", "2025-09-10T04:00:00Z"
PERIOD = "2025-09-09T2000Z_2025-09-10T0400Z"
BACKEND = "netra-backend-staging"
FILES = ["_EXPORT.json", "charts/error-rate-netra-backend-staging.png", "charts/latency.png",
         "charts/patterns-by-revision.png", "charts/status-codes-netra-backend-staging.png", "compare.json",
         "entries.parquet", "matches.parquet", "report.html", "report.md", "summary.json"]
HAS_COMPARE = importlib.util.find_spec("logaudit.analysis.judge") is not None
if not HAS_COMPARE:
    FILES.remove("compare.json")


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    """The bundled sample in a store, and the generator's truth (its planted secrets)."""
    store, truth = ingest_bundled_sample(tmp_path_factory.mktemp("export"))
    Audit(store).summary()  # classify once, so subprocesses start from a warm cache
    return store, truth


@pytest.fixture(scope="module")
def exported(sample, tmp_path_factory):
    """One export of the backend's period, and what it returned."""
    store, _ = sample
    dest = tmp_path_factory.mktemp("dest")
    result = ex.export(store, dest, since=SINCE, until=UNTIL, service=BACKEND)
    return dest, result


def tree(root: Path) -> dict[str, str]:
    """relative path -> sha256 of every file under root (hidden files included)."""
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def copy_of(exported, dest: Path) -> Path:
    """A copy of the module's export (as a previous run would have left it) in `dest`."""
    shutil.copytree(exported[0], dest, dirs_exist_ok=True)
    return dest


def run_cli(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "logaudit", "export", *map(str, args)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


# ------------------------------------------------------------------------------ what is exported
@pytest.mark.slow
@pytest.mark.timezone
def test_layout_manifest_and_contents(exported, sample):
    store, _ = sample
    dest, result = exported
    period_dir = dest / BACKEND / PERIOD
    assert sorted(p.name for p in dest.iterdir()) == [".logaudit-export.lock", BACKEND]
    assert sorted(p.name for p in (dest / BACKEND).iterdir()) == [PERIOD]
    assert sorted(tree(period_dir)) == FILES
    (p,) = result.periods
    assert (p.service, p.period, p.location, p.replaced) == (BACKEND, PERIOD, str(period_dir), False)
    assert (result.since, result.until, result.period) == (SINCE, UNTIL, PERIOD)

    manifest = ex.read_manifest(dest, BACKEND, PERIOD)
    assert manifest == json.loads((period_dir / "_EXPORT.json").read_text())
    assert manifest["complete"] is True and manifest["format"] == "logaudit-export/1"
    assert manifest["window"] == {"since": SINCE, "until": UNTIL}
    digests = tree(period_dir)
    assert {f["path"]: f["sha256"] for f in manifest["files"]} == {k: v for k, v in digests.items() if k != "_EXPORT.json"}
    assert all(f["bytes"] == (period_dir / f["path"]).stat().st_size for f in manifest["files"])
    assert ex.list_exports(dest) == [(BACKEND, PERIOD)]

    summary = json.loads((period_dir / "summary.json").read_text())
    audit = Audit(store)
    assert summary == json.loads(json.dumps(audit.summary(since=SINCE, until=UNTIL, service=BACKEND)))
    table = pq.read_table(period_dir / "entries.parquet")
    assert table.schema == ENTRY_SCHEMA
    assert table.num_rows == summary["entries"] == manifest["entries"] == p.entries == 4242
    stored = store.read_entries()
    want = stored.filter(pa.compute.equal(stored["service"], BACKEND))
    assert sorted(table["insert_id"].to_pylist()) == sorted(want["insert_id"].to_pylist())
    assert table["timestamp"].to_pylist() == sorted(table["timestamp"].to_pylist())
    matches = pq.read_table(period_dir / "matches.parquet")
    assert matches.num_rows == sum(pat["count"] for pat in summary["patterns"])

    if HAS_COMPARE:  # the compare JSON is the comparison of this period's revisions
        from logaudit.analysis.judge import compare

        doc = json.loads((period_dir / "compare.json").read_text())
        want_doc = compare(audit, service=BACKEND, since=SINCE, until=UNTIL).to_dict()
        assert {k: doc[k] for k in ("service", "baseline", "canary", "verdict", "score")} == \
            {k: want_doc[k] for k in ("service", "baseline", "canary", "verdict", "score")}
        assert manifest["compare"] == {"status": "written", "verdict": doc["verdict"], "file": "compare.json"}
    else:
        assert manifest["compare"]["status"] == "unavailable"


@pytest.mark.slow
def test_no_secret_leaves_in_any_exported_file(exported, sample):
    store, truth = sample
    dest, _ = exported
    period_dir = dest / BACKEND / PERIOD
    raw = store.read_entries()
    raw_text = " ".join(str(v) for c in ("message", "payload_json", "payload_text", "http_url")
                        for v in raw[c].to_pylist() if v)
    planted = [s for s in truth.secrets if s in raw_text]
    assert len(planted) == len(truth.secrets) == 8  # really in the store, in full
    table = pq.read_table(period_dir / "entries.parquet")
    redacted_columns = [f.name for f in ENTRY_SCHEMA if pa.types.is_string(f.type) and f.name not in ex.UNREDACTED_COLUMNS]
    assert {"message", "payload_json", "payload_text", "http_url", "labels_json"} <= set(redacted_columns)
    for name in table.column_names:
        if pa.types.is_string(table.schema.field(name).type):
            text = "\n".join(v for v in table[name].to_pylist() if v)
            for secret in truth.secrets:
                assert secret not in text, (name, secret[:10])
    messages = [m for m in table["message"].to_pylist() if m and "<redacted" in m]
    assert len(messages) >= 6
    for path in period_dir.rglob("*"):
        if path.is_file() and path.suffix != ".png":
            data = path.read_bytes()
            for secret in truth.secrets:
                assert secret.encode() not in data, (path.name, secret[:10])
    # the same rules as everywhere: a message is redacted exactly as Redactor() does it
    by_id = {i: m for i, m in zip(raw["insert_id"].to_pylist(), raw["message"].to_pylist(), strict=True)}
    for i, m in zip(table["insert_id"].to_pylist(), table["message"].to_pylist(), strict=True):
        assert m == Redactor().redact(by_id[i])


# ------------------------------------------------------------------------------ idempotent and atomic
@pytest.mark.slow
def test_rerun_replaces_the_period_and_leaves_one_copy(sample, exported, tmp_path):
    store, _ = sample
    first = exported[1]
    copy_of(exported, tmp_path)
    before = ex.read_manifest(tmp_path, BACKEND, PERIOD)
    second = ex.export(store, tmp_path, since=SINCE, until=UNTIL, service=BACKEND)
    after = ex.read_manifest(tmp_path, BACKEND, PERIOD)
    assert (first.periods[0].replaced, second.periods[0].replaced) == (False, True)
    assert before["export_id"] != after["export_id"] == second.periods[0].export_id
    assert sorted(p.name for p in (tmp_path / BACKEND).iterdir()) == [PERIOD]  # no staging, no second copy
    assert ex.list_exports(tmp_path) == [(BACKEND, PERIOD)]
    assert pq.read_table(tmp_path / BACKEND / PERIOD / "entries.parquet").num_rows == 4242
    assert {f["path"]: f["sha256"] for f in after["files"]}["entries.parquet"] == \
        {f["path"]: f["sha256"] for f in before["files"]}["entries.parquet"]  # same data, same bytes


def _kill_midway(sample, dest: Path, sig: int) -> tuple[subprocess.Popen, str, str]:
    """Start an export of the period, wait until it is writing its staging copy, send `sig`."""
    store, _ = sample
    for _attempt in range(3):
        proc = run_cli("--store", store.root, "--since", SINCE, "--until", UNTIL, "--service", BACKEND, "--out", dest)
        deadline = time.monotonic() + 60
        staged = None
        while time.monotonic() < deadline and proc.poll() is None:
            staged = next((p for p in (dest / BACKEND).glob(".staging-*") if (p / "entries.parquet").exists()), None)
            if staged is not None:
                break
            time.sleep(0.005)
        if staged is not None and proc.poll() is None:
            proc.send_signal(sig)
            out, err = proc.communicate(timeout=60)
            return proc, out, err
        proc.communicate(timeout=60)  # finished before we caught it mid-way: try again
    pytest.fail("could not catch an export mid-way")


@pytest.mark.slow
def test_a_killed_run_leaves_the_previous_export_intact(sample, exported, tmp_path):
    store, _ = sample
    copy_of(exported, tmp_path)
    period_dir = tmp_path / BACKEND / PERIOD
    before = tree(period_dir)
    proc, _, _ = _kill_midway(sample, tmp_path, signal.SIGKILL)
    assert proc.returncode == -signal.SIGKILL
    assert tree(period_dir) == before  # byte for byte
    leftovers = [p.name for p in (tmp_path / BACKEND).iterdir() if p.name != PERIOD]
    assert len(leftovers) == 1 and leftovers[0].startswith(f".staging-{PERIOD}-")  # killed while staging
    assert ex.read_manifest(tmp_path, BACKEND, PERIOD)["export_id"] == json.loads(
        (period_dir / "_EXPORT.json").read_text())["export_id"]
    # the next run cleans up and replaces the period
    again = ex.export(store, tmp_path, since=SINCE, until=UNTIL, service=BACKEND)
    assert again.periods[0].replaced
    assert sorted(p.name for p in (tmp_path / BACKEND).iterdir()) == [PERIOD]


@pytest.mark.slow
def test_sigterm_cleans_up_and_says_so(sample, exported, tmp_path):
    copy_of(exported, tmp_path)
    before = tree(tmp_path / BACKEND / PERIOD)
    proc, out, err = _kill_midway(sample, tmp_path, signal.SIGTERM)
    assert proc.returncode == 130
    assert err.splitlines()[-1] == "error: export interrupted; the previous export of the period is unchanged"
    assert tree(tmp_path / BACKEND / PERIOD) == before
    assert sorted(p.name for p in (tmp_path / BACKEND).iterdir()) == [PERIOD]  # staging removed on the way out


@pytest.mark.slow
def test_two_concurrent_runs_one_wins(sample, tmp_path):
    store, _ = sample
    args = ("--store", store.root, "--since", SINCE, "--until", UNTIL, "--service", BACKEND, "--out", tmp_path)
    first = run_cli(*args)
    lock = tmp_path / ".logaudit-export.lock"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # the first run holds the lock once it wrote its pid there
        with contextlib.suppress(FileNotFoundError, orjson.JSONDecodeError, KeyError):
            if orjson.loads(lock.read_bytes())["pid"] == first.pid:
                break
        time.sleep(0.005)
    second = run_cli(*args)
    out2, err2 = second.communicate(timeout=60)
    out1, err1 = first.communicate(timeout=120)
    assert first.returncode == 0, err1
    assert second.returncode == 6
    assert out2 == ""
    line = err2.strip()
    assert "\n" not in line
    assert line.startswith(f"error: export failed: {tmp_path}: another logaudit export to this destination is running "
                           f"(pid {first.pid} on {socket.gethostname()}, started ")
    assert line.endswith("; this run did nothing")
    assert out1.startswith(f"exported {BACKEND} {PERIOD}: 4,242 entries")
    assert ex.list_exports(tmp_path) == [(BACKEND, PERIOD)]
    assert sorted(p.name for p in (tmp_path / BACKEND).iterdir()) == [PERIOD]


@pytest.mark.slow
def test_failures_are_one_line_and_non_zero(sample, tmp_path, cli):
    store, _ = sample
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    cases = [
        (["--out", blocker, "--store", store.root], 3, f"error: export failed: --out {blocker}: cannot create the directory"),
        (["--out", tmp_path / "d", "--store", tmp_path / "no-store"], 3, "error: export failed: "),
        (["--out", tmp_path / "d", "--store", store.root, "--since", "yesterday-ish"], 64,
         "error: export failed: --since 'yesterday-ish': not a time"),
        (["--out", "s3://bucket/x", "--store", store.root], 64, "error: export failed: --out s3://bucket/x: only local"),
        (["--out", tmp_path / "d", "--store", store.root, "--service", "../etc"], 64,
         "error: export failed: --service '../etc': not a Cloud Run service name"),
    ]
    for args, code, start in cases:
        result = cli("export", "--since", SINCE, "--until", UNTIL, *args) if "--since" not in args else \
            cli("export", *args)
        assert result.exit_code == code, (args, result.output)
        assert result.stdout == ""
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert result.stderr.startswith(start), result.stderr
    assert not (tmp_path / "d").exists() or not any((tmp_path / "d").glob("*/*"))


@pytest.mark.timezone
def test_period_naming_and_alignment():
    now = datetime(2026, 11, 28, 14, 37, 12, 345678, tzinfo=UTC)
    assert ex.export_window("24h", now=now) == (datetime(2026, 11, 27, 14, tzinfo=UTC), datetime(2026, 11, 28, 14, tzinfo=UTC))
    assert ex.export_window("6h", now=now, align="15m") == (datetime(2026, 11, 28, 8, 30, tzinfo=UTC),
                                                           datetime(2026, 11, 28, 14, 30, tzinfo=UTC))
    lo, hi = ex.export_window("1h", now=now, align="none")
    assert (lo, hi) == (datetime(2026, 11, 28, 13, 37, 12, 345678, tzinfo=UTC), now)
    assert ex.period_name(lo, hi) == "2026-11-28T133712.345678Z_2026-11-28T143712.345678Z"
    assert ex.period_name(*ex.export_window(SINCE, UNTIL, now=now)) == PERIOD
    assert ex.period_name(datetime(2026, 1, 1, 0, 0, 5, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)) == \
        "2026-01-01T000005Z_2026-01-02T0000Z"
    assert ex.export_window("2025-09-09T20:00:00+02:00", "2025-09-10T00:00:00Z", now=now)[0] == \
        datetime(2025, 9, 9, 18, tzinfo=UTC)
    with pytest.raises(UsageError, match="empty period"):  # the aligned end is before an explicit start
        ex.export_window("2026-11-28T14:05:00Z", now=datetime(2026, 11, 28, 14, 10, tzinfo=UTC))
    with pytest.raises(UsageError, match="--since is required"):
        ex.export_window(None, now=now)


def test_rename_exchange_swaps_two_directories(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "x").write_text("new")
    (b / "x").write_text("old")
    if not ex.exchange_paths(a, b):
        pytest.skip("renameat2(RENAME_EXCHANGE) is not supported here; the export falls back to two renames")
    assert ((a / "x").read_text(), (b / "x").read_text()) == ("old", "new")


def test_recovery_after_a_kill_between_the_fallback_renames(tmp_path):
    service_dir = tmp_path / BACKEND
    old = service_dir / f".replaced-{PERIOD}-20261128T120000Z-0123abcd"
    old.mkdir(parents=True)
    (old / "_EXPORT.json").write_text("{}")
    (service_dir / f".staging-{PERIOD}-20261128T120001Z-89abcdef").mkdir()
    ex._LocalTarget(tmp_path).recover()
    assert sorted(p.name for p in service_dir.iterdir()) == [PERIOD]
    assert (service_dir / PERIOD / "_EXPORT.json").read_text() == "{}"


# ------------------------------------------------------------------------------ pulling first
@pytest.mark.slow
@pytest.mark.timezone
def test_export_with_a_project_pulls_the_period_first(tmp_path, cli):
    entries = (make_entries(60, service="hello", revision="hello-00001-abc")
               + make_entries(60, service="hello", revision="hello-00002-def", prefix="f",
                              start_ns=ts_ns("2026-11-28T10:30:00Z"), severity_cycle=("INFO", "ERROR")))
    server = FakeLogging(entries, project="my-project").start()
    try:
        args = ("export", "--project", "my-project", "--service", "hello", "--since", "2026-11-28T10:00:00Z",
                "--until", "2026-11-28T11:00:00Z", "--logging-endpoint", server.url, "--max-requests-per-minute", "6000",
                "--store", tmp_path / "store", "--out", tmp_path / "dest", "--format", "json")
        first = cli(*args)
        assert first.exit_code == 0, first.output
        report = json.loads(first.stdout)
        assert report["pull"]["new_rows"] == 120 and report["pull"]["status"] == "complete"
        assert 'resource.labels.service_name="hello"' in report["pull"]["query_filter"]
        (period,) = report["periods"]
        assert (period["service"], period["entries"], period["period"]) == ("hello", 120, "2026-11-28T1000Z_2026-11-28T1100Z")
        requests = len(server.requests)
        again = cli(*args)
        assert again.exit_code == 0, again.output
        report = json.loads(again.stdout)
        assert report["pull"]["new_rows"] == 0  # incremental: nothing new, nothing stored twice
        assert len(server.requests) - requests <= 1
        assert report["periods"][0]["replaced"] is True
        assert pq.read_table(tmp_path / "dest" / "hello" / period["period"] / "entries.parquet").num_rows == 120
    finally:
        server.stop()


@pytest.mark.timezone
def test_nothing_to_export(sample, tmp_path, cli):
    store, _ = sample
    empty = cli("export", "--store", store.root, "--since", "2030-01-01T00:00:00Z", "--until", "2030-01-02T00:00:00Z",
                "--out", tmp_path)
    assert empty.exit_code == 0
    assert empty.stdout == "nothing to export: no entries in 2030-01-01T00:00:00Z .. 2030-01-02T00:00:00Z\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".logaudit-export.lock"]


# ------------------------------------------------------------------------------ gs://
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _honour_generation_preconditions(monkeypatch) -> None:
    """gcp-storage-emulator ignores ifGenerationMatch; Cloud Storage answers 412 when it does not
    hold. Wrap the emulator's insert and delete handlers to do the same (it serves one request at
    a time, so check-then-write is atomic)."""
    from http import HTTPStatus

    from gcp_storage_emulator import server as emu
    from gcp_storage_emulator.exceptions import NotFound
    from gcp_storage_emulator.handlers import objects

    def guarded(handler):
        def wrapper(request, response, storage, *args, **kwargs):
            want = request.query.get("ifGenerationMatch")
            if want is not None:
                name = request.params.get("object_id")
                if name is None:
                    name = request.query["name"][0] if "name" in request.query else \
                        (request.data.get("meta") or {}).get("name") if isinstance(request.data, dict) else None
                try:
                    current = str(storage.get_file_obj(request.params["bucket_name"], name)["generation"])
                except NotFound:
                    current = "0"
                if current != want[0]:
                    response.status = HTTPStatus.PRECONDITION_FAILED
                    response.json({"error": {"code": 412, "message": "At least one of the pre-conditions you "
                                             "specified did not hold.", "errors": [{"reason": "conditionNotMet"}]}})
                    return None
            return handler(request, response, storage, *args, **kwargs)

        return wrapper

    originals = {objects.insert: guarded(objects.insert), objects.delete: guarded(objects.delete)}
    for _, methods in emu.HANDLERS:
        for method, handler in list(methods.items()):
            if handler in originals:
                monkeypatch.setitem(methods, method, originals[handler])
    monkeypatch.setattr(objects, "insert", originals[objects.insert])


@pytest.fixture(scope="module")
def emulator():
    from gcp_storage_emulator.server import create_server

    with pytest.MonkeyPatch.context() as mp:
        _honour_generation_preconditions(mp)
        port = _free_port()
        server = create_server("127.0.0.1", port, in_memory=True)
        server.start()
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            server.stop()


@pytest.fixture
def bucket(emulator, request):
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    client = storage.Client(project="test", credentials=AnonymousCredentials(), client_options={"api_endpoint": emulator})
    name = f"exports-{request.node.name.replace('_', '-')[:40].strip('-')}"
    return client.create_bucket(name), client


def names(client, bucket_name: str, prefix: str = "") -> list[str]:
    return sorted(b.name for b in client.list_blobs(bucket_name, prefix=prefix))


@pytest.mark.slow
def test_gs_every_service_then_one_replaced_through_its_manifest(sample, emulator, bucket, cli):
    store, truth = sample
    gbucket, client = bucket
    dest = f"gs://{gbucket.name}/logaudit/exports"
    common = ("--store", store.root, "--since", SINCE, "--until", UNTIL, "--out", dest, "--storage-endpoint", emulator,
              "--format", "json")
    first = cli("export", *common)  # no --service: every service of the period
    assert first.exit_code == 0, first.output
    auth, p1 = json.loads(first.stdout)["periods"]
    assert (auth["service"], auth["entries"], p1["service"], p1["entries"]) == ("netra-auth-service", 758, BACKEND, 4242)
    assert p1["location"] == f"{dest}/{BACKEND}/{PERIOD}" and p1["replaced"] is False
    if HAS_COMPARE:  # one revision: nothing to compare, and the manifest says why
        assert auth["compare"]["status"] == "skipped" and auth["compare"]["reason"]
        assert p1["compare"]["status"] == "written"
    base = f"logaudit/exports/{BACKEND}/{PERIOD}"
    files = [f for f in FILES if f != "_EXPORT.json"]
    assert names(client, gbucket.name, f"{base}/") == sorted(
        [f"{base}/_EXPORT.json", *(f"{base}/{p1['export_id']}/{f}" for f in files)])
    assert f"logaudit/exports/netra-auth-service/{PERIOD}/_EXPORT.json" in names(client, gbucket.name)

    manifest = ex.read_manifest(dest, BACKEND, PERIOD, client=client)
    assert manifest["prefix"] == f"{p1['export_id']}/" and manifest["export_id"] == p1["export_id"]
    for f in manifest["files"]:  # every file is there, byte for byte, and none carries a secret
        data = gbucket.blob(f"{base}/{f['path']}").download_as_bytes()
        assert (len(data), hashlib.sha256(data).hexdigest()) == (f["bytes"], f["sha256"]), f["path"]
        for secret in truth.secrets:
            assert secret.encode() not in data
    entries = gbucket.blob(f"{base}/{p1['export_id']}/entries.parquet").download_as_bytes()
    assert pq.read_table(pa.BufferReader(entries)).num_rows == 4242

    second = cli("export", *common, "--service", BACKEND)
    assert second.exit_code == 0, second.output
    (p2,) = json.loads(second.stdout)["periods"]
    assert p2["replaced"] is True and p2["export_id"] != p1["export_id"]
    assert names(client, gbucket.name, f"{base}/") == sorted(
        [f"{base}/_EXPORT.json", *(f"{base}/{p2['export_id']}/{f}" for f in files)])
    assert ex.read_manifest(dest, BACKEND, PERIOD, client=client)["export_id"] == p2["export_id"]
    assert ex.read_manifest(dest, BACKEND, "2020-01-01T0000Z_2020-01-02T0000Z", client=client) is None
    assert not [n for n in names(client, gbucket.name) if n.endswith(".lock")]


def _staged(tmp_path: Path, tag: str) -> tuple[Path, dict]:
    """A small staging folder and its manifest, as `_export_service` would hand them to commit."""
    folder = tmp_path / tag
    (folder / "charts").mkdir(parents=True)
    (folder / "summary.json").write_text(json.dumps({"tag": tag}))
    (folder / "entries.parquet").write_bytes(tag.encode() * 100)
    (folder / "charts" / "latency.png").write_bytes(b"png" + tag.encode())
    manifest = {"format": ex.FORMAT, "complete": True, "service": "svc", "period": PERIOD, "export_id": tag,
                "files": ex._inventory(folder)}
    return folder, manifest


@pytest.mark.slow
def test_gs_commit_failures_leave_the_previous_export(emulator, bucket, tmp_path, monkeypatch):
    from google.api_core import exceptions as gexc
    from google.cloud.storage import Blob

    gbucket, client = bucket
    dest = f"gs://{gbucket.name}/x"
    target = ex._GcsTarget(dest, client=client, endpoint=None, credentials_file=None, lock_ttl=60)
    assert target.commit("svc", PERIOD, "v1", *_staged(tmp_path, "v1")) is False
    base = f"x/svc/{PERIOD}"
    before = {n: gbucket.blob(n).download_as_bytes() for n in names(client, gbucket.name)}
    assert sorted(before) == [f"{base}/_EXPORT.json", f"{base}/v1/charts/latency.png", f"{base}/v1/entries.parquet",
                              f"{base}/v1/summary.json"]

    real = Blob.upload_from_filename
    calls = {"n": 0}

    def flaky(self, *a, **kw):
        calls["n"] += 1
        if calls["n"] == 3:
            raise gexc.ServiceUnavailable("backend error")
        return real(self, *a, **kw)

    monkeypatch.setattr(Blob, "upload_from_filename", flaky)
    with pytest.raises(SourceError, match=rf"gs://{gbucket.name}/{base}/v2/: Cloud Storage failed: ServiceUnavailable \(503\)"):
        target.commit("svc", PERIOD, "v2", *_staged(tmp_path, "v2"))
    after = {n: gbucket.blob(n).download_as_bytes() for n in names(client, gbucket.name)}
    assert after == before  # manifest and files as they were; the two uploaded files were removed again
    assert ex.read_manifest(dest, "svc", PERIOD, client=client)["export_id"] == "v1"
    monkeypatch.setattr(Blob, "upload_from_filename", real)

    # a run killed mid-upload leaves objects no manifest names; the next export of the period removes them
    gbucket.blob(f"{base}/v0-killed/entries.parquet").upload_from_string(b"partial")
    assert target.commit("svc", PERIOD, "v3", *_staged(tmp_path, "v3")) is True
    assert names(client, gbucket.name) == [f"{base}/_EXPORT.json", f"{base}/v3/charts/latency.png",
                                           f"{base}/v3/entries.parquet", f"{base}/v3/summary.json"]
    manifest = ex.read_manifest(dest, "svc", PERIOD, client=client)
    assert [f["path"] for f in manifest["files"]] == ["v3/charts/latency.png", "v3/entries.parquet", "v3/summary.json"]
    assert gbucket.blob(f"{base}/v3/entries.parquet").download_as_bytes() == b"v3" * 100

    # someone rewrote the manifest behind the lock's back: the generation precondition refuses to clobber it
    gbucket.blob(f"{base}/_EXPORT.json").upload_from_string(b"{}")
    original = target.bucket.get_blob

    def stale_get(name, *a, **kw):  # the generation this run read before the other writer
        blob = original(name, *a, **kw)
        if blob is not None and name.endswith("_EXPORT.json"):
            blob._properties["generation"] = "1"
        return blob

    monkeypatch.setattr(target.bucket, "get_blob", stale_get)
    from logaudit.core.errors import StoreError

    with pytest.raises(StoreError, match="changed while this run held the lock"):
        target.commit("svc", PERIOD, "v4", *_staged(tmp_path, "v4"))
    assert gbucket.blob(f"{base}/_EXPORT.json").download_as_bytes() == b"{}"
    assert not [n for n in names(client, gbucket.name) if "/v4/" in n]


def test_gs_lock(sample, emulator, bucket, cli):
    store, _ = sample
    gbucket, client = bucket
    dest = f"gs://{gbucket.name}/p"
    first = ex._GcsTarget(dest, client=client, endpoint=None, credentials_file=None, lock_ttl=3600)
    second = ex._GcsTarget(dest, client=client, endpoint=None, credentials_file=None, lock_ttl=3600)
    with first.locked():
        (lock,) = names(client, gbucket.name)
        assert lock == "p/.logaudit-export.lock"
        held = orjson.loads(gbucket.blob(lock).download_as_bytes())
        assert (held["pid"], held["host"]) == (os.getpid(), socket.gethostname())
        with pytest.raises(LockedError, match=rf"gs://{gbucket.name}/p/.logaudit-export.lock: another logaudit "
                                              rf"export to this destination is running \(pid {os.getpid()} on "):
            second._acquire()
        result = cli("export", "--store", store.root, "--since", SINCE, "--until", UNTIL, "--service", BACKEND,
                     "--out", dest, "--storage-endpoint", emulator)
        assert result.exit_code == 6
        assert result.stdout == ""
        assert result.stderr.count("\n") == 1
        assert result.stderr.startswith(f"error: export failed: gs://{gbucket.name}/p/.logaudit-export.lock: another "
                                        "logaudit export to this destination is running (pid ")
        assert names(client, gbucket.name) == [lock]  # the loser wrote nothing
    assert names(client, gbucket.name) == []  # released
    # a lock left by a killed run expires and is taken over
    stale = {"pid": 1, "host": "gone", "started": "2026-01-01T00:00:00Z", "expires": "2026-01-01T01:00:00Z"}
    gbucket.blob("p/.logaudit-export.lock").upload_from_string(orjson.dumps(stale))
    with second.locked():
        taken = orjson.loads(gbucket.blob("p/.logaudit-export.lock").download_as_bytes())
        assert taken["pid"] == os.getpid()
    assert names(client, gbucket.name) == []


# ------------------------------------------------------------------------------ names from the logs are not paths
#: Service names as a log entry may carry them, and the folder each must get (see `service_folder`).
HOSTILE = {
    "../../escaped": "%2E%2E%2F%2E%2E%2Fescaped",
    "..": "%2E%2E",
    ".staging-x": "%2Estaging-x",  # a leading dot would hide it from readers and the next run's clean-up
    "a/b": "a%2Fb",
    "snow\u2603": "snow%E2%98%83",
    "%2E%2E": "%252E%252E",  # already looks encoded: stays distinct from ".."
    "ok-svc": "ok-svc",
    "x" * 300: "%%" + hashlib.sha256(b"x" * 300).hexdigest()[:32],
}
KEPT = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")
HOSTILE_SINCE, HOSTILE_UNTIL = "2026-11-28T10:00:00Z", "2026-11-28T11:00:00Z"
HOSTILE_PERIOD = "2026-11-28T1000Z_2026-11-28T1100Z"


@pytest.fixture(scope="module")
def hostile_store(tmp_path_factory):
    """A store whose entries name services like paths: relative, absolute (inside this test's
    folder, so that a write through it stays observable), hidden, nested, long."""
    from logaudit.store.store import Store

    base = tmp_path_factory.mktemp("hostile")
    store = Store(base / "store")
    absolute = f"{base}/absolute-escape"
    names = {**HOSTILE, absolute: "".join(c if c in KEPT else "".join(f"%{b:02X}" for b in c.encode()) for c in absolute)}
    for i, name in enumerate(names):
        store.ingest_entries(make_entries(3, service=name, prefix=f"s{i}-"), f"svc{i}")
    return base, store, names


@pytest.mark.slow
def test_service_names_from_the_logs_stay_inside_dest(hostile_store, cli):
    base, store, names = hostile_store
    dest = base / "deep" / "out"
    result = cli("export", "--store", store.root, "--out", dest, "--since", HOSTILE_SINCE, "--until", HOSTILE_UNTIL,
                 "--format", "json")
    assert result.exit_code == 0, result.output
    periods = {p["service"]: p for p in json.loads(result.stdout)["periods"]}
    assert set(periods) == set(names)
    for name, folder in names.items():
        assert periods[name]["location"] == str(dest / folder / HOSTILE_PERIOD), name
        manifest = ex.read_manifest(dest, name, HOSTILE_PERIOD)
        assert (manifest["service"], manifest["entries"]) == (name, 3)
    assert sorted(p.name for p in dest.iterdir()) == sorted([*names.values(), ".logaudit-export.lock"])
    assert sorted(p.name for p in base.iterdir()) == ["deep", "store"]  # nothing escaped
    assert sorted(p.name for p in (base / "deep").iterdir()) == ["out"]
    assert ex.list_exports(dest) == sorted((name, HOSTILE_PERIOD) for name in names)
    assert ex.list_exports(dest, "../../escaped") == [("../../escaped", HOSTILE_PERIOD)]
    charts = sorted(p.name for p in (dest / names["x" * 300] / HOSTILE_PERIOD / "charts").iterdir())
    tag = hashlib.sha256(b"x" * 300).hexdigest()[:8]
    assert f"error-rate-{'x' * 60}-{tag}.png" in charts  # bounded, and tied to this one service


@given(st.text(max_size=40), st.text(max_size=40))
def test_service_folders_are_distinct_and_reversible(a, b):
    fa, fb = ex.service_folder(a), ex.service_folder(b)
    assert fa not in ("", ".", "..") and "/" not in fa and not fa.startswith(".")
    assert (fa == fb) == (a == b)
    if not fa.startswith("%%"):
        assert unquote(fa, errors="surrogatepass") == a


@pytest.mark.slow
def test_a_symbolic_link_in_dest_does_not_lead_outside(sample, tmp_path, cli):
    store, _ = sample
    dest, outside = tmp_path / "dest", tmp_path / "outside"
    dest.mkdir()
    outside.mkdir()
    (dest / BACKEND).symlink_to(outside)
    result = cli("export", "--store", store.root, "--out", dest, "--since", SINCE, "--until", UNTIL, "--service", BACKEND,
                 "--quiet")
    assert result.exit_code == 3
    assert result.stderr == (f"error: export failed: {dest / BACKEND}: resolves to {outside}, outside the export "
                             f"destination {dest}; refusing to write there (hint: a symbolic link inside the "
                             "destination points elsewhere: remove it)\n")
    assert list(outside.iterdir()) == []


@pytest.mark.slow
def test_gs_object_names_from_the_logs_stay_under_the_prefix(hostile_store, emulator, bucket, cli):
    base, store, names = hostile_store
    gbucket, client = bucket
    dest = f"gs://{gbucket.name}/team/exports"
    result = cli("export", "--store", store.root, "--out", dest, "--since", HOSTILE_SINCE, "--until", HOSTILE_UNTIL,
                 "--storage-endpoint", emulator, "--format", "json")
    assert result.exit_code == 0, result.output
    objects = [b.name for b in client.list_blobs(gbucket.name)]
    assert objects and all(n.startswith("team/exports/") for n in objects)
    assert not [n for n in objects if {"", ".", ".."} & set(n.split("/"))]
    manifests = sorted(n for n in objects if n.endswith("/_EXPORT.json"))
    assert manifests == sorted(f"team/exports/{folder}/{HOSTILE_PERIOD}/_EXPORT.json" for folder in names.values())
    for name in names:
        assert ex.read_manifest(dest, name, HOSTILE_PERIOD, client=client)["service"] == name


@pytest.mark.slow
@needs_mounts
def test_a_full_disk_fails_the_export_and_keeps_the_previous_one(sample, tmp_path):
    store, _ = sample
    disk, kept = tmp_path / "disk", tmp_path / "kept"
    disk.mkdir()
    common = f"--store {store.root} --since {SINCE} --until {UNTIL} --service {BACKEND} --quiet"
    results = in_namespace(f"""
mount -t tmpfs -o size=8m tmpfs {disk}
run first export --out {disk}/exports {common}
cp -a {disk}/exports {kept}
dd if=/dev/zero of={disk}/filler bs=4k 2>/dev/null || true
run second export --out {disk}/exports {common}
rm {disk}/filler
cp -a {disk}/exports {tmp_path}/after
""", tmp_path / "results")
    assert results["first"].returncode == 0, results["first"].stderr
    assert (results["second"].returncode, results["second"].stderr) == (
        3, f"error: export failed: disk full while writing {disk}/exports/{BACKEND}/{PERIOD}: free space and re-run; "
           "the previous export of the period is unchanged\n")
    def period(root: Path) -> dict[str, str]:  # (the lock file names the run holding it)
        return {k: v for k, v in tree(root).items() if k != ".logaudit-export.lock"}

    assert period(tmp_path / "after") == period(kept) and len(period(kept)) == len(FILES)  # no staging left
