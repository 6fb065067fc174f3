"""Patterns whose RE2 form is exact on ASCII texts only (`\\d`, `\\w`, `\\b`, case folding read
Unicode differently): on a text with a non-ASCII character the RE2 form is looser, so only the
texts it matches are fetched and checked again with `regex`, and the counts are the local ones."""

from __future__ import annotations

import pytest
from bq_tables import load_all_logs

from logaudit.analysis.audit import Audit
from logaudit.analysis.engine_warehouse import WarehouseEngine
from logaudit.analysis.window import Window
from logaudit.catalog.catalog import load_catalogs
from logaudit.core.db import connect
from logaudit.store.store import Store
from logaudit.warehouse.runner import DuckDBRunner
from logaudit.warehouse.source import WarehouseSource

CATALOG = """\
catalog: unicode
version: 1
patterns:
  - id: slow-call
    title: A slow call
    category: warning
    regex: '\\btook \\d+ ms\\b'
    examples: [{text: "db took 1200 ms"}]
  - id: word-user
    title: A user by name
    category: info
    regex: 'user=\\w+;'
    ignore_case: true
    examples: [{text: "USER=alice;"}]
"""
TEXTS = [
    "db took 1200 ms",          # ASCII: decided in SQL
    "db took ٣٠٠ ms",           # Arabic-Indic digits: \\d matches them in `regex`, not in RE2
    "dé took 12 ms",            # non-ASCII elsewhere, still a match
    "détook 12 ms",             # `é` is a word character: no boundary before `took` for `regex`
    "user=zoë;",                # \\w is Unicode in `regex`
    "USER=bob;",
    "user=;",
    "naïve text, no match",
]


def _entry(i: int, text: str) -> dict:
    return {"logName": "projects/p/logs/run.googleapis.com%2Fstdout", "insertId": f"u{i}",
            "timestamp": f"2025-09-10T03:00:{i:02d}.000001Z", "receiveTimestamp": "2025-09-10T03:01:00Z",
            "severity": "WARNING", "textPayload": text,
            "resource": {"type": "cloud_run_revision", "labels": {"service_name": "api",
                                                                    "revision_name": "api-00001-abc"}}}


@pytest.fixture
def engines(tmp_path):
    path = tmp_path / "unicode.yaml"
    path.write_text(CATALOG, encoding="utf-8")
    catalog = load_catalogs([path])
    entries = [_entry(i, t) for i, t in enumerate(TEXTS)]
    store = Store(tmp_path / "store")
    store.ingest_entries(entries, "x")
    con = connect()
    load_all_logs(con, "p.d._AllLogs", entries)
    audit = Audit(store, catalog)
    warehouse = WarehouseEngine(DuckDBRunner(con), WarehouseSource.all_logs("p.d._AllLogs"), catalog, audit.redactor)
    return warehouse, audit.engine


def test_non_ascii_texts_are_checked_again_and_count_as_locally(engines) -> None:
    warehouse, local = engines
    assert {p.pattern.id: p.plan.recheck_non_ascii for p in warehouse.pushed} == {"slow-call": True, "word-user": True}
    got = {p.id: p.count for p in warehouse.patterns(Window())}
    assert got == {p.id: p.count for p in local.patterns(Window())} == {"slow-call": 3, "word-user": 2}
    unmatched = [[(t.template, t.count, t.example) for t in engine.templates(Window(), min_severity=400)]
                 for engine in (warehouse, local)]
    assert unmatched[0] == unmatched[1] == [("détook <*> ms", 1, "détook 12 ms"), ("naïve text, no match", 1,
                                                                                   "naïve text, no match"),
                                            ("user=;", 1, "user=;")]
    # only the non-ASCII texts the RE2 form matched came back to be checked
    fetched = [q for q in warehouse.runner.queries if q.purpose == "recheck-candidates"]
    assert len(fetched) == 1
    rows = warehouse.runner.query(fetched[0].sql, {}, purpose="again").to_pylist()
    assert sorted((warehouse.pushed[r["pid"]].pattern.id, r["v"]) for r in rows) == [
        ("slow-call", "db took ٣٠٠ ms"), ("slow-call", "dé took 12 ms"), ("slow-call", "détook 12 ms"),
        ("word-user", "user=zoë;")]
