"""The redaction rules: the corpus of secret shapes and lookalikes, the same answer from Python and
DuckDB (both RE2, so linear in the text), valid JSON after redaction, configuration."""

from __future__ import annotations

import json
import string
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from logaudit.core.errors import InputError, UsageError
from logaudit.core.redact import Redactor, load_redactor
from logaudit.core.secret_rules import DEFAULT_RULES

CORPUS = yaml.safe_load((Path(__file__).parents[1] / "fixtures" / "secrets-corpus.yaml").read_text())
CASES = CORPUS["secrets"]
KEEP = CORPUS["keep"]
ALL_SECRETS = [s for c in CASES + CORPUS["structured"] + CORPUS["urls"] for s in c["secrets"]]
#: where Python's `re` and RE2 differ (Unicode spaces, `\b` next to non-ASCII letters): a Python
#: side that ran `re` instead of RE2 answers differently on these
ENGINE_PROBES = [
    "password:\u00a0hunter2 ok",
    "token=\u2003abc def",
    "Authorization:\u00a0Bearer abcdefgh12345",
    "caf\u00e9AKIAIOSFODNN7EXAMPLE",
    "\u00e9eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl",
    "naïve@example.com and ünïcode password=pässwörd",
]


def duck(texts: list[str | None], redactor: Redactor) -> list[str | None]:
    con = duckdb.connect()
    con.register("t", pa.table({"x": pa.array(texts, pa.string())}))
    return [r[0] for r in con.execute(f"SELECT {redactor.sql('x')} FROM t").fetchall()]


# ---------------------------------------------------------------------------- the corpus
def test_the_corpus_is_large_and_unambiguous():
    assert len(CASES) >= 40
    ids = [c["id"] for c in CASES + CORPUS["structured"] + CORPUS["urls"]]
    assert len(ids) == len(set(ids))
    for case in CASES:  # each secret is really in its line
        assert all(s in case["line"] for s in case["secrets"]), case["id"]


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_a_secret_shape_is_redacted_exactly(case):
    out = Redactor().redact(case["line"])
    assert out == case["redacted"]
    assert [s for s in case["secrets"] if s in out] == []


@pytest.mark.parametrize("line", KEEP)
def test_a_lookalike_is_kept(line):
    assert Redactor().redact(line) == line


@pytest.mark.parametrize("case", CORPUS["structured"], ids=[c["id"] for c in CORPUS["structured"]])
def test_secrets_in_json_members_are_redacted_and_the_json_stays_valid(case):
    for text in (json.dumps(case["payload"]), json.dumps(case["payload"], separators=(",", ":")),
                 json.dumps({"outer": json.dumps(case["payload"])})):  # and JSON inside a JSON string
        out = Redactor().redact(text)
        json.loads(out)
        assert [s for s in case["secrets"] if s in out] == []


def test_json_members_become_the_string_redacted():
    doc = {"password": "x y", "api_key": 1234, "secrets": ["a", "b"], "token": None, "expires": 3599,
           "credentials": {"user": "u", "password": "p"}}
    assert json.loads(Redactor().redact(json.dumps(doc))) == {
        "password": "<redacted>", "api_key": "<redacted>", "secrets": ["<redacted>"], "token": None,
        "expires": 3599, "credentials": {"user": "u", "password": "<redacted>"}}


@pytest.mark.parametrize(("text", "expected"), [
    ("mail ann@example.com password=x", "mail ann@example.com password=<redacted>"),
    ("postgresql://u:p@db.example.com/x", "postgresql://u:<redacted>@db.example.com/x"),
])
def test_emails_can_be_kept(text, expected):
    assert Redactor(emails=False).redact(text) == expected
    assert "example.com" not in Redactor().redact("mail ann@example.com")


def test_a_disabled_redactor_passes_everything_through():
    off = Redactor(enabled=False)
    assert off.rules == []
    assert off.redact("password=x") == "password=x"
    assert off.redact_all(["token=y", None]) == ["token=y", None]
    assert off.sql("message") == "message"


# ---------------------------------------------------------------------------- RE2 on both sides
def test_every_rule_compiles_in_re2_on_both_sides():
    """RE2 runs in time linear in the text: a rule it compiles cannot backtrack."""
    con = duckdb.connect()
    for name, pattern, replacement in DEFAULT_RULES:  # both raise for what RE2 cannot run
        assert pc.replace_substring_regex(pa.array(["x"]), pattern, replacement)[0].as_py() == "x", name
        assert con.execute("SELECT regexp_replace('x', $p, $r, 'g')", {"p": pattern, "r": replacement}
                           ).fetchone() == ("x",), name


def test_python_and_duckdb_run_the_same_re2_rules():
    """The Python side is RE2 too: on texts where Python's `re` would answer otherwise it agrees with DuckDB."""
    texts = [c["line"] for c in CASES] + KEEP + ENGINE_PROBES + [None, ""]
    texts += [json.dumps(c["payload"]) for c in CORPUS["structured"]] + [u["url"] for u in CORPUS["urls"]]
    for redactor in (Redactor(), Redactor(emails=False), Redactor(extra=[("emp", r"\bEMP-\d{6}\b", "<emp>")])):
        assert redactor.redact_all(texts) == duck(texts, redactor)
    assert Redactor().redact("password:\u00a0hunter2 ok") == "password:<redacted> ok"  # U+00A0 is no RE2 space


SAME = "unchanged"


@pytest.mark.timeout(300)
@pytest.mark.parametrize(("shape", "expected"), [
    # the old URL rule backtracked from every word start before `://`: 33 s for one such line
    (lambda n: "a." * (n // 4) + "a://x:" + "y" * (n // 2), SAME),
    (lambda n: "a://b:" * (n // 6), SAME),
    (lambda n: "a://b:c@" * (n // 8), "a://b:<redacted>@"),
    (lambda n: "password=" * (n // 9), "password=<redacted>"),
    (lambda n: " password" * (n // 9), SAME),
    (lambda n: '{"password":"' + "a" * n, SAME),
    (lambda n: "-----BEGIN PRIVATE KEY-----" + "A" * n, "<redacted:private-key>"),
    (lambda n: "\\" * n, SAME),
    (lambda n: "a@" * (n // 2), SAME),
    (lambda n: "a" * n + "@example.com", "<redacted:email>"),
    (lambda n: "eyJ" + "a" * n, SAME),
    (lambda n: "token=" + "a" * n, "token=<redacted>"),
    (lambda n: "Cookie: " + "a=b; " * (n // 5), "Cookie: <redacted>"),
    (lambda n: "Authorization: " * (n // 15), None),
    (lambda n: '\\"password\\":' * (n // 14), None),
    (lambda n: "x" * n, SAME),
], ids=["dotted-words-before-url", "schemes", "urls-with-at", "keys", "keys-without-value", "open-json-string",
        "private-key-without-end", "backslashes", "at-signs", "long-email", "jwt-prefix", "long-value", "long-cookie",
        "authorization-headers", "escaped-keys", "plain"])
def test_a_256_kb_line_of_any_shape_is_redacted_in_one_pass(shape, expected):
    """Cloud Logging's largest entry, in adversarial shapes: both engines answer (RE2 is linear in
    the text; the timeout only guards against a hang) and give the same result."""
    line = shape(256 * 1024)
    out = Redactor().redact(line)
    if expected is not None:
        assert out == (line if expected == SAME else expected)
    assert duck([line], Redactor()) == [out]


# ---------------------------------------------------------------------------- properties
_PIECES = [c["line"] for c in CASES] + KEEP + ENGINE_PROBES
_SEPARATORS = [" ", "\n", "\\", '"', "'", "=", ":", "@", "//", ",", "{", "}", "\\n", '\\"']
texts_with_secrets = st.lists(st.one_of(st.sampled_from(_PIECES), st.sampled_from(_SEPARATORS),
                                        st.text(string.printable, max_size=12)), max_size=6).map("".join)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts_with_secrets)
def test_redaction_is_idempotent(text):
    once = Redactor().redact(text)
    assert Redactor().redact(once) == once


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts_with_secrets)
def test_the_trigger_finds_every_text_a_rule_changes(text):
    """Texts without the trigger skip the rules: the result must be what every rule would give."""
    array = pa.array([text])
    for _, pattern, replacement in Redactor().rules:
        array = pc.replace_substring_regex(array, pattern, replacement)
    assert Redactor().redact(text) == array[0].as_py()


_KEYS = ["password", "api_key", "token", "secrets", "client_secret", "message", "user", "x-auth-token", "authorization",
         "cookie", "Password", "dbPassword", "count", "data", "url", "email", "a b", 'q"k', "k\\e"]
json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False),
                         st.sampled_from(_PIECES + ALL_SECRETS), st.text(max_size=20), texts_with_secrets)
json_docs = st.recursive(json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(_KEYS), inner, max_size=5)), max_leaves=12)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(json_docs, st.booleans(), st.booleans(), st.integers(0, 2))
@example([{"password": "Connected to redis://cache:6379/0", "api_key": "@"}], True, False, 1)  # a URL password ran over \"
def test_json_text_stays_valid_json(doc, compact, ascii_only, depth):
    """payload_json and labels_json are redacted as text: the result must still parse, with the same
    keys - also JSON inside a JSON string (`depth` times), as when a logged line quotes JSON."""
    text = json.dumps(doc, separators=(",", ":") if compact else None, ensure_ascii=ascii_only)
    for _ in range(depth):
        text = json.dumps({"message": text, "n": 1})
    out = Redactor().redact(text)
    parsed, original = json.loads(out), json.loads(text)
    for _ in range(depth):
        parsed, original = json.loads(parsed["message"]), json.loads(original["message"])
    assert _keys(parsed) == _keys(original)
    assert duck([text], Redactor()) == [out]


def _keys(value):
    if isinstance(value, dict):
        return {k: _keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_keys(v) for v in value if isinstance(v, dict | list)]
    return None


# ---------------------------------------------------------------------------- configuration
def test_extra_rules_run_after_the_defaults_on_both_sides():
    custom = Redactor(extra=[("employee-id", r"\bEMP-\d{6}\b", "<redacted:employee>")])
    assert custom.redact("by EMP-123456 with password=x") == "by <redacted:employee> with password=<redacted>"
    assert duck(["by EMP-123456"], custom) == ["by <redacted:employee>"]


def test_a_rule_re2_cannot_run_is_a_usage_error():
    with pytest.raises(UsageError, match=r"redaction rule 'lookahead': Invalid regular expression"):
        Redactor(extra=[("lookahead", r"secret(?=x)", "<r>")])
    with pytest.raises(UsageError, match=r"redaction rule 'groups': Invalid replacement string"):
        Redactor(extra=[("groups", r"secret", r"\1")])


def test_the_config_file_sets_emails_and_extra_rules(tmp_path, monkeypatch):
    path = tmp_path / "redact.yaml"
    path.write_text("emails: false\nrules:\n  - name: employee-id\n    pattern: '\\bEMP-\\d{6}\\b'\n"
                    "    replacement: '<redacted:employee>'\n")
    monkeypatch.setenv("LOGAUDIT_REDACT_CONFIG", str(path))
    r = load_redactor()
    assert (r.emails, [x.name for x in r.extra]) == (False, ["employee-id"])
    assert r.redact("EMP-123456 ann@example.com token=t") == "<redacted:employee> ann@example.com token=<redacted>"
    assert load_redactor(emails=True).redact("ann@example.com") == "<redacted:email>"
    monkeypatch.delenv("LOGAUDIT_REDACT_CONFIG")
    assert load_redactor().redact("ann@example.com") == "<redacted:email>"


@pytest.mark.parametrize(("text", "message"), [
    ("emails: maybe\n", "emails: expected true or false"),
    ("rules:\n  - name: x\n", r"rules\[1\]: expected name, pattern and replacement"),
    ("colour: blue\n", "expected a mapping with the keys emails and rules"),
    ("rules: [\n", "not valid YAML"),
])
def test_a_bad_config_file_is_a_clear_usage_error(tmp_path, text, message):
    path = tmp_path / "redact.yaml"
    path.write_text(text)
    with pytest.raises(UsageError, match=message):
        load_redactor(path)


def test_a_bad_config_file_stops_the_cli_with_exit_64(tmp_path, cli):
    path = tmp_path / "redact.yaml"
    path.write_text("rules:\n  - {name: bad, pattern: '(?<=x)y'}\n")
    result = cli("summarize", "--store", tmp_path / "nostore", env={"LOGAUDIT_REDACT_CONFIG": str(path)})
    assert result.exit_code == 64  # bad usage
    assert result.stderr.startswith("error: redaction rule 'bad': Invalid regular expression")


def test_error_messages_are_redacted_but_keep_account_emails():
    err = InputError("x.jsonl:3: cannot parse 'password=hunter2 token=abc' for sa@p.iam.gserviceaccount.com",
                     hint="check the file")
    assert str(err) == ("x.jsonl:3: cannot parse 'password=<redacted> token=<redacted>' for "
                        "sa@p.iam.gserviceaccount.com\n  hint: check the file")
