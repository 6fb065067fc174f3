"""`WarehouseEngine.health` and `root_causes`, computed by GoogleSQL (transpiled to DuckDB over a
BigQuery-shaped `_AllLogs` table), equal the local `DuckDBEngine`'s over the same entries: on the
sample scenarios that crash-loop, run out of memory or stay healthy, and on hand-made instances
that cut every corner of the segment rules. Only aggregates come back."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime

import pandas as pd
import pytest
from bq_tables import load_all_logs
from hypothesis import given
from hypothesis import strategies as st

from logaudit.analysis.aggregates import HEALTH_KINDS, HealthEvidence
from logaudit.analysis.audit import Audit
from logaudit.analysis.engine_warehouse import WarehouseEngine, _root_cause_line
from logaudit.analysis.window import Window
from logaudit.core.db import connect
from logaudit.sources.sample import (
    BASELINE_REVISION,
    CANARY_REVISION,
    CRASH_ROOT_CAUSE,
    SECOND_SERVICE,
    SERVICE,
    SampleConfig,
    sample_entries,
)
from logaudit.store.store import Store
from logaudit.warehouse.runner import DuckDBRunner
from logaudit.warehouse.source import WarehouseSource

# each case builds a store and a warehouse table of up to 3000 entries
pytestmark = pytest.mark.slow

TABLE = "p.d._AllLogs"
START = "Starting new instance. Reason: AUTOSCALING - Instance started due to configured scaling factors."


@dataclasses.dataclass
class CountingRunner(DuckDBRunner):
    """A DuckDBRunner that keeps the number of rows each query returned, per purpose."""

    rows: dict[str, list[int]] = dataclasses.field(default_factory=dict)

    def query(self, sql, params=None, *, purpose):
        table = super().query(sql, params, purpose=purpose)
        self.rows.setdefault(purpose, []).append(table.num_rows)
        return table


def _micros(entries: list[dict]) -> list[dict]:
    """The entries with timestamps cut to microseconds (BigQuery's resolution)."""
    for e in entries:
        e["timestamp"] = re.sub(r"(\.\d{6})\d+Z$", r"\1Z", e["timestamp"])
    return entries


def _engines(entries: list[dict], tmp_path) -> tuple[Audit, WarehouseEngine]:
    store = Store(tmp_path / "store")
    store.ingest_entries(entries, "test")
    audit = Audit(store)
    con = connect()
    load_all_logs(con, TABLE, entries)
    return audit, WarehouseEngine(CountingRunner(con), WarehouseSource.all_logs(TABLE), audit.catalog, audit.redactor)


def _utc(value):
    """Results as plain values, timestamps as UTC pandas Timestamps."""
    if isinstance(value, list):
        return [_utc(v) for v in value]
    if dataclasses.is_dataclass(value):
        return _utc(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {k: _utc(v) for k, v in value.items()}
    if isinstance(value, datetime):
        ts = pd.Timestamp(value)
        return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return value


def _assert_same(audit: Audit, wh: WarehouseEngine, window: Window) -> tuple[list, list]:
    """The warehouse's health and root causes of `window`, asserted equal to the local engine's,
    and the queries' result rows asserted to be aggregates."""
    runner = wh.runner
    runner.rows.clear()
    health, causes = wh.health(window), wh.root_causes(window)
    assert _utc(health) == _utc(audit.engine.health(window))
    assert _utc(causes) == _utc(audit.engine.root_causes(window))
    assert [list(h.evidence) for h in health] == [sorted(h.evidence) for h in health]
    # a row per (revision, evidence kind); a row per (revision, distinct first error) at most one per start
    assert runner.rows["health"] == [sum(len(h.evidence) for h in health)]
    assert len(health) * len(HEALTH_KINDS) >= runner.rows["health"][0]
    assert runner.rows["root-causes"][0] <= sum(h.instance_starts for h in health)
    return health, causes


# ------------------------------------------------------------------------------------ the scenarios
@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    """scenario(name): (local Audit, WarehouseEngine, entries) of the scenario's 3000 entries."""
    made: dict[str, tuple] = {}

    def get(name: str):
        if name not in made:
            entries = _micros(sample_entries(SampleConfig(entries=3000, scenario=name))[0])
            made[name] = (*_engines(entries, tmp_path_factory.mktemp(name)), entries)
        return made[name]

    return get


def _starts(entries: list[dict], revision: str | None = None) -> list[datetime]:
    """The times of the instance starts of `revision` (None: of every revision)."""
    return sorted(pd.Timestamp(e["timestamp"]) for e in entries
                  if revision in (None, e["resource"]["labels"].get("revision_name"))
                  and str(e.get("textPayload", "")).startswith("Starting new instance."))


@pytest.mark.parametrize("name", ["canary-regression", "crash-loop-canary", "crash-loop-both", "oom-canary"])
def test_scenarios_health_and_root_causes_equal_the_local_engine(scenario, name):
    audit, wh, entries = scenario(name)
    starts = _starts(entries)  # a window that cuts segments: from just after a start to just after another
    cut = Window(since=starts[len(starts) // 3] + pd.Timedelta(microseconds=1),
                 until=starts[2 * len(starts) // 3] + pd.Timedelta(microseconds=1))
    for window in (Window(), Window(service=SERVICE), Window(service=SECOND_SERVICE), cut,
                   Window(since=cut.since, until=cut.until, service=SERVICE), Window(revision=CANARY_REVISION)):
        _assert_same(audit, wh, window)


def test_the_crash_looping_canary_in_numbers(scenario):
    audit, wh, entries = scenario("crash-loop-canary")
    health, causes = _assert_same(audit, wh, Window(service=SERVICE))
    [canary] = [h for h in health if h.revision == CANARY_REVISION]
    assert (canary.instance_starts, canary.failed_starts, canary.probe_failed_starts, canary.ready_starts,
            canary.successful_requests) == (15, 15, 0, 0, 0)
    assert canary.requests == canary.evidence["failed_request"].entries > 0
    assert sorted(canary.evidence) == ["boot_failure", "failed_request", "request", "start"]
    [cause] = [c for c in causes if c.revision == CANARY_REVISION]
    assert (cause.line, cause.starts) == (CRASH_ROOT_CAUSE, 15)
    assert cause.example.startswith("[") and cause.example.endswith(CRASH_ROOT_CAUSE)
    # a window from just after the canary's third start to just after its 13th: starts 4 to 13
    # (the third start's later entries count in no start; the 13th's boot failure is after the window)
    starts = _starts(entries, CANARY_REVISION)
    cut = Window(since=starts[2] + pd.Timedelta(microseconds=1), until=starts[12] + pd.Timedelta(microseconds=1),
                 service=SERVICE)
    health, causes = _assert_same(audit, wh, cut)
    [canary] = [h for h in health if h.revision == CANARY_REVISION]
    assert (canary.instance_starts, canary.failed_starts, canary.ready_starts) == (10, 9, 0)
    assert canary.evidence["start"].first_seen == starts[3] and canary.evidence["start"].last_seen == starts[12]
    assert [(c.line, c.starts) for c in causes if c.revision == CANARY_REVISION] == [(CRASH_ROOT_CAUSE, 9)]
    assert {h.revision for h in health} >= {BASELINE_REVISION, CANARY_REVISION}


def test_a_held_engine_answers_each_window_once(scenario):
    audit, wh, _ = scenario("crash-loop-canary")
    with wh.hold():
        first = wh.health(Window()), wh.root_causes(Window())
        ran = len(wh.runner.queries)
        assert (wh.health(Window()), wh.root_causes(Window())) == first
        assert len(wh.runner.queries) == ran
        wh.health(Window(service=SERVICE))
        assert len(wh.runner.queries) == ran + 1


# ------------------------------------------------------------------------------------ the corners
def _entry(i: int, second: float, *, text: str | None = None, severity: str = "INFO", status: int | None = None,
           log: str = "stderr", instance: str | None = "inst-1", revision: str = "svc-1", service: str = "svc",
           payload: dict | None = None) -> dict:
    whole, frac = divmod(round(second * 1_000_000), 1_000_000)
    e = {"logName": f"projects/p/logs/run.googleapis.com%2F{log}", "insertId": f"e{i:03d}",
         "timestamp": f"2025-09-10T02:{whole // 60:02d}:{whole % 60:02d}.{frac:06d}Z", "severity": severity,
         "resource": {"type": "cloud_run_revision", "labels": {"service_name": service, "revision_name": revision}}}
    if instance is not None:
        e["labels"] = {"instanceId": instance}
    if text is not None:
        e["textPayload"] = text
    if payload is not None:
        e["jsonPayload"] = payload
    if status is not None:
        e["httpRequest"] = {"requestMethod": "GET", "requestUrl": "https://svc/x", "status": status}
        e["logName"] = "projects/p/logs/run.googleapis.com%2Frequests"
    return e


CORNER_ENTRIES = [
    # inst-1: ready by a mark, by a request, never ready (a failed request), a first error without text
    _entry(0, 0, text=START, log="varlog%2Fsystem"),
    _entry(1, 1, payload={"code": 7}, severity="ERROR"),
    _entry(2, 2, text="RuntimeError: boom", severity="ERROR"),
    _entry(3, 3, status=503),
    _entry(10, 10, text=START, log="varlog%2Fsystem"),
    _entry(11, 11, text="INFO:     Application startup complete."),
    _entry(12, 12, status=200),
    _entry(20, 20, text=START, log="varlog%2Fsystem"),
    _entry(21, 21, status=200),
    _entry(30, 30, text=START, log="varlog%2Fsystem"),
    _entry(31, 31, status=500),
    _entry(32, 32, status=101),
    # inst-2: a ready mark and an error before its first start; two starts at one instant (the
    # later one's entries: a request at that instant, the probe failure, a CRLF traceback); an
    # error at the same instant as the traceback with a greater insertId
    _entry(40, 40, text="INFO:     Application startup complete.", instance="inst-2"),
    _entry(41, 41, text="OSError: before the start", severity="ERROR", instance="inst-2"),
    _entry(43, 42.5, text=START, log="varlog%2Fsystem", instance="inst-2"),
    _entry(42, 42.5, text=START, log="varlog%2Fsystem", instance="inst-2"),
    _entry(39, 42.5, status=204, instance="inst-2"),  # before the starts by insertId
    _entry(45, 43, text='STARTUP TCP probe failed 1 time consecutively for container "svc-1" on port 8080.',
           severity="WARNING", log="varlog%2Fsystem", instance="inst-2"),
    _entry(46, 43.25, text="Traceback (most recent call last):\r\n  File \"x.py\"\r\nValueError: crlf\r\n  \r\n",
           severity="ERROR", instance="inst-2"),
    _entry(47, 43.25, text="ZeroDivisionError: later insertId", severity="ERROR", instance="inst-2"),
    _entry(48, 50, text=START, log="varlog%2Fsystem", instance="inst-2"),
    _entry(49, 51, text="The user-provided container failed to start and listen on the port defined provided by "
                        "the PORT=8080 environment variable.", severity="ERROR", log="varlog%2Fsystem",
           instance="inst-2"),
    # no instance id: one instance; a first error of blank lines only (no root cause)
    _entry(60, 60, text=START, log="varlog%2Fsystem", instance=None),
    _entry(61, 61, text="  \n\t\n", severity="ERROR", instance=None),
    _entry(62, 62, text="RuntimeError: second", severity="ERROR", instance=None),
    _entry(63, 63, status=302, instance=None),
    # another service: a start that exits; a revision with only errors (no health row)
    _entry(70, 70, text=START, log="varlog%2Fsystem", service="web", revision="web-1"),
    _entry(71, 71, text="Container called exit(1).", severity="WARNING", log="varlog%2Fsystem", service="web",
           revision="web-1"),
    _entry(72, 72, text="RuntimeError: web", severity="ERROR", service="web", revision="web-1"),
    _entry(80, 80, text="RuntimeError: no lifecycle", severity="ERROR", service="web", revision="web-2"),
]


@pytest.fixture(scope="module")
def corners(tmp_path_factory):
    return _engines([dict(e) for e in CORNER_ENTRIES], tmp_path_factory.mktemp("corners"))


def _at(second: float) -> datetime:
    whole, frac = divmod(round(second * 1_000_000), 1_000_000)
    return datetime(2025, 9, 10, 2, whole // 60, whole % 60, frac, tzinfo=UTC)


def test_corners_equal_the_local_engine_with_their_exact_values(corners):
    audit, wh = corners
    health, causes = _assert_same(audit, wh, Window())
    [svc, web] = health
    # inst-1: 4 starts, 2 ready; inst-2: 3 starts (one at the same instant as the next: no
    # entries of its own), 1 ready by its request, 2 with a probe failure; no instance: 1, ready
    assert (svc.revision, svc.instance_starts, svc.failed_starts, svc.probe_failed_starts, svc.ready_starts,
            svc.requests, svc.successful_requests) == ("svc-1", 8, 0, 2, 4, 7, 4)
    assert svc.evidence["failed_request"] == HealthEvidence(2, _at(3), _at(31), "GET /x -> 500")
    assert svc.evidence["ready"] == HealthEvidence(2, _at(11), _at(40), "INFO:     Application startup complete.")
    assert svc.evidence["start"].example == START and svc.evidence["start"].entries == 8
    assert (web.service, web.revision, web.instance_starts, web.failed_starts, web.ready_starts) == \
        ("web", "web-1", 1, 1, 0)
    assert [(c.revision, c.line, c.starts, c.example) for c in causes] == [
        ("svc-1", "RuntimeError: boom", 1, "RuntimeError: boom"),
        ("svc-1", "The user-provided container failed to start and listen on the port defined provided by the "
                  "PORT=8080 environment variable.", 1, CORNER_ENTRIES[21]["textPayload"]),
        ("svc-1", "ValueError: crlf", 1, CORNER_ENTRIES[18]["textPayload"]),
        ("web-1", "RuntimeError: web", 1, "RuntimeError: web"),
    ]


@pytest.mark.parametrize("window", [
    Window(service="svc"), Window(service="web"), Window(revision="svc-1"),
    Window(since=_at(0.5)), Window(since=_at(42.5)), Window(since=_at(5), until=_at(43.25)),
    Window(until=_at(42.5)), Window(since=_at(100)),
], ids=repr)
def test_corner_windows_equal_the_local_engine(corners, window):
    _assert_same(*corners, window)


# ------------------------------------------------------------------------------------ the line
_LINE_SQL = """
    WITH t AS (SELECT $msg AS msg),
    lined AS (SELECT msg, list_filter(regexp_split_to_array(msg, '\\r\\n|\\n|\\r'), lambda x: regexp_matches(x, '\\S'))
              AS lines FROM t)
    SELECT CASE WHEN len(lines) = 0 THEN NULL
                WHEN contains(msg, 'Traceback (most recent call last):') THEN lines[-1] ELSE lines[1] END
    FROM lined"""
_PIECES = st.sampled_from(["\r\n", "\n", "\r", " ", "\t", "\f", "\v", "\u00a0", "\u2003", "x", "é", "💥",
                           "Traceback (most recent call last):", "ValueError: v"])


@given(st.lists(_PIECES, max_size=12).map("".join))
def test_the_root_cause_line_is_cut_as_the_local_engine_cuts_it(message):
    with connect() as con:
        assert _root_cause_line(message) == con.execute(_LINE_SQL, {"msg": message}).fetchone()[0]
