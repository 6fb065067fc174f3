"""Times are UTC whatever the machine's zone.

DuckDB takes its session time zone from the process's zone, once per process, so a test that
changes TZ inside the suite proves little: these run logaudit in fresh processes with TZ set.
The tests marked `timezone` (timeline, charts, report, summary, windows, pull and export
periods) are run again under two zones far from UTC by `test_time_sensitive_tests_pass_in_other_zones`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import REPO, ingest_bundled_sample

#: Half an hour off UTC (a bucket label a whole hour off could still look right), and west of UTC.
ZONES = ("Asia/Kolkata", "America/Los_Angeles")

_PROBE = """
import json, sys
from logaudit.core.db import connect
from logaudit.analysis.audit import Audit
from logaudit.analysis.window import resolve_window
from logaudit.present.report import status_timeline

audit = Audit(sys.argv[1])
w = {"since": "2025-09-09T20:00:00Z", "until": "2025-09-10T04:00:00Z", "service": "netra-backend-staging"}
timeline = audit.timeline("1h", **w)
status = status_timeline(audit, resolve_window(**w), "1h")
day = audit.sql("SELECT date_trunc('day', max(timestamp)) AS d, max(timestamp)::DATE AS day FROM entries")
print(json.dumps({
    "timeline": sorted({b.isoformat() for b in timeline["bucket"]}),
    "timeline_zone": str(timeline["bucket"].dt.tz),
    "status": sorted({b.isoformat() for b in status["bucket"]}),
    "day": [day["d"][0].isoformat(), str(day["day"][0].date())],
    "session_zone": connect().execute("SELECT current_setting('TimeZone')").fetchone()[0],
    "summary_window": audit.summary(**w)["window"],
}))
"""

HOURS = [f"2025-09-09T{h:02d}:00:00+00:00" for h in range(20, 24)] + [f"2025-09-10T{h:02d}:00:00+00:00" for h in range(4)]


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    store, _ = ingest_bundled_sample(tmp_path_factory.mktemp("zones"))
    return store.root


def _in_zone(zone: str, *args: str, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "TZ": zone})


@pytest.mark.parametrize("zone", ZONES)
def test_bucket_labels_and_days_are_utc_in_any_zone(store, zone):
    done = _in_zone(zone, "-c", _PROBE, str(store), timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(done.stdout)
    assert got == {
        "timeline": HOURS, "timeline_zone": "UTC", "status": HOURS,
        "day": ["2025-09-10T00:00:00+00:00", "2025-09-10"],
        "session_zone": "UTC",
        "summary_window": {"since": "2025-09-09T20:00:00Z", "until": "2025-09-10T04:00:00Z"},
    }


@pytest.mark.slow
def test_time_sensitive_tests_pass_in_other_zones(tmp_path):
    """`pytest -m timezone` passes with TZ set to each of ZONES (run side by side)."""

    def run(zone: str) -> subprocess.CompletedProcess:
        base = tmp_path / zone.replace("/", "_")
        return _in_zone(zone, "-m", "pytest", "-m", "timezone", "-q", "-p", "no:randomly", "-p", "no:cacheprovider",
                        f"--basetemp={base}", "tests", timeout=1800)

    with ThreadPoolExecutor(len(ZONES)) as pool:
        results = dict(zip(ZONES, pool.map(run, ZONES), strict=True))
    for zone, done in results.items():
        tail = "\n".join(done.stdout.splitlines()[-30:])
        assert done.returncode == 0, f"TZ={zone}:\n{tail}\n{done.stderr[-2000:]}"
        assert " passed" in tail and " failed" not in tail, f"TZ={zone}:\n{tail}"


def test_every_connection_comes_from_the_factory():
    """One place sets the session (UTC, no progress bar): no other module of logaudit connects itself."""
    import logaudit
    from logaudit.core.db import connect

    root = Path(logaudit.__file__).parent
    others = sorted(str(p.relative_to(root)) for p in root.rglob("*.py")
                    if "duckdb.connect(" in p.read_text() and p.name != "db.py")
    assert others == []
    con = connect(threads=1, config={"memory_limit": "1GB"})
    settings = con.execute("SELECT current_setting('TimeZone'), current_setting('Calendar'), "
                           "current_setting('enable_progress_bar'), current_setting('threads'), "
                           "current_setting('memory_limit')").fetchone()
    assert settings == ("UTC", "gregorian", False, 1, "953.6 MiB")  # 1 GB in binary units
