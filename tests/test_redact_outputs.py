"""No secret of the corpus (tests/fixtures/secrets-corpus.yaml) leaves logaudit in any output.

A store is made from the corpus through the CLI: every line as a textPayload (with the line as a
label value too), as a jsonPayload message with the line again in a nested field, the structured
payloads as jsonPayload fields, the URLs as request logs; each service has a baseline and a
canary revision. Then every output is checked: summarize (text, JSON, Markdown), report
(Markdown, HTML, summary.json, charts), export (entries.parquet read back, every file),
compare (text, JSON, Markdown), `Audit` (sql, unclassified, pattern entries), and ingest
rejects (stored, --format json, stderr). Each line carries a marker word, so the test also sees
that the line really was shown.
"""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from logaudit.analysis.audit import Audit
from logaudit.core.redact import Redactor

CORPUS = yaml.safe_load((Path(__file__).parent / "fixtures" / "secrets-corpus.yaml").read_text())
LINES = CORPUS["secrets"]
SECRETS = sorted({s for c in LINES + CORPUS["structured"] + CORPUS["urls"] for s in c["secrets"]})
REJECTED_SECRETS = ["RejectPw1secret", "ghp_RejectedTokenStraddlingTheCut0123456", "rejTok2value"]
#: services: the summary lists at most 50 templates, so the lines are spread over four
HALF = len(LINES) // 2
SERVICES = {"text-a": LINES[:HALF], "text-b": LINES[HALF:], "json-a": LINES[:HALF], "json-b": LINES[HALF:]}
CATALOG = """catalog: redaction-test
version: 1
patterns:
  - id: boot
    title: Worker booted
    category: positive
    regex: 'worker booted'
    examples: ['worker booted']
"""


def marker(i: int) -> str:
    """A word templates keep (letters only, no digits) that tells which line this is."""
    return "mk" + "".join(chr(97 + d) for d in (i // 26, i % 26))


def _entry(service: str, revision: str, second: int, **fields) -> dict:
    return {"logName": f"projects/p/logs/run.googleapis.com%2F{'requests' if 'httpRequest' in fields else 'stderr'}",
            "resource": {"type": "cloud_run_revision",
                         "labels": {"project_id": "p", "service_name": service, "revision_name": revision,
                                    "configuration_name": service, "location": "europe-west1"}},
            "timestamp": f"2026-03-02T{10 + second // 3600:02d}:{second // 60 % 60:02d}:{second % 60:02d}Z",
            "insertId": f"{service}-{revision}-{second}", "severity": "ERROR", **fields}


def _entries() -> list[dict]:
    out = []
    for service, lines in SERVICES.items():
        out += [_entry(service, f"{service}-00001-old", s, textPayload="worker booted") for s in range(3)]
        canary = f"{service}-00002-new"
        for j, case in enumerate(lines):
            i = LINES.index(case)
            text = f"{marker(i)} {case['line']}"
            if service.startswith("text"):
                out.append(_entry(service, canary, 100 + j, textPayload=text,
                                  labels={"instanceId": "00a1", "note": case["line"]}))
            else:
                out.append(_entry(service, canary, 100 + j, jsonPayload={
                    "message": text, "context": {"request": {"detail": case["line"]}}}))
    for j, case in enumerate(CORPUS["structured"]):
        out.append(_entry("json-b", "json-b-00002-new", 500 + j, jsonPayload={"message": f"structured {case['id']}",
                                                                           **case["payload"]}))
    for j, case in enumerate(CORPUS["urls"]):
        out.append(_entry("req", "req-00001-old", j, httpRequest={"requestMethod": "GET", "status": 200,
                                                                  "requestUrl": "https://api.example.run.app/ok"}))
        out.append(_entry("req", "req-00002-new", 100 + j, httpRequest={"requestMethod": "GET", "status": 500,
                                                                        "requestUrl": case["url"], "latency": "0.2s"}))
    return out


def _leaks(text: str) -> list[str]:
    return [s for s in SECRETS + REJECTED_SECRETS if s in text]


def _strings(value) -> str:
    """Every string inside a parsed JSON value, joined (what a reader of the JSON sees)."""
    if isinstance(value, str):
        return value + "\n"
    if isinstance(value, dict):
        return "".join(_strings(k) + _strings(v) for k, v in value.items())
    if isinstance(value, list):
        return "".join(_strings(v) for v in value)
    return ""


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from click.testing import CliRunner

    from logaudit.cli import main

    root = tmp_path_factory.mktemp("redact-outputs")
    runner = CliRunner()

    def cli(*args: object, env: dict | None = None):
        return runner.invoke(main, [str(a) for a in args], env=env, catch_exceptions=False)

    (root / "catalog.yaml").write_text(CATALOG)
    logs = root / "corpus.jsonl"
    logs.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in _entries()))
    store = root / "store"
    ingest = cli("ingest", logs, "--store", store, "--quiet")
    assert ingest.exit_code == 0, ingest.output
    return {"root": root, "store": store, "cli": cli, "catalog": root / "catalog.yaml"}


def test_the_store_really_holds_every_secret(world):
    audit = Audit(world["store"], [str(world["catalog"])])
    raw = audit.sql("SELECT * FROM entries", redact=False).to_json(date_format="iso")
    assert not [s for s in SECRETS if s not in raw.replace("\\/", "/")]  # each secret is there to leak
    assert not _leaks(audit.sql("SELECT * FROM entries").to_json(date_format="iso").replace("\\/", "/"))


@pytest.mark.parametrize("service", [*SERVICES, "req"])
def test_summarize_shows_every_line_and_no_secret(world, service):
    cli, store, catalog = world["cli"], world["store"], world["catalog"]
    outputs = {fmt: cli("summarize", "--store", store, "--no-shipped-catalogs", "--catalog", catalog, "--service", service, "--format", fmt)
               for fmt in ("json", "markdown", "text")}
    assert {fmt: r.exit_code for fmt, r in outputs.items()} == {"json": 0, "markdown": 0, "text": 0}
    summary = json.loads(outputs["json"].stdout)
    for fmt, result in outputs.items():
        assert _leaks(result.stdout) == [], fmt
    assert _leaks(_strings(summary)) == []
    if service == "req":
        paths = {e["path"] for e in summary["endpoints"]}
        assert "/users/<redacted:email>/profile" in paths and "/internal/health" in paths
        return
    shown = _strings(summary)
    lines = SERVICES[service]
    assert [c["id"] for c in lines if marker(LINES.index(c)) not in shown] == []  # every line was displayed
    # each example is the whole message, redacted as the rules say
    examples = {u["example"] for u in summary["unclassified"]}
    assert {Redactor().redact(f"{marker(LINES.index(c))} {c['line']}") for c in lines} <= examples


def test_the_report_and_its_charts_hold_no_secret(world):
    cli = world["cli"]
    for service in SERVICES:
        out = world["root"] / f"report-{service}"
        result = cli("report", "--store", world["store"], "--no-shipped-catalogs", "--catalog", world["catalog"], "--service", service,
                     "--out", out)
        assert result.exit_code == 0, result.output
        md = (out / "report.md").read_text()
        html = (out / "report.html").read_text()
        assert _leaks(md) == [] and _leaks(html) == [] and _leaks((out / "summary.json").read_text()) == []
        for png in (out / "charts").glob("*.png"):
            assert _leaks(png.read_bytes().decode("latin-1")) == [], png.name
        assert "<redacted" in md and "&lt;redacted" in html  # the lines are in the report, redacted
        shown = sum(marker(LINES.index(c)) in md for c in SERVICES[service])
        assert shown == len(SERVICES[service])


def test_the_exported_parquet_and_files_hold_no_secret_and_stay_valid_json(world):
    dest = world["root"] / "export"
    result = world["cli"]("export", "--store", world["store"], "--no-shipped-catalogs", "--catalog", world["catalog"], "--out", dest,
                          "--since", "2026-03-02T00:00:00Z", "--until", "2026-03-03T00:00:00Z", "--quiet")
    assert result.exit_code == 0, result.output
    files = sorted(p for p in dest.rglob("*") if p.is_file())
    assert {p.parent.parent.name for p in files if p.name == "entries.parquet"} == {*SERVICES, "req"}
    redactor = Redactor()
    for path in files:
        if path.suffix == ".parquet":
            table = pq.read_table(path)
            for name in table.column_names:
                if pa.types.is_string(table.schema.field(name).type):
                    assert _leaks("\n".join(v for v in table[name].to_pylist() if v)) == [], (path.parent.parent.name, name)
            for name in ("payload_json", "labels_json"):
                if name in table.column_names:
                    for value in table[name].to_pylist():
                        if value is not None:
                            json.loads(value)  # redaction left the JSON valid
            if path.name == "entries.parquet" and "message" in table.column_names:
                messages = table["message"].to_pylist()
                originals = {f"{marker(LINES.index(c))} {c['line']}" for c in LINES}
                assert all(m not in originals for m in messages)
                assert any("<redacted" in (m or "") for m in messages) or path.parent.parent.name == "req"
        else:
            assert _leaks(path.read_bytes().decode("latin-1")) == [], path.name
    urls = pq.read_table(dest / "req" / next(p.name for p in (dest / "req").iterdir()) / "entries.parquet")["http_url"]
    assert redactor.redact_all(c["url"] for c in CORPUS["urls"]) == \
        [u for u in urls.to_pylist() if "example.run.app/ok" not in u]


@pytest.mark.parametrize("service", ["text-a", "json-b"])
def test_compare_holds_no_secret(world, service):
    cli = world["cli"]
    for fmt in ("json", "text", "markdown"):
        result = cli("compare", "--store", world["store"], "--no-shipped-catalogs", "--catalog", world["catalog"], "--service", service,
                     "--format", fmt)
        assert result.exit_code in (0, 1, 2), result.output
        assert _leaks(result.stdout) == [], fmt
        if fmt == "json":
            doc = json.loads(result.stdout)
            assert len(doc["new_templates"]) >= len(SERVICES[service]) // 2
            assert _leaks(_strings(doc)) == []


def test_audit_methods_return_redacted_text(world):
    audit = Audit(world["store"], [str(world["catalog"])])
    frames = [audit.sql("SELECT * FROM entries"), audit.unclassified(limit=None), audit.patterns(),
              audit.pattern_entries("boot"), audit.endpoints()]
    for df in frames:
        assert _leaks(df.to_json(date_format="iso")) == []
    raw = Audit(world["store"], [str(world["catalog"])], redactor=Redactor(enabled=False))
    assert len(_leaks(raw.unclassified(limit=None).to_json(date_format="iso"))) > 10  # opting out shows the stored text


def test_rejected_lines_are_listed_redacted(world, tmp_path):
    cli = world["cli"]
    bad = tmp_path / "bad.jsonl"
    long_line = "x" * 185 + ' "ghp_RejectedTokenStraddlingTheCut0123456 and more'  # the token crosses char 200
    bad.write_text("\n".join([
        '{"broken": "DB_PASSWORD=RejectPw1secret is not JSON"',
        orjson.dumps({"logName": "projects/p/logs/x", "textPayload": "token=rejTok2value"}).decode(),
        long_line,
    ]) + "\n")
    store = tmp_path / "store"
    as_json = cli("ingest", bad, "--store", store, "--format", "json")
    as_text = cli("ingest", bad, "--store", tmp_path / "store2", "--quiet")
    assert (as_json.exit_code, as_text.exit_code) == (7, 7)  # rejected input, the rest stored
    rejects = json.loads(as_json.stdout)["rejects"]
    stored = [json.loads(x) for f in (store / "rejects").glob("*.jsonl") for x in f.read_text().splitlines()]
    assert stored == rejects
    assert [(r["position"], r["reason"]) for r in rejects] == [
        (1, "not valid JSON"), (2, "no timestamp and no receiveTimestamp"), (3, "not valid JSON")]
    assert [r["text"] for r in rejects][:2] == ['{"broken": "DB_PASSWORD=<redacted> is not JSON"',
                                                '{"logName":"projects/p/logs/x","textPayload":"token=<redacted>"}']
    # redacted before it was cut at 200 characters: no piece of the token is left
    assert rejects[2]["text"] == "x" * 185 + ' "<redacted:\u2026'
    for text in (as_json.stdout, as_text.stderr, as_text.stdout):
        assert _leaks(text) == []
