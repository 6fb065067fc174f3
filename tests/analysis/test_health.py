"""Absolute health: the engine's health facts and root causes against the generator's truth, the
checks of `assess_health`, and the verdicts of `compare` for every sample scenario."""

from __future__ import annotations

import contextlib
import json
from collections import Counter
from datetime import UTC, datetime

import pytest

from logaudit.analysis.aggregates import HealthEvidence, HealthStats, RootCause
from logaudit.analysis.audit import Audit
from logaudit.analysis.gate import Gate, GateError, HealthRule, gate_from_dict
from logaudit.analysis.health import assess_health
from logaudit.analysis.judge import compare
from logaudit.analysis.window import Window
from logaudit.sources.sample import (
    BASELINE_REVISION,
    CANARY_REVISION,
    CRASH_MODULE,
    CRASH_ROOT_CAUSE,
    SCENARIOS,
    SERVICE,
    SampleConfig,
    SampleGenerator,
)
from logaudit.store.store import Store

# every test here builds or reads stores of all the sample scenarios: the full suite runs them
pytestmark = pytest.mark.slow

ENTRIES = 3000


@pytest.fixture(scope="module")
def scenarios(tmp_path_factory):
    """scenarios(name): (Audit of a store holding the scenario's 3000 entries, the truth)."""
    made: dict[str, tuple[Audit, object]] = {}

    def get(name: str):
        if name not in made:
            config = SampleConfig(entries=ENTRIES, scenario=name)
            gen = SampleGenerator(config)
            for _ in gen:
                pass
            store = Store(tmp_path_factory.mktemp(name) / "store")
            assert store.ingest_entries(SampleGenerator(config), "sample").new_rows == ENTRIES
            made[name] = Audit(store), gen.truth
        return made[name]

    return get


# ------------------------------------------------------------------------------ the aggregates
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_engine_health_equals_the_truth(scenarios, scenario):
    audit, truth = scenarios(scenario)
    got = {(h.service, h.revision): h for h in audit.engine.health(Window())}
    assert set(got) == {k for k in truth.by_revision if k[1] is not None}
    for key, th in truth.health().items():
        h = got[key]
        assert (h.instance_starts, h.failed_starts, h.successful_requests, h.requests) == \
            (th.instance_starts, th.boot_failures, th.successful_requests, truth.by_revision[key].requests), key
        assert h.probe_failed_starts == 0
        assert h.evidence.get("start", HealthEvidence(0, None, None, None)).entries == th.instance_starts


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_engine_root_causes_equal_the_truth(scenarios, scenario):
    audit, truth = scenarios(scenario)
    rows = audit.engine.root_causes(Window())
    assert Counter({(r.service, r.revision, r.line): r.starts for r in rows}) == truth.root_causes
    for r in rows:
        assert r.first_seen <= r.last_seen and r.example is not None
        lines = [ln for ln in r.example.splitlines() if ln.strip()]
        assert r.line in (lines[0], lines[-1])
    revisions = [(r.service, r.revision) for r in rows]
    assert revisions == sorted(revisions)


def test_the_crash_loop_root_cause_is_unmasked_with_its_evidence(scenarios):
    audit, truth = scenarios("crash-loop-canary")
    rows = [r for r in audit.engine.root_causes(Window(service=SERVICE)) if r.revision == CANARY_REVISION]
    assert [(r.line, r.starts) for r in rows] == [truth.root_cause(SERVICE, CANARY_REVISION)] == [(CRASH_ROOT_CAUSE, 15)]
    assert "Exception in worker process" in rows[0].example.splitlines()[0]
    assert rows[0].example.splitlines()[-1] == CRASH_ROOT_CAUSE


# ------------------------------------------------------------------------------ the checks
def _stats(starts=0, failed=0, probe=0, ready=0, requests=0, ok=0, evidence=None) -> HealthStats:
    return HealthStats("svc", "rev", starts, failed, probe, ready, requests, ok, evidence or {})


T0, T1 = datetime(2025, 9, 10, 2, 0, tzinfo=UTC), datetime(2025, 9, 10, 3, 0, tzinfo=UTC)


def test_crash_loop_is_decided_by_the_share_of_failed_starts():
    rule = HealthRule()
    ev = {"boot_failure": HealthEvidence(30, T0, T1, "Container called exit(3).")}
    c = assess_health("rev", _stats(4, 2, ready=2, evidence=ev), [], rule).check("crash_loop")
    assert (c.status, c.count, c.total, c.share) == ("fail", 2, 4, 0.5)
    assert c.rule == "2 of 4 instance starts ended in a boot failure: at least health.crash_loop_share 50%"
    assert (c.first, c.last, c.example) == (T0, T1, "Container called exit(3).")
    c = assess_health("rev", _stats(4, 1, ready=3), [], rule).check("crash_loop")
    assert (c.status, c.rule) == ("ok", "1 of 4 instance starts ended in a boot failure: below "
                                        "health.crash_loop_share 50%")
    c = assess_health("rev", _stats(2, 2), [], rule).check("crash_loop")
    assert (c.status, c.rule) == ("not-applicable", "2 instance starts, fewer than health.min_starts 3")
    c = assess_health("rev", _stats(0, 0, requests=5, ok=5), [], rule).check("crash_loop")
    assert (c.status, c.rule) == ("not-applicable", "no instance start in the window")
    strict = HealthRule(crash_loop_share=0.2, min_starts=2)
    assert assess_health("rev", _stats(2, 1), [], strict).check("crash_loop").status == "fail"


def test_no_successful_request_readiness_and_startup_failure():
    h = assess_health("rev", _stats(3, 0, 3, 0, 10, 0), [], HealthRule())
    assert [(c.name, c.status, c.count, c.total) for c in h.checks] == [
        ("crash_loop", "ok", 0, 3), ("no_successful_request", "fail", 0, 10),
        ("startup_failure", "fail", 3, 3), ("readiness", "fail", 0, 3)]
    assert h.check("no_successful_request").rule == "none of 10 requests succeeded (status 200-399)"
    assert h.status == "fail" and [c.name for c in h.failed] == ["no_successful_request", "startup_failure",
                                                                 "readiness"]
    h = assess_health("rev", _stats(3, 0, 0, 1, 10, 1), [], HealthRule())
    assert h.status == "ok" and h.check("no_successful_request").rule == \
        "1 of 10 requests succeeded (status 200-399)"
    h = assess_health("rev", None, [], HealthRule())  # nothing counted: nothing to fail
    assert [c.status for c in h.checks] == ["not-applicable"] * 4 and h.status == "ok"
    h = assess_health("rev", _stats(3, 0, 0, 0, 10, 0), [], HealthRule(ignore=("readiness", "no_successful_request")))
    assert h.status == "ok"
    assert h.check("readiness").rule == "ignored by the gate (health.ignore lists readiness)"


def test_root_causes_are_the_revisions_most_frequent_first():
    rows = [RootCause("svc", "rev", "b", 2, T0, T1, "b"), RootCause("svc", "rev", "a", 2, T0, T1, "a"),
            RootCause("svc", "rev", "c", 5, T0, T1, "x\nc"), RootCause("svc", "other", "z", 9, T0, T1, "z"),
            RootCause("svc", "rev", "d", 1, T0, T1, "d")]
    h = assess_health("rev", _stats(10, 10), rows, HealthRule())
    assert [r.line for r in h.root_causes] == ["c", "a", "b"]
    d = h.to_dict()
    assert d["root_causes"][0] == {"line": "c", "starts": 5, "of_starts": 10, "first": "2025-09-10T02:00:00Z",
                                   "last": "2025-09-10T03:00:00Z", "example": "x\nc"}
    assert d["status"] == "fail" and d["failed"] == ["crash_loop", "readiness"]


def test_the_gate_health_section():
    g = gate_from_dict({"health": {"crash_loop_share": 0.8, "min_starts": 5, "ignore": "readiness"}})
    assert g.health == HealthRule(crash_loop_share=0.8, min_starts=5, ignore=("readiness",))
    assert g.to_dict()["health"] == {"crash_loop_share": 0.8, "startup_failure_share": 0.5, "min_starts": 5,
                                     "min_requests": 1, "ignore": ["readiness"]}
    with pytest.raises(GateError, match=r"^gate: health.crash_loop_share: must be <= 1, not 1.5$"):
        gate_from_dict({"health": {"crash_loop_share": 1.5}})
    with pytest.raises(GateError, match=r"^gate: health.min_starts: expected an integer, not 2.5$"):
        gate_from_dict({"health": {"min_starts": 2.5}})
    with pytest.raises(GateError, match=r"health.ignore: expected one of crash_loop, no_successful_request, "
                                        r"startup_failure, readiness, not 'liveness'"):
        gate_from_dict({"health": {"ignore": ["liveness"]}})
    with pytest.raises(GateError, match=r"health.crash_loop: unknown key"):
        gate_from_dict({"health": {"crash_loop": 0.5}})


# ------------------------------------------------------------------------------ the verdicts
def _first_reason(truth, revision: str) -> str:
    line, n = truth.root_cause(SERVICE, revision)
    starts = truth.health()[(SERVICE, revision)].instance_starts
    return f"root cause: {line} ({n} of {starts} instance starts, first "


def test_a_crash_looping_canary_is_not_ready_with_its_root_cause_first(scenarios):
    audit, truth = scenarios("crash-loop-canary")
    r = compare(audit, gate=Gate())
    assert (r.baseline, r.canary, r.verdict, r.exit_code) == (BASELINE_REVISION, CANARY_REVISION, "NOT READY", 2)
    assert r.reasons[0].startswith(_first_reason(truth, CANARY_REVISION))
    assert f"No module named '{CRASH_MODULE}'" in r.reasons[0]
    th = truth.health()[(SERVICE, CANARY_REVISION)]
    canary = r.health["canary"]
    assert [c.name for c in canary.failed] == ["crash_loop", "no_successful_request", "readiness"]
    cl, ns = canary.check("crash_loop"), canary.check("no_successful_request")
    assert (cl.count, cl.total) == (th.boot_failures, th.instance_starts) == (15, 15)
    assert (ns.count, ns.total) == (th.successful_requests, truth.by_revision[(SERVICE, CANARY_REVISION)].requests)
    assert canary.check("readiness").total == th.instance_starts
    assert r.reasons[1].startswith("health crash_loop: 15 of 15 instance starts ended in a boot failure: at least "
                                    "health.crash_loop_share 50%; first 2025-09-10T")
    assert r.reasons[2].startswith(f"health no_successful_request: none of {ns.total} requests succeeded")
    assert r.reasons[3].startswith("health readiness: none of 15 instance starts became ready")
    assert r.health["baseline"].status == "ok"
    assert not any("itself unhealthy" in x for x in r.reasons)


@pytest.mark.parametrize("swap", [False, True])
def test_two_crash_looping_revisions_are_not_ready_in_either_order(scenarios, swap):
    audit, truth = scenarios("crash-loop-both")
    b, c = (CANARY_REVISION, BASELINE_REVISION) if swap else (BASELINE_REVISION, CANARY_REVISION)
    r = compare(audit, baseline=b, canary=c, gate=Gate())
    assert (r.baseline, r.canary, r.verdict, r.exit_code) == (b, c, "NOT READY", 2)
    assert r.reasons[0].startswith(_first_reason(truth, c))
    assert CRASH_MODULE in r.reasons[0]
    th = truth.health()
    for side, rev in (("baseline", b), ("canary", c)):
        cl = r.health[side].check("crash_loop")
        assert (cl.status, cl.count, cl.total) == ("fail", th[(SERVICE, rev)].boot_failures,
                                                   th[(SERVICE, rev)].instance_starts)
        assert r.health[side].check("no_successful_request").count == th[(SERVICE, rev)].successful_requests == 0
    note = [x for x in r.reasons if "itself unhealthy" in x]
    assert note == [x for x in r.reasons if x.startswith(f"the baseline {b} is itself unhealthy (crash_loop, "
                                                         "no_successful_request, readiness); its root cause: "
                                                         f"{CRASH_ROOT_CAUSE} (15 of 15 instance starts")]


@pytest.mark.parametrize("scenario", ["healthy", "graceful-scale-down"])
def test_healthy_revisions_are_ready_without_a_finding(scenarios, scenario):
    audit, truth = scenarios(scenario)
    r = compare(audit, gate=Gate())
    assert (r.verdict, r.exit_code) == ("READY", 0)
    assert [h.status for h in r.health.values()] == ["ok", "ok"]
    assert not [p for p in r.new_patterns if p["category"] in ("critical", "warning")]
    th = truth.health()[(SERVICE, CANARY_REVISION)]
    ns = r.health["canary"].check("no_successful_request")
    assert (ns.status, ns.count, ns.total) == ("ok", th.successful_requests,
                                               truth.by_revision[(SERVICE, CANARY_REVISION)].requests)
    cl = r.health["canary"].check("crash_loop")
    assert (cl.count, cl.total) == (th.boot_failures, th.instance_starts)


@pytest.mark.parametrize(("scenario", "verdict"), [("canary-regression", "NOT READY"), ("oom-canary", "NOT READY"),
                                                   ("low-traffic-canary", "MARGINAL")])
def test_the_relative_verdicts_stay_and_healthy_canaries_pass_the_floor(scenarios, scenario, verdict):
    audit, truth = scenarios(scenario)
    r = compare(audit, gate=Gate())
    assert r.verdict == verdict
    assert r.health["canary"].status == "ok" and r.health["baseline"].status == "ok"
    assert not any(x.startswith(("root cause:", "health ")) for x in r.reasons)
    th = truth.health()[(SERVICE, CANARY_REVISION)]
    assert r.health["canary"].check("no_successful_request").count == th.successful_requests


# ------------------------------------------------------------------------------ outputs and the CLI
def test_compare_json_text_and_markdown_carry_the_health(scenarios, cli):
    audit, truth = scenarios("crash-loop-both")
    store = str(audit.store.root)
    res = cli("compare", "--store", store, "--baseline", CANARY_REVISION, "--canary", BASELINE_REVISION,
              "--format", "json")
    assert res.exit_code == 2
    out = json.loads(res.output)
    assert out["verdict"] == "NOT READY" and CRASH_MODULE in out["reasons"][0]
    canary = out["health"]["canary"]
    assert (canary["revision"], canary["status"], canary["failed"]) == \
        (BASELINE_REVISION, "fail", ["crash_loop", "no_successful_request", "readiness"])
    assert [c["name"] for c in canary["checks"]] == ["crash_loop", "no_successful_request", "startup_failure",
                                                     "readiness"]
    cl = canary["checks"][0]
    assert (cl["count"], cl["total"], cl["share"], cl["example"]) == (15, 15, 1.0, "Container called exit(3).")
    assert canary["root_causes"][0]["line"] == CRASH_ROOT_CAUSE
    assert (canary["root_causes"][0]["starts"], canary["root_causes"][0]["of_starts"]) == (15, 15)
    assert out["health"]["baseline"]["failed"] == ["crash_loop", "no_successful_request", "readiness"]
    text = cli("compare", "--store", store, env={"COLUMNS": "80"})
    assert text.exit_code == 2
    lines = text.output.splitlines()
    assert max(len(x) for x in lines) <= 80
    assert any(x.split() == ["crash_loop", "│", "fail", "15/15", "│", "fail", "15/15"] for x in lines)
    assert f"root cause (canary): {CRASH_ROOT_CAUSE} (15 of 15 instance starts)" in " ".join(text.output.split())
    md = cli("compare", "--store", store, "--format", "markdown").output
    assert "| crash_loop | fail 15/15 | fail 15/15 |" in md
    assert f"Root cause (canary): `{CRASH_ROOT_CAUSE}` (15 of 15 instance starts)" in md


def test_the_summary_verdict_carries_the_health(scenarios):
    audit, _ = scenarios("crash-loop-canary")
    v = audit.summary()["verdict"]
    assert v["verdict"] == "NOT READY" and CRASH_MODULE in v["reasons"][0]
    assert v["health"] == {"baseline": {"status": "ok", "failed": [], "root_cause": None},
                           "canary": {"status": "fail", "failed": ["crash_loop", "no_successful_request", "readiness"],
                                      "root_cause": CRASH_ROOT_CAUSE}}


def test_root_causes_and_evidence_are_redacted_and_entries_without_an_instance_are_one(tmp_path):
    """A secret in the first error is never shown; entries without labels.instanceId count as one instance."""
    secret = "Bearer abcdefghijklmnopqrstuvwxyz0123456789ABCD"

    def entry(i: int, second: int, text: str, *, revision: str, log: str = "stderr", severity: str | None = None):
        e = {"logName": f"projects/p/logs/run.googleapis.com%2F{log}", "insertId": f"{revision}-{i}",
             "timestamp": f"2025-09-10T02:00:{second:02d}Z", "textPayload": text,
             "resource": {"type": "cloud_run_revision", "labels": {"service_name": "svc", "revision_name": revision}}}
        if severity:
            e["severity"] = severity
        return e

    start = "Starting new instance. Reason: DEPLOYMENT - Instance started due to traffic shifting between revisions."
    cause = f"RuntimeError: upstream refused token {secret}"
    entries = []
    for rev in ("svc-00001-aaa", "svc-00002-bbb"):
        for k in range(3):
            base = 10 * k
            entries += [entry(base, base, start, revision=rev, log="varlog%2Fsystem", severity="INFO"),
                        entry(base + 1, base + 1, f"Traceback (most recent call last):\n  File \"x.py\"\n{cause}",
                              revision=rev, severity="ERROR"),
                        entry(base + 2, base + 2, "Container called exit(1).", revision=rev, log="varlog%2Fsystem",
                              severity="WARNING")]
    store = Store(tmp_path / "store")
    store.ingest_entries(entries, "test")
    audit = Audit(store)
    [raw] = [r for r in audit.engine.root_causes(Window()) if r.revision == "svc-00002-bbb"]
    assert (raw.line, raw.starts) == (cause, 3)  # the engine returns the text as stored
    result = compare(audit, gate=Gate())
    assert result.verdict == "NOT READY" and result.canary == "svc-00002-bbb"
    assert result.health["canary"].check("crash_loop").count == 3
    shown = json.dumps(result.to_dict())
    assert secret not in shown and "abcdefghijklmnopqrstuvwxyz" not in shown
    assert result.reasons[0].startswith("root cause: RuntimeError: upstream refused token ")
    assert "(3 of 3 instance starts" in result.reasons[0]


def test_segments_are_ready_by_a_mark_or_a_request_and_a_first_error_without_text_is_passed_over(tmp_path):
    """Five starts of one instance in one hour: ready by "Application startup complete.", by a
    successful request between the hour's first and last one (read again), by the hour's last
    one, never ready (its only request failed), and a first one whose first error has no text
    (its second error is the cause)."""
    def entry(i: int, second: int, *, text: str | None = None, payload: dict | None = None,
              severity: str = "INFO", status: int | None = None, log: str = "stderr") -> dict:
        e = {"logName": f"projects/p/logs/run.googleapis.com%2F{log}", "insertId": f"e{i}",
             "timestamp": f"2025-09-10T02:00:{second:02d}Z", "severity": severity,
             "resource": {"type": "cloud_run_revision", "labels": {"service_name": "svc", "revision_name": "svc-1"}},
             "labels": {"instanceId": "inst-1"}}
        if text is not None:
            e["textPayload"] = text
        if payload is not None:
            e["jsonPayload"] = payload
        if status is not None:
            e["httpRequest"] = {"requestMethod": "GET", "requestUrl": "https://svc/x", "status": status}
            e["logName"] = "projects/p/logs/run.googleapis.com%2Frequests"
        return e

    start = "Starting new instance. Reason: AUTOSCALING - Instance started due to configured scaling factors."
    entries = [
        entry(0, 0, text=start, log="varlog%2Fsystem"),
        entry(1, 1, payload={"code": 7}, severity="ERROR"),          # an error without a text
        entry(2, 2, text="RuntimeError: boom", severity="ERROR"),
        entry(3, 3, status=503),
        entry(10, 10, text=start, log="varlog%2Fsystem"),
        entry(11, 11, text="INFO:     Application startup complete."),
        entry(12, 12, status=200),
        entry(20, 20, text=start, log="varlog%2Fsystem"),
        entry(21, 21, status=200),
        entry(30, 30, text=start, log="varlog%2Fsystem"),
        entry(31, 31, status=500),
        entry(40, 40, text=start, log="varlog%2Fsystem"),
        entry(45, 45, status=200),
    ]
    store = Store(tmp_path / "store")
    store.ingest_entries(entries, "test")
    audit = Audit(store)
    for held in (False, True):  # alone, and sharing the window's tables while held
        with audit.engine.hold() if held else contextlib.nullcontext():
            [h] = audit.engine.health(Window())
            causes = audit.engine.root_causes(Window())
        assert (h.instance_starts, h.ready_starts, h.requests, h.successful_requests) == (5, 3, 5, 3)
        assert (h.evidence["failed_request"].entries, h.evidence["failed_request"].example) == (2, "GET /x -> 500")
        assert [(c.line, c.starts, c.example) for c in causes] == [("RuntimeError: boom", 1, "RuntimeError: boom")]
