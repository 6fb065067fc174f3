"""The catalog compiled for BigQuery's RE2: each pattern's mode (exact, prefilter, local), its RE2
expression checked with google-re2 against the `regex` module the engine uses, field extraction,
`catalog check --engine bigquery`, and the SQL size of a large catalog."""

from __future__ import annotations

import json
import random

import pytest
import re2
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from logaudit.catalog.catalog import Pattern, default_catalog_paths, load_catalogs
from logaudit.catalog.pushdown import check_bigquery, contains_sql, re2_plan, sql_budget

CATALOG = load_catalogs(default_catalog_paths())
PLANS = {p.id: re2_plan(p) for p in CATALOG}
#: the shipped patterns RE2 cannot run exactly, and why
NOT_EXACT = {
    "env-var-missing": "`\\b` or `\\B` next to a character that may not be an ASCII letter",
    "upstream-timeout": "`\\b` or `\\B` next to a character that may not be an ASCII letter",
    "secret-google-api-key-logged": "look-ahead (?! at column 24",
    "secret-database-password-logged": "look-ahead (?! at column 78",
    "ws-no-token-debug": "repetition bound 4000 > 1000",
    "golden-path-other-failure": "look-ahead (?! at column 32",
    "api-threads-forbidden": "`$` inside the pattern (RE2 reads it as the very end)",
}


def pattern(rx: str, ignore_case: bool = False, pid: str = "p") -> Pattern:
    return Pattern(id=pid, title=pid, category="info", regex=rx, ignore_case=ignore_case)


def test_the_mode_of_every_shipped_pattern():
    assert check_bigquery(CATALOG).counts == {"exact": 77, "prefilter": 7, "local": 0}
    assert {pid: p.reason for pid, p in PLANS.items() if p.mode != "exact"} == NOT_EXACT
    assert {pid for pid, p in PLANS.items() if p.mode == "prefilter"} == set(NOT_EXACT)


@pytest.mark.parametrize("pat", list(CATALOG), ids=lambda p: p.id)
def test_examples_match_the_re2_expression(pat):
    plan = PLANS[pat.id]
    assert plan.re2 is not None
    for ex in pat.examples:
        assert re2.search(plan.re2, ex.text), ex.text
    if plan.mode == "exact":
        for ex in pat.counter_examples:
            assert not re2.search(plan.re2, ex.text), ex.text
        for ex in pat.examples:
            for name, value in (ex.fields or {}).items():
                found = re2.search(plan.extract[name], ex.text)
                assert (found.group(1) if found else None) == value, (name, ex.text)


def test_every_named_group_of_an_exact_pattern_is_extracted_in_bigquery():
    for pat in CATALOG:
        plan = PLANS[pat.id]
        if plan.mode == "exact":
            assert sorted(plan.extract) == sorted(pat.group_names), pat.id
            assert all(re2.compile(rx).groups == 1 for rx in plan.extract.values())
        else:
            assert plan.extract == {}


HOSTILE = [
    # regex, ignore_case, mode, reason, must match, must not match (in RE2)
    (r"\bERROR (?!retry)\w+", False, "prefilter", "look-ahead (?! at column 9", "ERROR retry", "ERROR -"),
    (r"(?<!no )match\b", False, "prefilter", "look-behind (?<! at column 1", "no match", None),
    (r"(?<=user=)\w+ denied", False, "prefilter", "look-behind (?<= at column 1", "bob denied", None),
    (r"(?P<q>['\"])quoted(?P=q)", False, "prefilter", "backreference \\1", "'quoted\"", "quoted"),
    (r"(ab)-\1", False, "prefilter", "backreference \\1", "ab-ab", "ab-cd"),
    (r"start.{0,4000}end", False, "prefilter", "repetition bound 4000 > 1000", "start end", "end start"),
    (r"x{2000}", False, "prefilter", "repetition bound 2000 > 1000", "x" * 2000, "x" * 999),
    (r"a{1,1000}b", False, "exact", None, "ab", "b"),
    (r"(?>ab|a)c", False, "prefilter", "atomic group (?> at column 1", "ac", "bc"),
    (r"ab++c", False, "prefilter", "possessive quantifier", "abbc", "ac"),
    (r"caf\u00e9 \p{L}+", False, "local", "uses syntax only the `regex` module reads", None, None),
    (r"caf\u00e9 [\u00e0-\u00ff]", False, "exact", None, "caf\u00e9 \u00e8", "cafe e"),
    (r"(?i)timeout", False, "exact", None, "TimeOut", "time out"),
    (r"fail(?:ed)?", True, "exact", None, "FAILED", "fal"),
    (r"kill it", True, "exact", None, "\u212aILL \u0130T", "kill \u0131t"),
    (r"KILL IT", True, "exact", None, "kill \u0131t", "KILL \u0130T"),
    (r"(?m)^ready$", False, "exact", None, "x\nready\ny", "x ready"),
    (r"(?s)begin.end", False, "exact", None, "begin\nend", "beginend"),
    (r"begin.end", False, "exact", None, "begin end", "begin\nend"),
    (r"(?!x)", False, "local", "look-ahead (?! at column 1: without them it matches every text", None, None),
    (r"code=(?P<code>\d+) user=(?P<user>[^ ]+)", False, "exact", None, "code=5 user=a", "code= user=a"),
]


@pytest.mark.parametrize(("rx", "icase", "mode", "reason", "yes", "no"), HOSTILE)
def test_hostile_patterns(rx, icase, mode, reason, yes, no):
    plan = re2_plan(pattern(rx, icase))
    assert (plan.mode, plan.reason) == (mode, reason)
    if yes is not None:
        assert re2.search(plan.re2, yes)
    if no is not None:
        assert not re2.search(plan.re2, no)


def test_named_groups_become_the_one_capturing_group():
    plan = re2_plan(pattern(r"code=(?P<code>\d+) user=(?P<user>[^ ]+)(x)?"))
    assert plan.extract == {"code": r"code=([0-9\x{80}-\x{10ffff}]+) user=(?:[^ ]+)(?:x)?",
                            "user": r"code=(?:[0-9\x{80}-\x{10ffff}]+) user=([^ ]+)(?:x)?"}
    assert plan.recheck_non_ascii is True
    assert re2.search(plan.extract["user"], "code=42 user=ann rest").group(1) == "ann"


def test_contains_sql_quotes_the_expression_raw():
    plan = re2_plan(pattern("can't \"x\"\n"))
    assert plan.re2 == r"can\x{27}t \x{22}x\x{22}\n"
    assert contains_sql(plan) == r"REGEXP_CONTAINS(message, r'can\x{27}t \x{22}x\x{22}\n')"


TEXT = st.text(st.sampled_from(list("aAbB019 _-:'\"\n./()=xyzé\u0130\u212aΣ٣")), max_size=40)


def _agree(pat: Pattern, text: str) -> None:
    plan = PLANS.get(pat.id) or re2_plan(pat)
    if plan.re2 is None:
        return
    local = pat.compiled.search(text) is not None
    remote = re2.search(plan.re2, text) is not None
    if local:
        assert remote, (pat.id, text)
    if plan.mode == "exact" and (text.isascii() or not plan.recheck_non_ascii):
        assert local == remote, (pat.id, text)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(list(CATALOG)), st.data())
def test_prefilter_is_a_superset_and_exact_agrees_on_mutated_examples(pat, data):
    texts = [e.text for e in pat.examples + pat.counter_examples] or ["x"]
    base = data.draw(st.sampled_from(texts))
    cut = data.draw(st.integers(0, len(base)))
    insert = data.draw(TEXT)
    drop = data.draw(st.integers(0, 3))
    _agree(pat, base[:cut] + insert + base[cut + drop:])


HOSTILE_PATTERNS = [pattern(rx, icase, f"h{i}") for i, (rx, icase, *_rest) in enumerate(HOSTILE)] + [
    pattern(r"\b\w+ed\b"), pattern(r"\d{2,}x"), pattern(r"\s+end$"), pattern(r"[^\W\d]+!"),
    pattern(r"(?i)KELVIN sign"), pattern(r"-\b"), pattern(r"(a|b)\1\b"), pattern(r"\Bx"),
    pattern(r"=\d"), pattern(r"\w!"), pattern(r"\W\s:"), pattern(r"[a-k]", ignore_case=True),
    pattern(r"(?i)I"), pattern(r"\D\S="),
]


@settings(max_examples=600, deadline=None)
@given(st.sampled_from(HOSTILE_PATTERNS), TEXT)
@example(pattern(r"=\d"), "=\u0663")
@example(pattern(r"(?i)I"), "\u0131")
@example(pattern(r"-\b"), "-\u00e9")
def test_prefilter_is_a_superset_and_exact_agrees_on_generated_strings(pat, text):
    _agree(pat, text)


def _synthetic(n: int, seed: int = 7) -> list[Pattern]:
    rng = random.Random(seed)
    words = ["Worker", "timeout", "connection", "failed", "user", "request", "db", "cache", "retry", "ERROR"]
    pieces = [r"\d+", r"[A-Z_]+", r"(?P<f{i}>\S+)", r"\s*", r"(?:ok|fail)", r"'[^']*'", r"\.", r"=(?P<v{i}>\w+)"]
    out = []
    for i in range(n):
        parts = [r"\b" + rng.choice(words)]
        for _ in range(rng.randint(1, 3)):
            parts += [" ", rng.choice(words), rng.choice(pieces).format(i=len(parts))]
        out.append(pattern("".join(parts), ignore_case=rng.random() < 0.1, pid=f"gen-{i}"))
    return out


@pytest.mark.slow
def test_5000_patterns_stay_within_the_sql_budget():
    pats = _synthetic(5000)
    sqls = [contains_sql(re2_plan(p)) for p in pats]
    assert all(s is not None for s in sqls)
    over = [(p.id, len(s), sql_budget(p.regex)) for p, s in zip(pats, sqls, strict=True) if len(s) > sql_budget(p.regex)]
    assert over == []
    total = sum(len(f"COUNTIF({s}),\n") for s in sqls)
    assert total < 1_000_000, total


def test_500_patterns_stay_within_the_sql_budget():
    for p in _synthetic(500, seed=11):
        sql = contains_sql(re2_plan(p))
        assert sql is not None and len(sql) <= sql_budget(p.regex), (p.regex, sql)


def test_cli_text(cli, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    result = cli("catalog", "check", "--engine", "bigquery")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[-2:] == ["bigquery: 77 exact, 7 prefilter, 0 local", "ok: 84 patterns in 2 catalog(s)"]
    assert "bigquery prefilter golden-path-other-failure" in lines
    at = lines.index("bigquery prefilter golden-path-other-failure")
    assert lines[at + 1] == " " * 19 + "look-ahead (?! at column 32"
    assert sum(line.startswith("bigquery ") for line in lines) == 84
    assert max(len(line) for line in lines if line.startswith(("bigquery", " "))) <= 80


def test_cli_json_is_additive(cli):
    plain = json.loads(cli("catalog", "check", "--format", "json").output)
    result = cli("catalog", "check", "--engine", "bigquery", "--format", "json")
    assert result.exit_code == 0
    doc = json.loads(result.output)
    assert "bigquery" not in plain
    assert {k: v for k, v in doc.items() if k != "bigquery"} == plain
    assert doc["bigquery"]["modes"] == {"exact": 77, "prefilter": 7, "local": 0}
    first = doc["bigquery"]["patterns"][0]
    assert sorted(first) == ["extract", "file", "id", "line", "mode", "re2", "reason", "recheck_non_ascii"]
    assert first["extract"] == {"exit_code": r"\bContainer called exit\(([1-9][0-9]*)\)"}
    assert {p["id"]: p["reason"] for p in doc["bigquery"]["patterns"] if p["mode"] != "exact"} == NOT_EXACT


def test_cli_bad_engine_is_bad_usage(cli):
    result = cli("catalog", "check", "--engine", "spark")
    assert result.exit_code == 64 or result.exit_code == 2, result.output
    assert "'spark' is not one of 'local', 'bigquery'" in result.output
