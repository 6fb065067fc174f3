"""`logaudit report`: the sections and numbers of the Markdown and HTML reports equal the summary
JSON they were built from, the charts are valid print PNGs embedded in one self-contained HTML
file, no planted secret gets out, and the HTML renders in a real headless Chromium."""

from __future__ import annotations

import base64
import contextlib
import importlib.util
import json
import os
import re
import select
import shutil
import struct
import subprocess
import tempfile
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest
from conftest import ingest_bundled_sample
from fake_logging import FakeLogging, make_entries, ts_ns
from test_charts import assert_print_png, png_info

from logaudit.analysis.audit import Audit
from logaudit.core.redact import Redactor
from logaudit.present.display import md_code, md_text, one_line
from logaudit.present.display import ms as _ms
from logaudit.present.display import pct as _pct
from logaudit.present.display import short_time as _short
from logaudit.present.report import build_report, readiness_checklist, to_html
from logaudit.present.summary import CATEGORY_TITLES, new_in_newest
from logaudit.sources.bundled import sample_path
from logaudit.sources.sample import CANARY_REVISION
from logaudit.store import pull as store_pull
from logaudit.store.store import Store

# times must be UTC in any local zone (tests/test_timezones.py); whole reports with charts are slow
pytestmark = [pytest.mark.timezone, pytest.mark.slow]

SINCE, UNTIL = "2025-09-09T20:00:00Z", "2025-09-10T04:00:00Z"
BACKEND = "netra-backend-staging"
SECTIONS = ["Executive summary", "Key findings", "1. Error pattern analysis", "2. Per-revision health",
            "2.1 Traffic and request errors", "2.2 Log errors and latency", "3. Endpoint status",
            "4. New issues vs pre-existing", "5. Readiness checklist", "6. Window and data provenance"]


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    """The bundled sample in a store, and the generator's truth (its planted secrets)."""
    store, truth = ingest_bundled_sample(tmp_path_factory.mktemp("report"))
    return store, truth


@pytest.fixture(scope="module")
def report(sample, tmp_path_factory):
    store, _ = sample
    audit = Audit(store)
    result = build_report(audit, since=SINCE, until=UNTIL, out_dir=tmp_path_factory.mktemp("out") / "report")
    return result, audit


def md_of(result) -> str:
    return result.markdown.read_text()


def html_of(result) -> str:
    return result.html.read_text()


def headings(md: str) -> list[str]:
    return [re.sub(r"\\(.)", r"\1", line.lstrip("#").strip()) for line in md.splitlines() if line.startswith("#")]


def mdtext(text: str) -> str:
    return md_text(text)


# ------------------------------------------------------------------------------ structure and numbers
def test_files_and_the_summary_they_were_built_from(report):
    result, audit = report
    out = result.out_dir
    assert sorted(p.name for p in out.iterdir()) == ["charts", "report.html", "report.md", "summary.json"]
    saved = json.loads(result.summary_path.read_text())
    assert saved == json.loads(json.dumps(result.summary))
    assert saved == json.loads(json.dumps(audit.summary(since=SINCE, until=UNTIL)))
    assert saved["entries"] == 5000
    assert sorted(result.charts) == ["error-rate-netra-auth-service", "error-rate-netra-backend-staging", "latency",
                                     "patterns-by-revision", "status-codes-netra-auth-service",
                                     "status-codes-netra-backend-staging"]
    assert result.bucket == "5m"


def test_sections_follow_the_deployment_report(report):
    result, _ = report
    summary = result.summary
    md = md_of(result)
    found = headings(md)
    assert found[0] == "Deployment log audit: netra-auth-service, netra-backend-staging"
    positions = [found.index(s) for s in SECTIONS]
    assert positions == sorted(positions)
    for cat, number in (("critical", "1.1"), ("warning", "1.2"), ("positive", "1.3"), ("info", "1.4")):
        pats = [p for p in summary["patterns"] if p["category"] == cat]
        assert f"{number} {CATEGORY_TITLES[cat]} ({len(pats)} patterns, {sum(p['count'] for p in pats):,} entries)" in found
    assert "1.5 Unclassified messages (WARNING and above)" in found
    assert ("4.1 netra-backend-staging: netra-backend-staging-00317-696 vs netra-backend-staging-00316-m2x"
            in found)
    # the HTML has the same headings, in the same order
    html_headings = [re.sub(r"<[^>]+>", "", h) for h in re.findall(r"<h[1-3][^>]*>(.*?)</h[1-3]>", html_of(result))]
    assert [h.replace("&amp;", "&") for h in html_headings] == found


def test_pattern_rows_equal_the_summary(report):
    result, _ = report
    md = md_of(result)
    html = html_of(result)
    for p in result.summary["patterns"]:
        revs = ", ".join(f"{r} ({n:,})" for r, n in p["by_revision"].items())
        row = (f"| {mdtext(p['title'])} | {p['count']:,} | {_short(p['first_seen'])} | {_short(p['last_seen'])} "
               f"| {revs} | {md_code(one_line(p['example'], 160))} |")
        assert row in md, p["id"]
        assert f"<td class=r>{p['count']:,}</td>" in html
    for u in result.summary["unclassified"]:
        assert f"| {u['count']:,} | {md_code(one_line(u['template'], 160))} |" in md


def test_revision_endpoint_and_new_issue_numbers_equal_the_summary(report):
    result, _ = report
    summary = result.summary
    md = md_of(result)
    for r in summary["revisions"]:
        deployed = _short(r["deploy_time"]) if r["deploy_time"] else "-"
        assert (f"| {r['service']} | `{r['revision']}` | {deployed} | {_short(r['first_seen'])} | {_short(r['last_seen'])} "
                f"| {_pct(r['traffic_share'])} | {r['requests']:,} | {r['status_4xx']:,} | {r['status_5xx']:,} "
                f"| {_pct(r['request_error_rate'])} |") in md
        lat = r["latency_ms"]
        assert (f"| `{r['revision']}` | {r['entries']:,} | {r['errors']:,} | {_pct(r['error_rate'])} | {_ms(lat['p50'])} "
                f"| {_ms(lat['p95'])} | {_ms(lat['p99'])} |") in md
    for e in summary["endpoints"]:
        assert (f"| {e['service']} | {e['method']} | {md_code(e['path'])} | {e['status']} | {e['count']:,} "
                f"| {_pct(e['share'])} | {_ms(e['latency_p95_ms'])} |") in md
    (news,) = new_in_newest(summary)
    assert news["revision"] == CANARY_REVISION
    for p in news["new_patterns"]:
        line = (f"- **{p['category'].upper()}** {mdtext(p['title'])}: {p['by_revision'][CANARY_REVISION]:,} entries, "
                f"first seen {_short(p['first_seen'])}")
        assert line in md
    assert {p["id"] for p in news["new_patterns"]} == {"ws-auth-failure", "ws-no-token-debug", "dependency-validation-failed",
                                                      "db-connection-lost"}
    for u in news["new_templates"]:
        assert f"- **UNCLASSIFIED** {md_code(one_line(u['template'], 140), table=False)}: {u['count']:,} entries" in md
    canary = next(r for r in summary["revisions"] if r["revision"] == CANARY_REVISION)
    base = next(r for r in summary["revisions"] if r["service"] == BACKEND and r["revision"] != CANARY_REVISION)
    assert (f"| 5xx rate | {_pct(base['request_error_rate'])} | {_pct(canary['request_error_rate'])} "
            f"| {100 * (canary['request_error_rate'] - base['request_error_rate']):+.1f} pp |") in md
    assert f"newest revision `{CANARY_REVISION}` served {canary['requests']:,} requests" in md


def test_checklist_and_verdict(report):
    result, _ = report
    summary = result.summary
    md = md_of(result)
    checklist = readiness_checklist(summary)
    assert checklist == result.checklist
    base = next(r for r in summary["revisions"] if r["service"] == BACKEND and r["revision"] != CANARY_REVISION)
    # the metric checks are the verdict's judgements (compare's), not rules of their own
    judged = {j["name"]: j for j in summary["verdict"]["judgements"]}
    expected = {
        "comparison": None, "no-new-critical": False, "no-new-unclassified": False,
        "5xx-rate": False, "error-rate": False, "latency": True, "p50-latency": True, "p95-latency": True,
        "p99-latency": None,
    }
    got = {c["check"]: c["ok"] for c in checklist if c["check"] in expected}
    assert got == expected
    assert judged["latency_p95"]["judgement"] == "Pass" and judged["latency_p99"]["judgement"] == "Inconclusive"
    assert (f"- [ ] **FAIL** HTTP 5xx rate of {CANARY_REVISION} vs {base['revision']}: High "
            f"({judged['request_error_rate']['rule']})") in md.replace("\\", "")  # Markdown escapes < > |
    assert judged["request_error_rate"]["rule"].endswith(": High")
    assert "- [ ] **N/A** netra-auth-service: only one revision (netra-auth-service-00042-k9p) in the window" in md
    applicable = [c for c in checklist if c["ok"] is not None]
    passed = sum(bool(c["ok"]) for c in applicable)
    assert f"{passed} of {len(applicable)} applicable checks pass" in md
    verdict = summary.get("verdict")
    if verdict:  # Audit.summary carries the compare verdict
        assert f"**Verdict:** **{verdict['verdict']}**" in md
        assert any(c["check"] == "verdict" for c in checklist)
    else:
        assert "Verdict" not in md and not any(c["check"] == "verdict" for c in checklist)


def test_the_verdict_section_renders_the_compare_verdict(sample, tmp_path):
    """With `logaudit.compare` present, a summary carrying its verdict shows it in the executive
    summary and the checklist (whether or not `Audit.summary` adds it already)."""
    if importlib.util.find_spec("logaudit.analysis.judge") is None:
        pytest.fail("logaudit.analysis.judge is part of logaudit; it must be importable")
    from logaudit.analysis.judge import compare


    store, truth = sample
    leak = f"new unclassified template quoting Authorization: Bearer {truth.secrets[1]}"

    class WithVerdict(Audit):
        def summary(self, **window):
            out = super().summary(**window)
            out.setdefault("verdict", compare(self, service=BACKEND, since=SINCE, until=UNTIL).verdict_dict())
            out["verdict"]["reasons"].append(leak)  # text quoted from a log line, not redacted upstream
            return out

    result = build_report(WithVerdict(store), since=SINCE, until=UNTIL, service=BACKEND, out_dir=tmp_path, formats="md")
    verdict = result.summary["verdict"]
    md = md_of(result)
    assert truth.secrets[1] not in md and truth.secrets[1] not in result.summary_path.read_text()
    assert verdict["reasons"][-1] == "new unclassified template quoting Authorization: Bearer <redacted>"
    assert verdict["verdict"] == "NOT READY"
    assert (f"**Verdict:** **NOT READY** {verdict['canary']} vs baseline {verdict['baseline']}, "
            f"score {verdict['score']:.0f}") in md
    counts = verdict["metrics"]
    assert (f"**Metrics:** {counts['judged']} judged: {counts['pass']} pass, {counts['high']} high, {counts['low']} low; "
            f"{counts['inconclusive']} inconclusive") in md
    for reason in verdict["reasons"]:
        assert f"- {mdtext(reason)}" in md
    assert f"- [ ] **FAIL** Compare verdict for {verdict['canary']} vs {verdict['baseline']}: NOT READY" in md
    assert "**Current status:** **NOT READY** (compare verdict);" in md
    assert result.html is None and not (tmp_path / "report.html").exists()


def test_provenance_lists_sources_and_generation(report, sample):
    result, audit = report
    store, _ = sample
    md = md_of(result)
    (record,) = store.manifest()
    assert (f"| ingest | `{record['ingest_id']}` | {_short(record['started'])} | complete | {mdtext(str(sample_path()))} "
            f"| 5,000 | 5,000 | 0 | 0 |") in md
    assert f"**Window start (inclusive):** {SINCE}  " in md
    assert f"**Window end (exclusive):** {UNTIL}  " in md
    assert "**Entries in the window:** 5,000  " in md
    assert f"**Generated at:** {result.generated_at}  " in md
    assert (f"**Pattern catalogs:** {len(audit.catalog)} patterns from cloud-run (shipped, 60 patterns), "
            f"netra-backend (shipped, 24 patterns) (fingerprint {audit.catalog.fingerprint})  ") in md
    assert "0 input lines rejected in total" in md


def test_pull_filters_and_rejects_in_provenance(tmp_path):
    entries = make_entries(40, service="hello", revision="hello-00001-abc") + \
        make_entries(40, service="hello", revision="hello-00002-def", prefix="f",
                     start_ns=ts_ns("2026-11-28T11:00:00Z"), severity_cycle=("INFO", "ERROR"))
    server = FakeLogging(entries, project="my-project").start()
    try:
        store = Store(tmp_path / "store")
        store_pull.pull(store, "my-project", services=["hello"], since="2026-11-28T09:00:00Z", until="2026-12-31T00:00:00Z",
                endpoint=server.url, max_requests_per_minute=60_000)
    finally:
        server.stop()
    (tmp_path / "bad.jsonl").write_text('{"not": "a log entry"}\n')
    store.ingest_paths([tmp_path / "bad.jsonl"])
    result = build_report(Audit(store), out_dir=tmp_path / "out", formats="md")
    md = md_of(result)
    pulls = [m for m in store.manifest() if m["kind"] == "pull"]
    assert len(pulls) == 1
    assert "### 6.2 Pull filters" in md
    assert f"- **my-project** ({_short(pulls[0]['started'])}, complete): {md_code(pulls[0]['query_filter'], table=False)}" in md
    assert "1 input lines rejected in total" in md
    assert "| pull | `" in md and "| ingest | `" in md
    assert result.summary["entries"] == 80


def test_empty_window_report(sample, tmp_path):
    store, _ = sample
    result = build_report(Audit(store), since="2030-01-01T00:00:00Z", until="2030-01-02T00:00:00Z", out_dir=tmp_path)
    md = md_of(result)
    assert result.charts == {} and not list((tmp_path / "charts").glob("*.png"))
    assert "No log entries in this window. The store holds 5,000 entries" in md
    assert headings(md)[1:] == ["Executive summary", "1. Window and data provenance",
                               "1.1 Sources (ingests and pulls, oldest first)"]
    assert "<img" not in html_of(result)


# ------------------------------------------------------------------------------ charts and HTML
def test_every_chart_is_a_print_png(report):
    result, _ = report
    for name, path in result.charts.items():
        assert path.exists() and path.parent == result.out_dir / "charts", name
        info = assert_print_png(path)
        assert info["height"] >= 600, name
    md = md_of(result)
    for path in result.charts.values():
        assert f"](charts/{path.name})" in md


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self.in_style = False
        self.style = ""

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self.in_style = tag == "style"

    def handle_endtag(self, tag):
        self.in_style = False

    def handle_data(self, data):
        if self.in_style:
            self.style += data
        else:
            self.text.append(data)


def test_html_is_one_self_contained_file(report):
    result, _ = report
    html = html_of(result)
    parser = _Tags()
    parser.feed(html)
    names = {t for t, _ in parser.tags}
    assert not names & {"script", "link", "iframe", "object", "embed", "base", "form", "video", "audio", "source"}
    images = [a for t, a in parser.tags if t == "img"]
    assert len(images) == len(result.charts)
    order = ["patterns-by-revision", "error-rate-netra-auth-service", "error-rate-netra-backend-staging", "latency",
             "status-codes-netra-auth-service", "status-codes-netra-backend-staging"]
    for img, name in zip(images, order, strict=True):
        assert img["src"].startswith("data:image/png;base64,")
        assert base64.b64decode(img["src"].split(",", 1)[1]) == result.charts[name].read_bytes()
        assert img["alt"]
    for _, attrs in parser.tags:  # nothing points outside the file
        for key, value in attrs.items():
            if key in ("src", "href", "srcset", "action", "poster", "data", "xlink:href", "formaction", "background"):
                assert key == "src" and value.startswith("data:image/png;base64,"), (key, value[:80])
            assert "http://" not in (value or "") and "https://" not in (value or ""), (key, value[:80])
    csp = next(a for t, a in parser.tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy")
    assert csp["content"].startswith("default-src 'none'; img-src data:;")
    assert "url(" not in parser.style and "@import" not in parser.style and "@font-face" not in parser.style
    assert "@media print" in parser.style and "@page" in parser.style
    # the only URLs are log text (redacted examples), shown as text
    summary_text = json.dumps(result.summary, ensure_ascii=False)
    for url in re.findall(r"https?://[^\s<\"']+", html):
        assert url.split("?")[0] in summary_text


def test_no_planted_secret_in_any_output(report, sample, tmp_path, cli):
    result, _ = report
    store, truth = sample
    assert len(truth.secrets) == 8
    raw = Audit(store, redactor=Redactor(enabled=False)).summary(since=SINCE, until=UNTIL)
    assert any(s in json.dumps(raw) for s in truth.secrets)  # they are really in the logs
    outputs = {p.name: p.read_bytes().decode() for p in (result.markdown, result.html, result.summary_path)}
    cli_out = cli("report", "--store", store.root, "--since", SINCE, "--until", UNTIL, "--service", BACKEND,
                  "--out", tmp_path / "cli", "--json")
    assert cli_out.exit_code == 0, cli_out.output
    outputs["cli"] = cli_out.stdout + "".join(p.read_text() for p in (tmp_path / "cli").glob("*.*"))
    for name, text in outputs.items():
        for secret in truth.secrets:
            assert secret not in text, (name, secret[:10])
        assert "<redacted" in text or "&lt;redacted" in text, name  # the examples carrying them are shown, redacted


def test_cli(report, sample, tmp_path, cli):
    store, _ = sample
    result = cli("report", "--store", store.root, "--since", SINCE, "--until", UNTIL, "--service", BACKEND,
                 "--out", tmp_path / "r", "--report-format", "md")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == f"report of 4,242 entries{_verdict_suffix(result)}, 4 charts -> {tmp_path / 'r'}"
    assert lines[1:] == [f"  {tmp_path / 'r' / 'report.md'}", f"  {tmp_path / 'r' / 'summary.json'}"]
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == ["charts", "report.md", "summary.json"]
    bad = cli("report", "--store", store.root, "--out", tmp_path / "x", "--report-format", "pdf")
    assert bad.exit_code == 64 and "--report-format 'pdf': not a report format" in bad.stderr
    missing = cli("report", "--store", tmp_path / "nowhere", "--out", tmp_path / "y")
    assert missing.exit_code == 3 and "no store here" in missing.stderr


def _verdict_suffix(result) -> str:
    summary = json.loads((Path(result.stdout.splitlines()[-1].strip())).read_text())
    verdict = (summary.get("verdict") or {}).get("verdict")
    return f", verdict {verdict}" if verdict else ""


def test_html_escapes_everything():
    from logaudit.present.report import Bullets, Heading, Para, Table

    html = to_html([Heading(2, "<b>x</b>"), Para([("code", "<script>alert(1)</script>"), " & ok"]),
                    Bullets(["a \"quoted\" <i>"]), Table(["h<1>"], [[("code", "`|`")]])], "t<>")
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<title>t&lt;&gt;</title>" in html and "h&lt;1&gt;" in html


# ------------------------------------------------------------------------------ a real browser
def chromium_binary() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


class Chromium:
    """Headless Chromium driven over the DevTools protocol on a pipe (fds 3 and 4, NUL-separated
    JSON): no port, no extra package."""

    def __init__(self, binary: str, profile: Path) -> None:
        cmd_r, self.cmd_w = os.pipe()
        self.res_r, res_w = os.pipe()

        def fds() -> None:
            os.dup2(cmd_r, 3)
            os.dup2(res_w, 4)

        self.stderr = open(profile / "chromium.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--no-first-run", "--no-default-browser-check", "--disable-dev-shm-usage",
             "--disable-extensions", "--disable-sync", "--hide-scrollbars", "--mute-audio",
             f"--user-data-dir={profile}", "--remote-debugging-pipe", "about:blank"],
            pass_fds=(3, 4), preexec_fn=fds, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self.stderr)
        os.close(cmd_r)
        os.close(res_w)
        self.buffer, self.last_id, self.events = b"", 0, []

    def call(self, method: str, params: dict | None = None, session: str | None = None, timeout: float = 30) -> dict:
        self.last_id += 1
        message = {"id": self.last_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self.cmd_w, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._next(deadline)
            if reply.get("id") == self.last_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]
            self.events.append(reply)

    def wait_for(self, event: str, timeout: float = 30) -> dict:
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == event for e in self.events):
            self.events.append(self._next(deadline))
        return next(e for e in self.events if e.get("method") == event)

    def _next(self, deadline: float) -> dict:
        while b"\0" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("Chromium did not answer in time")
            ready, _, _ = select.select([self.res_r], [], [], left)
            if ready:
                chunk = os.read(self.res_r, 1 << 20)
                if not chunk:
                    raise EOFError("Chromium closed the DevTools pipe")
                self.buffer += chunk
        message, self.buffer = self.buffer.split(b"\0", 1)
        return json.loads(message)

    def close(self) -> None:
        with contextlib.suppress(RuntimeError, TimeoutError, EOFError, OSError):
            self.call("Browser.close", timeout=5)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self.cmd_w)
        os.close(self.res_r)
        self.stderr.close()


def test_html_renders_in_headless_chromium(report, tmp_path):
    binary = chromium_binary()
    if binary is None:
        reason = "no chromium binary on PATH (.ci/run installs it with apt-get when it can)"
        print(f"SKIPPED: {reason}")
        pytest.skip(reason)
    result, _ = report
    profile = Path(tempfile.mkdtemp(prefix="chromium-", dir=tmp_path))
    browser = Chromium(binary, profile)
    try:
        target = browser.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = browser.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            browser.call(f"{domain}.enable", session=session)
        browser.call("Emulation.setDeviceMetricsOverride",
                     {"width": 1200, "height": 1500, "deviceScaleFactor": 1, "mobile": False}, session=session)
        url = result.html.resolve().as_uri()
        browser.call("Page.navigate", {"url": url}, session=session)
        browser.wait_for("Page.loadEventFired")
        state = json.loads(browser.call("Runtime.evaluate", {"returnByValue": True, "expression": """JSON.stringify({
            title: document.title,
            images: [...document.images].map(i => [i.complete, i.naturalWidth, i.naturalHeight, i.clientWidth]),
            h2: [...document.querySelectorAll('h2')].map(h => h.textContent),
            height: document.documentElement.scrollHeight, width: document.documentElement.scrollWidth})"""},
                                       session=session)["result"]["value"])
        shot = base64.b64decode(browser.call("Page.captureScreenshot", {"format": "png"}, session=session)["data"])
        full = base64.b64decode(browser.call("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": 1200, "height": min(state["height"], 16000), "scale": 0.5}},
            session=session)["data"])
        pdf = base64.b64decode(browser.call("Page.printToPDF", {"printBackground": True, "preferCSSPageSize": True},
                                            session=session)["data"])
    finally:
        browser.close()
    (tmp_path / "report-top.png").write_bytes(shot)
    (tmp_path / "report-full.png").write_bytes(full)
    (tmp_path / "report.pdf").write_bytes(pdf)
    if os.environ.get("LOGAUDIT_SCREENSHOT_DIR"):  # keep them for a human (CI artifacts)
        keep = Path(os.environ["LOGAUDIT_SCREENSHOT_DIR"])
        keep.mkdir(parents=True, exist_ok=True)
        for name in ("report-top.png", "report-full.png", "report.pdf"):
            shutil.copy(tmp_path / name, keep / name)

    problems = []
    for event in browser.events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.exceptionThrown":
            problems.append(("exception", params["exceptionDetails"].get("text")))
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert", "warning"):
            problems.append(("console", params.get("args")))
        elif method == "Log.entryAdded" and params["entry"]["level"] in ("error", "warning"):
            problems.append(("log", params["entry"].get("text")))
        elif method == "Network.requestWillBeSent":
            requested = params["request"]["url"]
            if not (requested == url or requested.startswith("data:image/png;base64,")):
                problems.append(("request", requested[:100]))
        elif method == "Network.loadingFailed":
            problems.append(("failed", params.get("errorText")))
    assert problems == []

    assert state["title"] == "Deployment log audit: netra-auth-service, netra-backend-staging"
    assert state["h2"] == ["Executive summary", *[s for s in SECTIONS if re.match(r"\d\. ", s)]]
    pngs = [png_info(result.charts[n]) for n in ("patterns-by-revision", "error-rate-netra-auth-service",
                                                  "error-rate-netra-backend-staging", "latency",
                                                  "status-codes-netra-auth-service", "status-codes-netra-backend-staging")]
    assert [tuple(i[:3]) for i in state["images"]] == [(True, p["width"], p["height"]) for p in pngs]
    assert all(0 < i[3] <= 1200 for i in state["images"])  # scaled to the page, not overflowing
    assert state["width"] <= 1200  # no horizontal scrolling
    top = png_info_bytes(shot)
    assert (top["width"], top["height"]) == (1200, 1500)
    assert png_info_bytes(full)["width"] == 600
    assert pdf.startswith(b"%PDF-") and len(re.findall(rb"/Type\s*/Page\b", pdf)) >= 5  # A4 pages, print CSS


def png_info_bytes(data: bytes) -> dict:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return {"width": width, "height": height}
