"""The WarehouseEngine's GoogleSQL, transpiled to DuckDB over tables shaped like BigQuery's, gives
the local engine's numbers: every method, every window, for an `_AllLogs` view, a date-sharded
sink with Duration texts and a partitioned sink with {seconds, nanos} records. Plus the cases
the shipped sample does not reach: a secret in a request path, a team catalog with prefilter,
local-only, `when` and `http_path` patterns, a column the views lack, the candidate cap."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from bq_tables import load_all_logs, load_sink
from test_entry_view_parity import REQUESTS, STDOUT, hostile_entries

from logaudit.analysis.aggregates import EndpointStats, PatternStats, Totals
from logaudit.analysis.audit import Audit
from logaudit.analysis.engine_warehouse import WarehouseEngine
from logaudit.analysis.window import Window
from logaudit.catalog.catalog import default_catalog_paths, load_catalogs
from logaudit.catalog.pushdown import PushdownError
from logaudit.core.db import connect
from logaudit.core.errors import WarehouseError
from logaudit.sources.sample import SampleConfig, sample_entries
from logaudit.store.store import Store
from logaudit.warehouse.entry_view import SinkTable
from logaudit.warehouse.runner import DuckDBRunner
from logaudit.warehouse.source import WarehouseSource

# a 3,000-entry store, three BigQuery-shaped twins and 4 windows x 3 sources of every method (~2 min on 2 cores)
pytestmark = pytest.mark.slow

TEAM_CATALOG = """\
catalog: team
version: 1
patterns:
  - id: payment-declined
    title: Payment declined, not a retry
    category: warning
    regex: 'payment declined(?! \\(retry\\))'
    examples: ["payment declined for order 7"]
    counter_examples: ["payment declined (retry) for order 7"]
  - id: greek-quarantine
    title: Tenant with a Greek name quarantined
    category: info
    regex: 'quarantined \\p{Greek}+'
    examples: ["tenant quarantined αλφα"]
  - id: vault-5xx-error
    title: Vault failing requests
    category: critical
    regex: 'vault'
    ignore_case: true
    when:
      service: vault-*
      http_status: {gte: 500, lt: 600}
      severity_at_least: ERROR
    examples: ["Vault sealed"]
  - id: reset-path
    title: Password reset called
    category: info
    regex: '^/v1/reset/'
    field: http_path
    examples: ["/v1/reset/x"]
"""
SECRET_A, SECRET_B = "sk_live_4eC39HqLyjWDarjtT1zdp7dc", "sk_live_9fD48IrMzkXEbskuU2aeq8ed"
VAULT = {"type": "cloud_run_revision", "labels": {"service_name": "vault-api", "revision_name": "vault-api-00001-abc",
                                                  "location": "us-central1"}}
AUTH = {"type": "cloud_run_revision", "labels": {"service_name": "netra-auth-service",
                                                 "revision_name": "netra-auth-service-00042-k9p"}}
SERVICES = ["checkout-api", "netra-auth-service", "netra-backend-staging", "vault-api"]


def _at(n: int) -> str:
    return (datetime(2025, 9, 10, 2, 0, tzinfo=UTC) + timedelta(seconds=n, microseconds=n)).strftime(
        "%Y-%m-%dT%H:%M:%S.%fZ")


def team_entries() -> list[dict]:
    """What the team catalog and the redaction cases need, with known counts: 5 reset requests on
    two secret paths, 4 vault messages on requests (2 meet every `when` condition), 5 payment
    messages (3 not retries, their severity only in their text), 3 quarantine messages (2 Greek)."""
    out: list[dict] = []

    def add(log: str, resource: dict, **fields) -> None:
        n = len(out)
        out.append({"logName": log, "resource": resource, "insertId": f"team-{n:03d}", "timestamp": _at(n),
                    "receiveTimestamp": _at(n), **fields})

    for secret, seconds in ((SECRET_A, "0.1s"), (SECRET_A, "0.2s"), (SECRET_A, "0.3s"), (SECRET_B, "0.4s"),
                            (SECRET_B, "0.5s")):
        add(REQUESTS, VAULT, severity="INFO", httpRequest={
            "requestMethod": "POST", "requestUrl": f"https://vault.example.com/v1/reset/{secret}?next=/", "status": 200,
            "latency": seconds})
    for resource, severity, status, text in ((VAULT, "ERROR", 503, "Vault sealed: cannot unseal"),
                                             (VAULT, "CRITICAL", 500, "vault backend down"),
                                             (VAULT, "WARNING", 503, "Vault sealed, retrying"),
                                             (VAULT, "ERROR", 200, "Vault slow"),
                                             (AUTH, "ERROR", 503, "Vault unreachable")):
        add(STDOUT, resource, severity=severity, textPayload=text,
            httpRequest={"requestMethod": "GET", "requestUrl": "/v1/secrets", "status": status, "latency": "0.05s"})
    for order in range(3):
        add(STDOUT, VAULT, textPayload=f"ERROR: payment declined for order {order}")
    for order in range(2):
        add(STDOUT, VAULT, textPayload=f"WARNING: payment declined (retry) for order {order}")
    for name in ("αλφα", "βήτα", "alpha"):
        add(STDOUT, VAULT, severity="NOTICE", textPayload=f"tenant quarantined {name}")
    return out


def _micros(entries: list[dict]) -> list[dict]:
    """BigQuery keeps microseconds: the local store gets the same times."""
    return [{**e, **{k: re.sub(r"(\.\d{6})\d+Z$", r"\1Z", e[k]) for k in ("timestamp", "receiveTimestamp") if k in e}}
            for e in entries]


@pytest.fixture(scope="module")
def entries() -> list[dict]:
    sample, _ = sample_entries(SampleConfig(entries=3000))
    extra = hostile_entries() + team_entries()
    # exact duplicates (one of them a reset request): counted once unless dedupe=False
    return _micros(sample + extra + sample[:40:4] + extra[:3] + [extra[-14]])


def _key(e: dict) -> tuple:
    return e["logName"], e["insertId"], e.get("timestamp") or e["receiveTimestamp"]


@pytest.fixture(scope="module")
def catalog_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("catalog") / "team.yaml"
    path.write_text(TEAM_CATALOG, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def audit(entries: list[dict], catalog_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Audit:
    store = Store(tmp_path_factory.mktemp("wh") / "store")
    store.ingest_entries(entries, "x")
    return Audit(store, load_catalogs(default_catalog_paths([catalog_file], shipped=True)))


@pytest.fixture(scope="module")
def con() -> duckdb.DuckDBPyConnection:
    return connect()


@pytest.fixture(scope="module")
def sinks(con: duckdb.DuckDBPyConnection, entries: list[dict]) -> dict[str, list[SinkTable]]:
    """`p.d._AllLogs`, `p.sink` (date-sharded, Duration texts), `p.part` (partitioned, records)."""
    load_all_logs(con, "p.d._AllLogs", entries)
    return {"p.sink": load_sink(con, "p.sink", entries, sharded=True, latency="STRING"),
            "p.part": load_sink(con, "p.part", entries, sharded=False, latency="RECORD")}


def _engine(con: duckdb.DuckDBPyConnection, sinks: dict[str, list[SinkTable]], name: str, catalog, redactor, *,
            dedupe: bool = True, max_candidates: int | None = None) -> WarehouseEngine:
    source = (WarehouseSource.all_logs("p.d._AllLogs", dedupe=dedupe) if name == "all_logs"
              else WarehouseSource.sink(name, sinks[name], dedupe=dedupe))
    extra = {} if max_candidates is None else {"max_candidates": max_candidates}
    return WarehouseEngine(DuckDBRunner(con), source, catalog, redactor, **extra)


@pytest.fixture(scope="module")
def engines(con: duckdb.DuckDBPyConnection, sinks: dict[str, list[SinkTable]], audit: Audit
            ) -> dict[str, WarehouseEngine]:
    return {name: _engine(con, sinks, name, audit.catalog, audit.redactor) for name in ("all_logs", "p.sink", "p.part")}


def _plain(value):
    """Dataclasses as dicts, timestamps as aware UTC: what two engines must agree on."""
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if dataclasses.is_dataclass(value):
        return _plain(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (pd.Timestamp, datetime)):
        ts = pd.Timestamp(value)
        return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return value


def _aggregates(engine, window: Window) -> dict[str, object]:
    out: dict[str, object] = {
        "totals": engine.totals(window), "revisions": engine.revisions(window),
        "revisions_no_pct": engine.revisions(window, percentiles=False),
        "latency_histograms": engine.latency_histograms(window), "endpoints": engine.endpoints(window),
        "patterns": engine.patterns(window), "patterns_no_examples": engine.patterns(window, examples=False)}
    for step in (timedelta(minutes=5), timedelta(seconds=97)):
        out[f"timeline_{step}"] = engine.timeline(window, step).to_pylist()
        out[f"status_series_{step}"] = engine.status_series(window, step).to_pylist()
    return {k: _plain(v) for k, v in out.items()}


WINDOWS = {
    "whole": Window(),
    "service": Window(service="netra-backend-staging"),
    "revision": Window(revision="netra-backend-staging-00317-696"),
    "since_until": Window(datetime(2025, 9, 9, 23, 30, tzinfo=UTC), datetime(2025, 9, 10, 2, 0, 10, 500, tzinfo=UTC)),
}


@pytest.mark.parametrize("window", list(WINDOWS))
@pytest.mark.parametrize("source", ["all_logs", "p.sink", "p.part"])
def test_every_method_equals_the_local_engine(engines: dict[str, WarehouseEngine], audit: Audit, source: str,
                                              window: str) -> None:
    got, want = _aggregates(engines[source], WINDOWS[window]), _aggregates(audit.engine, WINDOWS[window])
    assert [k for k in want if got[k] != want[k]] == []
    assert want["totals"]["entries"] > 0 and want["patterns"]


# The local engine templates a message after redacting it (`template_sql(redactor.sql(...))`);
# the warehouse returns the messages the redaction trigger finds untemplated and redacts and
# templates them in Python: a hostile audit entry's "by dev@example.com" is "by <redacted:email>"
# in both.
@pytest.mark.parametrize("window", list(WINDOWS))
@pytest.mark.parametrize("source", ["all_logs", "p.sink", "p.part"])
def test_templates_equal_the_local_engine(engines: dict[str, WarehouseEngine], audit: Audit, source: str,
                                          window: str) -> None:
    for level in (400, 500):
        got = _plain(engines[source].templates(WINDOWS[window], min_severity=level))
        assert got == _plain(audit.engine.templates(WINDOWS[window], min_severity=level))


def test_the_windows_cut_the_data(entries: list[dict], engines: dict[str, WarehouseEngine]) -> None:
    """Exact totals, the oracle the entries themselves: distinct (log, insertId, timestamp)."""
    distinct = {_key(e): e for e in entries}
    engine = engines["all_logs"]
    assert len(entries) == 3000 + 31 + 18 + 14 and len(distinct) == 3049
    assert engine.totals(Window()) == Totals(3049, SERVICES)
    cut = WINDOWS["since_until"]
    lo, hi = cut.since.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), cut.until.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    inside = [e for k, e in distinct.items() if lo <= k[2] < hi]
    assert engine.totals(cut).entries == len(inside) and 0 < len(inside) < 3049
    assert engine.totals(cut).entries == 960
    assert engine.totals(WINDOWS["revision"]) == Totals(534, ["netra-backend-staging"])


@pytest.mark.parametrize("source", ["all_logs", "p.sink"])
def test_duplicates_count_twice_without_dedupe(con: duckdb.DuckDBPyConnection, sinks: dict[str, list[SinkTable]],
                                               audit: Audit, source: str) -> None:
    engine = _engine(con, sinks, source, audit.catalog, audit.redactor, dedupe=False)
    assert engine.totals(Window()) == Totals(3063, SERVICES)  # 3,049 entries + 14 written twice
    reset = [e for e in engine.endpoints(Window(service="vault-api")) if e.path == "/v1/reset/<redacted:token>"]
    assert [(e.count, e.latency_p95_ms) for e in reset] == [(6, 500.0)]  # the 0.5 s request twice
    assert {p.id: p.count for p in engine.patterns(Window(service="vault-api"))}["reset-path"] == 6


def test_a_secret_in_a_path_is_redacted_and_its_paths_merge(engines: dict[str, WarehouseEngine], audit: Audit) -> None:
    window = Window(service="vault-api")
    for engine in (*engines.values(), audit.engine):
        rows = engine.endpoints(window)
        assert rows[0] == EndpointStats("vault-api", "POST", "/v1/reset/<redacted:token>", 200, 5, 5 / 9,
                                        pytest.approx(480.0))  # p95 of 100..500 ms, interpolated
        assert [(e.path, e.status, e.count) for e in rows[1:]] == [
            ("/v1/secrets", 503, 2), ("/v1/secrets", 200, 1), ("/v1/secrets", 500, 1)]
        assert not any(s in repr(engine.endpoints(Window())) for s in (SECRET_A, SECRET_B))
    sql = [r.sql for r in engines["all_logs"].runner.queries if r.purpose == "endpoints"][-1]
    # the paths holding the secrets go as a parameter (only its name is recorded), never in the text
    assert "WHEN np IN UNNEST(@renamed_0) THEN r'/v1/reset/<redacted:token>'" in sql
    assert SECRET_A not in sql and SECRET_B not in sql


def test_the_team_catalog_counts_exactly(engines: dict[str, WarehouseEngine], audit: Audit) -> None:
    """A prefilter pattern (look-ahead), a local-only one (`\\p{Greek}`), one with `when`
    conditions (a service glob, a status range, a severity), one on `http_path`."""
    modes = {p.pattern.id: p.plan.mode for p in engines["all_logs"].pushed if p.pattern.file.endswith("team.yaml")}
    assert modes == {"payment-declined": "prefilter", "greek-quarantine": "local", "vault-5xx-error": "exact",
                     "reset-path": "exact"}
    for engine in (*engines.values(), audit.engine):
        got = {p.id: p for p in engine.patterns(Window()) if p.id in modes}
        assert {k: (p.count, p.by_revision, p.example) for k, p in sorted(got.items())} == {
            "greek-quarantine": (2, {"vault-api-00001-abc": 2}, "tenant quarantined βήτα"),
            "payment-declined": (3, {"vault-api-00001-abc": 3}, "ERROR: payment declined for order 2"),
            "reset-path": (5, {"vault-api-00001-abc": 5}, "POST /v1/reset/sk_live_9fD48IrMzkXEbskuU2aeq8ed -> 200"),
            "vault-5xx-error": (2, {"vault-api-00001-abc": 2}, "vault backend down")}
        assert _plain(got["payment-declined"]) == _plain(PatternStats(
            "payment-declined", 3, _plain(datetime.fromisoformat(_at(10))), _plain(datetime.fromisoformat(_at(12))),
            {"vault-api-00001-abc": 3}, "ERROR: payment declined for order 2"))
        # severity read from the text: the payments are ERROR/WARNING without a severity field
        tpl = {t.template: (t.count, t.max_severity) for t in engine.templates(Window(service="vault-api"), min_severity=400)}
        # "Vault sealed, retrying" is a 503 request: the shipped http-server-error matched it
        assert tpl == {"Vault slow": (1, 500), "WARNING: payment declined (retry) for order <*>": (2, 400)}


def test_a_pattern_on_a_column_the_views_lack_is_refused(tmp_path: Path, con: duckdb.DuckDBPyConnection,
                                                         sinks: dict[str, list[SinkTable]], audit: Audit) -> None:
    path = tmp_path / "span.yaml"
    path.write_text("catalog: span\nversion: 1\npatterns:\n  - id: span-zero\n    title: Span zero\n"
                    "    category: info\n    regex: '^0+$'\n    field: span_id\n", encoding="utf-8")
    catalog = load_catalogs([path])
    with pytest.raises(PushdownError) as err:
        _engine(con, sinks, "all_logs", catalog, audit.redactor)
    assert err.value.message == (f"{path}:4: span-zero: reads the column 'span_id', which BigQuery log datasets "
                                 "do not give")
    assert err.value.hint == "run this catalog on a local store, or leave the pattern out (LOGAUDIT_CATALOG)"


def test_the_candidate_cap_refuses_rather_than_fetches(con: duckdb.DuckDBPyConnection,
                                                      sinks: dict[str, list[SinkTable]], catalog_file: Path,
                                                      audit: Audit) -> None:
    engine = _engine(con, sinks, "all_logs", load_catalogs([catalog_file]), audit.redactor, max_candidates=1)
    assert engine.totals(Window()).entries == 3049  # no pattern needed: no candidates fetched
    with pytest.raises(WarehouseError) as err:
        engine.patterns(Window())
    assert err.value.message == ("the patterns checked outside BigQuery (payment-declined, greek-quarantine) have "
                                 "more than 1 candidate texts in this window (distinct per pattern)")
    assert err.value.hint == ("narrow --since/--until, or make those patterns RE2-exact "
                              "(`logaudit catalog check --engine bigquery` says why each is not)")
    assert [q.purpose for q in engine.runner.queries] == ["totals", "recheck-candidates"]


def test_a_secret_in_an_unmatched_message_is_redacted_before_it_is_templated(
        engines: dict[str, WarehouseEngine]) -> None:
    """The audit entry 'ReplaceService by dev@example.com: status 7 ...' (ERROR, no pattern):
    its template names the redacted address, not a mask of the address."""
    templates = [t.template for t in engines["all_logs"].templates(Window(), min_severity=500)]
    hits = [t for t in templates if "ReplaceService" in t]
    assert hits == ["google.cloud.run.<*>.Services.ReplaceService by <redacted:email>: status <*> Permission denied"]


def test_field_values_are_extracted_in_bigquery_as_locally(engines: dict[str, WarehouseEngine], audit: Audit) -> None:
    """`patterns(fields=True)`: each named group's top values, by REGEXP_EXTRACT with the group's
    RE2 form (and locally for rows matched after a local check), redacted as locally."""
    from logaudit.analysis.warehouse_audit import WarehouseAudit

    engine = engines["all_logs"]
    remote = WarehouseAudit(engine.source, engine.runner, engine.catalog, redactor=audit.redactor).patterns()
    local = audit.patterns()
    assert list(remote["id"]) == list(local["id"])
    assert list(remote["fields"]) == list(local["fields"])
    fields = dict(zip(remote["id"], remote["fields"], strict=True))
    assert fields["gunicorn-booting-worker"] == {"pid": {"10": 3, "9": 2, "12": 1, "13": 1, "7": 1}}
    assert fields["ws-rejected-no-jwt"] == {"environment": {"staging": 42}}
    assert sum(fields["ws-rejected-no-jwt"]["environment"].values()) == \
        int(local.loc[local["id"] == "ws-rejected-no-jwt", "count"].iloc[0])
