"""Fuzz: random and mutated LogEntry files through the real CLI, ingest to export.

Every example writes one generated file (entries with any mix of missing, empty and odd-typed
fields, edge timestamps, odd severities, nested and huge values, unicode, control characters,
markup-like text, hostile service and revision names, planted secrets), in one of the formats
the readers accept (optionally gzipped, with a byte-order mark or CRLF line ends), then maybe
damages it (byte flips, truncation, garbage, a repeated slice). The CLI runs in-process (click's
CliRunner with catch_exceptions=False, so a traceback fails the example) and checks:

- every command exits with a code from its table (EXIT, COMPARE_EXIT), and no output holds a
  traceback or an "unexpected" failure;
- ingest: read = new + duplicate + rejected, per source and in total; an undamaged file is read
  whole (one item per entry) and stores what its JSON Lines form stores;
- nothing is written outside the store, the report --out and the export --out directories
  (the example's whole directory, with HOME and the working directory inside it, is compared
  before and after);
- no planted secret (tests/fixtures/secrets-corpus.yaml) is in any stdout or stderr, any file
  written by report or export, the exported Parquet read back, or the store's rejects and
  manifest: a secret counts when every copy of it in the input sits in an undamaged copy of its
  line (damage can cut a secret from the words that make it one).

tests/fixtures/hostile/ holds hand-made files with their exact counts (expected.json).
`python -m pytest tests/test_fuzz.py --hypothesis-profile long` runs the long fuzz (docs/testing.md).
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import traceback
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from logaudit.sources.files import Yaml12Loader
from logaudit.store.store import Store

FIXTURES = Path(__file__).parent / "fixtures"
HOSTILE = FIXTURES / "hostile"

# ------------------------------------------------------------------------------ exit codes
#: The README's exit codes, by meaning: a renumbering changes one line here.
EXIT = {"ok": 0, "rejected": 7, "usage": 64, "input": 3, "catalog": 4, "cloud": 5, "locked": 6}
#: `compare` has its own (docs/compare.md).
COMPARE_EXIT = {"ready": 0, "marginal": 1, "not ready": 2, "usage": 64}
#: What each command may answer to anything the fuzz test puts in a store.
ALLOWED = {
    "ingest": {EXIT["ok"], EXIT["rejected"]},
    "summarize": {EXIT["ok"]},
    "report": {EXIT["ok"]},
    "export": {EXIT["ok"]},
    "store info": {EXIT["ok"]},
    "store check": {EXIT["ok"]},
    "compare": set(COMPARE_EXIT.values()),
}

def fuzz_examples(ci: int) -> int:
    """`ci` examples under the default profile ("ci"), scaled by the loaded profile's
    max_examples against the default's (`--hypothesis-profile long`: tests/conftest.py)."""
    return max(1, ci * settings.default.max_examples // settings.get_profile("ci").max_examples)


def fuzz_settings(ci_examples: int) -> settings:
    """The fuzz tests' settings: `fuzz_examples(ci_examples)` examples, no deadline."""
    return settings(max_examples=fuzz_examples(ci_examples), deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much, HealthCheck.large_base_example])

# ------------------------------------------------------------------------------ planted secrets
CORPUS = yaml.safe_load((FIXTURES / "secrets-corpus.yaml").read_text())
SECRET_LINES = [(c["line"], tuple(c["secrets"])) for c in CORPUS["secrets"]]
SECRET_URLS = [(c["url"], tuple(c["secrets"])) for c in CORPUS["urls"]]
SECRET_PAYLOADS = [(c["payload"], tuple(c["secrets"])) for c in CORPUS["structured"]]


@dataclass
class Plant:
    """A secret-bearing text (a line or URL: `text`) or payload (`payload`) put into an entry."""

    secrets: tuple[str, ...]
    text: str | None = None
    payload: dict | None = None


# ------------------------------------------------------------------------------ strategies
MARKUP = ["[bold red]boom[/]", "[/]", "[link=file:///etc/passwd]x[/link]", "[[", "]]", "[/bold", "<script>alert(1)</script>",
          "| a | b |\n|---|", "```", "**x**", "<!--", "&amp;", "\x1b[31mred\x1b[0m", "\x1b]8;;http://x\x07", "%s%n%d",
          "{0}", "{{x}}", "\u202eevil", "\ufeff", "\u2028", "\x00", "\r", "\t", "\\", "\"", "'", "nan", "NaN", "null",
          "Infinity", "-0", "1e400", "yes", "no", "~", "0o17", "0x1F", "1_000", "10:30", "2026-03-02T10:00:00Z",
          "DEBUG", "error", "---", "...", "%YAML 1.1", "&a *a", "!!python/object:os.system", "\U0001f600" * 3]

texts = st.one_of(
    st.text(max_size=40),
    st.sampled_from(MARKUP),
    st.lists(st.sampled_from(MARKUP) | st.text(max_size=8), max_size=5).map("".join),
    st.text(st.characters(codec="ascii"), max_size=20),
)

leaves = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.integers(-5, 5),
    st.floats(allow_nan=False, allow_infinity=False), texts,
)
json_values = st.recursive(leaves, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
                           max_leaves=12)
odd = st.one_of(json_values, st.sampled_from(["", " ", {}, [], 0, -1, True, None, "\x00", "x" * 300]))


def nested(depth: int, leaf: object = "deep") -> object:
    """`depth` levels of lists and objects around `leaf`."""
    value = leaf
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


#: Timestamps at the edges of what the store holds and of RFC 3339, and near misses.
EDGE_TIMESTAMPS = [
    "1677-09-21T00:12:43.145224194Z", "1677-09-21T00:12:43.145224193Z",
    "2262-04-11T23:47:16.854775806Z", "2262-04-11T23:47:16.854775807Z", "2262-04-11T23:47:16Z",
    "1970-01-01T00:00:00Z", "1969-12-31T23:59:59.999999999Z", "2016-12-31T23:59:60Z", "2016-12-31T23:59:60.5Z",
    "2026-06-30T12:59:60Z", "2024-02-29T00:00:00Z", "2026-02-29T00:00:00Z", "2026-03-02T24:00:00Z",
    "2026-03-02T10:00:00+23:59", "2026-03-02T10:00:00-24:00", "2026-03-02T10:00:00+05:30", "2026-03-02 10:00:00Z",
    "2026-03-02t10:00:00z", "2026-03-02T10:00:00", "2026-03-02", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z",
    " 2026-03-02T10:00:00Z", "2026-03-02T10:00:00.1234567891Z", "+2026-03-02T10:00:00Z", "２０２６-03-02T10:00:00Z",
]


@st.composite
def timestamps(draw) -> object:
    kind = draw(st.integers(0, 9))
    if kind < 5:  # the usual: this year and last, any precision, any offset
        secs = draw(st.integers(1_735_689_600, 1_798_761_599))  # 2025-01-01 .. 2026-12-31
        digits = draw(st.integers(0, 9))
        frac = f".{draw(st.integers(0, 10**digits - 1)):0{digits}d}" if digits else ""
        offset = draw(st.sampled_from(["Z", "Z", "+00:00", "+02:00", "-07:30", "z"]))
        return _rfc3339(secs, frac, offset)
    if kind < 8:
        return draw(st.sampled_from(EDGE_TIMESTAMPS))
    return draw(odd)


def _rfc3339(secs: int, frac: str, offset: str) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + frac + offset


SEVERITIES = ["DEFAULT", "DEBUG", "INFO", "NOTICE", "WARNING", "ERROR", "CRITICAL", "ALERT", "EMERGENCY",
              "warn", "Err", "fatal", "E", "w", " error ", "ERROR\x00", "500", "450", "999999999999999999999",
              "-100", "0", "ｅｒｒｏｒ", "İNFO", ""]
severities = st.one_of(st.sampled_from(SEVERITIES), st.integers(-1000, 10**6), odd)

#: Service and revision names that must never become paths: traversal, absolute paths, NUL,
#: separators, home and variables, very long names. `{ROOT}` becomes the example's directory.
HOSTILE_NAMES = ["../../x", "..", ".", "a/../../b", "/tmp/logaudit-fuzz-x", "{ROOT}/planted", "{ROOT}/../planted",
                 "x\x00y", "\x00", "a" * 300, "é" * 200, "/".join(["a"] * 60), "~", "~/x", "$HOME", "..\\..\\x",
                 "C:\\x", "%2e%2e%2fx", "%%", "con", " ", "\n", "-rf", "--help", "*", "svc/", ".hidden", "report",
                 "charts", "x.png", "a\\b", "\u202e", "\U0001f600"]
names = st.one_of(st.sampled_from(["hello", "netra-backend-staging", "api", ""]), st.sampled_from(HOSTILE_NAMES),
                  texts)
revisions = st.one_of(st.sampled_from(["hello-00001-abc", "hello-00002-xyz", "api-00001-aaa", ""]),
                      st.sampled_from(HOSTILE_NAMES), texts)

LOG_NAMES = ["projects/p/logs/run.googleapis.com%2Fstdout", "projects/p/logs/run.googleapis.com%2Fstderr",
             "projects/p/logs/run.googleapis.com%2Frequests", "projects/p/logs/run.googleapis.com%2Fvarlog%2Fsystem",
             "projects/p/logs/cloudaudit.googleapis.com%2Factivity", "projects/../logs/%2E%2E%2F%2E%2E", "p",
             "projects/p/logs/%ZZ", "projects/p/logs/" + "%2F" * 50]


def _sometimes(draw, good, bad=odd, missing: int = 2, bad_weight: int = 2):
    """A field's value (good most of the time, else odd) or `_MISSING`."""
    roll = draw(st.integers(0, 9))
    if roll < missing:
        return _MISSING
    if roll < missing + bad_weight:
        return draw(bad)
    return draw(good)


_MISSING = object()


@st.composite
def http_requests(draw) -> object:
    req = {}
    for key, good in [("requestMethod", st.sampled_from(["GET", "POST", "", "get", "\x00"])),
                      ("requestUrl", st.sampled_from(["https://a.run.app/api/items?id=42", "/", "", "http://[::1",
                                                      "https://a.run.app/" + "x/" * 100, "https://a.run.app/%ZZ?%%"])
                       | texts),
                      ("status", st.sampled_from([200, 404, 500, 503, "500", "200.0", 0, -1, 2**40, 99.5])),
                      ("latency", st.sampled_from(["0.123456789s", "1s", "s", "-1s", "1e9s", "0.5", "",
                                                   {"seconds": 1, "nanos": 5}, {"seconds": "x"}, 3])),
                      ("userAgent", texts), ("remoteIp", st.sampled_from(["203.0.113.7", "::1", "x"])),
                      ("requestSize", st.sampled_from(["512", 512, "-1", "9" * 30, "1.5"])),
                      ("responseSize", st.sampled_from(["1543", 0, "x"])), ("protocol", st.sampled_from(["HTTP/1.1", ""]))]:
        value = _sometimes(draw, good, missing=3, bad_weight=1)
        if value is not _MISSING:
            req[key] = value
    return req


@st.composite
def log_entries(draw) -> dict:
    """One LogEntry, each field good, odd or missing; it always has at least one LogEntry field
    (else it could be read as an object wrapping entries, by design)."""
    e: dict = {}

    def put(key: str, value: object) -> None:
        if value is not _MISSING:
            e[key] = value

    put("logName", _sometimes(draw, st.sampled_from(LOG_NAMES)))
    labels = {k: v for k, v in [("project_id", _sometimes(draw, st.just("p"), missing=1, bad_weight=1)),
                                ("service_name", _sometimes(draw, names, missing=1, bad_weight=1)),
                                ("revision_name", _sometimes(draw, revisions, missing=1, bad_weight=1)),
                                ("configuration_name", _sometimes(draw, names, missing=3, bad_weight=1)),
                                ("location", _sometimes(draw, st.just("europe-west1"), missing=3, bad_weight=1))]
              if v is not _MISSING}
    put("resource", _sometimes(draw, st.just({"type": "cloud_run_revision", "labels": labels}), missing=1, bad_weight=1))
    put("timestamp", _sometimes(draw, timestamps(), missing=1, bad_weight=1))
    put("receiveTimestamp", _sometimes(draw, timestamps(), missing=5, bad_weight=1))
    put("severity", _sometimes(draw, severities, missing=2, bad_weight=1))
    put("insertId", _sometimes(draw, st.sampled_from(["a", "b", "c", "id-1"]) | st.text(max_size=12), missing=2,
                               bad_weight=1))
    payload = draw(st.integers(0, 5))
    if payload in (0, 4):
        put("textPayload", _sometimes(draw, texts, missing=0, bad_weight=1))
    if payload in (1, 4):
        body = draw(st.dictionaries(texts, json_values, max_size=4))
        put("jsonPayload", _sometimes(draw, st.just({"message": draw(texts), **body}), missing=0, bad_weight=2))
    if payload == 2:
        put("protoPayload", draw(st.sampled_from([
            {"@type": "type.googleapis.com/google.cloud.audit.AuditLog", "methodName": "Services.ReplaceService",
             "authenticationInfo": {"principalEmail": "dev@example.com"}, "status": {}},
            {"@type": "type.googleapis.com/google.cloud.audit.AuditLog", "status": {"code": "x", "message": 5}},
            {"status": None}, {}]) | odd))
    if draw(st.integers(0, 3)) == 0:
        put("httpRequest", _sometimes(draw, http_requests(), missing=0, bad_weight=1))
    if draw(st.integers(0, 2)) == 0:
        put("labels", _sometimes(draw, st.dictionaries(texts, texts, max_size=3), missing=0, bad_weight=1))
    for key, good in [("trace", st.just("projects/p/traces/4bf92f3577b34da6a3ce929d0e0e4736")),
                      ("spanId", st.just("00f067aa0ba902b7")), ("traceSampled", st.booleans()),
                      ("sourceLocation", st.just({"file": "app.py", "line": "42", "function": "main"})),
                      ("operation", st.just({"id": "op", "first": True, "last": False}))]:
        if draw(st.integers(0, 5)) == 0:
            put(key, _sometimes(draw, good, missing=0, bad_weight=1))
    if draw(st.integers(0, 5)) == 0:
        e.update(draw(st.dictionaries(texts, json_values, max_size=2)))
    if draw(st.integers(0, 12)) == 0:  # nested around the depth limit (128), or a big text
        e.setdefault("jsonPayload", {})
        big = draw(st.sampled_from([nested(120), nested(127), nested(129), nested(300), "x" * 70_000, ["y"] * 3000]))
        e["jsonPayload"] = {"message": "big", "big": big} if not isinstance(e["jsonPayload"], dict) \
            else {**e["jsonPayload"], "big": big}
    if not {"logName", "timestamp", "severity", "insertId", "resource"} & set(e):
        e["severity"] = "INFO"
    return e


@st.composite
def plants(draw) -> list[Plant]:
    """One to three secret-bearing texts or payloads."""
    out = []
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.integers(0, 2))
        if kind == 0:
            line, secrets = draw(st.sampled_from(SECRET_LINES))
            out.append(Plant(secrets, text=line))
        elif kind == 1:
            url, secrets = draw(st.sampled_from(SECRET_URLS))
            out.append(Plant(secrets, text=url))
        else:
            payload, secrets = draw(st.sampled_from(SECRET_PAYLOADS))
            out.append(Plant(secrets, payload=payload))
    return out


def plant(entry: dict, what: Plant, where: int) -> dict:
    """`entry` with the secret `what` in one place: textPayload, jsonPayload message or nested
    field, a label value, the request URL (texts), or jsonPayload fields (payloads)."""
    e = dict(entry)
    if what.payload is not None:
        body = e.get("jsonPayload") if isinstance(e.get("jsonPayload"), dict) else {"message": "structured"}
        e["jsonPayload"] = {**body, **what.payload}
        return e
    text = what.text
    if where == 0:
        e["textPayload"] = f"{e['textPayload']} {text}" if isinstance(e.get("textPayload"), str) else text
    elif where == 1:
        body = e.get("jsonPayload") if isinstance(e.get("jsonPayload"), dict) else {}
        e["jsonPayload"] = {**body, "message": text}
    elif where == 2:
        body = e.get("jsonPayload") if isinstance(e.get("jsonPayload"), dict) else {"message": "context"}
        e["jsonPayload"] = {**body, "context": {"request": {"detail": text}}}
    elif where == 3:
        labels = e.get("labels") if isinstance(e.get("labels"), dict) else {}
        e["labels"] = {**labels, "note": text}
    else:
        req = e.get("httpRequest") if isinstance(e.get("httpRequest"), dict) else {"requestMethod": "GET", "status": 500}
        e["httpRequest"] = {**req, "requestUrl": text}
    return e


# ------------------------------------------------------------------------------ file formats
class _Yaml11Dumper(yaml.SafeDumper):
    """PyYAML's writer without anchors and aliases (a value used twice is written twice), as
    gcloud writes."""

    def ignore_aliases(self, data: object) -> bool:
        return True


def _represent_str_11(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    # PyYAML writes NEL, LS and PS as they are, which its reader then folds into spaces
    style = '"' if any(c in text for c in "\x85\u2028\u2029") else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_Yaml11Dumper.add_representer(str, _represent_str_11)


class _Yaml12Dumper(_Yaml11Dumper):
    """PyYAML writes YAML 1.1; gcloud writes YAML 1.2, which reads some plain texts differently
    (`0o17` is a number there): such texts are quoted, as gcloud's writer does."""


def _represent_str(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    tag = Yaml12Loader.resolve(Yaml12Loader, yaml.ScalarNode, text, (True, False))
    style = '"' if tag != "tag:yaml.org,2002:str" or any(c in text for c in "\x85\u2028\u2029") else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_Yaml12Dumper.add_representer(str, _represent_str)


def _json(value: object, ascii_only: bool, **kw) -> str:
    return json.dumps(value, ensure_ascii=ascii_only, allow_nan=False, **kw)


def serialise(entries: list[dict], fmt: str, ascii_only: bool = False) -> bytes:
    """`entries` as a file of format `fmt` (every layout the readers detect)."""
    if fmt == "jsonl":
        text = "".join(_json(e, ascii_only) + "\n" for e in entries)
    elif fmt == "array-pretty":  # gcloud --format=json
        text = _json(entries, ascii_only, indent=2) + "\n"
    elif fmt == "array-compact":
        text = _json(entries, ascii_only, separators=(",", ":"))
    elif fmt == "objects":  # jq .[]
        text = "".join(_json(e, ascii_only, indent=2) + "\n" for e in entries)
    elif fmt == "yaml":  # gcloud --format=yaml
        text = "".join("---\n" + yaml.dump(e, Dumper=_Yaml12Dumper, allow_unicode=not ascii_only, sort_keys=True,
                                           width=1 << 30) for e in entries)
    elif fmt == "yaml-1.1":  # documents declaring YAML 1.1 are read with its rules
        text = "".join(yaml.dump(e, Dumper=_Yaml11Dumper, allow_unicode=not ascii_only, sort_keys=True,
                                 width=1 << 30, explicit_start=True, version=(1, 1)) for e in entries)
    elif fmt == "wrapped-pretty":
        text = _json({"entries": entries, "nextPageToken": "t"}, ascii_only, indent=2)
    elif fmt == "wrapped-compact":
        text = _json({"entries": entries}, ascii_only)
    elif fmt == "wrapped-lines":  # API pages, one per line
        pages = [entries[i:i + 3] for i in range(0, len(entries), 3)]
        text = "".join(_json({"entries": p, "nextPageToken": str(i)}, ascii_only) + "\n" for i, p in enumerate(pages))
    else:
        raise ValueError(fmt)
    return text.encode()


FORMATS = ["jsonl", "array-pretty", "array-compact", "objects", "yaml", "yaml-1.1", "wrapped-pretty",
           "wrapped-compact", "wrapped-lines"]
GARBAGE = [b"\x00", b"\xff\xfe", b"\xef\xbb\xbf", b"]", b"}", b"[", b"{", b",", b'"', b"\\", b'{"a":', b"NaN",
           b"Infinity", b"---\n", b"\n", b"\r\n", b"\x1f\x8b", b"&a *a", b"- ", b"\xc3", b"\xed\xa0\x80", b"1e999"]


@st.composite
def mutations(draw) -> list[tuple]:
    """Up to three damages, as (kind, position fraction, bytes)."""
    return draw(st.lists(st.tuples(st.sampled_from(["flip", "cut", "insert", "repeat", "delete"]),
                                   st.floats(0, 1), st.sampled_from(GARBAGE) | st.binary(min_size=1, max_size=6)),
                         max_size=3))


def mutate(data: bytes, muts: list[tuple]) -> bytes:
    for kind, at, junk in muts:
        i = min(int(at * len(data)), max(len(data) - 1, 0))
        if kind == "flip" and data:
            data = data[:i] + bytes([data[i] ^ (junk[0] or 1)]) + data[i + 1:]
        elif kind == "cut":
            data = data[:i]
        elif kind == "insert":
            data = data[:i] + junk + data[i:]
        elif kind == "repeat":
            data = data[:i] + data[i:i + 40 + len(junk) * 20] + data[i:]
        elif kind == "delete":
            data = data[:i] + data[i + len(junk) * 7:]
    return data


def tolerant_gunzip(data: bytes) -> bytes:
    """What a reader gets out of possibly damaged gzip data (members up to the damage)."""
    out, rest = [], data
    while rest[:2] == b"\x1f\x8b":
        member = zlib.decompressobj(zlib.MAX_WBITS | 16)
        try:
            out.append(member.decompress(rest))
        except zlib.error:
            break
        if not member.eof:
            break
        rest = member.unused_data
    return b"".join(out)


@dataclass
class Input:
    """One generated input file: its entries, how it was written, and the secrets it holds."""

    entries: list[dict]
    fmt: str
    gz: bool = False
    bom: bool = False
    crlf: bool = False
    ascii_only: bool = False
    damage: list[tuple] = field(default_factory=list)
    damage_gz: bool = False  # the damage hits the compressed bytes
    planted: list[Plant] = field(default_factory=list)

    def text_bytes(self) -> bytes:
        data = serialise(self.entries, self.fmt, self.ascii_only)
        if self.crlf and self.fmt in ("jsonl", "array-pretty", "objects", "wrapped-lines"):
            data = data.replace(b"\n", b"\r\n")
        if self.bom:
            data = b"\xef\xbb\xbf" + data
        return data if self.gz and self.damage_gz else mutate(data, self.damage)

    def file_bytes(self) -> bytes:
        data = self.text_bytes()
        if self.gz:
            data = gzip.compress(data, mtime=0)
            if self.damage_gz:
                data = mutate(data, self.damage)
        return data

    @property
    def name(self) -> str:
        return f"in.{'yaml' if self.fmt.startswith('yaml') else 'json'}" + (".gz" if self.gz else "")

    def checked_secrets(self) -> list[str]:
        """The planted secrets every copy of which sits in an undamaged copy of its text: these
        must not come out (a damaged copy may have lost the words that make it a secret)."""
        data = tolerant_gunzip(self.file_bytes()) if self.gz else self.file_bytes()
        text = data.decode("utf-8", "replace")
        out = []
        for p in self.planted:
            if p.payload is not None:  # the secret's key is its context: only in undamaged files
                out += list(p.secrets) if not self.damage else []
                continue
            forms = {p.text, _json(p.text, self.ascii_only)[1:-1], p.text.replace("'", "''")}
            out += [s for s in p.secrets if _covered(text, s, forms)]
        return sorted(set(out))


def _covered(text: str, secret: str, forms: set[str]) -> bool:
    """Whether every occurrence of `secret` in `text` lies inside an occurrence of one of `forms`."""
    spans = [(i, i + len(f)) for f in forms for i in _find_all(text, f)]
    return all(any(a <= i and i + len(secret) <= b for a, b in spans) for i in _find_all(text, secret))


def _find_all(text: str, part: str) -> list[int]:
    out, i = [], text.find(part)
    while i >= 0:
        out.append(i)
        i = text.find(part, i + 1)
    return out


@st.composite
def inputs(draw, *, damage: bool = True, max_entries: int = 8) -> Input:
    entries = draw(st.lists(log_entries(), min_size=1, max_size=max_entries))
    secrets = draw(plants())
    for what in secrets:
        i = draw(st.integers(0, len(entries) - 1))
        entries[i] = plant(entries[i], what, draw(st.integers(0, 4)))
    if draw(st.integers(0, 4)) == 0:  # the same entries again: duplicates
        entries += draw(st.lists(st.sampled_from(entries), max_size=3))
    fmt = draw(st.sampled_from(FORMATS))
    return Input(entries, fmt, gz=draw(st.booleans()), bom=draw(st.integers(0, 5)) == 0, crlf=draw(st.booleans()),
                 ascii_only=draw(st.booleans()), damage=draw(mutations()) if damage else [],
                 damage_gz=draw(st.booleans()), planted=secrets)


# ------------------------------------------------------------------------------ running the CLI
@dataclass
class World:
    """The directory of one example: everything the CLI may touch lives below `root`."""

    root: Path
    runs: list[tuple[str, Result]] = field(default_factory=list)

    @property
    def store(self) -> Path:
        return self.root / "store"

    @property
    def report(self) -> Path:
        return self.root / "report"

    @property
    def export(self) -> Path:
        return self.root / "export"

    def cli(self, *args: object) -> Result:
        """Run `logaudit ARGS` in-process; an exception escaping the command fails the example
        with its traceback and the command (an unexpected exception is a bug in logaudit)."""
        from logaudit.cli import main

        argv = [str(a) for a in args]
        env = {"HOME": str(self.root / "home"), "LOGAUDIT_STORE": None, "LOGAUDIT_REDACT_CONFIG": None,
               "COLUMNS": "80", "LOGAUDIT_PATTERNS": None, "LOGAUDIT_CATALOG": None, "MPLCONFIGDIR": MPLCONFIGDIR}
        with contextlib.chdir(self.root / "cwd"):
            try:
                result = CliRunner().invoke(main, argv, env=env, catch_exceptions=False)
            except Exception as err:
                where = _area(err)
                raise AssertionError(f"`logaudit {' '.join(argv[:3])}` crashed ({where}): {type(err).__name__}: "
                                     f"{err}\n{''.join(traceback.format_exception(err))}") from err
        name = " ".join(argv[:2]) if argv[0] == "store" else argv[0]
        self.runs.append((" ".join(argv), result))
        assert "Traceback (most recent call last)" not in result.stderr + result.stdout, (argv, result.stderr)
        assert "unexpected" not in result.stderr, (argv, result.stderr)
        assert result.exit_code in ALLOWED[name], (argv, result.exit_code, result.stdout[-2000:], result.stderr[-2000:])
        return result


#: HOME is inside the watched folder; matplotlib keeps its font cache where it already is.
MPLCONFIGDIR = __import__("matplotlib").get_configdir()
RENDER_MODULES = ("logaudit/present/summary.py", "logaudit/present/report.py", "logaudit/present/charts.py",
                  "logaudit/present/display.py")


def _area(err: BaseException) -> str:
    """'rendering' when the innermost logaudit frame of `err` is in the rendering code."""
    frames = [f.filename for f in traceback.extract_tb(err.__traceback__) if "/logaudit/" in f.filename]
    inner = frames[-1] if frames else ""
    return "rendering: " + inner.rsplit("/", 1)[-1] if inner.endswith(RENDER_MODULES) else "in " + inner


@contextlib.contextmanager
def world() -> World:
    with tempfile.TemporaryDirectory(prefix="logaudit-fuzz-") as tmp:
        root = Path(tmp)
        for sub in ("in", "cwd", "home"):
            (root / sub).mkdir()
        yield World(root)


def snapshot(root: Path) -> dict[str, tuple]:
    """Every path below `root` (links not followed) with its type, size and modification time."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            st_ = path.lstat()
            out[path.relative_to(root).as_posix()] = (st_.st_mode, st_.st_size, st_.st_mtime_ns)
    return out


def changed_outside(before: dict, after: dict, allowed: tuple[str, ...]) -> list[str]:
    changed = {p for p in before.keys() | after.keys() if before.get(p) != after.get(p)}
    return sorted(p for p in changed if p.split("/", 1)[0] not in allowed)


def substitute_root(inp: Input, root: Path) -> None:
    """Hostile names naming the example's directory (`{ROOT}`) get its real path."""
    def fix(value: object) -> object:
        if isinstance(value, str):
            return value.replace("{ROOT}", str(root))
        if isinstance(value, dict):
            return {fix(k): fix(v) for k, v in value.items()}
        if isinstance(value, list):
            return [fix(v) for v in value]
        return value

    inp.entries = [fix(e) for e in inp.entries]


def ingest_checked(w: World, inp: Input) -> dict:
    """Ingest the input through the CLI and check its counts; returns the JSON report."""
    path = w.root / "in" / inp.name
    if not path.exists():
        path.write_bytes(inp.file_bytes())
    result = w.cli("ingest", path, "--store", w.store, "--format", "json", "--quiet")
    report = strict_json(result.stdout)
    for s in report["sources"]:
        assert s["read"] == s["new_rows"] + s["duplicates"] + s["rejected"], s
    assert report["read"] == report["new_rows"] + report["duplicates"] + report["rejected"]
    bad = report["rejected"] or report["files_failed"]
    assert result.exit_code == (EXIT["rejected"] if bad else EXIT["ok"]), report
    if not inp.damage:  # whole: every entry is one item, and nothing breaks off
        assert report["read"] == len(inp.entries), report
        assert report["files_failed"] == 0, report["sources"][0]["notes"]
    return report


def strict_json(text: str) -> object:
    """Parsed JSON, refusing NaN and Infinity (Python's reader takes them; JSON has none)."""
    def refuse(token: str) -> None:
        raise AssertionError(f"{token} in JSON output")

    return json.loads(text, parse_constant=refuse)


def leaks(text: str, secrets: list[str]) -> list[str]:
    return [s for s in secrets if s in text]


def check_no_leaks(w: World, secrets: list[str]) -> None:
    for argv, result in w.runs:
        assert leaks(result.stdout + result.stderr, secrets) == [], argv
    written = [p for d in (w.report, w.export, w.store / "rejects", w.store / "manifest") if d.exists()
               for p in d.rglob("*") if p.is_file()]
    for path in written:
        assert leaks(path.read_bytes().decode("latin-1"), secrets) == [], path.relative_to(w.root)
        assert leaks(path.read_bytes().decode("utf-8", "replace"), secrets) == [], path.relative_to(w.root)
        if path.suffix == ".parquet":
            table = pq.read_table(path)
            for name in table.column_names:
                if pa.types.is_string(table.schema.field(name).type):
                    values = "\n".join(v for v in table[name].to_pylist() if v)
                    assert leaks(values, secrets) == [], (path.relative_to(w.root), name)


def export_window(w: World) -> tuple[str, str]:
    """An export period holding every stored entry (RFC 3339, whole seconds)."""
    from datetime import timedelta

    ts = Store(w.store, create=False).read_entries()["timestamp"]
    if not len(ts):
        return "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"
    # as Python datetimes: a pandas Timestamp cannot go past 2262-04-11T23:47:16.854775807Z
    lo, hi = (t.to_pydatetime(warn=False) if hasattr(t, "to_pydatetime") else t
              for t in (pa.compute.min(ts).as_py(), pa.compute.max(ts).as_py()))
    return (lo.strftime("%Y-%m-%dT%H:%M:%SZ"), (hi + timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ"))


# ------------------------------------------------------------------------------ the fuzz tests
@pytest.mark.slow
@fuzz_settings(60)
@given(inp=inputs())
def test_ingest_keeps_counts_writes_only_the_store_and_leaks_nothing(inp):
    note(f"format={inp.fmt} gz={inp.gz} bom={inp.bom} damage={inp.damage} damage_gz={inp.damage_gz}")
    with world() as w:
        substitute_root(inp, w.root)
        path = w.root / "in" / inp.name
        path.write_bytes(inp.file_bytes())
        before = snapshot(w.root)
        ingest_checked(w, inp)
        assert changed_outside(before, snapshot(w.root), ("store",)) == []
        check_no_leaks(w, inp.checked_secrets())


@pytest.mark.slow
@fuzz_settings(25)
@given(inp=inputs(damage=False))
def test_every_format_stores_what_json_lines_store(inp):
    """An undamaged file stores the same rows (all but source and source_position) as the same
    entries written as JSON Lines, whatever its format, compression, byte-order mark or line ends."""
    note(f"format={inp.fmt} gz={inp.gz} bom={inp.bom}")
    # gcloud's YAML sorts keys, and payloads are stored with their keys in the order read
    as_jsonl = Input([_sorted_keys(e) for e in inp.entries] if inp.fmt.startswith("yaml") else inp.entries, "jsonl")
    with world() as a, world() as b:
        got, want = ingest_checked(a, inp), ingest_checked(b, as_jsonl)
        assert [got[k] for k in ("read", "new_rows", "duplicates", "rejected")] == \
            [want[k] for k in ("read", "new_rows", "duplicates", "rejected")]
        assert _rows(a.store) == _rows(b.store)
        assert _reasons(a.store) == _reasons(b.store)


def _sorted_keys(value: object) -> object:
    if isinstance(value, dict):
        return {k: _sorted_keys(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted_keys(v) for v in value]
    return value


def _rows(store: Path) -> list[tuple]:
    table = Store(store, create=False).read_entries().drop_columns(["source", "source_position"])
    return sorted(tuple(map(repr, row.values())) for row in table.to_pylist())


def _stored_rejects(store: Path) -> list[dict]:
    return [json.loads(x) for f in sorted((store / "rejects").glob("*.jsonl")) for x in f.read_bytes().split(b"\n") if x]


_WHERE = re.compile(r"^(?:entry \d+ \((?:byte|line) \d+\)|YAML document at line \d+ \(byte \d+\)) is ")


def _reasons(store: Path) -> list[str]:
    """Why each item was rejected, without where (positions differ between formats)."""
    return [_WHERE.sub("", r["reason"]) for r in _stored_rejects(store)]


@pytest.mark.slow
@fuzz_settings(8)
@given(inp=inputs(max_entries=6))
def test_the_whole_pipeline_stays_inside_its_directories_and_leaks_nothing(inp):
    note(f"format={inp.fmt} gz={inp.gz} bom={inp.bom} damage={inp.damage} damage_gz={inp.damage_gz}")
    with world() as w:
        substitute_root(inp, w.root)
        (w.root / "in" / inp.name).write_bytes(inp.file_bytes())
        before = snapshot(w.root)
        ingest_checked(w, inp)
        store = ("--store", w.store)
        strict_json(w.cli("summarize", *store, "--format", "json").stdout)
        w.cli("summarize", *store, "--format", "text")
        w.cli("summarize", *store, "--format", "markdown")
        strict_json(w.cli("compare", *store, "--format", "json").stdout or "{}")
        strict_json(w.cli("store", "info", *store, "--format", "json").stdout)
        strict_json(w.cli("store", "check", *store, "--format", "json").stdout)
        w.cli("report", *store, "--out", w.report)
        since, until = export_window(w)
        strict_json(w.cli("export", *store, "--out", w.export, "--since", since, "--until", until, "--align", "none",
                          "--format", "json").stdout)
        for path in [*w.report.rglob("*.json"), *w.export.rglob("*.json")]:
            strict_json(path.read_text())
        assert changed_outside(before, snapshot(w.root), ("store", "report", "export")) == []
        assert not os.path.lexists("/tmp/logaudit-fuzz-x")
        check_no_leaks(w, inp.checked_secrets())


# ------------------------------------------------------------------------------ the hostile corpus
EXPECTED = json.loads((HOSTILE / "expected.json").read_text())
CORPUS_FILES = sorted(k for k in EXPECTED if not k.startswith("_"))


def test_the_manifest_lists_every_corpus_file():
    assert sorted(p.name for p in HOSTILE.iterdir() if p.name != "expected.json") == CORPUS_FILES


def ingest_report(w: World, path: Path) -> tuple[Result, dict]:
    result = w.cli("ingest", path, "--store", w.store, "--format", "json", "--quiet")
    return result, json.loads(result.stdout)


@pytest.mark.parametrize("name", CORPUS_FILES)
def test_each_hostile_file_gives_its_exact_counts(name):
    want = EXPECTED[name]
    with world() as w:
        result, got = ingest_report(w, HOSTILE / name)
        source = got["sources"][0]
        assert {"exit": result.exit_code, "format": source["format"],
                **{k: got[k] for k in ("read", "new_rows", "duplicates", "rejected", "files_failed")},
                "notes": [f"{n['level']}: {n['message']}" for n in source["notes"]],
                "rejects": [[r["position"], r["reason"]] for r in got["rejects"]]} == \
            {**{k: v for k, v in want.items() if k != "messages"}, "exit": EXIT[want["exit"]]}
        if "messages" in want:  # YAML's trap words stay what the YAML 1.2 rules make of them
            stored = Store(w.store, create=False).read_entries()["message"].to_pylist()
            assert sorted(stored, key=str) == want["messages"]


def _deep_entry(depth: int) -> str:
    """A LogEntry whose payload nests `depth` objects (too deep for a recursive writer)."""
    return ('{"timestamp": "2026-11-28T10:00:00Z", "insertId": "deep", "jsonPayload": '
            + '{"k": ' * depth + "1" + "}" * depth + "}")


_GOOD = json.dumps({"timestamp": "2026-11-28T10:00:01Z", "insertId": "good", "textPayload": "kept"})
DEEP_LAYOUTS = {
    "jsonl": lambda deep: f"{_GOOD}\n{deep}\n",
    "array-pretty": lambda deep: f"[\n  {_GOOD},\n  {deep}\n]\n",
    "array-compact": lambda deep: f"[{_GOOD},{deep}]",
    "wrapped-lines": lambda deep: f'{{"entries": [{_GOOD}, {deep}], "nextPageToken": "x"}}\n',
    "yaml": lambda deep: f"---\n{_GOOD}\n---\n{deep}\n",
}


@pytest.mark.parametrize("layout", list(DEEP_LAYOUTS))
def test_depth_10000_is_one_reject_and_the_file_is_read_whole(layout):
    """The entry nested 10,000 deep is rejected, its neighbour kept, and the file is not called
    truncated (an array whose last element was rejected used to say so)."""
    from logaudit.sources.files import DEPTH_REASON

    with world() as w:
        path = w.root / "in" / f"deep.{'yaml' if layout == 'yaml' else 'json'}"
        path.write_text(DEEP_LAYOUTS[layout](_deep_entry(10_000)))
        result, got = ingest_report(w, path)
        assert (result.exit_code, got["read"], got["new_rows"], got["rejected"], got["files_failed"]) == \
            (EXIT["rejected"], 2, 1, 1, 0)
        assert got["rejects"][0]["reason"].endswith(DEPTH_REASON)
        assert [n["level"] for n in got["sources"][0]["notes"] if n["level"] != "info"] == []


def test_pages_whose_first_line_is_longer_than_the_sniffed_head_are_all_read():
    """API pages, one per line, with a first line longer than the 64 KiB the format is told
    from: every page is read (the pages after the first used to vanish without a word)."""
    entries = [{"timestamp": f"2026-11-28T10:00:0{i}Z", "insertId": f"p{i}", "textPayload": "x" * (70_000 if i == 0 else 5)}
               for i in range(6)]
    with world() as w:
        path = w.root / "in" / "pages.json"
        path.write_bytes(serialise(entries, "wrapped-lines"))
        result, got = ingest_report(w, path)
        assert (result.exit_code, got["read"], got["new_rows"], got["rejected"]) == (EXIT["ok"], 6, 6, 0)
        ids = Store(w.store, create=False).read_entries()["insert_id"].to_pylist()
        assert sorted(ids) == [f"p{i}" for i in range(6)]


@pytest.mark.parametrize("fmt", ["wrapped-lines", "wrapped-compact", "wrapped-pretty", "array-compact", "yaml", "jsonl"])
def test_integers_beyond_64_bits_are_stored_exactly(fmt):
    """jsonPayload numbers beyond 64 bits keep every digit in every format (the lines of API
    pages used to make them floats)."""
    payload = {"message": "big numbers", "n": 2**70 + 1, "m": -(2**66) - 7, "ok": 2**64 - 1}
    entries = [{"timestamp": "2026-11-28T10:00:00Z", "insertId": "big", "jsonPayload": payload}]
    with world() as w:
        path = w.root / "in" / f"big.{'yaml' if fmt == 'yaml' else 'json'}"
        path.write_bytes(serialise(entries, fmt))
        result, got = ingest_report(w, path)
        assert (result.exit_code, got["new_rows"]) == (EXIT["ok"], 1)
        stored = Store(w.store, create=False).read_entries()["payload_json"].to_pylist()
        assert [json.loads(p) for p in stored] == [payload]


def test_entries_without_insert_id_that_differ_beyond_64_bits_are_two_entries():
    """The content key of an entry without insertId keeps big integers exact: entries that
    differ only in the last digits of one are not taken for duplicates."""
    entries = [{"timestamp": "2026-11-28T10:00:00Z", "textPayload": "x", "jsonPayload": {"n": 2**70 + i}}
               for i in range(2)]
    with world() as w:
        path = w.root / "in" / "two.jsonl"
        path.write_bytes(serialise(entries, "jsonl"))
        result, got = ingest_report(w, path)
        assert (got["read"], got["new_rows"], got["duplicates"]) == (2, 2, 0)


@pytest.mark.slow
def test_the_real_cli_on_the_whole_corpus_writes_only_where_told(tmp_path):
    """The entry point as cron runs it (a subprocess) on every corpus file at once: exact
    totals, no traceback, and nothing written outside the store and the report folder, though
    the corpus holds service names such as `../../x` and `/tmp/...` (export's folders for such
    names: tests/test_export.py and the pipeline fuzz test above)."""
    work = tmp_path / "cwd"
    work.mkdir()
    env = {**os.environ, "HOME": str(tmp_path / "home"), "COLUMNS": "80", "MPLCONFIGDIR": MPLCONFIGDIR}
    for key in ("LOGAUDIT_STORE", "LOGAUDIT_PATTERNS", "LOGAUDIT_CATALOG", "LOGAUDIT_REDACT_CONFIG"):
        env.pop(key, None)
    before = snapshot(tmp_path)

    def run(*args: object) -> subprocess.CompletedProcess:
        done = subprocess.run([sys.executable, "-m", "logaudit", *map(str, args)], cwd=work, env=env,
                              capture_output=True, text=True, timeout=300)
        assert "Traceback" not in done.stderr, done.stderr
        return done

    store = ("--store", tmp_path / "store")
    ingest = run("ingest", *(HOSTILE / n for n in CORPUS_FILES), *store, "--format", "json", "--quiet")
    got = json.loads(ingest.stdout)
    assert ingest.returncode == EXIT["rejected"]
    for key in ("read", "rejected", "files_failed"):
        assert got[key] == sum(EXPECTED[n][key] for n in CORPUS_FILES), key
    assert got["new_rows"] + got["duplicates"] == sum(EXPECTED[n]["new_rows"] for n in CORPUS_FILES)  # shared ids
    summary = run("summarize", *store)
    assert summary.returncode == EXIT["ok"], summary.stderr
    report = run("report", *store, "--out", tmp_path / "report")
    assert report.returncode == EXIT["ok"], report.stderr
    assert changed_outside(before, snapshot(tmp_path), ("store", "report")) == []
    assert not os.path.lexists("/tmp/logaudit-fuzz-x")
