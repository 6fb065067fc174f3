"""Analytics and `summarize`: every number equals what the generator produced."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from datetime import UTC, datetime

import numpy as np
import pytest
from oracles import EXPECTED_KINDS

from logaudit.analysis.audit import Audit
from logaudit.analysis.window import resolve_window
from logaudit.core.errors import UnknownFilterError
from logaudit.core.redact import Redactor
from logaudit.sources.bundled import sample_path
from logaudit.sources.sample import BASELINE_REVISION, CANARY_REVISION, SampleConfig, SampleGenerator
from logaudit.store.store import Store

pytestmark = pytest.mark.timezone  # times must be UTC in any local zone (tests/test_timezones.py)

SUMMARY_KEYS = {"window", "filters", "entries", "services", "revisions", "patterns", "endpoints", "unclassified"}


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    """The bundled sample ingested once, with the generator's truth and its raw entries."""
    gen = SampleGenerator(SampleConfig())
    entries = list(gen)
    store = Store(tmp_path_factory.mktemp("sample") / "store")
    report = store.ingest_paths([sample_path()])
    assert report.new_rows == 5000
    return store, gen.truth, entries


@pytest.fixture(scope="module")
def summary(sample):
    store, _, _ = sample
    return Audit(store).summary()


@pytest.mark.slow
def test_summary_json_contract(summary):
    assert set(summary) >= SUMMARY_KEYS
    assert set(summary["revisions"][0]) >= {"service", "revision", "first_seen", "last_seen", "entries", "errors",
                                             "error_rate", "requests", "status_4xx", "status_5xx", "latency_ms",
                                             "traffic_share"}
    assert set(summary["revisions"][0]["latency_ms"]) == {"p50", "p95", "p99"}
    assert set(summary["patterns"][0]) >= {"id", "category", "title", "count", "first_seen", "last_seen",
                                            "by_revision", "example"}
    assert set(summary["endpoints"][0]) >= {"service", "method", "path", "status", "count"}
    assert set(summary["unclassified"][0]) >= {"template", "count", "example"}
    json.dumps(summary)  # serialisable as is


def test_entry_and_revision_counts_equal_the_truth(summary, sample):
    _, truth, _ = sample
    assert summary["entries"] == truth.entries == 5000
    assert summary["services"] == ["netra-auth-service", "netra-backend-staging"]
    got = {(r["service"], r["revision"]): (r["entries"], r["errors"], r["requests"], r["status_4xx"], r["status_5xx"])
           for r in summary["revisions"]}
    want = {k: (v.entries, v.errors, v.requests, v.status_4xx, v.status_5xx)
            for k, v in truth.by_revision.items() if k[1] is not None}
    assert got == want
    canary = next(r for r in summary["revisions"] if r["revision"] == CANARY_REVISION)
    assert canary["deploy_time"] == "2025-09-10T02:18:34.619410Z" == truth.deploys[0][2]
    baseline = next(r for r in summary["revisions"] if r["revision"] == BASELINE_REVISION)
    assert baseline["traffic_share"] + canary["traffic_share"] == pytest.approx(1.0)
    assert canary["traffic_share"] == pytest.approx(canary["requests"] / (canary["requests"] + baseline["requests"]))
    assert canary["error_rate"] == pytest.approx(canary["errors"] / canary["entries"], abs=1e-6)


def test_each_pattern_per_revision_equals_the_truth(summary, sample):
    _, truth, entries = sample
    by_pattern = {p["id"]: p for p in summary["patterns"]}
    per_revision = Counter()
    for (_, revision, kind), n in truth.kinds.items():
        per_revision[(revision, kind)] += n
    revisions = {r for r, _ in per_revision if r}
    for pid, kinds in EXPECTED_KINDS.items():
        want = {rev: sum(per_revision[(rev, k)] for k in kinds) for rev in revisions}
        want = {rev: n for rev, n in want.items() if n}
        got = by_pattern[pid]["by_revision"] if pid in by_pattern else {}
        assert got == want, pid
        assert (by_pattern[pid]["count"] if pid in by_pattern else 0) == sum(want.values())
    # patterns over sub-lines the generator does not count as kinds: counted from the raw entries
    startup = Counter(e["resource"]["labels"]["revision_name"] for e in entries
                      if "Application startup complete." in e.get("textPayload", ""))
    assert by_pattern["application-startup-complete"]["by_revision"] == dict(startup)


def test_endpoints_equal_the_truth(summary, sample):
    _, truth, _ = sample
    got = {(e["service"], e["method"], e["path"], e["status"]): e["count"] for e in summary["endpoints"]}
    assert got == dict(truth.endpoints)
    health = next(e for e in summary["endpoints"] if e["path"] == "/health")
    backend_requests = sum(n for (s, *_), n in truth.endpoints.items() if s == health["service"])
    assert health["share"] == pytest.approx(health["count"] / backend_requests, abs=1e-6)


def test_latency_percentiles_equal_numpy(summary, sample):
    _, _, entries = sample
    latencies = defaultdict(list)
    for e in entries:
        h = e.get("httpRequest")
        if h and h["status"] != 101:
            latencies[e["resource"]["labels"]["revision_name"]].append(float(h["latency"].rstrip("s")) * 1000)
    for r in summary["revisions"]:
        values = np.array(latencies[r["revision"]])
        for q, key in ((50, "p50"), (95, "p95"), (99, "p99")):
            assert r["latency_ms"][key] == pytest.approx(np.percentile(values, q), rel=1e-6), (r["revision"], key)


def test_unclassified_templates_group_like_the_generator(summary, sample):
    _, truth, _ = sample
    want = Counter()
    for (_, template), n in truth.unclassified_templates.items():
        want[template] += n
    got = {u["template"]: u["count"] for u in summary["unclassified"]}
    assert got["Cache miss for key user:<*>:profile after <*>ms"] == want["Cache miss for key user:<*>:profile after <*>ms"]
    assert got["Retrying Redis connection to <*> (attempt <*>)"] == want["Retrying Redis connection to 10.0.<*>.<*>:6379 (attempt <*>)"]
    rate = next(u for u in summary["unclassified"] if u["template"].startswith("Rate limiter fallback"))
    assert rate["count"] == want["Rate limiter fallback engaged for tenant <*> (limit <*>/min)"]
    assert rate["revisions"] == [CANARY_REVISION]


@pytest.mark.slow
def test_no_planted_secret_appears_in_any_output(summary, sample, cli):
    store, truth, _ = sample
    assert len(truth.secrets) == 8
    text = json.dumps(summary)
    for secret in truth.secrets:
        assert secret not in text
    for fmt in ("json", "markdown", "text"):
        out = cli("summarize", "--store", store.root, "--format", fmt).stdout
        assert out
        for secret in truth.secrets:
            assert secret not in out, (fmt, secret[:12])
    raw = cli("summarize", "--store", store.root, "--format", "json", "--no-redact").stdout
    assert any(secret in raw for secret in truth.secrets)  # the planted secrets really are in the examples


def test_timeline_zero_fills_and_adds_up(sample):
    store, truth, _ = sample
    tl = Audit(store).timeline("30m", since="2025-09-09T20:00:00Z", until="2025-09-10T04:00:00Z")
    assert len(tl) == 16 * 3  # 16 buckets x 3 revisions, including buckets before the canary existed
    canary = tl[tl.revision == CANARY_REVISION]
    assert canary[canary.bucket < datetime(2025, 9, 10, 2, tzinfo=UTC)].entries.sum() == 0
    for (_, revision), v in truth.by_revision.items():
        if revision:
            rows = tl[tl.revision == revision]
            assert (rows.entries.sum(), rows.errors.sum(), rows.requests.sum()) == (v.entries, v.errors, v.requests)
    assert set(tl.columns) >= {"critical", "warning", "positive", "info", "error_rate", "request_error_rate"}


def _store_with(tmp_path, stamps: list[str], service: str = "svc") -> Store:
    store = Store(tmp_path / "store")
    store.ingest_entries([
        {"logName": "projects/p/logs/run.googleapis.com%2Fstdout", "insertId": f"i{i}", "timestamp": ts,
         "severity": "ERROR", "textPayload": f"boom {i}",
         "resource": {"type": "cloud_run_revision", "labels": {"service_name": service, "revision_name": f"{service}-1"}}}
        for i, ts in enumerate(stamps)
    ], "t")
    return store


def test_window_edges_are_exact_across_a_day_boundary(tmp_path):
    stamps = ["2025-09-09T23:59:59.999999999Z", "2025-09-10T00:00:00Z", "2025-09-10T00:00:00.000000001Z",
              "2025-09-10T01:00:00Z", "2025-09-10T01:00:00.000001Z"]
    audit = Audit(_store_with(tmp_path, stamps))
    assert audit.entries_count(since="2025-09-10T00:00:00Z", until="2025-09-10T01:00:00Z") == 2
    assert audit.entries_count(since="2025-09-09T23:59:59.999999Z", until="2025-09-10T01:00:00.000001Z") == 4
    # the same instants written with offsets
    assert audit.entries_count(since="2025-09-10T02:00:00+02:00", until="2025-09-09T21:00:00-04:00") == 2
    assert audit.entries_count(since=datetime(2025, 9, 10, tzinfo=UTC)) == 4
    assert audit.entries_count(until="2025-09-10T00:00:00Z") == 1


@pytest.mark.slow
def test_windows_reaching_past_what_a_store_holds(tmp_path, sample):
    """Bounds beyond the store's nanosecond range select what they mean, also in an export
    (a window from 1677-09-21T00:12:43Z made DuckDB fail converting it)."""
    stamps = ["1677-09-21T00:12:43.145224194Z", "2025-09-10T00:00:00Z", "2262-04-11T23:47:16.854775806Z"]
    audit = Audit(_store_with(tmp_path, stamps))
    assert audit.entries_count(since="1677-09-21T00:12:43Z") == 3
    assert audit.entries_count(since="1600-01-01T00:00:00Z", until="2262-04-11T23:47:16.854775Z") == 2
    assert audit.entries_count(until="3000-01-01T00:00:00Z") == 3
    from logaudit.period_export import export

    # an export period ending after the last instant a store holds exports up to it (it exported nothing)
    ended = export(audit.store, tmp_path / "late", since="2025-01-01T00:00:00Z", until="2262-04-11T23:47:17Z",
                   service="svc", formats="md", align=None)
    assert [p.entries for p in ended.periods] == [2]
    store = sample[0]
    from logaudit.period_export import export

    result = export(store, tmp_path / "out", since="1677-09-21T00:12:43Z", until="2025-09-09T18:00:00Z",
                    service="netra-backend-staging", formats="md")
    assert [p.entries for p in result.periods] == [0]


def test_timeline_over_the_whole_range_a_store_holds(tmp_path):
    """A store holding the first and the last nanosecond it can: the report's timeline failed in
    DuckDB (`range(HUGEINT, ...)`: the first bucket starts before the 64-bit range)."""
    stamps = ["1677-09-21T00:12:43.145224194Z", "2025-09-10T00:00:00Z", "2262-04-11T23:47:16.854775806Z"]
    tl = Audit(_store_with(tmp_path, stamps)).timeline("36500d")  # 100-year buckets
    # buckets stay aligned to the epoch: 1670-03-14 (before the range: shown from its first
    # instant), 1770-02-18, ..., 1970-01-01, 2069-12-07, 2169-11-13 (holding 2262-04-11)
    assert tl.entries.tolist() == [1, 0, 0, 1, 0, 1]
    assert [str(b) for b in tl.bucket.iloc[[0, 3, 5]]] == [
        "1677-09-21 00:12:43.145224+00:00", "1970-01-01 00:00:00+00:00", "2169-11-13 00:00:00+00:00"]


def test_parameters_cannot_inject(tmp_path):
    audit = Audit(_store_with(tmp_path, ["2025-09-10T00:00:00Z"], service="o'brien"))
    assert audit.entries_count(service="o'brien") == 1
    for name in ("x' OR '1'='1", "x' OR 1=1 --"):  # a value, not SQL: no such service
        with pytest.raises(UnknownFilterError) as info:
            audit.revisions(service=name)
        assert (info.value.value, info.value.choices) == (name, ["o'brien"])
    assert audit.sql("SELECT count(*) AS n FROM entries WHERE service = $s", {"s": "o'brien"}).n.tolist() == [1]
    assert audit.sql("SELECT count(*) AS n FROM entries WHERE service = ?", ["x' OR '1'='1"]).n.tolist() == [0]


def test_empty_window_says_so(tmp_path, cli):
    store = _store_with(tmp_path, ["2025-09-10T00:00:00Z"])
    result = cli("summarize", "--store", store.root, "--since", "2026-01-01T00:00:00Z", "--until", "2026-01-02T00:00:00Z")
    assert result.exit_code == 0
    assert "No log entries in this window. The store holds 1 entries from 2025-09-10 00:00:00Z to 2025-09-10 00:00:00Z." in " ".join(result.stdout.split())
    assert "logaudit pull --project" in result.stdout
    data = json.loads(cli("summarize", "--store", store.root, "--since", "2026-01-01", "--format", "json").stdout)
    assert (data["entries"], data["revisions"], data["window"]["since"]) == (0, [], "2026-01-01T00:00:00Z")


def test_cli_errors(tmp_path, cli):
    result = cli("summarize", "--store", tmp_path / "none")
    assert result.exit_code == 3 and "no store here" in result.stderr
    store = _store_with(tmp_path, ["2025-09-10T00:00:00Z"])
    result = cli("summarize", "--store", store.root, "--since", "yesterday-ish")
    assert result.exit_code == 64 and "--since 'yesterday-ish': not a time" in result.stderr
    result = cli("summarize", "--store", store.root, "--since", "2025-09-11", "--until", "2025-09-10")
    assert result.exit_code == 64 and "is not before --until" in result.stderr


def test_text_and_markdown_sections(summary, sample, cli):
    store, _, _ = sample
    text = cli("summarize", "--store", store.root).stdout
    for heading in ("1. Error pattern analysis", "2. Revisions", "3. Endpoint status", "4. New issues",
                    "5. Unclassified messages"):
        assert heading in text
    assert "new critical: Service dependency validation FAILED (3)" in text
    md = cli("summarize", "--store", store.root, "--format", "markdown").stdout
    assert md.startswith("# Deployment log summary")
    assert "| netra-backend-staging | netra-backend-staging-00317-696 | 2025-09-10 02:18:34Z |" in md
    assert "- new critical: Service dependency validation FAILED (3)" in md


def test_service_and_revision_filters(sample):
    store, truth, _ = sample
    audit = Audit(store)
    only = audit.summary(revision=CANARY_REVISION)
    assert [r["revision"] for r in only["revisions"]] == [CANARY_REVISION]
    assert only["entries"] == truth.by_revision[("netra-backend-staging", CANARY_REVISION)].entries
    auth = audit.summary(service="netra-auth-service")
    assert auth["services"] == ["netra-auth-service"]
    assert {p["id"] for p in auth["patterns"]} == {"auth-token-issued", "auth-verify-rejected"}


def _direct_summary(audit, **window):
    """The summary's parts computed by the public per-part methods (one scan of the window each)."""
    from logaudit.analysis.audit import _num
    from logaudit.analysis.window import iso as _iso

    revisions = [
        {"service": r.service, "revision": r.revision, "first_seen": _iso(r.first_seen), "last_seen": _iso(r.last_seen),
         "deploy_time": _iso(r.deploy_time), "entries": int(r.entries), "errors": int(r.errors),
         "error_rate": _num(r.error_rate), "requests": int(r.requests), "status_4xx": int(r.status_4xx),
         "status_5xx": int(r.status_5xx), "request_error_rate": _num(r.request_error_rate),
         "latency_ms": {"p50": _num(r.latency_p50_ms), "p95": _num(r.latency_p95_ms), "p99": _num(r.latency_p99_ms)},
         "traffic_share": _num(r.traffic_share)}
        for r in audit.revisions(**window).itertuples()]
    patterns = [
        {"id": p.id, "category": p.category, "title": p.title, "count": int(p.count), "first_seen": _iso(p.first_seen),
         "last_seen": _iso(p.last_seen), "by_revision": {k: int(v) for k, v in p.by_revision.items()},
         "example": p.example}
        for p in audit.patterns(fields=False, **window).itertuples()]
    endpoints = [
        {"service": e.service, "method": e.method, "path": e.path, "status": int(e.status), "count": int(e.count),
         "share": _num(e.share), "latency_p95_ms": _num(e.latency_p95_ms)}
        for e in audit.endpoints(**window).itertuples()]
    unclassified = [
        {"template": u.template, "count": int(u.count), "example": u.example, "first_seen": _iso(u.first_seen),
         "last_seen": _iso(u.last_seen), "revisions": u.revisions}
        for u in audit.unclassified(**window).itertuples()]
    return {"entries": audit.entries_count(**window), "revisions": revisions, "patterns": patterns,
            "endpoints": endpoints, "unclassified": unclassified}


@pytest.mark.slow
@pytest.mark.parametrize("window", [
    {},
    # cuts both entry files of the sample (it crosses midnight): cached aggregates and rows mixed
    {"since": "2025-09-09T22:13:07.5Z", "until": "2025-09-10T03:41:00Z"},
    {"since": "2025-09-10T00:00:00Z"},
    {"service": "netra-backend-staging", "until": "2025-09-10T02:30:00+02:00"},
    {"revision": CANARY_REVISION},
    {"since": "2025-09-09T21:10:00Z", "until": "2025-09-09T21:50:00Z"},  # inside one cached hour
    {"since": "2025-09-09T21:00:00Z", "until": "2025-09-10T01:00:00Z"},  # whole hours only
], ids=["all", "cut", "second-day", "service", "revision", "within-an-hour", "hour-aligned"])
def test_summary_equals_the_per_part_queries(sample, window):
    store, _, _ = sample
    audit = Audit(store)
    got = audit.summary(**window)
    want = _direct_summary(audit, **window)
    assert got["entries"] == want["entries"] > 0
    for part in ("revisions", "patterns", "endpoints", "unclassified"):
        assert got[part] == want[part], part
    # and again from the cache the first call wrote
    assert Audit(store).summary(**window) == got


@pytest.mark.slow
def test_summary_examples_break_timestamp_ties_like_the_per_part_queries(tmp_path, sample):
    _, _, entries = sample
    # many entries share a timestamp (cut to the minute), spread over several entry files
    tied = [dict(e, timestamp=e["timestamp"][:16] + ":00Z") for e in entries]
    store = Store(tmp_path / "tied")
    for k in range(3):
        store.ingest_entries(tied[k::3], f"part{k}")
    audit = Audit(store)
    for window in ({}, {"since": "2025-09-09T22:13:30Z", "until": "2025-09-10T03:41:00Z"}):
        got, want = audit.summary(**window), _direct_summary(audit, **window)
        assert got["patterns"] == want["patterns"] and got["unclassified"] == want["unclassified"]


def test_resolve_window_rejects_naive_datetimes():
    from logaudit.core.errors import UsageError

    with pytest.raises(UsageError, match="timezone-aware"):
        resolve_window(datetime(2025, 9, 10))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl here", "token <redacted:jwt> here"),
        ("Authorization: Bearer ya29.a0AfH6SMBx-long", "Authorization: Bearer <redacted>"),
        ("key AIzaSyA-1234567890abcdefghijklmnopqrstu ok", "key <redacted:api-key> ok"),
        ("GET /v1?api_key=abc123&x=1", "GET /v1?api_key=<redacted>&x=1"),
        ("password=hunter2 user=bob", "password=<redacted> user=bob"),
        ('{"client_secret": "s3cr3t"}', '{"client_secret": "<redacted>"}'),
        ("redis://default:pa55@cache:6379/0", "redis://default:<redacted>@cache:6379/0"),
        ("-----BEGIN RSA PRIVATE KEY-----\nMIIEabc\n-----END RSA PRIVATE KEY-----", "<redacted:private-key>"),
        ("AKIAIOSFODNN7EXAMPLE", "<redacted:aws-key>"),
        ("No JWT=REDACTED found", "No JWT=REDACTED found"),
        ("nothing secret here: 42 items", "nothing secret here: 42 items"),
    ],
)
def test_redaction_rules(text, expected):
    assert Redactor().redact(text) == expected
    import duckdb

    assert duckdb.sql(f"SELECT {Redactor().sql('t')} FROM (SELECT ? AS t)", params=[text]).fetchall()[0][0] == expected


def test_redaction_is_configurable():
    assert Redactor(enabled=False).redact("password=x") == "password=x"
    custom = Redactor(extra=[("employee-id", r"\bEMP-\d{6}\b", "<redacted:employee>")])
    assert custom.redact("by EMP-123456") == "by <redacted:employee>"


def test_extracted_fields_are_counted(sample):
    store, truth, _ = sample
    patterns = Audit(store).patterns().set_index("id")
    auth = patterns.loc["ws-auth-failure"]
    assert auth["fields"]["error_code"] == {"NO_TOKEN": truth.kinds[("netra-backend-staging", CANARY_REVISION, "ws_auth_failure")]}
    assert patterns.loc["health-check-ok"]["fields"] == {}
    sessions = patterns.loc["request-session-completed"]["fields"]
    assert sum(sessions["user_id"].values()) <= patterns.loc["request-session-completed"]["count"]
    assert all(len(values) <= 10 for values in sessions.values())


@pytest.mark.slow
def test_demo_runs_the_main_job_on_the_bundled_sample(tmp_path, cli):
    result = cli("demo", "--store", tmp_path / "demo", env={"COLUMNS": "80"})
    assert result.exit_code == 0
    assert result.stderr.splitlines() == ["ingested netra-staging.jsonl.gz: 5000 read, 5000 new, 0 duplicate",
                                          f"store: {tmp_path / 'demo'}"]
    assert max(len(line) for line in result.stdout.splitlines()) <= 80
    assert "5,000 entries from 2 service(s)" in result.stdout
    assert "new critical: Service dependency validation FAILED (3)" in result.stdout
    again = cli("demo", "--store", tmp_path / "demo", "--format", "json")
    assert json.loads(again.stdout)["entries"] == 5000  # re-running adds nothing


def test_one_category_order():
    import inspect

    from logaudit.analysis import audit, gate, judge
    from logaudit.catalog.catalog import CATEGORIES
    from logaudit.present import charts

    assert CATEGORIES == ("critical", "warning", "positive", "info")
    assert audit.CATEGORIES is gate.CATEGORIES is judge.CATEGORIES is CATEGORIES
    assert inspect.signature(charts.pattern_heatmap).parameters["categories"].default is CATEGORIES
