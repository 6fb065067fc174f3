"""Store and OS faults, as a user meets them through the real CLI: damaged and foreign files,
damaged caches, read-only stores, a full disk, a store of another format, `~` in paths, and
`logaudit store check | repair`.

The faults are real: truncated and corrupted files, a read-only bind mount and an unprivileged
user (root ignores file permissions, so `chmod` alone proves nothing when tests run as root), a
tmpfs that fills up, a file size limit. Mounts are made in a private mount namespace
(`unshare`, as root or in a user namespace), so nothing outside the test sees them.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import in_namespace, needs_mounts

from logaudit.sources.bundled import sample_path
from logaudit.store.schema import ENTRY_SCHEMA
from logaudit.store.store import Store

pytestmark = pytest.mark.slow  # faults injected into real processes, mounts and disks

REPO = Path(__file__).resolve().parents[2]
BACKEND = "netra-backend-staging"
DAY1, DAY2 = "2025-09-09", "2025-09-10"  # the sample's two date partitions: 2530 and 2470 entries
READ_ONLY_NOTE = "note: {store} is read-only ({why}): nothing is saved to it; new cache results are kept for this run only\n"


# ------------------------------------------------------------------------------ helpers
def logaudit(*args: object, env: dict | None = None, cwd: Path = REPO, **kw) -> subprocess.CompletedProcess:
    """Run `logaudit ARGS` in a fresh process, exactly as a user would."""
    return subprocess.run([sys.executable, "-m", "logaudit", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, env={**os.environ, **(env or {})}, **kw)


def entry_file(store: Path, day: str) -> Path:
    (path,) = sorted((store / "entries" / f"date={day}").glob("*.parquet"))
    return path


def tree(root: Path) -> dict[str, str]:
    """relative path -> sha256 of every file below root."""
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def damaged_hint(store: Path, day: str | None = DAY1) -> str:
    hint = (f"  hint: `logaudit store check --store {store}` lists every damaged file; `logaudit store repair "
            f"--store {store}` moves them to {store}/quarantine/")
    return hint + (f"; then re-ingest the sources of {day}" if day else "; re-run the command afterwards")


def manifests(store: Path) -> list[dict]:
    return sorted((orjson.loads(p.read_bytes()) for p in (store / "manifest").glob("*.json")),
                  key=lambda r: r["started"])


# ------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def warm_store(tmp_path_factory) -> Path:
    """The bundled sample in a store whose caches (classification, comparison) are warm."""
    root = tmp_path_factory.mktemp("faults") / "store"
    Store(root).ingest_paths([sample_path()])
    for args in (["summarize"], ["compare", "--service", BACKEND]):
        assert logaudit(*args, "--store", root).returncode in (0, 2)
    return root


@pytest.fixture
def store(warm_store, tmp_path) -> Path:
    """A private copy of the warm store."""
    return Path(shutil.copytree(warm_store, tmp_path / "store"))


@pytest.fixture
def cold_store(warm_store, tmp_path) -> Path:
    """A private copy of the store as a version without the store marker left it, caches not built yet."""
    root = Path(shutil.copytree(warm_store, tmp_path / "cold", ignore=shutil.ignore_patterns("derived")))
    (root / "logaudit-store.json").unlink(missing_ok=True)
    return root


@pytest.fixture(scope="module")
def expected(warm_store, tmp_path_factory) -> dict[str, str]:
    """What the intact store answers (stdout), to compare faulty runs with."""
    copy = Path(shutil.copytree(warm_store, tmp_path_factory.mktemp("expected") / "store"))
    out = {}
    for name, args in {"summarize": ["summarize", "--format", "json"],
                       "compare": ["compare", "--service", BACKEND, "--format", "json"],
                       "info": ["store", "info", "--format", "json"],
                       "classify": ["classify", "--format", "json"]}.items():
        result = logaudit(*args, "--store", copy)
        assert result.returncode in (0, 2), result.stderr
        out[name] = result.stdout.replace(str(copy), "STORE")
    return out


def answer(stdout: str, store: Path | None = None) -> object:
    """A JSON answer with the store's path as STORE and floats to 12 significant digits: sums of
    floats aggregated in parallel may differ in their last bits from run to run."""
    def norm(v: object) -> object:
        if isinstance(v, float):
            return float(f"{v:.12g}")
        if isinstance(v, dict):
            return {k: norm(x) for k, x in v.items()}
        return [norm(x) for x in v] if isinstance(v, list) else v

    return norm(json.loads(stdout.replace(str(store), "STORE") if store else stdout))


def classified(stdout: str) -> tuple:
    """What `classify --format json` found (not how: cache hits and timings differ by design)."""
    doc = json.loads(stdout)
    return doc["matches"], doc["matched_entries"], doc["unclassified"], doc["entries"]


# ------------------------------------------------------------------------------ damaged entry files
READ_COMMANDS = {
    "summarize": ["summarize"],
    "compare": ["compare", "--service", BACKEND],
    "report": ["report", "--out", "{tmp}/report"],
    "store-info": ["store", "info"],
    "classify": ["classify"],
    "ingest": ["ingest", "-q", "{sample}"],
}


def read_command(command: str, tmp: object = None) -> list[str]:
    """READ_COMMANDS[command] with its placeholders filled in (at run time, not at collection)."""
    return [a.replace("{tmp}", str(tmp)).replace("{sample}", str(sample_path())) for a in READ_COMMANDS[command]]


@pytest.mark.parametrize("command", READ_COMMANDS)
def test_a_truncated_entry_file_is_named_with_its_fix(store, tmp_path, command):
    bad = entry_file(store, DAY1)
    bad.write_bytes(bad.read_bytes()[:5000])
    result = logaudit(*read_command(command, tmp_path), "--store", store)
    message = f"{bad}: damaged entry file: truncated or damaged Parquet file (no footer at the end)"
    assert (result.returncode, result.stdout, result.stderr) == (3, "", f"error: {message}\n{damaged_hint(store)}\n")
    if command == "ingest":  # the ingest that met the damage says so in the manifest
        last = manifests(store)[-1]
        assert (last["status"], last["error"], last["new_rows"]) == ("failed", message, 0)


def test_export_names_a_truncated_entry_file(store, tmp_path):
    bad = entry_file(store, DAY2)
    bad.write_bytes(bad.read_bytes()[:-1])
    result = logaudit("export", "--store", store, "--out", tmp_path / "exports", "--since", f"{DAY1}T00:00:00Z",
                      "--until", f"{DAY2}T12:00:00Z")
    hint = damaged_hint(store, DAY2).removeprefix("  hint: ")
    assert (result.returncode, result.stdout) == (3, "")
    assert result.stderr == (f"error: export failed: {bad}: damaged entry file: truncated or damaged Parquet file "
                             f"(no footer at the end) (hint: {hint})\n")
    assert not list((tmp_path / "exports").glob("*/*"))


@pytest.mark.parametrize("command", ["summarize", "classify", "store-info", "ingest"])
def test_a_foreign_parquet_file_is_named(store, command):
    foreign = store / "entries" / f"date={DAY1}" / "part-0-foreign.parquet"
    pq.write_table(pa.table({"foo": [1, 2]}), foreign)
    shutil.rmtree(store / "derived" / "matches")  # classification reads the file itself
    result = logaudit(*read_command(command), "--store", store)
    what = f"not a logaudit entry file: no columns timestamp, receive_timestamp, log_name, log_id and {len(ENTRY_SCHEMA) - 4} more"
    assert (result.returncode, result.stderr) == (3, f"error: {foreign}: {what}\n{damaged_hint(store)}\n")


def test_corrupt_data_inside_an_entry_file_is_named_when_read(store):
    bad = entry_file(store, DAY1)
    data = bytearray(bad.read_bytes())
    for i in range(10_000, 60_000, 7):  # inside the compressed column chunks; footer intact
        data[i] ^= 0x5A
    bad.write_bytes(bytes(data))
    shutil.rmtree(store / "derived" / "matches")
    result = logaudit("classify", "--store", store)
    message = f"{bad}: damaged entry file: row group 0 is unreadable (ZSTD decompression failed: Data corruption detected)"
    assert (result.returncode, result.stderr) == (3, f"error: {message}\n{damaged_hint(store)}\n")


def test_store_check_reads_every_row_unless_quick(store):
    bad = entry_file(store, DAY1)
    data = bytearray(bad.read_bytes())
    for i in range(10_000, 60_000, 7):
        data[i] ^= 0x5A
    bad.write_bytes(bytes(data))
    quick = logaudit("store", "check", "--quick", "--store", store)
    assert (quick.returncode, quick.stdout.startswith("ok: ")) == (0, True)  # footers and schemas are intact
    full = logaudit("store", "check", "--store", store)
    assert full.returncode == 3
    assert full.stdout.startswith(f"entries: {bad}: row group 0 is unreadable (ZSTD decompression failed: Data "
                                  f"corruption detected)\n  fix: `logaudit store repair` moves it to quarantine/; "
                                  f"then re-ingest the sources of {DAY1}\n")


# ------------------------------------------------------------------------------ damaged caches
def test_damaged_caches_are_rebuilt_silently(store, expected):
    index = next((store / "derived" / "matches").glob("*/date=*/*/index.json"))
    (chunk,) = index.parent.glob("c-*.parquet")
    chunk.write_bytes(chunk.read_bytes()[:100])  # a truncated result chunk
    other = sorted((store / "derived" / "matches").glob("*/date=*/*/index.json"))[-1]
    other.write_bytes(b"{not json")  # a damaged index
    aggregates = sorted((store / "derived").rglob("base-*.parquet")) + sorted((store / "derived").rglob("cat-*.parquet"))
    assert len(aggregates) == 4
    for path in aggregates:
        path.write_bytes(b"PAR1 nothing else")
    for name, args in {"summarize": ["summarize", "--format", "json"],
                       "compare": ["compare", "--service", BACKEND, "--format", "json"]}.items():
        result = logaudit(*args, "--store", store)
        assert (result.returncode in (0, 2), result.stderr) == (True, ""), name
        assert answer(result.stdout, store) == answer(expected[name]), name
    assert not chunk.exists() and len(list(index.parent.glob("c-*.parquet"))) == 1
    assert all(pq.read_table(p).num_rows for p in aggregates)  # rewritten whole
    assert logaudit("store", "check", "--store", store).returncode == 0


# ------------------------------------------------------------------------------ read-only stores
READ_ONLY_COMMANDS = {
    "summarize": ["summarize", "--format", "json"],
    "compare": ["compare", "--service", BACKEND, "--format", "json"],
    "info": ["store", "info", "--format", "json"],
    "classify": ["classify", "--format", "json"],
    "check": ["store", "check"],
}


def _read_only_script(store: Path, tmp_path: Path) -> str:
    runs = "\n".join(f"run {name} {' '.join(args)} --store {store}" for name, args in READ_ONLY_COMMANDS.items())
    return f"""
mount --bind {store} {store}
mount -o remount,bind,ro {store}
if touch {store}/probe 2>/dev/null; then echo "the bind mount is writable" >&2; exit 1; fi
{runs}
run report report --out {tmp_path}/report --store {store}
run export export --out {tmp_path}/exports --since {DAY1}T00:00:00Z --until {DAY2}T12:00:00Z --store {store}
run ingest ingest -q {sample_path()} --store {store}
run repair store repair --store {store}
"""


def _check_read_only_runs(results: dict, store: Path, tmp_path: Path, expected: dict, why: str, cold: bool) -> None:
    note = READ_ONLY_NOTE.format(store=store, why=why)
    for name in ("summarize", "compare"):
        assert answer(results[name].stdout, store) == answer(expected[name]), name
        assert results[name].returncode in (0, 2) and results[name].stderr == note, name
    assert json.loads(results["info"].stdout)["entries"] == 5000
    assert classified(results["classify"].stdout) == classified(expected["classify"])
    # the note is said once per command, and only by commands that would have written something
    assert [results[n].stderr for n in ("info", "check")] == ([note, note] if cold else ["", ""])
    assert results["check"].stdout.startswith("ok: ") and results["check"].returncode == 0
    assert results["report"].returncode == 0 and (tmp_path / "report" / "report.html").is_file()
    assert results["export"].returncode == 0 and (tmp_path / "exports" / BACKEND).is_dir()
    assert (results["ingest"].returncode, results["ingest"].stderr) == (
        3, f"error: read-only file system: cannot write {store}; the store is unchanged\n"
           "  hint: reading a read-only store works; ingest and pull need a writable one\n")
    assert (results["repair"].returncode, results["repair"].stderr.splitlines()[-2:]) == (
        3, [f"error: {store}: the store is read-only; it cannot be repaired in place",
            "  hint: `logaudit store check` works read-only; repair needs write access"])


@needs_mounts
@pytest.mark.parametrize("caches", ["warm", "cold"])
def test_reads_work_on_a_read_only_mount(store, cold_store, tmp_path, expected, caches):
    root = store if caches == "warm" else cold_store
    before = tree(root)
    results = in_namespace(_read_only_script(root, tmp_path), tmp_path / "results")
    _check_read_only_runs(results, root, tmp_path, expected, "Read-only file system", cold=caches == "cold")
    assert tree(root) == before  # nothing was written, not even the store marker


@pytest.mark.skipif(os.geteuid() == 0 and shutil.which("setpriv") is None, reason="no setpriv to drop root")
def test_reads_work_on_a_store_without_write_permission(warm_store, expected):
    """`chmod -R a-w`: as root, the commands run as an unprivileged user (root ignores permissions)."""
    base = Path(tempfile.mkdtemp(prefix="logaudit-ro-"))  # reachable by that user, unlike pytest's tmp folders
    try:
        base.chmod(0o755)
        root = Path(shutil.copytree(warm_store, base / "store", ignore=shutil.ignore_patterns("derived")))
        subprocess.run(["chmod", "-R", "a-w", root], check=True)
        before = tree(root)
        drop = ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups"] if os.geteuid() == 0 else []
        out = {}
        for name in ("summarize", "compare"):
            out[name] = subprocess.run([*drop, sys.executable, "-m", "logaudit", *READ_ONLY_COMMANDS[name],
                                        "--store", root], cwd=base, capture_output=True, text=True,
                                       env={**os.environ, "HOME": str(base)})
        for name, result in out.items():
            assert answer(result.stdout, root) == answer(expected[name]), result.stderr
            assert result.stderr == READ_ONLY_NOTE.format(store=root, why="Permission denied"), name
        assert tree(root) == before
    finally:
        subprocess.run(["chmod", "-R", "u+w", base], check=False)
        shutil.rmtree(base, ignore_errors=True)


# ------------------------------------------------------------------------------ a full disk
DISK_FULL = re.compile(r"error: disk full while writing (?P<file>\S+): free space and re-run; (?P<state>.*)\n")


@needs_mounts
def test_a_full_disk_fails_the_ingest_cleanly(tmp_path):
    disk, after = tmp_path / "disk", tmp_path / "after"
    disk.mkdir()
    results = in_namespace(f"""
mount -t tmpfs -o size=150k tmpfs {disk}
run ingest ingest -q {sample_path()} --store {disk}/store
cp -a {disk}/store {after}
""", tmp_path / "results")
    ingest = results["ingest"]
    match = DISK_FULL.fullmatch(ingest.stderr)
    assert (ingest.returncode, bool(match), match["state"]) == (3, True, "the store is unchanged"), ingest.stderr
    assert re.fullmatch(rf"{disk}/store/entries/date={DAY1}/part-\S+\.parquet", match["file"])
    (record,) = manifests(after)
    assert (record["status"], record["error"], record["new_rows"], record["files_written"]) == (
        "failed", ingest.stderr.removeprefix("error: ").strip(), 0, 0)
    assert not [p for p in after.rglob("*") if p.name.endswith(".tmp")]
    assert not list((after / "entries").rglob("*.parquet"))


@needs_mounts
def test_a_disk_filling_up_mid_ingest_keeps_whole_files_and_a_rerun_adds_the_rest(tmp_path):
    disk, after = tmp_path / "disk", tmp_path / "after"
    disk.mkdir()
    results = in_namespace(f"""
mount -t tmpfs -o size=300k tmpfs {disk}
run ingest ingest -q {sample_path()} --store {disk}/store
cp -a {disk}/store {after}
mount -o remount,size=8m {disk}
run rerun ingest -q {sample_path()} --store {disk}/store
run check store check --store {disk}/store
""", tmp_path / "results")
    match = DISK_FULL.fullmatch(results["ingest"].stderr)
    assert match and results["ingest"].returncode == 3, results["ingest"].stderr
    assert match["file"].startswith(f"{disk}/store/entries/date={DAY2}/part-")
    assert match["state"] == "1 entry file written before the failure is complete and kept; re-running adds exactly what is missing"
    (record,) = manifests(after)
    assert (record["status"], record["new_rows"], record["files_written"]) == ("failed", 2530, 1)
    assert not [p for p in after.rglob("*") if p.name.endswith(".tmp")]
    assert results["rerun"].returncode == 0
    assert results["rerun"].stdout.splitlines()[-1].startswith("total: 5000 read, 2470 new, 2530 duplicate, 0 rejected")
    assert results["check"].returncode == 0, results["check"].stdout


@needs_mounts
def test_a_full_disk_fails_a_read_that_writes_its_cache_cleanly(cold_store, tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    logaudit("store", "info", "--store", cold_store)  # adopted: the marker is there
    results = in_namespace(f"""
mount -t tmpfs -o size=2m tmpfs {disk}
cp -a {cold_store} {disk}/store
dd if=/dev/zero of={disk}/filler bs=4k 2>/dev/null || true
run summarize summarize --store {disk}/store
find {disk}/store -name '*.tmp' >{tmp_path}/tmp-files
""", tmp_path / "results")
    match = DISK_FULL.fullmatch(results["summarize"].stderr)
    assert match and results["summarize"].returncode == 3, results["summarize"].stderr
    assert re.fullmatch(rf"{disk}/store/derived/matches/\w+/(shape\.json|date={DAY1}/part-\S+/c-\w+\.parquet)",
                        match["file"])
    assert match["state"] == "the store is unchanged"
    assert (tmp_path / "tmp-files").read_text() == ""


def test_a_file_size_limit_fails_the_ingest_cleanly(tmp_path):
    """RLIMIT_FSIZE: the kernel refuses the write with EFBIG (SIGXFSZ ignored, as a shell's ulimit -f leaves it)."""
    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))

    store = tmp_path / "store"
    result = subprocess.run([sys.executable, "-m", "logaudit", "ingest", "-q", sample_path(), "--store", store],
                            cwd=REPO, capture_output=True, text=True, preexec_fn=limit)
    assert result.returncode == 3, result.stderr
    assert re.fullmatch(rf"error: file size limit exceeded while writing {store}/entries/date={DAY1}/part-\S+\.parquet: "
                        r"raise the limit \(ulimit -f\) and re-run; the store is unchanged\n", result.stderr)
    (record,) = manifests(store)
    assert record["status"] == "failed" and not list(store.rglob("*.tmp"))


# ------------------------------------------------------------------------------ the store's format
def test_a_store_of_a_newer_format_is_refused(store, tmp_path):
    (store / "logaudit-store.json").write_text('{"format": 2, "created_by": "logaudit 9.0"}')
    before = tree(store)
    for args in (["summarize"], ["store", "info"], ["ingest", "-q", sample_path()], ["classify"]):
        result = logaudit(*args, "--store", store)
        assert (result.returncode, result.stderr) == (
            3, f"error: {store}: this store was written by a newer logaudit (format 2); upgrade logaudit\n"
               "  hint: this logaudit (0.1.0) reads store format 1\n"), args
    assert tree(store) == before


def test_a_store_without_a_marker_is_adopted_once(cold_store):
    result = logaudit("store", "info", "--store", cold_store)
    assert result.returncode == 0 and result.stderr == ""
    assert orjson.loads((cold_store / "logaudit-store.json").read_bytes()) == {"format": 1, "created_by": "logaudit 0.1.0"}


def test_a_directory_that_is_not_a_store(tmp_path):
    home = tmp_path / "home"
    (home / "notes").mkdir(parents=True)
    (home / "todo.txt").write_text("x")
    before = tree(home)
    for args in (["summarize"], ["store", "info"], ["classify"], ["store", "check"]):
        result = logaudit(*args, "--store", home)
        assert (result.returncode, result.stderr) == (
            3, f"error: {home}: not a logaudit store (no logaudit-store.json, entries/ or manifest/)\n"
               "  hint: pass the store's directory with --store or LOGAUDIT_STORE\n"), args
    result = logaudit("ingest", "-q", sample_path(), "--store", home)
    assert (result.returncode, result.stderr) == (
        3, f"error: {home}: not a logaudit store, and not empty: refusing to create a store here\n"
           "  hint: give --store / LOGAUDIT_STORE a new or empty directory\n")
    assert tree(home) == before and sorted(p.name for p in home.iterdir()) == ["notes", "todo.txt"]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert logaudit("ingest", "-q", sample_path(), "--store", empty).returncode == 0
    assert (empty / "logaudit-store.json").is_file() and len(list(empty.glob("entries/*/*.parquet"))) == 2


def test_a_damaged_marker_is_named_and_repaired(store):
    (store / "logaudit-store.json").write_text("{")
    result = logaudit("summarize", "--store", store)
    assert (result.returncode, result.stderr) == (
        3, f"error: {store}/logaudit-store.json: damaged store marker (unexpected end of data: line 1 column 2 (char 1))\n"
           f"  hint: `logaudit store repair --store {store}` rewrites it\n")
    repaired = logaudit("store", "repair", "--store", store)
    assert repaired.returncode == 0 and repaired.stdout.startswith(
        "rewrote logaudit-store.json: damaged store marker (unexpected end of data: line 1 column 2 (char 1)) -> quarantine/")
    assert logaudit("summarize", "--store", store).returncode == 0


# ------------------------------------------------------------------------------ ~ in paths
def test_tilde_in_paths_is_the_home_directory(tmp_path):
    home, work = tmp_path / "home", tmp_path / "work"
    (home / "logs").mkdir(parents=True)
    work.mkdir()
    shutil.copy(sample_path(), home / "logs" / "sample.jsonl.gz")
    (home / "team.yaml").write_text("catalog: team\nversion: 1\npatterns:\n  - {id: team-redis-retry, title: Redis "
                                    "retry, category: warning, regex: 'Retrying Redis connection'}\n")
    env = {"HOME": str(home), "LOGAUDIT_STORE": "~/store", "LOGAUDIT_CATALOG": "~/team.yaml"}
    steps = [["ingest", "-q", "~/logs/sample.jsonl.gz"],
             ["summarize"],
             ["report", "--out", "~/report", "--catalog", "~/team.yaml"],
             ["export", "--out", "~/exports", "--since", f"{DAY1}T00:00:00Z", "--until", f"{DAY2}T12:00:00Z",
              "--service", BACKEND]]
    for args in steps:
        result = logaudit(*args, env=env, cwd=work)
        assert result.returncode == 0, (args, result.stderr)
    assert len(list((home / "store" / "entries").glob("*/*.parquet"))) == 2
    assert (home / "report" / "report.md").is_file()
    catalogs = json.loads((home / "report" / "summary.json").read_text())["catalogs"]
    assert [(c["name"], c["path"]) for c in catalogs][-1] == ("team", str(home / "team.yaml"))
    assert list((home / "exports" / BACKEND).glob("*/_EXPORT.json"))
    assert list(work.iterdir()) == []  # no literal "~" folder


# ------------------------------------------------------------------------------ store check / repair
def _damage_everything(store: Path) -> dict[str, str]:
    """One fault of each kind; returns {relative path: kind}."""
    bad = entry_file(store, DAY1)
    bad.write_bytes(bad.read_bytes()[:4000])
    first, second = sorted((store / "manifest").glob("*.json"))[:1] * 2
    first.write_bytes(b'{"ingest_id": ')
    running = store / "manifest" / "20250101T000000000000Z-deadbeef.json"
    running.write_bytes(orjson.dumps({"ingest_id": "20250101T000000000000Z-deadbeef", "kind": "ingest",
                                      "status": "running", "started": "2025-01-01T00:00:00Z"}))
    (store / "rejects").mkdir(exist_ok=True)
    rejects = store / "rejects" / "x.jsonl"
    rejects.write_text('{"source": "a"}\n[1]\n')
    tmp = store / "entries" / f"date={DAY2}" / ".part-x.parquet.tmp"
    tmp.write_bytes(b"half")
    chunk = next((store / "derived" / "matches").glob(f"*/date={DAY2}/*/c-*.parquet"))
    chunk.write_bytes(chunk.read_bytes()[:50])
    return {p.relative_to(store).as_posix(): k for p, k in [
        (bad, "entries"), (first, "manifest"), (running, "running"), (rejects, "rejects"), (tmp, "tmp"),
        (chunk, "match-cache")]}


def test_store_check_lists_every_problem_with_its_fix(store):
    damaged = _damage_everything(store)
    result = logaudit("store", "check", "--store", store, "--format", "json")
    assert result.returncode == 3
    report = json.loads(result.stdout)
    assert report["ok"] is False and report["writer_running"] is False
    got = {p["path"]: (p["kind"], p["problem"], p["fix"]) for p in report["problems"]}
    assert {k: v[0] for k, v in got.items()} == damaged
    bad = entry_file(store, DAY1).relative_to(store).as_posix()
    assert got[bad][1:] == ("truncated or damaged Parquet file (no footer at the end)",
                            "`logaudit store repair` moves it to quarantine/; then re-ingest the sources of 2025-09-09")
    (manifest,) = [k for k, v in damaged.items() if v == "manifest"]
    assert got[manifest][1].startswith("not valid JSON (")
    assert got["rejects/x.jsonl"][1:] == ("line 2 is not a JSON object", "`logaudit store repair` moves it to quarantine/")
    assert got["manifest/20250101T000000000000Z-deadbeef.json"][1:] == (
        "ingest 20250101T000000000000Z-deadbeef is still marked running",
        "no logaudit process is writing to the store: `logaudit store repair` marks it interrupted")
    assert got[f"entries/date={DAY2}/.part-x.parquet.tmp"][1] == "temporary file of an unfinished write"
    (chunk,) = [k for k, v in damaged.items() if v == "match-cache"]
    assert got[chunk][1:] == ("truncated or damaged Parquet file (no footer at the end)",
                              "derived data: `logaudit store repair` moves it to quarantine/ and it is rebuilt when "
                              "next needed")
    text = logaudit("store", "check", "--store", store)
    assert text.returncode == 3
    assert f"entries: {store}/{bad}: truncated or damaged Parquet file (no footer at the end)\n" in text.stdout
    assert text.stdout.endswith(f"6 problem(s) in {sum(report['checked'].values())} files checked in {store}; "
                                f"`logaudit store repair --store {store}` fixes them\n")


def test_store_repair_quarantines_removes_and_marks(store, expected):
    damaged = _damage_everything(store)
    moved = {k for k, v in damaged.items() if v in ("entries", "manifest", "rejects")}
    originals = {k: (store / k).read_bytes() for k in damaged if damaged[k] != "tmp" and damaged[k] != "running"}
    result = logaudit("store", "repair", "--store", store, "--format", "json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    actions = {a["path"]: (a["action"], a["to"]) for a in report["actions"]}
    quarantine = Path(report["quarantine"])
    assert quarantine.parent == store / "quarantine"
    stamp = quarantine.name
    (chunk,) = [k for k, v in damaged.items() if v == "match-cache"]  # moves with its folder (index, chunks)
    assert actions == {**{k: ("quarantined", f"quarantine/{stamp}/{k}") for k in moved},
                       chunk: ("quarantined", f"quarantine/{stamp}/{chunk.rsplit('/', 1)[0]}"),
                       f"entries/date={DAY2}/.part-x.parquet.tmp": ("removed", None),
                       "manifest/20250101T000000000000Z-deadbeef.json": ("marked-interrupted", None)}
    for k, data in originals.items():  # moved whole, not copied
        assert (quarantine / k).read_bytes() == data and not (store / k).exists()
    record = orjson.loads((store / "manifest" / "20250101T000000000000Z-deadbeef.json").read_bytes())
    assert record["status"] == "interrupted" and "logaudit store repair" in record["error"]
    check = logaudit("store", "check", "--store", store)
    assert (check.returncode, check.stdout.startswith("ok: ")) == (0, True), check.stdout
    assert logaudit("store", "repair", "--store", store).stdout == f"nothing to repair in {store}\n"
    rerun = logaudit("ingest", "-q", sample_path(), "--store", store)  # what the repair said to do
    assert rerun.stdout.splitlines()[-1].startswith("total: 5000 read, 2530 new, 2470 duplicate")
    summary = logaudit("summarize", "--format", "json", "--store", store)
    assert answer(summary.stdout, store) == answer(expected["summarize"])


def test_repair_waits_for_no_writer_and_check_does_not_judge_a_running_ingest(store):
    tmp = store / "entries" / f"date={DAY1}" / ".part-live.parquet.tmp"
    tmp.write_bytes(b"being written")
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from logaudit.store.store import Store\n"
        f"with Store({str(store)!r}).lock():\n    print('locked', flush=True); time.sleep(60)")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "locked\n"
        check = logaudit("store", "check", "--store", store, "--format", "json")
        assert (check.returncode, json.loads(check.stdout)["writer_running"]) == (0, True)
        repair = logaudit("store", "repair", "--store", store)
        assert (repair.returncode, repair.stderr) == (
            6, f"error: {store}: another logaudit process is writing to this store\n"
               "  hint: wait for it to finish, or use another --store\n")
        assert tmp.exists()
    finally:
        holder.kill()
        holder.wait()
    assert logaudit("store", "repair", "--store", store).stdout.startswith(
        f"removed entries/date={DAY1}/.part-live.parquet.tmp: temporary file of an unfinished write\n")


# ------------------------------------------------------------------------------ records and cursors
def test_store_info_names_an_unreadable_manifest_record(store, cli):
    record = sorted((store / "manifest").glob("*.json"))[0]
    record.write_bytes(record.read_bytes()[:30])
    result = cli("store", "info", "--store", store)
    assert result.exit_code == 0 and "entries:    5000 in 2 files" in result.stdout
    assert result.stderr == (f"warning: {record}: unreadable manifest record; `logaudit store check` and "
                             "`logaudit store repair` deal with it (the entries it recorded are kept)\n")
    info = json.loads(cli("store", "info", "--format", "json", "--store", store).stdout)
    assert info["manifest_unreadable"] == [f"manifest/{record.name}"]


def test_a_damaged_pull_cursor_is_said_once_and_the_pull_starts_over(tmp_path, cli):
    from fake_logging import FakeLogging, make_entries

    store = tmp_path / "store"
    entries = make_entries(30)
    server = FakeLogging(entries, project="my-project").start()
    try:
        args = ("pull", "--project", "my-project", "--service", "hello", "--since", "2026-11-28T09:00:00Z",
                "--until", "2026-11-28T12:00:00Z", "--endpoint", server.url, "--max-requests-per-minute", "60000",
                "--store", store, "--quiet")
        assert cli(*args).exit_code == 0
        (cursor,) = (store / "cursors").glob("*.json")
        cursor.write_text("{broken")
        first_requests = len(server.requests)
        result = cli(*args)
        assert (result.exit_code, result.stderr) == (0, f"note: {cursor}: damaged pull cursor ignored: this pull "
                                                        "starts from --since (`logaudit store repair` moves the file aside)\n")
        again = server.requests[first_requests:]
        assert again and 'timestamp>="2026-11-28T09:00:00Z"' in again[0].body["filter"]  # from --since, not resumed
        assert manifests(store)[-1]["duplicates"] == 30 and Store(store).read_entries().num_rows == 30
        assert orjson.loads(cursor.read_bytes())["complete"] is True  # written again, whole
    finally:
        server.stop()
