"""File ingest into the store: formats, dedup, rejects, atomicity, the CLI contract."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import orjson
import pyarrow.parquet as pq
import pytest
import yaml

from logaudit.core.errors import InputError, LockedError, StoreError
from logaudit.sources.files import detect_format
from logaudit.store.store import Store


def write_jsonl(path: Path, entries: list[dict]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in entries))
    return path


def write_gcloud_json(path: Path, entries: list[dict]) -> Path:
    """gcloud logging read --format=json: one pretty-printed array, newest first."""
    path.write_text(json.dumps(entries[::-1], indent=2))
    return path


def write_gcloud_yaml(path: Path, entries: list[dict]) -> Path:
    """gcloud's default output: YAML documents separated by ---, timestamps quoted."""
    path.write_text("".join("---\n" + yaml.safe_dump(e, sort_keys=True) for e in entries))
    return path


def write_sink_dir(root: Path, entries: list[dict]) -> Path:
    """Cloud Storage sink layout: LOG_ID/YYYY/MM/DD/HH:00:00_HH:59:59_S0.json (JSON lines)."""
    for e in entries:
        log_id = e["logName"].split("/logs/")[1].replace("%2F", "/")
        ts = e["timestamp"]
        folder = root / log_id / ts[0:4] / ts[5:7] / ts[8:10]
        folder.mkdir(parents=True, exist_ok=True)
        hour = ts[11:13]
        with open(folder / f"{hour}:00:00_{hour}:59:59_S0.json", "ab") as fh:
            fh.write(orjson.dumps(e) + b"\n")
    return root


def stored_keys(store: Store) -> list[tuple]:
    table = store.read_entries()
    return sorted(zip(table["log_name"].to_pylist(), table["insert_id"].to_pylist(),
                      [t.value for t in table["timestamp"].to_pylist()], strict=True))


def test_same_entries_in_every_format_ingest_to_one_copy_each(tmp_path, reference_entries):
    src = tmp_path / "src"
    src.mkdir()
    files = [
        write_jsonl(src / "a.jsonl", reference_entries),
        write_gcloud_json(src / "b.json", reference_entries),
        write_gcloud_yaml(src / "c.yaml", reference_entries),
    ]
    gz = src / "d.jsonl.gz"
    gz.write_bytes(gzip.compress(files[0].read_bytes()))
    sink = write_sink_dir(tmp_path / "sink", reference_entries)
    store = Store(tmp_path / "store")

    first = store.ingest_paths([files[0]])
    assert (first.read, first.new_rows, first.duplicates, first.rejected) == (6, 6, 0, 0)
    rest = store.ingest_paths([files[1], files[2], gz, sink])
    # the sink holds one file per (log, hour): activity 2, requests 1, stderr 1, stdout 2
    assert [(s.read, s.new_rows, s.duplicates, s.rejected) for s in rest.sources] == [(6, 0, 6, 0)] * 3 + [
        (2, 0, 2, 0), (1, 0, 1, 0), (1, 0, 1, 0), (2, 0, 2, 0)]
    assert [Path(s.source).relative_to(sink).as_posix() for s in rest.sources[3:]] == [
        "cloudaudit.googleapis.com/activity/2026/11/28/09:00:00_09:59:59_S0.json",
        "run.googleapis.com/requests/2026/11/28/10:00:00_10:59:59_S0.json",
        "run.googleapis.com/stderr/2026/11/28/10:00:00_10:59:59_S0.json",
        "run.googleapis.com/stdout/2026/11/28/10:00:00_10:59:59_S0.json",
    ]
    assert (rest.read, rest.new_rows, rest.duplicates) == (24, 0, 24)
    again = store.ingest_paths([files[0]])
    assert (again.new_rows, again.duplicates) == (0, 6)
    assert len(stored_keys(store)) == 6
    assert len(set(stored_keys(store))) == 6


def test_each_format_alone_yields_identical_rows(tmp_path, reference_entries):
    writers = {"a.jsonl": write_jsonl, "b.json": write_gcloud_json, "c.yaml": write_gcloud_yaml}
    tables = []
    for name, writer in writers.items():
        store = Store(tmp_path / f"store-{name}")
        path = writer(tmp_path / name, reference_entries)
        assert store.ingest_paths([path]).new_rows == 6
        t = store.read_entries().drop_columns(["source", "source_position"]).sort_by([("timestamp", "ascending")])
        rows = t.to_pylist()
        for row in rows:  # YAML output sorts keys: compare JSON columns as values, not text
            for col in ("payload_json", "labels_json"):
                row[col] = json.loads(row[col]) if row[col] else None
        tables.append(rows)
    assert tables[0] == tables[1]
    assert tables[0] == tables[2]


def test_nanoseconds_and_receive_timestamp_survive_the_store(tmp_path, reference_entries):
    store = Store(tmp_path / "store")
    store.ingest_paths([write_jsonl(tmp_path / "a.jsonl", reference_entries)])
    table = store.read_entries()
    by_id = {r["insert_id"]: r for r in table.to_pylist()}
    assert by_id["6745f0a1000e2b3c4d5e6f70"]["timestamp"].value == 1795860001123456789
    assert by_id["6745f0a1000e2b3c4d5e6f70"]["receive_timestamp"].value == 1795860001456789012
    assert str(table.schema.field("timestamp").type) == "timestamp[ns, tz=UTC]"


def test_five_kinds_of_bad_lines_are_rejected_with_line_numbers(tmp_path, reference_entries, store_dir):
    good = [orjson.dumps(e) for e in reference_entries]
    lines = [
        good[0],
        b'{"logName": "projects/p/logs/x", "timestamp": "2025-09-10T02:18:34Z", "textPayload": "trunc',  # 2 broken JSON
        good[1],
        b'[{"timestamp": "2025-09-10T02:18:34Z"}]',  # 4 an array
        good[2],
        b"\x00\xff\xfe\x9c binary junk",  # 6 not UTF-8
        good[3],
        b'{"logName": "projects/p/logs/x", "insertId": "abc", "textPayload": "no time"}',  # 8 no timestamps
        good[4],
        b'{"entry": {"logName": "projects/p/logs/x"}, "fetched": 3}',  # 10 a wrapper object
        b"",
        good[5],
    ]
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    store = Store(store_dir)
    report = store.ingest_paths([path])
    assert (report.read, report.new_rows, report.rejected, report.sources[0].blank) == (11, 6, 5, 1)
    assert [(r["position"], r["reason"]) for r in report.rejects] == [
        (2, "not valid JSON"),
        (4, "not a LogEntry: a JSON array, expected an object"),
        (6, "not UTF-8 text (byte 1)"),
        (8, "no timestamp and no receiveTimestamp"),
        (10, "not a LogEntry: no timestamp, logName, insertId or resource (keys: entry, fetched)"),
    ]
    saved = [json.loads(line) for line in (store_dir / "rejects" / f"{report.ingest_id}.jsonl").read_text().splitlines()]
    assert [(r["source"], r["position"]) for r in saved] == [(str(path), n) for n in (2, 4, 6, 8, 10)]
    assert saved[3]["text"] == lines[7].decode()
    assert sorted(store.read_entries()["source_position"].to_pylist()) == [1, 3, 5, 7, 9, 12]


def test_bad_timestamp_is_a_reject_not_a_guess(tmp_path, store_dir):
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps({"logName": "projects/p/logs/x", "insertId": "1", "timestamp": "10/09/2025 02:18"}) + "\n")
    report = Store(store_dir).ingest_paths([path])
    assert [r["reason"] for r in report.rejects] == ['timestamp "10/09/2025 02:18" is not an RFC 3339 time']


def test_broken_json_array_keeps_elements_before_the_break(tmp_path, reference_entries, store_dir):
    text = json.dumps(reference_entries, indent=2)
    path = tmp_path / "broken.json"
    # cut the array in the middle of the 4th element
    starts = [i for i in range(len(text)) if text.startswith("\n  {", i)]
    path.write_text(text[: starts[3] + 40])
    report = Store(store_dir).ingest_paths([path])
    assert report.new_rows == 3
    assert report.rejected == 1
    assert report.rejects[0]["position"] == 4
    assert report.rejects[0]["reason"] == f"entry 4 (byte {starts[3] + 3}) is cut off by the end of the data"
    assert report.rejects[0]["offset"] == starts[3] + 3
    assert [n["level"] for n in report.sources[0].notes] == ["error"]
    assert report.sources[0].notes[0]["message"] == "the JSON array ends without its closing `]`: the file is truncated"


def test_yaml_document_error_is_one_reject(tmp_path, reference_entries, store_dir):
    path = write_gcloud_yaml(tmp_path / "c.yaml", reference_entries[:2])
    path.write_text(path.read_text() + "---\nlogName: [unclosed\n---\n" + yaml.safe_dump(reference_entries[2]))
    report = Store(store_dir).ingest_paths([path])
    assert (report.new_rows, report.rejected) == (3, 1)
    lines = path.read_text().splitlines()
    doc = lines.index("logName: [unclosed") + 1
    offset = len("\n".join(lines[: doc - 1])) + 1
    assert report.rejects[0]["reason"] == (f"YAML document at line {doc} (byte {offset}) is not valid YAML "
                                           f"(line {doc + 1}): did not find expected ',' or ']'")
    assert (report.rejects[0]["position"], report.rejects[0]["offset"]) == (doc, offset)


def test_unquoted_yaml_timestamps_keep_nanoseconds(tmp_path, store_dir):
    path = tmp_path / "u.yaml"
    path.write_text("---\nlogName: projects/p/logs/x\ninsertId: a\ntimestamp: 2025-09-10T02:18:34.123456789Z\n")
    Store(store_dir).ingest_paths([path])
    assert Store(store_dir).read_entries()["timestamp"][0].value == 1757470714123456789


def test_crlf_bom_and_concatenated_objects(tmp_path, reference_entries, store_dir):
    crlf = tmp_path / "w.jsonl"
    crlf.write_bytes(b"\xef\xbb\xbf" + b"".join(orjson.dumps(e) + b"\r\n" for e in reference_entries[:3]))
    objs = tmp_path / "o.json"
    objs.write_text("\n".join(json.dumps(e, indent=2) for e in reference_entries[3:]))
    report = Store(store_dir).ingest_paths([crlf, objs])
    assert [(s.new_rows, s.rejected) for s in report.sources] == [(3, 0), (3, 0)]


@pytest.mark.parametrize(
    ("head", "fmt"),
    [(b"[\n  {", "array"), (b'{"a": 1}\n{"a": 2}', "jsonl"), (b"{\n  \"a\": 1\n}", "objects"),
     (b"---\nlogName: x", "yaml"), (b"logName: x\n", "yaml"), (b"\xef\xbb\xbf{\"a\":1}", "jsonl"), (b"\x00junk", "jsonl")],
)
def test_detect_format(head, fmt):
    assert detect_format(head) == fmt


def test_missing_path_is_a_clear_error(tmp_path, store_dir):
    with pytest.raises(InputError, match=r"nope\.json: no such file or directory"):
        Store(store_dir).ingest_paths([tmp_path / "nope.json"])


def test_unreadable_file_is_a_clear_error(tmp_path, store_dir):
    path = tmp_path / "secret.jsonl"
    path.write_text("{}\n")
    path.chmod(0)
    try:
        if os.access(path, os.R_OK):  # root reads anything; use a directory-as-file instead
            path.chmod(0o644)
            path = tmp_path / "dir.json"
            path.mkdir()
            (path / "x.txt").write_text("")
            with pytest.raises(InputError, match="directory holds no log files"):
                Store(store_dir).ingest_paths([path])
        else:
            with pytest.raises(InputError, match="cannot read"):
                Store(store_dir).ingest_paths([path])
    finally:
        path.chmod(0o755)


def test_interrupted_ingest_leaves_only_whole_files(tmp_path, reference_entries, store_dir):
    store = Store(store_dir)

    def batches_then_crash():
        from logaudit.store.store import _text_batch

        yield _text_batch("gen", [json.dumps(e) for e in reference_entries[:3]], 1)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        store.ingest_batches([("gen", batches_then_crash())])
    files = store.entry_files()
    assert all(pq.read_table(f).num_rows > 0 for f in files)
    assert store.read_entries().num_rows == 3
    assert not list(store_dir.rglob(".*.tmp"))
    assert store.manifest()[-1]["status"] == "interrupted"


def test_manifest_records_each_ingest(tmp_path, reference_entries, store_dir):
    store = Store(store_dir)
    path = write_jsonl(tmp_path / "a.jsonl", reference_entries)
    store.ingest_paths([path])
    store.ingest_paths([path])
    records = store.manifest()
    assert [(m["kind"], m["status"], m["read"], m["new_rows"], m["duplicates"], m["rejected"]) for m in records] == [
        ("ingest", "complete", 6, 6, 0, 0), ("ingest", "complete", 6, 0, 6, 0)]
    assert records[0]["sources"][0]["source"] == str(path)
    info = store.info()
    assert (info["entries"], info["first"], info["last"]) == (6, "2026-11-28T09:58:30.482917Z", "2026-11-28T10:00:02.000001Z")


@pytest.mark.timezone
def test_entries_partitioned_by_utc_date(tmp_path, store_dir):
    entries = [
        {"logName": "projects/p/logs/x", "insertId": "a", "timestamp": "2025-09-09T23:59:59.999999999Z"},
        {"logName": "projects/p/logs/x", "insertId": "b", "timestamp": "2025-09-10T01:30:00+02:00"},  # 23:30Z on the 9th
        {"logName": "projects/p/logs/x", "insertId": "c", "timestamp": "2025-09-10T00:00:00Z"},
    ]
    store = Store(store_dir)
    store.ingest_paths([write_jsonl(tmp_path / "a.jsonl", entries)])
    parts = sorted({f.parent.name for f in store.entry_files()})
    assert parts == ["date=2025-09-09", "date=2025-09-10"]
    day9 = pq.read_table(next(f for f in store.entry_files() if "09-09" in str(f)))
    assert day9["insert_id"].to_pylist() == ["b", "a"]  # sorted by timestamp inside the file


def test_duplicates_inside_one_file_count_once(tmp_path, reference_entries, store_dir):
    path = write_jsonl(tmp_path / "a.jsonl", reference_entries + reference_entries[:2])
    report = Store(store_dir).ingest_paths([path])
    assert (report.read, report.new_rows, report.duplicates) == (8, 6, 2)


def test_store_lock_refuses_a_second_writer(store_dir):
    store = Store(store_dir)
    with store.lock(), pytest.raises(LockedError, match="another logaudit process is writing"):
        store.ingest_entries([], "x")


def test_opening_a_missing_store_without_create(tmp_path):
    with pytest.raises(StoreError, match="no store here"):
        Store(tmp_path / "none", create=False)


def test_cli_ingest_exit_codes_and_counts(tmp_path, reference_entries, cli, store_dir):
    good = write_jsonl(tmp_path / "good.jsonl", reference_entries)
    result = cli("ingest", "--quiet", "--store", store_dir, good)
    assert result.exit_code == 0
    assert result.output.splitlines()[-1].startswith("total: 6 read, 6 new, 0 duplicate, 0 rejected")
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{oops\n" + json.dumps(reference_entries[0]) + "\n")
    result = cli("ingest", "--quiet", "--store", store_dir, bad)
    assert result.exit_code == 7  # some input rejected, the rest stored
    assert f"rejected {bad}:1: not valid JSON" in result.stderr
    result = cli("ingest", "--store", store_dir, tmp_path / "missing.json")
    assert result.exit_code == 3
    assert result.stderr.startswith(f"error: {tmp_path / 'missing.json'}: no such file or directory")
    result = cli("ingest", "--store", store_dir, "--format", "json", good)
    assert result.exit_code == 0
    assert json.loads(result.stdout)["duplicates"] == 6
    info = json.loads(cli("store", "info", "--store", store_dir, "--format", "json").stdout)
    assert info["entries"] == 6 and len(info["ingests"]) == 3 and info["rejected_total"] == 1


def test_store_from_environment(tmp_path, reference_entries, cli):
    good = write_jsonl(tmp_path / "good.jsonl", reference_entries)
    env_store = tmp_path / "env-store"
    result = cli("ingest", "-q", good, env={"LOGAUDIT_STORE": str(env_store)})
    assert result.exit_code == 0
    assert Store(env_store, create=False).info()["entries"] == 6


def test_generated_sample_ingests_to_exactly_the_generators_truth(tmp_path, store_dir):
    """Every entry, and every effective severity the generator intended, survives ingest."""
    import duckdb

    from logaudit.sources.sample import SampleConfig, write_sample

    truth = write_sample(tmp_path / "s.json.gz", SampleConfig(entries=3000, seed=11), fmt="json")
    store = Store(store_dir)
    report = store.ingest_paths([tmp_path / "s.json.gz"])
    assert (report.read, report.new_rows, report.rejected) == (3000, 3000, 0)
    con = duckdb.connect()
    con.register("t", store.read_entries())
    by_revision = {
        (s, r): (n, e, q, c4, c5)
        for s, r, n, e, q, c4, c5 in con.sql("""
            SELECT service, revision, count(*), count(*) FILTER (effective_severity_num >= 500),
                   count(http_status), count(*) FILTER (http_status BETWEEN 400 AND 499),
                   count(*) FILTER (http_status >= 500)
            FROM t GROUP BY ALL""").fetchall()
    }
    assert by_revision == {k: (v.entries, v.errors, v.requests, v.status_4xx, v.status_5xx) for k, v in truth.by_revision.items()}
    assert dict(con.sql("SELECT effective_severity, count(*) FROM t GROUP BY 1").fetchall()) == dict(truth.effective_severity)
    assert con.sql("SELECT count(*) FROM t WHERE contains(message, chr(27))").fetchall() == [(0,)]


def test_batch_dedup_keeps_entries_whose_hashes_collide():
    """Grouping is by a 64-bit hash; equal hashes are confirmed on the exact key."""
    import numpy as np
    import pyarrow as pa

    from logaudit.store.store import _first_occurrences

    keys = pa.table({"log_name": ["a", "a", "b", "a", "c"], "insert_id": ["1", "1", "2", "3", "4"]})
    hashes = np.array([7, 7, 7, 9, 11], dtype=np.uint64)  # rows 0-2 share a hash; 0 and 1 are one entry
    stamps = np.array([5, 5, 5, 6, 1], dtype=np.int64)
    idx, h, ns = _first_occurrences(keys, hashes, stamps)
    assert idx.tolist() == [0, 2, 3, 4]
    assert h.tolist() == [7, 7, 9, 11] and ns.tolist() == [5, 5, 6, 1]
    idx, _, _ = _first_occurrences(keys, np.array([1, 2, 3, 4, 5], dtype=np.uint64), stamps)
    assert idx.tolist() == [0, 1, 2, 3, 4]  # distinct hashes: nothing dropped, order kept


# ---------------------------------------------------------------------------- identity without insertId
def _without_insert_id() -> list[dict]:
    """Four different entries sharing logName and timestamp, none with an insertId."""
    base = {"logName": "projects/p/logs/converted", "timestamp": "2025-09-10T02:18:34.5Z",
            "resource": {"type": "cloud_run_revision", "labels": {"service_name": "s", "revision_name": "s-00001-abc"}}}
    return [
        base | {"textPayload": "worker 1 started"},
        base | {"textPayload": "worker 2 started"},
        base | {"jsonPayload": {"message": "cache warm", "stats": {"hits": 3, "ratio": 0.75}}},
        base | {"jsonPayload": {"message": "cache warm", "stats": {"hits": 4, "ratio": 0.75}}},
    ]


def test_entries_without_insert_id_are_kept_apart_and_stored_once_from_any_format(tmp_path, store_dir):
    entries = _without_insert_id()
    src = tmp_path / "src"
    src.mkdir()
    jsonl = write_jsonl(src / "a.jsonl", entries)
    pretty = write_gcloud_json(src / "b.json", entries)  # pretty-printed, newest first
    yml = write_gcloud_yaml(src / "c.yaml", entries)  # keys sorted
    shuffled = src / "d.jsonl"  # other key order at every level, other number spelling
    shuffled.write_text("".join(
        json.dumps(json.loads(json.dumps(e, sort_keys=True)), indent=None, separators=(", ", ": "))
        .replace("0.75", "0.750") + "\n" for e in reversed(entries)))
    store = Store(store_dir)
    first = store.ingest_paths([jsonl])
    assert (first.read, first.new_rows, first.duplicates) == (4, 4, 0)
    again = store.ingest_paths([jsonl, pretty, yml, shuffled])
    assert [(s.read, s.new_rows, s.duplicates) for s in again.sources] == [(4, 0, 4)] * 4
    table = store.read_entries()
    assert sorted(table["message"].to_pylist()) == ["cache warm", "cache warm", "worker 1 started", "worker 2 started"]
    assert all(i.startswith("sha256:") for i in table["insert_id"].to_pylist())
    changed = [entries[0] | {"textPayload": "worker 3 started"}]
    assert store.ingest_entries(changed, "more").new_rows == 1


def test_entries_without_insert_id_from_a_pull_and_a_file_are_one(tmp_path, store_dir):
    """The pull path reads entries through the same normalization, so the same key."""
    from fake_logging import FakeLogging

    from logaudit.store import pull as store_pull

    entries = [e | {"resource": {"type": "cloud_run_revision", "labels": {"service_name": "hello"}}}
               for e in _without_insert_id()]
    server = FakeLogging(entries, project="p").start()
    try:
        report = store_pull.pull(store_dir, "p", services=["hello"], since="2025-09-10T00:00:00Z",
                         until="2025-09-11T00:00:00Z", endpoint=server.url, max_requests_per_minute=60_000)
    finally:
        server.stop()
    assert (report.new_rows, report.duplicates) == (4, 0)
    again = Store(store_dir).ingest_paths([write_gcloud_json(tmp_path / "b.json", entries)])
    assert (again.new_rows, again.duplicates) == (0, 4)


def test_a_store_written_before_content_ids_takes_the_same_files_again(tmp_path, store_dir):
    """Rows stored earlier with a null insert_id match the same entries read again."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from logaudit.store.normalize import normalize_batch

    entries = _without_insert_id()[:2]
    store = Store(store_dir)
    rows, _ = normalize_batch(pa.array([json.dumps(e) for e in entries]), pa.array([1, 2], pa.int64()), "old")
    legacy = rows.set_column(rows.schema.get_field_index("insert_id"), "insert_id",
                             pa.nulls(rows.num_rows, pa.string())).slice(0, 1)  # the old store merged the two
    store._write_partitions(legacy)
    report = store.ingest_paths([write_jsonl(tmp_path / "a.jsonl", entries)])
    assert (report.new_rows, report.duplicates) == (0, 2)
    other_time = entries[0] | {"timestamp": "2025-09-10T02:18:35Z"}
    assert store.ingest_entries([other_time], "later").new_rows == 1
    ids = store.read_entries()["insert_id"]
    assert (ids.null_count, pc.sum(pc.starts_with(ids, "sha256:")).as_py()) == (1, 1)


# ---------------------------------------------------------------------------- unreadable fields are noted
def test_unreadable_fields_are_stored_as_null_counted_and_shown(tmp_path, store_dir, cli):
    lines = [
        {"logName": "projects/p/logs/run.googleapis.com%2Frequests", "timestamp": "2025-09-10T02:18:34Z",
         "insertId": "a", "severity": "loud", "httpRequest": {"status": 200, "latency": "abc"}},
        {"logName": "projects/p/logs/run.googleapis.com%2Frequests", "timestamp": "2025-09-10T02:18:35Z",
         "insertId": "b", "severity": "error", "httpRequest": {"status": 503, "latency": {"seconds": 1, "nanos": 5}}},
    ]
    path = write_jsonl(tmp_path / "n.jsonl", lines)
    result = cli("ingest", "--quiet", "--store", store_dir, path)
    assert result.exit_code == 0  # the entries are stored: nothing was rejected
    assert result.stdout.splitlines()[0] == f"{path}: 2 read, 2 new, 0 duplicate, 0 rejected, 2 unreadable fields stored as null"
    assert result.stderr.splitlines() == [
        f'note {path}:1: httpRequest.latency "abc" is not a Duration ("0.123s", or {{"seconds": 0, "nanos": '
        '123000000}) from 0 to 315576000000 s; stored as null',
        f'note {path}:1: severity "loud" is not a LogSeverity name, alias or number (see docs/entry-table.md); '
        "read as no severity",
    ]
    rows = {r["insert_id"]: r for r in Store(store_dir).read_entries().to_pylist()}
    assert (rows["a"]["http_latency_ms"], rows["a"]["severity"], rows["a"]["severity_num"]) == (None, "loud", None)
    assert (rows["b"]["http_latency_ms"], rows["b"]["effective_severity"]) == (1000.000005, "ERROR")
    record = Store(store_dir).manifest()[-1]
    assert (record["unreadable_fields"], record["sources"][0]["unreadable_fields"]) == (2, 2)
    assert [(n["position"], n["note"].split(" ")[0]) for n in record["field_notes"]] == [
        (1, "httpRequest.latency"), (1, "severity")]
    as_json = json.loads(cli("ingest", "--store", store_dir, "--format", "json", path).stdout)
    assert (as_json["unreadable_fields"], len(as_json["field_notes"]), as_json["duplicates"]) == (2, 2, 2)


def test_timestamp_rejects_name_the_wrong_part(tmp_path, store_dir):
    path = write_jsonl(tmp_path / "t.jsonl", [
        {"logName": "projects/p/logs/x", "insertId": "1", "timestamp": "2025-09-10T24:00:00Z"},
        {"logName": "projects/p/logs/x", "insertId": "2", "timestamp": "2025-09-10T02:18:34+99:99"},
        {"logName": "projects/p/logs/x", "insertId": "3", "timestamp": "9999-12-31T23:59:59Z"},
        {"logName": "projects/p/logs/x", "insertId": "4", "timestamp": "2016-12-31T23:59:60Z"},
    ])
    report = Store(store_dir).ingest_paths([path])
    assert (report.new_rows, report.rejected) == (1, 3)
    assert [r["reason"] for r in report.rejects] == [
        'timestamp "2025-09-10T24:00:00Z" is not a valid time: hour 24 is not in 00..23',
        'timestamp "2025-09-10T02:18:34+99:99" is not a valid time: offset +99:99 is out of range '
        "(hours 00..23, minutes 00..59)",
        'timestamp "9999-12-31T23:59:59Z" is outside the range of times the store can hold '
        "(1677-09-21T00:12:43.145224194Z to 2262-04-11T23:47:16.854775806Z: nanoseconds since 1970 in 64 bits)",
    ]
    assert Store(store_dir).read_entries()["timestamp"][0].value == 1483228800 * 10**9  # 2017-01-01T00:00:00Z
