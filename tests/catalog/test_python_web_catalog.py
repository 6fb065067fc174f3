"""The shipped catalogs on real-world lines of Python web services on Cloud Run.

tests/fixtures/python-web-corpus.yaml holds the lines (gunicorn, uvicorn, Starlette/FastAPI, Django,
Flask, SQLAlchemy, psycopg2, asyncpg, PyMySQL, redis-py, httpx, requests, aiohttp, PyJWT, google-auth
and Cloud Run's own), each with its severity and the pattern that must name it. Every line is made a
LogEntry, read by the real normalizer, and classified by the real engine with the catalogs a run
loads -- as textPayload, as a structured logger's jsonPayload.message, and (for plain text) without
a LogEntry severity, as Cloud Run records stderr.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pyarrow as pa
import pytest
import yaml

from logaudit.catalog.catalog import (
    CATALOG_ENV,
    DEFAULT_PATTERNS_ENV,
    NO_SHIPPED_ENV,
    default_catalog_paths,
    load_catalogs,
)
from logaudit.catalog.engine import classify_table
from logaudit.sources.severity import SEVERITY_NUM
from logaudit.store.normalize import normalize_batch

CORPUS = Path(__file__).parents[1] / "fixtures" / "python-web-corpus.yaml"
LOG_NAMES = {
    "stdout": "run.googleapis.com%2Fstdout",
    "stderr": "run.googleapis.com%2Fstderr",
    "varlog/system": "run.googleapis.com%2Fvarlog%2Fsystem",
    "requests": "run.googleapis.com%2Frequests",
}
#: How each line is sent: its text as textPayload, as jsonPayload.message, and as textPayload
#: without a LogEntry severity (plain stderr/stdout only: the last two need an application log).
SHAPES = ("text", "json", "unleveled")
MIN_COVERAGE = 0.80
WARNING = SEVERITY_NUM["WARNING"]

#: A graceful shutdown of a gunicorn + uvicorn service (scale-down, or a new revision taking the
#: traffic), as gunicorn 21/22 log it: the worker's SIGTERM at ERROR level.
GRACEFUL_SHUTDOWN = [
    "[2025-09-16 01:10:02 +0000] [1] [INFO] Handling signal: term",
    "[2025-09-16 01:10:02 +0000] [16] [INFO] Shutting down",
    "[2025-09-16 01:10:02 +0000] [16] [INFO] Waiting for application shutdown.",
    "[2025-09-16 01:10:02 +0000] [16] [INFO] Application shutdown complete.",
    "[2025-09-16 01:10:02 +0000] [16] [INFO] Finished server process [16]",
    "[2025-09-16 01:10:02 +0000] [1] [ERROR] Worker (pid:16) was sent SIGTERM!",
    "[2025-09-16 01:10:03 +0000] [1] [INFO] Shutting down: Master",
]


def load_corpus() -> dict:
    return yaml.safe_load(CORPUS.read_text(encoding="utf-8"))


def log_entry(line: dict, service: str, shape: str, n: int) -> dict:
    """The LogEntry Cloud Run would export for a corpus line, in one of the SHAPES."""
    log = line.get("log", "stderr")
    entry = {
        "logName": f"projects/demo/logs/{LOG_NAMES[log]}",
        "resource": {"type": "cloud_run_revision", "labels": {
            "project_id": "demo", "service_name": service, "revision_name": f"{service}-00012-abc",
            "configuration_name": service, "location": "us-central1"}},
        "timestamp": "2025-09-16T00:42:53.120000Z",
        "insertId": f"{shape}-{n:04d}",
    }
    if shape != "unleveled":
        entry["severity"] = line["severity"]
    if log == "requests":
        entry["httpRequest"] = {"requestMethod": "GET", "status": line["status"], "latency": "0.012s",
                                "requestUrl": f"https://{service}-abc123-uc.a.run.app{line['path']}"}
    if line["text"] is not None:
        if shape == "json":
            entry["jsonPayload"] = {"message": line["text"]}
        else:
            entry["textPayload"] = line["text"]
    return entry


def applies(line: dict, shape: str) -> bool:
    return shape == "text" or line.get("log", "stderr") in ("stdout", "stderr")


@pytest.fixture(scope="module")
def catalog():
    """The catalogs a plain run loads (the shipped ones; no local catalog in the environment)."""
    with pytest.MonkeyPatch.context() as mp:
        for name in (CATALOG_ENV, DEFAULT_PATTERNS_ENV, NO_SHIPPED_ENV):
            mp.delenv(name, raising=False)
        return load_catalogs(default_catalog_paths())


@pytest.fixture(scope="module")
def corpus() -> dict:
    return load_corpus()


def classify(entries: list[dict], catalog) -> tuple[pa.Table, list[dict[str, dict]]]:
    """Normalize LogEntries and classify them: (entry table, per entry {pattern id: fields})."""
    texts = pa.array([orjson.dumps(e).decode() for e in entries], pa.string())
    table, rejects = normalize_batch(texts, pa.array(range(1, len(entries) + 1), pa.int64()), "corpus")
    assert rejects == [] and table.num_rows == len(entries)
    matches = classify_table(table, catalog)
    found: list[dict[str, dict]] = [{} for _ in entries]
    for row, pid, fields in zip(matches["entry_row"].to_pylist(), matches["pattern_id"].to_pylist(),
                                matches["fields_json"].to_pylist(), strict=True):
        found[row][pid] = orjson.loads(fields) if fields else {}
    return table, found


@pytest.fixture(scope="module")
def results(corpus, catalog) -> dict[str, list[tuple[dict, dict | None, dict[str, dict]]]]:
    """shape -> [(corpus line, its normalized row, {pattern id: fields})] for the lines the shape applies to."""
    out = {}
    for shape in SHAPES:
        lines = [line for line in corpus["lines"] if applies(line, shape)]
        table, found = classify([log_entry(line, corpus["service"], shape, n) for n, line in enumerate(lines)],
                                catalog)
        out[shape] = list(zip(lines, table.to_pylist(), found, strict=True))
    return out


# ----------------------------------------------------------------------------- the corpus itself
def test_corpus_lines_are_distinct_cited_and_name_shipped_patterns(corpus, catalog):
    lines = corpus["lines"]
    keys = [(line["text"], line.get("log", "stderr"), line.get("status"), line.get("path")) for line in lines]
    assert len(set(keys)) == len(keys) >= 60
    ids = {p.id for p in catalog}
    for line in lines:
        assert set(line) <= {"text", "severity", "log", "status", "path", "pattern", "also", "benign", "source"}, line
        assert line["severity"] in SEVERITY_NUM and line.get("log", "stderr") in LOG_NAMES, line
        assert line["source"].strip(), line
        assert {line["pattern"], *line.get("also", [])} - {None} <= ids, line
        if line.get("benign"):
            assert line["pattern"] is None or catalog.get(line["pattern"]).category in ("info", "positive"), line


# ----------------------------------------------------------------------------- classification
@pytest.mark.parametrize("shape", SHAPES)
def test_every_line_is_named_by_exactly_its_pattern(results, shape):
    wrong = []
    for line, _row, found in results[shape]:
        want = {line["pattern"], *line.get("also", [])} - {None}
        if set(found) != want:
            wrong.append(f"{line['text']!r}: expected {sorted(want)}, got {sorted(found)}")
    assert wrong == []


def test_fields_are_extracted_from_the_corpus_lines(results):
    by_text = {line["text"]: found for line, _row, found in results["text"]}
    assert by_text["ModuleNotFoundError: No module named 'shop_api.middleware.request_context'"] == {
        "python-module-not-found": {"module": "shop_api.middleware.request_context"}}
    assert by_text["[2025-09-16 01:20:12 +0000] [1] [ERROR] Worker (pid:16) was sent SIGKILL! Perhaps out of memory?"] \
        == {"gunicorn-worker-sigkill": {"pid": "16", "signal": "KILL"}}
    assert by_text["[2025-09-16 01:20:12 +0000] [1] [WARNING] Worker with pid 71 was terminated due to signal 9"] \
        == {"gunicorn-worker-sigkill": {"pid": "71", "signal": None}}
    assert by_text["[2025-09-16 01:10:02 +0000] [1] [ERROR] Worker (pid:16) was sent SIGTERM!"] == {
        "gunicorn-worker-terminated": {"pid": "16", "signal": "TERM"}}
    assert by_text["KeyError: 'DATABASE_URL'"] == {"env-var-missing": {"name": "DATABASE_URL"}}


def test_severities_agree_with_the_level_the_text_names(results):
    """A line whose text names its level (gunicorn, uvicorn, Python logging) is read at that level
    without a LogEntry severity, as Cloud Run records stderr: the corpus's severity must be it."""
    disagree = []
    named = 0
    for line, row, _found in results["unleveled"]:
        if row["effective_severity"] != "DEFAULT":
            named += 1
            if row["effective_severity"] != line["severity"]:
                disagree.append((line["text"], line["severity"], row["effective_severity"]))
    assert disagree == [] and named >= 40


def test_benign_lines_are_never_a_critical_or_warning_finding(results, catalog):
    for shape, rows in results.items():
        bad = [(line["text"], pid) for line, _row, found in rows if line.get("benign")
               for pid in found if catalog.get(pid).category in ("critical", "warning")]
        assert bad == [], shape


def test_coverage_of_warning_or_worse_lines(results, capsys):
    """Share of WARNING-or-worse corpus lines that a shipped pattern names."""
    serious = [(line, found) for line, row, found in results["text"] if row["effective_severity_num"] >= WARNING]
    covered = [line for line, found in serious if found]
    coverage = len(covered) / len(serious)
    with capsys.disabled():
        print(f"\npython-web corpus: {len(covered)} of {len(serious)} WARNING-or-worse lines named by a "
              f"shipped pattern ({coverage:.1%})")
    assert {line["text"] for line in covered} == {line["text"] for line, _ in serious if line["pattern"]}
    assert coverage >= MIN_COVERAGE


# ----------------------------------------------------------------------------- the false critical
def test_a_graceful_shutdown_is_no_finding_but_sigkill_still_is(catalog):
    """gunicorn 21/22 log the worker's SIGTERM at ERROR during every graceful shutdown; only SIGKILL
    ("Perhaps out of memory?") is the out-of-memory sign."""
    line = {"severity": "INFO", "log": "stderr"}
    shutdown = [{**line, "text": text, "severity": "ERROR" if "[ERROR]" in text else "INFO"}
                for text in GRACEFUL_SHUTDOWN]
    oom = {**line, "severity": "ERROR",
           "text": "[2025-09-16 01:20:12 +0000] [1] [ERROR] Worker (pid:16) was sent SIGKILL! Perhaps out of memory?"}
    entries = [log_entry(x, "shop-api", shape, n) for shape in ("text", "json", "unleveled")
               for n, x in enumerate([*shutdown, oom])]
    _table, found = classify(entries, catalog)
    per_shape = len(shutdown) + 1
    for k in range(3):
        named = found[k * per_shape:(k + 1) * per_shape]
        findings = [(GRACEFUL_SHUTDOWN[i], pid) for i, f in enumerate(named[:-1]) for pid in f
                    if catalog.get(pid).category in ("critical", "warning")]
        assert findings == []
        assert {pid: catalog.get(pid).category for f in named[:-1] for pid in f} == {
            "gunicorn-handling-signal": "info", "application-shutdown-complete": "info",
            "gunicorn-worker-terminated": "info", "gunicorn-master-shutdown": "info"}
        assert named[-1] == {"gunicorn-worker-sigkill": {"pid": "16", "signal": "KILL"}}
        assert catalog.get("gunicorn-worker-sigkill").category == "critical"
