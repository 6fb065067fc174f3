"""Verifying and repairing a store: `Store.check()` and `Store.repair()` (`logaudit store check|repair`).

`check` reads every file logaudit keeps in the store and says, per damaged file, what is wrong
and how to fix it:

==============  ===============================================================  ==========================
kind            what is verified                                                 fix
==============  ===============================================================  ==========================
marker          ``logaudit-store.json`` is the JSON logaudit writes              repair rewrites it
entries         Parquet framing and footer, the entry schema, row counts, every   quarantine, re-ingest
                column readable (not with `quick`), rows inside their date
manifest        each record is a JSON object with an ingest id and status        quarantine
rejects         each line is a JSON object                                       quarantine
derived         ``derived/*/*/shape.json``: what a kind's data depends on         quarantine (rewritten)
match-cache     ``derived/matches/``: index JSON, result chunks readable         quarantine (rebuilt)
aggregates      ``derived/aggregates*/``: per-file aggregates readable           quarantine (rebuilt)
slices          ``derived/slices/``: hour slices readable                        quarantine (rebuilt)
cursor          ``cursors/``: pull cursors                                       quarantine (pull restarts)
tmp             temporary files of writes that never finished                    removed
running         manifest records still `running` while no process writes         marked `interrupted`
==============  ===============================================================  ==========================

Cache folders of earlier versions (``matches/``, ``cache/``) are not read by logaudit and not
checked; `logaudit store clear-cache` removes them.

`repair` holds the store's lock (so no ingest or pull runs meanwhile) and the match cache's
lock, then moves damaged files to ``quarantine/<time>/<their path>`` (renames, so nothing is
lost and nothing is half-moved), removes stale temporary files, and marks `running` records
`interrupted`. Temporary files of derived data other than matches are written by readers, which take no lock: only
those older than STALE_TMP_SECONDS are removed.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from logaudit.core.errors import StoreError
from logaudit.core.lock import FileLock
from logaudit.core.version import __version__
from logaudit.store.derived import DERIVED, SHAPE_FILE
from logaudit.store.layout import MARKER, QUARANTINE, STORE_FORMAT, atomic_write, parquet_framing_problem
from logaudit.store.schema import ENTRY_SCHEMA

if TYPE_CHECKING:
    from logaudit.store.store import Store

#: Columns without which a Parquet file is not an entry file at all.
_KEY = frozenset({"timestamp", "log_name", "insert_id"})
#: A temporary file of derived data (other than matches) older than this belongs to no running command.
STALE_TMP_SECONDS = 3600.0


def _matches_lock(root: Path) -> Path:
    return root / DERIVED / "matches" / ".lock"

_QUARANTINE = "`logaudit store repair` moves it to quarantine/"
_FIXES = {
    "marker": "`logaudit store repair` rewrites it",
    "entries": _QUARANTINE + "; then re-ingest the sources of {day}",
    "manifest": _QUARANTINE + " (the entries it recorded are kept)",
    "rejects": _QUARANTINE,
    "derived": "derived data: " + _QUARANTINE + " and it is written again when next needed",
    "match-cache": "derived data: " + _QUARANTINE + " and it is rebuilt when next needed",
    "aggregates": "derived data: " + _QUARANTINE + " and it is rebuilt when next needed",
    "slices": "derived data: " + _QUARANTINE + " and it is rebuilt when next needed",
    "cursor": _QUARANTINE + "; the next pull of that query starts from --since again",
    "tmp": "left by a write that never finished: `logaudit store repair` removes it",
    "running": "no logaudit process is writing to the store: `logaudit store repair` marks it interrupted",
}


@dataclass
class StoreProblem:
    """One damaged or stale file: `path` is relative to the store."""

    path: str
    kind: str
    problem: str
    fix: str


@dataclass
class CheckReport:
    """What `check` verified (`checked`: files per kind) and found."""

    store: str
    checked: dict[str, int] = field(default_factory=dict)
    problems: list[StoreProblem] = field(default_factory=list)
    writer_running: bool = False  # an ingest or pull held the lock: its temporary files were not judged

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {"store": self.store, "ok": self.ok, "checked": self.checked, "files": sum(self.checked.values()),
                "writer_running": self.writer_running, "problems": [asdict(p) for p in self.problems]}


@dataclass
class RepairAction:
    """`action` is quarantined, removed, marked-interrupted or rewrote; `to` where a file went."""

    action: str
    path: str
    reason: str
    to: str | None = None


@dataclass
class RepairReport:
    store: str
    actions: list[RepairAction] = field(default_factory=list)
    quarantine: str | None = None  # the folder damaged files were moved to

    def to_dict(self) -> dict[str, Any]:
        return {"store": self.store, "quarantine": self.quarantine, "actions": [asdict(a) for a in self.actions]}


# ============================================================================ one file
def file_kind(rel: str) -> str | None:
    """What a store file (path relative to the store, POSIX) is, or None when logaudit does not read it."""
    parts = rel.split("/")
    name = parts[-1]
    if name.endswith(".tmp"):
        return "tmp"
    if rel == MARKER:
        return "marker"
    top = parts[0]
    if top == "entries" and len(parts) == 3 and parts[1].startswith("date=") and name.endswith(".parquet"):
        return "entries"
    if top == "manifest" and len(parts) == 2 and name.endswith(".json"):
        return "manifest"
    if top == "rejects" and len(parts) == 2 and name.endswith(".jsonl"):
        return "rejects"
    if top == DERIVED and len(parts) >= 4:
        return _derived_kind(parts[1], name, len(parts))
    if top == "cursors" and name.endswith(".json"):
        return "cursor"
    return None


def _derived_kind(kind: str, name: str, depth: int) -> str | None:
    """The check kind of a file under ``derived/<kind>/<digest>/`` (`depth`: parts of its path)."""
    if name == SHAPE_FILE and depth == 4:
        return "derived"
    if kind == "matches" and (name == "index.json" or name.endswith(".parquet")):
        return "match-cache"
    if kind.startswith("aggregates") and name.endswith(".parquet"):
        return "aggregates"
    if kind == "slices" and name.endswith(".arrow"):
        return "slices"
    return None


def file_problem(root: Path, path: Path, *, deep: bool = True) -> str | None:
    """What is wrong with one store file, or None (also for files logaudit does not read)."""
    kind = file_kind(_rel(root, path))
    if kind in ("entries",):
        return entry_file_problem(path, deep=deep)
    if kind in ("match-cache", "aggregates") and path.suffix == ".parquet":
        return _parquet_problem(path, deep=deep)
    if kind == "match-cache":
        return _json_problem(path, lambda d: isinstance(d.get("fingerprints"), dict), "a match index") \
            or _chunks_problem(path)
    if kind == "slices":
        return _arrow_problem(path)
    if kind == "derived":
        return _json_problem(path, lambda d: isinstance(d.get("digest"), str) and isinstance(d.get("shape"), dict),
                             "a derived data shape")
    if kind == "manifest":
        return _json_problem(path, lambda d: isinstance(d.get("ingest_id"), str) and isinstance(d.get("status"), str),
                             "a manifest record")
    if kind == "rejects":
        return _jsonl_problem(path)
    if kind == "cursor":
        return _json_problem(path, lambda d: all(isinstance(d.get(k), str) for k in ("project", "filter", "boundary")),
                             "a pull cursor")
    if kind == "marker":
        return _json_problem(path, lambda d: d.get("format") == STORE_FORMAT, f"a format {STORE_FORMAT} store marker")
    return None


def entry_file_problem(path: Path, *, deep: bool = True) -> str | None:
    """What is wrong with an entry file: framing, footer, schema, row counts; with `deep` also
    every column of every row group, and the rows' dates against the file's partition."""
    problem = parquet_framing_problem(path)
    if problem:
        return problem
    try:
        pfile = pq.ParquetFile(path)
        schema, meta = pfile.schema_arrow, pfile.metadata
    except (pa.ArrowException, OSError) as err:
        return f"unreadable Parquet footer ({_short(err)})"
    missing = [f.name for f in ENTRY_SCHEMA if f.name not in schema.names]
    if missing:
        what = "a logaudit entry file" if set(missing) & _KEY else f"an entry file of store format {STORE_FORMAT}"
        return (f"not {what}: no column{'s' if len(missing) > 1 else ''} {', '.join(missing[:4])}"
                + (f" and {len(missing) - 4} more" if len(missing) > 4 else ""))
    for f in ENTRY_SCHEMA:
        found = schema.field(f.name).type
        if not found.equals(f.type):
            return f"not a logaudit entry file of this version: column {f.name} is {found}, expected {f.type}"
    in_groups = sum(meta.row_group(i).num_rows for i in range(meta.num_row_groups))
    if in_groups != meta.num_rows:
        return f"row counts disagree: the footer says {meta.num_rows} rows, its row groups hold {in_groups}"
    return _read_entry_rows(pfile, path, meta.num_rows) if deep else None


def _read_entry_rows(pfile: pq.ParquetFile, path: Path, expected: int) -> str | None:
    import pyarrow.compute as pc

    rows, days = 0, set()
    for i in range(pfile.metadata.num_row_groups):
        try:
            group = pfile.read_row_group(i)
        except (pa.ArrowException, OSError) as err:
            return f"row group {i} is unreadable ({_short(err)})"
        rows += group.num_rows
        if group.num_rows:
            bounds = pc.min_max(group["timestamp"])
            days.update(v.as_py().date().isoformat() for v in (bounds["min"], bounds["max"]) if v.is_valid)
    if rows != expected:
        return f"holds {rows} rows where its footer says {expected}"
    outside = sorted(d for d in days if f"date={d}" != path.parent.name)
    if outside:
        return f"holds entries of {outside[0]}, outside its partition {path.parent.name}: not written by logaudit"
    return None


def _parquet_problem(path: Path, *, deep: bool) -> str | None:
    problem = parquet_framing_problem(path)
    if problem or not deep:
        return problem
    try:
        pq.read_table(path)
    except (pa.ArrowException, OSError) as err:
        return f"unreadable ({_short(err)})"
    return None


def _arrow_problem(path: Path) -> str | None:
    import pyarrow.feather as feather

    try:
        feather.read_table(path, memory_map=False).validate(full=True)
    except (pa.ArrowException, OSError) as err:
        return f"unreadable Arrow file ({_short(err)})"
    return None


def _load_json(path: Path) -> tuple[Any, str | None]:
    try:
        return orjson.loads(path.read_bytes()), None
    except OSError as err:
        return None, f"cannot be read ({err.strerror})"
    except orjson.JSONDecodeError as err:
        return None, f"not valid JSON ({_short(err)})"


def _json_problem(path: Path, valid: Any, what: str) -> str | None:
    data, problem = _load_json(path)
    if problem:
        return problem
    if not isinstance(data, dict) or not valid(data):
        return f"valid JSON but not {what}"
    return None


def _jsonl_problem(path: Path) -> str | None:
    try:
        lines = path.read_bytes().splitlines()
    except OSError as err:
        return f"cannot be read ({err.strerror})"
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            ok = isinstance(orjson.loads(line), dict)
        except orjson.JSONDecodeError as err:
            return f"line {n} is not valid JSON ({_short(err)})"
        if not ok:
            return f"line {n} is not a JSON object"
    return None


def _chunks_problem(index: Path) -> str | None:
    """A match index naming chunk files that are gone."""
    data, _ = _load_json(index)
    names = sorted({c for c in data["fingerprints"].values() if isinstance(c, str)})
    gone = [n for n in names if not (index.parent / n).is_file()]
    return f"names result chunk {gone[0]}, which is missing" if gone else None


def _short(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return (text[:160] + "...") if len(text) > 160 else text or type(err).__name__


def _rel(root: Path, path: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


# ============================================================================ the whole store
def check(store: Store, *, quick: bool = False) -> CheckReport:
    """Verify every file logaudit keeps in `store` (`quick`: footers and schemas, not every row)."""
    with _lock_probe(store.root / ".lock") as busy, _lock_probe(_matches_lock(store.root)) as matches_busy:
        return _check(store, quick=quick, busy=busy, matches_busy=matches_busy)


def _check(store: Store, *, quick: bool, busy: bool, matches_busy: bool) -> CheckReport:
    root = store.root
    report = CheckReport(store=str(root), writer_running=busy)
    checked: Counter[str] = Counter()
    if store.marker_problem:
        report.problems.append(StoreProblem(MARKER, "marker", store.marker_problem, _FIXES["marker"]))
    now = time.time()
    for path in _files(root):
        rel = _rel(root, path)
        kind = file_kind(rel)
        if kind is None or (kind == "marker" and store.marker_problem):
            continue
        if kind == "tmp":
            if _stale_tmp(rel, path, now, busy=busy, matches_busy=matches_busy):
                report.problems.append(StoreProblem(rel, "tmp", "temporary file of an unfinished write", _FIXES["tmp"]))
            continue
        checked[kind] += 1
        problem = file_problem(root, path, deep=not quick)
        if problem:
            fix = _FIXES[kind].format(day=rel.split("/")[1].removeprefix("date=") if kind == "entries" else "")
            report.problems.append(StoreProblem(rel, kind, problem, fix))
        elif kind == "manifest" and not busy:
            record = orjson.loads(path.read_bytes())
            if record.get("status") == "running":
                report.problems.append(StoreProblem(
                    rel, "running", f"{record.get('kind', 'ingest')} {record['ingest_id']} is still marked running",
                    _FIXES["running"]))
    report.checked = dict(sorted(checked.items()))
    return report


def _files(root: Path) -> Iterator[Path]:
    """Every file below `root` except the quarantine, sorted."""
    for folder, dirs, files in os.walk(root):
        if Path(folder) == root:
            dirs[:] = [d for d in dirs if d != QUARANTINE]
        dirs.sort()
        for name in sorted(files):
            yield Path(folder) / name


def _stale_tmp(rel: str, path: Path, now: float, *, busy: bool, matches_busy: bool) -> bool:
    """Whether a temporary file belongs to no running command (see the module docstring)."""
    parts = rel.split("/")
    if parts[0] in ("entries", "manifest", "rejects", "cursors"):
        return not busy
    if parts[:2] == [DERIVED, "matches"]:
        return not matches_busy
    try:
        return now - path.stat().st_mtime > STALE_TMP_SECONDS
    except FileNotFoundError:
        return False


@contextlib.contextmanager
def _lock_probe(path: Path) -> Iterator[bool]:
    """Yield whether another process holds the flock on `path` (a read-only open is enough)."""
    try:
        lock = FileLock(path, create=False, shared=True)
    except OSError:
        yield False  # no lock file: nobody ever wrote here
        return
    with lock:
        yield not lock.acquire(wait=False)


@contextlib.contextmanager
def _hold(path: Path) -> Iterator[None]:
    """Hold the exclusive flock on `path` (waiting for it) when the file exists."""
    try:
        lock = FileLock(path, create=False)
    except FileNotFoundError:
        yield
        return
    with lock:
        lock.acquire()
        yield


def repair(store: Store) -> RepairReport:
    """Quarantine damaged files, remove stale temporary files, mark dead `running` records
    `interrupted`. Holds the store's lock (LockedError while an ingest or pull runs)."""
    if not store.writable:
        raise StoreError(f"{store.root}: the store is read-only; it cannot be repaired in place",
                         hint="`logaudit store check` works read-only; repair needs write access")
    report = RepairReport(store=str(store.root))
    with store.lock(), _hold(_matches_lock(store.root)):
        found = _check(store, quick=False, busy=False, matches_busy=False)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        folder = store.root / QUARANTINE / stamp
        for problem in found.problems:
            report.actions.append(_repair_one(store, problem, folder))
        if any(a.action == "quarantined" for a in report.actions):
            report.quarantine = str(folder)
    return report


def _repair_one(store: Store, problem: StoreProblem, quarantine: Path) -> RepairAction:
    path = store.root / problem.path
    if problem.kind == "tmp":
        path.unlink(missing_ok=True)
        return RepairAction("removed", problem.path, problem.problem)
    if problem.kind == "running":
        record = orjson.loads(path.read_bytes())
        note = (f"marked interrupted by logaudit store repair at {datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ}: "
                "no process was writing to the store")
        record.update(status="interrupted", error=record.get("error") or note)
        atomic_write(path, orjson.dumps(record, option=orjson.OPT_INDENT_2))
        return RepairAction("marked-interrupted", problem.path, problem.problem)
    if problem.kind == "match-cache":  # the results of one entry file go together: its index names its chunks
        path = path.parent
    target = quarantine / _rel(store.root, path)
    if path.exists():  # (a cache folder with two damaged files moves once)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.rename(path, target)
    if problem.kind == "marker":
        atomic_write(path, orjson.dumps({"format": STORE_FORMAT, "created_by": f"logaudit {__version__}"},
                                        option=orjson.OPT_INDENT_2))
        return RepairAction("rewrote", problem.path, problem.problem, _rel(store.root, target))
    return RepairAction("quarantined", problem.path, problem.problem, _rel(store.root, target))


__all__ = ["STALE_TMP_SECONDS", "CheckReport", "RepairAction", "RepairReport", "StoreProblem", "check",
           "entry_file_problem", "file_kind", "file_problem", "repair"]
