"""Which catalogs a run uses: the shipped ones (package data, whatever the working directory),
plus the local ones asked for (`--catalog`, LOGAUDIT_CATALOG), or only those
(`--no-shipped-catalogs`); and every output says which."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import ingest_bundled_sample

from logaudit.catalog.catalog import CatalogLoadError, default_catalog_paths, load_catalogs
from logaudit.core.errors import UsageError

REPO = Path(__file__).resolve().parents[2]
SHIPPED = ["cloud_run.yaml", "netra_backend.yaml"]
#: patterns in each shipped catalog
SHIPPED_PATTERNS = {"cloud-run": 60, "netra-backend": 24}
SHIPPED_LINE = "cloud-run (shipped, 60 patterns), netra-backend (shipped, 24 patterns)"

#: A team catalog: one new pattern (30 matches in the sample) and one replacing a shipped pattern.
TEAM = """\
catalog: team
version: 1
patterns:
  - id: redis-connection-retry
    title: Redis connection retried
    category: warning
    regex: 'Retrying Redis connection to (?P<host>[\\d.]+)'
  - id: ws-auth-failure
    override: true
    title: WebSocket auth failure (expected in staging)
    category: info
    regex: '\\bHANDLING AUTH FAILURE: '
"""
#: A catalog that stands alone (no override).
ALONE = """\
catalog: alone
version: 1
patterns:
  - {id: redis-connection-retry, title: Redis connection retried, category: warning, regex: 'Retrying Redis connection'}
"""


@pytest.fixture(autouse=True)
def _no_catalog_env(monkeypatch):
    for name in ("LOGAUDIT_CATALOG", "LOGAUDIT_NO_SHIPPED_CATALOGS", "LOGAUDIT_PATTERNS"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    store, _ = ingest_bundled_sample(tmp_path_factory.mktemp("selection"))
    return store.root


#: A terminal wide enough for the catalogs line not to wrap.
WIDE = {"COLUMNS": "1000"}


def cli(*args: object, env: dict | None = None):
    from logaudit.cli import main

    return CliRunner().invoke(main, [str(a) for a in args], env=env, catch_exceptions=False)


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text)
    return folder / name


def shipped_catalogs() -> list[dict]:
    """What the outputs say about the shipped catalogs: fingerprints as each file's own."""
    return [{"name": name, "origin": "shipped", "path": None, "resource": f"logaudit.shipped.patterns/{file}",
             "patterns": SHIPPED_PATTERNS[name], "overrides": 0,
             "fingerprint": load_catalogs([REPO / "patterns" / file]).fingerprint}
            for name, file in (("cloud-run", "cloud_run.yaml"), ("netra-backend", "netra_backend.yaml"))]


def test_a_patterns_folder_in_the_working_directory_is_not_a_catalog(tmp_path, monkeypatch):
    write(tmp_path / "patterns", "mine.yaml", ALONE)
    monkeypatch.chdir(tmp_path)
    assert [p.name for p in default_catalog_paths()] == SHIPPED
    assert [(s.name, s.origin) for s in load_catalogs().sources] == [("cloud-run", "shipped"), ("netra-backend", "shipped")]
    result = cli("catalog", "check")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[:2] == ["logaudit.shipped.patterns/cloud_run.yaml: catalog cloud-run (shipped), 60 patterns",
                                              "logaudit.shipped.patterns/netra_backend.yaml: catalog netra-backend (shipped), 24 patterns"]
    assert result.output.splitlines()[-1] == "ok: 84 patterns in 2 catalog(s)"


def test_the_shipped_files_named_again_are_loaded_once():
    assert [p.name for p in default_catalog_paths([REPO / "patterns"])] == SHIPPED
    assert [p.name for p in default_catalog_paths([REPO / "patterns" / "cloud_run.yaml"])] == SHIPPED


@pytest.mark.slow
def test_local_catalogs_are_added_to_the_shipped_ones(store, tmp_path):
    team = write(tmp_path, "team.yaml", TEAM)
    result = cli("summarize", "--store", store, "--catalog", team, "--format", "json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    got = summary["catalogs"]
    assert got[:2] == shipped_catalogs()
    assert {k: v for k, v in got[2].items() if k != "fingerprint"} == {
        "name": "team", "origin": "local", "path": str(team), "resource": None, "patterns": 2, "overrides": 1}
    by_id = {p["id"]: p for p in summary["patterns"]}
    assert by_id["redis-connection-retry"]["count"] == 30
    assert (by_id["ws-auth-failure"]["title"], by_id["ws-auth-failure"]["category"], by_id["ws-auth-failure"]["count"]) == (
        "WebSocket auth failure (expected in staging)", "info", 23)
    assert "dependency-validation-failed" in by_id  # the shipped patterns still classify
    # the same from the environment, and the fingerprint follows the file's patterns
    env_run = json.loads(cli("summarize", "--store", store, "--format", "json",
                             env={"LOGAUDIT_CATALOG": str(team)}).stdout)
    assert env_run["catalogs"] == got
    write(tmp_path, "team.yaml", TEAM.replace("to (?P<host>", "to  ?(?P<host>"))
    edited = json.loads(cli("summarize", "--store", store, "--catalog", team, "--format", "json").stdout)["catalogs"]
    assert edited[:2] == got[:2] and edited[2]["fingerprint"] != got[2]["fingerprint"]


@pytest.mark.slow
def test_text_and_markdown_say_which_catalogs_in_one_line(store, tmp_path):
    team = write(tmp_path, "team.yaml", TEAM)
    line = f"{SHIPPED_LINE}, team (local {team}, 2 patterns, 1 override)"
    text = cli("summarize", "--store", store, "--catalog", team, env=WIDE).stdout.splitlines()
    assert [t for t in text if t.startswith("catalogs:")] == [f"catalogs: {line}"]
    # in a narrower terminal the line wraps (nothing is cut): the words are all there
    narrow = cli("summarize", "--store", store, "--catalog", team, env={"COLUMNS": "80"}).stdout.splitlines()
    at = next(i for i, t in enumerate(narrow) if t.startswith("catalogs:"))
    assert "".join(narrow[at:]).replace(" ", "").startswith(f"catalogs: {line}".replace(" ", ""))
    assert max(len(t) for t in narrow) <= 80
    markdown = cli("summarize", "--store", store, "--catalog", team, "--format", "markdown").stdout.splitlines()
    assert [t for t in markdown if t.startswith("Catalogs:")] == [f"Catalogs: {line}"]
    plain = cli("summarize", "--store", store, env=WIDE).stdout.splitlines()
    assert [t for t in plain if t.startswith("catalogs:")] == [f"catalogs: {SHIPPED_LINE}"]


@pytest.mark.slow
def test_compare_and_report_say_which_catalogs(store, tmp_path):
    team = write(tmp_path, "team.yaml", TEAM)
    line = f"{SHIPPED_LINE}, team (local {team}, 2 patterns, 1 override)"
    compared = cli("compare", "--store", store, "--catalog", team, "--format", "json")
    assert compared.exit_code == 2  # NOT READY: the sample's canary
    catalogs = json.loads(compared.stdout)["catalogs"]
    assert [(c["name"], c["origin"], c["patterns"], c["overrides"]) for c in catalogs] == [
        ("cloud-run", "shipped", 60, 0), ("netra-backend", "shipped", 24, 0), ("team", "local", 2, 1)]
    text = cli("compare", "--store", store, "--catalog", team, env=WIDE).stdout.splitlines()
    assert [t for t in text if t.startswith("catalogs:")] == [f"catalogs: {line}"]
    markdown = cli("compare", "--store", store, "--catalog", team, "--format", "markdown").stdout.splitlines()
    assert [t for t in markdown if t.startswith("Catalogs:")] == [f"Catalogs: {line}"]

    out = tmp_path / "report"
    written = cli("report", "--store", store, "--catalog", team, "--out", out, "--format", "md", "--json")
    assert written.exit_code == 0, written.output
    assert json.loads(written.stdout)["catalogs"] == catalogs
    assert json.loads((out / "summary.json").read_text())["catalogs"] == catalogs
    assert f"**Pattern catalogs:** 85 patterns from {line} (fingerprint " in (out / "report.md").read_text().replace("\\_", "_")


@pytest.mark.slow
def test_only_local_catalogs_with_no_shipped_catalogs(store, tmp_path):
    alone = write(tmp_path, "alone.yaml", ALONE)
    result = cli("summarize", "--store", store, "--no-shipped-catalogs", "--catalog", alone, "--format", "json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert [(c["name"], c["origin"]) for c in summary["catalogs"]] == [("alone", "local")]
    assert [(p["id"], p["count"]) for p in summary["patterns"]] == [("redis-connection-retry", 30)]
    same = cli("summarize", "--store", store, "--format", "json",
               env={"LOGAUDIT_CATALOG": str(alone), "LOGAUDIT_NO_SHIPPED_CATALOGS": "1"})
    assert json.loads(same.stdout)["catalogs"] == summary["catalogs"]
    # an override needs the catalog it overrides
    team = write(tmp_path, "team.yaml", TEAM)
    result = cli("catalog", "check", "--no-shipped-catalogs", team)
    assert result.exit_code == 4
    assert result.output.splitlines()[0] == (
        f"error: {team}:9: ws-auth-failure: override: true but no earlier catalog defines 'ws-auth-failure'")


def test_no_catalog_at_all_is_a_usage_error(store):
    result = cli("summarize", "--store", store, "--no-shipped-catalogs")
    assert result.exit_code == 64  # bad usage (docs/cli.md)
    assert result.output == (
        "error: no catalogs to use: the shipped catalogs are left out and no local catalog is given\n"
        "  hint: add --catalog FILE_OR_DIR (or $LOGAUDIT_CATALOG), or drop --no-shipped-catalogs "
        "($LOGAUDIT_NO_SHIPPED_CATALOGS)\n")
    with pytest.raises(UsageError):
        default_catalog_paths([], shipped=False)


def test_a_local_pattern_with_a_shipped_id_says_how_to_replace_it(tmp_path):
    clash = write(tmp_path, "clash.yaml", TEAM.replace("    override: true\n", ""))
    with pytest.raises(CatalogLoadError) as err:
        load_catalogs(default_catalog_paths([clash]))
    [problem] = err.value.problems
    shipped = (REPO / "patterns" / "netra_backend.yaml").resolve()
    assert (problem.location, problem.message) == (
        f"{clash}:8", f"duplicate id 'ws-auth-failure' (already defined at {shipped}:31)")
    assert problem.hint == ("rename it, or add `override: true` to replace the earlier definition (or run with "
                            "--no-shipped-catalogs / $LOGAUDIT_NO_SHIPPED_CATALOGS=1 to use only your own catalogs)")


def test_a_catalog_folder_without_catalogs_is_reported(tmp_path):
    (tmp_path / "empty").mkdir()
    result = cli("catalog", "test", tmp_path / "empty")
    assert result.exit_code == 4
    assert result.output == (f"error: {tmp_path / 'empty'}:0: no catalog files found (*.yaml, *.yml)\n"
                             "  hint: pass .yaml files or a directory holding them\n")


def test_the_deprecated_logaudit_patterns_still_replaces_the_shipped_catalogs(tmp_path):
    alone = write(tmp_path / "mine", "alone.yaml", ALONE)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGAUDIT_")} | {"LOGAUDIT_PATTERNS": str(alone.parent)}
    result = subprocess.run([sys.executable, "-m", "logaudit", "catalog", "check"], env=env, cwd=tmp_path,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [f"{alone}: catalog alone (local), 1 patterns", "ok: 1 patterns in 1 catalog(s)"]
    assert result.stderr == (
        "note: $LOGAUDIT_PATTERNS is deprecated (used instead of the shipped catalogs): use $LOGAUDIT_CATALOG for "
        "catalogs added to the shipped ones, with $LOGAUDIT_NO_SHIPPED_CATALOGS=1 for only your own\n")


def test_save_patterns_validates_with_the_shipped_catalogs_in_any_directory(tmp_path, monkeypatch):
    from logaudit.analysis.authoring import save_patterns

    monkeypatch.chdir(tmp_path)  # no patterns/ here
    target = tmp_path / "team.yaml"
    clash = "- {id: ws-auth-failure, title: Again, category: info, regex: 'HANDLING AUTH FAILURE'}\n"
    with pytest.raises(CatalogLoadError, match="duplicate id 'ws-auth-failure'"):
        save_patterns(target, clash)
    assert not target.exists() and list(tmp_path.iterdir()) == []  # nothing written, no temporary file left
    catalog = save_patterns(target, "- {id: redis-retry, title: Redis retry, category: warning, regex: 'Retrying Redis'}\n")
    assert [(s.name, s.origin, s.patterns) for s in catalog.sources][:2] == [
        ("cloud-run", "shipped", 60), ("netra-backend", "shipped", 24)]
    assert len(catalog) == 85 and target.is_file()
