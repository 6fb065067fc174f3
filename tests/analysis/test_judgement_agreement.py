"""One judgement: `compare`, `summarize`'s verdict, the report's checklist and a period export agree
on every metric's judgement and on the verdict, for every sample scenario; the default baseline is
the revision serving the traffic just before the canary's deploy (and the output says so); every
metric carries the rule that decided it, in every format; the false-alarm rate stays low."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest

from logaudit import period_export
from logaudit.analysis.audit import Audit
from logaudit.analysis.gate import Gate
from logaudit.analysis.judge import compare
from logaudit.present.report import CHECKLIST_METRICS, build_report
from logaudit.sources.sample import (
    BASELINE_REVISION,
    CANARY_REVISION,
    PREVIOUS_REVISION,
    SCENARIOS,
    SERVICE,
    SampleConfig,
    SampleGenerator,
    SampleTruth,
)
from logaudit.store.store import Store

# every test here builds or reads stores of all the sample scenarios: the full suite runs them
pytestmark = pytest.mark.slow

ENTRIES = 3000
SINCE, UNTIL = "2025-09-09T20:00:00Z", "2025-09-10T04:00:00Z"  # the sample's 8 hours


@pytest.fixture(scope="module")
def scenario_stores(tmp_path_factory) -> dict[str, tuple[Store, SampleTruth]]:
    out = {}
    for scenario in SCENARIOS:
        gen = SampleGenerator(SampleConfig(entries=ENTRIES, scenario=scenario))
        store = Store(tmp_path_factory.mktemp(scenario) / "store")
        assert store.ingest_entries(gen, "sample").new_rows == ENTRIES
        out[scenario] = store, gen.truth
    return out


@pytest.fixture(params=SCENARIOS)
def scenario(request, scenario_stores) -> tuple[str, Store, SampleTruth]:
    return request.param, *scenario_stores[request.param]


# ------------------------------------------------------------------------------ one judgement
@pytest.mark.slow
def test_compare_summary_report_and_export_agree(scenario, cli, tmp_path):
    name, store, _ = scenario
    run = cli("compare", "--store", store.root, "--format", "json")
    compared = json.loads(run.stdout)
    assert run.exit_code == compared["exit_code"]
    judgements = {m["name"]: m["judgement"] for m in compared["metrics"]}
    rules = {m["name"]: m["rule"] for m in compared["metrics"]}
    assert all(rules.values()), name  # every metric says which rule decided it

    summary = json.loads(cli("summarize", "--store", store.root, "--format", "json").stdout)
    verdict = summary["verdict"]
    assert (verdict["verdict"], verdict["score"], verdict["baseline"], verdict["canary"]) == \
        (compared["verdict"], compared["score"], compared["baseline"], compared["canary"])
    assert {j["name"]: j["judgement"] for j in verdict["judgements"]} == judgements
    assert {j["name"]: j["rule"] for j in verdict["judgements"]} == rules
    assert verdict["baseline_choice"] == compared["baseline_choice"]

    report = build_report(Audit(store), out_dir=tmp_path / "report", formats="md", with_charts=False)
    checks = {c["check"]: c for c in report.checklist if c["service"] == SERVICE}
    for check, metric, _ in CHECKLIST_METRICS:
        c = checks[check]
        assert (c["metric"], c["judgement"], c["rule"]) == (metric, judgements.get(metric), rules.get(metric)), check
        assert c["ok"] == {"Pass": True, "High": False, "Low": False}.get(judgements.get(metric)), check
    assert checks["verdict"]["ok"] == (compared["verdict"] == "READY")
    assert checks["verdict"]["text"].endswith(f": {compared['verdict']}")
    md = report.markdown.read_text().replace("\\", "")  # Markdown escapes < > |
    for m in compared["metrics"]:
        if not m["name"].startswith("pattern:"):
            assert m["rule"] in md, m["name"]

    result = period_export.export(store, tmp_path / "export", since=SINCE, until=UNTIL, service=SERVICE)
    folder = Path(result.periods[0].location)
    exported = json.loads((folder / "compare.json").read_text())
    assert {m["name"]: m["judgement"] for m in exported["metrics"]} == judgements
    assert {m["name"]: m["rule"] for m in exported["metrics"]} == rules
    assert (exported["verdict"], exported["baseline"]) == (compared["verdict"], compared["baseline"])
    # (the export names its window: "the window", not "the store's data", cuts a baseline short)
    assert {k: exported["baseline_choice"][k] for k in ("rule", "text", "baseline_cut")} == \
        {k: compared["baseline_choice"][k] for k in ("rule", "text", "baseline_cut")}
    exported_summary = json.loads((folder / "summary.json").read_text())
    assert {j["name"]: j["judgement"] for j in exported_summary["verdict"]["judgements"]} == judgements
    assert exported_summary["verdict"]["verdict"] == compared["verdict"] == result.periods[0].compare["verdict"]


# ------------------------------------------------------------------------------- the baseline
def test_default_baseline_is_the_revision_serving_before_the_deploy(scenario):
    name, store, truth = scenario
    r = compare(Audit(store), gate=Gate())
    assert (r.baseline, r.canary) == (truth.expected_baseline, CANARY_REVISION) == (BASELINE_REVISION,
                                                                                  CANARY_REVISION)
    choice = r.baseline_choice
    assert choice["rule"] == "deploy-audit-traffic"
    assert choice["text"].startswith(f"{BASELINE_REVISION} served the last requests before {CANARY_REVISION} was "
                                     "deployed at 2025-09-10T02:18:34.619410Z (audit log), in the second from ")
    # the default deploy has no audit entry for its baseline: the window cuts it short
    assert choice["baseline_cut"] is (name in ("canary-regression", "healthy"))


def test_a_window_after_the_baseline_deploy_keeps_the_serving_baseline(scenario_stores, cli):
    """crash-loop-both from 01:15 (after the baseline's deploy at 01:13 and the previous revision's last
    request at 01:14): the previous revision logs only its shutdowns, no request, and is first seen
    after the baseline - the first-seen rule picked it; the traffic before the deploy does not."""
    store, _ = scenario_stores["crash-loop-both"]
    r = compare(Audit(store), since="2025-09-10T01:15:00Z", gate=Gate())
    assert (r.baseline, r.canary) == (BASELINE_REVISION, CANARY_REVISION)
    assert r.windows["baseline"]["requests"] > 0
    assert r.baseline_choice["rule"] == "deploy-audit-traffic"
    assert r.baseline_choice["baseline_cut"] is True
    assert r.baseline_choice["baseline_cut_text"] == (
        f"the window cuts the baseline short: {BASELINE_REVISION} was deployed before it (no deploy of it in the "
        f"audit log here); its first entry in the window is at {r.windows['baseline']['since']}")
    text = " ".join(cli("compare", "--store", store.root, "--since", "2025-09-10T01:15:00Z").stdout.split())
    assert "baseline chosen by rule deploy-audit-traffic: " + BASELINE_REVISION in text
    assert "note: the window cuts the baseline short" in text
    # the summary's new issues are against that baseline only, and say the window cuts it short
    news = " ".join(cli("summarize", "--store", store.root, "--since", "2025-09-10T01:15:00Z").stdout.split())
    section = news[news.index("4. New issues"):]
    assert f"{CANARY_REVISION} vs {BASELINE_REVISION}: baseline chosen by rule deploy-audit-traffic: " in section
    assert f"note: the window cuts the baseline short: {BASELINE_REVISION} was deployed before it" in section
    # named, it is what was named
    given = compare(Audit(store), since="2025-09-10T01:15:00Z", baseline=PREVIOUS_REVISION, gate=Gate())
    assert (given.baseline, given.baseline_choice["rule"]) == (PREVIOUS_REVISION, "given")


def test_without_a_deploy_fact_the_baseline_is_the_revision_before(tmp_path):
    """No audit-log entry (a store of request logs only): the first-seen rule, said so."""
    entries = [e for e in SampleGenerator(SampleConfig(entries=2000, scenario="healthy"))
               if "cloudaudit" not in e["logName"]]
    store = Store(tmp_path / "store")
    store.ingest_entries(entries, "no-audit")
    r = compare(Audit(store), gate=Gate())
    assert (r.baseline, r.canary) == (BASELINE_REVISION, CANARY_REVISION)
    assert r.baseline_choice == {
        "rule": "first-seen",
        "text": f"{BASELINE_REVISION} is the revision deployed (else first seen) just before {CANARY_REVISION} "
                f"(no deploy of {CANARY_REVISION} in the audit log of this window)",
        "baseline_cut": True,
        "baseline_cut_text": f"the store's data cuts the baseline short: {BASELINE_REVISION} was deployed before it "
                             f"(no deploy of it in the audit log here); its first entry in the window is at "
                             f"{r.windows['baseline']['since']}",
    }


def test_new_issues_are_against_the_chosen_baseline_only(scenario_stores, cli):
    """crash-loop-both: the previous revision's patterns (its graceful shutdowns) are not the baseline's;
    "every older revision combined" hid what the canary shares with the previous revision only."""
    store, _ = scenario_stores["crash-loop-both"]
    audit = Audit(store)
    summary = audit.summary()
    from logaudit.present.summary import new_in_newest

    news = {n["service"]: n for n in new_in_newest(summary)}[SERVICE]
    assert (news["revision"], news["baseline"]) == (CANARY_REVISION, BASELINE_REVISION)
    assert news["baseline_choice"]["rule"] == "deploy-audit-traffic"
    assert news["baseline_choice"]["baseline_cut"] is False
    want = sorted(p["id"] for p in summary["patterns"]
                  if p["by_revision"].get(CANARY_REVISION) and not p["by_revision"].get(BASELINE_REVISION))
    assert sorted(p["id"] for p in news["new_patterns"]) == want
    gone = sorted(p["id"] for p in summary["patterns"]
                  if p["by_revision"].get(BASELINE_REVISION) and not p["by_revision"].get(CANARY_REVISION))
    assert sorted(p["id"] for p in news["gone_patterns"]) == gone
    # compare's new patterns are the same set, from the same baseline
    assert sorted(p["id"] for p in compare(audit, gate=Gate()).new_patterns) == want


# --------------------------------------------------------------------------- small samples
@pytest.mark.slow
def test_inconclusive_rule_in_every_format(scenario_stores, cli, tmp_path):
    """low-traffic-canary: 12 canary requests; the rule that made each metric Inconclusive is in the
    JSON, the text, the Markdown, the summary and the report."""
    store, _ = scenario_stores["low-traffic-canary"]
    rule = "Inconclusive: canary 12 requests < min_requests 100"
    p99 = "Inconclusive: canary 11 requests with a latency < 500 needed for p99 (min_tail 5 / (1 - 0.99))"
    data = json.loads(cli("compare", "--store", store.root, "--format", "json").stdout)
    rules = {m["name"]: m["rule"] for m in data["metrics"]}
    assert rules["request_error_rate"] == rule
    assert rules["entry_error_rate"] == "Inconclusive: canary 34 entries < min_entries 200"
    assert rules["latency_p99"] == p99
    text = " ".join(cli("compare", "--store", store.root, "--all-metrics").stdout.split())
    md = cli("compare", "--store", store.root, "--format", "markdown").stdout
    summary_text = " ".join(cli("summarize", "--store", store.root).stdout.split())
    summary_md = cli("summarize", "--store", store.root, "--format", "markdown").stdout
    report = build_report(Audit(store), out_dir=tmp_path / "r", formats="md", with_charts=False)
    report_md = report.markdown.read_text().replace("\\", "")
    for where, out in (("compare text", text), ("compare markdown", md), ("summarize text", summary_text),
                       ("summarize markdown", summary_md), ("report", report_md)):
        out = out.replace("\\", "")  # Markdown escapes < > |
        assert rule in out and p99 in out, where
    summary = json.loads(cli("summarize", "--store", store.root, "--format", "json").stdout)
    assert {j["name"]: j["rule"] for j in summary["verdict"]["judgements"]}["request_error_rate"] == rule


def test_a_p99_on_449_requests_is_inconclusive_not_pass():
    """The issue's case: latency_p99 2,500 -> 8,055 ms (+222 %) on 449 requests was shown as Pass."""
    from logaudit.analysis.comparison import Observations, Side
    from logaudit.analysis.judge import judge

    def side(rev: str, n: int, p99: float) -> Side:
        hist = {921: n - 4, 1565 if rev == "b" else 1799: 4}
        return Side(rev, entries=2 * n, errors=0, requests=n, status_5xx=0, latency_n=n, latency_mean=110.0,
                    latency_quantiles={"p50": 100.0, "p95": 100.0, "p99": p99}, latency_hist=hist)

    r = judge(Observations("svc", side("b", 5000, 2500.0), side("c", 449, 8055.0)), Gate())
    m = r.metric("latency_p99")
    assert (m.judgement, m.rule) == ("Inconclusive", "Inconclusive: canary 449 requests with a latency < 500 needed "
                                                     "for p99 (min_tail 5 / (1 - 0.99))")
    assert r.metric("latency_p95").judgement == "Pass"  # 449 >= 100: judged


def test_a_significant_change_within_the_gate_says_why_it_passes():
    """The issue's case: a +47.6 % latency change with a tiny p passed by an effect-size rule the
    table never showed; the rule is now part of the metric (and of every format)."""
    from logaudit.analysis.aggregates import latency_bin
    from logaudit.analysis.comparison import Observations, Side
    from logaudit.analysis.judge import judge
    from logaudit.present.comparison import render_markdown

    def side(rev: str, mean: float, hist: dict[int, int], p99: float) -> Side:
        return Side(rev, entries=20_000, requests=10_000, latency_n=10_000, latency_mean=mean,
                    latency_quantiles={"p50": 100.0, "p95": 100.0, "p99": p99}, latency_hist=hist)

    r = judge(Observations("svc", side("b", 100.0, {latency_bin(100): 10_000}, 100.0),
                           side("c", 147.6, {latency_bin(100): 9600, latency_bin(1290): 400}, 1290.0)), Gate())
    m = r.metric("latency")
    assert (m.judgement, round(m.change, 3)) == ("Pass", 0.476)
    assert m.rule == "Mann-Whitney U p_adj 3.7e-90 < alpha 0.05 but effect size 0.04 < min_effect_size 0.1: Pass"
    assert r.metric("latency_p50").rule == "Mood quantile p_adj 7.9e-122 < alpha 0.05 but no difference: Pass"
    assert m.rule.replace("<", "\\<") in render_markdown(r.to_dict())


# ------------------------------------------------------------------------ false-alarm rate
@pytest.mark.slow
def test_false_alarm_rate_over_200_same_distribution_stores(tmp_path):
    """200 healthy deploys (different seeds), each a small store of its own judged by `compare` with the
    default baseline: at most 5 % NOT READY; the generated regression is still NOT READY."""
    verdicts: Counter[str] = Counter()
    for seed in range(200):
        store = Store(tmp_path / f"s{seed}")
        store.ingest_entries(SampleGenerator(SampleConfig(entries=1500, seed=seed, scenario="healthy",
                                                          second_service=False)), "sample")
        r = compare(Audit(store), gate=Gate())
        assert (r.baseline, r.baseline_choice["rule"]) == (BASELINE_REVISION, "deploy-audit-traffic")
        verdicts[r.verdict] += 1
        shutil.rmtree(store.root)
    rate = verdicts["NOT READY"] / 200
    print(f"false-alarm rate over 200 healthy stores: {rate:.1%} ({dict(verdicts)})")
    assert rate <= 0.05
    assert verdicts == {"READY": 193, "NOT READY": 7}  # measured: 3.5 % (docs/compare.md)
    regressed = Store(tmp_path / "regressed")
    regressed.ingest_entries(SampleGenerator(SampleConfig(entries=1500, seed=0)), "sample")
    assert compare(Audit(regressed), gate=Gate()).verdict == "NOT READY"

