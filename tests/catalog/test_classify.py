"""The classification engine, its store cache and DuckDB views."""

from __future__ import annotations

import itertools
import json
import os
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import regex
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from oracles import EXPECTED_KINDS

from logaudit.catalog import cache, engine, translate
from logaudit.catalog import catalog as catalog_model
from logaudit.catalog import classify as classify_mod
from logaudit.catalog.catalog import Pattern, load_catalogs
from logaudit.catalog.classify import ClassifyReport, classify_store
from logaudit.catalog.engine import classify_table, compile_patterns, match_table, match_texts
from logaudit.catalog.translate import plan_pattern
from logaudit.catalog.views import register_views
from logaudit.sources.severity import SEVERITY_NUM
from logaudit.store.schema import ENTRY_SCHEMA

REPO = Path(__file__).resolve().parents[2]
PATTERNS = REPO / "patterns"
_ids = itertools.count()
#: More examples for a deeper run: LOGAUDIT_PROPERTY_EXAMPLES=5000 pytest tests/test_classify.py -k search_loop
PROPERTY_EXAMPLES = int(os.environ.get("LOGAUDIT_PROPERTY_EXAMPLES", "150"))


# ----------------------------------------------------------------------------- helpers
def entry(message: str | None = None, ts: str = "2025-09-09T20:00:00Z", **cols) -> dict:
    """One canonical entry row (ENTRY_SCHEMA columns; unset ones are null)."""
    n = next(_ids)
    row = {name: None for name in ENTRY_SCHEMA.names}
    row.update(timestamp=datetime.fromisoformat(ts.replace("Z", "+00:00")),
               log_name="projects/p/logs/run.googleapis.com%2Fstdout", log_id="run.googleapis.com/stdout",
               insert_id=f"id{n:08d}", service="netra-backend-staging", revision="netra-backend-staging-00317-696",
               message=message)
    if "severity" in cols and "effective_severity" not in cols:
        cols["effective_severity"] = cols["severity"]
    row.update(cols)
    for key in ("severity", "effective_severity"):
        if row[key] is not None:
            row[f"{key}_num"] = SEVERITY_NUM[row[key]]
    return row


def table(rows: list[dict]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=ENTRY_SCHEMA)


class TinyStore:
    """The store contract classification relies on: `root` and `entry_files(since, until)`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "entries").mkdir(parents=True, exist_ok=True)

    def entry_files(self, since: datetime | None = None, until: datetime | None = None) -> list[Path]:
        out = []
        for part in sorted((self.root / "entries").glob("date=*")):
            day = datetime.fromisoformat(part.name[5:]).date()
            if (since is None or day >= since.date()) and (until is None or day <= until.date()):
                out.extend(sorted(part.glob("*.parquet")))
        return out

    def write(self, rows: list[dict], name: str | None = None) -> Path:
        day = rows[0]["timestamp"].strftime("%Y-%m-%d")
        folder = self.root / "entries" / f"date={day}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / (name or f"part-{next(_ids):06d}.parquet")
        pq.write_table(table(rows), path)
        return path


def pattern(regex_src: str, pid: str = "p", **kw) -> Pattern:
    kw.setdefault("title", pid)
    kw.setdefault("category", "info")
    return Pattern(id=pid, regex=regex_src, **kw)


def catalog_file(tmp_path: Path, body: str, name: str = "cat.yaml") -> Path:
    path = tmp_path / name
    path.write_text("catalog: t\nversion: 1\npatterns:\n" + body, encoding="utf-8")
    return path


def reference(pat: Pattern, text: str):
    m = pat.compiled.search(text)
    return None if m is None else m.groupdict()


# ----------------------------------------------------------------------------- translation
@pytest.mark.parametrize(("src", "mode"), [
    (r"Container called exit\(3\)", "exact"),
    (r"^/api/agents/?$", "exact"),
    (r"\bNO_TOKEN\b", "exact-on-ascii"),
    (r"code (?P<code>\d+)", "exact-on-ascii"),
    (r"foo(?=bar)", "prefilter+verify"),
    (r"(?P<w>ab)(?P=w)", "prefilter+verify"),
    (r"a++b", "prefilter+verify"),
    (r"(?:ab){e<=1}cd", "regex-only"),
    (r"\p{Lu}+ FAILED", "regex-only"),
])
def test_plan_modes(src, mode):
    assert plan_pattern(pattern(src)).mode == mode


CASES: list[tuple[str, dict, list[str]]] = [
    (r"\bNO_TOKEN\b", {}, ["x NO_TOKEN y", "NO_TOKENS", "éNO_TOKEN", "NO_TOKEN", "_NO_TOKEN", "🔍 NO_TOKEN DEBUG"]),
    (r"^/api/agents/?$", {}, ["/api/agents", "/api/agents/", "/api/agents/x", "x/api/agents", "/api/agents\n"]),
    (r"exit\((?P<code>\d+)\)\.$", {}, ["Container called exit(3).", "exit(3).\n", "exit(3). x", "exit(٣)."]),
    (r"(?i)container CALLED", {}, ["Container called", "CONTAINER CALLED", "\u212aontainer called", "cont ainer"]),
    (r"kelvin", {"ignore_case": True}, ["KELVIN", "\u212aelvin", "kelvi"]),
    # `regex` folds `I` onto the dotless U+0131 and `i` onto U+0130 (not both onto U+0130)
    (r"LIMIT hit", {"ignore_case": True}, ["l\u0131m\u0131t hit", "L\u0130M\u0130T hit", "limit HIT"]),
    (r"limit hit", {"ignore_case": True}, ["l\u0131m\u0131t hit", "L\u0130M\u0130T hit", "LIMIT hit"]),
    (r"\u0131 \u0130", {"ignore_case": True}, ["I i", "i I", "\u0131 \u0130"]),
    (r"[A-Z]{3}!", {"ignore_case": True}, ["\u0131\u0131\u0131!", "\u0130\u0130\u0130!", "abc!"]),
    (r"(?:✅|\s*PASS:)\s*COMPLETED: (?P<sid>\S+)", {}, ["✅ COMPLETED: s1", " PASS:  COMPLETED: s2", "COMPLETED: s3"]),
    (r"foo(?=bar)", {}, ["foobar", "foobaz", "xfoofoobar"]),
    (r"(?<!x)foo", {}, ["xfoo", "yfoo", "foo"]),
    (r"(?P<w>ab)(?P=w)", {}, ["abab", "abac", "xxababxx"]),
    (r"a++b", {}, ["aaab", "b", "aaa"]),
    (r"(?>ab|a)c", {}, ["abc", "ac"]),
    (r"(?:colour){e<=1} red", {}, ["color red", "colour red", "clr red"]),
    (r"\p{Lu}{3} FAILED", {}, ["ABC FAILED", "ÀÉÎ FAILED", "abc FAILED"]),
    (r"(?m)^WARN: (?P<what>.+)$", {}, ["x\nWARN: disk\ny", "WARN: a", "xWARN: b"]),
    (r"(?s)BEGIN.+END", {}, ["BEGIN\nx\nEND", "BEGINEND", "BEGIN x END"]),
    (r"BEGIN.+END", {}, ["BEGIN\nx\nEND", "BEGIN x END"]),
    (r"[^\x00-\x7f]{2}ok", {}, ["éèok", "eeok", "✅✅ok"]),
    (r"\d{2,3}ms\b", {}, ["12ms", "1234ms", "٣٣ms", "12msx"]),
    (r"\w+@\w+\.com", {}, ["bob@example.com", "é@ü.com", "@.com"]),
    (r"\s+end\Z", {}, ["the end", "the end\n", "\u2003end"]),
    (r"(?<name>x)y", {}, ["xy", "xz"]),
    (r"caf[eé]", {}, ["cafe", "café", "cafè"]),
    (r"[à-ÿ]+!", {}, ["été!", "ete!"]),
    (r"x{,2}yz", {}, ["yz", "xxyz"]),
    (r"\bé\b", {}, ["é", "aé", "é!"]),
    (r"!\b", {}, ["!a", "! ", "!"]),
]


@pytest.mark.parametrize("use_hyperscan", [True, False])
@pytest.mark.parametrize(("src", "kw", "texts"), CASES)
def test_engine_agrees_with_regex_module(src, kw, texts, use_hyperscan):
    pat = pattern(src, **kw)
    got = match_texts(pat, texts, use_hyperscan=use_hyperscan)
    assert got == [reference(pat, t) for t in texts]


# ----------------------------------------------------------------------------- property tests
ALPHABET = st.sampled_from(list("abcAB .:_-\n") + ["é", "✅", "K", "\u212a", "ſ", "İ", "ÿ", "\x00"])
LITERAL = st.text(ALPHABET, min_size=1, max_size=4)
MESSAGE = st.one_of(st.none(), st.text(ALPHABET, max_size=30))


@pytest.mark.slow
@settings(max_examples=PROPERTY_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(literals=st.lists(st.tuples(LITERAL, st.booleans()), min_size=1, max_size=8),
       messages=st.lists(MESSAGE, max_size=40))
def test_literal_catalogs_match_like_a_regex_search_loop(literals, messages):
    pats = [pattern(regex.escape(lit), f"p{i}", ignore_case=icase) for i, (lit, icase) in enumerate(literals)]
    got = classify_table(table([entry(m) for m in messages]), pats)
    engine = set(zip(got["entry_row"].to_pylist(), got["pattern_id"].to_pylist(), strict=True))
    naive = {(row, p.id) for row, m in enumerate(messages) if m is not None for p in pats
             if regex.search(p.regex, m, p.flags)}
    assert engine == naive


PIECES = st.sampled_from([
    "a", "b", "é", "✅", r"\b", r"\d+", r"\w", r"\s*", "[a-c]", "[^a]", ".", "(?:a|bb)", "^", "$", r"\.",
    "(?=a)", "(?P<g>b+)", "a{1,2}", "(?i:a)", "x?",
])


@pytest.mark.slow
@settings(max_examples=PROPERTY_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(parts=st.lists(PIECES, min_size=1, max_size=5), messages=st.lists(st.text(ALPHABET, max_size=20), max_size=20))
def test_regex_catalogs_match_like_a_regex_search_loop(parts, messages):
    src = "".join(parts)
    pat = pattern(src)
    if pat.compiled.search("") is not None:
        return  # the catalog rejects patterns that match everything
    assert match_texts(pat, messages) == [reference(pat, m) for m in messages]


# ----------------------------------------------------------------------------- conditions, fields
def test_when_conditions_and_fields():
    rows = [
        entry("NO_TOKEN a", severity="ERROR"),
        entry("NO_TOKEN b", severity="INFO"),
        entry("NO_TOKEN c", severity="CRITICAL", service="netra-auth-service"),
        entry(None, http_path="/api/agents", http_status=404),
        entry(None, http_path="/api/agents", http_status=200),
        entry(None, http_path="/api/agents", http_status=404, service="other"),
        entry(None, http_path="/api/threads/1", http_status=503),
        entry("user=bob code=7", effective_severity=None),
    ]
    from logaudit.catalog.catalog import Condition

    pats = [
        pattern(r"\bNO_TOKEN\b", "tok", when=(Condition("effective_severity_num", ">=", (400,)),
                                              Condition("service", "glob", ("netra-backend*",)))),
        pattern(r"^/api/agents$", "agents", field="http_path",
                when=(Condition("http_status", "ranges", ((404, 404, True, True),)),
                      Condition("service", "glob", ("netra-*",)))),
        pattern(r"^/api/(?P<area>\w+)", "api5xx", field="http_path",
                when=(Condition("http_status", "ranges", ((500, 599, True, True),)),)),
        pattern(r"user=(?P<user>\w+) code=(?P<code>\d+)", "fields"),
    ]
    got = classify_table(table(rows), pats)
    assert list(zip(got["entry_row"].to_pylist(), got["pattern_id"].to_pylist(), got["fields_json"].to_pylist(),
                    strict=True)) == [
        (0, "tok", None),
        (3, "agents", None),
        (6, "api5xx", '{"area":"threads"}'),
        (7, "fields", '{"user":"bob","code":"7"}'),
    ]
    assert got["category"].to_pylist() == ["info"] * 4
    assert got["insert_id"].to_pylist() == [rows[i]["insert_id"] for i in (0, 3, 6, 7)]


def test_low_cardinality_fields_are_matched_per_distinct_value():
    paths = ["/health", "/api/agents", "/api/threads/7", None]
    rows = [entry(None, http_path=paths[i % 4], http_status=(404 if i % 3 else 200)) for i in range(6000)]
    pats = [pattern(r"^/api/(?P<area>agents|threads)\b", "api", field="http_path"),
            pattern(r"^/health$", "health", field="http_path",
                    when=(catalog_model.Condition("http_status", "ranges", ((200, 200, True, True),)),))]
    compiled = compile_patterns(pats)
    arr, _ = engine._text_column(table(rows), "http_path", compiled.max_chars)
    (values, holders), = engine._segments(arr)
    assert len(values) == 3 and holders is not None and holders.rows is None
    got = classify_table(table(rows), pats)
    expected = [(i, "api", orjson.dumps({"area": paths[i % 4].split("/")[2]}).decode())
                for i in range(6000) if paths[i % 4] and paths[i % 4].startswith("/api")]
    expected += [(i, "health", None) for i in range(6000) if paths[i % 4] == "/health" and i % 3 == 0]
    assert sorted(zip(got["entry_row"].to_pylist(), got["pattern_id"].to_pylist(), got["fields_json"].to_pylist(),
                      strict=True)) == sorted(expected)


@pytest.mark.slow
def test_repeated_short_messages_are_matched_once_each_and_expanded_exactly():
    shorts = ["Agent request completed", "Worker 7 ready", "Worker 12 ready", "ok"]
    msgs = [shorts[i % 4] if i % 3 else f"request {i:06d} took {i % 997} ms and then enough further words to be a long message" for i in
            range(30_000)]
    msgs[5] = None
    sev = ["INFO", "WARNING", "ERROR"]
    rows = [entry(m, severity=sev[i % 5 % 3]) for i, m in enumerate(msgs)]
    pats = [pattern(r"^Agent request completed\b", "agent"),
            pattern(r"\bWorker (?P<n>\d+) ready", "worker",
                    when=(catalog_model.Condition("effective_severity_num", ">=", (SEVERITY_NUM["WARNING"],)),)),
            pattern(r"took (?P<ms>\d+) ms", "took")]
    arr, _ = engine._text_column(table(rows), "message", compile_patterns(pats).max_chars)
    segments = engine._segments(arr)
    assert [len(v) for v, _ in segments] == [4, 30_000]  # four distinct short values; the rest row by row
    got = classify_table(table(rows), pats)
    expected = []
    for i, m in enumerate(msgs):
        for p in pats:
            hit = m is not None and p.compiled.search(m)
            if hit and all(w.matches_value(SEVERITY_NUM[rows[i]["effective_severity"]]) for w in p.when):
                fields = orjson.dumps(hit.groupdict()).decode() if p.group_names else None
                expected.append((i, p.id, fields))
    assert len(expected) == 21_000
    assert sorted(zip(got["entry_row"].to_pylist(), got["pattern_id"].to_pylist(), got["fields_json"].to_pylist(),
                      strict=True)) == sorted(expected)


@pytest.mark.slow
@settings(max_examples=PROPERTY_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(paths=st.lists(st.none() | st.sampled_from(["/api/a", "/api/bb", "/x", "/api/" + "z" * 30, "é/api/a"]),
                      min_size=1, max_size=40),
       services=st.lists(st.none() | st.sampled_from(["netra-a", "netra-b", "other", "NETRA-a"]), min_size=40,
                         max_size=40),
       unused=st.lists(st.sampled_from(["/api/unused", "/api/" + "q" * 40]), max_size=2))
def test_dictionary_encoded_columns_match_like_plain_ones(paths, services, unused):
    """Columns read dictionary-encoded (as entry files are) give the matches, fields and cut counts
    of the same columns as plain strings: the dictionary is scanned, cut and tested once per value."""
    rows = [entry(None, http_path=p, service=services[i]) for i, p in enumerate(paths)]
    plain = table(rows)
    pats = [pattern(r"^/api/(?P<area>\w+)", "api", field="http_path",
                    when=(catalog_model.Condition("service", "glob", ("netra-*",)),)),
            pattern(r"z{20}", "zz", field="http_path")]
    compiled = compile_patterns(pats, max_chars=20)

    def encoded(name: str) -> pa.DictionaryArray:
        arr = pc.dictionary_encode(plain.column(name).combine_chunks())
        values = pa.concat_arrays([arr.dictionary, pa.array(unused, pa.string())])  # values no row uses
        return pa.DictionaryArray.from_arrays(arr.indices, values)

    both = plain.set_column(plain.schema.get_field_index("http_path"), "http_path", encoded("http_path"))
    both = both.set_column(both.schema.get_field_index("service"), "service", encoded("service"))
    want, got = match_table(plain, compiled), match_table(both, compiled)
    assert (got.rows.tolist(), got.patterns.tolist(), got.fields_json.to_pylist(), got.cut) == \
        (want.rows.tolist(), want.patterns.tolist(), want.fields_json.to_pylist(), want.cut)
    assert got.cut == {"http_path": sum(1 for p in paths if p is not None and len(p) > 20)}
    expected = [(i, 0, orjson.dumps({"area": m.group("area")}).decode()) for i, p in enumerate(paths)
                if p is not None and (m := regex.search(r"^/api/(?P<area>\w+)", p[:20]))
                and services[i] is not None and services[i].startswith("netra-")]
    expected += [(i, 1, None) for i, p in enumerate(paths) if p is not None and "z" * 20 in p[:20]]
    assert sorted(zip(got.rows.tolist(), got.patterns.tolist(), got.fields_json.to_pylist(), strict=True)) == \
        sorted(expected)


@pytest.mark.slow
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), null_share=st.sampled_from([0.0, 0.2]), encoded=st.booleans())
def test_when_on_values_shared_by_many_rows_agrees_with_the_reference(seed, null_share, encoded):
    """A value matched on most rows is tested against `when` on all rows at once, a rare one on its
    own rows: both give what a per-row loop gives."""
    rng = np.random.default_rng(seed)
    n = 3000
    paths = rng.choice(["/api/chat", "/api/agents", "/health", "/rare/1", "/rare/2"], n, p=[.5, .2, .2, .05, .05])
    status = rng.choice([200, 404, 500, 503, None], n)
    service = rng.choice(["netra-a", "other", None], n)
    paths = [None if rng.random() < null_share else str(p) for p in paths]
    rows = [entry(None, http_path=p, http_status=st_, service=sv) for p, st_, sv in zip(paths, status, service,
                                                                                         strict=True)]
    tbl = table(rows)
    if encoded:
        for name in ("http_path", "service"):
            tbl = tbl.set_column(tbl.schema.get_field_index(name), name,
                                 pc.dictionary_encode(tbl.column(name).combine_chunks()))
    five = catalog_model.Condition("http_status", "ranges", ((500, 599, True, True),))
    netra = catalog_model.Condition("service", "glob", ("netra-*",))
    pats = [pattern(r"^/(?P<top>\w+)", "common", field="http_path", when=(five, netra)),
            pattern(r"^/rare/(?P<n>\d)$", "rare", field="http_path", when=(five,))]
    got = match_table(tbl, compile_patterns(pats))
    expected = []
    for i, path in enumerate(paths):
        for k, pat in enumerate(pats):
            m = path is not None and regex.search(pat.regex, path)
            if m and all(w.matches_value(rows[i][w.column]) for w in pat.when):
                expected.append((i, k, orjson.dumps(m.groupdict()).decode()))
    assert list(zip(got.rows.tolist(), got.patterns.tolist(), got.fields_json.to_pylist(), strict=True)) == \
        sorted(expected)


def test_texts_only_the_leading_literal_lets_through_do_not_reach_regex(monkeypatch):
    """Undecided texts must match the whole pattern's expression before `regex` sees them: texts
    that merely hold the leading literal cost no timeouts, and a real match is not skipped."""
    monkeypatch.setattr(engine, "REGEX_TIMEOUT", 0.02)
    pat = pattern(r"\bGET (?P<p>[^\n]*)\nEND")
    assert plan_pattern(pat).recheck is not None
    bad = ["GET " * 4000 + str(i) for i in range(engine.MAX_TIMEOUTS + 1)]  # no match; slow for `regex`
    good = "xGET zz\nEND GET " + "y" * 2000 + "\nEND"  # first GET fails `\b`: undecided in bulk
    res = match_table(table([entry(t) for t in [*bad, good]]), compile_patterns([pat]))
    assert (res.rows.tolist(), res.fields_json.to_pylist(), dict(res.timeouts), dict(res.skipped)) == \
        ([len(bad)], [orjson.dumps({"p": "y" * 2000}).decode()], {}, {})


def test_dictionary_columns_with_null_values_or_unsigned_indices():
    comp = compile_patterns([pattern(r"^/api/(?P<a>\w+)", "a", field="http_path")], max_chars=10)
    with_null = pc.dictionary_encode(pa.array(["/api/" + "x" * 30, None, "/api/y"]), null_encoding="encode")
    res = match_table(pa.table({"http_path": with_null}), comp)
    assert (res.rows.tolist(), res.fields_json.to_pylist(), res.cut) == \
        ([0, 2], ['{"a":"xxxxx"}', '{"a":"y"}'], {"http_path": 1})
    unsigned = pa.DictionaryArray.from_arrays(pa.array([0, 1, None, 0], pa.uint8()), pa.array(["/api/x", "/b"]))
    res = match_table(pa.table({"http_path": unsigned, "service": unsigned}), compile_patterns(
        [pattern(r"^/api/(?P<a>\w+)", "a", field="http_path", when=(catalog_model.Condition("service", "glob", ("/api*",)),))]))
    assert (res.rows.tolist(), res.fields_json.to_pylist()) == ([0, 3], ['{"a":"x"}', '{"a":"x"}'])


def test_entry_files_without_some_columns_are_read(tmp_path):
    path = tmp_path / "e.parquet"
    pq.write_table(pa.table({"message": ["GET /a"], "log_name": ["l"], "service": ["s"]}), path)
    got = cache.read_entry_file(path, compile_patterns([pattern("GET", "g", field="message")]))
    assert got.column_names == ["message", "log_name", "service"]
    assert pa.types.is_dictionary(got.schema.field("service").type)
    assert match_table(got, compile_patterns([pattern("GET", "g")])).rows.tolist() == [0]


def test_patterns_extracting_fields_are_prefiltered_on_their_leading_literal():
    """Every candidate is verified anyway: the scan looks for the leading literal only."""
    pat = pattern(r"\bCOMPLETED: session (?P<sid>\S+) for user_id='(?P<user>[^']*)'")
    plan = plan_pattern(pat)
    assert (plan.hs, plan.mode) == (
        "".join(f"\\x{b:02x}" for b in b"COMPLETED: session ").encode() + rb"[^\xff]*\xff", "prefilter+verify")
    texts = ["COMPLETED: session s1 for user_id='u1'", "xCOMPLETED: session s2 for user_id='u2'",
             "COMPLETED: session  for user_id='u3'", "COMPLETED: session s4 for user_id=u4",
             "é COMPLETED: session s5 for user_id='' COMPLETED: session s6 for user_id='u6'"]
    assert match_texts(pat, texts) == [reference(pat, t) for t in texts]
    assert match_texts(pat, texts)[0] == {"sid": "s1", "user": "u1"}


# ----------------------------------------------------------------------------- safety
def test_huge_messages_are_cut_and_reported():
    big = "a" * 1_000_000
    rows = [entry(big + "NEEDLE"), entry("NEEDLE" + big), entry("short NEEDLE")]
    compiled = compile_patterns([pattern("NEEDLE")], max_chars=65536)
    t0 = time.perf_counter()
    res = match_table(table(rows), compiled)
    assert time.perf_counter() - t0 < 5
    assert res.rows.tolist() == [1, 2]
    assert res.cut == {"message": 2}


def test_backtracking_patterns_run_under_a_timeout(monkeypatch):
    monkeypatch.setattr(engine, "REGEX_TIMEOUT", 0.02)
    monkeypatch.setattr(engine, "MAX_TIMEOUTS", 3)
    pat = pattern(r"a.*b.*cd(?<=xcd)", allow_backtracking=True)
    texts = [("a" * 3000 + "b" * 3000 + f"{i}cd") for i in range(6)] + ["a b xcd"]
    t0 = time.perf_counter()
    res = match_table(table([entry(t) for t in texts]), compile_patterns([pat]))
    assert time.perf_counter() - t0 < 10
    # after 3 timeouts every remaining text of the pattern is skipped, the short one too
    assert res.rows.tolist() == []
    assert dict(res.timeouts) == {0: 3} and dict(res.skipped) == {0: 4}


SLOW = r"(?:a|aa)+b(?<=xb)"  # 53 s on a 41-character line with no time limit
SLOW_LINES = ["a" * 39 + f"b{i}" for i in range(10)]


@pytest.mark.slow
@pytest.mark.timeout(120)  # a guard against hanging (53 s per line before), not a speed test
def test_the_53_second_line_is_bounded_at_any_length():
    """Texts up to LONG_TEXT had no time limit: a pattern not proven linear gets one on every text."""
    pat = pattern(SLOW)  # built directly: the catalog loader refuses it
    assert not pat.analysis.linear and plan_pattern(pat).timeout_always
    assert {len(t) for t in SLOW_LINES} == {41}
    res = match_table(table([entry(t) for t in SLOW_LINES]), compile_patterns([pat]))
    # each search times out (charged REGEX_TIMEOUT = 0.1 s); before the 7th text the pattern has
    # used 0.6 s >= PATTERN_BUDGET 0.5 s + TEXT_BUDGET 1 ms x 7 texts: the remaining 4 are skipped
    assert (engine.REGEX_TIMEOUT, engine.PATTERN_BUDGET, engine.TEXT_BUDGET, engine.MAX_TIMEOUTS) == (0.1, 0.5, 0.001, 20)
    assert (res.rows.tolist(), dict(res.timeouts), dict(res.skipped)) == ([], {0: 6}, {0: 4})


def test_proven_linear_patterns_need_no_time_limit_on_short_texts():
    assert not any(plan_pattern(p).timeout_always for p in load_catalogs([PATTERNS]))
    assert plan_pattern(pattern(r"(?:a|aa)+b", allow_backtracking=True)).timeout_always
    assert plan_pattern(pattern(r"(?:colour){e<=1}")).timeout_always  # not analysed


@pytest.mark.timeout(120)
def test_time_limited_patterns_with_an_re2_form_go_to_re2_on_ascii():
    """RE2 is linear: on ASCII texts a pattern without groups needs neither `regex` nor its time limit."""
    pat = pattern(r"(?:a|aa)+\B!", allow_backtracking=True)  # never matches; exponential for `regex`
    plan = plan_pattern(pat)
    assert (plan.mode, plan.re2 is not None, plan.timeout_always) == ("prefilter+verify", True, True)
    texts = ["a" * 40 + f"!{i}" for i in range(30)] + ["é" + "a" * 40 + "!"]
    res = match_table(table([entry(t) for t in texts]), compile_patterns([pat]))
    # the 30 ASCII texts are decided by RE2; only the non-ASCII one goes to `regex`, and times out
    assert (res.rows.tolist(), dict(res.timeouts), dict(res.skipped)) == ([], {0: 1}, {})


def test_re2_forms_re2_refuses_are_not_used():
    pat = pattern(r"x(?:[a-z]{1,900}y){1,900}z")
    assert not translate.re2_compiles(plan_pattern(pat).re2)  # RE2 limits nested repeat counts
    assert match_texts(pat, ["x" + "ab" * 3 + "y" + "z" + "q" * 2000]) == [{}]


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_classify_reports_timed_out_and_skipped_texts_with_the_fix(tmp_path):
    from click.testing import CliRunner

    from logaudit.cli import main

    store = TinyStore(tmp_path / "store")
    store.write([entry(t) for t in SLOW_LINES] + [entry("nothing")])
    cat = catalog_file(tmp_path, f"""\
  - id: slow
    title: Slow
    category: warning
    regex: '{SLOW}'
    allow_backtracking: true
""")
    report = classify_store(store, load_catalogs([cat]))
    message = (
        "6 text(s) timed out and 4 were skipped (counted as not matching): `(?:a|aa)+` can match the same text in "
        "more than one way: the ways to try double with every few characters; rewrite the regex so that "
        "`logaudit catalog check` accepts it without `allow_backtracking` (make the alternatives of the repeated "
        "group exclusive, so that a text can be split between its iterations in one way only ((?:a|aa)+ -> a+, "
        "(\\w|\\d)+ -> \\w+, (\\w+\\s?)+ -> \\w+(?:\\s+\\w+)*), or let the inner repeat take whole runs "
        "(\\w++, (?>\\w+)))")
    assert (report.timeouts, report.skipped) == ({"slow": 6}, {"slow": 4})
    assert report.slow_patterns == [{"pattern_id": "slow", "file": str(cat), "line": 4, "timeouts": 6,
                                     "skipped": 4, "message": message}]
    runner = CliRunner()
    args = ["classify", "--store", str(store.root), "--patterns", str(cat)]
    out = runner.invoke(main, args, catch_exceptions=False).output.splitlines()
    assert out[-1] == f"warning: {cat}:4: slow: {message}"  # also when the pattern matched nothing
    doc = json.loads(runner.invoke(main, [*args, "--format", "json"], catch_exceptions=False).output)
    assert doc["slow_patterns"] == report.slow_patterns  # from the cache: the same counts


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_classify_table_lists_slow_patterns_in_its_metadata():
    pats = [pattern(SLOW, "slow", allow_backtracking=True), pattern(r"b\d", "fine")]
    got = classify_table(table([entry(t) for t in SLOW_LINES]), pats)
    assert got.num_rows == 10 and set(got["pattern_id"].to_pylist()) == {"fine"}
    slow = json.loads(got.schema.metadata[engine.SLOW_PATTERNS_KEY])
    assert [(s["pattern_id"], s["timeouts"], s["skipped"]) for s in slow] == [("slow", 6, 4)]
    assert engine.SLOW_PATTERNS_KEY not in (classify_table(table([entry("b1")]), pats).schema.metadata or {})


def test_values_are_scanned_in_slices(monkeypatch):
    monkeypatch.setattr(engine, "SCAN_SLICE_BYTES", 10)
    pat = pattern(r"\bab\b")
    texts = ["x ab", "", "ab", "z" * 30 + " ab", "abab", "ab " * 5, "no"]
    assert match_texts(pat, texts) == [reference(pat, t) for t in texts]


def test_expressions_hyperscan_refuses_fall_back_to_literals():
    pat = pattern(r"x(?:[a-z]{1,900}y){1,900}z")
    assert not translate._hs_compiles(plan_pattern(pat, verify=False).hs)
    plan = plan_pattern(pat)
    assert (plan.mode, plan.note) == ("prefilter+verify", "prefiltered on its literals only")
    texts = ["x" + "ab" * 3 + "y" + "z", "xyz", "x-y-z"]
    assert match_texts(pat, texts) == [reference(pat, t) for t in texts] == [{}, None, None]


def test_long_ascii_texts_use_linear_time_re2():
    pat = pattern(r"user=(?P<user>\w+) code=(?P<code>\d+)")
    assert plan_pattern(pat).re2 is not None
    text = "x" * 5000 + " user=bob code=42 " + "y" * 5000
    assert match_texts(pat, [text, "é" * 2000 + " user=é code=1"]) == [
        {"user": "bob", "code": "42"}, {"user": "é", "code": "1"}]


# ----------------------------------------------------------------------------- the store cache
CAT_V1 = """\
  - id: tok
    title: No token
    category: critical
    regex: '\\bNO_TOKEN\\b'
  - id: exit
    title: Exit
    category: critical
    regex: 'exit\\((?P<code>\\d+)\\)'
  - id: agents
    title: Agents 404
    category: warning
    field: http_path
    regex: '^/api/agents$'
    when: {http_status: [404]}
"""


def small_store(tmp_path: Path) -> TinyStore:
    store = TinyStore(tmp_path / "store")
    store.write([entry("NO_TOKEN one", ts="2025-09-09T20:00:00Z"), entry("exit(3)", ts="2025-09-09T21:00:00Z"),
                 entry("nothing", ts="2025-09-09T22:00:00Z")], "part-a.parquet")
    store.write([entry(None, ts="2025-09-10T01:00:00Z", http_path="/api/agents", http_status=404),
                 entry("NO_TOKEN two exit(4)", ts="2025-09-10T02:00:00Z")], "part-b.parquet")
    return store


def test_classify_store_counts_and_cache(tmp_path):
    store = small_store(tmp_path)
    cat = load_catalogs([catalog_file(tmp_path, CAT_V1)])
    first = classify_store(store, cat)
    assert isinstance(first, ClassifyReport)
    assert (first.files, first.files_evaluated, first.entries, first.entries_evaluated) == (2, 2, 5, 5)
    assert (first.patterns, first.patterns_evaluated, first.cache_hits, first.cache_misses) == (3, 3, 0, 6)
    assert first.matches == {"tok": 2, "exit": 2, "agents": 1}
    assert first.categories == {"critical": 4, "warning": 1}
    assert (first.matched_entries, first.unclassified, first.cut) == (4, 1, 0)
    again = classify_store(store, cat)
    assert (again.files_evaluated, again.patterns_evaluated, again.cache_hits, again.cache_misses) == (0, 0, 6, 0)
    assert again.matches == first.matches
    index = json.loads((cache.matches(store.root).folder / "date=2025-09-09" / "part-a" / "index.json").read_text())
    assert index["entry_file"] == "date=2025-09-09/part-a.parquet" and index["rows"] == 3
    assert len(index["fingerprints"]) == 3


def test_editing_one_pattern_reevaluates_only_that_pattern(tmp_path):
    store = small_store(tmp_path)
    path = catalog_file(tmp_path, CAT_V1)
    classify_store(store, load_catalogs([path]))
    # title and category do not change what matches: nothing to evaluate
    path.write_text(path.read_text().replace("title: Exit", "title: Exited").replace(
        "category: warning", "category: critical"))
    renamed = classify_store(store, load_catalogs([path]))
    assert (renamed.patterns_evaluated, renamed.cache_hits) == (0, 6)
    assert renamed.categories == {"critical": 5}
    # a new regex for one pattern: only it runs, on every file
    path.write_text(path.read_text().replace("exit\\((?P<code>", "exit\\((?P<status>"))
    edited = classify_store(store, load_catalogs([path]))
    assert (edited.files_evaluated, edited.patterns_evaluated, edited.cache_hits, edited.cache_misses) == (2, 1, 4, 2)
    con = duckdb.connect()
    register_views(con, store, load_catalogs([path]), classify=False)
    assert con.sql("SELECT fields_json FROM matches WHERE pattern_id = 'exit' ORDER BY timestamp").fetchall() == [
        ('{"status":"3"}',), ('{"status":"4"}',)]


def test_new_files_and_deleted_files(tmp_path):
    store = small_store(tmp_path)
    cat = load_catalogs([catalog_file(tmp_path, CAT_V1)])
    classify_store(store, cat)
    store.write([entry("NO_TOKEN three", ts="2025-09-10T03:00:00Z")], "part-c.parquet")
    rep = classify_store(store, cat)
    assert (rep.files, rep.files_evaluated, rep.entries_evaluated, rep.cache_hits) == (3, 1, 1, 6)
    assert rep.matches["tok"] == 3
    (store.root / "entries" / "date=2025-09-09" / "part-a.parquet").unlink()
    rep = classify_store(store, cat)
    assert rep.pruned == 1 and rep.matches == {"tok": 2, "exit": 1, "agents": 1}
    assert not (cache.matches(store.root).folder / "date=2025-09-09" / "part-a").exists()


def test_time_window(tmp_path):
    store = small_store(tmp_path)
    cat = load_catalogs([catalog_file(tmp_path, CAT_V1)])
    since = datetime(2025, 9, 9, 20, 30, tzinfo=UTC)
    until = datetime(2025, 9, 10, 1, 30, tzinfo=UTC)
    rep = classify_store(store, cat, since, until)
    assert (rep.entries, rep.matches, rep.unclassified) == (3, {"tok": 0, "exit": 1, "agents": 1}, 1)
    assert (rep.since, rep.until) == ("2025-09-09T20:30:00Z", "2025-09-10T01:30:00Z")
    con = duckdb.connect()
    register_views(con, store, cat, since=since, until=until)
    assert con.sql("SELECT count(*) FROM entries").fetchall() == [(3,)]
    assert con.sql("SELECT pattern_id FROM matches ORDER BY timestamp").fetchall() == [("exit",), ("agents",)]


def test_views_join_entries_and_matches(tmp_path):
    store = small_store(tmp_path)
    cat = load_catalogs([catalog_file(tmp_path, CAT_V1)])
    con = duckdb.connect()
    assert classify_store(store, cat).matches == {"tok": 2, "exit": 2, "agents": 1}
    views_report = register_views(con, store, cat)  # up to date already: nothing evaluated, no counting pass
    assert (views_report.files_evaluated, views_report.matches) == (0, {})
    cols = [r[0] for r in con.sql("DESCRIBE matches").fetchall()]
    assert cols == ["log_name", "insert_id", "timestamp", "service", "revision", "pattern_id", "category", "title",
                    "fields_json", "catalog", "entry_file", "entry_row", "fingerprint"]
    assert [r[0] for r in con.sql("DESCRIBE entries").fetchall()] == ENTRY_SCHEMA.names
    rows = con.sql("""
        SELECT e.message, e.http_path, m.pattern_id, m.category
        FROM entries e LEFT JOIN matches m USING (log_name, insert_id, timestamp)
        ORDER BY e.timestamp, m.pattern_id
    """).fetchall()
    assert rows == [
        ("NO_TOKEN one", None, "tok", "critical"),
        ("exit(3)", None, "exit", "critical"),
        ("nothing", None, None, None),
        (None, "/api/agents", "agents", "warning"),
        ("NO_TOKEN two exit(4)", None, "exit", "critical"),
        ("NO_TOKEN two exit(4)", None, "tok", "critical"),
    ]
    assert con.sql("SELECT message FROM unclassified").fetchall() == [("nothing",)]
    assert con.sql("SELECT pattern_id, engine_mode FROM patterns ORDER BY pattern_id").fetchall() == [
        ("agents", "exact"), ("exit", "exact-on-ascii"), ("tok", "exact-on-ascii")]


def test_empty_store_views(tmp_path):
    store = TinyStore(tmp_path / "store")
    cat = load_catalogs([catalog_file(tmp_path, CAT_V1)])
    con = duckdb.connect()
    report = classify_store(store, cat)
    assert (report.files, report.entries, report.matches) == (0, 0, {"tok": 0, "exit": 0, "agents": 0})
    assert register_views(con, store, cat).files == 0
    assert con.sql("SELECT count(*) FROM entries").fetchall() == [(0,)]
    assert con.sql("SELECT count(*) FROM matches").fetchall() == [(0,)]


def test_chunks_are_compacted(tmp_path, monkeypatch):
    monkeypatch.setattr(cache, "MAX_CHUNKS", 2)
    store = small_store(tmp_path)
    path = catalog_file(tmp_path, CAT_V1)
    for i in range(4):
        path.write_text("catalog: t\nversion: 1\npatterns:\n" + CAT_V1.replace("NO_TOKEN", f"NO_TOKEN|v{i}"))
        rep = classify_store(store, load_catalogs([path]))
        assert rep.matches["tok"] == 2
    folder = cache.matches(store.root).folder / "date=2025-09-09" / "part-a"
    index = json.loads((folder / "index.json").read_text())
    assert len({c for c in index["fingerprints"].values() if c}) <= 2
    assert sorted(p.name for p in folder.glob("c-*.parquet")) == sorted(
        {c for c in index["fingerprints"].values() if c})


def test_parallel_workers_give_the_same_results(tmp_path, monkeypatch):
    monkeypatch.setattr(classify_mod, "PARALLEL_MIN_BYTES", 0)
    store = small_store(tmp_path)
    cat = load_catalogs([catalog_file(tmp_path, CAT_V1)])
    rep = classify_store(store, cat, workers=2)
    assert rep.workers == 2
    assert rep.matches == {"tok": 2, "exit": 2, "agents": 1}


def test_shipped_catalogs_on_hand_written_entries():
    cat = load_catalogs([PATTERNS])
    rows = [
        entry("❌ CRITICAL: Service dependency validation FAILED", severity="ERROR"),
        entry(" FAIL:  CRITICAL: Service dependency validation FAILED", severity="ERROR"),
        entry("Container called exit(3).", log_id="run.googleapis.com/varlog/system"),
        entry("Container called exit(3).", log_id="run.googleapis.com/stdout"),
        entry(None, http_path="/api/agents", http_status=404),
        entry("WebSocket connection rejected in staging: No JWT=REDACTED", severity="WARNING"),
    ]
    got = classify_table(table(rows), cat)
    assert list(zip(got["entry_row"].to_pylist(), got["pattern_id"].to_pylist(), strict=True)) == [
        (0, "dependency-validation-failed"), (1, "dependency-validation-failed"), (2, "container-exit"),
        (4, "api-agents-not-found"), (5, "ws-rejected-no-jwt")]


# ----------------------------------------------------------------------------- end to end with the sample


@pytest.mark.slow
def test_sample_findings_counted_exactly_as_generated(tmp_path):
    from logaudit.sources.sample import SampleConfig, SampleGenerator
    from logaudit.store.store import Store

    gen = SampleGenerator(SampleConfig(entries=20_000, seed=7))
    store = Store(tmp_path / "store")
    store.ingest_entries(gen, "sample")
    truth = Counter()
    per_revision = Counter()
    for (_service, revision, kind), n in gen.truth.kinds.items():
        truth[kind] += n
        per_revision[(revision, kind)] += n
    cat = load_catalogs([PATTERNS])
    report = classify_store(store, cat)
    assert report.entries == 20_000
    got = {pid: report.matches[pid] for pid in EXPECTED_KINDS}
    want = {pid: sum(truth[k] for k in kinds) for pid, kinds in EXPECTED_KINDS.items()}
    assert got == want
    assert report.matches["python-traceback"] == truth["traceback_single"] + truth["traceback_split"] // 4
    assert all(want[pid] > 0 for pid in EXPECTED_KINDS if EXPECTED_KINDS[pid])
    assert (report.cut, report.timeouts, report.skipped) == (0, {}, {})
    # per revision, through the views
    con = duckdb.connect()
    register_views(con, store, cat, classify=False)
    rows = con.sql("SELECT revision, pattern_id, count(*) FROM matches GROUP BY ALL").fetchall()
    by_rev = {(rev, pid): n for rev, pid, n in rows}
    for pid, kinds in EXPECTED_KINDS.items():
        for rev in {r for r, _ in per_revision}:
            assert by_rev.get((rev, pid), 0) == sum(per_revision[(rev, k)] for k in kinds), (rev, pid)
    # the unclassified WARNING+ templates stay unclassified
    unclassified = dict(con.sql("SELECT effective_severity, count(*) FROM unclassified GROUP BY ALL").fetchall())
    assert unclassified.get("WARNING", 0) >= truth["cache_miss_warning"] + truth["redis_retry_warning"]


def test_cli_classify(tmp_path):
    from click.testing import CliRunner

    from logaudit.cli import main
    from logaudit.store.store import Store

    store = Store(tmp_path / "store")
    store.ingest_entries([
        {"logName": "projects/p/logs/run.googleapis.com%2Fstdout", "insertId": "a1",
         "timestamp": "2025-09-09T20:00:00Z", "severity": "ERROR",
         "resource": {"type": "cloud_run_revision", "labels": {"service_name": "netra-backend-staging",
                                                               "revision_name": "r1", "project_id": "p"}},
         "textPayload": "❌ CRITICAL: Service dependency validation FAILED"},
        {"logName": "projects/p/logs/run.googleapis.com%2Fstdout", "insertId": "a2",
         "timestamp": "2025-09-09T20:00:01Z", "severity": "INFO",
         "resource": {"type": "cloud_run_revision", "labels": {"service_name": "netra-backend-staging",
                                                               "revision_name": "r1", "project_id": "p"}},
         "textPayload": "hello"},
    ], "test")
    runner = CliRunner()
    result = runner.invoke(main, ["classify", "--store", str(tmp_path / "store"), "--patterns", str(PATTERNS)],
                           catch_exceptions=False)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "critical          1  dependency-validation-failed"
    assert lines[-1].startswith("2 entries in 1 files: 1 classified, 1 unclassified; 1 files and 84 patterns evaluated")
    result = runner.invoke(main, ["classify", "--store", str(tmp_path / "store"), "--patterns", str(PATTERNS),
                                  "--format", "json"], catch_exceptions=False)
    doc = json.loads(result.output)
    assert doc["matches"]["dependency-validation-failed"] == 1
    assert (doc["files_evaluated"], doc["cache_hits"]) == (0, 84)


_BOUND = st.none() | st.integers(min_value=0, max_value=700)


@pytest.mark.slow
@given(values=st.lists(st.none() | st.integers(min_value=0, max_value=700), min_size=1, max_size=60),
       cond=st.one_of(
           st.tuples(st.sampled_from([">=", "<=", "eq"]), st.integers(min_value=0, max_value=700))
           .map(lambda t: catalog_model.Condition("http_status", t[0], (t[1],))),
           st.lists(st.tuples(_BOUND, _BOUND, st.booleans(), st.booleans()), min_size=1, max_size=3)
           .map(lambda rs: catalog_model.Condition("http_status", "ranges", tuple(rs)))),
       as_float=st.booleans(), data=st.data())
def test_when_on_numeric_columns_agrees_with_the_reference(values, cond, as_float, data):
    typ = pa.float64() if as_float else pa.int32()
    table = pa.table({"http_status": pa.array(values, typ)})
    rows = np.array(sorted(data.draw(st.sets(st.integers(0, len(values) - 1)))), dtype=np.int64)
    got = engine._When(table).mask(cond, rows)
    assert got.tolist() == [cond.matches_value(values[r]) for r in rows]
    assert engine._When(table).mask(cond, None).tolist() == [cond.matches_value(v) for v in values]  # all rows


ENGINE_CHANGES = {
    "engine version": ("ENGINE_VERSION", "test"),
    "long text": ("LONG_TEXT", 4),
    "regex timeout": ("REGEX_TIMEOUT", 0.5),
    "pattern budget": ("PATTERN_BUDGET", 2.0),
    "max chars": (None, 4),  # a call parameter: part of every cache key
}


@pytest.mark.parametrize("change", list(ENGINE_CHANGES))
def test_a_changed_matching_constant_is_a_cache_miss(tmp_path, monkeypatch, change):
    store = small_store(tmp_path)
    cat = load_catalogs([catalog_file(tmp_path, CAT_V1)])
    first = classify_store(store, cat)
    keys = [cache.cache_key(p) for p in cat]
    folders = {p.name for p in (store.root / "derived" / "matches").glob("[!.]*")}  # shape folders, not .lock
    name, value = ENGINE_CHANGES[change]
    max_chars = value if name is None else engine.DEFAULT_MAX_CHARS
    if name is not None:
        monkeypatch.setattr(engine, name, value)
    again = classify_store(store, cat, max_chars=max_chars)
    assert [cache.cache_key(p, max_chars) for p in cat] != keys
    assert (again.cache_hits, again.cache_misses, again.files_evaluated) == (0, 6, 2)
    cold = classify_store(small_store(tmp_path / "cold"), cat, max_chars=max_chars)
    assert (again.matches, again.matched_entries, again.unclassified) == (cold.matches, cold.matched_entries,
                                                                           cold.unclassified)
    now = {p.name for p in (store.root / "derived" / "matches").glob("[!.]*")}
    if name is None:  # a shorter cut finds less; the engine's shape, hence the folder, is unchanged
        assert first.matches == {"tok": 2, "exit": 2, "agents": 1} and again.matches["exit"] == 0
        assert now == folders and len(now) == 1
    else:  # a new shape folder; the old one goes once unused for an hour
        assert now - folders == {cache.matches(store.root).digest} and folders < now
