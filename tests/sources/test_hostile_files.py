"""Damaged, odd and hostile input files: damage stays local, counts stay exact, nothing crashes.

"Adjacent to the damage", used by the property tests below, per format: an entry's *span* runs
from the end of the entry before it to the start of the entry after it (so it holds the entry
and the separators on both sides: the `,`, the line break and indentation of a JSON array, the
`---` line of a YAML document). An entry is adjacent to the damage when a damaged byte position
(inserted bytes, the first byte cut away) lies within its span, ends included. Every entry that
is intact (not cut away) and not adjacent must be stored. Damage to the first line (before the
first entry) can change which format the file is read as, so mutations start at the first entry.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import orjson
import pytest
import yaml
from fake_logging import make_entries
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from logaudit.sources.files import MAX_DEPTH, iter_stream_batches, json_depth
from logaudit.store.store import Store, clip_reject_text

REPO = Path(__file__).resolve().parents[2]


def entries(n: int, **kw) -> list[dict]:
    out = make_entries(n, **kw)
    for i, e in enumerate(out):
        if i % 3 == 1:
            del e["textPayload"]
            e["jsonPayload"] = {"message": f"m{i}", "items": [{"a": i}, {"b": [i, {"c": "},{"}]}], "s": "[{\"x\""}
    return out


def keys(store: Store) -> list[str]:
    return sorted(k for k in store.read_entries()["insert_id"].to_pylist() if k is not None)


def exact_counts(report) -> None:
    assert report.read == report.new_rows + report.duplicates + report.rejected
    for s in report.sources:
        assert s.read == s.new_rows + s.duplicates + s.rejected, s.source


def pretty_array(items: list[dict]) -> tuple[bytes, list[tuple[int, int]]]:
    """gcloud's layout, and each element's (start, end) byte offsets."""
    parts, spans, at = [b"[\n"], [], 2
    for i, e in enumerate(items):
        text = b"\n".join(b"  " + line for line in json.dumps(e, indent=2, ensure_ascii=False).encode().split(b"\n"))
        text = text[2:]  # the first line's indentation comes before `{`
        parts.append(b"  " + text + (b",\n" if i < len(items) - 1 else b"\n"))
        spans.append((at + 2, at + 2 + len(text)))
        at += len(parts[-1])
    parts.append(b"]\n")
    return b"".join(parts), spans


def compact_array(items: list[dict]) -> tuple[bytes, list[tuple[int, int]]]:
    parts, spans, at = [b"["], [], 1
    for i, e in enumerate(items):
        text = json.dumps(e, ensure_ascii=False).encode()
        spans.append((at, at + len(text)))
        parts.append(text + (b", " if i < len(items) - 1 else b""))
        at += len(parts[-1])
    parts.append(b"]")
    return b"".join(parts), spans


def pretty_objects(items: list[dict]) -> tuple[bytes, list[tuple[int, int]]]:
    """`jq .[]` output: pretty-printed objects back to back."""
    parts, spans, at = [], [], 0
    for e in items:
        text = json.dumps(e, indent=2, ensure_ascii=False).encode()
        spans.append((at, at + len(text)))
        parts.append(text + b"\n")
        at += len(parts[-1])
    return b"".join(parts), spans


def yaml_docs(items: list[dict]) -> tuple[bytes, list[tuple[int, int]]]:
    """gcloud's default output: each entry after a `---` line (the separator, not in its span)."""
    parts, spans, at = [], [], 0
    for e in items:
        text = b"---\n" + yaml.safe_dump(e, sort_keys=True, allow_unicode=True).encode()
        spans.append((at + 4, at + len(text)))
        parts.append(text)
        at += len(text)
    return b"".join(parts), spans


def jsonl(items: list[dict]) -> tuple[bytes, list[tuple[int, int]]]:
    parts, spans, at = [], [], 0
    for e in items:
        text = orjson.dumps(e)
        spans.append((at, at + len(text)))
        parts.append(text + b"\n")
        at += len(text) + 1
    return b"".join(parts), spans


def ingest_bytes(data: bytes, name: str = "f.json"):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_bytes(data)
        store = Store(Path(tmp) / "store")
        report = store.ingest_paths([path])
        return report, keys(store)


# ------------------------------------------------------------------------------ reported bugs
def test_one_broken_array_element_keeps_the_other_999(tmp_path, store_dir):
    items = make_entries(1000)
    data, spans = pretty_array(items)
    start = spans[2][0]
    broken = data[:start + 20] + b'"' + data[start + 20:]  # element 3 gets a stray quote
    path = tmp_path / "export.json"
    path.write_bytes(broken)
    report = Store(store_dir).ingest_paths([path])
    assert (report.read, report.new_rows, report.rejected) == (1000, 999, 1)
    assert (report.rejects[0]["position"], report.rejects[0]["offset"]) == (3, start)
    assert report.rejects[0]["reason"].startswith(f"entry 3 (byte {start}) is not valid JSON: ")
    assert keys(Store(store_dir)) == sorted(e["insertId"] for i, e in enumerate(items) if i != 2)
    assert sorted(Store(store_dir).read_entries()["source_position"].to_pylist()) == [p for p in range(1, 1001) if p != 3]


@pytest.mark.parametrize("layout", [pretty_objects, compact_array], ids=["objects", "compact"])
def test_one_broken_object_keeps_the_rest(store_dir, tmp_path, layout):
    items = entries(200)
    data, spans = layout(items)
    start, end = spans[9]
    broken = data[:start + 5] + b"\x00garbage{" + data[start + 5:]
    path = tmp_path / "export.json"
    path.write_bytes(broken)
    report = Store(store_dir).ingest_paths([path])
    exact_counts(report)
    assert report.new_rows == 199
    assert report.rejects[0]["position"] == 10 and report.rejects[0]["offset"] == start
    assert keys(Store(store_dir)) == sorted(e["insertId"] for i, e in enumerate(items) if i != 9)


@pytest.mark.slow
def test_truncated_gzip_keeps_what_it_holds_and_the_next_files_are_read(tmp_path, cli, store_dir):
    items = make_entries(2000)
    whole = b"".join(orjson.dumps(e) + b"\n" for e in items)
    packed = gzip.compress(whole)
    cut = tmp_path / "a-cut.jsonl.gz"
    cut.write_bytes(packed[: len(packed) // 2])
    other = tmp_path / "b-other.jsonl"
    other.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in make_entries(5, prefix="other")))
    readable = subprocess.run(["gzip", "-dc", str(cut)], capture_output=True).stdout if shutil.which("gzip") else None
    result = cli("ingest", "--quiet", "--store", store_dir, "--format", "json", cut, other)
    assert result.exit_code == 7  # a file not read to its end; the rest stored
    out = json.loads(result.stdout)
    complete = len(readable.split(b"\n")) - 1 if readable is not None else None
    first, second = out["sources"]
    assert first["read"] == complete + 1  # the cut line is read and rejected
    assert (first["new_rows"], first["rejected"]) == (complete, 1)
    assert (second["read"], second["new_rows"]) == (5, 5)
    assert out["files_failed"] == 1
    [problem] = first["notes"]
    assert problem["level"] == "error"
    assert problem["message"].startswith(f"the gzip data ends early at compressed byte {len(packed) // 2} "
                                         f"(the file is truncated); the {len(readable)} bytes before it were read")
    assert problem["message"].endswith(f"the data ends in line {complete + 1}")
    assert problem["byte"] == len(packed) // 2
    assert out["rejects"] == [{"source": str(cut), "position": complete + 1, "reason": "not valid JSON",
                               "text": clip_reject_text(readable.split(b"\n")[-1].decode())}]
    text = cli("ingest", "--quiet", "--store", tmp_path / "s2", cut, other)
    assert text.exit_code == 7
    assert f"error {cut}: the gzip data ends early" in text.stderr
    assert "  hint: copy or download the file again" in text.stderr
    assert ", 1 damaged or unreadable files in " in text.stdout


def test_gzip_with_trailing_garbage_keeps_every_entry(tmp_path, store_dir):
    items = make_entries(300)
    packed = gzip.compress(b"".join(orjson.dumps(e) + b"\n" for e in items))
    path = tmp_path / "t.jsonl.gz"
    path.write_bytes(packed + b"\x00\x01 not gzip")
    report = Store(store_dir).ingest_paths([path])
    assert (report.read, report.new_rows, report.rejected, report.files_failed) == (300, 300, 0, 1)
    assert report.sources[0].notes[0]["message"] == (
        f"bytes after the end of the gzip data, from compressed byte {len(packed)}, are not gzip "
        "(everything before them was read); the data ends in line 300")


def test_two_gzip_members_are_read_like_gzip_does(tmp_path, store_dir):
    a, b = make_entries(3, prefix="a"), make_entries(4, prefix="b")
    path = tmp_path / "m.jsonl.gz"
    path.write_bytes(gzip.compress(b"".join(orjson.dumps(e) + b"\n" for e in a))
                     + gzip.compress(b"".join(orjson.dumps(e) + b"\n" for e in b)))
    report = Store(store_dir).ingest_paths([path])
    assert (report.read, report.new_rows, report.files_failed) == (7, 7, 0)


def test_corrupt_gzip_says_the_entries_may_be_altered(tmp_path, store_dir):
    packed = bytearray(gzip.compress(b"".join(orjson.dumps(e) + b"\n" for e in make_entries(50))))
    packed[-6] ^= 0xFF  # the CRC: the data itself decodes
    path = tmp_path / "c.jsonl.gz"
    path.write_bytes(bytes(packed))
    report = Store(store_dir).ingest_paths([path])
    exact_counts(report)
    [problem] = report.sources[0].notes
    assert problem["level"] == "error"
    assert "and they may be altered: the checksum does not match" in problem["message"]


class _FailingFile(io.RawIOBase):
    """A file whose disk fails after `ok` bytes (EIO), as a network file system can."""

    def __init__(self, data: bytes, ok: int) -> None:
        self.data, self.ok, self.at = data, ok, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self.at >= self.ok:
            raise OSError(5, "Input/output error")
        n = min(len(buffer), self.ok - self.at)
        buffer[:n] = self.data[self.at:self.at + n]
        self.at += n
        return n


def test_read_error_mid_file_keeps_what_was_read(store_dir):
    data, spans = jsonl(make_entries(100))
    ok = spans[40][0] + 10  # fails inside line 41
    fh = io.BufferedReader(_FailingFile(data, ok), 4096)
    report = Store(store_dir).ingest_batches([("nfs.jsonl", iter_stream_batches(fh, "nfs.jsonl"))])
    assert (report.read, report.new_rows, report.rejected, report.files_failed) == (41, 40, 1, 1)
    [problem] = report.sources[0].notes
    assert problem["message"] == f"read error at byte {ok}: Input/output error; the data ends in line 41"
    assert problem["byte"] == ok


@pytest.mark.slow
def test_unreadable_file_is_reported_and_the_others_are_read(tmp_path):
    """Permission denied. Root reads any file, so as root the CLI runs without the capabilities
    that bypass file permissions (setpriv)."""
    secret = tmp_path / "a-secret.jsonl"
    secret.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in make_entries(3, prefix="s")))
    secret.chmod(0)
    good = tmp_path / "b-good.jsonl"
    good.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in make_entries(4, prefix="g")))
    prefix = []
    if os.geteuid() == 0:
        if not shutil.which("setpriv"):
            pytest.skip("running as root without setpriv: cannot make a file unreadable")
        caps = "-dac_override,-dac_read_search"
        prefix = ["setpriv", f"--bounding-set={caps}", f"--inh-caps={caps}"]
    args = [*prefix, sys.executable, "-m", "logaudit", "ingest", "--quiet", "--format", "json", "--store",
            str(tmp_path / "store"), str(secret), str(good)]
    done = subprocess.run(args, capture_output=True, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120)
    secret.chmod(0o644)
    assert done.returncode == 7, done.stderr.decode()[-2000:]
    out = json.loads(done.stdout)
    assert [(s["source"], s["read"], s["new_rows"]) for s in out["sources"]] == [(str(secret), 0, 0), (str(good), 4, 4)]
    assert out["sources"][0]["notes"] == [{
        "level": "error", "message": "cannot open: Permission denied",
        "hint": "check the file's permissions (`ls -l`), or run as a user who may read it"}]
    assert out["files_failed"] == 1


def test_file_that_vanishes_before_it_is_read(tmp_path, store_dir):
    folder = tmp_path / "sink"
    folder.mkdir()
    for name in ("a.json", "b.json"):
        (folder / name).write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in make_entries(2, prefix=name[0])))

    def remove_b(source, done, rows):
        (folder / "b.json").unlink(missing_ok=True)

    report = Store(store_dir).ingest_paths([folder], progress=remove_b)
    assert [(s.read, s.new_rows, s.failed) for s in report.sources] == [(2, 2, False), (0, 0, True)]
    assert report.sources[1].notes[0]["message"] == "cannot open: No such file or directory"


@pytest.mark.parametrize("layout", [pretty_array, compact_array, pretty_objects, yaml_docs, jsonl])
def test_byte_order_mark_is_accepted_in_every_format(layout, tmp_path, store_dir):
    data, _ = layout(entries(4))
    path = tmp_path / "bom.txt"
    path.write_bytes(b"\xef\xbb\xbf" + data)
    report = Store(store_dir).ingest_paths([path])
    assert (report.read, report.new_rows, report.rejected) == (4, 4, 0)
    gz = tmp_path / "bom.gz"
    gz.write_bytes(gzip.compress(b"\xef\xbb\xbf" + data))
    assert Store(store_dir).ingest_paths([gz]).duplicates == 4


def _deep(depth: int) -> dict:
    e = make_entries(1, prefix="deep")[0]
    e["jsonPayload"] = {"a": json.loads("[" * (depth - 2) + "]" * (depth - 2))}
    return e


@pytest.mark.parametrize("layout", [pretty_array, compact_array, pretty_objects, jsonl])
def test_deep_nesting_is_one_reject(layout, tmp_path, store_dir):
    items = make_entries(2) + [_deep(MAX_DEPTH + 1), _deep(MAX_DEPTH)]
    data, _ = layout([items[0], items[2], items[1]])
    data = data.replace(b"[" * 50, b"[" * 10050).replace(b"]" * 50, b"]" * 10050)  # depth 10,129
    path = tmp_path / "deep.json"
    path.write_bytes(data)
    report = Store(store_dir).ingest_paths([path])
    assert (report.read, report.new_rows, report.rejected) == (3, 2, 1)
    assert report.rejects[0]["position"] == 2
    assert report.rejects[0]["reason"].endswith(f"nested deeper than {MAX_DEPTH} levels (not a LogEntry; JSON tools "
                                                "cannot handle it)")
    at_limit = tmp_path / "limit.json"
    at_limit.write_bytes(layout([items[3]])[0])
    assert json_depth(orjson.dumps(items[3])) == MAX_DEPTH
    assert Store(store_dir).ingest_paths([at_limit]).new_rows == 1  # exactly MAX_DEPTH levels is fine


@pytest.mark.parametrize("layout", [pretty_array, compact_array, yaml_docs])
def test_oversized_entry_is_one_reject_and_is_not_held(layout, tmp_path, store_dir, monkeypatch):
    """An element over MAX_ELEMENT_BYTES (16 MiB; 8 KiB here, read in 1 KiB blocks) is skipped
    while reading, not held, and the entries after it are read."""
    from logaudit.sources import files

    monkeypatch.setattr(files, "MAX_ELEMENT_BYTES", 8 << 10)
    monkeypatch.setattr(files, "BLOCK_BYTES", 1 << 10)
    items = make_entries(5)
    items[2]["textPayload"] = "x" * (40 << 10)
    data, spans = layout(items)
    path = tmp_path / "big.json"
    path.write_bytes(data)
    report = Store(store_dir).ingest_paths([path])
    exact_counts(report)
    assert (report.read, report.new_rows, report.rejected) == (5, 4, 1)
    start = spans[2][0]
    assert report.rejects[0]["offset"] == start
    line = data[:start].count(b"\n") + 1
    assert report.rejects[0]["reason"] == (
        f"YAML document at line {line} (byte {start}) is larger than 8 KiB"
        if layout is yaml_docs else f"entry 3 (byte {start}) is larger than 8 KiB or never closes")
    assert keys(Store(store_dir)) == sorted(e["insertId"] for i, e in enumerate(items) if i != 2)


def test_deep_yaml_document_is_one_reject(tmp_path, store_dir):
    items = make_entries(2)
    data = yaml_docs(items)[0] + b"---\nlogName: x\ntimestamp: '2026-11-28T10:00:00Z'\njsonPayload: " + b"[" * 500 + b"]" * 500 + b"\n"
    path = tmp_path / "deep.yaml"
    path.write_bytes(data)
    report = Store(store_dir).ingest_paths([path])
    assert (report.read, report.new_rows, report.rejected) == (3, 2, 1)
    assert report.rejects[0]["reason"].endswith(f"is nested deeper than {MAX_DEPTH} levels (not a LogEntry; "
                                                "JSON tools cannot handle it)")


def test_yaml_alias_bomb_is_rejected_not_expanded(tmp_path, store_dir):
    bomb = "---\nlogName: x\ntimestamp: '2026-11-28T10:00:00Z'\njsonPayload:\n  a: &a [x, x, x, x, x, x, x, x, x]\n"
    for i in "bcdefghij":
        bomb += f"  {i}: &{i} [" + ", ".join([f"*{chr(ord(i) - 1)}"] * 9) + "]\n"
    path = tmp_path / "bomb.yaml"
    path.write_text(yaml_docs(make_entries(1))[0].decode() + bomb)
    report = Store(store_dir).ingest_paths([path])
    assert (report.read, report.new_rows, report.rejected) == (2, 1, 1)
    assert report.rejects[0]["reason"].endswith("uses YAML aliases (`*name`), which LogEntry exports never hold")


def test_yaml_11_directive_keeps_yaml_11_rules(tmp_path, store_dir):
    path = tmp_path / "old.yaml"
    path.write_text("%YAML 1.1\n---\nlogName: projects/p/logs/x\ninsertId: a\ntimestamp: '2026-11-28T10:00:00Z'\n"
                    "textPayload: no\n---\nlogName: projects/p/logs/x\ninsertId: b\n"
                    "timestamp: '2026-11-28T10:00:01Z'\ntextPayload: no\n")
    Store(store_dir).ingest_paths([path])
    table = Store(store_dir).read_entries()
    assert dict(zip(table["insert_id"].to_pylist(), table["payload_text"].to_pylist(), strict=True)) == {
        "a": "false", "b": "no"}


@pytest.mark.parametrize(("shape", "key"), [
    ("pretty", "raw_logs"), ("compact", "entries"), ("long-line", "logs"), ("lines", "entries"), ("api", "entries")])
def test_entries_wrapped_under_one_key_are_read(shape, key, tmp_path, store_dir, cli):
    items = entries(400 if shape == "long-line" else 6)
    if shape in ("pretty", "long-line"):
        data = json.dumps({key: items}, indent=2 if shape == "pretty" else None).encode()
    elif shape == "pretty":
        data = json.dumps({key: items}, indent=2).encode()
    elif shape == "compact":
        data = json.dumps({key: items}).encode()
    elif shape == "api":  # entries.list pages as a script saves them
        data = json.dumps({key: items[:4], "nextPageToken": "abc"}, indent=1).encode()
        items = items[:4]
    else:
        data = b"".join(orjson.dumps({key: items[i:i + 2], "nextPageToken": str(i)}) + b"\n" for i in (0, 2, 4))
    path = tmp_path / "wrapped.json"
    path.write_bytes(b"\xef\xbb\xbf" + data)
    result = cli("ingest", "--quiet", "--store", store_dir, "--format", "json", path)
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert (out["read"], out["new_rows"], out["rejected"]) == (len(items), len(items), 0)
    per_line = shape in ("lines", "compact")  # a short one-line wrapper is read as a line
    where = "of each line" if per_line else "of the top-level object"
    assert out["sources"][0]["notes"] == [{"level": "info",
                                           "message": f"entries read from key `{key}` {where}; positions are entry numbers"}]
    assert out["sources"][0]["format"] == ("wrapped-lines" if per_line else "wrapped")
    assert keys(Store(store_dir)) == sorted(e["insertId"] for e in items)


@pytest.mark.parametrize("indent", [None, 2])
def test_array_elements_that_are_not_objects_are_numbered_rejects(indent, tmp_path, store_dir):
    items = make_entries(2)
    path = tmp_path / "mixed.json"
    path.write_text(json.dumps([1, items[0], "x", [], items[1], None], indent=indent))
    report = Store(store_dir).ingest_paths([path])
    assert (report.read, report.new_rows, report.rejected) == (6, 2, 4)
    assert [r["position"] for r in report.rejects] == [1, 3, 4, 6]
    assert sorted(Store(store_dir).read_entries()["source_position"].to_pylist()) == [2, 5]


def test_counts_are_exact_across_sources(tmp_path, store_dir):
    items = entries(30)
    a, _ = pretty_array(items)
    b, _ = yaml_docs(items[:10] + items[:3])
    c = b"".join(orjson.dumps(e) + b"\n" for e in items[5:15]) + b"{broken\nplain text\n"
    paths = []
    for name, data in [("a.json", a), ("b.yaml", b), ("c.jsonl", c)]:
        paths.append(tmp_path / name)
        paths[-1].write_bytes(data)
    report = Store(store_dir).ingest_paths(paths)
    exact_counts(report)
    assert [(s.read, s.new_rows, s.duplicates, s.rejected) for s in report.sources] == [
        (30, 30, 0, 0), (13, 0, 13, 0), (12, 0, 10, 2)]


def test_missing_path_on_the_command_line_fails_before_reading(tmp_path, cli, store_dir):
    good = tmp_path / "good.jsonl"
    good.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in make_entries(2)))
    result = cli("ingest", "--quiet", "--store", store_dir, good, tmp_path / "typo.json")
    assert result.exit_code == 3
    assert not (store_dir / "manifest").exists() or not list((store_dir / "manifest").iterdir())


# ------------------------------------------------------------------------------ mutated files
LAYOUTS = {"array": pretty_array, "compact": compact_array, "objects": pretty_objects, "yaml": yaml_docs}


@st.composite
def mutations(draw, size: int, first: int):
    """Up to three (position, kind, payload) mutations at or after `first`, in the original file."""
    count = draw(st.integers(1, 3))
    out = []
    for _ in range(count):
        pos = draw(st.integers(first, size - 1))
        kind = draw(st.sampled_from(["insert", "insert", "cut", "duplicate"]))
        payload = draw(st.one_of(st.binary(min_size=1, max_size=12),
                                 st.sampled_from([b'"', b"{", b"}", b"]", b"[", b",", b"\n", b"---\n", b"\n  {",
                                                  b"},{", b": ", b"\\", b"\xff\xfe", b"\x00"])))
        out.append((pos, kind, payload))
    return out


def apply(data: bytes, spans: list[tuple[int, int]], muts) -> tuple[bytes, set[int], set[int]]:
    """The mutated file, the damaged positions and the entries cut away (indices)."""
    damaged, removed = set(), set()
    for pos, kind, payload in sorted(muts, key=lambda m: -m[0]):  # from the end: earlier offsets stay valid
        if kind == "insert":
            data = data[:pos] + payload + data[pos:]
            damaged.add(pos)
        elif kind == "cut":
            data = data[:pos]
            damaged.add(pos)
            removed |= {i for i, (start, end) in enumerate(spans) if end > pos}
        else:  # duplicate the entry whose text holds pos, right after itself (with its separator)
            i = next((i for i, (start, end) in enumerate(spans) if start <= pos < end), None)
            if i is None or i + 1 >= len(spans):
                continue
            start, next_start = spans[i][0], spans[i + 1][0]
            data = data[:next_start] + data[start:next_start] + data[next_start:]
    return data, damaged, removed


def adjacent(spans: list[tuple[int, int]], damaged: set[int], size: int) -> set[int]:
    """Entries whose span (end of the previous entry .. start of the next, both included) holds
    a damaged position."""
    out = set()
    for i in range(len(spans)):
        lo = spans[i - 1][1] if i else 0
        hi = spans[i + 1][0] if i + 1 < len(spans) else size
        if any(lo <= p <= hi for p in damaged):
            out.add(i)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("fmt", list(LAYOUTS))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_mutated_files_keep_every_entry_not_adjacent_to_the_damage(fmt, data):
    items = entries(8)
    original, spans = LAYOUTS[fmt](items)
    first_line_end = original.find(b"\n", spans[0][0]) + 1 or spans[0][0] + 1
    muts = data.draw(mutations(len(original), first_line_end))
    mutated, damaged, removed = apply(original, spans, muts)
    report, stored = ingest_bytes(mutated, "m.json")
    exact_counts(report)
    must = {items[i]["insertId"] for i in range(len(items))} - {
        items[i]["insertId"] for i in adjacent(spans, damaged, len(original)) | removed}
    assert must <= set(stored), (muts, report.rejects)


@pytest.mark.slow
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cut=st.integers(10, 3000), garbage=st.binary(max_size=8), where=st.integers(0, 3000))
@example(cut=346, garbage=b"", where=0)  # the stream recovers the first entry whole, but not its newline
def test_mutated_gzip_keeps_what_gzip_recovers(cut, garbage, where):
    items = make_entries(60)
    plain = b"".join(orjson.dumps(e) + b"\n" for e in items)
    packed = gzip.compress(plain)
    cut = min(cut, len(packed))
    truncated = packed[:cut]
    report, stored = ingest_bytes(truncated, "t.jsonl.gz")
    exact_counts(report)
    readable = _gunzip_prefix(truncated)
    # every line gzip recovers whole; the last one counts when its JSON is whole though its newline is cut
    *lines, tail = readable.split(b"\n")
    complete = len(lines) + (1 if tail and _whole_json(tail) else 0)
    assert set(stored) == {e["insertId"] for e in items[:complete]}
    assert report.files_failed == (0 if cut == len(packed) else 1)
    where = min(where, len(packed))
    damaged = packed[:where] + garbage + packed[where:]
    report, stored = ingest_bytes(damaged, "d.jsonl.gz")  # may decode to altered bytes before the check fails
    exact_counts(report)
    if garbage and damaged.startswith(b"\x1f\x8b"):
        assert report.files_failed == 1, report.sources[0].notes


def _whole_json(line: bytes) -> bool:
    try:
        return isinstance(orjson.loads(line), dict)
    except orjson.JSONDecodeError:
        return False


def _gunzip_prefix(data: bytes) -> bytes:
    """What `gzip -dc` writes for a truncated file (its own zlib, as reference)."""
    import zlib

    d = zlib.decompressobj(zlib.MAX_WBITS | 16)
    try:
        return d.decompress(data) + d.flush()
    except zlib.error:
        return b""
