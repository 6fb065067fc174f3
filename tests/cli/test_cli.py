"""One CLI, one set of conventions: exit codes, `--format json`, `--catalog`, unknown filters, bugs.

The exit codes are those of `logaudit.errors.ExitCode`, documented in docs/cli.md and README.
"""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

import click
import pytest
from conftest import REPO, ingest_bundled_sample

from logaudit.analysis.audit import Audit
from logaudit.cli import main
from logaudit.core.errors import ExitCode, UnknownFilterError

SINCE, UNTIL = "2025-09-09T20:00:00Z", "2025-09-10T04:00:00Z"
BACKEND, AUTH = "netra-backend-staging", "netra-auth-service"
SERVICES_HINT = f"  hint: services in this window: {AUTH}, {BACKEND}\n"
TYPO = "netra-backend-stagin"


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    store, _ = ingest_bundled_sample(tmp_path_factory.mktemp("cli"))
    return store.root


def leaf_commands() -> list[tuple[str, ...]]:
    """Every command path of `logaudit`, e.g. ("store", "info")."""
    ctx = click.Context(main)
    out = []
    for name in main.list_commands(ctx):
        cmd = main.get_command(ctx, name)
        if isinstance(cmd, click.Group):
            out += [(name, sub) for sub in cmd.list_commands(ctx)]
        else:
            out.append((name,))
    return out


# ------------------------------------------------------------------------------ exit codes
def test_exit_codes_are_the_documented_ones():
    assert {c.name: c.value for c in ExitCode} == {
        "OK": 0, "MARGINAL": 1, "NOT_READY": 2, "INPUT": 3, "CATALOG": 4, "SOURCE": 5, "LOCKED": 6, "PARTIAL": 7,
        "USAGE": 64, "INTERNAL": 70, "INTERRUPTED": 130}


def test_an_unknown_option_is_exit_64_for_every_command(cli):
    for path in leaf_commands():  # listed when the test runs: loading every command is not for collection
        result = cli(*path, "--no-such-option")
        assert result.exit_code == 64, (path, result.output)
        assert "Error: No such option '--no-such-option'." in result.stderr, path


def test_click_usage_errors_are_exit_64(cli, store):
    cases = {
        ("nosuch",): "Error: No such command 'nosuch'.",
        ("summarize", "--store", store, "--format", "yaml"): "Error: Invalid value for '--format': 'yaml' is not one of",
        ("pull",): "Error: Missing option '--project' / '-p'.",
        ("export", "--store", store): "Error: Missing option '--out'.",
        ("summarize", "--catalog", "/no/such/catalog"): "Error: Invalid value for '--catalog': Path '/no/such/catalog' does not exist.",
        ("ingest",): "Error: Missing argument 'PATHS...'.",
    }
    for args, message in cases.items():
        result = cli(*args)
        assert result.exit_code == 64, (args, result.output)
        assert message in result.stderr, (args, result.stderr)


def test_our_usage_errors_are_exit_64_and_compare_keeps_its_verdicts(cli, store):
    bad_since = cli("summarize", "--store", store, "--since", "yesterday-ish")
    assert bad_since.exit_code == 64 and bad_since.stderr.startswith("error: --since 'yesterday-ish': not a time")
    nothing = cli("compare", "--store", store, "--since", "2030-01-01T00:00:00Z")
    assert nothing.exit_code == 64
    assert nothing.stderr.startswith("error: no Cloud Run revisions in this window: nothing to compare")
    verdict = cli("compare", "--store", store, "--service", BACKEND, "--format", "json")
    assert verdict.exit_code == {"READY": 0, "MARGINAL": 1, "NOT READY": 2}[json.loads(verdict.stdout)["verdict"]]


# ------------------------------------------------------------------------------ --format json
@pytest.mark.slow
def test_every_reporting_command_takes_format_json(cli, store, tmp_path):
    small = tmp_path / "small.jsonl"
    small.write_text(json.dumps(json.loads((REPO / "tests/fixtures/logentry-samples.json").read_text())[0]) + "\n")
    runs = {
        "summarize": (["summarize", "--store", store], {0}),
        "compare": (["compare", "--store", store, "--service", BACKEND], {0, 1, 2}),
        "report": (["report", "--store", store, "--since", SINCE, "--until", UNTIL, "--out", tmp_path / "r"], {0}),
        "export": (["export", "--store", store, "--since", SINCE, "--until", UNTIL, "--service", AUTH,
                    "--out", tmp_path / "e"], {0}),
        "store info": (["store", "info", "--store", store], {0}),
        "store check": (["store", "check", "--store", store, "--quick"], {0}),
        "store repair": (["store", "repair", "--store", tmp_path / "s"], {3}),
        "classify": (["classify", "--store", store], {0}),
        "catalog check": (["catalog", "check"], {0}),
        "catalog test": (["catalog", "test"], {0}),
        "ingest": (["ingest", small, "--store", tmp_path / "s"], {0}),
        "pull": (["pull", "-p", "my-project", "--since", SINCE, "--until", UNTIL, "--dry-run",
                  "--store", tmp_path / "p"], {0}),
        "demo": (["demo", "--store", tmp_path / "d"], {0}),
        "store clear-cache": (["store", "clear-cache", "--store", tmp_path / "d"], {0}),  # after demo made it
    }
    for name, (args, codes) in runs.items():
        result = cli(*args, "--format", "json")
        assert result.exit_code in codes, (name, result.output)
        if result.exit_code == 0 or name == "compare":
            assert isinstance(json.loads(result.stdout), dict), name
    reporting = {" ".join(p) for p in leaf_commands()} - {"sample"}  # sample writes logs; its --format is theirs
    assert reporting == set(runs)


@pytest.mark.slow
def test_report_prints_what_it_wrote_as_json(cli, store, tmp_path):
    result = cli("report", "--store", store, "--since", SINCE, "--until", UNTIL, "--service", BACKEND,
                 "--out", tmp_path / "r", "--format", "json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    out = tmp_path / "r"
    summary = json.loads((out / "summary.json").read_text())
    assert set(doc) == {"out_dir", "summary", "markdown", "html", "charts", "checklist", "generated_at", "bucket", "catalogs",
                        "entries", "verdict", "window", "services"}
    assert (doc["out_dir"], doc["summary"], doc["markdown"], doc["html"]) == (
        str(out), str(out / "summary.json"), str(out / "report.md"), str(out / "report.html"))
    assert sorted(doc["charts"].values()) == sorted(str(p) for p in (out / "charts").glob("*.png"))
    assert (doc["entries"], doc["window"], doc["services"]) == (4242, {"since": SINCE, "until": UNTIL}, [BACKEND])
    assert doc["verdict"] == (summary["verdict"] or {}).get("verdict")
    old = cli("report", "--store", store, "--since", SINCE, "--until", UNTIL, "--service", BACKEND,
              "--out", tmp_path / "r", "--json")  # the old spelling still works
    assert old.exit_code == 0
    assert {k: v for k, v in json.loads(old.stdout).items() if k != "generated_at"} == \
        {k: v for k, v in doc.items() if k != "generated_at"}


@pytest.mark.slow
def test_report_documents_are_chosen_with_report_format(cli, store, tmp_path):
    new = cli("report", "--store", store, "--out", tmp_path / "new", "--report-format", "md")
    assert new.exit_code == 0 and new.stderr == ""
    assert sorted(p.name for p in (tmp_path / "new").iterdir()) == ["charts", "report.md", "summary.json"]
    old = cli("report", "--store", store, "--out", tmp_path / "old", "--format", "html")  # the old meaning of --format
    assert old.exit_code == 0
    assert old.stderr == "note: --format html is deprecated: use --report-format html (--format is text or json)\n"
    assert sorted(p.name for p in (tmp_path / "old").iterdir()) == ["charts", "report.html", "summary.json"]
    both = cli("report", "--store", store, "--out", tmp_path / "both", "--format", "md", "--report-format", "html")
    assert both.exit_code == 64
    assert both.stderr == ("error: --format 'md' and --report-format 'html': give the documents once, "
                           "with --report-format\n")
    bad = cli("report", "--store", store, "--out", tmp_path / "bad", "--format", "pdf")
    assert bad.exit_code == 64
    assert bad.stderr == ("error: --format 'pdf': not an output format\n  hint: --format text or json; the documents "
                          "to write are chosen with --report-format md, html or md,html\n")
    assert not (tmp_path / "both").exists() and not (tmp_path / "bad").exists()


# ------------------------------------------------------------------------------ --catalog
def test_classify_takes_catalog_like_the_other_commands(cli, store):
    new = cli("classify", "--store", store, "--catalog", REPO / "patterns", "--format", "json")
    old = cli("classify", "--store", store, "--patterns", REPO / "patterns", "--format", "json")
    assert (new.exit_code, old.exit_code) == (0, 0), new.output + old.output
    strip = ("seconds", "workers")
    assert {k: v for k, v in json.loads(new.stdout).items() if k not in strip} == \
        {k: v for k, v in json.loads(old.stdout).items() if k not in strip}
    assert json.loads(new.stdout)["matches"]
    helps = cli("classify", "--help").stdout
    assert "--catalog" in helps and "--patterns" not in helps


# ------------------------------------------------------------------------------ unknown --service / --revision
def test_a_misspelled_service_is_a_usage_error_naming_the_services(cli, store, tmp_path):
    message = f"error: --service '{TYPO}': the store holds no entry of this service\n"
    for fmt in ("text", "json"):
        result = cli("summarize", "--store", store, "--service", TYPO, "--format", fmt)
        assert (result.exit_code, result.stdout, result.stderr) == (64, "", message + SERVICES_HINT)
    report = cli("report", "--store", store, "--service", TYPO, "--out", tmp_path / "r")
    assert (report.exit_code, report.stderr) == (64, message + SERVICES_HINT)
    assert not (tmp_path / "r").exists()
    export = cli("export", "--store", store, "--since", SINCE, "--until", UNTIL, "--service", TYPO,
                 "--out", tmp_path / "e")
    assert export.exit_code == 64
    assert export.stderr == (f"error: export failed: --service '{TYPO}': the store holds no entry of this service "
                             f"(hint: services in this window: {AUTH}, {BACKEND})\n")
    assert not list((tmp_path / "e").glob("*/*"))
    empty_window = cli("summarize", "--store", store, "--service", TYPO, "--since", "2030-01-01T00:00:00Z")
    assert (empty_window.exit_code, empty_window.stderr) == (
        64, message + f"  hint: no services in this window; in the store: {AUTH}, {BACKEND}\n")


def test_a_known_service_outside_the_window_is_an_empty_window(cli, store):
    result = cli("summarize", "--store", store, "--service", BACKEND, "--since", "2030-01-01T00:00:00Z",
                 "--format", "json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["entries"] == 0


def test_a_misspelled_revision_names_the_revisions(cli, store):
    canary = f"{BACKEND}-00317-696"
    with_service = cli("summarize", "--store", store, "--service", BACKEND, "--revision", "nope")
    assert (with_service.exit_code, with_service.stderr) == (64, (
        f"error: --revision 'nope': the store holds no entry of this revision of service '{BACKEND}'\n"
        f"  hint: revisions of {BACKEND} in this window: {BACKEND}-00316-m2x, {canary}\n"))
    other_service = cli("summarize", "--store", store, "--service", AUTH, "--revision", canary)
    assert other_service.exit_code == 64
    assert other_service.stderr.splitlines()[1] == f"  hint: revisions of {AUTH} in this window: {AUTH}-00042-k9p"
    alone = cli("summarize", "--store", store, "--revision", "nope")
    assert (alone.exit_code, alone.stderr) == (64, (
        "error: --revision 'nope': the store holds no entry of this revision\n"
        f"  hint: revisions in this window: {AUTH}: {AUTH}-00042-k9p; {BACKEND}: {BACKEND}-00316-m2x, {canary}\n"))
    ok = cli("summarize", "--store", store, "--revision", canary, "--format", "json")
    assert ok.exit_code == 0 and json.loads(ok.stdout)["filters"]["revision"] == canary


def test_notebooks_get_the_same_error_from_the_library(store):
    audit = Audit(store)
    with pytest.raises(UnknownFilterError) as info:
        audit.timeline("1h", since=SINCE, until=UNTIL, service=TYPO)
    err = info.value
    assert (err.exit_code, err.option, err.value, err.choices, err.stored) == (
        64, "--service", TYPO, [AUTH, BACKEND], [AUTH, BACKEND])
    with pytest.raises(UnknownFilterError) as info:
        audit.summary(service=BACKEND, revision="nope")
    assert (info.value.option, info.value.choices) == ("--revision", [f"{BACKEND}-00316-m2x", f"{BACKEND}-00317-696"])
    assert audit.window(SINCE, UNTIL, BACKEND).service == BACKEND


# ------------------------------------------------------------------------------ bugs and interrupts
SECRET = "password=hunter2secret"


def _boom(*args, **kwargs):
    raise ZeroDivisionError(f"division by zero near {SECRET}")


@pytest.fixture
def bug(monkeypatch, tmp_path):
    """Audit.summary fails with an exception nothing expects; tracebacks go to tmp_path."""
    monkeypatch.setattr(Audit, "summary", _boom)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


def test_an_unexpected_exception_is_one_line_and_exit_70(cli, store, bug):
    result = cli("summarize", "--store", store)
    assert result.exit_code == 70 and result.stdout == ""
    [line] = result.stderr.splitlines()
    match = re.fullmatch(r"error: internal error \(a bug in logaudit, please report it\): ZeroDivisionError: "
                         r"division by zero near password=<redacted>; traceback in (\S+) "
                         r"\(`logaudit --debug \.\.\.` prints it\)", line)
    assert match, line
    saved = Path(match[1])
    assert saved.parent == bug and saved.stat().st_mode & 0o777 == 0o600
    text = saved.read_text()
    assert text.splitlines()[2] == f"command: logaudit summarize --store {store}"
    assert "Traceback (most recent call last):" in text and 'raise ZeroDivisionError(f"division by zero' in text
    assert "hunter2secret" not in text + result.stderr


def test_debug_prints_the_traceback_too(cli, store, bug):
    for args, env in (((), {"LOGAUDIT_DEBUG": "1"}), (("--debug",), None)):
        result = cli(*args, "summarize", "--store", store, env=env)
        assert result.exit_code == 70
        assert result.stderr.startswith("Traceback (most recent call last):")
        assert result.stderr.splitlines()[-1].startswith("error: internal error (a bug in logaudit, please report it)")
        assert "--debug ...` prints it" not in result.stderr and "hunter2secret" not in result.stderr


def test_a_bug_in_export_is_exit_70_not_a_store_problem(cli, store, bug, tmp_path):
    result = cli("export", "--store", store, "--since", SINCE, "--until", UNTIL, "--out", tmp_path / "e")
    assert result.exit_code == 70
    [line] = result.stderr.splitlines()
    assert line.startswith("error: export failed: internal error (a bug in logaudit, please report it): "
                           "ZeroDivisionError: division by zero near password=<redacted>; traceback in ")


def test_ctrl_c_is_exit_130(cli, store, monkeypatch, tmp_path):
    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(Audit, "summary", interrupt)
    for args in (["summarize"], ["report", "--out", tmp_path / "r"]):
        result = cli(*args, "--store", store)
        assert (result.exit_code, result.stderr) == (130, "interrupted\n"), args


# ------------------------------------------------------------------------------ the documented table
def _table(text: str, heading: str) -> list[list[str]]:
    """The rows of the first Markdown table after `heading`, header and rule left out."""
    rows, started = [], False
    for line in text[text.index(heading):].splitlines()[1:]:
        if line.startswith("|"):
            started = True
            rows.append([cell.strip() for cell in line.strip("|").split("|")])
        elif started:
            break
    return rows[2:]


def test_readme_and_docs_document_every_code_and_every_command():
    codes = sorted(int(c) for c in ExitCode)
    cli_md = (REPO / "docs/cli.md").read_text()
    readme = (REPO / "README.md").read_text()
    assert [int(r[0]) for r in _table(cli_md, "## Exit codes")] == codes
    assert [int(r[0]) for r in _table(readme, "## Exit codes")] == codes
    header = next(line for line in cli_md.splitlines() if line.startswith("| command | 0 |"))
    assert [int(c) for c in header.strip("|").split("|")[1:]] == codes
    matrix = _table(cli_md, "Which command returns which:")
    documented = {name.strip("` ") for row in matrix for name in row[0].split(",")}
    assert documented == {" ".join(p) for p in leaf_commands()}
    assert all(row[1] == "✓" and row[-3:] == ["✓", "✓", "✓"] for row in matrix)  # 0, 64, 70, 130: every command
