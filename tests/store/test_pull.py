"""`logaudit pull` against a fake Cloud Logging server on 127.0.0.1, through the real client library.

Every fault test ends by checking that the store holds exactly the expected entries, once each.
"""

from __future__ import annotations

import math
import os
import re
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from fake_logging import FakeLogging, compile_filter, make_entries, ts_ns

from logaudit.core.errors import SourceError, UsageError
from logaudit.sources import cloud_logging as cl
from logaudit.store import pull as store_pull
from logaudit.store.store import Store

PROJECT = "my-project"
SINCE, UNTIL = "2026-11-28T09:00:00Z", "2026-11-28T12:00:00Z"
REPO = Path(__file__).resolve().parents[2]
BASE = 'resource.type="cloud_run_revision" AND resource.labels.service_name="hello"'
WINDOW = f'timestamp>="{SINCE}" AND timestamp<"{UNTIL}"'


@pytest.fixture
def fake():
    servers: list[FakeLogging] = []

    def start(entries, **kw) -> FakeLogging:
        server = FakeLogging(list(entries), project=PROJECT, **kw).start()
        servers.append(server)
        return server

    yield start
    for s in servers:
        s.stop()


def keys_of(entries) -> list[tuple[str, str, int]]:
    return sorted((e["logName"], e["insertId"], ts_ns(e["timestamp"])) for e in entries)


def stored(store_dir) -> list[tuple[str, str, int]]:
    table = Store(store_dir).read_entries()
    return sorted(zip(table["log_name"].to_pylist(), table["insert_id"].to_pylist(),
                      table["timestamp"].cast("int64").to_pylist(), strict=True))


def assert_exactly(store_dir, entries) -> None:
    got = stored(store_dir)
    assert len(got) == len(set(got)), "duplicates in the store"
    assert got == keys_of(entries)


def run(store_dir, server: FakeLogging, **kw) -> store_pull.PullReport:
    args = dict(services=["hello"], since=SINCE, until=UNTIL, endpoint=server.url, page_size=10,
                max_requests_per_minute=60_000, flush_entries=10, backoff_initial=0.01, seed=1)
    args.update(kw)
    return store_pull.pull(store_dir, PROJECT, **args)


def filters(server: FakeLogging) -> list[str]:
    return [r.body["filter"] for r in server.requests]


# ---------------------------------------------------------------------------- the filter
@pytest.mark.parametrize(("options", "expected"), [
    ({}, 'resource.type="cloud_run_revision"'),
    ({"services": ["hello"]}, BASE),
    ({"services": ["web", "api", "web"]},
     'resource.type="cloud_run_revision" AND (resource.labels.service_name="api" OR resource.labels.service_name="web")'),
    ({"services": "hello", "revisions": "hello-00007-xyz"},
     BASE + ' AND resource.labels.revision_name="hello-00007-xyz"'),
    ({"revisions": ["b-2", "a-1"]},
     'resource.type="cloud_run_revision" AND (resource.labels.revision_name="a-1" OR resource.labels.revision_name="b-2")'),
    ({"services": ["hello"], "since": datetime(2026, 11, 28, 9, tzinfo=UTC), "until": "2026-11-28T12:30:00.25+02:00"},
     BASE + ' AND timestamp>="2026-11-28T09:00:00Z" AND timestamp<"2026-11-28T10:30:00.250Z"'),
    ({"since": ts_ns("2026-11-28T09:00:00.123456789Z")}, 'resource.type="cloud_run_revision" AND timestamp>="2026-11-28T09:00:00.123456789Z"'),
    ({"services": ["hello"], "severity_at_least": "warning"}, BASE + " AND severity>=WARNING"),
    ({"services": ["hello"], "extra_filter": ' httpRequest.status>=500 OR textPayload:"boom" '},
     BASE + ' AND (httpRequest.status>=500 OR textPayload:"boom")'),
    ({"services": ['we"ird\\name']}, 'resource.type="cloud_run_revision" AND resource.labels.service_name="we\\"ird\\\\name"'),
    ({"services": ["hello"], "resource_type": None, "extra_filter": "   "}, 'resource.labels.service_name="hello"'),
    ({"services": ["a", "b"], "revisions": ["r"], "since": "2026-11-28T09:00:00Z", "until": "2026-11-28T12:00:00Z",
      "severity_at_least": "ERROR", "extra_filter": 'logName:"stderr"'},
     'resource.type="cloud_run_revision" AND (resource.labels.service_name="a" OR resource.labels.service_name="b") '
     'AND resource.labels.revision_name="r" AND timestamp>="2026-11-28T09:00:00Z" AND timestamp<"2026-11-28T12:00:00Z" '
     'AND severity>=ERROR AND (logName:"stderr")'),
])
@pytest.mark.timezone
def test_build_filter(options, expected):
    assert cl.build_filter(**options) == expected


def test_build_filter_rejects_bad_values():
    with pytest.raises(UsageError) as info:
        cl.build_filter(severity_at_least="LOUD")
    assert str(info.value) == ("--severity-at-least 'LOUD': not a Cloud Logging severity\n"
                               "  hint: one of DEFAULT, DEBUG, INFO, NOTICE, WARNING, ERROR, CRITICAL, ALERT, EMERGENCY")
    with pytest.raises(UsageError, match="empty service or revision name"):
        cl.build_filter(services=[""])
    with pytest.raises(UsageError, match="accepts at most 20000"):
        cl.build_filter(extra_filter="x" * 20_000)


@pytest.mark.timezone
def test_cli_sends_the_exact_request_and_stores_entries_verbatim(fake, cli, store_dir, reference_entries):
    entries = make_entries(95, same_ts=3) + [e for e in reference_entries if e["resource"]["labels"]["service_name"] == "hello"]
    for e in entries:
        e["logName"] = e["logName"].replace("projects/my-project/", f"projects/{PROJECT}/")
    server = fake(entries)
    result = cli("pull", "--project", PROJECT, "--service", "hello", "--since", SINCE, "--until", UNTIL,
                 "--severity-at-least", "info", "--filter", 'NOT textPayload:"nothing-like-this"', "--page-size", "10",
                 "--endpoint", server.url, "--max-requests-per-minute", "60000", "--store", store_dir, "--quiet")
    assert result.exit_code == 0, result.output
    query = (BASE + f' AND {WINDOW} AND severity>=INFO AND (NOT textPayload:"nothing-like-this")')
    assert server.requests[0].body == {"resourceNames": [f"projects/{PROJECT}"], "filter": query,
                                       "orderBy": "timestamp asc", "pageSize": 10}
    wanted = [e for e in entries if compile_filter(query)(e)]
    assert len(wanted) == 95 + 6 - 1  # the DEFAULT-severity stdout sample is below INFO
    pages = math.ceil(len(wanted) / 10)
    assert [bool(r.body.get("pageToken")) for r in server.requests] == [False] + [True] * (pages - 1)
    assert all(r.body["filter"] == query for r in server.requests)
    assert_exactly(store_dir, wanted)
    assert result.stdout.splitlines()[0] == (
        f"pull {PROJECT}: 100 entries in 10 pages (10 requests): 100 new, 0 duplicate, 0 rejected in "
        + re.search(r"in (\d+\.\d\d s \(quota waits \d+\.\d s\)) ->", result.stdout)[1] + f" -> {store_dir}")
    # nanoseconds and receiveTimestamp kept
    table = Store(store_dir).read_entries()
    by_id = dict(zip(table["insert_id"].to_pylist(), zip(table["timestamp"].cast("int64").to_pylist(),
                                                            table["receive_timestamp"].cast("int64").to_pylist(), strict=True), strict=True))
    for e in wanted:
        assert by_id[e["insertId"]] == (ts_ns(e["timestamp"]), ts_ns(e["receiveTimestamp"]))
    record = Store(store_dir).manifest()[-1]
    assert (record["kind"], record["status"], record["project"], record["filter"], record["query_filter"], record["new_rows"]) == (
        "pull", "complete", PROJECT, BASE + ' AND severity>=INFO AND (NOT textPayload:"nothing-like-this")', query, 100)
    assert record["sources"][0]["source"] == f"pull:{PROJECT}"


@pytest.mark.timezone
def test_dry_run_prints_the_filter_and_request_and_sends_nothing(fake, cli, store_dir):
    server = fake(make_entries(5))
    result = cli("pull", "-p", PROJECT, "-s", "hello", "-s", "api", "-r", "hello-00001-abc", "--since", SINCE, "--until", UNTIL,
                 "--endpoint", server.url, "--store", store_dir, "--dry-run")
    assert result.exit_code == 0
    query = ('resource.type="cloud_run_revision" AND (resource.labels.service_name="api" OR resource.labels.service_name="hello") '
             f'AND resource.labels.revision_name="hello-00001-abc" AND {WINDOW}')
    body = {"resourceNames": ["projects/my-project"], "filter": query, "orderBy": "timestamp asc", "pageSize": 1000}
    import json
    assert result.stdout == (f"filter: {query}\nPOST {server.url}/v2/entries:list\n{json.dumps(body, indent=2)}\n"
                             "(then follows nextPageToken, at most 60 requests per minute)\n")
    assert server.requests == []
    assert not store_dir.exists()
    as_json = cli("pull", "-p", PROJECT, "--since", SINCE, "--dry-run", "--format", "json", "--store", store_dir,
                  env={"LOGAUDIT_LOGGING_ENDPOINT": server.url})
    data = orjson.loads(as_json.stdout)
    assert (data["url"], data["filter"], data["body"]["pageSize"], data["resumed_from"]) == (
        f"{server.url}/v2/entries:list", f'resource.type="cloud_run_revision" AND timestamp>="{SINCE}"', 1000, None)


def test_endpoint_from_the_environment_and_bad_endpoints(fake, cli, store_dir):
    server = fake(make_entries(12))
    ok = cli("pull", "-p", PROJECT, "-s", "hello", "--since", SINCE, "--until", UNTIL, "--store", store_dir, "-q",
             env={"LOGAUDIT_LOGGING_ENDPOINT": server.url})
    assert ok.exit_code == 0, ok.output
    assert len(server.requests) == 1
    assert_exactly(store_dir, server.entries)
    bad = cli("pull", "-p", PROJECT, "--endpoint", "127.0.0.1:8085", "--store", store_dir, "-q")
    assert bad.exit_code == 64
    assert bad.stderr == ("error: --endpoint '127.0.0.1:8085': expected a URL starting with http:// or https://\n"
                          "  hint: e.g. --endpoint http://127.0.0.1:8085\n")


# ---------------------------------------------------------------------------- faults
@pytest.mark.slow
def test_429_bursts_without_retry_info(fake, store_dir):
    entries = make_entries(60)
    server = fake(entries, faults={2: "429", 3: "429", 4: "429", 7: "429"})
    report = run(store_dir, server)
    assert_exactly(store_dir, entries)
    assert report.retries == {"429": 4}
    assert [r.status for r in server.requests] == [200, 429, 429, 429, 200, 200, 429, 200, 200, 200]
    assert (report.pages, report.requests, report.new_rows, report.duplicates) == (6, 10, 60, 0)


@pytest.mark.slow
def test_429_retry_info_is_honoured(fake, store_dir):
    entries = make_entries(40)
    server = fake(entries, faults={2: "429:0.4", 4: "429-header:0.3"})
    report = run(store_dir, server)
    assert_exactly(store_dir, entries)
    assert report.retries == {"429": 2}
    at = [r.at for r in server.requests]
    assert at[2] - at[1] >= 0.4
    assert at[4] - at[3] >= 0.3
    assert report.quota_wait_seconds >= 0.7


@pytest.mark.slow
def test_server_quota_is_respected_by_pacing(fake, store_dir):
    entries = make_entries(110)
    # A token bucket holding 3 requests: the real quota is per minute (60 in any minute), so this is
    # far stricter than Cloud Logging, yet it leaves room for ~50 ms of scheduling jitter on a
    # loaded 2-core machine (burst 2 left room for 25 ms and failed under a load average of 4).
    server = fake(entries, quota_per_minute=1200, quota_burst=3)
    report = run(store_dir, server, max_requests_per_minute=1200)
    assert_exactly(store_dir, entries)
    assert [r.status for r in server.requests] == [200] * 11
    at = [r.at for r in server.requests]
    # one every 50 ms; a late request may be made up by sending the next one up to 25 ms early, so
    # any 4 intervals span at least 4 x 50 ms - 25 ms, less 20 ms for arrival jitter: times are
    # taken where the server receives the requests, and under CPU load a request sent on time can
    # arrive late, which shortens the gap after it.
    spans = [b - a for a, b in zip(at, at[4:], strict=False)]
    assert min(spans) >= 4 * 0.05 - 0.05 * cl.Pacer.TOLERANCE - 0.02
    assert 0.49 <= at[-1] - at[0] <= 0.9
    assert report.retries == {}


@pytest.mark.slow
def test_client_faster_than_the_server_quota_backs_off_and_completes(fake, store_dir):
    entries = make_entries(150)
    server = fake(entries, quota_per_minute=600, quota_burst=2)
    report = run(store_dir, server, max_requests_per_minute=60_000, flush_entries=100)
    assert_exactly(store_dir, entries)
    refused = [r for r in server.requests if r.status == 429]
    assert [r.fault for r in refused] == ["quota"] * len(refused)
    assert len(refused) >= 3 and report.retries == {"429": len(refused)}
    assert report.pages == 15


@pytest.mark.slow
def test_500_and_503_on_random_pages(fake, store_dir):
    entries = make_entries(200, same_ts=4)
    server = fake(entries, random_faults={"500": 0.2, "503": 0.2}, seed=3)
    report = run(store_dir, server)
    assert_exactly(store_dir, entries)
    faults = [r.fault for r in server.requests if r.status != 200]
    assert faults.count("500") >= 2 and faults.count("503") >= 2
    assert report.retries == {k: faults.count(k) for k in ("500", "503")}
    assert report.pages == 20


@pytest.mark.slow
@pytest.mark.parametrize(("spec", "kind"), [("reset", "connection"), ("short", "connection"), ("truncate", "truncated")])
def test_broken_bodies_are_retried(fake, store_dir, spec, kind):
    entries = make_entries(50)
    server = fake(entries, faults={1: spec, 3: spec, 4: spec})
    report = run(store_dir, server)
    assert_exactly(store_dir, entries)
    assert report.retries == {kind: 3}
    assert [r.status for r in server.requests] == [-1, 200, -1, -1, 200, 200, 200, 200]


@pytest.mark.slow
def test_timeouts_are_retried(fake, store_dir):
    entries = make_entries(30)
    server = fake(entries, faults={2: "hang:1.5"})
    report = run(store_dir, server, request_timeout=0.4)
    assert_exactly(store_dir, entries)
    assert report.retries == {"timeout": 1}


@pytest.mark.slow
def test_expired_page_token_restarts_from_the_boundary(fake, store_dir):
    entries = make_entries(10) + make_entries(25, start_ns=ts_ns("2026-11-28T10:30:00Z"), step_ns=0, prefix="same") \
        + make_entries(10, start_ns=ts_ns("2026-11-28T11:00:00Z"), prefix="late")
    server = fake(entries, faults={3: "expire-token"})
    report = run(store_dir, server)
    assert_exactly(store_dir, entries)
    boundary = "2026-11-28T10:30:00.123456789Z"
    assert filters(server)[3] == BASE + f' AND timestamp>="{boundary}" AND timestamp<"{UNTIL}"'
    assert "pageToken" not in server.requests[3].body
    assert report.duplicates == 10  # the boundary page came back once


@pytest.mark.slow
def test_gives_up_after_a_bounded_time_and_says_how_to_resume(fake, cli, store_dir):
    entries = make_entries(100)
    server = fake(entries, faults=lambda n, body: "503" if n >= 4 else None)
    result = cli("pull", "-p", PROJECT, "-s", "hello", "--since", SINCE, "--until", UNTIL, "--page-size", "10",
                 "--endpoint", server.url, "--max-requests-per-minute", "60000", "--max-retry-time", "1s",
                 "--flush-entries", "10", "--backoff-initial", "0.05", "--store", store_dir, "-q")
    assert result.exit_code == 5
    boundary = entries[29]["timestamp"]
    lines = result.stderr.splitlines()
    assert re.fullmatch(r"error: gave up after \d s of failing requests to Cloud Logging \(last: 503 ServiceUnavailable: "
                        r"The service is currently unavailable\.\); stored 30 new entries this run, complete up to "
                        + re.escape(boundary), lines[0])
    assert lines[1] == ("  hint: re-run the same command to resume from there; --max-retry-time sets how long to keep retrying")
    assert_exactly(store_dir, entries[:30])
    assert Store(store_dir).manifest()[-1]["status"] == "failed"
    cursor = store_pull.load_cursor(store_dir, PROJECT, BASE)
    assert (cursor.boundary, cursor.complete, cursor.boundary_keys) == (
        boundary, False, [[entries[29]["logName"], entries[29]["insertId"]]])

    dry = cli("pull", "-p", PROJECT, "-s", "hello", "--since", SINCE, "--until", UNTIL, "--page-size", "10",
              "--endpoint", server.url, "--store", store_dir, "--dry-run")
    assert dry.stdout.splitlines()[:3] == [
        f'filter: {BASE} AND timestamp>="{boundary}" AND timestamp<"{UNTIL}"',
        f"resuming from the stored cursor at {boundary} ({store_pull.cursor_path(store_dir, PROJECT, BASE)})",
        f"POST {server.url}/v2/entries:list",
    ]
    server.faults = None
    before = len(server.requests)
    again = cli("pull", "-p", PROJECT, "-s", "hello", "--since", SINCE, "--until", UNTIL, "--page-size", "10",
                "--endpoint", server.url, "--max-requests-per-minute", "60000", "--store", store_dir, "-q")
    assert again.exit_code == 0, again.output
    assert filters(server)[before] == BASE + f' AND timestamp>="{boundary}" AND timestamp<"{UNTIL}"'
    assert again.stdout.splitlines()[0] == f"resumed from {boundary}"
    assert_exactly(store_dir, entries)
    assert len(server.requests) - before == 8  # 71 entries from the boundary on, 10 a page


def test_bad_filter_is_an_immediate_error_showing_the_filter(fake, cli, store_dir):
    server = fake(make_entries(5))
    result = cli("pull", "-p", PROJECT, "--since", SINCE, "--filter", "textPayload:(", "--endpoint", server.url,
                 "--store", store_dir, "-q")
    assert result.exit_code == 5
    assert result.stderr.splitlines() == [
        "error: Cloud Logging rejected the query (400 Bad Request): Unparseable filter: expected a value after textPayload:",
        f'  filter: resource.type="cloud_run_revision" AND timestamp>="{SINCE}" AND (textPayload:()',
        "  hint: check the --filter expression (Logging query language: quote strings, AND/OR/NOT in capitals); "
        "`logaudit pull --dry-run` prints the whole filter",
    ]
    assert len(server.requests) == 1


def test_permission_denied_names_the_role_and_project(fake, cli, store_dir):
    server = fake(make_entries(5))
    result = cli("pull", "-p", "someone-elses", "--since", SINCE, "--endpoint", server.url, "--store", store_dir, "-q")
    assert result.exit_code == 5
    assert result.stderr.splitlines() == [
        "error: permission denied reading the logs of project someone-elses (403 Forbidden): "
        "Permission denied for resource ['projects/someone-elses'] (or it may not exist).",
        "  hint: the account needs the role roles/logging.viewer (Logs Viewer) on project someone-elses: "
        "gcloud projects add-iam-policy-binding someone-elses --member=user:YOU@example.com --role=roles/logging.viewer",
    ]
    assert len(server.requests) == 1


def test_missing_credentials_say_how_to_log_in(cli, store_dir, tmp_path, monkeypatch):
    monkeypatch.delenv("LOGAUDIT_LOGGING_ENDPOINT", raising=False)
    env = {"GOOGLE_APPLICATION_CREDENTIALS": str(tmp_path / "absent.json"), "CLOUDSDK_CONFIG": str(tmp_path / "gcloud"),
           "LOGAUDIT_LOGGING_ENDPOINT": None}
    result = cli("pull", "-p", PROJECT, "--store", store_dir, "-q", env=env)
    assert result.exit_code == 5
    assert result.stderr == (
        "error: no Google Cloud credentials found (Application Default Credentials)\n"
        "  hint: run `gcloud auth application-default login` (Application Default Credentials), "
        "or pass --credentials KEY.json with a service-account key\n")
    key = tmp_path / "key.json"
    key.write_text('{"type": "service_account"}')
    bad_key = cli("pull", "-p", PROJECT, "--credentials", key, "--store", store_dir, "-q", env=env)
    assert bad_key.exit_code == 5
    assert re.fullmatch(re.escape(f"error: --credentials {key}: not a usable service-account key (MalformedError: Service "
                                  "account info was not in the expected format, missing fields ")
                        + r"(client_email, token_uri|token_uri, client_email)\.\)", bad_key.stderr.splitlines()[0])


# ---------------------------------------------------------------------------- resume, exactly once
@pytest.mark.slow
@pytest.mark.timezone
def test_rerun_of_a_completed_pull_fetches_only_the_boundary_page(fake, store_dir):
    entries = make_entries(57, same_ts=3)
    server = fake(entries)
    first = run(store_dir, server)
    assert (first.status, first.new_rows, first.pages) == ("complete", 57, 6)
    files = sorted(Store(store_dir).entry_files())
    second = run(store_dir, server)
    last = entries[-1]["timestamp"]
    assert (second.status, second.resumed_from, second.requests, second.entries, second.new_rows, second.duplicates) == (
        "complete", last, 1, 3, 0, 3)
    assert filters(server)[-1] == BASE + f' AND timestamp>="{last}" AND timestamp<"{UNTIL}"'
    assert sorted(Store(store_dir).entry_files()) == files
    assert_exactly(store_dir, entries)
    # a window that ends before the boundary needs no request at all
    third = run(store_dir, server, until="2026-11-28T10:00:05Z")
    assert (third.status, third.requests) == ("up-to-date", 0)
    assert len(server.requests) == 7


@pytest.mark.slow
@pytest.mark.timezone
def test_new_entries_after_a_completed_pull_are_picked_up(fake, store_dir):
    entries = make_entries(30)
    server = fake(entries)
    now = datetime(2026, 11, 28, 11, 0, tzinfo=UTC)
    run(store_dir, server, since="2h", until=None, now=now)
    later = make_entries(15, start_ns=ts_ns("2026-11-28T10:00:29Z"), prefix="later")  # 10:00:29.123456789 onwards
    server.add_entries(later)
    report = run(store_dir, server, since="2h", until=None, now=datetime(2026, 11, 28, 11, 30, tzinfo=UTC))
    assert report.resumed_from == entries[-1]["timestamp"]
    assert filters(server)[-2] == BASE + f' AND timestamp>="{entries[-1]["timestamp"]}"'
    assert (report.new_rows, report.duplicates) == (15, 1)
    assert_exactly(store_dir, entries + later)


@pytest.mark.slow
def test_a_different_filter_has_its_own_cursor(fake, store_dir):
    entries = make_entries(20) + make_entries(20, service="api", prefix="api")
    server = fake(entries)
    run(store_dir, server)
    report = run(store_dir, server, services=["api"])
    assert report.resumed_from is None
    assert report.new_rows == 20
    assert len(list((Path(store_dir) / "cursors").glob("*.json"))) == 2
    assert_exactly(store_dir, entries)


@pytest.mark.slow
def test_many_entries_sharing_one_timestamp_across_page_boundaries(fake, store_dir):
    entries = make_entries(5, prefix="a") + make_entries(37, start_ns=ts_ns("2026-11-28T10:30:00Z"), step_ns=0, prefix="same") \
        + make_entries(8, start_ns=ts_ns("2026-11-28T11:00:00Z"), prefix="z")
    shared = "2026-11-28T10:30:00.123456789Z"
    # pages of 10: [a0-a4, same0-4] [same5-14] [same15-24] -- then the server fails for good
    server = fake(entries, faults=lambda n, body: "503" if n >= 4 else None)
    with pytest.raises(SourceError):
        run(store_dir, server, max_retry_seconds=0.3)
    assert_exactly(store_dir, entries[:30])
    cursor = store_pull.load_cursor(store_dir, PROJECT, BASE)
    assert cursor.boundary == shared
    assert [k[1] for k in cursor.boundary_keys] == [f"same{i:08d}" for i in range(25)]
    server.faults = None
    before = len(server.requests)
    report = run(store_dir, server)
    assert report.resumed_from == shared
    assert filters(server)[before] == BASE + f' AND timestamp>="{shared}" AND timestamp<"{UNTIL}"'
    assert (report.entries, report.new_rows, report.duplicates) == (45, 20, 25)
    assert_exactly(store_dir, entries)
    assert store_pull.load_cursor(store_dir, PROJECT, BASE).boundary_keys == [[entries[-1]["logName"], entries[-1]["insertId"]]]


@pytest.mark.slow
def test_ctrl_c_keeps_the_pages_received_and_resumes(fake, store_dir):
    entries = make_entries(80)
    server = fake(entries)
    seen = []

    def interrupt(progress: cl.PullProgress) -> None:
        seen.append(progress.pages)
        if progress.pages >= 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(store_dir, server, progress=interrupt, max_requests_per_minute=600, flush_entries=1000)
    stored_now = stored(store_dir)  # every page the writer had received, none of those still in flight
    assert len(stored_now) >= 10 and len(stored_now) % 10 == 0
    assert stored_now == keys_of(entries[: len(stored_now)])
    assert store_pull.load_cursor(store_dir, PROJECT, BASE).boundary == entries[len(stored_now) - 1]["timestamp"]
    assert Store(store_dir).manifest()[-1]["status"] == "interrupted"
    report = run(store_dir, server)
    assert report.resumed_from == entries[len(stored_now) - 1]["timestamp"]
    assert_exactly(store_dir, entries)


@pytest.mark.slow
def test_terminated_then_killed_mid_pull_then_rerun(fake, store_dir):
    entries = make_entries(1000, same_ts=7)
    server = fake(entries)
    cmd = [sys.executable, "-m", "logaudit", "pull", "-p", PROJECT, "-s", "hello", "--since", SINCE, "--until", UNTIL,
           "--endpoint", server.url, "--page-size", "25", "--max-requests-per-minute", "1200", "--flush-entries", "25",
           "--store", str(store_dir), "-q"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    entries_dir = Path(store_dir) / "entries"

    def start_and_stop(sig: int, files: int) -> tuple[int, str]:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(list(entries_dir.rglob("*.parquet"))) < files:
            time.sleep(0.01)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=20)
        time.sleep(0.2)  # let the server record anything already on the wire
        return proc.returncode, err

    # SIGTERM: handled like Ctrl-C -- what arrived is written, the cursor saved, exit 130
    code, err = start_and_stop(signal.SIGTERM, 3)
    assert code == 130, err
    assert err == "interrupted: the pages received so far are stored; run the same command again to resume\n"
    first = stored(store_dir)
    assert first == keys_of(entries[: len(first)]) and len(first) % 25 == 0
    assert Store(store_dir).manifest()[-1]["status"] == "interrupted"
    # the cursor is never ahead of the data (it can lag when the signal lands mid-write)
    boundary = store_pull.load_cursor(store_dir, PROJECT, BASE).boundary
    assert boundary in {e["timestamp"] for e in entries[: len(first)]}

    # SIGKILL: no chance to clean up; whatever was written stays, the cursor is never ahead of it
    requests_before = len(server.requests)
    code, _ = start_and_stop(signal.SIGKILL, len(list(entries_dir.rglob("*.parquet"))) + 4)
    assert code == -signal.SIGKILL
    assert filters(server)[requests_before] == BASE + f' AND timestamp>="{boundary}" AND timestamp<"{UNTIL}"'
    killed_after = len(server.requests)
    partial = stored(store_dir)
    assert len(partial) == len(set(partial)) and len(first) < len(partial) < 1000
    cursor = store_pull.load_cursor(store_dir, PROJECT, BASE)
    assert cursor is not None and not cursor.complete
    assert ts_ns(cursor.boundary) <= max(k[2] for k in partial)
    assert Store(store_dir).manifest()[-1]["status"] == "running"  # the killed run never finished its record

    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert filters(server)[killed_after] == BASE + f' AND timestamp>="{cursor.boundary}" AND timestamp<"{UNTIL}"'
    assert len(server.requests) - killed_after < 40
    assert_exactly(store_dir, entries)
    assert done.stdout.splitlines()[0] == f"resumed from {cursor.boundary}"


# ---------------------------------------------------------------------------- progress and report
def test_plain_progress_lines_when_not_a_terminal(fake, cli, store_dir, monkeypatch):
    from logaudit.cli import pull_cmd

    monkeypatch.setattr(pull_cmd, "PLAIN_INTERVAL", 0.0)
    server = fake(make_entries(30))
    result = cli("pull", "-p", PROJECT, "-s", "hello", "--since", SINCE, "--until", UNTIL, "--page-size", "10",
                 "--endpoint", server.url, "--max-requests-per-minute", "60000", "--store", store_dir)
    assert result.exit_code == 0
    lines = [line for line in result.stderr.splitlines() if line.startswith("pull ")]
    assert lines
    pattern = (r"pull my-project: \d+ entries, \d+ pages, \d+ requests, [\d,]+ entries/s(, at \S+Z \(\d+% of the window\))?, "
               r"elapsed \d+s, quota waits \d+\.\d s(, eta \S+)?")
    assert all(re.fullmatch(pattern, line) for line in lines), lines
    assert re.fullmatch(r"pull my-project: 30 entries, 3 pages, 3 requests, .*", lines[-1])
    quiet = cli("pull", "-p", PROJECT, "-s", "hello", "--since", SINCE, "--until", UNTIL, "--endpoint", server.url,
                "--store", store_dir, "--quiet")
    assert quiet.stderr == ""


@pytest.mark.slow
def test_progress_bar_on_a_terminal(fake, store_dir):
    import io

    from logaudit.cli.pull_cmd import pull_progress

    server = fake(make_entries(40))
    out = io.StringIO()
    with pull_progress(True, stream=out, force_terminal=True) as progress:
        report = run(store_dir, server, progress=progress, max_requests_per_minute=1200)
    assert report.new_rows == 40
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.getvalue())
    assert "pull my-project" in text and "40 entries" in text and "4 pages" in text and "quota waits" in text


def test_json_report(fake, cli, store_dir):
    server = fake(make_entries(12))
    result = cli("pull", "-p", PROJECT, "-s", "hello", "--since", SINCE, "--until", UNTIL, "--endpoint", server.url,
                 "--store", store_dir, "--format", "json")
    assert result.exit_code == 0
    data = orjson.loads(result.stdout)
    assert {k: data[k] for k in ("status", "entries", "new_rows", "duplicates", "pages", "requests", "filter", "boundary")} == {
        "status": "complete", "entries": 12, "new_rows": 12, "duplicates": 0, "pages": 1, "requests": 1, "filter": BASE,
        "boundary": "2026-11-28T10:00:11.123456789Z"}


@pytest.mark.slow
def test_pacer_spacing_is_exact():
    import threading

    pacer = cl.Pacer(600)
    stop = threading.Event()
    t0 = time.monotonic()
    waits = [pacer.acquire(stop) for _ in range(11)]
    assert waits[0] == 0.0
    assert 0.99 <= time.monotonic() - t0 <= 1.1
    pacer.hold_until(time.monotonic() + 0.3)
    t1 = time.monotonic()
    pacer.acquire(stop)
    assert 0.29 <= time.monotonic() - t1 <= 0.4


# ---------------------------------------------------------------------------- the fake itself (it is the oracle)
def test_fake_filter_language():
    e = {"timestamp": "2026-11-28T10:00:00.5Z", "severity": "WARNING", "textPayload": "Boom here",
         "resource": {"type": "cloud_run_revision", "labels": {"service_name": "hello"}}, "httpRequest": {"status": 503}}
    assert compile_filter('resource.type="cloud_run_revision" AND severity>=WARNING')(e)
    assert not compile_filter("severity>=ERROR")(e)
    assert compile_filter('timestamp>="2026-11-28T10:00:00.4Z" AND timestamp<"2026-11-28T11:30:00+01:00"')(e)
    assert not compile_filter('timestamp>="2026-11-28T10:00:00.500000001Z"')(e)
    assert compile_filter('severity=ERROR OR severity=WARNING AND textPayload:"boom"')(e)  # OR binds tighter than AND
    assert not compile_filter('severity=ERROR OR severity=INFO AND textPayload:"boom"')(e)
    assert compile_filter("NOT severity=ERROR httpRequest.status>=500")(e)
    assert not compile_filter('-resource.labels.service_name="hello"')(e)
    assert compile_filter('(resource.labels.service_name="a" OR resource.labels.service_name="hello")')(e)
