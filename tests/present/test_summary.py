"""Every output shows whatever the logs hold: whole, literally, and strictly typed.

* Requests without a service (load balancers, App Engine, Compute Engine, revisions with custom
  names, audit entries) render everywhere; the service is null in JSON and `(no service)` in
  text, Markdown and HTML.
* Log text is never markup: rich markup, Markdown and HTML specials come out as written.
* The text output fits the terminal (80, 120, 200 columns), cuts no id or figure, and is plain
  when stdout is not a terminal or NO_COLOR is set (the real CLI in a subprocess, in a pty
  where terminal behaviour matters).
* Text and Markdown say how many items they leave out; a missing verdict says why.
* A property test renders generated entries through every output. Longer run:
  LOGAUDIT_RENDER_EXAMPLES=500 pytest tests/test_render.py -k property
"""

from __future__ import annotations

import copy
import fcntl
import io
import json
import os
import pty
import re
import select
import shutil
import struct
import subprocess
import sys
import termios
from html.parser import HTMLParser
from pathlib import Path

import pytest
from conftest import ingest_bundled_sample
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt
from rich.cells import cell_len

from logaudit.analysis.audit import Audit
from logaudit.analysis.judge import compare
from logaudit.present.comparison import render_markdown as compare_markdown
from logaudit.present.comparison import render_text as compare_text
from logaudit.present.display import make_console, one_line, service_label, to_json
from logaudit.present.display import ms as _ms
from logaudit.present.display import pct as _pct
from logaudit.present.display import short_time as _short
from logaudit.present.report import build_report
from logaudit.present.summary import render_markdown, render_text
from logaudit.sources.sample import BASELINE_REVISION, CANARY_REVISION, SampleConfig, write_sample
from logaudit.store.store import Store

REPO = Path(__file__).resolve().parents[2]
BACKEND = "netra-backend-staging"
#: More generated stores for a deeper run (each about a second).
RENDER_EXAMPLES = int(os.environ.get("LOGAUDIT_RENDER_EXAMPLES", "30"))
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)")
MARKDOWN = MarkdownIt("commonmark").enable(["table", "strikethrough"])
#: Tags a rendered document may hold: anything else came out of log text.
DOCUMENT_TAGS = {"html", "head", "meta", "title", "style", "body", "main", "footer", "h1", "h2", "h3", "p", "ul",
                 "li", "dl", "dt", "dd", "table", "thead", "tbody", "tr", "th", "td", "code", "strong", "em",
                 "span", "hr", "br", "figure", "img", "figcaption"}


# ============================================================================ helpers
def strict_json(text: str):
    """json.loads that rejects NaN and Infinity, as strict parsers do."""
    def reject(name: str):
        raise ValueError(f"not JSON: {name}")

    return json.loads(text, parse_constant=reject)


def squash(text: str) -> str:
    return "".join(text.split())


class _Reader(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: set[str] = set()
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)

    def handle_data(self, data):
        self.text.append(data)


def read_html(document: str) -> tuple[str, set[str]]:
    """(text a reader sees, tags) of an HTML document."""
    reader = _Reader()
    reader.feed(document)
    return " ".join(reader.text), reader.tags


def read_markdown(md: str) -> tuple[str, set[str]]:
    """(text, tags) of Markdown as GitHub-flavoured Markdown renders it."""
    return read_html(MARKDOWN.render(md))


def readable(text: str) -> str:
    """A text output as a reader reads it: lines outside tables as they are, each table column
    by column, a cell wrapped over several lines read as one."""
    out: list[str] = []
    block: list[list[str]] = []

    def flush() -> None:
        for j in range(max((len(r) for r in block), default=0)):
            out.append(" ".join(r[j] for r in block if j < len(r)))
        block.clear()

    for line in text.splitlines():
        if "┃" in line and any("│" in "".join(r) for r in block):
            flush()  # the header of the next table (or of the next part of a split one)
        if "┃" in line or "│" in line:
            block.append([c.strip() for c in re.split("[│┃]", line)])
        elif line.strip() and set(line.strip()) <= set("━╇"):
            continue
        else:
            flush()
            out.append(line)
    flush()
    return "\n".join(out)


def row_values(text: str, key: str) -> dict[str, str]:
    """header -> cell of the rows whose first cell is `key`, over every table of a text output
    (a split table repeats its key column) and every block layout (`key`, then `  header: value`)."""
    out: dict[str, str] = {}
    header: list[str] | None = None
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if "┃" in line:
            header = [h.strip() for h in line.split("┃")]
        elif "│" in line and header:
            cells = [c.strip() for c in line.split("│")]
            if cells[0] == key:
                out.update(zip(header, cells, strict=False))
        elif squash(key).startswith(squash(line)) and line.strip():
            _block_values(lines, i, key, out)
    return out


def _block_values(lines: list[str], i: int, key: str, out: dict[str, str]) -> None:
    """The `header: value` lines after `key` starting at line i (an id wider than the terminal
    is folded over several lines)."""
    seen = ""
    for j in range(i, len(lines)):
        seen += squash(lines[j])
        if seen == squash(key):
            for follow in lines[j + 1:]:
                m = re.match(r"  ([^:]+): (.*)", follow)
                if not m:
                    break
                out[m.group(1)] = m.group(2).strip()
            return
        if not squash(key).startswith(seen):
            return


def revision_rows(text: str, service: str | None, revision: str) -> dict[str, str]:
    """`row_values` of `revision` in the part of section 2 (Revisions) about `service`."""
    part = text.split("2. Revisions", 1)[1].split("3. Endpoint status", 1)[0].splitlines()
    want = squash(f"service {service_label(service)}")
    lines, keep, i = [], False, 0
    while i < len(part):
        line = part[i]
        if line.startswith("service"):  # a heading; a long service name folds it over several lines
            seen, j = squash(line), i
            while seen != want and want.startswith(seen) and j + 1 < len(part):
                j += 1
                seen += squash(part[j])
            keep, i = seen == want, (j if seen == want else i)
        elif keep:
            lines.append(line)
        i += 1
    values = row_values("\n".join(lines), one_line(revision))
    values.pop("revision", None)  # the key column (a table's; the block layout's first line)
    return values


def revision_figures(r: dict) -> dict[str, str]:
    """Every per-revision figure of the JSON as the text shows it."""
    lat = r["latency_ms"]
    return {"traffic": _pct(r["traffic_share"]), "requests": f"{r['requests']:,}", "4xx": f"{r['status_4xx']:,}",
            "5xx": f"{r['status_5xx']:,}", "5xx rate": _pct(r["request_error_rate"]), "entries": f"{r['entries']:,}",
            "errors": f"{r['errors']:,}", "error rate": _pct(r["error_rate"]), "p50": _ms(lat["p50"]),
            "p95": _ms(lat["p95"]), "p99": _ms(lat["p99"]), "first seen": _short(r["first_seen"]),
            "last seen": _short(r["last_seen"])}


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("COLUMNS", "LINES", "NO_COLOR", "FORCE_COLOR", "TERM", "COLORTERM", "TTY_COMPATIBLE")}
    return env | {"PYTHONIOENCODING": "utf-8"} | extra


def run_piped(*args: str, columns: int, **env: str) -> subprocess.CompletedProcess:
    """The real CLI with stdout a pipe and $COLUMNS set."""
    return subprocess.run([sys.executable, "-m", "logaudit", *map(str, args)], capture_output=True, text=True,
                          env=clean_env(COLUMNS=str(columns), **env), cwd=REPO, timeout=300)


def run_in_terminal(*args: str, columns: int, **env: str) -> tuple[int, str]:
    """The real CLI with stdout a pseudo-terminal `columns` wide (no $COLUMNS): (exit code, output)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    proc = subprocess.Popen([sys.executable, "-m", "logaudit", *map(str, args)], stdin=subprocess.DEVNULL,
                            stdout=slave, stderr=subprocess.DEVNULL, env=clean_env(TERM="xterm-256color", **env),
                            cwd=REPO)
    os.close(slave)
    chunks = []
    while True:
        ready, _, _ = select.select([master], [], [], 300)
        if not ready:
            proc.kill()
            raise AssertionError("no output for 300 s")
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    return proc.wait(timeout=60), b"".join(chunks).decode().replace("\r\n", "\n")


def assert_fits(text: str, width: int) -> None:
    for line in ANSI.sub("", text).splitlines():
        assert cell_len(line) <= width, (width, line)


def entry(second: int, *, service: str = BACKEND, revision: str = CANARY_REVISION, resource_type: str = "cloud_run_revision",
          log: str = "run.googleapis.com%2Fstderr", **fields) -> dict:
    """A LogEntry inside the canary's part of the bundled sample's window."""
    return {"logName": f"projects/netra-staging/logs/{log}",
            "resource": {"type": resource_type, "labels": {"project_id": "netra-staging", "service_name": service,
                                                          "revision_name": revision}},
            "timestamp": f"2025-09-10T03:{second // 60:02d}:{second % 60:02d}.5Z", "insertId": f"render-{second}",
            **fields}


# ============================================================================ stores
@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The bundled sample (what `logaudit demo` shows) and its summary."""
    store, _ = ingest_bundled_sample(tmp_path_factory.mktemp("demo"))
    return store, Audit(store).summary()


def sample_with(folder: Path, entries: list[dict]) -> Store:
    store, _ = ingest_bundled_sample(folder)
    report = store.ingest_entries(entries, "render-test")
    assert (report.new_rows, report.rejected) == (len(entries), 0)
    return store


#: Request logs no Cloud Run service name is known for (cloud-logging-facts §3, §10).
NO_SERVICE_ENTRIES = [
    # an Admin Activity audit entry (tests/fixtures/logentry-samples.json #5) of a revision with a custom name
    entry(1, service="", revision="checkout-blue", log="cloudaudit.googleapis.com%2Factivity", severity="NOTICE",
          protoPayload={"@type": "type.googleapis.com/google.cloud.audit.AuditLog",
                        "methodName": "google.cloud.run.v1.Services.ReplaceService",
                        "authenticationInfo": {"principalEmail": "deployer@example.com"},
                        "resourceName": "namespaces/netra-staging/services/checkout"}),
    # a request log of that revision
    entry(2, service="", revision="checkout-blue", log="run.googleapis.com%2Frequests", severity="ERROR",
          httpRequest={"requestMethod": "POST", "requestUrl": "https://checkout.example.com/pay", "status": 503,
                       "latency": "0.250s"}),
    # an external HTTP(S) load balancer in front of Cloud Run
    entry(3, service="", revision="", resource_type="http_load_balancer", log="requests", severity="WARNING",
          httpRequest={"requestMethod": "GET", "requestUrl": "https://shop.example.com/cart?x=1", "status": 502,
                       "latency": "0.030245s"},
          jsonPayload={"@type": "type.googleapis.com/google.cloud.loadbalancing.type.LoadBalancerLogEntry",
                       "statusDetails": "failed_to_connect_to_backend"}),
    # App Engine
    entry(4, service="", revision="", resource_type="gae_app", log="appengine.googleapis.com%2Frequest_log",
          severity="ERROR", httpRequest={"status": 500},
          protoPayload={"@type": "type.googleapis.com/google.appengine.logging.v1.RequestLog", "method": "GET",
                        "resource": "/api/items?id=7", "status": 500, "latency": "0.123456s"}),
    # Compute Engine (nginx through the Ops agent)
    entry(5, service="", revision="", resource_type="gce_instance", log="nginx_access", severity="INFO",
          httpRequest={"requestMethod": "GET", "requestUrl": "/index.html", "status": 200, "latency": "0.002s"}),
]


@pytest.fixture(scope="module")
def no_service(tmp_path_factory):
    return sample_with(tmp_path_factory.mktemp("noservice"), NO_SERVICE_ENTRIES)


MARKUP_MESSAGES = ["install sentry-sdk[fastapi] to enable", "route [/api/x] failed",
                   "<script>alert(document.cookie)</script> | **not bold** `tick` # not a heading",
                   "- not a list item [link](javascript:alert(x)) &amp; $x$ _under_"]


@pytest.fixture(scope="module")
def markup(tmp_path_factory):
    return sample_with(tmp_path_factory.mktemp("markup"), [
        entry(10 + i, severity="ERROR", textPayload=text) for i, text in enumerate(MARKUP_MESSAGES)])


# ============================================================================ bugs
@pytest.mark.slow
def test_requests_without_a_service_render_in_every_output(no_service, cli, tmp_path):
    outputs = {}
    for fmt in ("text", "json", "markdown"):
        result = cli("summarize", "--store", no_service.root, "--format", fmt, env={"COLUMNS": "80"})
        assert result.exit_code == 0, fmt
        outputs[fmt] = result.stdout
    data = strict_json(outputs["json"])
    assert [(r["service"], r["revision"], r["entries"], r["requests"], r["status_5xx"]) for r in data["revisions"]
            if r["service"] is None] == [(None, "checkout-blue", 2, 1, 1)]
    assert sorted((e["service"], e["method"], e["path"], e["status"]) for e in data["endpoints"]
                  if e["service"] is None) == [(None, "GET", "/api/items", 500), (None, "GET", "/cart", 502),
                                               (None, "GET", "/index.html", 200), (None, "POST", "/pay", 503)]
    assert "NaN" not in outputs["json"]
    text = outputs["text"]
    assert "service (no service)" in text
    assert row_values(text, "checkout-blue") == {"revision": "checkout-blue"} | revision_figures(
        next(r for r in data["revisions"] if r["revision"] == "checkout-blue"))
    md = outputs["markdown"]
    assert not re.search(r"\bnan\b", md, re.IGNORECASE)
    assert "| (no service) | checkout-blue |  | 100.0% | 1 | 0 | 1 | 100.0% | 2 | 1 | 50.0% | 250 ms | 250 ms | 250 ms |" in md
    assert "| (no service) | GET | `/cart` | 502 | 1 |" in md

    result = cli("report", "--store", no_service.root, "--out", tmp_path / "report")
    assert result.exit_code == 0
    report_md = (tmp_path / "report" / "report.md").read_text()
    assert "| (no service) | `checkout-blue` |" in report_md
    html_text, _ = read_html((tmp_path / "report" / "report.html").read_text())
    assert "(no service)" in html_text and not re.search(r"\bnan\b", html_text, re.IGNORECASE)
    assert strict_json((tmp_path / "report" / "summary.json").read_text())["revisions"][-1]["service"] is None


@pytest.mark.slow
def test_log_text_is_never_read_as_markup(markup, cli, tmp_path):
    text = cli("summarize", "--store", markup.root, env={"COLUMNS": "200"}).stdout
    for message in MARKUP_MESSAGES:
        assert f"new unclassified: {message} (1)" in text
    md_text, md_tags = read_markdown(cli("summarize", "--store", markup.root, "--format", "markdown").stdout)
    compare_md = cli("compare", "--store", markup.root, "--format", "markdown").stdout
    compare_plain = cli("compare", "--store", markup.root, env={"COLUMNS": "200"}).stdout
    cmp_text, cmp_tags = read_markdown(compare_md)
    assert cli("report", "--store", markup.root, "--out", tmp_path / "r", "--no-charts").exit_code == 0
    report_text, report_tags = read_html((tmp_path / "r" / "report.html").read_text())
    rep_md_text, rep_md_tags = read_markdown((tmp_path / "r" / "report.md").read_text())
    for message in MARKUP_MESSAGES:
        for name, shown in (("summarize md", md_text), ("compare md", cmp_text), ("compare text", compare_plain),
                            ("report html", report_text), ("report md", rep_md_text)):
            assert message in shown, (name, message)
    for tags in (md_tags, cmp_tags, report_tags, rep_md_tags):
        assert tags <= DOCUMENT_TAGS
        assert "script" not in tags and "a" not in tags
    assert "<script>" not in (tmp_path / "r" / "report.html").read_text()


@pytest.mark.slow
def test_endpoints_that_collided_are_shown_whole(tmp_path):
    for columns in (80, 120, 160):
        result = run_piped("demo", "--store", tmp_path / "demo", columns=columns)
        assert result.returncode == 0
        rows = [[c.strip() for c in line.split("│")] for line in result.stdout.splitlines() if "│" in line]
        assert ["GET", "/api/threads/{id}/messages", "200", "265", "11.6%", "122 ms"] in rows, columns
        assert ["GET", "/api/threads/{id}", "403", "151", "6.6%", "16 ms"] in rows, columns
        for line in result.stdout.splitlines():  # an ellipsis only ends a shortened example (from 160 columns)
            assert "…" not in line or (columns >= 160 and line.rstrip().endswith("…")), line


def _reasons() -> list[str]:
    """19 reasons in compare's order: NOT READY ones first (new critical patterns among them)."""
    return ([f"new critical pattern crit-{i} (Critical {i}): 5 in the canary, none in the baseline (p=0.001)"
             for i in range(7)] + [f"pattern warn-{i} rate High (non-critical): 9.00 per 1k requests vs 1.00"
                                   for i in range(11)] + ["score 40 is below score.not_ready_below 75"])


def test_text_says_how_many_items_it_leaves_out(demo):
    _, summary = demo
    summary = copy.deepcopy(summary)
    summary["verdict"]["reasons"] = _reasons()
    base = summary["endpoints"][0]
    summary["endpoints"] = [base | {"path": f"/ok/{i}", "status": 200, "count": 1000 - i} for i in range(20)] + [
        base | {"path": f"/broken/{i}", "status": 503, "count": 1} for i in range(5)]
    template = summary["unclassified"][0]
    summary["unclassified"] = [template | {"template": f"template {i}", "count": 50 - i} for i in range(12)]
    con = make_console(io.StringIO())
    con.width = 100
    render_text(summary, con)
    text = con.file.getvalue()
    lines = text.splitlines()
    shown = [r for r in _reasons() if f"  - {r}" in lines]
    assert shown == _reasons()[:8]  # every new critical pattern among them
    assert "  ... 11 more reasons (see --format json)" in lines
    paths = {c.strip() for line in lines if "│" in line for c in line.split("│")[1:2]}
    assert {f"/broken/{i}" for i in range(5)} <= paths  # server errors are never the ones left out
    assert len({p for p in paths if p.startswith("/ok/")}) == 15
    assert "... 5 more endpoints (busiest 2xx/3xx left out first) (see --format json)" in lines
    assert "... 2 more templates (see --format json)" in lines
    md = render_markdown(summary)
    assert all(f"- {r}" in md for r in _reasons())  # Markdown lists everything


@pytest.mark.slow
def test_a_window_with_only_the_canary_says_why_there_is_no_verdict(demo, cli):
    store, _ = demo
    args = ("summarize", "--store", store.root, "--since", "2025-09-10T02:30:00Z")
    data = strict_json(cli(*args, "--format", "json").stdout)
    note = ("no service has two revisions in this window: nothing to compare (netra-auth-service: "
            "netra-auth-service-00042-k9p; netra-backend-staging: netra-backend-staging-00317-696)")
    assert (data["verdict"], data["verdict_note"]) == (None, note)
    assert f"no verdict: {note}" in " ".join(cli(*args, env={"COLUMNS": "80"}).stdout.split())
    assert f"**No verdict:** {note}" in cli(*args, "--format", "markdown").stdout
    assert strict_json(cli("summarize", "--store", store.root, "--format", "json").stdout)["verdict_note"] is None


def test_chart_labels_from_the_logs_are_literal(tmp_path):
    import pandas as pd

    from logaudit.present import charts

    # mathtext would read `$\frac{$` as a formula and fail to draw it
    revisions = pd.DataFrame({"service": [None, "svc"], "revision": ["cost-$\\frac{$-1", "svc-00001-abc"],
                              "latency_p50_ms": [1.0, 2.0], "latency_p95_ms": [3.0, 4.0], "latency_p99_ms": [5.0, 6.0]})
    fig = charts.latency_by_revision(revisions)
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["(no service)/cost-$\\frac{$-1", "svc-00001-abc"]
    assert charts.save_png(fig, tmp_path / "latency.png").stat().st_size > 0


# ============================================================================ terminals
@pytest.mark.slow
@pytest.mark.parametrize("columns", [80, 120, 200])
def test_summarize_text_shows_every_figure_whole_at_any_width(demo, columns):
    store, summary = demo
    result = run_piped("summarize", "--store", store.root, columns=columns)
    assert result.returncode == 0
    text = result.stdout
    assert "\x1b" not in text  # not a terminal: plain
    assert_fits(text, columns)
    for r in summary["revisions"]:
        assert revision_rows(text, r["service"], r["revision"]) == revision_figures(r), r["revision"]
    rows = [[c.strip() for c in line.split("│")] for line in text.splitlines() if "│" in line]
    for e in summary["endpoints"]:
        assert [e["method"], e["path"], str(e["status"]), f"{e['count']:,}", _pct(e["share"]),
                _ms(e["latency_p95_ms"])] in rows
    read = squash(readable(text))
    for p in summary["patterns"]:
        assert squash(p["title"]) in read
        assert any(r[1] == f"{p['count']:,}" for r in rows if squash(p["title"]).startswith(squash(r[0])) and r[0])
    for line in text.splitlines():  # an ellipsis only ends a shortened example (shown from 160 columns)
        assert "…" not in line or (columns >= 160 and line.rstrip().endswith("…")), line


@pytest.mark.slow
def test_terminal_output_is_coloured_only_without_no_color(demo):
    store, _ = demo
    piped = run_piped("summarize", "--store", store.root, columns=80).stdout
    code, coloured = run_in_terminal("summarize", "--store", store.root, columns=80)
    assert code == 0 and "\x1b[" in coloured
    assert_fits(coloured, 80)
    assert ANSI.sub("", coloured) == piped  # the terminal's width, the same figures
    code, plain = run_in_terminal("summarize", "--store", store.root, columns=80, NO_COLOR="1")
    assert code == 0 and plain == piped


@pytest.mark.slow
def test_compare_text_fits_and_counts_what_it_hides(demo):
    store, _ = demo
    result = run_piped("compare", "--store", store.root, "--format", "json", columns=80)
    data = strict_json(result.stdout)
    text = run_piped("compare", "--store", store.root, columns=80).stdout
    assert "\x1b" not in text
    assert_fits(text, 80)
    shown = 0
    for m in data["metrics"]:
        values = row_values(text, m["name"] + (" *" if m["critical"] else ""))
        if m["name"].startswith("pattern:") and m["judgement"] == "Pass":
            assert not values
            continue
        shown += 1
        assert values["judgement"] == m["judgement"] and values["metric (* critical)"].startswith(m["name"])
    assert f"... {len(data['metrics']) - shown} more pattern rates Pass (see --all-metrics or --format json)" in text
    assert f"verdict: {data['verdict']}" in text and all(squash(r) in squash(text) for r in data["reasons"])


# ============================================================================ property
_SPECIALS = ["[bold]", "[/x]", "[/]", "[link=https://example.com]click[/link]", "|", "`", "``", "<script>alert(1)</script>",
             "</td>", "&amp;", "*", "_", "# ", "- ", "1. ", "> ", "$x$", "\\", "\x1b[31m", "\x07", "\r", "\t", "\u202e",
             "\u2066", "שלום עולם", "مرحبا", "日本語", "👩‍💻", "\u0301", ":warning:", "{id}", "%s", "\n"]
_text = st.lists(st.one_of(st.sampled_from(_SPECIALS), st.text(max_size=12)), max_size=8).map("".join)
_long = st.integers(1, 40).map(lambda n: "long " * n * 100)
_names = st.one_of(st.none(), st.just(""), st.just(BACKEND), st.just(CANARY_REVISION), st.just(BASELINE_REVISION),
                   st.text(min_size=1, max_size=30), _text.filter(lambda t: 0 < len(t) <= 40))
_latency = st.one_of(st.none(), st.sampled_from(["0.1s", "12s", "NaNs", "infs", "-1s", "1e400s", "abc", ""]),
                     st.floats(allow_nan=True, allow_infinity=True), st.fixed_dictionaries({"seconds": st.integers(0, 10),
                                                                                            "nanos": st.integers(0, 10**9)}))
_http = st.fixed_dictionaries({}, optional={
    "requestMethod": st.one_of(st.sampled_from(["GET", "POST"]), _text), "status": st.one_of(
        st.none(), st.sampled_from([101, 200, 404, 500, 503]), st.integers(-5, 1000), st.just("abc")),
    "requestUrl": st.one_of(st.just("https://x.example/api/[v]/|a|"), _text.map(lambda t: "/p/" + t)),
    "latency": _latency})


@st.composite
def log_entries(draw) -> list[dict]:
    out = []
    for i in range(draw(st.integers(1, 5))):
        labels = {}
        for key in ("service_name", "revision_name"):
            value = draw(_names)
            if value is not None:
                labels[key] = value
        e = {"logName": f"projects/p/logs/{draw(st.sampled_from(['run.googleapis.com%2Fstderr', 'requests']))}",
             "resource": {"type": draw(st.sampled_from(["cloud_run_revision", "http_load_balancer", "gae_app"])),
                          "labels": labels},
             "timestamp": f"2025-09-10T0{draw(st.integers(2, 3))}:{draw(st.integers(20, 59)):02d}:00Z",
             "insertId": f"h{i}-{draw(st.integers(0, 10**9))}"}
        severity = draw(st.one_of(st.none(), st.sampled_from(["ERROR", "WARNING", "warn", "CRITICAL", "bogus", "600"])))
        if severity is not None:
            e["severity"] = severity
        message = draw(st.one_of(_text, _long, st.none()))
        if message is not None:
            e["textPayload"] = message
        if draw(st.booleans()):
            e["httpRequest"] = draw(_http)
        out.append(e)
    return out


#: A service whose name, escaped, folds the "service ..." heading of the revisions at 60 columns.
FOLDED_SERVICE = [
    {"logName": "projects/p/logs/run.googleapis.com%2Fstderr", "resource": {"type": "cloud_run_revision", "labels": {}},
     "timestamp": "2025-09-10T02:23:00Z", "insertId": "h0-3807015", "textPayload": "", "httpRequest": {"latency": None}},
    {"logName": "projects/p/logs/run.googleapis.com%2Fstderr", "resource": {"type": "gae_app", "labels": {
        "service_name": "[bold][bold][bold][bold]\u2066\U0009eb1b\x06\U0002183eôW\x8e[f\x90fó\x93",
        "revision_name": ";\x00ýèôäÅ\x0e\n"}},
     "timestamp": "2025-09-10T03:47:00Z", "insertId": "h2-197816247"},
]


@pytest.fixture(scope="module")
def small_store(tmp_path_factory) -> Path:
    """A small generated deploy (two revisions of a service, one of another), made once."""
    folder = tmp_path_factory.mktemp("small")
    write_sample(folder / "small.jsonl", SampleConfig(entries=600, seed=11))
    store = Store(folder / "store")
    store.ingest_paths([folder / "small.jsonl"])
    Audit(store).summary()  # fill the aggregate caches the copies reuse
    return store.root


def _check_summary_outputs(summary: dict, width: int) -> None:
    strict_json(to_json(summary))
    con = make_console(io.StringIO())
    con.width = width
    render_text(summary, con)
    text = con.file.getvalue()
    assert "\x1b" not in text
    assert_fits(text, width)
    md_text, tags = read_markdown(render_markdown(summary))
    assert tags <= DOCUMENT_TAGS
    # the ids and counts of the JSON, as the text and the rendered Markdown show them
    for shown in (squash(readable(text)), squash(md_text)):
        for service in summary["services"]:
            assert squash(one_line(service)) in shown
        for r in summary["revisions"]:
            assert squash(one_line(r["revision"])) in shown
        for p in summary["patterns"]:
            assert squash(one_line(p["title"])) in shown and f"{p['count']:,}" in shown
        for e in summary["endpoints"][:20]:
            assert squash(one_line(e["path"]) or "-") in shown
        for u in summary["unclassified"][:10]:
            assert squash(one_line(u["template"], 100).rstrip("…")) in shown  # templates are shortened
    for r in summary["revisions"]:  # every per-revision figure, in the revision's own row
        assert revision_rows(text, r["service"], r["revision"]) == revision_figures(r), r["revision"]


def _check_compare_outputs(audit: Audit, width: int) -> None:
    result = compare(audit).to_dict()
    strict_json(to_json(result))
    con = make_console(io.StringIO())
    con.width = width
    compare_text(result, con, all_metrics=True)
    text = con.file.getvalue()
    assert_fits(text, width)
    md_text, tags = read_markdown(compare_markdown(result))
    assert tags <= DOCUMENT_TAGS
    for shown in (squash(readable(text)), squash(md_text)):
        for key in ("service", "baseline", "canary", "verdict"):
            assert squash(one_line(result[key])) in shown
        for m in result["metrics"]:
            assert squash(one_line(m["name"])) in shown
        for p in result["new_patterns"] + result["gone_patterns"]:
            assert squash(one_line(p["id"])) in shown


@pytest.mark.slow
@settings(max_examples=RENDER_EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large])
@given(entries=log_entries(), width=st.sampled_from([60, 80, 120, 200]))
@example(entries=FOLDED_SERVICE, width=60)  # found by CI: a service name folding its heading
def test_property_every_output_renders_whatever_ingest_accepts(small_store, tmp_path_factory, entries, width):
    folder = tmp_path_factory.mktemp("prop")
    shutil.copytree(small_store, folder / "store")
    store = Store(folder / "store")
    store.ingest_entries(entries, "generated")
    audit = Audit(store)
    summary = audit.summary()
    _check_summary_outputs(summary, width)
    _check_compare_outputs(audit, width)
    result = build_report(audit, out_dir=folder / "report", with_charts=False)
    strict_json(result.summary_path.read_text())
    html_text, html_tags = read_html(result.html.read_text())
    md_text, md_tags = read_markdown(result.markdown.read_text())
    assert html_tags <= DOCUMENT_TAGS and md_tags <= DOCUMENT_TAGS
    for shown in (squash(html_text), squash(md_text)):
        for r in summary["revisions"]:
            assert squash(one_line(r["revision"])) in shown, (r["revision"], result.markdown.read_text())
        for p in summary["patterns"]:
            assert squash(one_line(p["title"])) in shown
    audit.close()
    shutil.rmtree(folder)
