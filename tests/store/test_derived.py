"""Derived data (`logaudit.store.derived`): one folder per kind and shape, keys from the shape's
digest, atomic writes that leave no partial file on a real failure, one prune policy, read-only
stores, `store info` sizes and `store clear-cache`, and a concurrent ingest during a compare.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
from conftest import in_namespace, needs_mounts

from logaudit.analysis.audit import Audit
from logaudit.analysis.gate import Gate
from logaudit.analysis.judge import compare
from logaudit.analysis.window import Window
from logaudit.sources.bundled import sample_path
from logaudit.sources.sample import SampleConfig, SampleGenerator
from logaudit.store.derived import KINDS, STALE_SHAPE_SECONDS, shape_digest
from logaudit.store.store import Store

REPO = Path(__file__).resolve().parents[2]
BACKEND = "netra-backend-staging"
# cuts the hours 20:00 and 03:00 of the sample (hour slices) and holds whole hours between
WINDOW = {"since": "2025-09-09T20:13:07.25Z", "until": "2025-09-10T03:41:30.5Z"}


def logaudit(*args: object, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "logaudit", *map(str, args)], cwd=REPO, capture_output=True,
                          text=True, **kw)


def sizes(root: Path) -> dict[str, dict[str, int]]:
    """What `store info` must say: every file below derived/<kind>/ but the lock, and their bytes."""
    out = {}
    for kind in KINDS:
        files = [p for p in (root / "derived" / kind).rglob("*") if p.is_file() and p.name != ".lock"]
        out[kind] = {"files": len(files), "bytes": sum(p.stat().st_size for p in files)}
    return out


def rounded(value: object) -> object:
    """Floats to 12 significant digits: sums of floats aggregated in another order (cached parts,
    or rows) may differ in their last bits."""
    if isinstance(value, float):
        return float(f"{value:.12g}")
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    return [rounded(v) for v in value] if isinstance(value, list | tuple) else value


@pytest.fixture(scope="module")
def sample_store(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("derived") / "store"
    assert Store(root).ingest_paths([sample_path()]).new_rows == 5000
    return root


@pytest.fixture
def store(sample_store, tmp_path) -> Path:
    return Path(shutil.copytree(sample_store, tmp_path / "store"))


# ------------------------------------------------------------------------------ the mechanism
def test_the_folder_and_keys_follow_the_shape(tmp_path):
    store = Store(tmp_path / "store")
    a, same, b = (store.derived("slices", s) for s in ({"x": 1, "y": [1, 2]}, {"y": (1, 2), "x": 1}, {"x": 2, "y": [1, 2]}))
    assert a.digest == same.digest == shape_digest({"x": 1, "y": [1, 2]}) != b.digest
    assert a.folder == tmp_path / "store" / "derived" / "slices" / a.digest
    assert a.key(7, "f") == same.key(7, "f") != b.key(7, "f")
    assert a.entry_folder(tmp_path / "store" / "entries" / "date=2025-09-09" / "part-1.parquet") == \
        a.folder / "date=2025-09-09" / "part-1"
    a.write_bytes(a.folder / "one.bin", b"data")
    assert orjson.loads((a.folder / "shape.json").read_bytes()) == {
        "kind": "slices", "digest": a.digest, "shape": {"x": 1, "y": [1, 2]}}
    assert sorted(p.name for p in a.folder.iterdir()) == ["one.bin", "shape.json"]


def test_prune_removes_data_of_gone_entry_files_and_of_unused_shapes(store):
    entry = sorted((store / "entries").glob("date=*/*.parquet"))[0]
    handle = Store(store).derived("aggregates", {"v": 1})
    gone = store / "entries" / entry.parent.name / "part-gone.parquet"
    for path in (entry, gone):
        handle.write_bytes(handle.entry_folder(path) / "base-1.parquet", b"x")
    recent, stale = (Store(store).derived("aggregates", {"v": n}) for n in (2, 3))
    for other in (recent, stale):
        other.write_bytes(other.folder / "x", b"x")
    old = time.time() - STALE_SHAPE_SECONDS - 60
    os.utime(stale.folder / "shape.json", (old, old))
    assert Store(store).derived("aggregates", {"v": 1}).prune() == 2
    assert sorted(p.name for p in (store / "derived" / "aggregates").iterdir()) == sorted([handle.digest, recent.digest])
    assert (handle.entry_folder(entry) / "base-1.parquet").exists() and not handle.entry_folder(gone).exists()


# ------------------------------------------------------------------------------ atomic writes
@needs_mounts
def test_a_write_refused_by_a_full_disk_leaves_the_old_file_and_no_temporary_file(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    script = tmp_path / "write.py"
    script.write_text(f"""
import json, pathlib
from logaudit.core.errors import StoreWriteError
from logaudit.store.store import Store
handle = Store(pathlib.Path("{disk}") / "store").derived("slices", {{"x": 1}})
path = handle.folder / "slice.arrow"
handle.write_bytes(path, b"old")
try:
    handle.write_bytes(path, b"x" * 400_000)
    out = {{"error": None}}
except StoreWriteError as err:
    out = {{"error": str(err), "errno": err.errno}}
out["content"] = path.read_bytes().decode()
out["files"] = sorted(p.name for p in path.parent.iterdir())
print(json.dumps(out))
""")
    in_namespace(f"""
mount -t tmpfs -o size=128k tmpfs {disk}
{sys.executable} {script} >{tmp_path}/out.json
""", tmp_path / "results")
    out = json.loads((tmp_path / "out.json").read_text())
    folder = disk / "store" / "derived" / "slices" / shape_digest({"x": 1})
    assert out == {"error": f"disk full while writing {folder}/slice.arrow: free space and re-run; the store is unchanged",
                   "errno": errno.ENOSPC, "content": "old", "files": ["shape.json", "slice.arrow"]}


def test_a_killed_writer_never_leaves_a_partial_file(tmp_path):
    store = Store(tmp_path / "store")
    handle = store.derived("slices", {"x": 1})
    path = handle.folder / "slice.arrow"
    handle.write_bytes(path, b"old")
    child = subprocess.Popen([sys.executable, "-c", f"""
import sys, time
from logaudit.store.store import Store
handle = Store("{store.root}").derived("slices", {{"x": 1}})
def fill(tmp):
    with open(tmp, "wb") as fh:
        fh.write(b"new" * 100_000)
        fh.flush()
        print("half written", flush=True)
        time.sleep(60)
handle.write(handle.folder / "slice.arrow", fill)
"""], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline() == "half written\n"
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait()
    assert path.read_bytes() == b"old"  # readers never see half a file
    (tmp,) = [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]
    assert tmp.name.startswith(".slice.arrow.") and tmp.stat().st_size == 300_000


# ------------------------------------------------------------------------------ info and clear-cache
@pytest.mark.slow
def test_store_info_sizes_and_clear_cache(store, cli):
    answer = rounded(compare(Audit(store), service=BACKEND, gate=Gate(), **WINDOW).to_dict())
    expected = sizes(store)
    assert all(expected[k]["files"] > 1 for k in KINDS), expected  # every kind holds data
    # caches of earlier versions: ignored by check, counted as legacy, removed by clear-cache
    (store / "matches" / "date=2025-09-09" / "part-x").mkdir(parents=True)
    (store / "matches" / "date=2025-09-09" / "part-x" / "index.json").write_bytes(b"{not json")
    (store / "cache" / "compare-v4" / "edges").mkdir(parents=True)
    (store / "cache" / "compare-v4" / "edges" / "1-a-rows.arrow").write_bytes(b"12345")
    info = json.loads(cli("store", "info", "--store", store, "--format", "json").output)
    assert info["derived"] == {**expected, "legacy": {"files": 2, "bytes": 14}}
    text = cli("store", "info", "--store", store).output.splitlines()
    assert text[3] == "derived:    " + ", ".join(
        f"{k} {v['files']} files {v['bytes'] / 1e6:.1f} MB" for k, v in info["derived"].items())
    check = logaudit("store", "check", "--store", store)
    assert (check.returncode, check.stdout.startswith("ok: ")) == (0, True), check.stdout

    one = cli("store", "clear-cache", "--kind", "slices", "--store", store, "--format", "json")
    assert (one.exit_code, json.loads(one.output)) == (0, {"store": str(store), "removed": {"slices": expected["slices"]}})
    assert sizes(store) == {**expected, "slices": {"files": 0, "bytes": 0}}
    every = cli("store", "clear-cache", "--store", store)
    assert every.exit_code == 0
    left = {k: v for k, v in expected.items() if k != "slices"}
    assert every.output == f"removed from {store}: " + ", ".join(
        f"{k} {v['files']} files {v['bytes'] / 1e6:.1f} MB" for k, v in {**left, "legacy": {"files": 2, "bytes": 14}}.items()
    ) + "\n"
    assert sorted(p.name for p in store.iterdir()) == [".lock", "derived", "entries", "logaudit-store.json", "manifest", "rejects"]
    assert json.loads(cli("store", "info", "--store", store, "--format", "json").output)["derived"] == \
        {k: {"files": 0, "bytes": 0} for k in KINDS}
    assert cli("store", "clear-cache", "--store", store).output == f"no derived data in {store}\n"
    bad = logaudit("store", "clear-cache", "--kind", "everything", "--store", store)
    assert bad.returncode == 64 and "'everything' is not one of" in bad.stderr
    assert rounded(compare(Audit(store), service=BACKEND, gate=Gate(), **WINDOW).to_dict()) == answer  # computed again


@pytest.mark.slow
@needs_mounts
def test_a_read_only_store_computes_without_keeping_and_cannot_be_cleared(store, tmp_path):
    window = ["--since", WINDOW["since"], "--until", WINDOW["until"]]
    logaudit("compare", "--service", BACKEND, *window, "--store", store)  # warm: every kind holds data
    before = {p.relative_to(store).as_posix(): p.stat().st_mtime_ns for p in store.rglob("*") if p.is_file()}
    results = in_namespace(f"""
mount --bind {store} {store}
mount -o remount,bind,ro {store}
run compare compare --service {BACKEND} --since {WINDOW['since']} --until {WINDOW['until']} --format json --store {store}
run clearkind store clear-cache --kind slices --store {store}
run info store info --format json --store {store}
""", tmp_path / "results")
    note = f"note: {store} is read-only (Read-only file system): nothing is saved to it; new cache results are kept for this run only\n"
    assert results["compare"].returncode == 2 and results["compare"].stderr == note
    assert (results["clearkind"].returncode, results["clearkind"].stderr) == (
        3, f"{note}error: {store}: the store is read-only; its derived data cannot be cleared\n"
           "  hint: derived data of a read-only store is never written: there is nothing to clear\n")
    assert json.loads(results["info"].stdout)["derived"] == sizes(store)
    after = {p.relative_to(store).as_posix(): p.stat().st_mtime_ns for p in store.rglob("*") if p.is_file()}
    assert after == before  # nothing written, not even a shape file touched
    writable = logaudit("compare", "--service", BACKEND, *window, "--format", "json", "--store", store)
    assert rounded(json.loads(results["compare"].stdout)) == rounded(json.loads(writable.stdout))


# ------------------------------------------------------------------------------ a concurrent ingest
@pytest.mark.slow
def test_a_concurrent_ingest_during_compare_never_mis_serves(tmp_path):
    """A second process ingests one entry file while compares run: each answer is that of the
    store before or after the ingest (computed cold), never a mix or stale derived data."""
    entries = list(SampleGenerator(SampleConfig()))
    late = [e for k, e in enumerate(entries) if k % 2 and e["timestamp"] < "2025-09-10"]  # one day: one entry file
    first = [e for e in entries if e not in late]
    root = tmp_path / "store"
    Store(root).ingest_entries(first, "first")
    source = tmp_path / "late.jsonl"
    source.write_bytes(b"\n".join(orjson.dumps(e) for e in late))

    def answer(path: Path) -> dict:
        return rounded(compare(Audit(path), service=BACKEND, gate=Gate(), **WINDOW).to_dict())

    cold_before = answer(Path(shutil.copytree(root, tmp_path / "before")))
    after_root = Path(shutil.copytree(root, tmp_path / "after"))
    Store(after_root).ingest_entries(late, "late")
    cold_after = answer(after_root)
    assert cold_before != cold_after
    assert answer(root) == cold_before  # warm
    ingest = subprocess.Popen([sys.executable, "-m", "logaudit", "ingest", "-q", source, "--store", root], cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = []
    while ingest.poll() is None:
        seen.append(answer(root))
    _, err = ingest.communicate()
    assert ingest.returncode == 0, err
    seen.append(answer(root))
    assert all(a in (cold_before, cold_after) for a in seen) and seen[-1] == cold_after
    check = logaudit("store", "check", "--store", root)
    assert check.returncode == 0, check.stdout


def test_a_file_ingested_while_a_connection_is_made_is_in_neither_its_views_nor_its_aggregates(tmp_path):
    """An ingest that lands right after the store's files are listed for a connection: the views,
    the classification and the per-file aggregates all read the one listing (the health facts
    join the views and the aggregates: two listings made a compare mix the stores)."""
    entries = list(SampleGenerator(SampleConfig(entries=600)))
    late = entries[1::2]
    root = tmp_path / "store"
    Store(root).ingest_entries(entries[::2], "first")

    class IngestAfterListing(Store):
        pending = True

        def entry_files(self, since=None, until=None):
            listed = super().entry_files(since, until)
            if self.pending:  # another process's ingest, right after this listing
                self.pending = False
                assert Store(self.root).ingest_entries(late, "late").new_rows == 300
            return listed

    audit, window = Audit(IngestAfterListing(root)), Window()
    with audit.engine.hold():  # one answer: the files of the first listing
        totals = audit.engine.totals(window)
        health = audit.engine.health(window)
        revisions = audit.engine.revisions(window, percentiles=False)
        con = audit.engine._pinned[window]  # the connection of this answer
        viewed = con.execute("SELECT count(*), count(http_status) FROM entries").fetchone()
        classified = con.execute("SELECT count(DISTINCT entry_file) FROM matches").fetchone()[0]
    assert totals.entries == viewed[0] == 300
    assert sum(h.requests for h in health) == sum(r.requests for r in revisions if r.revision) == viewed[1]
    assert classified == len(audit.classified_files(window, con)) == 2  # one per day
    assert len(Store(root).entry_files()) == 4
    assert audit.engine.totals(window).entries == 600  # the next answer reads the store as it is now
