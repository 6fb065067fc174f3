"""Deployment-failure scenarios of logaudit.sources.sample: each scenario's entries, ingested into a real
store and read back with DuckDB, agree exactly with its truth (counts per revision, instance
starts, boot failures, successful requests, root causes, shutdowns, OOM kills, the revision
serving before each deploy); the default scenario is unchanged byte for byte; the same seed
gives the same bytes; and the truth adds up for any seed and size."""

from __future__ import annotations

import gzip
import json
import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_sample import effective, rev_key, text_of, ts_ns

from logaudit.analysis.audit import Audit
from logaudit.core.errors import UsageError
from logaudit.sources.bundled import sample_path
from logaudit.sources.sample import (
    BASELINE_REVISION,
    CANARY_REVISION,
    CRASH_ROOT_CAUSE,
    KIND_STATUS,
    KINDS,
    PREVIOUS_REVISION,
    REQUEST_KINDS,
    SCENARIO_KIND_SEVERITY,
    SCENARIO_KINDS,
    SCENARIOS,
    SECOND_SERVICE,
    SERVICE,
    RevisionHealth,
    SampleConfig,
    SampleGenerator,
    SampleTruth,
    sample_entries,
    write_sample,
)
from logaudit.sources.severity import SEVERITY_NUM
from logaudit.store.store import Store

# every test here builds or reads stores of all the sample scenarios: the full suite runs them
pytestmark = pytest.mark.slow

BASE = (SERVICE, BASELINE_REVISION)
CANARY = (SERVICE, CANARY_REVISION)
PREV = (SERVICE, PREVIOUS_REVISION)
MALFORMED = ("The request failed because either the HTTP response was malformed or connection to the instance "
             "had an error.")
GUNICORN_PREFIX = re.compile(r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \+0000\] \[(\d+)\] \[(INFO|ERROR)\] ")
GRACEFUL = [
    (1, "INFO", "Handling signal: term"),
    ("w", "INFO", "Shutting down"),
    ("w", "INFO", "Waiting for application shutdown."),
    ("w", "INFO", "Application shutdown complete."),
    ("w", "INFO", "Finished server process [{pid}]"),
    ("w", "INFO", "Worker exiting (pid: {pid})"),
    (1, "ERROR", "Worker (pid:{pid}) was sent SIGTERM!"),
    (1, "INFO", "Shutting down: Master"),
]


# --- an independent reading of a scenario's entries (in emitted order) -------------------------


def cause_line(message: str) -> str:
    lines = [ln for ln in message.splitlines() if ln.strip()]
    return lines[-1] if "Traceback (most recent call last):" in message else lines[0]


def is_start(e: dict) -> bool:
    return e["logName"].endswith("%2Fvarlog%2Fsystem") and text_of(e).startswith("Starting new instance. Reason: ")


def read_health(entries: list[dict]) -> dict:
    """What a person counts in the entries: the truth's health facts, found without the generator."""
    health: dict[tuple, Counter] = {}
    causes: Counter = Counter()
    serving: dict[str, str | None] = {}
    last_request: dict[str, str] = {}
    waiting: dict[str, tuple] = {}  # instance -> (service, revision) started, first error not seen yet
    terminated: set[str] = set()  # instances past "Handling signal: term"
    for e in entries:
        key = rev_key(e)
        text = text_of(e)
        instance = e.get("labels", {}).get("instanceId")
        http = e.get("httpRequest")
        if key[1] is not None:
            h = health.setdefault(key, Counter())
            h["instance_starts"] += is_start(e)
            h["boot_failures"] += "Worker failed to boot." in text
            h["successful_requests"] += bool(http) and 200 <= http["status"] < 400
            h["oom_kills"] += text.endswith("was sent SIGKILL! Perhaps out of memory?")
            h["memory_limit_exceeded"] += e["logName"].endswith("%2Fvarlog%2Fsystem") and text.startswith(
                "Memory limit of ")
            if text.endswith("] [INFO] Handling signal: term"):
                terminated.add(instance)
            if instance in terminated:
                h["shutdown_lines"] += 1
                h["graceful_shutdowns"] += text.endswith("was sent SIGTERM!")
        if is_start(e):
            waiting[instance] = key
        elif instance in waiting and not http and SEVERITY_NUM[effective(e)] >= SEVERITY_NUM["ERROR"]:
            causes[(*waiting.pop(instance), cause_line(text))] += 1
        if http:
            last_request[key[0]] = key[1]
        if "protoPayload" in e:
            created = e["protoPayload"]["response"]["status"]["latestCreatedRevisionName"]
            serving[created] = last_request.get(key[0])
    return {"health": {k: {f: c[f] for f in vars(RevisionHealth())} for k, c in health.items()},
            "root_causes": causes, "serving_before_deploy": serving}


def truth_health(truth: SampleTruth) -> dict:
    return {k: vars(h) for k, h in truth.health().items()}


# --- stores: each scenario ingested, read back with DuckDB ------------------------------------


@pytest.fixture(scope="module")
def scenarios(tmp_path_factory) -> Callable[[str], tuple[str, Audit, SampleTruth, list[dict]]]:
    """scenarios(name): its 5000 entries in a store of their own, an Audit of it, the truth, the entries."""
    made: dict[str, tuple[str, Audit, SampleTruth, list[dict]]] = {}

    def get(scenario: str) -> tuple[str, Audit, SampleTruth, list[dict]]:
        if scenario not in made:
            config = SampleConfig(scenario=scenario)
            entries, truth = sample_entries(config)
            store = Store(tmp_path_factory.mktemp(scenario) / "store")
            report = store.ingest_entries(SampleGenerator(config), "sample")
            assert (report.new_rows, report.rejected, report.duplicates) == (5000, 0, 0)
            made[scenario] = scenario, Audit(store), truth, entries
        return made[scenario]

    return get


@pytest.fixture(params=SCENARIOS)
def scenario_store(request, scenarios) -> tuple[str, Audit, SampleTruth, list[dict]]:
    return scenarios(request.param)


def q(audit: Audit, sql: str) -> list[tuple]:
    """Rows of a query over the store's entries, NULL as None (pandas would say NaN)."""
    df = audit.sql(sql, redact=False)
    df = df.astype(object).where(df.notna(), None)
    return [tuple(row) for row in df.itertuples(index=False)]


def test_counts_per_revision_in_the_store(scenario_store) -> None:
    _, audit, truth, _ = scenario_store
    rows = q(audit, """
        SELECT service, revision, count(*), count(*) FILTER (effective_severity_num >= 500), count(http_status),
               count(*) FILTER (http_status BETWEEN 400 AND 499), count(*) FILTER (http_status >= 500)
        FROM entries GROUP BY ALL""")
    got = {(s, r): dict(zip(("entries", "errors", "requests", "status_4xx", "status_5xx"), vals, strict=True))
           for s, r, *vals in rows}
    assert got == {k: vars(v) for k, v in truth.by_revision.items()}
    sev = Counter(dict(q(audit, "SELECT effective_severity, count(*) FROM entries GROUP BY ALL")))
    assert sev == truth.effective_severity
    assert sum(got[k]["entries"] for k in got) == truth.entries == 5000


def test_health_in_the_store(scenario_store) -> None:
    _, audit, truth, _ = scenario_store
    rows = q(audit, """
        WITH term AS (
            SELECT instance_id, min(timestamp) AS t FROM entries
            WHERE message LIKE '%] [INFO] Handling signal: term' GROUP BY ALL)
        SELECT e.service, e.revision,
               count(*) FILTER (e.log_id = 'run.googleapis.com/varlog/system'
                                AND e.message LIKE 'Starting new instance. Reason: %') AS instance_starts,
               count(*) FILTER (e.message LIKE '%Worker failed to boot.%') AS boot_failures,
               count(*) FILTER (e.http_status BETWEEN 200 AND 399) AS successful_requests,
               count(*) FILTER (term.t IS NOT NULL AND e.message LIKE '%was sent SIGTERM!') AS graceful_shutdowns,
               count(*) FILTER (term.t IS NOT NULL AND e.timestamp >= term.t) AS shutdown_lines,
               count(*) FILTER (e.message LIKE '%was sent SIGKILL! Perhaps out of memory?') AS oom_kills,
               count(*) FILTER (e.log_id = 'run.googleapis.com/varlog/system'
                                AND e.message LIKE 'Memory limit of % MiB exceeded with % MiB used%')
                   AS memory_limit_exceeded
        FROM entries e LEFT JOIN term USING (instance_id)
        WHERE e.revision IS NOT NULL GROUP BY ALL""")
    names = list(vars(RevisionHealth()))
    got = {(s, r): dict(zip(names, vals, strict=True)) for s, r, *vals in rows}
    assert got == truth_health(truth)


def test_root_causes_in_the_store(scenario_store) -> None:
    """The first error (not a request log) after each instance start, and the line a person reads in it."""
    _, audit, truth, _ = scenario_store
    rows = q(audit, """
        WITH starts AS (
            SELECT service, revision, instance_id, timestamp AS t0 FROM entries
            WHERE log_id = 'run.googleapis.com/varlog/system' AND message LIKE 'Starting new instance. Reason: %')
        SELECT s.service, s.revision, s.instance_id,
               first(e.message ORDER BY e.timestamp, e.insert_id) AS first_error
        FROM starts s JOIN entries e ON e.instance_id = s.instance_id AND e.timestamp >= s.t0
        WHERE e.effective_severity_num >= 500 AND e.http_status IS NULL
        GROUP BY ALL""")
    assert Counter((s, r, cause_line(m)) for s, r, _, m in rows) == truth.root_causes
    starts = q(audit, "SELECT count(*) FROM entries WHERE message LIKE 'Starting new instance. Reason: %'")[0][0]
    assert len(rows) == starts == sum(truth.root_causes.values())  # every start logged an error


def test_deploys_and_the_revision_serving_before_each(scenario_store) -> None:
    scenario, audit, truth, entries = scenario_store
    rows = q(audit, """
        SELECT d.audit_revision, d.audit_method, strftime(d.timestamp, '%Y-%m-%dT%H:%M:%S.%fZ'),
               (SELECT first(r.revision ORDER BY r.timestamp DESC, r.insert_id DESC) FROM entries r
                WHERE r.service = d.service AND r.http_status IS NOT NULL AND r.timestamp < d.timestamp)
        FROM entries d WHERE d.audit_revision IS NOT NULL ORDER BY d.timestamp""")
    assert [(r, t) for r, _, t, _ in rows] == [(r, t) for _, r, t in truth.deploys]
    assert {m for _, m, _, _ in rows} == {"google.cloud.run.v1.Services.ReplaceService"}
    assert {r: s for r, _, _, s in rows} == truth.serving_before_deploy
    assert truth.expected_baseline == BASELINE_REVISION  # in every scenario, see test_crash_loop_both
    if scenario in ("canary-regression", "healthy"):
        assert [r for _, r, _ in truth.deploys] == [CANARY_REVISION]  # as ever: the baseline was deployed before
    else:
        first = PREVIOUS_REVISION if scenario == "crash-loop-both" else BASELINE_REVISION
        assert truth.deploys[0][1] == first and truth.serving_before_deploy[first] is None
        assert truth.deploys[0][2] < min(e["timestamp"] for e in entries if "labels" in e)  # it opens the window
    audits = [e for e in entries if "protoPayload" in e]
    generations = [e["protoPayload"]["response"]["metadata"]["generation"] for e in audits]
    assert generations == sorted(generations) and len(set(generations)) == len(generations)
    for e in audits:
        p = e["protoPayload"]
        assert e["resource"]["labels"]["revision_name"] == ""
        assert p["request"]["service"]["spec"]["template"]["metadata"]["name"] == \
            p["response"]["status"]["latestCreatedRevisionName"]


def test_every_scenario_emits_what_it_says(scenario_store) -> None:
    """The independent reading of the entries and the truth agree, and the scenario's facts hold."""
    scenario, _, truth, entries = scenario_store
    read = read_health(entries)
    assert read["health"] == truth_health(truth)
    assert read["root_causes"] == truth.root_causes
    assert read["serving_before_deploy"] == truth.serving_before_deploy
    assert truth.scenario == scenario
    h = truth.health()
    base_or_prev = PREV if scenario == "crash-loop-both" else BASE
    # the revision serving first is healthy: it served, one of its 3-4 starts failed
    assert h[base_or_prev].successful_requests > 1000
    assert h[base_or_prev].boot_failures == 1 < h[base_or_prev].instance_starts
    new_kinds = {k for _, _, k in truth.kinds} - set(KINDS)
    assert new_kinds <= set(SCENARIO_KINDS)
    if scenario in ("canary-regression", "healthy"):
        assert not new_kinds


def _crash_looped(truth: SampleTruth, entries: list[dict], key: tuple[str, str]) -> None:
    h = truth.health()[key]
    assert vars(h) == vars(RevisionHealth(instance_starts=15, boot_failures=15))
    assert truth.root_cause(*key) == (CRASH_ROOT_CAUSE, 15)
    assert {line for (s, r, line) in truth.root_causes if (s, r) == key} == {CRASH_ROOT_CAUSE}
    mine = [e for e in entries if rev_key(e) == key]
    requests = [e for e in mine if "httpRequest" in e]
    assert requests and len(requests) == truth.by_revision[key].requests  # it had traffic, and
    assert {(e["httpRequest"]["status"], e["textPayload"]) for e in requests} == {(503, MALFORMED)}  # all failed
    by_instance: dict[str, list[str]] = {}
    for e in mine:
        if "httpRequest" not in e:
            by_instance.setdefault(e["labels"]["instanceId"], []).append(text_of(e))
    assert len(by_instance) == 15
    for texts in by_instance.values():  # every start: boot, import error, gunicorn gives up, exit(3)
        assert texts[0].startswith("Starting new instance. Reason: ")
        exc = [t for t in texts if "Exception in worker process" in t]
        assert len(exc) == 1
        first, second, *_, last = exc[0].splitlines()
        assert GUNICORN_PREFIX.match(first) and first.endswith("[ERROR] Exception in worker process")
        assert (second, last) == ("Traceback (most recent call last):", CRASH_ROOT_CAUSE)
        tail = [GUNICORN_PREFIX.sub("", t) for t in texts[-5:]]
        assert tail[0].startswith("Worker exiting (pid: ") and tail[1].startswith("Worker (pid:")
        assert tail[1].endswith(") exited with code 3")
        assert tail[2:] == ["Shutting down: Master", "Reason: Worker failed to boot.", "Container called exit(3)."]


def test_crash_loop_canary(scenarios) -> None:
    _, _, truth, entries = scenarios("crash-loop-canary")
    _crash_looped(truth, entries, CANARY)
    h = truth.health()
    assert h[BASE].successful_requests > 0
    deploy = ts_ns(truth.deploys[-1][2])
    after = [e for e in entries if "httpRequest" in e and rev_key(e)[0] == SERVICE and ts_ns(e["timestamp"]) > deploy]
    ok_after = [e for e in after if rev_key(e) == BASE and e["httpRequest"]["status"] < 400]
    assert ok_after  # the baseline keeps serving next to the canary
    canary_share = sum(rev_key(e) == CANARY for e in after) / len(after)
    assert 0.12 < canary_share < 0.22  # 20 % of the traffic, less while it shifts
    audit = [e for e in entries if "protoPayload" in e][-1]["protoPayload"]
    assert audit["request"]["service"]["spec"]["traffic"] == [
        {"revisionName": BASELINE_REVISION, "percent": 80}, {"revisionName": CANARY_REVISION, "percent": 20}]


def test_crash_loop_both(scenarios) -> None:
    """The real case: two consecutive revisions, each 15 of 15 starts failing, the same cause. The
    requests just before the canary's deploy went to the crash-looping baseline (gunicorn's master
    listens, so the revision took the traffic): it is the baseline the deploy facts give."""
    _, _, truth, entries = scenarios("crash-loop-both")
    _crash_looped(truth, entries, BASE)
    _crash_looped(truth, entries, CANARY)
    assert truth.serving_before_deploy == {PREVIOUS_REVISION: None, BASELINE_REVISION: PREVIOUS_REVISION,
                                           CANARY_REVISION: BASELINE_REVISION}
    assert truth.expected_baseline == BASELINE_REVISION
    prev = truth.health()[PREV]
    assert prev.graceful_shutdowns == prev.instance_starts - prev.boot_failures  # its idle instances stop
    assert prev.shutdown_lines == 8 * prev.graceful_shutdowns


def test_graceful_scale_down(scenarios) -> None:
    _, _, truth, entries = scenarios("graceful-scale-down")
    h = truth.health()
    assert h[BASE].graceful_shutdowns == h[BASE].instance_starts - h[BASE].boot_failures >= 2
    assert h[BASE].shutdown_lines == 8 * h[BASE].graceful_shutdowns
    assert vars(h[CANARY]) == vars(RevisionHealth(instance_starts=h[CANARY].instance_starts,
                                                  successful_requests=h[CANARY].successful_requests))
    assert h[CANARY].instance_starts >= 2 and h[CANARY].successful_requests > 100
    assert truth.kinds[(*BASE, "worker_sigterm")] == h[BASE].graceful_shutdowns
    last_request = max(ts_ns(e["timestamp"]) for e in entries if rev_key(e) == BASE and "httpRequest" in e)
    by_instance: dict[str, list[dict]] = {}
    for e in entries:
        if rev_key(e) == BASE and "labels" in e:
            by_instance.setdefault(e["labels"]["instanceId"], []).append(e)
    shut = 0
    for mine in by_instance.values():
        texts = [text_of(e) for e in mine]
        if not texts[-1].endswith("Shutting down: Master"):
            continue
        shut += 1
        seq = mine[-8:]
        assert ts_ns(seq[0]["timestamp"]) > last_request  # idle first: no request after the shift
        pid = int(GUNICORN_PREFIX.match(text_of(seq[1])).group(1))
        want = [(str(pid if p == "w" else p), level, msg.format(pid=pid)) for p, level, msg in GRACEFUL]
        got = [(m.group(1), m.group(2), GUNICORN_PREFIX.sub("", t))
               for t in map(text_of, seq) for m in [GUNICORN_PREFIX.match(t)]]
        assert got == want
        assert [effective(e) for e in seq] == ["INFO"] * 6 + ["ERROR", "INFO"]
    assert shut == h[BASE].graceful_shutdowns


def test_oom_canary(scenarios) -> None:
    _, _, truth, entries = scenarios("oom-canary")
    h = truth.health()
    assert h[CANARY].oom_kills == h[CANARY].memory_limit_exceeded >= 5
    assert h[BASE].oom_kills == h[BASE].memory_limit_exceeded == 0
    assert h[CANARY].boot_failures == 0 and h[CANARY].successful_requests > 100

    def rate_5xx(key: tuple[str, str]) -> float:
        return truth.by_revision[key].status_5xx / truth.by_revision[key].requests

    assert rate_5xx(CANARY) > 2.5 * rate_5xx(BASE)  # elevated 5xx
    canary = [e for e in entries if rev_key(e) == CANARY]
    for i, e in enumerate(canary):
        text = text_of(e)
        if text.startswith("Memory limit of "):
            used = re.fullmatch(r"Memory limit of 512 MiB exceeded with (\d+) MiB used\. Consider increasing the "
                                r"memory limit, see https://cloud\.google\.com/run/docs/configuring/memory-limits",
                                text)
            assert used and 512 < int(used.group(1)) <= 560 and e["severity"] == "ERROR"
            # then, on the same instance: the SIGKILL and the new worker
            rest = [text_of(x) for x in canary[i + 1:] if x.get("labels") == e["labels"] and "httpRequest" not in x]
            killed = re.search(r"\[1\] \[ERROR\] Worker \(pid:(\d+)\) was sent SIGKILL! Perhaps out of memory\?$",
                               rest[0])
            assert killed and GUNICORN_PREFIX.match(rest[0])
            assert re.search(r"\[1\] \[INFO\] Booting worker with pid: (\d+)$", rest[1])
            assert rest[4].endswith("[INFO] Application startup complete.")
    audit = [e for e in entries if "protoPayload" in e][-1]["protoPayload"]
    limits = audit["request"]["service"]["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert limits == {"cpu": "4", "memory": "512Mi"}


def test_low_traffic_canary(scenarios) -> None:
    _, _, truth, entries = scenarios("low-traffic-canary")
    assert truth.by_revision[CANARY].requests == 12
    h = truth.health()
    assert (h[CANARY].instance_starts, h[CANARY].boot_failures) == (1, 0)
    assert truth.by_revision[BASE].requests > 2000
    assert not any(k in ("ws_no_token_debug", "ws_auth_failure", "rate_limiter_fallback")
                   for s, r, k in truth.kinds if (s, r) == CANARY)
    audit = [e for e in entries if "protoPayload" in e][-1]["protoPayload"]
    assert audit["request"]["service"]["spec"]["traffic"] == [
        {"revisionName": BASELINE_REVISION, "percent": 100}, {"revisionName": CANARY_REVISION, "tag": "canary"}]


# --- the default is unchanged; determinism -----------------------------------------------------


def test_the_default_scenario_is_the_bundled_sample(tmp_path: Path) -> None:
    explicit = tmp_path / "explicit.jsonl.gz"
    write_sample(explicit, SampleConfig(scenario="canary-regression"))
    assert gzip.decompress(explicit.read_bytes()) == gzip.decompress(sample_path().read_bytes())
    assert SampleConfig() == SampleConfig(scenario="canary-regression")


def test_healthy_is_regression_false(tmp_path: Path) -> None:
    write_sample(tmp_path / "a.jsonl", SampleConfig(entries=3000, seed=4, scenario="healthy"))
    truth = write_sample(tmp_path / "b.jsonl", SampleConfig(entries=3000, seed=4, regression=False))
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
    assert truth.scenario == SampleConfig(regression=False).effective_scenario == "healthy"


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_same_seed_same_bytes(tmp_path: Path, scenario: str) -> None:
    cfg = SampleConfig(entries=2000, seed=5, scenario=scenario)
    one = write_sample(tmp_path / "1.jsonl", cfg)
    two = write_sample(tmp_path / "2.jsonl", cfg)
    write_sample(tmp_path / "3.jsonl", SampleConfig(entries=2000, seed=6, scenario=scenario))
    assert (tmp_path / "1.jsonl").read_bytes() == (tmp_path / "2.jsonl").read_bytes()
    assert (tmp_path / "1.jsonl").read_bytes() != (tmp_path / "3.jsonl").read_bytes()
    assert one.to_dict() == two.to_dict()


def test_scenarios_differ_from_each_other() -> None:
    firsts = {sc: json.dumps(sample_entries(SampleConfig(entries=1500, scenario=sc))[0]) for sc in SCENARIOS}
    assert len(set(firsts.values())) == len(SCENARIOS)


# --- the truth adds up, whatever the seed and size ---------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    scenario=st.sampled_from(SCENARIOS),
    entries=st.integers(0, 2500),
    seed=st.integers(0, 2**32),
    hours=st.sampled_from([0.05, 1.0, 8.0, 30.0]),
    second=st.booleans(),
    secrets=st.booleans(),
)

def test_truth_adds_up(scenario: str, entries: int, seed: int, hours: float, second: bool, secrets: bool) -> None:
    cfg = SampleConfig(entries=entries, seed=seed, hours=hours, scenario=scenario, second_service=second,
                       plant_secrets=secrets)
    got, truth = sample_entries(cfg)
    assert len(got) == truth.entries == entries
    assert sum(r.entries for r in truth.by_revision.values()) == entries
    assert sum(truth.kinds.values()) == sum(truth.effective_severity.values()) == entries
    assert Counter(effective(e) for e in got) == truth.effective_severity
    times = [ts_ns(e["timestamp"]) for e in got]
    assert times == sorted(times)
    assert len({e["insertId"] for e in got}) == entries
    by_rev = Counter(rev_key(e) for e in got)
    assert by_rev == {k: v.entries for k, v in truth.by_revision.items()}
    read = read_health(got)
    assert read["health"] == truth_health(truth)
    assert read["root_causes"] == truth.root_causes
    assert read["serving_before_deploy"] == truth.serving_before_deploy
    for (svc, rev), rt in truth.by_revision.items():
        mine = {k: n for (s, r, k), n in truth.kinds.items() if (s, r) == (svc, rev)}
        assert sum(n for k, n in mine.items() if k in REQUEST_KINDS) == rt.requests
    if not second:
        assert SECOND_SERVICE not in {s for s, _ in truth.by_revision}
    assert SampleTruth.from_dict(json.loads(json.dumps(truth.to_dict()))) == truth


# --- truth as data -----------------------------------------------------------------------------


def test_truth_round_trips_and_reads_old_dicts() -> None:
    _, truth = sample_entries(SampleConfig(entries=3000, scenario="crash-loop-both"))
    d = json.loads(json.dumps(truth.to_dict()))
    assert SampleTruth.from_dict(d) == truth
    assert d["expected_baseline"] == BASELINE_REVISION and d["scenario"] == "crash-loop-both"
    assert {"service": SERVICE, "revision": CANARY_REVISION, "line": CRASH_ROOT_CAUSE, "count": 15} in d["root_causes"]
    assert {"service": SERVICE, "revision": CANARY_REVISION, **vars(RevisionHealth(15, 15))} in d["health"]
    old = {k: v for k, v in d.items()
           if k not in ("scenario", "health", "root_causes", "serving_before_deploy", "expected_baseline")}
    back = SampleTruth.from_dict(old)  # written before scenarios existed
    assert (back.scenario, back.root_causes, back.serving_before_deploy) == ("canary-regression", Counter(), {})
    assert back.kinds == truth.kinds


def test_root_cause_ties_and_absence() -> None:
    t = SampleTruth()
    assert t.root_cause(SERVICE, CANARY_REVISION) is None
    t.root_causes.update({(SERVICE, CANARY_REVISION, "b"): 2, (SERVICE, CANARY_REVISION, "a"): 2,
                          (SERVICE, BASELINE_REVISION, "c"): 5})
    assert t.root_cause(SERVICE, CANARY_REVISION) == ("a", 2)


def test_kind_tables() -> None:
    assert set(KIND_STATUS) == REQUEST_KINDS
    assert not set(SCENARIO_KINDS) & set(KINDS)
    assert set(SCENARIO_KIND_SEVERITY.values()) <= set(SEVERITY_NUM)
    _, truth = sample_entries(SampleConfig(entries=3000))
    for (_, method, path, status), n in truth.endpoints.items():
        assert n > 0 and status in KIND_STATUS.values(), (method, path)


def test_bad_scenario_config() -> None:
    with pytest.raises(UsageError, match="unknown scenario 'crashloop'; use one of canary-regression, healthy, "
                                         "crash-loop-canary, crash-loop-both, graceful-scale-down, oom-canary, "
                                         "low-traffic-canary"):
        SampleConfig(scenario="crashloop")
    with pytest.raises(UsageError, match="regression=False applies to the canary-regression scenario only"):
        SampleConfig(scenario="oom-canary", regression=False)
    assert SampleConfig(scenario="healthy", regression=False).effective_scenario == "healthy"


# --- the command ---------------------------------------------------------------------------------


def test_sample_command_scenario(cli, tmp_path: Path) -> None:
    out, truth_path = tmp_path / "s.jsonl", tmp_path / "truth.json"
    result = cli("sample", out, "-n", 1500, "--scenario", "crash-loop-canary", "--truth", truth_path)
    assert (result.exit_code, result.stdout) == (0, f"wrote 1500 entries to {out}\n")
    want = write_sample(tmp_path / "lib.jsonl", SampleConfig(entries=1500, scenario="crash-loop-canary"))
    assert out.read_bytes() == (tmp_path / "lib.jsonl").read_bytes()
    assert json.loads(truth_path.read_text()) == json.loads(json.dumps(want.to_dict()))
    helps = cli("sample", "--help").stdout
    assert all(name in helps for name in SCENARIOS)


def test_sample_command_bad_scenario(cli, tmp_path: Path) -> None:
    bad = cli("sample", tmp_path / "s.jsonl", "--scenario", "crashloop")
    assert bad.exit_code == 64
    assert ("Error: Invalid value for '--scenario': 'crashloop' is not one of 'canary-regression', 'healthy', "
            "'crash-loop-canary', 'crash-loop-both', 'graceful-scale-down', 'oom-canary', 'low-traffic-canary'."
            ) in bad.stderr
    both = cli("sample", tmp_path / "s.jsonl", "--scenario", "oom-canary", "--no-regression")
    assert both.exit_code == 64
    assert ("Error: --no-regression applies to --scenario canary-regression only (it makes it healthy); "
            "--scenario oom-canary defines its canary itself") in both.stderr
    assert not (tmp_path / "s.jsonl").exists()
    healthy = cli("sample", tmp_path / "h.jsonl", "-n", 300, "--scenario", "healthy", "--no-regression")
    assert healthy.exit_code == 0
