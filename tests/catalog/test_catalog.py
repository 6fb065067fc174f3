"""Catalog loading, validation (exact file:line, id and hint), overrides and the self-test."""

from __future__ import annotations

import json
import string
import textwrap
from pathlib import Path

import pytest
import regex
from click.testing import CliRunner

from logaudit.catalog.catalog import (
    CATEGORIES,
    PATTERN_KEYS,
    CatalogLoadError,
    CatalogProblem,
    backtracking_risk,
    load_catalogs,
)
from logaudit.catalog.selftest import CatalogTestError, check_self_test, run_self_test
from logaudit.core.errors import CatalogError

REPO = Path(__file__).resolve().parents[2]
PATTERNS = REPO / "patterns"
VALID_KEYS = ", ".join(sorted(PATTERN_KEYS))


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return str(path)


def problems(paths: list[str], collect: bool = True) -> list[CatalogProblem]:
    with pytest.raises(CatalogLoadError) as info:
        load_catalogs(paths, collect=collect)
    assert isinstance(info.value, CatalogError) and info.value.exit_code == 4
    return info.value.problems


def one_problem(paths: list[str]) -> CatalogProblem:
    found = problems(paths)
    assert len(found) == 1, [str(p) for p in found]
    return found[0]


GOOD = """
catalog: good
version: 1
patterns:
  - id: p1
    title: First
    category: critical
    regex: '\\bNO_TOKEN\\b'
    examples: ["NO_TOKEN here"]
  - id: p2
    title: Second
    category: info
    regex: 'hello (?P<who>\\w+)'
    examples:
      - {text: "hello world", fields: {who: world}}
    counter_examples: ["goodbye"]
"""


# ----------------------------------------------------------------------------- shipped catalogs
def test_shipped_catalogs_load_and_pass_self_test():
    cat = load_catalogs([PATTERNS])
    assert [s.name for s in cat.sources] == ["cloud-run", "netra-backend"]
    assert len(cat) == 84
    assert all(p.examples for p in cat), [p.id for p in cat if not p.examples]
    report = check_self_test(cat)
    assert report.ok and report.failures == [] and report.without_examples == []
    assert report.examples == sum(len(p.examples) for p in cat) == 215
    assert report.counter_examples == sum(len(p.counter_examples) for p in cat) == 107
    assert {p.category for p in cat} <= set(CATEGORIES)


SEED_LINES = {
    # seed report finding -> (pattern id, both spellings as real releases log them)
    "ws-no-token-debug": ["🔍 NO_TOKEN DEBUG: {\n  \"connection_id\": \"c1\"\n}", " SEARCH:  NO_TOKEN DEBUG: {}"],
    "ws-auth-failure": ["🚨 HANDLING AUTH FAILURE: NO_TOKEN: No JWT=REDACTED found (close_connection: True)",
                        " ALERT:  HANDLING AUTH FAILURE: NO_TOKEN: No JWT token found (close_connection: True)"],
    "dependency-validation-failed": ["❌ CRITICAL: Service dependency validation FAILED",
                                     " FAIL:  CRITICAL: Service dependency validation FAILED"],
    "golden-path-jwt-failure": [
        "   - Golden path validation failed: JWT=REDACTED failure prevents users from accessing chat functionality",
        "❌ Golden path validation failed: JWT failure prevents users from accessing chat functionality"],
    "golden-path-chat-broken": [
        "   - Golden path validation failed: Chat functionality completely broken without agent execution"],
    "startup-validation-bypassed": [
        "⚠️ BYPASSING STARTUP VALIDATION FOR STAGING - 1 critical failures ignored. Reason: x",
        " WARNING: [U+FE0F] BYPASSING STARTUP VALIDATION FOR STAGING - 1 critical failures ignored",
        "??  BYPASSING STARTUP VALIDATION FOR STAGING - 1 critical failures ignored"],
    "request-session-completed": [
        "✅ COMPLETED: Request-scoped session s1 completed successfully for user_id='service:netra-backend'",
        " PASS:  COMPLETED: Request-scoped session s1 completed successfully for user_id='service:netra-backend'"],
    "db-session-created": ["✅ Database session created successfully with proper service-to-service authentication",
                           " PASS:  Database session created successfully with proper service-to-service authentication"],
    "thread-creation-working": ["✅ Thread creation working properly - fixes '404: Thread not found' errors",
                                " PASS:  Thread creation working properly - fixes '404: Thread not found' errors"],
}


@pytest.mark.parametrize("pattern_id", sorted(SEED_LINES))
def test_seed_findings_match_in_every_spelling(pattern_id):
    from logaudit.catalog.engine import match_texts

    pat = load_catalogs([PATTERNS]).get(pattern_id)
    got = match_texts(pat, SEED_LINES[pattern_id])
    assert all(g is not None for g in got), list(zip(SEED_LINES[pattern_id], got, strict=True))


def test_good_catalog_model(tmp_path):
    path = write(tmp_path, "good.yaml", GOOD)
    cat = load_catalogs([path])
    p1, p2 = cat.patterns
    assert (p1.id, p1.category, p1.field, p1.file, p1.line, p1.catalog) == ("p1", "critical", "message", path, 4, "good")
    assert p2.group_names == ("who",)
    assert p2.examples[0].fields == {"who": "world"} and p2.examples[0].line == 14
    assert p2.counter_examples[0].line == 15
    assert run_self_test(cat).ok


# ----------------------------------------------------------------------------- validation errors
def test_unknown_key(tmp_path):
    path = write(tmp_path, "a.yaml", """
        catalog: a
        version: 1
        patterns:
          - id: p1
            title: T
            category: critical
            regx: 'x'
    """)
    found = problems([path])
    assert [str(p) for p in found] == [
        f"{path}:7: p1: unknown key 'regx'",
        f"{path}:4: p1: missing key 'regex'",
    ]
    assert found[0].hint == f"did you mean 'regex'? valid keys: {VALID_KEYS}"
    assert found[0].pattern_id == "p1" and found[0].line == 7 and found[0].file == path


def test_first_problem_only_without_collect(tmp_path):
    path = write(tmp_path, "a.yaml", """
        catalog: a
        version: 1
        patterns:
          - id: p1
            title: T
            category: critical
            regx: 'x'
    """)
    with pytest.raises(CatalogLoadError) as info:
        load_catalogs([path])
    assert len(info.value.problems) == 1
    assert str(info.value) == (f"{path}:7: p1: unknown key 'regx'\n"
                               f"  hint: did you mean 'regex'? valid keys: {VALID_KEYS}")


def test_duplicate_id_across_files(tmp_path):
    a = write(tmp_path, "a.yaml", GOOD)
    b = write(tmp_path, "b.yaml", """
        catalog: b
        version: 1
        patterns:
          - id: other
            title: Other
            category: info
            regex: 'other'
          - id: p2
            title: Again
            category: warning
            regex: 'again'
    """)
    p = one_problem([a, b])
    assert str(p) == f"{b}:8: p2: duplicate id 'p2' (already defined at {a}:9)"
    assert p.hint == "rename it, or add `override: true` to replace the earlier definition"


def test_duplicate_id_in_one_file(tmp_path):
    a = write(tmp_path, "a.yaml", """
        catalog: a
        version: 1
        patterns:
          - {id: p1, title: T, category: info, regex: 'x'}
          - {id: p1, title: U, category: info, regex: 'y'}
    """)
    p = one_problem([a])
    assert str(p) == f"{a}:5: p1: duplicate id 'p1' (first defined at {a}:4)"


def test_override_replaces_in_place(tmp_path):
    a = write(tmp_path, "a.yaml", GOOD)
    b = write(tmp_path, "b.yaml", """
        catalog: b
        version: 1
        patterns:
          - id: p1
            title: Override
            category: warning
            regex: 'NO_TOKEN'
            override: true
          - {id: p3, title: Third, category: positive, regex: 'ok'}
    """)
    cat = load_catalogs([a, b])
    assert [p.id for p in cat] == ["p1", "p2", "p3"]
    p1 = cat.get("p1")
    assert (p1.title, p1.category, p1.regex, p1.file, p1.line, p1.catalog) == ("Override", "warning", "NO_TOKEN", b, 4, "b")
    assert [(s.name, s.patterns) for s in cat.sources] == [("good", 2), ("b", 2)]


def test_override_without_earlier_definition(tmp_path):
    b = write(tmp_path, "b.yaml", """
        catalog: b
        version: 1
        patterns:
          - id: p9
            title: T
            category: info
            regex: 'x'
            override: true
    """)
    p = one_problem([b])
    assert str(p) == f"{b}:8: p9: override: true but no earlier catalog defines 'p9'"


def test_bad_category(tmp_path):
    a = write(tmp_path, "a.yaml", """
        catalog: a
        version: 1
        patterns:
          - id: p1
            title: T
            category: fatal
            regex: 'x'
    """)
    p = one_problem([a])
    assert str(p) == f"{a}:6: p1: bad category 'fatal'"
    assert p.hint == "one of: critical, warning, positive, info"


def test_regex_that_does_not_compile(tmp_path):
    a = write(tmp_path, "a.yaml", """
        catalog: a
        version: 1
        patterns:
          - id: p1
            title: T
            category: info
            regex: 'ab(c'
    """)
    p = one_problem([a])
    assert str(p) == f"{a}:7: p1: regex does not compile: missing ) at position 4"
    assert p.hint == "'ab(c' fails near 'ab(c'; the syntax is the `regex` module's"


def test_when_on_missing_column(tmp_path):
    a = write(tmp_path, "a.yaml", """
        catalog: a
        version: 1
        patterns:
          - id: p1
            title: T
            category: info
            regex: 'x'
            when:
              service: netra-*
              sevrity: ERROR
    """)
    p = one_problem([a])
    assert str(p) == f"{a}:10: p1: when: no column 'sevrity' in the entry table"
    assert p.hint == ("did you mean 'severity'? when keys are severity_at_least, severity_at_most "
                      "or an entry column (see logaudit.store.schema)")


@pytest.mark.parametrize(("when", "message", "hint"), [
    ("severity_at_least: LOUD", "when.severity_at_least: unknown severity 'LOUD'",
     "one of: DEFAULT, DEBUG, INFO, NOTICE, WARNING, ERROR, CRITICAL, ALERT, EMERGENCY"),
    ("http_status: 6xx", "when.http_status: bad value '6xx': expects a number, a list of numbers, or '4xx'/'5xx'",
     "http_status: [403, 404] or http_status: 5xx"),
    ("service: [1, 2]", "when.service: expects a glob or a list of globs", "service: 'netra-backend*'"),
    ("timestamp: 2025", "when.timestamp: column 'timestamp' cannot be used in `when` (type other)",
     "use a text, number or bool column"),
])
def test_bad_when_values(tmp_path, when, message, hint):
    a = write(tmp_path, "a.yaml", f"""
        catalog: a
        version: 1
        patterns:
          - id: p1
            title: T
            category: info
            regex: 'x'
            when:
              {when}
    """)
    p = one_problem([a])
    assert str(p) == f"{a}:9: p1: {message}"
    assert p.hint == hint


def test_field_must_be_a_text_column(tmp_path):
    a = write(tmp_path, "a.yaml", """
        catalog: a
        version: 1
        patterns:
          - id: p1
            title: T
            category: info
            regex: '4'
            field: http_status
    """)
    p = one_problem([a])
    assert str(p) == f"{a}:8: p1: field 'http_status' is not a text column of the entry table"
    assert p.hint.startswith("did you mean 'http_path'? text columns: audit_method, audit_principal,")


def test_invalid_and_missing_ids(tmp_path):
    a = write(tmp_path, "a.yaml", """
        catalog: a
        version: 1
        patterns:
          - id: Bad_ID
            title: T
            category: info
            regex: 'x'
          - title: no id
            category: info
            regex: 'y'
          - just a string
    """)
    assert [str(p) for p in problems([a])] == [
        f"{a}:4: Bad_ID: invalid id 'Bad_ID'",
        f"{a}:8: pattern has no id",
        f"{a}:11: a pattern must be a mapping",
    ]


def test_catastrophic_regex_rejected_unless_allowed(tmp_path):
    a = write(tmp_path, "a.yaml", """
        catalog: a
        version: 1
        patterns:
          - id: nested
            title: T
            category: info
            regex: '(\\w+\\s?)+$'
          - id: stacked
            title: T
            category: info
            regex: 'a.*b.*c'
          - id: allowed
            title: T
            category: info
            regex: '(a+)+$'
            allow_backtracking: true
          - id: reported-slow
            title: T
            category: info
            regex: '(?:a|aa)+b(?<=xb)'
          - id: alternation
            title: T
            category: info
            regex: '(\\w|\\d)+:'
          - id: adjacent
            title: T
            category: info
            regex: 'reason: (?P<r>[^\\n]*?)\\s*\\(end\\)'
          - id: scan-ahead
            title: T
            category: info
            regex: '\\w*(?=.*x)'
          - id: backref
            title: T
            category: info
            regex: '(\\w+)\\s*\\1:'
    """)
    found = problems([a])
    prefix = "regex may backtrack catastrophically: "
    twice = "can match the same text in more than one way: the ways to try double with every few characters"
    split = "can match the same characters one after the other: the ways to split a text between them grow with its length"
    assert [str(p) for p in found] == [
        f"{a}:7: nested: {prefix}`(\\w+\\s?)+` {twice} (for example on '00' + '00' * 30 + '!')",
        f"{a}:11: stacked: {prefix}`.*` and `.*` {split} (for example on 'a0' + 'b0' * 5000 + '\\n')",
        f"{a}:20: reported-slow: {prefix}`(?:a|aa)+` {twice} (for example on 'aa' + 'aa' * 30 + '!')",
        f"{a}:24: alternation: {prefix}`(\\w|\\d)+` {twice} (for example on '00' + '00' * 30 + '!')",
        f"{a}:28: adjacent: {prefix}`[^\\n]*?` and `\\s*` {split} (for example on 'reason: 0' + ' ' * 5000)",
        f"{a}:32: scan-ahead: {prefix}the look-around `(?=.*x)` is tested at more than 32 places of one attempt, and "
        "each test may read the rest of the text (time grows with the square of its length) "
        "(for example on '0' + '0' * 5000 + '!')",
        f"{a}:36: backref: {prefix}`\\w+` and `\\1` {split} (for example on '00' + '00' * 5000 + '!')",
    ]
    assert [p.pattern_id for p in found] == ["nested", "stacked", "reported-slow", "alternation", "adjacent",
                                             "scan-ahead", "backref"]
    assert found[0].hint == (
        "make the alternatives of the repeated group exclusive, so that a text can be split between its iterations in "
        "one way only ((?:a|aa)+ -> a+, (\\w|\\d)+ -> \\w+, (\\w+\\s?)+ -> \\w+(?:\\s+\\w+)*), or let the inner "
        "repeat take whole runs (\\w++, (?>\\w+)); or set `allow_backtracking: true` to run it under a time limit")
    assert found[1].hint == (
        "make repeats that meet exclusive where they meet ([^\"]*\" rather than .*\", \\S+\\s+ rather than .*\\s*), "
        "or bound one of them to at most 16 characters ({0,16}); or set `allow_backtracking: true` to run it under a "
        "time limit")
    assert found[5].hint.startswith("test the look-around at one place only (^(?=.*x))")


def test_rewritten_patterns_load(tmp_path):
    """The rewrites the hints suggest are accepted."""
    a = write(tmp_path, "a.yaml", """
        catalog: a
        version: 1
        patterns:
          - {id: words, title: T, category: info, regex: '\\w+(?:\\s+\\w+)*$'}
          - {id: one-class, title: T, category: info, regex: '\\w+:'}
          - {id: bounded, title: T, category: info, regex: 'reason: (?P<r>[^\\n]*?)\\s{0,16}\\(end\\)'}
          - {id: exclusive, title: T, category: info, regex: 'reason: (?P<r>[^\\n(]*)\\(end\\)'}
          - {id: possessive, title: T, category: info, regex: '(?:\\S++\\s*)*X'}
          - {id: anchored-look, title: T, category: info, regex: '^(?=.*x)\\w+y'}
    """)
    assert [p.id for p in load_catalogs([a])] == ["words", "one-class", "bounded", "exclusive", "possessive",
                                                   "anchored-look"]


def test_regex_matching_empty_string_rejected(tmp_path):
    a = write(tmp_path, "a.yaml", """
        catalog: a
        version: 1
        patterns:
          - {id: p1, title: T, category: info, regex: 'x*'}
    """)
    assert str(one_problem([a])) == f"{a}:4: p1: regex matches the empty string, so it would match every entry"


def test_example_problems(tmp_path):
    a = write(tmp_path, "a.yaml", """
        catalog: a
        version: 1
        patterns:
          - id: p1
            title: T
            category: info
            regex: 'hello (?P<who>\\w+)'
            examples:
              - {text: "hello x", fields: {whom: x}}
              - {txt: "hello y"}
              - 42
    """)
    assert [str(p) for p in problems([a])] == [
        f"{a}:9: p1: examples[0]: field 'whom' is not a named group of the regex",
        f"{a}:10: p1: examples[1]: unknown key 'txt'",
        f"{a}:11: p1: examples[2] must be a string or {{text:, fields:}}",
    ]


def test_top_level_problems(tmp_path):
    a = write(tmp_path, "a.yaml", """
        catalog: a
        version: 2
        pattern: []
    """)
    assert [str(p) for p in problems([a])] == [
        f"{a}:3: unknown top-level key 'pattern'",
        f"{a}:2: unsupported version 2",
        f"{a}:1: missing key 'patterns'",
    ]


def test_yaml_syntax_error_and_unsafe_tags(tmp_path):
    a = write(tmp_path, "a.yaml", """
        catalog: a
        version: 1
        patterns:
          - id: p1
            title: 'unterminated
    """)
    p = one_problem([a])
    assert p.file == a and p.line == 6 and p.pattern_id is None
    assert str(p).startswith(f"{a}:6: YAML syntax error: ")
    b = write(tmp_path, "b.yaml", """
        catalog: !!python/object/apply:os.system ['echo pwned']
        version: 1
        patterns: []
    """)
    p = one_problem([b])
    assert str(p).startswith(f"{b}:1: YAML syntax error: could not determine a constructor")


def test_duplicate_yaml_key(tmp_path):
    a = write(tmp_path, "a.yaml", """
        catalog: a
        version: 1
        patterns:
          - id: p1
            title: T
            category: info
            regex: 'x'
            regex: 'y'
    """)
    assert str(one_problem([a])) == f"{a}:8: p1: duplicate key 'regex'"


def test_collect_reports_every_problem_in_every_file(tmp_path):
    a = write(tmp_path, "a.yaml", """
        catalog: a
        version: 1
        patterns:
          - {id: p1, title: T, category: fatal, regex: 'x'}
          - {id: p2, title: T, category: info, regex: '('}
    """)
    b = write(tmp_path, "b.yaml", """
        catalog: b
        version: 1
        patterns:
          - {id: p3, title: T, category: info, regex: 'x', colour: red}
    """)
    found = problems([a, b], collect=True)
    assert [(Path(p.file).name, p.line, p.pattern_id) for p in found] == [
        ("a.yaml", 4, "p1"), ("a.yaml", 5, "p2"), ("b.yaml", 4, "p3")]
    assert len(problems([a, b], collect=False)) == 1


def test_directories_expand_to_yaml_files_sorted(tmp_path):
    write(tmp_path, "b.yaml", "catalog: b\nversion: 1\npatterns:\n  - {id: b1, title: T, category: info, regex: 'b'}\n")
    write(tmp_path, "a.yml", "catalog: a\nversion: 1\npatterns:\n  - {id: a1, title: T, category: info, regex: 'a'}\n")
    write(tmp_path, "notes.txt", "ignored")
    cat = load_catalogs([tmp_path])
    assert [p.id for p in cat] == ["a1", "b1"]
    p = one_problem([str(tmp_path / "missing.yaml")])
    assert str(p) == f"{tmp_path / 'missing.yaml'}:0: no such file"


def test_fingerprint_covers_matching_definition_only(tmp_path):
    base = load_catalogs([write(tmp_path, "a.yaml", GOOD)]).get("p1")
    retitled = load_catalogs([write(tmp_path, "b.yaml", GOOD.replace("title: First", "title: Renamed")
                                    .replace("category: critical", "category: warning"))]).get("p1")
    edited = load_catalogs([write(tmp_path, "c.yaml", GOOD.replace("NO_TOKEN", "NO_JWT").replace(
        '"NO_TOKEN here"', '"NO_JWT here"'))]).get("p1")
    assert base.fingerprint == retitled.fingerprint
    assert base.fingerprint != edited.fingerprint
    assert len(base.fingerprint) == 16


# ----------------------------------------------------------------------------- self-test
def test_self_test_failures(tmp_path):
    a = write(tmp_path, "a.yaml", """
        catalog: a
        version: 1
        patterns:
          - id: p1
            title: T
            category: info
            regex: 'hello (?P<who>\\w+)'
            examples:
              - "hi there"
              - {text: "hello bob", fields: {who: alice}}
            counter_examples:
              - "hello carol"
    """)
    cat = load_catalogs([a])
    report = run_self_test(cat)
    assert [str(f) for f in report.failures] == [
        f"{a}:9: p1: example 'hi there': does not match",
        f"{a}:10: p1: example 'hello bob': extracted who='bob' (expected 'alice')",
        f"{a}:12: p1: counter_example 'hello carol': matches but must not",
    ]
    with pytest.raises(CatalogTestError) as info:
        check_self_test(cat)
    assert info.value.exit_code == 4
    assert str(info.value).splitlines()[0] == "3 example(s) failed:"


def test_backtracking_risk():
    assert backtracking_risk(r"\bNO_TOKEN\b") is None
    assert backtracking_risk(r"x[^y]+y[^z]+z") is None
    assert backtracking_risk(r"foo.*bar") is None
    assert backtracking_risk(r"(?:\s*\S+)*X") == (
        "`(?:\\s*\\S+)*` can match the same text in more than one way: the ways to try double with every few characters")
    assert backtracking_risk(r"x\S+y\S+z") == (
        "`\\S+` and `\\S+` can match the same characters one after the other: the ways to split a text between them "
        "grow with its length")
    assert backtracking_risk(r"(?>a+)+b") is None  # atomic: no backtracking into it
    assert backtracking_risk(r"(?:colour){e<=1}") is None  # not analysed: runs under the time limit


# ----------------------------------------------------------------------------- CLI
def _cli(*args: str):
    from logaudit.cli import main

    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.mark.slow
def test_cli_check_and_test_on_shipped_catalogs():
    result = _cli("catalog", "check", str(PATTERNS))
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == "ok: 84 patterns in 2 catalog(s)"
    result = _cli("catalog", "test", str(PATTERNS))
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == "ok: 84 patterns, 215 examples, 107 counter-examples, 0 failure(s)"


def test_cli_check_reports_problems_with_exit_code_4(tmp_path):
    a = write(tmp_path, "a.yaml", """
        catalog: a
        version: 1
        patterns:
          - {id: p1, title: T, category: fatal, regex: 'x'}
          - {id: p2, title: T, category: info, regex: '('}
    """)
    result = _cli("catalog", "check", "--no-shipped-catalogs", a)
    assert result.exit_code == 4
    assert result.output == (f"error: {a}:4: p1: bad category 'fatal'\n"
                             "  hint: one of: critical, warning, positive, info\n")
    result = _cli("catalog", "check", "--no-shipped-catalogs", "--collect", a)
    assert result.exit_code == 4
    assert result.output.splitlines()[:3] == [
        "error: 2 problems in pattern catalogs:",
        f"{a}:4: p1: bad category 'fatal'",
        "  hint: one of: critical, warning, positive, info",
    ]
    assert result.output.splitlines()[3] == f"{a}:5: p2: regex does not compile: missing ) at position 1"
    result = _cli("catalog", "check", "--no-shipped-catalogs", "--collect", "--format", "json", a)
    assert result.exit_code == 4
    doc = json.loads(result.output)
    assert doc["ok"] is False
    assert [(p["line"], p["pattern_id"]) for p in doc["problems"]] == [(4, "p1"), (5, "p2")]


def test_cli_test_prints_failures(tmp_path):
    a = write(tmp_path, "a.yaml", """
        catalog: a
        version: 1
        patterns:
          - id: p1
            title: T
            category: info
            regex: 'hello'
            examples: ["goodbye"]
    """)
    result = _cli("catalog", "test", "--no-shipped-catalogs", a)
    assert result.exit_code == 4
    assert result.output.splitlines() == [
        f"catalogs: a (local {a}, 1 pattern)",
        f"FAIL {a}:8: p1: example 'goodbye': does not match",
        "FAILED: 1 patterns, 1 examples, 0 counter-examples, 1 failure(s)",
    ]
    result = _cli("catalog", "test", "--no-shipped-catalogs", "--format", "json", a)
    assert result.exit_code == 4
    assert json.loads(result.output)["failures"] == [
        {"pattern_id": "p1", "file": a, "line": 8, "kind": "example", "text": "goodbye", "reason": "does not match"}]


@pytest.mark.slow
def test_special_case_folds_match_the_regex_module():
    """The engine's table of non-ASCII characters that fold onto ASCII letters is complete."""
    from logaudit.catalog.translate import FOLD_POOL, fold_literal

    rx = regex.compile(r"(?i)[A-Za-z]")
    found = {chr(cp) for cp in range(0x80, 0x110000) if rx.match(chr(cp))}
    assert found == set(FOLD_POOL)
    for letter in string.ascii_letters:  # the engine's per-letter table (U+0131 is `I`'s, U+0130 `i`'s)
        non = fold_literal(letter, regex.IGNORECASE).non
        assert (set() if non == "none" else set(non)) == {c for c in found if regex.match("(?i)" + letter, c)}


TIME_LIMITED = """
    catalog: a
    version: 1
    patterns:
      - id: slow
        title: T
        category: info
        regex: '(?:x|a|aa)+b(?<=xb)'
        allow_backtracking: true
        examples: ["xb"]
        counter_examples: ["aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab"]
      - id: needless
        title: T
        category: info
        regex: 'a+b'
        allow_backtracking: true
      - id: fuzzy
        title: T
        category: info
        regex: '(?:colour){e<=1}'
"""
SLOW_WHY = ("`(?:x|a|aa)+` can match the same text in more than one way: the ways to try double with every few "
            "characters")


def test_cli_check_notes_patterns_that_run_under_the_time_limit(tmp_path):
    a = write(tmp_path, "a.yaml", TIME_LIMITED)
    result = _cli("catalog", "check", "--no-shipped-catalogs", a)
    assert result.exit_code == 0, result.output
    assert [line for line in result.output.splitlines() if "time limit" in line] == [
        f"{a}:4: slow: note: runs under a time limit on every text: {SLOW_WHY}",
        f"{a}:11: needless: note: allow_backtracking is set, but the regex is proven linear: remove it to evaluate "
        "it without the time limit",
        f"{a}:16: fuzzy: note: runs under a time limit on every text: not analysed: a `{{` that is not a repeat "
        "count (fuzzy matching?) is not analysed",
    ]
    doc = json.loads(_cli("catalog", "check", "--no-shipped-catalogs", "--format", "json", a).output)
    assert [(p["id"], p["linear"], p["time_limit_note"] is not None) for p in doc["patterns"]] == [
        ("slow", False, True), ("needless", True, True), ("fuzzy", False, True)]


@pytest.mark.timeout(120)  # the counter-example took 53 s without a time limit
def test_self_test_fails_examples_the_regex_times_out_on(tmp_path):
    a = write(tmp_path, "a.yaml", TIME_LIMITED)
    result = _cli("catalog", "test", "--no-shipped-catalogs", a)
    assert result.exit_code == 4
    assert result.output.splitlines()[1] == (
        f"FAIL {a}:10: slow: counter_example '{'a' * 39}b': the regex timed out on it (over 0.1 s): runs under a "
        f"time limit on every text: {SLOW_WHY}")
    assert result.output.splitlines()[2:] == [
        f"warning: {a}:11: needless: no examples", f"warning: {a}:16: fuzzy: no examples",
        "FAILED: 3 patterns, 1 examples, 1 counter-examples, 1 failure(s)"]
