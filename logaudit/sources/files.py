"""Read exported log files as batches of LogEntry JSON texts, streaming, keeping every good entry.

Formats, detected from the content (not the name): gcloud `--format=json` arrays (one big,
pretty-printed array), JSON Lines, concatenated pretty-printed objects, gcloud YAML documents
separated by `---` (read with YAML 1.2 rules, as gcloud writes them), an object that wraps the
entries in a list under one key (`{"entries": [...]}`, also one such object per line), and `.gz`
of any of these. A UTF-8 byte-order mark is accepted in every format. Directories (Cloud Storage
sink layout `LOG_ID/YYYY/MM/DD/HH:00:00_HH:59:59_S0.json`) are walked recursively.

Damage stays local. A broken array element or object is one reject (element number, byte offset,
why) and reading resumes at the next element; a broken YAML document is one reject; a damaged
`.gz` yields what it holds up to the damage. A file that cannot be read, or breaks off, gets a
note of level "error" (`Batch.notes`) and the ingest goes on with the next file. Entries nested
deeper than MAX_DEPTH levels are rejected.

Memory stays bounded: input is read in fixed-size blocks, every format yields batches of at most
`batch_size` entries, and an element or document larger than MAX_ELEMENT_BYTES is rejected
without being held.

>>> from logaudit.sources.files import discover
>>> discover(["data/sample"])  # doctest: +SKIP
[PosixPath('data/sample/netra-staging.jsonl.gz')]
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import os
import re
import zlib
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, NamedTuple

import ijson
import numpy as np
import orjson
import pyarrow as pa
import yaml

from logaudit.core.errors import InputError

#: File names taken from a directory walk (sink exports are `.json`; gz variants too).
LOG_SUFFIXES = (".json", ".jsonl", ".ndjson", ".yaml", ".yml", ".log")
BLOCK_BYTES = 8 << 20
#: A JSON Lines batch closes at this many bytes even before `batch_size` lines (bounds memory).
BATCH_BYTES = 48 << 20
#: Entries nested deeper than this are rejected (Cloud Logging itself stores far less deep
#: payloads; deeper ones break JSON tools: orjson writes at most 254 levels).
MAX_DEPTH = 128
#: An array element, object or YAML document larger than this is rejected unread
#: (Cloud Logging's own limit for one entry is 256 KiB).
MAX_ELEMENT_BYTES = 16 << 20
HEAD_BYTES = 64 << 10

#: Top-level LogEntry fields: a YAML file starts with one of them (gcloud sorts keys), and an
#: object holding one of them is an entry, not a wrapper around entries.
LOGENTRY_FIELDS = frozenset((
    "apphub", "apphubDestination", "errorGroups", "httpRequest", "insertId", "jsonPayload", "labels", "logName",
    "operation", "protoPayload", "receiveTimestamp", "resource", "severity", "sourceLocation", "spanId", "split",
    "textPayload", "timestamp", "trace", "traceSampled",
))
EXPORT_HINT = "export with `gcloud logging read FILTER --freshness=30d --format=json > FILE`"


#: Characters of a rejected text kept for its record: the store redacts them, then cuts to 200
#: for display, so a secret near the cut is still recognised whole.
REJECT_KEEP_CHARS = 4096


class Reject(NamedTuple):
    """An item rejected by the reader itself: its position (line, element or YAML document line),
    why, its first REJECT_KEEP_CHARS characters, and its byte offset in the (decompressed) file when known."""

    position: int
    reason: str
    text: str
    offset: int | None = None


@dataclass
class Batch:
    """Up to `batch_size` LogEntry JSON texts from one source, with their line/element numbers.

    `bad` holds items rejected before JSON parsing (undecodable bytes, broken YAML, a broken
    array element). `offsets` (when not None) gives each text's byte offset in the file.
    `notes` carries file-level findings ({"level": "info"|"warning"|"error", "message", "hint"}),
    usually on the last batch of a source; "error" means the file could not be read to its end.
    """

    source: str
    positions: pa.Array | pa.ChunkedArray
    lines: pa.Array | pa.ChunkedArray
    bad: list[Reject] = field(default_factory=list)
    bytes_read: int = 0
    blank: int = 0
    offsets: pa.Array | None = None
    format: str = ""
    notes: list[dict[str, Any]] = field(default_factory=list)


def discover(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Expand paths into the files to read: files as given, directories walked recursively (sorted).

    Raises InputError for a path that does not exist, or a directory holding no log files: both
    are mistakes on the command line, reported before anything is read.
    """
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise InputError(f"{raw}: no such file or directory", hint="check the path; gs:// URIs need `logaudit ingest gs://BUCKET/PREFIX`")
        if path.is_dir():
            found = sorted(
                p for p in path.rglob("*")
                if p.is_file() and not p.name.startswith(".")
                and p.name.removesuffix(".gz").endswith(LOG_SUFFIXES)
            )
            if not found:
                raise InputError(
                    f"{raw}: directory holds no log files",
                    hint=f"expected files ending in {', '.join(LOG_SUFFIXES)} (optionally .gz)",
                )
            files.extend(found)
        else:
            files.append(path)
    return files


def _size(n: int) -> str:
    return f"{n >> 20} MiB" if n >= 1 << 20 else f"{n >> 10} KiB"


def note(level: str, message: str, hint: str | None = None, **where: Any) -> dict[str, Any]:
    """A file-level finding as carried in `Batch.notes` and the ingest report."""
    return {"level": level, "message": message, **({"hint": hint} if hint else {}), **where}


# ---------------------------------------------------------------------------------- input stream
class _Input(io.RawIOBase):
    """The bytes of a file or blob, gunzipped (several members, as `gzip -d` does) when it starts
    with the gzip magic. A read error, a truncated or damaged gzip stream, or bytes after the
    last gzip member end the data instead of raising; `problem` then says what and where.
    """

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.raw_at = 0  # bytes taken from `raw`
        self.problem: dict[str, Any] | None = None
        magic = self._read_raw(2)
        self._gzip = magic == b"\x1f\x8b"
        self._chunks = self._gunzip(magic) if self._gzip else iter(())
        self._left = memoryview(magic if not self._gzip else b"")

    def _read_raw(self, n: int) -> bytes:
        if self.problem is not None:
            return b""
        try:  # one read at a time: a buffered read(n) that fails halfway drops what it had read
            data = (self.raw.read1(n) if hasattr(self.raw, "read1") else self.raw.read(n)) or b""
        except OSError as err:
            self._fail(f"read error at byte {self.raw_at}: {err.strerror or err}",
                       "check the disk or the network file system, then ingest the file again "
                       "(entries already stored are skipped)", byte=self.raw_at)
            return b""
        self.raw_at += len(data)
        return data

    def _fail(self, message: str, hint: str, **where: Any) -> None:
        if self.problem is None:
            self.problem = note("error", message, hint, **where)

    def _read_raw_into(self, view: memoryview) -> int:
        """Plain input: straight into the caller's buffer (no copy)."""
        if self.problem is not None:
            return 0
        try:
            n = (self.raw.readinto1(view) if hasattr(self.raw, "readinto1")  # type: ignore[attr-defined]
                 else self.raw.readinto(view)) or 0  # type: ignore[attr-defined]
        except OSError as err:
            self._fail(f"read error at byte {self.raw_at}: {err.strerror or err}",
                       "check the disk or the network file system, then ingest the file again "
                       "(entries already stored are skipped)", byte=self.raw_at)
            return 0
        self.raw_at += n
        return n

    def _gunzip(self, pending: bytes) -> Iterator[bytes]:
        at = 0  # compressed offset of pending[0]
        done = 0  # decompressed bytes produced
        member = zlib.decompressobj(zlib.MAX_WBITS | 16)
        between = False  # after a member's end: what follows must be another member
        while True:
            if len(pending) < 2:
                pending += self._read_raw(1 << 20)
                if not pending:
                    break
            if between:
                if pending[:2] != b"\x1f\x8b":
                    self._fail(f"bytes after the end of the gzip data, from compressed byte {at}, are not gzip "
                               "(everything before them was read)",
                               "the file was damaged or appended to; `gzip -t FILE` reports the same", byte=at)
                    return
                member, between = zlib.decompressobj(zlib.MAX_WBITS | 16), False
            try:
                out = member.decompress(pending, 1 << 20)
            except zlib.error as err:
                altered = "check" in str(err)  # CRC or length: noticed only at the member's end
                self._fail(f"the gzip data is damaged near compressed byte {at} ({err}); the {done} bytes before "
                           f"it were read{', and they may be altered: the checksum does not match' if altered else ''}",
                           "`gzip -dc FILE > COPY` recovers the same part; check where the file came from"
                           + ("; re-export it and ingest the copy" if altered else ""), byte=at)
                return
            rest = member.unused_data if member.eof else member.unconsumed_tail
            at += len(pending) - len(rest)
            pending, between = rest, member.eof
            done += len(out)
            if out:
                yield out
        if not between and self.problem is None:
            tail = member.flush()
            done += len(tail)
            if tail:
                yield tail
            self._fail(f"the gzip data ends early at compressed byte {at} (the file is truncated); "
                       f"the {done} bytes before it were read",
                       "copy or download the file again; `gzip -t FILE` confirms the truncation", byte=at)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if not len(self._left) and not self._gzip:
            return self._read_raw_into(view)
        if not len(self._left):
            self._left = memoryview(next(self._chunks, b""))
            if not len(self._left):
                return 0
        n = min(len(view), len(self._left))
        view[:n] = self._left[:n]
        self._left = self._left[n:]
        return n

    def head(self, n: int) -> bytes:
        """Up to `n` first bytes, which reading then returns again."""
        parts, size = [bytes(self._left)], len(self._left)
        while size < n:
            chunk = next(self._chunks, b"") if self._gzip else self._read_raw(n - size)
            if not chunk:
                break
            parts.append(chunk)
            size += len(chunk)
        self._left = memoryview(b"".join(parts))
        return bytes(self._left[:n])


# ---------------------------------------------------------------------------------- detection
class Layout(NamedTuple):
    """How a file holds its entries: the format, where the first entry starts, the indentation of
    entry lines (pretty-printed arrays and objects) and the wrapping key."""

    format: str  # "jsonl", "array", "objects", "wrapped", "wrapped-lines", "yaml"
    start: int = 0
    indent: bytes | None = None
    key: str | None = None


_YAML_START = re.compile(rb"(?:---|%YAML|(?:" + rb"|".join(sorted(f.encode() for f in LOGENTRY_FIELDS)) + rb"):(?:\s|$))")


def _skip_space(data: bytes, i: int) -> int:
    while i < len(data) and data[i] in b" \t\r\n":
        i += 1
    return i


def sniff(head: bytes) -> Layout:
    """The layout of a file from its first bytes (decompressed)."""
    i = _skip_space(head, 3 if head.startswith(b"\xef\xbb\xbf") else 0)
    if head[i:i + 1] == b"[":
        return _element_layout("array", head, _skip_space(head, i + 1), i + 1)
    if head[i:i + 1] == b"{":
        first_line, newline, _ = head[i:].partition(b"\n")
        whole_line = bool(newline) or len(head) < HEAD_BYTES
        if first_line.strip() != b"{" and whole_line:  # one object per line
            key = _wrapper_key(first_line, whole=True)
            if key is None and not _parses(first_line):
                key = _wrapper_key_past(head[i + len(first_line):])
                if key is None and not head[i + len(first_line):].strip():  # one line: stream its start
                    key = _wrapper_key(first_line, whole=False)
                    return _wrapped_layout(head, i, key) if key else Layout("jsonl")
            return Layout("wrapped-lines", i, key=key) if key else Layout("jsonl")
        key = _wrapper_key(head[i:], whole=False)
        if key is None and first_line.strip() != b"{":
            return Layout("jsonl")
        if key is None:
            return Layout("objects", i, indent=b"")
        return _wrapped_layout(head, i, key)
    if _YAML_START.match(head, i):
        return Layout("yaml")
    return Layout("jsonl")


def _wrapped_layout(head: bytes, i: int, key: str) -> Layout:
    """One object wrapping the entries in a list under `key`, read element by element."""
    m = re.compile(_key_pattern(key)).search(head, i)
    if m is None:
        return Layout("objects", i, indent=b"")
    return _element_layout("wrapped", head, _skip_space(head, m.end()), m.end(), key)


def _parses(text: bytes) -> bool:
    try:
        orjson.loads(text)
    except orjson.JSONDecodeError:
        return False
    return True


def _wrapper_key_past(rest: bytes) -> str | None:
    """The wrapper key of the first whole line in `rest` that is valid JSON (None when that line
    is not a wrapper): a damaged first line does not decide how the other lines are read."""
    for line in rest.split(b"\n")[1:-1]:
        if line.strip() and _parses(line):
            return _wrapper_key(line, whole=True)
    return None


def _element_layout(fmt: str, head: bytes, first: int, after_open: int, key: str | None = None) -> Layout:
    """Entries one per line-start (pretty-printed: the indentation of the first entry) or not."""
    line_start = head.rfind(b"\n", after_open, first) + 1
    if line_start and head[first:first + 1] == b"{" and not head[line_start:first].strip():
        return Layout(fmt, first, head[line_start:first], key)
    return Layout(fmt, first, None, key)


def _wrapper_key(data: bytes, whole: bool) -> str | None:
    """The key of the first list of objects in a JSON object that is not itself a LogEntry, else None.

    `data` is one whole object (`whole`) or the head of a big one, read as a stream with ijson.
    """
    if whole:
        try:
            value = orjson.loads(data)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(value, dict) or LOGENTRY_FIELDS.intersection(value):
            return None
        return next((k for k, v in value.items() if isinstance(v, list) and v and isinstance(v[0], dict)), None)
    key = None
    try:
        events = ijson.parse(io.BytesIO(data))
        for prefix, event, value in events:
            if event == "map_key" and prefix == "":
                if value in LOGENTRY_FIELDS:
                    return None
                key = value
            elif key is not None and prefix == key and event != "start_array":
                key = None
            elif key is not None and prefix == f"{key}.item":
                return key if event == "start_map" else None
    except ijson.JSONError:
        return None
    return None


def detect_format(head: bytes) -> str:
    """'array', 'objects' (pretty-printed objects back to back), 'yaml', 'jsonl', 'wrapped' or
    'wrapped-lines', from the first bytes."""
    return sniff(head).format


# ---------------------------------------------------------------------------------- reading
def iter_batches(path: Path, source: str | None = None, batch_size: int = 75_000) -> Iterator[Batch]:
    """Yield batches of entry texts from one file (any supported format, gz or not).

    Never raises for the file's own problems: a file that cannot be opened yields one empty
    batch whose note (level "error") says why and what to do.
    """
    source = source or str(path)
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed below
    except OSError as err:
        hint = ("check the file's permissions (`ls -l`), or run as a user who may read it"
                if isinstance(err, PermissionError) else "check that the file exists and is a regular file")
        yield Batch(source, pa.array([], pa.int64()), pa.array([], pa.string()),
                    notes=[note("error", f"cannot open: {err.strerror or err}", hint)])
        return
    with fh:
        yield from iter_stream_batches(fh, source, batch_size)


def iter_stream_batches(fh: IO[bytes], source: str, batch_size: int = 75_000) -> Iterator[Batch]:
    """Yield batches from an open binary stream (a local file, a Cloud Storage blob), gunzipping
    by magic bytes. Read errors of the stream end the data with an "error" note on the last batch.
    """
    data = _Input(fh)
    layout = sniff(data.head(HEAD_BYTES))
    buffered = io.BufferedReader(data, 1 << 20)
    reader = _READERS[layout.format]
    summary = _Summary()
    last: Batch | None = None
    raw_done = 0
    for batch in reader(buffered, source, batch_size, layout, summary):
        batch.format = layout.format
        batch.bytes_read, raw_done = data.raw_at - raw_done, data.raw_at
        if last is not None:
            yield last
        last = batch
    if last is None:
        last = Batch(source, pa.array([], pa.int64()), pa.array([], pa.string()), format=layout.format)
    last.notes.extend(_file_notes(layout, summary, data))
    yield last


@dataclass
class _Summary:
    """What a reader saw, for the file-level notes."""

    items: int = 0  # entries and rejects yielded
    json_like: int = 0  # JSON Lines: lines that start with `{` (fewer than half: plain text)
    unclosed: bool = False  # a JSON array or wrapper that never closed
    last_position: int = 0


def _file_notes(layout: Layout, summary: _Summary, data: _Input) -> list[dict[str, Any]]:
    notes = []
    if layout.key is not None:
        where = "of each line" if layout.format == "wrapped-lines" else "of the top-level object"
        notes.append(note("info", f"entries read from key `{layout.key}` {where}; positions are entry numbers"))
    if data.problem is not None:
        problem = dict(data.problem)
        if summary.last_position:
            unit = "line" if layout.format in ("jsonl", "yaml") else "entry"
            problem["message"] += f"; the data ends in {unit} {summary.last_position}"
        notes.append(problem)
    elif summary.unclosed:
        notes.append(note("error", "the JSON array ends without its closing `]`: the file is truncated",
                          "export the file again; the entries before the cut were read"))
    if summary.items == 0 and data.problem is None:
        notes.append(note("warning", "holds no entries",
                          "`gcloud logging read` returns only the last day unless given --freshness "
                          f"(e.g. --freshness=30d), and the filter may match nothing; {EXPORT_HINT}"))
    elif layout.format == "jsonl" and summary.items and summary.json_like * 2 < summary.items:
        notes.append(note("warning", f"plain text, not LogEntries: {summary.items - summary.json_like} of "
                                     f"{summary.items} lines are not JSON objects "
                                     "(e.g. `--format='value(textPayload)'` output)",
                          f"{EXPORT_HINT} (or --format=yaml): logaudit needs whole LogEntries"))
    return notes


class _Collector:
    """Accumulates entry texts and rejects into batches of at most `batch_size`."""

    def __init__(self, source: str, batch_size: int, summary: _Summary) -> None:
        self.source, self.batch_size, self.summary = source, batch_size, summary
        self.positions: list[int] = []
        self.texts: list[str] = []
        self.offsets: list[int] = []
        self.bad: list[Reject] = []

    def add(self, position: int, text: str, offset: int) -> None:
        self.positions.append(position)
        self.texts.append(text)
        self.offsets.append(offset)
        self.summary.items += 1
        self.summary.last_position = position

    def reject(self, position: int, reason: str, text: bytes | str, offset: int | None) -> None:
        if isinstance(text, bytes):
            text = text[:300].decode("utf-8", "replace")
        self.bad.append(Reject(position, reason, text.strip()[:REJECT_KEEP_CHARS], offset))
        self.summary.items += 1
        self.summary.last_position = max(self.summary.last_position, position)

    def full(self) -> bool:
        return len(self.texts) + len(self.bad) >= self.batch_size

    def flush(self) -> Batch:
        batch = Batch(self.source, pa.array(self.positions, pa.int64()), pa.array(self.texts, pa.string()),
                      self.bad, offsets=pa.array(self.offsets, pa.int64()))
        self.positions, self.texts, self.offsets, self.bad = [], [], [], []
        return batch


# ---------------------------------------------------------------------------------- nesting depth
_QUOTE_OR_ESCAPE = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)


def json_depth(text: bytes) -> int:
    """Deepest nesting of objects and arrays in JSON text (brackets inside strings do not count).

    >>> json_depth(b'{"a": [1, {"b": "[[["}]}')
    3
    """
    bare = np.frombuffer(_QUOTE_OR_ESCAPE.sub(b'""', text), dtype=np.uint8)
    steps = np.zeros(len(bare), dtype=np.int32)
    steps[(bare | 32) == ord("{")] = 1
    steps[(bare | 32) == ord("}")] = -1
    return int(np.cumsum(steps).max(initial=0))


def _too_deep(text: bytes) -> bool:
    # Counting brackets is cheap and bounds the depth from above; most texts stop there.
    return text.count(b"{") + text.count(b"[") > MAX_DEPTH and json_depth(text) > MAX_DEPTH


DEPTH_REASON = f"nested deeper than {MAX_DEPTH} levels (not a LogEntry; JSON tools cannot handle it)"


# ---------------------------------------------------------------------------------- JSON Lines
def _jsonl_batches(fh: IO[bytes], source: str, batch_size: int, layout: Layout, summary: _Summary) -> Iterator[Batch]:
    line_no = 0
    carry = b""
    scratch: list[np.ndarray] = []
    pending: list[tuple[np.ndarray, pa.Array, list, int]] = []
    pending_rows = pending_bytes = 0
    while True:
        # Each block gets its own buffer (the line arrays keep referencing it): the carried-over
        # partial line is copied in, the rest is read straight into place.
        buf = bytearray(len(carry) + BLOCK_BYTES)
        buf[: len(carry)] = carry
        got = _read_into(fh, memoryview(buf)[len(carry):])
        size = len(carry) + got
        if got == 0 and size == 0:
            break
        end = size if got == 0 else buf.rfind(b"\n", 0, size) + 1
        if end == 0:  # no newline in a whole block: one very long line, keep reading
            carry = bytes(buf[:size])
            continue
        carry = bytes(buf[end:size])
        data = memoryview(buf)[:end]
        bom = line_no == 0 and bytes(data[:3]) == b"\xef\xbb\xbf"
        if bom:
            data[:3] = b"   "
        positions, lines, bad, blank, count, json_like = _split_lines(data, line_no, scratch)
        json_like += bom and bytes(data[3:4]) == b"{"  # the mark's blanks hid the line's `{`
        line_no += count
        summary.items += count - blank
        summary.json_like += json_like
        summary.last_position = line_no
        pending.append((positions, lines, bad, blank))
        pending_rows += len(positions)
        pending_bytes += end
        if pending_rows >= batch_size or pending_bytes >= BATCH_BYTES:
            yield _merge(source, pending)
            pending, pending_rows, pending_bytes = [], 0, 0
        if got == 0:
            break
    if pending:
        yield _merge(source, pending)


def _read_into(fh: IO[bytes], view: memoryview) -> int:
    """Fill `view` from `fh` as far as the stream goes; returns the bytes read (0 at the end)."""
    total = 0
    while total < len(view):
        n = fh.readinto(view[total:])  # type: ignore[attr-defined]
        if not n:
            break
        total += n
    return total


def _merge(source: str, parts: list) -> Batch:
    positions = pa.array(np.concatenate([p[0] for p in parts]), pa.int64())
    lines = pa.chunked_array([p[1] for p in parts], pa.string())
    bad = [b for p in parts for b in p[2]]
    return Batch(source, positions, lines, bad, blank=sum(p[3] for p in parts))


def _opening_brackets(buf: np.ndarray, scratch: list[np.ndarray] | None) -> np.ndarray:
    """Positions of `{` and `[` in `buf`. `scratch` holds buffers reused from block to block
    (fresh 8 MiB temporaries cost more in page faults than the comparisons themselves)."""
    if scratch is None:
        return np.flatnonzero((buf | 32) == ord("{"))
    if not scratch or len(scratch[0]) < len(buf):
        scratch[:] = [np.empty(len(buf), np.uint8), np.empty(len(buf), np.bool_)]
    folded, mask = scratch[0][: len(buf)], scratch[1][: len(buf)]
    np.bitwise_or(buf, 32, out=folded)
    np.equal(folded, ord("{"), out=mask)
    return np.flatnonzero(mask)


def _split_lines(data: bytes | memoryview, first_line: int,
                 scratch: list[np.ndarray] | None = None) -> tuple[np.ndarray, pa.Array, list, int, int, int]:
    """Split a block of lines into a string array without making a Python object per line.

    Each value keeps its trailing newline (JSON ignores it), which makes the values contiguous
    in `data`, so the block itself is the array's data buffer.
    """
    buf = np.frombuffer(data, dtype=np.uint8)
    nl = np.flatnonzero(buf == 10)
    bounds = np.concatenate(([0], nl + 1))
    if bounds[-1] != len(data):
        bounds = np.append(bounds, len(data))
    count = len(bounds) - 1
    numbers = np.arange(first_line + 1, first_line + 1 + count, dtype=np.int64)
    ends = bounds[1:].copy()
    has_nl = (ends > bounds[:-1]) & (buf[np.maximum(ends - 1, 0)] == 10)
    ends -= has_nl
    has_cr = (ends > bounds[:-1]) & (buf[np.maximum(ends - 1, 0)] == 13)
    ends -= has_cr
    keep = ends > bounds[:-1]
    blank = int((~keep).sum())
    json_like = int(np.count_nonzero(buf[bounds[:-1][keep]] == ord("{")))
    bad: list[Reject] = []
    if bounds[-1] >= 2**31:
        raise InputError("a block of lines exceeds 2 GiB")
    lines = pa.StringArray.from_buffers(count, pa.py_buffer(bounds.astype(np.int32)), pa.py_buffer(data))
    try:
        lines.validate(full=True)  # UTF-8 check in C++; the per-line search below runs only on failure
    except pa.ArrowInvalid:
        for i in np.flatnonzero(keep):
            chunk = bytes(data[bounds[i] : ends[i]])
            try:
                chunk.decode("utf-8")
            except UnicodeDecodeError as err:
                keep[i] = False
                bad.append(Reject(int(numbers[i]), f"not UTF-8 text (byte {err.start})", chunk[:REJECT_KEEP_CHARS].decode("utf-8", "replace")))
    # Only a line holding more than MAX_DEPTH brackets can nest that deep: count them per line
    # ([ and { are the only bytes that `| 32` maps to `{`), check those few exactly.
    opens = _opening_brackets(buf, scratch)
    for i in np.flatnonzero((np.diff(np.searchsorted(opens, bounds)) > MAX_DEPTH) & keep):
        chunk = bytes(data[bounds[i] : ends[i]])
        if json_depth(chunk) > MAX_DEPTH:
            keep[i] = False
            bad.append(Reject(int(numbers[i]), DEPTH_REASON, chunk[:REJECT_KEEP_CHARS].decode("utf-8", "replace")))
    if not keep.all():
        lines = lines.filter(pa.array(keep))
        numbers = numbers[keep]
    return numbers, lines, bad, blank, count, json_like


# ---------------------------------------------------------------------------------- arrays and objects
class _Pieces:
    """Splits a stream at the places where an entry can start, holding at most one piece plus one
    block. Pretty-printed files: a line made of the entries' indentation and `{` (a valid entry
    never holds one). Compact files: the `{` after `},` (also found inside entries that hold lists
    of objects, so there a piece may be only part of an entry)."""

    def __init__(self, fh: IO[bytes], layout: Layout) -> None:
        self.fh = fh
        if layout.indent is not None:
            self.pattern = re.compile(rb"\n" + re.escape(layout.indent) + rb"\{")
            self.shift = 1 + len(layout.indent)  # from the match start to the `{`
        else:
            self.pattern = re.compile(rb"\}\s*\{" if layout.format == "objects" else rb"\}\s*,\s*\{")
            self.shift = 0  # the `{` ends the match
        fh.read(layout.start)  # the opening `[`, or the head of a wrapping object
        self.buf = b""
        self.at = layout.start  # file offset of buf[0]

    def __iter__(self) -> Iterator[tuple[int, bytes, bool]]:
        """(file offset, piece, whether a piece follows); an oversized piece comes back as b""."""
        start, searched, eof = 0, 0, False
        piece_at, oversized = self.at, False
        while True:
            m = self.pattern.search(self.buf, max(start + 1, searched - 64))
            if m is not None:
                cut = m.start() + self.shift if self.shift else m.end() - 1
                yield piece_at, (b"" if oversized else self.buf[start:cut]), True
                start = searched = cut
                piece_at, oversized = self.at + cut, False
                continue
            searched = len(self.buf)
            if eof:
                break
            if len(self.buf) - start > MAX_ELEMENT_BYTES:  # forget the middle of an oversized piece
                oversized = True
                start = len(self.buf) - 256
            block = self.fh.read(BLOCK_BYTES)
            eof = not block
            self.at += start
            searched -= start
            self.buf = self.buf[start:] + block
            start = 0
        if oversized or self.buf[start:].strip():
            yield piece_at, (b"" if oversized else self.buf[start:]), False


def _element_batches(fh: IO[bytes], source: str, batch_size: int, layout: Layout, summary: _Summary) -> Iterator[Batch]:
    reader = _ElementReader(_Collector(source, batch_size, summary), layout)
    for piece in _Pieces(fh, layout):
        reader.queue.append(piece)
        reader.drain()
        if reader.out.full():
            yield reader.out.flush()
    reader.drain()
    summary.unclosed = not reader.closed and summary.items > 0
    yield reader.out.flush()


class _ElementReader:
    """Turns pieces into entries and rejects. Pretty-printed files: each piece is one entry.
    Compact files: pieces join until they parse (a `},{` inside an entry split it); a piece that
    cannot start an entry is rejected on its own and reading resumes at the next piece."""

    def __init__(self, out: _Collector, layout: Layout) -> None:
        self.out, self.layout = out, layout
        self.queue: deque[tuple[int, bytes, bool]] = deque()
        self.element = 0
        self.closed = layout.format == "objects"
        self.joins = layout.indent is None

    def drain(self) -> None:
        while self.queue:
            taken, parsed = self._take()
            if taken == 0:
                return  # wait for the next piece
            group = [self.queue.popleft() for _ in range(taken)]
            self._emit(group, parsed)

    def _take(self) -> tuple[int, tuple[str, int | str] | None]:
        """How many pieces at the head of the queue form the next item (0: more are needed), and
        their parse when it was done."""
        piece = self.queue[0][1]
        if not piece or not self.joins:
            return 1, None
        balance = size = 0
        for taken, (_, part, part_more) in enumerate(self.queue, start=1):
            if not part:
                return max(taken - 1, 1), None
            size += len(part)
            balance += part.count(b"{") + part.count(b"[") - part.count(b"}") - part.count(b"]")
            if taken > 1 and balance > 0 and taken % 16 and part_more and size < MAX_ELEMENT_BYTES:
                continue  # cheap test first: the brackets do not close yet
            parsed = _parse_element(self._joined(taken))
            if parsed[0] == "invalid" and taken > 2:
                # joined past the entry's end (brackets inside its strings kept the count open)
                # into damage: the entry is the shortest run of pieces that parses
                for shorter in range(2, taken):
                    if (retry := _parse_element(self._joined(shorter)))[0] == "ok":
                        return shorter, retry
            if parsed[0] != "incomplete" or not part_more or size >= MAX_ELEMENT_BYTES:
                return taken, parsed
        return 0, None

    def _joined(self, taken: int) -> bytes:
        return b"".join(p for _, p, _ in itertools.islice(self.queue, taken))

    def _emit(self, group: list[tuple[int, bytes, bool]], parsed: tuple[str, int | str] | None) -> None:
        offset, first_piece, _ = group[0]
        more = group[-1][2]
        self.element += 1
        n = self.element
        if not first_piece:
            self.out.reject(n, f"entry {n} (byte {offset}) is larger than {_size(MAX_ELEMENT_BYTES)} "
                               "or never closes", b"", offset)
            return
        text = b"".join(p for _, p, _ in group)
        if self.element == 1 and self._closes(text, more):
            self.element = 0  # an empty array or wrapper: no entry at all
            return
        kind, detail = parsed or _parse_element(text)
        if kind != "ok" and not more and (kind == "too deep" or len(group) == 1) and _closes_outer(text):
            self.closed = True  # a broken last entry, then the `]` (and `}`) that close the array: not truncated
        if kind == "ok":
            end = int(detail)
            self._accept(n, text, end, offset, group, more)
        elif kind == "too deep":
            self.out.reject(n, f"entry {n} (byte {offset}) is {DEPTH_REASON}", text, offset)
        elif len(group) > 1:
            # the first piece does not start a whole entry: reject it alone, retry from the next
            self.queue.extendleft(reversed(group[1:]))
            self.out.reject(n, f"entry {n} (byte {offset}) is not valid JSON", first_piece, offset)
        elif kind == "incomplete":
            reason = "is not closed before the next entry starts" if more else "is cut off by the end of the data"
            self.out.reject(n, f"entry {n} (byte {offset}) {reason}", text, offset)
        else:
            at, why = str(detail).split(":", 1)
            self.out.reject(n, f"entry {n} (byte {offset}) is not valid JSON: {why} at byte {offset + int(at)}",
                            text, offset)

    def _accept(self, n: int, text: bytes, end: int, offset: int, group: list, more: bool) -> None:
        self.out.add(n, text[:end].decode(), offset)
        cut, used = 0, 0
        for used, (_, part, _) in enumerate(group, start=1):  # noqa: B007 - `used` is read below
            cut += len(part)
            if cut >= end:
                break
        if used < len(group):  # parsed past the entry's own pieces: they start the next items
            self.queue.extendleft(reversed(group[used:]))
            more = True
        tail = text[end:cut]
        after = tail.lstrip()
        after = after[1:].lstrip() if after.startswith(b",") else after
        rest = after.rstrip()
        if not rest:
            return
        at = offset + end + len(tail) - len(after)
        if rest.startswith(b"]") and self.layout.format in ("array", "wrapped"):
            self._after_close(n, rest, at, more)
            return
        if self._closes(rest, more):
            return
        if rest[:1] in _VALUE_START:  # the next element, in the same piece (`[1, "x", {...}]`)
            self.queue.appendleft((at, after, more))
            return
        self.out.reject(n, f"unexpected text after entry {n} (byte {at}): not part of any entry", rest, at)

    def _after_close(self, n: int, rest: bytes, at: int, more: bool) -> None:
        """`rest` (at byte `at`) starts with the `]` that closes the list of entries. What follows
        the array (or the object wrapping the list) is nothing, another array (or wrapping
        object: pages back to back), whose entries are read on, or text, which is rejected."""
        self.closed = True
        wrapped = self.layout.format == "wrapped"
        end = _wrapper_end(rest) if wrapped else 1
        if end is None:
            return
        trailing = rest[end:].lstrip()
        if not trailing:
            return
        at += len(rest) - len(trailing)
        start = re.match(rb"\{\s*" + _key_pattern(self.layout.key or "") if wrapped else rb"\[", trailing)
        if start is not None:
            self.closed = False
            body = trailing[start.end():].lstrip()
            if body.startswith(b"]"):  # an empty one
                self._after_close(n, body, at + len(trailing) - len(body), more)
            elif body:
                self.queue.appendleft((at + len(trailing) - len(body), body, more))
            return
        what = "object that wraps the entries" if wrapped else "array of entries"
        self.out.reject(n, f"unexpected text after the {what} (byte {at}): not part of any entry", trailing, at)

    def _closes(self, rest: bytes, more: bool) -> bool:
        """Whether `rest` is the end of the array (or wrapper) that holds the entries."""
        rest = rest.strip()
        fmt = self.layout.format
        if (fmt == "array" and rest == b"]" and not more) or (fmt == "wrapped" and rest.startswith(b"]")):
            self.closed = True
            return True
        return False


def _wrapper_end(rest: bytes) -> int | None:
    """Where the object wrapping the entries ends in `rest`, which starts with the `]` closing
    its list (other keys may follow it); None when it does not end in `rest`."""
    probe = b'{"":[' + rest
    try:
        orjson.loads(probe)
    except orjson.JSONDecodeError as err:
        if err.msg != "unexpected content after document":
            return None
        return len(probe.decode("utf-8", "replace")[: err.pos].encode()) - 5
    return len(rest)


def _key_pattern(key: str) -> bytes:
    """A regular expression for `"key": [` as JSON writes the key."""
    return rb'"' + re.escape(json.dumps(key, ensure_ascii=False).encode()[1:-1]) + rb'"\s*:\s*\['


def _closes_outer(text: bytes) -> bool:
    """Whether `text` (an element that does not parse, at the end of the data) closes more
    brackets than it opens (strings aside): it ends with the `]` of the array that holds it."""
    bare = _QUOTE_OR_ESCAPE.sub(b'""', text)
    return bare.count(b"]") + bare.count(b"}") > bare.count(b"[") + bare.count(b"{")


_VALUE_START = frozenset(bytes([c]) for c in b'{["-0123456789tfn')


def _parse_element(text: bytes) -> tuple[str, int | str]:
    """("ok", length of the entry in `text`) when `text` starts with a JSON value (what follows
    is the caller's); else ("incomplete", "") when the data ends inside it, ("too deep", "") or
    ("invalid", why)."""
    body = text.rstrip()
    if body.endswith(b","):
        body = body[:-1].rstrip()
    end = len(body)
    try:
        orjson.loads(body)
    except orjson.JSONDecodeError as err:
        if err.msg == "unexpected content after document":
            end = len(body.decode()[: err.pos].encode())
        elif err.msg == "unexpected end of data":
            return "incomplete", ""
        elif err.msg.startswith("depth limit"):
            return "too deep", ""
        elif "infinity" not in err.msg:  # 1e400 is valid JSON that orjson does not take
            at = len(body.decode("utf-8", "replace")[: err.pos].encode())
            return "invalid", f"{at}:{err.msg}"  # where (bytes into the entry) and why
    if _too_deep(body[:end]):
        return "too deep", ""
    return "ok", end


# ---------------------------------------------------------------------------------- wrappers per line
def _wrapped_lines_batches(fh: IO[bytes], source: str, batch_size: int, layout: Layout,
                           summary: _Summary) -> Iterator[Batch]:
    """One wrapping object per line (`{"entries": [...], "nextPageToken": ...}` pages)."""
    out = _Collector(source, batch_size, summary)
    element = offset = line_no = 0
    while line := fh.readline(MAX_ELEMENT_BYTES):
        line_no += 1
        here, offset = offset, offset + len(line)
        if not line.endswith(b"\n") and len(line) == MAX_ELEMENT_BYTES:  # skip the rest of a huge line
            while (more := fh.readline(MAX_ELEMENT_BYTES)) and not more.endswith(b"\n"):
                offset += len(more)
            offset += len(more)
            element += 1
            out.reject(element, f"line {line_no} is larger than {_size(MAX_ELEMENT_BYTES)}", b"", here)
            continue
        body = line.strip().removeprefix(b"\xef\xbb\xbf") if line_no == 1 else line.strip()
        if not body:
            continue
        try:
            value = loads_exact(body)
        except orjson.JSONDecodeError as err:
            element += 1
            out.reject(element, f"line {line_no} is not valid JSON: {err.msg} at column {err.colno}", body, here)
            continue
        items = value.get(layout.key) if isinstance(value, dict) else None
        if not isinstance(items, list):
            element += 1
            if isinstance(value, dict) and LOGENTRY_FIELDS.intersection(value):
                out.add(element, body.decode(), here)
            else:
                out.reject(element, f"line {line_no} has no list under `{layout.key}`", body, here)
            continue
        for item in items:
            element += 1
            text = dumps_exact(item)
            if _too_deep(text):
                out.reject(element, f"entry {element} (line {line_no}) is {DEPTH_REASON}", b"", here)
            else:
                out.add(element, text.decode(), here)
        if out.full():
            yield out.flush()
    yield out.flush()


_LONG_NUMBER = re.compile(rb"[0-9]{20}")  # 2**64 has 20 digits


def loads_exact(text: bytes) -> Any:
    """`orjson.loads(text)`, except that integers beyond 64 bits stay exact integers (orjson
    reads them as floats); raises orjson.JSONDecodeError for text that is not JSON."""
    value = orjson.loads(text)
    if _LONG_NUMBER.search(text):  # maybe such an integer: the standard library reads it exactly
        with contextlib.suppress(RecursionError):
            value = json.loads(text)
    return value


def dumps_exact(value: Any) -> bytes:
    """JSON text of a parsed value, integers beyond 64 bits included (orjson refuses them); a
    value too deep to write comes back as text nested deeper than MAX_DEPTH."""
    try:
        return orjson.dumps(value)
    except TypeError:  # an integer beyond 64 bits, or more than 254 levels
        try:
            return json.dumps(value, ensure_ascii=False).encode()
        except RecursionError:
            return b"[" * (MAX_DEPTH + 1)


# ---------------------------------------------------------------------------------- YAML
def _resolvers(loader: type, rules: list[tuple[str, str, list[str]]]) -> None:
    loader.yaml_implicit_resolvers = {}
    for tag, pattern, first in rules:
        loader.add_implicit_resolver(tag, re.compile(pattern, re.X), first)


_Base = yaml.CSafeLoader if hasattr(yaml, "CSafeLoader") else yaml.SafeLoader


class Yaml12Loader(_Base):  # type: ignore[misc,valid-type]
    """YAML 1.2 core schema, as gcloud writes it (its printer is ruamel.yaml's, YAML 1.2): only
    `true`/`false` are booleans, `~`/`null`/empty are null, numbers are decimal, `0o`, `0x`, `0b`
    (no sexagesimal `10:30`, no `yes`/`no`/`on`/`off`, no leading-zero octal), timestamps stay
    text. Same resolution rules as ruamel.yaml 1.2, on PyYAML's C parser."""


_resolvers(Yaml12Loader, [
    ("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", list("tTfF")),
    ("tag:yaml.org,2002:float", r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                                   |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                                   |[-+]?\.[0-9_]+(?:[eE][-+][0-9]+)?
                                   |[-+]?\.(?:inf|Inf|INF)
                                   |\.(?:nan|NaN|NAN))$""", list("-+0123456789.")),
    ("tag:yaml.org,2002:int", r"^(?:[-+]?0b[0-1_]+|[-+]?0o?[0-7_]+|[-+]?[0-9_]+|[-+]?0x[0-9a-fA-F_]+)$", list("-+0123456789")),
    ("tag:yaml.org,2002:null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
])


def _construct_int_12(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int | str:
    text = loader.construct_scalar(node)
    digits = str(text).replace("_", "")
    sign = -1 if digits.startswith("-") else 1
    digits = digits.lstrip("+-")
    base = {"0b": 2, "0o": 8, "0x": 16}.get(digits[:2], 10)
    try:
        return sign * int(digits[2:] if base != 10 else digits, base)
    except ValueError:  # `_` alone matches the int pattern
        return str(text)


Yaml12Loader.add_constructor("tag:yaml.org,2002:int", _construct_int_12)


class Yaml11Loader(_Base):  # type: ignore[misc,valid-type]
    """YAML 1.1 (PyYAML's rules), for documents that declare `%YAML 1.1`; timestamps stay text
    (YAML's timestamp type would drop nanoseconds)."""


Yaml11Loader.yaml_implicit_resolvers = {
    k: [r for r in v if r[0] != "tag:yaml.org,2002:timestamp"] for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
}

_ALIAS = re.compile(r"(?:^|[\s\[{,:-])\*[^\s,\[\]{}]", re.M)


class _YamlDoc:
    """One YAML document being collected: its lines, first line number, byte offset, version."""

    def __init__(self, line: int, offset: int, version: bytes | None) -> None:
        self.lines: list[bytes] = []
        self.line, self.offset, self.version = line, offset, version
        self.size = 0
        self.oversized = False

    def append(self, line: bytes) -> None:
        self.size += len(line)
        if self.size > MAX_ELEMENT_BYTES:
            self.oversized, self.lines = True, []
        if not self.oversized:
            self.lines.append(line)


def _yaml_batches(fh: IO[bytes], source: str, batch_size: int, layout: Layout, summary: _Summary) -> Iterator[Batch]:
    """gcloud's default output: documents separated by `---`; each document parsed on its own,
    so one broken document is one reject and the rest still load. A document that declares
    `%YAML 1.1` is read with YAML 1.1 rules, every other one with YAML 1.2 rules."""
    out = _Collector(source, batch_size, summary)
    doc = _YamlDoc(1, 0, None)
    version: bytes | None = None
    offset = 0
    for number, line in enumerate(fh, start=1):
        here, offset = offset, offset + len(line)
        if number == 1 and line.startswith(b"\xef\xbb\xbf"):
            line = line[3:]
        bare = line.rstrip(b"\r\n")
        if bare == b"---" or bare.startswith((b"--- ", b"---\t")) or bare == b"...":
            _finish_yaml(doc, out)
            doc, version = _YamlDoc(number + 1, offset, version), None
            if bare.startswith((b"--- ", b"---\t")) and bare[4:].strip():
                doc.line, doc.offset = number, here
                doc.append(bare[4:] + b"\n")
            if out.full():
                yield out.flush()
            continue
        if bare.startswith((b"%YAML ", b"%TAG ")) and doc.size:
            # a directive ends the document before it (writers that concatenate documents
            # each with its own `%YAML 1.1` leave out the `...` the spec asks for)
            _finish_yaml(doc, out)
            doc, version = _YamlDoc(number, here, None), None
            if out.full():
                yield out.flush()
        if bare.startswith(b"%") and not doc.size:
            if bare.startswith(b"%YAML "):
                version = doc.version = bare[6:].strip()
            continue
        if not doc.size:
            doc.line, doc.offset = number, here
        doc.append(line)
    _finish_yaml(doc, out)
    yield out.flush()


def _finish_yaml(doc: _YamlDoc, out: _Collector) -> None:
    where = f"YAML document at line {doc.line} (byte {doc.offset})"
    if doc.oversized:
        out.reject(doc.line, f"{where} is larger than {_size(MAX_ELEMENT_BYTES)}", b"", doc.offset)
        return
    body = b"".join(doc.lines)
    if not body.strip():
        return
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as err:
        out.reject(doc.line, f"{where} is not UTF-8 text (byte {doc.offset + err.start})", body, doc.offset)
        return
    loader = Yaml11Loader if doc.version == b"1.1" else Yaml12Loader
    try:
        if "*" in text and "&" in text and _ALIAS.search(text) and any(
                isinstance(e, yaml.AliasEvent) for e in yaml.parse(text, Loader=loader)):
            out.reject(doc.line, f"{where} uses YAML aliases (`*name`), which LogEntry exports never hold", text,
                       doc.offset)
            return
        value = yaml.load(text, Loader=loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as err:
        if "maximum nesting depth" in str(getattr(err, "problem", None)):  # the parser's own limit
            out.reject(doc.line, f"{where} is {DEPTH_REASON}", text, doc.offset)
            return
        mark = getattr(err, "problem_mark", None)
        at = f" (line {doc.line + mark.line})" if mark is not None else ""
        out.reject(doc.line, f"{where} is not valid YAML{at}: {getattr(err, 'problem', None) or err}", text, doc.offset)
        return
    except (TypeError, ValueError) as err:
        out.reject(doc.line, f"{where} has a value that cannot be read: {err}", text, doc.offset)
        return
    try:
        dumped = orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS, default=str)
    except TypeError as err:
        if "Recursion" in str(err):
            out.reject(doc.line, f"{where} is {DEPTH_REASON}", text, doc.offset)
            return
        try:  # integers beyond 64 bits: the standard library writes them exactly
            dumped = json.dumps(value, ensure_ascii=False, allow_nan=False, default=str).encode()
        except (TypeError, ValueError) as err2:
            out.reject(doc.line, f"{where} cannot be written as JSON: {err2}", text, doc.offset)
            return
    if _too_deep(dumped):
        out.reject(doc.line, f"{where} is {DEPTH_REASON}", text, doc.offset)
        return
    out.add(doc.line, dumped.decode(), doc.offset)


_READERS = {"jsonl": _jsonl_batches, "array": _element_batches, "objects": _element_batches,
            "wrapped": _element_batches, "wrapped-lines": _wrapped_lines_batches, "yaml": _yaml_batches}
