"""Files written by the real `gcloud logging read` ingest to exactly the entries the server holds.

gcloud talks to the fake Cloud Logging server (tests/fake_logging.py) and writes the exports a user
would: `--format=json` (newest first, and `--order=asc`), its default format and `--format=yaml`
(YAML 1.2). Each export is compared row by row with the server's entries ingested directly as
JSON Lines, after applying what gcloud itself changes (`gcloud_changes`), change by change.

The entries are hostile but valid: words that YAML 1.1 reads as booleans, numbers or null (as
values and as map keys), multi-line messages, unicode and emoji, empty strings, big integers.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
from pathlib import Path

import orjson
import pytest
from fake_logging import FakeLogging, make_entries, ts_ns

from logaudit.store.store import Store

GCLOUD = shutil.which("gcloud")
pytestmark = pytest.mark.skipif(GCLOUD is None, reason="needs the Google Cloud SDK (`gcloud`) on PATH")

PROJECT = "gcloud-export-test"
#: Plain strings that YAML 1.1 turns into booleans, null, numbers (sexagesimal 10:30 = 630,
#: octal 017 = 15) or a merge key, and strings that look like other YAML syntax.
TRAPS = ["no", "yes", "on", "off", "y", "n", "Y", "N", "NO", "Off", "~", "null", "Null", "10:30", "1:02:03",
         "1e-05", "1E5", "0x1F", "017", "0o17", "0b101", "1_000", ".inf", "-.INF", ".nan", "true", "False",
         "+12", "-0", "3.", ".5", "=", "<<", "2024-03-01", "2024-03-01 10:00:00", "", " ", "-", "- a", "#x",
         "a: b", "{}", "[]", "!tag", "&a", "*a", "|", ">", "'q'", '"dq"', "%x", "@at", "`tick"]
#: Messages that stress quoting and block scalars.
MESSAGES = ["line one\nline two", "trailing newline\n", "\n\nleading newlines", "tab\tseparated",
            "emoji 😀 ünïcödé 漢字 — ok", "  leading and trailing spaces  ", "quote's \"double\" \\ back",
            "\u00a0no-break space", "bell \x07 control", "zero-width \u200b joiner", "A" * 3000,
            "line\u2028separator", "para\u2029separator", "keep\u2028  spaces"]
#: Changed by gcloud itself (asserted through `gcloud_changes`, not ignored).
GCLOUD_CHANGED = ["crlf\r\nline", "next\u0085line"]
NUMBERS = {"max64": 2**63 - 1, "over64": 2**63, "under64": -(2**63) - 1, "huge": 10**30, "zero": 0,
           "pi": 3.141592653589793, "tenth": 0.1, "tiny": 1e-05, "big": 1e300, "whole": 100.0, "nine": 123456789.0}


def hostile_entries() -> list[dict]:
    """Cloud Run entries from 2024 (older than gcloud's default one-day freshness)."""
    strings = TRAPS + MESSAGES + GCLOUD_CHANGED
    entries = make_entries(2 * len(strings) + 4, project=PROJECT, start_ns=ts_ns("2024-03-01T10:00:00Z"))
    for entry, text in zip(entries, strings, strict=False):
        entry["textPayload"] = text
    for entry, text in zip(entries[len(strings):], strings, strict=False):
        del entry["textPayload"]
        entry["jsonPayload"] = {"message": text, "votes": {text: 12, "other": text}, "list": [text, "", None], "flag": True, "none": None}
    tail = entries[2 * len(strings):]
    del tail[0]["textPayload"]
    tail[0]["jsonPayload"] = {"votes": {"yes": 12, "no": 3}, "numbers": NUMBERS, "nested": {"deep": [[{"a": []}]]}}
    del tail[1]["textPayload"]
    tail[1]["jsonPayload"] = {t: t for t in TRAPS if t}
    tail[2]["labels"] = {"instanceId": "00bf4bf02d", "empty": "", "no": "no", "10:30": "10:30"}
    tail[2]["severity"] = "ERROR"
    tail[3]["httpRequest"] = {"requestMethod": "GET", "requestUrl": "https://svc.run.app/a?b=no", "status": 503,
                              "latency": "0.123456789s", "responseSize": "18446744073709551615", "userAgent": "no"}
    return entries


def gcloud_changes(value, yaml_export: bool):
    """What gcloud 528 itself changes in an entry (checked by running it; none is logaudit's).

    Both formats: integers above 2**63 - 1 become floats (it decodes them as doubles); null
    items of a list are dropped.
    YAML only (its printer): floats are written with 6 significant digits (TransformFloat);
    a string holding a newline becomes a literal block, where CRLF reads back as LF; NEL is
    written as a line break in a quoted string, which YAML folds into a space.
    """
    if isinstance(value, dict):
        return {k if not yaml_export else _yaml_string(k, key=True): gcloud_changes(v, yaml_export) for k, v in value.items()}
    if isinstance(value, list):  # null items of a list are dropped
        return [gcloud_changes(v, yaml_export) for v in value if v is not None]
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value > 2**63 - 1:
        value = float(value)
    if isinstance(value, float) and yaml_export:
        return float(_transform_float(value))
    if isinstance(value, str) and yaml_export:
        return _yaml_string(value, key=False)
    return value


def _transform_float(number: float) -> str:
    """gcloud's resource_transform.TransformFloat with its defaults."""
    text = f"{number:.6}"
    if "e+" in text and int(text[text.index("e+") + 2:]) < 9:
        return f"{number:.1f}"
    return text


def _yaml_string(text: str, key: bool) -> str:
    if "\n" in text and not key:
        return text.replace("\r\n", "\n")
    return text.replace("\u0085", " ")


# ------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def server():
    with FakeLogging(hostile_entries(), project=PROJECT) as fake:
        yield fake


@pytest.fixture(scope="module")
def gcloud(server, tmp_path_factory):
    """Run `gcloud logging read ARGS` against the fake server; returns (stdout bytes, return code)."""
    config = tmp_path_factory.mktemp("gcloud-config")
    env = {**os.environ, "CLOUDSDK_CONFIG": str(config), "CLOUDSDK_CORE_DISABLE_PROMPTS": "1"}
    for prop, value in [("api_endpoint_overrides/logging", f"{server.url}/"), ("auth/disable_credentials", "true"),
                        ("project", PROJECT), ("core/disable_usage_reporting", "true")]:
        subprocess.run([GCLOUD, "config", "set", prop, value], env=env, check=True, capture_output=True, timeout=120)
    cache: dict[tuple[str, ...], bytes] = {}

    def read(*args: str) -> bytes:
        if args not in cache:
            done = subprocess.run([GCLOUD, "logging", "read", 'resource.type="cloud_run_revision"', *args],
                                  env=env, capture_output=True, timeout=120)
            assert done.returncode == 0, done.stderr.decode()[-2000:]
            cache[args] = done.stdout
        return cache[args]

    return read


def ingest(tmp_path: Path, name: str, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    store = Store(tmp_path / f"store-{name}")
    return store.ingest_paths([path]), store


def rows(store: Store) -> list[dict]:
    """Stored rows by (timestamp, insert id), JSON columns as values (key order is the writer's)."""
    table = store.read_entries().drop_columns(["source", "source_position"])
    out = sorted(table.to_pylist(), key=lambda r: (r["timestamp"], r["insert_id"]))
    for row in out:
        for col in ("payload_json", "labels_json"):
            row[col] = json.loads(row[col]) if row[col] is not None else None
    return out


def expected_rows(tmp_path: Path, server: FakeLogging, yaml_export: bool) -> list[dict]:
    entries = [gcloud_changes(e, yaml_export) for e in server.entries]
    data = b"".join(json.dumps(e, ensure_ascii=False).encode() + b"\n" for e in entries)
    report, store = ingest(tmp_path, f"expected-{'yaml' if yaml_export else 'json'}.jsonl", data)
    assert (report.read, report.new_rows, report.rejected) == (len(entries), len(entries), 0)
    return rows(store)


def assert_same_rows(got: list[dict], want: list[dict]) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert g == w, f"row {w['insert_id']} differs"


# ------------------------------------------------------------------------------ tests
@pytest.mark.parametrize("args", [("--format=json",), ("--format=json", "--order=asc")], ids=["desc", "asc"])
def test_json_export_ingests_to_the_servers_entries(gcloud, server, tmp_path, args):
    data = gcloud("--freshness=3650d", *args)
    assert data.startswith(b"[\n  {\n")
    report, store = ingest(tmp_path, "export.json", data)
    n = len(server.entries)
    assert (report.read, report.new_rows, report.duplicates, report.rejected, report.files_failed) == (n, n, 0, 0, 0)
    assert report.sources[0].format == "array"
    assert_same_rows(rows(store), expected_rows(tmp_path, server, yaml_export=False))


@pytest.mark.parametrize("args", [(), ("--format=yaml",)], ids=["default", "yaml"])
def test_yaml_export_ingests_to_the_servers_entries(gcloud, server, tmp_path, args):
    data = gcloud("--freshness=3650d", *args)
    assert data.startswith(b"---\n")
    report, store = ingest(tmp_path, "export.yaml", data)
    n = len(server.entries)
    assert (report.read, report.new_rows, report.duplicates, report.rejected, report.files_failed) == (n, n, 0, 0, 0)
    assert report.sources[0].format == "yaml"
    got = rows(store)
    assert_same_rows(got, expected_rows(tmp_path, server, yaml_export=True))
    by_id = {r["insert_id"]: r for r in got}
    first = server.entries[0]["insertId"]
    assert (by_id[first]["message"], by_id[first]["payload_text"]) == ("no", "no")  # not `false`
    sexagesimal = server.entries[TRAPS.index("10:30")]["insertId"]
    assert by_id[sexagesimal]["message"] == "10:30"  # not 630


def test_yaml_and_json_exports_ingest_to_identical_rows(gcloud, server, tmp_path):
    """The ground truth: apart from gcloud's own float and line-break rewriting (entries that
    hold those are left out, by name), both exports of the same entries give identical rows,
    JSON columns compared as text."""
    _, json_store = ingest(tmp_path, "e.json", gcloud("--freshness=3650d", "--format=json"))
    _, yaml_store = ingest(tmp_path, "e.yaml", gcloud("--freshness=3650d"))
    changed = {e["insertId"] for e in server.entries if gcloud_changes(e, True) != gcloud_changes(e, False)}
    holding = {e["insertId"] for e in server.entries
               if any(t in json.dumps(e, ensure_ascii=False) for t in ["crlf\\r\\n", "next\u0085", "3.14159"])}
    assert changed == holding  # CRLF in a value, NEL, floats
    json_rows = [r for r in json_store.read_entries().drop_columns(["source", "source_position"]).to_pylist()
                 if r["insert_id"] not in changed]
    yaml_rows = [r for r in yaml_store.read_entries().drop_columns(["source", "source_position"]).to_pylist()
                 if r["insert_id"] not in changed]
    key = lambda r: (r["timestamp"], r["insert_id"])  # noqa: E731
    assert len(json_rows) == len(server.entries) - len(changed)
    assert sorted(json_rows, key=key) == sorted(yaml_rows, key=key)


def test_default_freshness_gives_an_empty_export_with_a_hint(gcloud, tmp_path, cli):
    data = gcloud("--format=json")  # no --freshness: gcloud asks for the last day only
    assert data.strip() == b"[]"
    path = tmp_path / "old.json"
    path.write_bytes(data)
    result = cli("ingest", "--quiet", "--store", tmp_path / "store", path)
    assert result.exit_code == 0
    assert result.stdout.splitlines()[0] == f"{path}: 0 read, 0 new, 0 duplicate, 0 rejected"
    assert result.stderr.splitlines()[:2] == [
        f"warning {path}: holds no entries",
        "  hint: `gcloud logging read` returns only the last day unless given --freshness (e.g. --freshness=30d), "
        "and the filter may match nothing; export with `gcloud logging read FILTER --freshness=30d --format=json > FILE`",
    ]
    out = json.loads(cli("ingest", "--quiet", "--store", tmp_path / "store", "--format", "json", path).stdout)
    assert out["sources"][0]["notes"] == [{"level": "warning", "message": "holds no entries", "hint": (
        "`gcloud logging read` returns only the last day unless given --freshness (e.g. --freshness=30d), and the "
        "filter may match nothing; export with `gcloud logging read FILTER --freshness=30d --format=json > FILE`")}]
    assert out["sources"][0]["format"] == "array"


def test_value_format_export_is_reported_as_plain_text(gcloud, server, tmp_path, cli):
    data = gcloud("--freshness=3650d", "--format=value(textPayload)")
    lines = [line.rstrip(b"\r") for line in data.split(b"\n")]
    assert b"no" in lines and b"10:30" in lines
    path = tmp_path / "text.log"
    path.write_bytes(data)
    result = cli("ingest", "--quiet", "--store", tmp_path / "store", "--format", "json", path)
    assert result.exit_code == 7  # some input rejected, the rest stored
    out = json.loads(result.stdout)
    nonblank = sum(1 for line in lines if line)
    assert (out["read"], out["new_rows"], out["rejected"]) == (nonblank, 0, nonblank)
    assert out["sources"][0]["notes"] == [{
        "level": "warning",
        "message": f"plain text, not LogEntries: {nonblank - 1} of {nonblank} lines are not JSON objects "
                   "(e.g. `--format='value(textPayload)'` output)",
        "hint": "export with `gcloud logging read FILTER --freshness=30d --format=json > FILE` (or --format=yaml): "
                "logaudit needs whole LogEntries"}]
    def is_json(line: bytes) -> bool:
        try:
            json.loads(line)
        except ValueError:
            return False
        return True

    invalid = sum(1 for line in lines if line and not is_json(line))
    assert invalid > nonblank - 15
    assert sum(r["reason"] == "not valid JSON" for r in out["rejects"]) == invalid


def test_trap_words_are_strings_under_the_yaml_12_loader():
    """The loader gcloud's YAML needs, on its own: YAML 1.2 core schema scalars."""
    import yaml

    from logaudit.sources.files import Yaml12Loader

    doc = "\n".join(f"k{i}: {t}" for i, t in enumerate(["no", "yes", "on", "off", "y", "10:30", "017", "0o17", "0x1F",
                                                           "true", "~", "null", "", "1e-05", ".inf", "1_000", "<<"]))
    got = list(yaml.load(doc, Loader=Yaml12Loader).values())
    assert got[:6] == ["no", "yes", "on", "off", "y", "10:30"]
    assert got[6:12] == [17, 15, 31, True, None, None]
    assert got[12] is None and got[13] == 1e-05 and math.isinf(got[14]) and got[15] == 1000 and got[16] == "<<"
    assert orjson.loads(orjson.dumps(yaml.load("yes: 1\nno: 2\n", Loader=Yaml12Loader))) == {"yes": 1, "no": 2}
