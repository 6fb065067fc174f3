"""The aggregates and the DuckDB engine: exact against the generator's truth, the direct per-part
queries, and the outputs as they were before the analyses read them from the engine.

The fixtures in tests/fixtures/aggregates/ were written by the code before this refactor, on the
bundled sample: `logaudit summarize --format json` and `logaudit compare --format json` (whole
store, a window cutting hours at both ends, service and revision filters), the report's
checklist and Markdown up to its list of sources (no charts, generated at 2025-09-10T06:00:00Z,
store folder `s`) and
the DataFrames the charts are drawn from. They were written again, each time checked by a
structural diff to change only what was meant to: when compare gained the baseline choice, the
metrics' rules and the minimums (new keys; values only where p99 and sparse pattern rates became
Inconclusive; the checklist became the verdict's judgements), and when summarize, compare and the
report came to share one template grouping (`group_templates`: the unclassified templates'
double spaces become single, counts unchanged) and the health floor (the `health` keys).
"""

from __future__ import annotations

import gzip
import json
import math
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logaudit.analysis.aggregates import (
    Engine,
    LatencyHistogram,
    TemplateStats,
    bin_bounds,
    group_template_stats,
    latency_bin,
    merge_templates_by_text,
)
from logaudit.analysis.audit import Audit
from logaudit.analysis.engine_duckdb import DuckDBEngine
from logaudit.analysis.window import Window
from logaudit.present.report import build_report, status_timeline
from logaudit.sources.bundled import sample_path
from logaudit.sources.sample import CANARY_REVISION, SERVICE, SampleConfig, SampleGenerator
from logaudit.store.store import Store

pytestmark = pytest.mark.timezone  # times must be UTC in any local zone (tests/test_timezones.py)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "aggregates"
CUT = ("--since", "2025-09-10T00:17:31.5Z", "--until", "2025-09-10T03:41:07Z")


def _fixture(name: str) -> bytes:
    return gzip.decompress((FIXTURES / f"{name}.gz").read_bytes())


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    """The bundled sample in a fresh store (folder `s`), with the generator's truth and entries."""
    gen = SampleGenerator(SampleConfig())
    entries = list(gen)
    root = tmp_path_factory.mktemp("agg")
    store = Store(root / "s")
    assert store.ingest_paths([sample_path()]).new_rows == 5000
    return store, gen.truth, entries


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """A generated store of another shape: 12 000 entries over 30 hours, another seed."""
    gen = SampleGenerator(SampleConfig(entries=12_000, hours=30.0, seed=7))
    entries = list(gen)
    store = Store(tmp_path_factory.mktemp("gen") / "store")
    store.ingest_entries(entries, "gen")
    return store, gen.truth, entries


# ---------------------------------------------------------------------------- byte-identical outputs
@pytest.mark.parametrize(("name", "args"), [
    ("summary-all.json", ("summarize",)),
    ("summary-cut.json", ("summarize", *CUT)),
    ("summary-canary.json", ("summarize", "--service", SERVICE, "--revision", CANARY_REVISION)),
    ("summary-auth.json", ("summarize", "--service", "netra-auth-service")),
    ("compare-all.json", ("compare",)),
    ("compare-cut.json", ("compare", *CUT)),
], ids=lambda v: v if isinstance(v, str) else None)
@pytest.mark.slow
def test_json_outputs_are_the_same_as_before(sample, cli, name, args):
    """The same JSON as before the engine, but for the last bits of floats: latency sums were
    added in the order DuckDB's threads finished (so the old outputs themselves varied in their
    last bits from run to run); they are exact sums now, so two runs are byte-identical."""
    store, _, _ = sample
    outs = [cli(args[0], "--store", store.root, "--format", "json", *args[1:]).stdout
            for _ in range(2)]  # computed, then from the cached per-file aggregates
    assert outs[0] == outs[1]
    assert _rounded(json.loads(outs[0])) == _rounded(json.loads(_fixture(name)))


def _rounded(value: object) -> object:
    """Floats to 12 significant digits."""
    if isinstance(value, float):
        return float(f"{value:.12g}")
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    return [_rounded(v) for v in value] if isinstance(value, list) else value


@pytest.mark.slow
def test_report_checklist_and_markdown_are_unchanged(sample, monkeypatch):
    store, _, _ = sample
    monkeypatch.chdir(store.root.parent)
    result = build_report(Audit("s"), out_dir="report", now=datetime(2025, 9, 10, 6, tzinfo=UTC), with_charts=False)
    assert orjson.dumps(result.checklist, option=orjson.OPT_INDENT_2) == _fixture("report-checklist.json")
    text = result.markdown.read_text()
    assert text[:text.index("### 6.1 Sources")].encode() == _fixture("report.md")  # the sources: ingest ids, paths


def test_chart_data_is_unchanged(sample):
    store, _, _ = sample
    audit = Audit(store)
    w = audit.window()

    def frame(df):
        return json.loads(df.to_json(orient="split", date_format="iso", date_unit="ns", double_precision=15))

    got = {"revisions": frame(audit.revisions()), "timeline-15m": frame(audit.timeline("15m")),
           "patterns": frame(audit.patterns(fields=False)), "endpoints": frame(audit.endpoints()),
           "unclassified": frame(audit.unclassified()),
           **{f"status-{s}": frame(status_timeline(audit, w, "15m", service=s))
              for s in ("netra-auth-service", "netra-backend-staging")}}
    assert got == json.loads(_fixture("chart-data.json"))


# ---------------------------------------------------------------------------- the engine
def test_the_duckdb_engine_is_an_engine(sample):
    store, _, _ = sample
    engine = Audit(store).engine
    assert isinstance(engine, DuckDBEngine)
    assert isinstance(engine, Engine)
    assert engine.name == "duckdb"


def _latencies(entries, revision=None):
    out = defaultdict(list)
    for e in entries:
        h = e.get("httpRequest")
        if h and h["status"] != 101:
            out[e["resource"]["labels"].get("revision_name")].append(float(h["latency"].rstrip("s")) * 1000)
    return out


@pytest.mark.parametrize("fixture", ["sample", "generated"])
def test_revisions_equal_the_truth(fixture, request):
    store, truth, entries = request.getfixturevalue(fixture)
    engine = Audit(store).engine
    revisions = engine.revisions(Window())
    want = {k: (v.entries, v.errors, v.requests, v.status_4xx, v.status_5xx)
            for k, v in truth.by_revision.items() if k[1] is not None}
    assert {(r.service, r.revision): (r.entries, r.errors, r.requests, r.status_4xx, r.status_5xx)
            for r in revisions} == want
    assert engine.totals(Window()).entries == truth.entries
    latencies = _latencies(entries)
    for r in revisions:
        values = np.array(latencies[r.revision])
        assert r.latency_n == len(values)
        assert r.latency_mean == pytest.approx(values.mean(), rel=1e-9)
        for q, got in ((50, r.latency_p50_ms), (95, r.latency_p95_ms), (99, r.latency_p99_ms)):
            assert got == pytest.approx(np.percentile(values, q), rel=1e-9)
    for service in {r.service for r in revisions}:
        shares = [r.traffic_share for r in revisions if r.service == service]
        assert sum(shares) == pytest.approx(1.0)


@pytest.mark.parametrize("fixture", ["sample", "generated"])
def test_latency_histograms_count_every_latency_in_its_bin(fixture, request):
    store, _, entries = request.getfixturevalue(fixture)
    latencies = _latencies(entries)
    hists = Audit(store).engine.latency_histograms(Window())
    assert {h.revision for h in hists} == {r for r in latencies if r}
    for h in hists:
        want = defaultdict(int)
        for ms in latencies[h.revision]:
            want[latency_bin(ms)] += 1
        assert dict(h.counts) == dict(want)
        values = np.sort(latencies[h.revision])
        for q in (0.5, 0.95, 0.99):
            exact = float(np.quantile(values, q, method="inverted_cdf"))
            lo, hi = bin_bounds(latency_bin(exact))
            assert lo <= exact < hi
            assert h.quantile(q) == math.exp(latency_bin(exact) / 200)  # the centre of the exact value's bin


@pytest.mark.parametrize("window", [
    {},
    {"since": "2025-09-10T00:17:31.5Z", "until": "2025-09-10T03:41:07Z"},
    {"service": SERVICE},
    {"revision": CANARY_REVISION},
], ids=["all", "cut", "service", "revision"])
def test_engine_aggregates_equal_the_direct_queries(sample, window):
    store, _, _ = sample
    audit = Audit(store)
    w = audit.window(**window)
    engine = audit.engine
    with engine.hold():
        revisions = engine.revisions(w)
        endpoints = engine.endpoints(w)
        patterns = engine.patterns(w)
        templates = engine.templates(w, min_severity=400)
    direct = audit.revisions(since=w)
    assert [(r.service, r.revision, r.entries, r.errors, r.requests, r.status_4xx, r.status_5xx) for r in revisions] \
        == [tuple(x) for x in direct[["service", "revision", "entries", "errors", "requests", "status_4xx",
                                      "status_5xx"]].itertuples(index=False)]
    assert [r.latency_p95_ms for r in revisions] == pytest.approx(list(direct["latency_p95_ms"]), rel=1e-12)
    want_endpoints = audit.endpoints(since=w)
    assert [(e.service, e.method, e.path, e.status, e.count) for e in endpoints] \
        == [tuple(x) for x in want_endpoints[["service", "method", "path", "status", "count"]].itertuples(index=False)]
    want_patterns = audit.patterns(fields=False, since=w)
    assert {p.id: (p.count, p.by_revision) for p in patterns} \
        == {p.id: (p.count, p.by_revision) for p in want_patterns.itertuples()}
    unclassified = audit.unclassified("WARNING", since=w)
    merged = merge_templates_by_text(group_template_stats(templates), limit=50)  # the one grouping
    assert [(t.template, t.count, t.revisions) for t in merged] \
        == [(u.template, u.count, u.revisions) for u in unclassified.itertuples()]


def test_templates_per_revision_add_up_to_the_truth(sample):
    store, truth, _ = sample
    rows = Audit(store).engine.templates(Window(), min_severity=400)
    canary = {t.template: t.count for t in rows if t.revision == CANARY_REVISION}
    assert canary["Rate limiter fallback engaged for tenant <*> (limit <*>/min)"] == \
        truth.unclassified_templates[(CANARY_REVISION, "Rate limiter fallback engaged for tenant <*> (limit <*>/min)")]


def test_timeline_and_status_series_add_up_to_the_revision_counts(generated):
    store, truth, _ = generated
    audit = Audit(store)
    engine = audit.engine
    timeline = engine.timeline(Window(), timedelta(hours=1)).to_pylist()
    status = engine.status_series(Window(), timedelta(hours=1)).to_pylist()
    totals = defaultdict(lambda: [0, 0, 0])
    for row in timeline:
        t = totals[(row["service"], row["revision"])]
        t[0] += row["entries"]
        t[1] += row["errors"]
        t[2] += row["requests"]
    assert dict(totals) == {k: [v.entries, v.errors, v.requests] for k, v in truth.by_revision.items() if k[1]}
    assert sum(r["requests"] for r in status) == sum(v.requests for v in truth.by_revision.values())
    assert all(r["bucket"].minute == 0 and r["bucket"].tzinfo is not None for r in status)


def test_held_aggregates_are_released(sample):
    store, _, _ = sample
    audit = Audit(store)
    engine = audit.engine
    with engine.hold():
        engine.revisions(Window())
        con = audit.connection(Window())
        assert con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'logaudit_cmp_base'").fetchone()[0] == 1
        with engine.hold():  # nested: still held after the inner block
            engine.endpoints(Window())
        assert con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'logaudit_cmp_base'").fetchone()[0] == 1
    assert con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'logaudit_cmp_base'").fetchone()[0] == 0


# ---------------------------------------------------------------------------- the values
@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(st.floats(min_value=0, max_value=1e7, allow_nan=False))
def test_latency_bin_equals_the_sql_every_engine_runs(ms):
    con = duckdb.connect()
    sql = con.execute("SELECT CAST(round(ln(greatest($ms, 0.001)) * 200) AS INTEGER)", {"ms": ms}).fetchone()[0]
    assert latency_bin(ms) == sql


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(min_value=0.01, max_value=1e6, allow_nan=False), min_size=1, max_size=300),
       st.sampled_from([0.5, 0.95, 0.99]))
def test_histogram_percentiles_are_within_one_bin_and_merge(values, q):
    half = len(values) // 2
    a = LatencyHistogram("s", "r", _counts(values[:half]))
    b = LatencyHistogram("s", "r", _counts(values[half:]))
    merged = a.merge(b)
    assert dict(merged.counts) == _counts(values)
    assert merged.n == len(values)
    exact = float(np.quantile(np.array(values), q, method="inverted_cdf"))
    assert math.exp(-1 / 200) <= merged.quantile(q) / max(exact, 0.001) <= math.exp(1 / 200)


def _counts(values):
    out = defaultdict(int)
    for v in values:
        out[latency_bin(v)] += 1
    return dict(out)


def test_empty_histogram_has_no_percentile():
    assert LatencyHistogram("s", "r").quantile(0.5) is None


def test_templates_merge_by_text_with_the_latest_example():
    t0 = datetime(2025, 1, 1, tzinfo=UTC)
    rows = [TemplateStats("a <*>", "s", "r1", 2, 400, t0, t0 + timedelta(minutes=1), "a 1"),
            TemplateStats("a <*>", "s", "r2", 3, 500, t0 - timedelta(minutes=1), t0 + timedelta(minutes=1), "a 2"),
            TemplateStats("a <*>", "s", None, 1, 400, t0, t0, "a 0"),
            TemplateStats("b", "s", "r1", 5, 400, t0, t0, "b")]
    merged = merge_templates_by_text(rows)
    assert [(m.template, m.count, m.revisions, m.max_severity, m.example) for m in merged] == [
        ("a <*>", 6, ["r1", "r2"], 500, "a 2"), ("b", 5, ["r1"], 400, "b")]
    assert merged[0].first_seen == t0 - timedelta(minutes=1)
    assert merge_templates_by_text(rows, limit=1) == merged[:1]


def test_entries_without_a_service_are_none_and_compare_still_picks_a_service(tmp_path):
    def entry(i, service, revision, minute):
        labels = {"revision_name": revision} | ({"service_name": service} if service else {})
        return {"logName": "projects/p/logs/run.googleapis.com%2Fstdout", "insertId": f"i{i}",
                "timestamp": f"2025-01-01T00:{minute:02d}:00Z", "severity": "ERROR", "textPayload": f"boom {i}",
                "resource": {"type": "cloud_run_revision", "labels": labels}}

    store = Store(tmp_path / "store")
    store.ingest_entries([entry(0, "svc", "svc-1", 1), entry(1, "svc", "svc-2", 5), entry(2, None, "orphan-1", 9)], "t")
    audit = Audit(store)
    revisions = audit.engine.revisions(Window())
    assert [(r.service, r.revision) for r in revisions] == [("svc", "svc-1"), ("svc", "svc-2"), (None, "orphan-1")]
    summary = audit.summary()
    assert summary["verdict_note"] is None
    assert (summary["verdict"]["baseline"], summary["verdict"]["canary"]) == ("svc-1", "svc-2")
