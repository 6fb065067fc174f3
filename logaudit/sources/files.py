"""Read exported log files as batches of LogEntry JSON texts, streaming.

Formats, detected from the content (not the name): gcloud `--format=json` arrays (one big,
pretty-printed array), JSON Lines, concatenated pretty-printed objects, gcloud YAML documents
separated by `---`, and `.gz` of any of these. Directories (Cloud Storage sink layout
`LOG_ID/YYYY/MM/DD/HH:00:00_HH:59:59_S0.json`) are walked recursively.

Memory stays bounded: JSON Lines are read in fixed-size blocks and every format yields batches
of at most `batch_size` entries.

>>> from logaudit.sources.files import discover
>>> discover(["data/sample"])  # doctest: +SKIP
[PosixPath('data/sample/netra-staging.jsonl.gz')]
"""

from __future__ import annotations

import gzip
import io
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import ijson
import numpy as np
import orjson
import pyarrow as pa
import yaml

from logaudit.errors import InputError

#: File names taken from a directory walk (sink exports are `.json`; gz variants too).
LOG_SUFFIXES = (".json", ".jsonl", ".ndjson", ".yaml", ".yml", ".log")
BLOCK_BYTES = 8 << 20
#: A JSON Lines batch closes at this many bytes even before `batch_size` lines (bounds memory).
BATCH_BYTES = 48 << 20


@dataclass
class Batch:
    """Up to `batch_size` LogEntry JSON texts from one source, with their line/element numbers.

    `bad` holds items rejected before JSON parsing (undecodable bytes, broken YAML, a JSON
    array that breaks off), as (position, reason, text).
    """

    source: str
    positions: pa.Array | pa.ChunkedArray
    lines: pa.Array | pa.ChunkedArray
    bad: list[tuple[int, str, str]] = field(default_factory=list)
    bytes_read: int = 0
    blank: int = 0


def discover(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Expand paths into the files to read: files as given, directories walked recursively (sorted).

    Raises InputError for a path that does not exist, or a directory holding no log files.
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


def open_binary(path: Path) -> IO[bytes]:
    """Open a file for reading, transparently gunzipping by magic bytes (not by name)."""
    try:
        raw = open(path, "rb")  # noqa: SIM115 - returned to the caller
    except OSError as err:
        raise InputError(f"{path}: cannot read: {err.strerror}", hint="check permissions") from err
    if raw.peek(2)[:2] == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
    return raw


def detect_format(head: bytes) -> str:
    """'array', 'objects' (pretty-printed objects back to back), 'yaml' or 'jsonl', from the first bytes."""
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if text.startswith(b"["):
        return "array"
    if text.startswith(b"{"):
        first_line = text.split(b"\n", 1)[0].strip()
        return "objects" if first_line == b"{" else "jsonl"
    if text.startswith(b"---") or (text[:1].isalpha() and b":" in text.split(b"\n", 1)[0]):
        return "yaml"
    return "jsonl"


def iter_batches(path: Path, source: str | None = None, batch_size: int = 75_000) -> Iterator[Batch]:
    """Yield batches of entry texts from one file (any supported format, gz or not)."""
    source = source or str(path)
    try:
        with open_binary(path) as fh:
            yield from iter_stream_batches(fh, source, batch_size)
    except (OSError, EOFError, gzip.BadGzipFile) as err:
        raise InputError(f"{source}: cannot read: {err}", hint="is the file complete? a truncated .gz cannot be read to the end") from err


def iter_stream_batches(fh: IO[bytes], source: str, batch_size: int = 75_000) -> Iterator[Batch]:
    """Yield batches from an open binary stream (a local file, a gunzipped stream, a Cloud Storage blob).

    The caller handles gzip (see `open_binary`) and turns OSError into its own error.
    """
    buffered = fh if isinstance(fh, io.BufferedReader) else io.BufferedReader(fh, 1 << 20)  # type: ignore[arg-type]
    head = buffered.peek(4096)[:4096]
    if head[:2] == b"\x1f\x8b":
        buffered = io.BufferedReader(gzip.GzipFile(fileobj=buffered, mode="rb"), 1 << 20)  # type: ignore[arg-type]
        head = buffered.peek(4096)[:4096]
    reader = {"array": _array_batches, "objects": _object_batches, "yaml": _yaml_batches}.get(detect_format(head), _jsonl_batches)
    yield from reader(buffered, source, batch_size)


def _jsonl_batches(fh: IO[bytes], source: str, batch_size: int) -> Iterator[Batch]:
    line_no = 0
    carry = b""
    pending: list[tuple[np.ndarray, pa.Array, list, int, int]] = []
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
        if line_no == 0 and bytes(data[:3]) == b"\xef\xbb\xbf":
            data[:3] = b"   "
        positions, lines, bad, blank, count = _split_lines(data, line_no)
        line_no += count
        pending.append((positions, lines, bad, blank, got))
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
    return Batch(source, positions, lines, bad, bytes_read=sum(p[4] for p in parts), blank=sum(p[3] for p in parts))


def _split_lines(data: bytes | memoryview, first_line: int) -> tuple[np.ndarray, pa.Array, list, int, int]:
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
    bad: list[tuple[int, str, str]] = []
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
                bad.append((int(numbers[i]), f"not UTF-8 text (byte {err.start})", chunk[:200].decode("utf-8", "replace")))
    if not keep.all():
        lines = lines.filter(pa.array(keep))
        numbers = numbers[keep]
    return numbers, lines, bad, blank, count


def _flush_texts(source: str, positions: list[int], texts: list[str], bad: list) -> Batch:
    return Batch(source, pa.array(positions, pa.int64()), pa.array(texts, pa.string()), bad)


def _array_batches(fh: IO[bytes], source: str, batch_size: int) -> Iterator[Batch]:
    positions: list[int] = []
    texts: list[str] = []
    bad: list[tuple[int, str, str]] = []
    element = 0
    try:
        for element, item in enumerate(ijson.items(fh, "item", use_float=True), start=1):
            positions.append(element)
            texts.append(orjson.dumps(item).decode())
            if len(texts) >= batch_size:
                yield _flush_texts(source, positions, texts, bad)
                positions, texts, bad = [], [], []
    except ijson.JSONError as err:
        bad.append((element + 1, f"JSON array breaks off after element {element}: {err}", ""))
    yield _flush_texts(source, positions, texts, bad)


def _object_batches(fh: IO[bytes], source: str, batch_size: int) -> Iterator[Batch]:
    positions: list[int] = []
    texts: list[str] = []
    bad: list[tuple[int, str, str]] = []
    element = 0
    try:
        for element, item in enumerate(ijson.items(fh, "", multiple_values=True, use_float=True), start=1):
            positions.append(element)
            texts.append(orjson.dumps(item).decode())
            if len(texts) >= batch_size:
                yield _flush_texts(source, positions, texts, bad)
                positions, texts, bad = [], [], []
    except ijson.JSONError as err:
        bad.append((element + 1, f"JSON breaks off after object {element}: {err}", ""))
    yield _flush_texts(source, positions, texts, bad)


class _YamlLoader(yaml.CSafeLoader if hasattr(yaml, "CSafeLoader") else yaml.SafeLoader):  # type: ignore[misc]
    """Safe loader that keeps timestamps as text (YAML's own timestamp type would drop nanoseconds)."""


_YamlLoader.yaml_implicit_resolvers = {
    k: [r for r in v if r[0] != "tag:yaml.org,2002:timestamp"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _yaml_batches(fh: IO[bytes], source: str, batch_size: int) -> Iterator[Batch]:
    """gcloud's default output: documents separated by `---`; each document parsed on its own
    so one broken document is one reject and the rest still load."""
    positions: list[int] = []
    texts: list[str] = []
    bad: list[tuple[int, str, str]] = []
    doc: list[str] = []
    doc_line = 1

    def finish() -> None:
        body = "".join(doc)
        if not body.strip():
            return
        try:
            value = yaml.load(body, Loader=_YamlLoader)  # noqa: S506 - a SafeLoader subclass
            texts.append(orjson.dumps(value, default=str).decode())
            positions.append(doc_line)
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f" (line {doc_line + mark.line})" if mark is not None else ""
            bad.append((doc_line, f"not valid YAML{where}: {getattr(err, 'problem', err)}", body[:200]))
        except (TypeError, ValueError) as err:
            bad.append((doc_line, f"YAML value cannot be represented as JSON: {err}", body[:200]))

    text = io.TextIOWrapper(fh, encoding="utf-8", errors="replace", newline="")
    for number, line in enumerate(text, start=1):
        if line.startswith("---"):
            finish()
            doc, doc_line = [], number + 1
            continue
        if not doc:
            doc_line = number
        doc.append(line)
        if len(texts) >= batch_size:
            yield _flush_texts(source, positions, texts, bad)
            positions, texts, bad = [], [], []
    finish()
    yield _flush_texts(source, positions, texts, bad)
