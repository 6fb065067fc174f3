"""Message templates: `group_templates` (the one grouping) and its masks (`mask`, `mask_sql`)."""

from __future__ import annotations

import random
import re
import string
from collections import Counter

import duckdb
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import logaudit
from logaudit.analysis.templates import MAX_TEMPLATE_CHARS, group_templates, mask, mask_sql


# ------------------------------------------------------------------------------------ the bugs
@pytest.mark.parametrize(("messages", "expected"), [
    pytest.param(  # short messages are not collapsed into `<*>`
        ["normal", "warning", "running", "critical", "starting"],
        ["normal", "warning", "running", "critical", "starting"], id="short-messages"),
    pytest.param(
        ["Link error", "Link ok", "Link down", "Link up"],
        ["Link error", "Link ok", "Link down", "Link up"], id="two-word-messages"),
    pytest.param(  # a negative number is a number
        ["PacketResponder 1 for block blk_-6952295868487656571 terminating",
         "PacketResponder 0 for block blk_38865049064139660 terminating"],
        ["PacketResponder <*> for block blk_<*> terminating"] * 2, id="negative-numbers"),
    pytest.param(  # a decimal fraction is one number, whatever its length
        ["Job finished in 0.5 seconds", "Job finished in 12.123456789 seconds"],
        ["Job finished in <*> seconds"] * 2, id="decimal-fractions"),
    pytest.param(
        ["Block broadcast_3 stored (estimated size 0.00123456 MB)", "Block broadcast_4 stored (estimated size 93.0 MB)"],
        ["Block broadcast_<*> stored (estimated size <*> MB)"] * 2, id="decimal-fractions-8-digits"),
    pytest.param(  # dates in common formats are one variable
        ["Certificate renewed at Sun Dec 04 04:47:44 2005", "Certificate renewed at Mon Dec 05 10:00:00 2005"],
        ["Certificate renewed at <*>"] * 2, id="dates-with-names"),
    pytest.param(
        ["Nightly export for 2025-09-03 done", "Nightly export for 2025-09-04 done",
         "Nightly export for 2025-09-05T01:00:00Z done", "Nightly export for 03/09/2025 done"],
        ["Nightly export for <*> done"] * 4, id="dates-iso-and-day-first"),
    pytest.param(  # whitespace runs do not split events
        ["Invalid user  0101 from 5.188.10.180", "Invalid user 0 from 181.214.87.4", "Invalid user\tadmin from 10.0.0.1 "],
        ["Invalid user <*> from <*>"] * 3, id="double-spaces"),
    pytest.param(  # a quoted request line keeps its method
        ['upstream 502 for "GET /api/users/123 HTTP/1.1"', 'upstream 503 for "GET /api/users/7 HTTP/1.1"',
         'upstream 502 for "POST /api/users/9 HTTP/1.1"', 'upstream 502 for "DELETE /api/users/9 HTTP/1.1"'],
        ['upstream <*> for "GET /api/users/<*> HTTP/<*>"'] * 2
        + ['upstream <*> for "POST /api/users/<*> HTTP/<*>"', 'upstream <*> for "DELETE /api/users/<*> HTTP/<*>"'],
        id="quoted-request-lines"),
    pytest.param(  # the module that explains the error stays (the same in all occurrences)
        ["ModuleNotFoundError: No module named 'netra_backend.app.monitoring'"] * 3,
        ["ModuleNotFoundError: No module named 'netra_backend.app.monitoring'"] * 3, id="module-name-kept"),
    pytest.param(  # different modules: a template each (a person needs the module name)
        [f"ModuleNotFoundError: No module named 'app.{m}'" for m in ("auth", "billing", "metrics", "agents", "db")],
        [f"ModuleNotFoundError: No module named 'app.{m}'" for m in ("auth", "billing", "metrics", "agents", "db")],
        id="module-names-apart"),
    pytest.param(  # config keys are identifiers, not values
        [f"Missing configuration value: {k}" for k in ("DATABASE_URL", "OPENAI_API_KEY", "REDIS_URL", "JWT_SECRET")],
        [f"Missing configuration value: {k}" for k in ("DATABASE_URL", "OPENAI_API_KEY", "REDIS_URL", "JWT_SECRET")],
        id="config-keys"),
    pytest.param(  # what varies is masked: uuids, ips with a port, timestamps, durations with their unit
        ["Request 0b6f2c1e-9d7a-4c3b-8e21-5f4a3b2c1d0e from 10.1.2.3:443 failed at 2025-09-03T10:00:01.123Z after 37ms",
         "Request 1c7a3d2f-0e8b-4d4c-9f32-6a5b4c3d2e1f from 10.9.8.7:80 failed at 2025-09-04T11:00:01Z after 1.5s"],
        ["Request <*> from <*> failed at <*> after <*>"] * 2, id="ids-ips-timestamps-durations"),
    pytest.param(  # a word taking many values is a variable; two values that say different things are not
        [f"Login failed for user {u}: account locked" for u in ("alice", "bob", "carol", "dave")]
        + ["Failed to connect to redis at 10.0.0.1:6379", "Failed to connect to postgres at 10.0.0.2:5432"],
        ["Login failed for user <*>: account locked"] * 4
        + ["Failed to connect to redis at <*>", "Failed to connect to postgres at <*>"], id="words-that-vary"),
    pytest.param(  # a varying first word does not keep messages apart
        [f"{u} logged in from 10.0.0.{i}" for i, u in enumerate(("alice", "bob", "carol", "dave", "erin"))],
        ["<*> logged in from <*>"] * 5, id="variable-first-word"),
    pytest.param(  # a list of ids of any length is one variable
        ["BLOCK* ask 10.250.18.114:50010 to delete  blk_-5140072410813878235",
         "BLOCK* ask 10.251.126.5:50010 to delete  blk_-9016567407076718172 blk_-8695715290502978219 blk_7168328752988"],
        ["BLOCK* ask <*> to delete blk_<*>"] * 2, id="id-lists"),
])
def test_group_templates_bugs(messages, expected):
    assert group_templates(messages) == expected


def test_group_templates_is_exported_and_handles_empty_input():
    assert logaudit.group_templates is group_templates
    assert group_templates([]) == []
    assert group_templates(["", "  \t", "ok"]) == ["", "", "ok"]
    assert group_templates(iter(["a 1", "a 2"])) == ["a <*>", "a <*>"]
    assert group_templates([None, "a 1", None]) == [None, "a <*>", None]  # as template(None)


def test_mask_examples():
    assert mask("Deleting block blk_-1046472716157313227 at  2025-09-03 10:00:01,123 took 3.5s") == \
        "Deleting block blk_<*> at <*> took <*>s"
    assert mask("rdd_11_0 core.10019 node-246 jk2_init ee0 gpt-4o 0x1f mac 00:1B:44:11:3A:B7") == \
        "rdd_<*>_<*> core.<*> node-<*> jk2_init ee0 gpt-4o <*> mac <*>"
    # a run of variables is one
    assert mask("10/Oct/2000:13:55:36 -0700 alice@example.com [fe80::1]:80 Fan speeds ( 3534 3534 3375 )") == \
        "<*> [<*>]:<*> Fan speeds ( <*> )"
    assert mask("x" * (MAX_TEMPLATE_CHARS + 10)) == "x" * MAX_TEMPLATE_CHARS


# ------------------------------------------------------------------------------------ properties
_PIECES = ["a", "Z", "_", "-", "0", "1", "9", ".", ":", "=", "@", "'", '"', " ", "  ", "\t", "\n", "/", "(", ")",
           "[", "]", ",", ";", "x", "0x", "fF", "e", "é", "٣", "<*>", "<", ">", "*", "ms", "KB", "Dec", "Sun ",
           "May", "T", "Z", "+", "2025-09-03", "12:30:45", "10.0.0.1", "dead:beef::1", "deadbeef", "-7",
           "0b6f2c1e-9d7a-4c3b-8e21-5f4a3b2c1d0e", "a@b.io"]
_TEXT = st.lists(st.sampled_from(_PIECES), max_size=24).map("".join)


@pytest.mark.slow
@settings(max_examples=150, deadline=None)
@given(st.lists(_TEXT, min_size=1, max_size=20))
def test_mask_sql_equals_mask(texts):
    con = duckdb.connect()
    con.register("t", pa.table({"i": list(range(len(texts))), "m": pa.array(texts, pa.string())}))
    got = [r[0] for r in con.execute(f"SELECT {mask_sql('m')} FROM t ORDER BY i").fetchall()]
    assert got == [mask(t) for t in texts]


@settings(max_examples=300, deadline=None)
@given(st.one_of(_TEXT, st.text(max_size=80)))
def test_mask_is_idempotent(text):
    assert mask(mask(text)) == mask(text)


def _wildcard(template: str) -> re.Pattern[str]:
    """`<*>` as any text, a space as any whitespace run."""
    literal = [r"\s+".join(re.escape(w) for w in part.split(" ")) for part in template.split("<*>")]
    return re.compile(r"\s*" + ".*".join(literal) + r"\s*", re.DOTALL)


@pytest.mark.slow
@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(_TEXT, st.text(max_size=60)), max_size=30), st.randoms(use_true_random=False))
def test_group_templates_properties(messages, rnd):
    got = group_templates(messages)
    assert len(got) == len(messages)  # one template per message
    by_message: dict[str, str] = {}
    for m, t in zip(messages, got, strict=True):
        assert by_message.setdefault(m, t) == t  # the same message, the same template
        assert _wildcard(t).fullmatch(m[:MAX_TEMPLATE_CHARS]), (m, t)  # a message matches its own template
    # independent of order and repetitions; masked messages group as the messages do
    shuffled = messages + rnd.sample(messages, len(messages) // 2)
    rnd.shuffle(shuffled)
    assert group_templates(shuffled) == [by_message[m] for m in shuffled]
    assert group_templates([mask(m) for m in messages]) == got


_WORDS = ["cache", "miss", "retry", "worker", "queue", "failed", "request", "upload", "connect", "service",
          "timeout", "node", "disk", "session", "expired", "user", "login", "table", "write", "pool"]


def _value(rnd: random.Random, kind: int) -> str:
    if kind == 0:
        return str(rnd.randrange(-10**12, 10**12))
    if kind == 1:
        return f"{rnd.random() * 10 ** rnd.randrange(6):.{rnd.randrange(1, 9)}f}"
    if kind == 2:
        h = f"{rnd.getrandbits(128):032x}"
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
    if kind == 3:
        return f"0x{rnd.getrandbits(rnd.randrange(4, 64)):x}"
    if kind == 4:
        return ".".join(str(rnd.randrange(256)) for _ in range(4)) + (f":{rnd.randrange(1, 65536)}" if rnd.random() < .5 else "")
    if kind == 5:
        return f"2025-{rnd.randrange(1, 13):02d}-{rnd.randrange(1, 29):02d}T{rnd.randrange(24):02d}:{rnd.randrange(60):02d}:00Z"
    if kind == 6:
        return f"{rnd.getrandbits(64):016x}"
    return f"{rnd.randrange(1, 5000)}ms"


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(_WORDS), st.just(None)), min_size=1, max_size=10),
       st.integers(2, 6), st.randoms(use_true_random=False))
def test_messages_differing_only_in_values_group_together(skeleton, copies, rnd):
    """Words fixed, values (numbers, decimals, uuids, hex, ips, timestamps, durations) drawn anew: one template."""
    # each slot keeps one kind of value in all copies (a message has a shape)
    kinds = [rnd.randrange(8) for _ in skeleton]
    messages = []
    for _ in range(copies):
        parts = []
        for word, kind in zip(skeleton, kinds, strict=True):
            parts.append(word if word is not None else _value(rnd, kind))
        messages.append(" ".join(parts))
    got = group_templates(messages)
    assert len(set(got)) == 1, (messages, got)
    assert [w for w in got[0].split(" ") if "<*>" not in w] == [w for w in skeleton if w is not None]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(_WORDS), min_size=1, max_size=8), st.integers(0, 7), st.sampled_from(_WORDS),
       st.integers(2, 5))
def test_messages_differing_in_a_fixed_word_stay_apart(skeleton, at, other, copies):
    at %= len(skeleton)
    if other == skeleton[at]:
        return
    twin = [*skeleton[:at], other, *skeleton[at + 1:]]
    messages = [" ".join([*s, f"after {i}ms"]) for s in (skeleton, twin) for i in range(copies)]
    got = group_templates(messages)
    assert len(set(got[:copies])) == len(set(got[copies:])) == 1
    assert got[0] != got[-1]


# ------------------------------------------------------------------------------------ accuracy
_FAMILIES = [
    lambda r: f"Cache miss for key user:{r.randrange(99999)}:profile after {r.randrange(1, 300)}ms",
    lambda r: f"Retrying Redis connection to 10.0.{r.randrange(256)}.{r.randrange(256)}:6379 (attempt {r.randrange(1, 6)})",
    lambda r: f"Request req_{''.join(r.choices(string.ascii_letters + string.digits, k=12))} timed out after {r.randrange(60)}s",
    lambda r: f"Login failed for user {r.choice(['alice', 'bob', 'carol', 'dave', 'erin', 'frank'])}: account locked",
    lambda r: f"Login failed for user {r.choice(['alice', 'bob', 'carol', 'dave', 'erin', 'frank'])}: invalid password",
    lambda r: f"Failed to connect to redis at 10.1.{r.randrange(256)}.{r.randrange(256)}:6379",
    lambda r: f"Failed to connect to postgres at 10.2.{r.randrange(256)}.{r.randrange(256)}:5432",
    lambda r: f"Slow query on table {r.choice(['users', 'runs', 'threads', 'agents', 'tenants'])} took {r.random() * 900:.2f} ms",
    lambda r: f"ModuleNotFoundError: No module named 'netra_backend.app.{r.choice(['monitoring', 'metrics'])}'",
    lambda r: f"Upload of gs://bucket/{r.getrandbits(64):016x}/file.pdf failed with {r.choice([500, 502, 503])}",
    lambda r: f"[{r.randrange(1, 28):02d}/Sep/2025:{r.randrange(24):02d}:10:00 +0000] worker {r.randrange(40)} exited with code {r.randrange(1, 4)}",
    lambda r: f"Token for session sess_{r.getrandbits(80):020x} expired at 2025-09-{r.randrange(1, 29):02d}T10:00:00.{r.randrange(1000):03d}Z",
    lambda r: "Missing configuration value: DATABASE_URL",
    lambda r: "Missing configuration value: OPENAI_API_KEY",
]


def _grouping_accuracy(truth: list[object], groups: list[str]) -> float:
    size = Counter(truth)
    members: dict[str, list[object]] = {}
    for t, g in zip(truth, groups, strict=True):
        members.setdefault(g, []).append(t)
    return sum(len(ts) for ts in members.values() if len(set(ts)) == 1 and size[ts[0]] == len(ts)) / len(truth)


def test_grouping_accuracy_on_a_generated_corpus():
    """The generated families (module names 2 of them: each its own template) are grouped exactly."""
    r = random.Random(7)
    truth, messages = [], []
    for _ in range(1500):
        family = r.randrange(len(_FAMILIES))
        message = _FAMILIES[family](r)
        if family == 8:  # a module name is part of what the message says
            family = (family, message)
        truth.append(family)
        messages.append(message)
    got = group_templates(messages)
    assert _grouping_accuracy(truth, got) == 1.0
    assert len(set(got)) == len(_FAMILIES) + 1
    assert sorted(set(got)) == [
        "Cache miss for key user:<*>:profile after <*>ms",
        "Failed to connect to postgres at <*>",
        "Failed to connect to redis at <*>",
        "Login failed for user <*>: account locked",
        "Login failed for user <*>: invalid password",
        "Missing configuration value: DATABASE_URL",
        "Missing configuration value: OPENAI_API_KEY",
        "ModuleNotFoundError: No module named 'netra_backend.app.metrics'",
        "ModuleNotFoundError: No module named 'netra_backend.app.monitoring'",
        "Request <*> timed out after <*>s",
        "Retrying Redis connection to <*> (attempt <*>)",
        "Slow query on table <*> took <*> ms",
        "Token for session sess_<*> expired at <*>",
        "Upload of gs://bucket/<*>/file.pdf failed with <*>",
        "[<*>] worker <*> exited with code <*>",
    ]
