"""Tests for logaudit.sample: exact counts, determinism, file formats, and a truth that agrees
with an independent reading of the emitted entries."""

from __future__ import annotations

import calendar
import gzip
import json
import re
from collections import Counter
from datetime import datetime
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from logaudit.core.errors import UsageError
from logaudit.sources.sample import (
    BASELINE_REVISION,
    CANARY_ONLY_KINDS,
    CANARY_REVISION,
    KIND_SEVERITY,
    KINDS,
    PROJECT,
    REQUEST_KINDS,
    SECOND_REVISION,
    SECOND_SERVICE,
    SERVICE,
    SampleConfig,
    SampleGenerator,
    SampleTruth,
    path_template,
    sample_entries,
    write_sample,
)
from logaudit.sources.sample import SEVERITY_NUM as SAMPLE_SEVERITY_NUM
from logaudit.sources.severity import SEVERITY_NUM

BASE = (SERVICE, BASELINE_REVISION)
CANARY = (SERVICE, CANARY_REVISION)
AUTH = (SECOND_SERVICE, SECOND_REVISION)
AUDIT = (SERVICE, None)

# --- an independent reading of entries (logaudit's effective-severity rules) ------------------

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_LEVEL = {"WARN": "WARNING", "FATAL": "CRITICAL"}
_LEVEL_IN_TEXT = re.compile(
    r"\[(DEBUG|INFO|WARNING|WARN|ERROR|CRITICAL|FATAL)\]"
    r"| - (DEBUG|INFO|WARNING|WARN|ERROR|CRITICAL|FATAL) - "
    r"|\| (DEBUG|INFO|WARNING|WARN|ERROR|CRITICAL|FATAL) +\|"
    r"|^(DEBUG|INFO|WARNING|WARN|ERROR|CRITICAL|FATAL):"
)
_TS = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|\+00:00)$")


def text_of(e: dict) -> str:
    if "textPayload" in e:
        return e["textPayload"]
    if "jsonPayload" in e:
        return e["jsonPayload"].get("message", "")
    return ""


def effective(e: dict) -> str:
    sev = e.get("severity")
    if sev and sev != "DEFAULT":
        return sev
    http = e.get("httpRequest")
    if http and http["status"] >= 500:
        return "ERROR"
    if http and http["status"] >= 400:
        return "WARNING"
    text = _ANSI.sub("", text_of(e))
    if text.startswith("Traceback (most recent call last)"):
        return "ERROR"
    m = _LEVEL_IN_TEXT.search(text)
    if m:
        word = next(g for g in m.groups() if g)
        return _LEVEL.get(word, word)
    return "DEFAULT"


def ts_ns(ts: str) -> int:
    m = _TS.match(ts)
    assert m, ts
    base = int(datetime.fromisoformat(m.group(1) + "+00:00").timestamp())
    frac = (m.group(2) or "").ljust(9, "0")
    return base * 1_000_000_000 + int(frac)


def rev_key(e: dict) -> tuple[str, str | None]:
    labels = e["resource"]["labels"]
    return labels["service_name"], labels["revision_name"] or None


@pytest.fixture(scope="module")
def default_sample() -> tuple[list[dict], SampleTruth]:
    return sample_entries(SampleConfig())


# --- counts -----------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [0, 1, 17, 120, 121, 999, 5000, 12345])
def test_exact_entry_count(n: int) -> None:
    gen = SampleGenerator(SampleConfig(entries=n))
    got = sum(1 for _ in gen)
    assert got == n
    assert gen.truth.entries == n
    assert sum(gen.truth.kinds.values()) == n
    assert sum(gen.truth.effective_severity.values()) == n


@settings(max_examples=25, deadline=None)
@given(
    entries=st.integers(0, 2500),
    seed=st.integers(0, 2**32),
    hours=st.sampled_from([0.02, 0.25, 1.0, 3.5, 8.0, 30.0]),
    start=st.sampled_from(["2025-09-09T20:00:00Z", "2024-02-29T23:59:59.25+00:00", "2025-01-01T01:00:00+01:00"]),
    flags=st.tuples(st.booleans(), st.booleans(), st.booleans()),
)
def test_any_config_gives_exact_ordered_consistent_output(
    entries: int, seed: int, hours: float, start: str, flags: tuple[bool, bool, bool]
) -> None:
    regression, secrets, second = flags
    cfg = SampleConfig(entries=entries, seed=seed, hours=hours, start=start, regression=regression,
                       plant_secrets=secrets, second_service=second)
    got, truth = sample_entries(cfg)
    assert len(got) == truth.entries == entries
    dt = datetime.fromisoformat(start.replace("Z", "+00:00"))
    lo = calendar.timegm(dt.utctimetuple()) * 1_000_000_000 + dt.microsecond * 1000
    hi = lo + round(hours * 3600e9)
    times = [ts_ns(e["timestamp"]) for e in got]
    assert times == sorted(times)
    assert all(lo <= t < hi for t in times)
    assert len({e["insertId"] for e in got}) == entries
    assert sum(truth.kinds.values()) == entries == sum(r.entries for r in truth.by_revision.values())
    assert Counter(effective(e) for e in got) == truth.effective_severity
    for _, rev, ts in truth.deploys:
        assert rev == CANARY_REVISION
        assert ts_ns(ts) - lo == round(22714619410 * hours / 8) * 1000
    if not second:
        assert all(rev_key(e)[0] == SERVICE for e in got)
    if not secrets:
        assert truth.secrets == []
    if not regression:
        assert not any(k in CANARY_ONLY_KINDS for _, _, k in truth.kinds)


def test_iterating_again_gives_the_same_entries_and_truth() -> None:
    gen = SampleGenerator(SampleConfig(entries=800))
    first = list(gen)
    t1 = gen.truth.to_dict()
    second = list(gen)
    assert first == second
    assert gen.truth.to_dict() == t1


def test_truth_is_self_consistent(default_sample: tuple[list[dict], SampleTruth]) -> None:
    _, truth = default_sample
    assert truth.entries == 5000
    assert sum(r.entries for r in truth.by_revision.values()) == 5000
    assert sum(truth.kinds.values()) == 5000
    assert sum(truth.effective_severity.values()) == 5000
    assert set(truth.by_revision) == {BASE, CANARY, AUTH, AUDIT}
    for (svc, rev), rt in truth.by_revision.items():
        mine = {k: n for (s, r, k), n in truth.kinds.items() if (s, r) == (svc, rev)}
        assert sum(mine.values()) == rt.entries
        assert sum(n for k, n in mine.items() if k in REQUEST_KINDS) == rt.requests
        assert rt.status_4xx + rt.status_5xx <= rt.requests <= rt.entries
        assert rt.errors <= rt.entries
    assert sum(truth.endpoints.values()) == sum(r.requests for r in truth.by_revision.values())
    assert {k for _, _, k in truth.kinds} <= set(KINDS)
    assert truth.kinds[(SERVICE, None, "deploy_audit")] == 1


def test_truth_agrees_with_an_independent_reading(default_sample: tuple[list[dict], SampleTruth]) -> None:
    entries, truth = default_sample
    by_rev: dict[tuple[str, str | None], Counter] = {}
    endpoints: Counter = Counter()
    eff: Counter = Counter()
    for e in entries:
        c = by_rev.setdefault(rev_key(e), Counter())
        level = effective(e)
        eff[level] += 1
        c["entries"] += 1
        c["errors"] += SEVERITY_NUM[level] >= SEVERITY_NUM["ERROR"]
        http = e.get("httpRequest")
        if http:
            c["requests"] += 1
            c["status_4xx"] += 400 <= http["status"] < 500
            c["status_5xx"] += http["status"] >= 500
            path = re.sub(r"^https://[^/]+", "", http["requestUrl"])
            endpoints[(rev_key(e)[0], http["requestMethod"], path_template(path), http["status"])] += 1
    assert eff == truth.effective_severity
    assert endpoints == truth.endpoints
    assert set(by_rev) == set(truth.by_revision)
    for key, c in by_rev.items():
        want = vars(truth.by_revision[key])
        assert {k: c[k] for k in want} == want, key


def test_kind_counts_match_message_markers(default_sample: tuple[list[dict], SampleTruth]) -> None:
    entries, truth = default_sample
    markers = {
        "ws_no_token_debug": "NO_TOKEN DEBUG: {",
        "ws_auth_failure": "HANDLING AUTH FAILURE: NO_TOKEN",
        "ws_rejected_no_jwt": "WebSocket connection rejected in staging: No JWT=REDACTED",
        "dependency_validation_failed": "Service dependency validation FAILED",
        "startup_failures_header": "CRITICAL STARTUP VALIDATION FAILURES DETECTED:",
        "golden_path_chat_broken": "Golden path validation failed: Chat functionality completely broken",
        "golden_path_jwt_failure": "Golden path validation failed: JWT=REDACTED failure",
        "golden_path_business_risk": "Golden path validation failed - business functionality at risk",
        "startup_validation_bypassed": "BYPASSING STARTUP VALIDATION FOR STAGING",
        "demo_mode_bypass": "DEMO MODE: Authentication bypass enabled",
        "session_completed": "COMPLETED: Request-scoped session",
        "db_session_created": "Database session created successfully with proper service-to-service",
        "thread_created": "Thread creation working properly",
        "session_create_failed": "Failed to create request-scoped database session",
        "leaked_session": "Detected leaked session",
        "startup_sequence_failed": "DETERMINISTIC STARTUP SEQUENCE FAILED",
        "instance_started": "Starting new instance. Reason: ",
        "container_exit": "Container called exit(3).",
        "gunicorn_worker_boot_failed": "[ERROR] Worker failed to boot.",
        "cache_miss_warning": "Cache miss for key user:",
        "redis_retry_warning": "Retrying Redis connection to 10.0.",
        "rate_limiter_fallback": "Rate limiter fallback engaged for tenant",
        "agent_request_json": "Agent request completed",
        "auth_token_issued": "Access token issued",
    }
    for kind, marker in markers.items():
        for key in (BASE, CANARY, AUTH):
            want = truth.kinds[(*key, kind)]
            got = sum(1 for e in entries if rev_key(e) == key and marker in text_of(e))
            assert got == want, (kind, key)
    # both spellings of the emoji lines occur
    texts = [text_of(e) for e in entries]
    assert any(t.startswith("\U0001f50d NO_TOKEN DEBUG:") for t in texts)
    assert any(t.startswith(" SEARCH:  NO_TOKEN DEBUG:") for t in texts)
    assert any(t.startswith("\u26a0\ufe0f BYPASSING") for t in texts)
    assert any(t.startswith(" WARNING: [U+FE0F] BYPASSING") for t in texts)
    assert any(t.startswith("\u2705 COMPLETED:") for t in texts)
    assert any(t.startswith(" PASS:  COMPLETED:") for t in texts)


def test_every_kind_occurs_a_few_times_in_the_default_sample(default_sample: tuple[list[dict], SampleTruth]) -> None:
    _, truth = default_sample
    backend = set(KINDS) - {"auth_verify_200", "auth_verify_401", "auth_token_issued", "deploy_audit"}
    secrets = {k for k in KINDS if k.startswith("secret_leak_")}
    once_per_instance = {"startup_sequence_failed", "gunicorn_worker_boot_failed", "container_exit"}
    for kind in backend - CANARY_ONLY_KINDS:
        for key in (BASE, CANARY):
            n = truth.kinds[(*key, kind)]
            assert n >= (1 if kind in secrets | once_per_instance else 2), (kind, key, n)
    for kind in CANARY_ONLY_KINDS:
        assert truth.kinds[(*CANARY, kind)] >= 3
    for kind in ("auth_verify_200", "auth_verify_401", "auth_token_issued"):
        assert truth.kinds[(*AUTH, kind)] >= 3


# --- the deploy and the regression -----------------------------------------------------------


def test_default_deploy(default_sample: tuple[list[dict], SampleTruth]) -> None:
    entries, truth = default_sample
    assert truth.deploys == [(SERVICE, CANARY_REVISION, "2025-09-10T02:18:34.619410Z")]
    audit = [e for e in entries if e["logName"].endswith("cloudaudit.googleapis.com%2Factivity")]
    assert len(audit) == 1
    a = audit[0]
    assert a["timestamp"] == "2025-09-10T02:18:34.619410Z"
    assert a["resource"]["labels"]["revision_name"] == ""
    p = a["protoPayload"]
    assert p["methodName"] == "google.cloud.run.v1.Services.ReplaceService"
    assert p["authenticationInfo"]["principalEmail"] == f"deployer@{PROJECT}.iam.gserviceaccount.com"
    assert p["response"]["status"]["latestCreatedRevisionName"] == CANARY_REVISION
    deploy = ts_ns(a["timestamp"])
    canary_times = [ts_ns(e["timestamp"]) for e in entries if rev_key(e) == CANARY]
    base_times = [ts_ns(e["timestamp"]) for e in entries if rev_key(e) == BASE]
    assert 20e9 <= min(canary_times) - deploy <= 45e9  # canary instances start ~30 s later
    assert 0 < max(base_times) - deploy <= 600e9  # the baseline's short tail of requests
    started = [e for e in entries if rev_key(e) == CANARY and "Reason: DEPLOYMENT" in text_of(e)]
    assert len(started) == 2


@pytest.mark.parametrize(("hours", "deploy"), [(4.0, "2025-09-09T23:09:17.309705Z"), (1.0, "2025-09-09T20:47:19.327426Z")])
def test_deploy_scales_with_the_window(hours: float, deploy: str) -> None:
    entries, truth = sample_entries(SampleConfig(entries=1500, hours=hours))
    assert truth.deploys == [(SERVICE, CANARY_REVISION, deploy)]
    start, end = ts_ns("2025-09-09T20:00:00Z"), ts_ns("2025-09-09T20:00:00Z") + int(hours * 3600e9)
    assert all(start <= ts_ns(e["timestamp"]) < end for e in entries)


def test_regression_is_canary_only(default_sample: tuple[list[dict], SampleTruth]) -> None:
    _, truth = default_sample
    base = {k for s, r, k in truth.kinds if (s, r) == BASE}
    canary = {k for s, r, k in truth.kinds if (s, r) == CANARY}
    assert not base & CANARY_ONLY_KINDS
    assert canary & CANARY_ONLY_KINDS == CANARY_ONLY_KINDS
    assert canary - base == CANARY_ONLY_KINDS
    assert base - canary == set()

    def rate(key: tuple[str, str]) -> float:
        return truth.kinds[(*key, "req_chat_500")] / (
            truth.kinds[(*key, "req_chat_500")] + truth.kinds[(*key, "req_chat_200")]
        )

    assert 5 <= rate(CANARY) / rate(BASE) <= 20
    assert truth.unclassified_templates[
        (CANARY_REVISION, "Rate limiter fallback engaged for tenant <*> (limit <*>/min)")
    ] == truth.kinds[(*CANARY, "rate_limiter_fallback")]
    assert not any(r == BASELINE_REVISION and "Rate limiter" in t for r, t in truth.unclassified_templates)


@pytest.mark.parametrize("seed", [7, 11])
def test_without_regression_both_revisions_have_the_same_kinds(seed: int) -> None:
    _, truth = sample_entries(SampleConfig(entries=20000, seed=seed, regression=False))
    base = {k for s, r, k in truth.kinds if (s, r) == BASE}
    canary = {k for s, r, k in truth.kinds if (s, r) == CANARY}
    assert base == canary
    assert not canary & CANARY_ONLY_KINDS
    chat500 = truth.kinds[(*CANARY, "req_chat_500")] / truth.kinds[(*CANARY, "req_chat_200")]
    assert chat500 < 0.1


def test_unclassified_templates_match_their_messages(default_sample: tuple[list[dict], SampleTruth]) -> None:
    entries, truth = default_sample
    assert truth.unclassified_templates
    for (rev, template), n in truth.unclassified_templates.items():
        rx = re.compile("^" + re.escape(template).replace(re.escape("<*>"), r"\S+?") + "$")
        got = sum(1 for e in entries if rev_key(e)[1] == rev and rx.match(text_of(e)))
        assert got == n, template
        assert n > 0
        distinct = {text_of(e) for e in entries if rev_key(e)[1] == rev and rx.match(text_of(e))}
        assert len(distinct) > 1 or n == 1  # the variable parts really vary


# --- secrets ---------------------------------------------------------------------------------


def test_planted_secrets(default_sample: tuple[list[dict], SampleTruth]) -> None:
    entries, truth = default_sample
    assert len(truth.secrets) == 8 == len(set(truth.secrets))
    blobs = [json.dumps(e, ensure_ascii=False) for e in entries]
    for secret in truth.secrets:
        holders = [e for e, b in zip(entries, blobs, strict=True) if secret in b]
        assert len(holders) == 1, secret
        assert SEVERITY_NUM[holders[0]["severity"]] >= SEVERITY_NUM["WARNING"]
    jwts = [s for s in truth.secrets if s.startswith("eyJ")]
    assert len(jwts) == 2
    for jwt in jwts:
        parts = jwt.split(".")
        assert len(parts) == 3 and all(re.fullmatch(r"[A-Za-z0-9_-]+", p) for p in parts)
    keys = [s for s in truth.secrets if s.startswith("AIza")]
    assert len(keys) == 2 and all(len(k) == 39 for k in keys)
    texts = "\n".join(text_of(e) for e in entries)
    assert len(re.findall(r"Authorization: Bearer \S+;", texts)) == 2
    assert len(re.findall(r"postgresql://app:[^@\s]+@10\.1\.2\.3:5432/netra", texts)) == 2


def test_no_secrets_when_not_planted() -> None:
    entries, truth = sample_entries(SampleConfig(entries=3000, plant_secrets=False))
    assert truth.secrets == []
    assert not any(k.startswith("secret_leak_") for _, _, k in truth.kinds)
    texts = "\n".join(json.dumps(e) for e in entries)
    assert "Bearer" not in texts and "AIza" not in texts and "eyJ" not in texts and "postgresql://" not in texts


def test_second_service_can_be_left_out() -> None:
    entries, truth = sample_entries(SampleConfig(entries=2000, second_service=False))
    assert len(entries) == 2000
    assert {rev_key(e)[0] for e in entries} == {SERVICE}
    assert set(truth.by_revision) == {BASE, CANARY, AUDIT}


# --- entry shape -------------------------------------------------------------------------------


def test_entry_shape(default_sample: tuple[list[dict], SampleTruth]) -> None:
    entries, _ = default_sample
    log_ids = set()
    digits: Counter = Counter()
    suffixes: Counter = Counter()
    prev = 0
    for e in entries:
        json.dumps(e)  # plain JSON types only
        for key in ("logName", "resource", "timestamp", "receiveTimestamp", "insertId"):
            assert key in e, key
        assert e["logName"].startswith(f"projects/{PROJECT}/logs/")
        log_id = e["logName"].rsplit("/", 1)[1]
        assert "/" not in log_id
        log_ids.add(log_id)
        labels = e["resource"]["labels"]
        assert e["resource"]["type"] == "cloud_run_revision"
        assert set(labels) == {"project_id", "service_name", "revision_name", "configuration_name", "location"}
        assert labels["location"] == "us-central1" and labels["project_id"] == PROJECT
        m = _TS.match(e["timestamp"])
        assert m
        digits[len(m.group(2) or "")] += 1
        suffixes[m.group(3)] += 1
        t = ts_ns(e["timestamp"])
        assert t >= prev
        prev = t
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z", e["receiveTimestamp"])
        assert ts_ns(e["receiveTimestamp"]) > t
        if "severity" in e:
            assert e["severity"] in SEVERITY_NUM
        if log_id == "run.googleapis.com%2Frequests":
            h = e["httpRequest"]
            assert isinstance(h["status"], int)
            assert re.fullmatch(r"\d+\.\d{9}s", h["latency"])
            assert h["requestSize"].isdigit() and h["responseSize"].isdigit()
            for key in ("requestMethod", "requestUrl", "userAgent", "remoteIp", "protocol"):
                assert h[key]
            assert e["trace"].startswith(f"projects/{PROJECT}/traces/") and len(e["spanId"]) == 16
            assert e["severity"] == ("INFO" if h["status"] < 400 else "WARNING" if h["status"] < 500 else "ERROR")
            assert len(m.group(2)) == 9
            if "textPayload" in e:
                assert h["status"] == 503 and "malformed" in e["textPayload"]
            else:
                assert not any(k.endswith("Payload") for k in e)
        elif log_id != "cloudaudit.googleapis.com%2Factivity":
            assert len(e["labels"]["instanceId"]) > 60
            assert sum(k.endswith("Payload") for k in e) == 1
    assert log_ids == {
        "run.googleapis.com%2Frequests",
        "run.googleapis.com%2Fstdout",
        "run.googleapis.com%2Fstderr",
        "run.googleapis.com%2Fvarlog%2Fsystem",
        "cloudaudit.googleapis.com%2Factivity",
    }
    assert set(digits) == {0, 3, 6, 9}
    assert suffixes["+00:00"] > 0 and suffixes["Z"] > suffixes["+00:00"]
    assert len({e["insertId"] for e in entries}) == len(entries)


def test_instances(default_sample: tuple[list[dict], SampleTruth]) -> None:
    entries, truth = default_sample
    for key in (BASE, CANARY):
        ids = {e["labels"]["instanceId"] for e in entries if rev_key(e) == key and "labels" in e}
        started = truth.kinds[(*key, "instance_started")]
        assert len(ids) == started  # every instance (one crashed boot included) starts in the window
        assert 3 <= started <= 4
        assert truth.kinds[(*key, "startup_validation_bypassed")] == started - 1


# --- effective severity of stderr lines without severity ---------------------------------------


def test_effective_severity_of_text_only_levels(default_sample: tuple[list[dict], SampleTruth]) -> None:
    entries, truth = default_sample
    no_sev = [e for e in entries if e.get("severity", "DEFAULT") == "DEFAULT"]
    assert any("severity" in e for e in no_sev) and any("severity" not in e for e in no_sev)

    def levels(pred) -> set[str]:
        return {effective(e) for e in no_sev if pred(text_of(e))}

    assert levels(lambda t: "[INFO] Starting gunicorn 23.0.0" in t) == {"INFO"}
    assert levels(lambda t: "[ERROR] Worker failed to boot." in t) == {"ERROR"}
    assert levels(lambda t: " - WARNING - " in t) == {"WARNING"}
    assert levels(lambda t: "\x1b[31m\x1b[1mERROR   \x1b[0m" in t) == {"ERROR"}
    assert levels(lambda t: t.startswith("Traceback (most recent call last):\n")) == {"ERROR"}
    assert levels(lambda t: t == "Traceback (most recent call last):") == {"ERROR"}
    assert levels(lambda t: t.startswith('  File "')) == {"DEFAULT"}
    assert levels(lambda t: t.startswith("ValueError: ")) == {"DEFAULT"}
    # loguru's level is only readable once the ANSI codes are gone
    assert all("| ERROR    |" not in text_of(e) for e in no_sev)

    def kind_levels(*kinds: str) -> int:
        return sum(truth.kinds[(s, r, k)] for s, r, k in truth.kinds if k in kinds)

    split_heads = sum(1 for e in no_sev if text_of(e) == "Traceback (most recent call last):")
    assert split_heads * 4 == kind_levels("traceback_split")
    assert truth.effective_severity["DEFAULT"] == kind_levels("stdout_noise") + 3 * split_heads
    assert truth.effective_severity["CRITICAL"] == kind_levels("ws_auth_failure", "startup_sequence_failed")
    assert truth.effective_severity["NOTICE"] == 1
    for kind, level in KIND_SEVERITY.items():
        assert level in SEVERITY_NUM or kind == "traceback_split"


# --- files -------------------------------------------------------------------------------------


def _read(path: Path, fmt: str) -> list[dict]:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        if fmt == "jsonl":
            return [json.loads(line) for line in f]
        if fmt == "json":
            return json.load(f)
        return [d for d in yaml.load_all(f, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) if d is not None]


@pytest.mark.parametrize("fmt", ["jsonl", "json", "yaml"])
@pytest.mark.parametrize("gz", [False, True])
def test_formats_read_back_to_the_same_entries(tmp_path: Path, fmt: str, gz: bool) -> None:
    cfg = SampleConfig(entries=400, seed=3)
    expected, truth = sample_entries(cfg)
    path = tmp_path / (f"s.{fmt}" + (".gz" if gz else ""))
    written = write_sample(path, cfg, fmt=fmt)
    assert written.to_dict() == truth.to_dict()
    got = _read(path, fmt)
    if fmt == "yaml":  # emoji printed as they are, like gcloud (libyaml alone would escape them)
        raw = (gzip.decompress(path.read_bytes()) if gz else path.read_bytes()).decode("utf-8")
        assert "\\U0001" not in raw and re.search("[\U0001F300-\U0001FAFF]", raw)
    if fmt == "json":
        assert ts_ns(got[0]["timestamp"]) >= ts_ns(got[-1]["timestamp"])  # newest first, like gcloud
        got.reverse()
    assert got == expected
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # no temporary files left


def test_file_layouts(tmp_path: Path) -> None:
    cfg = SampleConfig(entries=50)
    write_sample(tmp_path / "a.json", cfg, fmt="json")
    text = (tmp_path / "a.json").read_text(encoding="utf-8")
    assert text.startswith('[\n  {\n    "') and text.endswith("\n  }\n]\n")
    first = json.loads(text)[0]
    assert list(first) == sorted(first)  # gcloud sorts keys
    write_sample(tmp_path / "a.yaml", cfg, fmt="yaml")
    docs = (tmp_path / "a.yaml").read_text(encoding="utf-8").split("\n---\n")
    assert len(docs) == 50
    write_sample(tmp_path / "e.json", SampleConfig(entries=0), fmt="json")
    assert json.loads((tmp_path / "e.json").read_text()) == []
    write_sample(tmp_path / "e.jsonl", SampleConfig(entries=0))
    assert (tmp_path / "e.jsonl").read_bytes() == b""


@pytest.mark.parametrize("name", ["s.jsonl", "s.json.gz", "s.yaml"])
def test_files_are_deterministic(tmp_path: Path, name: str) -> None:
    fmt = name.split(".")[1]
    cfg = SampleConfig(entries=1500, seed=5)
    (tmp_path / "1").mkdir()
    (tmp_path / "2").mkdir()
    (tmp_path / "3").mkdir()
    write_sample(tmp_path / "1" / name, cfg, fmt=fmt)
    write_sample(tmp_path / "2" / name, cfg, fmt=fmt)
    write_sample(tmp_path / "3" / name, SampleConfig(entries=1500, seed=6), fmt=fmt)
    one = (tmp_path / "1" / name).read_bytes()
    assert one == (tmp_path / "2" / name).read_bytes()
    assert one != (tmp_path / "3" / name).read_bytes()
    if name.endswith(".gz"):
        assert one[3] & 0x08 == 0 and one[4:8] == b"\0\0\0\0"  # no file name, mtime 0


def test_write_replaces_atomically_and_rejects_bad_formats(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    path.write_text("old\n")
    write_sample(path, SampleConfig(entries=10))
    assert len(path.read_bytes().splitlines()) == 10
    with pytest.raises(UsageError):
        write_sample(tmp_path / "x.csv", SampleConfig(entries=10), fmt="csv")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.jsonl"]


def test_truth_round_trips_through_json(default_sample: tuple[list[dict], SampleTruth]) -> None:
    _, truth = default_sample
    d = json.loads(json.dumps(truth.to_dict()))
    back = SampleTruth.from_dict(d)
    assert back == truth


def test_severity_table_is_the_schemas() -> None:
    assert SAMPLE_SEVERITY_NUM == SEVERITY_NUM


def test_bad_config() -> None:
    with pytest.raises(UsageError):
        SampleConfig(entries=-1)
    with pytest.raises(UsageError):
        SampleConfig(hours=0)
    with pytest.raises(UsageError):
        SampleConfig(start="yesterday")


@pytest.mark.parametrize(
    ("path", "template"),
    [
        ("/health", "/health"),
        ("/api/threads/0b6f2c1e-9d7a-4c3b-8e21-5f4a3b2c1d0e", "/api/threads/{id}"),
        ("/api/threads/0b6f2c1e-9d7a-4c3b-8e21-5f4a3b2c1d0e/messages?limit=50", "/api/threads/{id}/messages"),
        ("/api/users/12345/deadbeef00/x", "/api/users/{id}/{id}/x"),
        ("/api/agents", "/api/agents"),
        ("/api/abcdef1", "/api/abcdef1"),
    ],
)
def test_path_template(path: str, template: str) -> None:
    assert path_template(path) == template
