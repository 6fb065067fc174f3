"""Classification: which catalog patterns each stored entry matches, fast and cached.

How an entry column is matched against many patterns (see docs/catalog.md for the long form):

1. **Bulk scan.** Every pattern is translated (from the ``re`` parse tree) into a byte-level
   Hyperscan expression that matches a *superset* of what the pattern matches, followed by
   ``[^\\xff]*\\xff``. The column's values are joined with a ``0xFF`` separator (a byte that never
   occurs in UTF-8) and scanned once by all patterns together; each (pattern, row) pair is
   reported once, at the row's separator. This is linear-time whatever the pattern is.
2. **Conditions.** `when` conditions are evaluated vectorised on the candidate rows only.
3. **Verification.** A candidate is accepted as is when the translation is exact (for
   patterns built of literals, classes, ``.``, repeats, alternation and ``^``/``$``/``\\b`` at
   the ends it is, on ASCII text always and elsewhere when no Unicode class is involved).
   Otherwise, and whenever fields must be extracted, the `regex` module decides, which keeps
   look-around, backreferences, possessive quantifiers and fuzzy matching working -- except for
   literal-delimited patterns on many candidates, which `logaudit.catalog.delimited` decides in bulk
   with NumPy (same answers, property-tested). Repeated values are decided once. Texts
   longer than `LONG_TEXT` go to RE2 (linear time, via pyarrow) when they are ASCII and the
   pattern has an RE2 form, else to `regex` with a timeout.
4. **Bounds.** Texts are cut to `max_chars` before matching. A pattern not proven linear
   (`logaudit.catalog.backtracking`, or marked `allow_backtracking`) runs under `REGEX_TIMEOUT` on every
   text, and each pattern's time-limited searches have a budget per evaluation
   (`PATTERN_BUDGET` + `TEXT_BUDGET` per text); texts that come while it is over budget are
   skipped. Cut texts, timeouts and skipped texts are counted and reported.

Results are cached per entry file and per pattern fingerprint under ``STORE/matches/``, so a
new ingest classifies only its new files and editing one pattern re-evaluates only that one
(`classify_store`). `register_views` exposes ``entries``, ``matches``, ``patterns`` and
``unclassified`` as DuckDB views.
"""

from __future__ import annotations

import contextlib
import gc
import re
import time
from array import array
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

try:  # Hyperscan is the bulk scanner; without it every row is a candidate (slow but correct).
    import hyperscan as _hs
except ImportError:  # pragma: no cover - exercised by forcing use_hyperscan=False in tests
    _hs = None

from logaudit.catalog.catalog import Catalog, Condition, Pattern
from logaudit.catalog.delimited import DelimitedPlan, delimited_plan, search_delimited
from logaudit.catalog.translate import ASCII_EXACT, EXACT, Plan, plan_pattern, re2_compiles, single_database

#: Bump when matching semantics change: it is part of every cache key.
ENGINE_VERSION = "2"
#: Texts are cut to this many characters before matching (Cloud Logging's limit is 256 KB).
DEFAULT_MAX_CHARS = 64 * 1024
#: Texts longer than this are verified by RE2 (ASCII) or by `regex` under a timeout.
LONG_TEXT = 1024
#: Seconds one time-limited `regex` search may take. Time-limited are the searches of a pattern
#: that is not proven linear (`logaudit.catalog.backtracking`; `allow_backtracking`) on every text, and
#: of any pattern on texts longer than `LONG_TEXT` that RE2 does not decide.
REGEX_TIMEOUT = 0.1
#: After this many timeouts of one pattern in one evaluation, its remaining time-limited texts are skipped.
MAX_TIMEOUTS = 20
#: The time-limited searches of one pattern in one evaluation (one entry file, one `match_table`)
#: may take `PATTERN_BUDGET` seconds in all plus `TEXT_BUDGET` per text they were given (a timeout
#: counts as `REGEX_TIMEOUT`); a text that comes while the pattern is over that is skipped.
PATTERN_BUDGET = 0.5
TEXT_BUDGET = 0.001
KEY_COLUMNS: tuple[str, ...] = ("log_name", "insert_id", "timestamp", "service", "revision")


_SEP = b"\xff"

Progress = Callable[[str, int, int], None]  # (entry file, files done, files total)


# =============================================================================== compiled catalogs
@dataclass
class _FieldScanner:
    field: str
    members: list[int]  # pattern indices using this field
    db: Any  # hyperscan Database or None
    hs_ids: list[int]  # pattern index per hyperscan id
    unfiltered: list[int]  # pattern indices with no prefilter


class CompiledCatalog:
    """Patterns ready to scan: per field one Hyperscan database, per pattern a `Plan`."""

    def __init__(self, patterns: Sequence[Pattern], *, max_chars: int = DEFAULT_MAX_CHARS,
                 use_hyperscan: bool = True) -> None:
        self.patterns = list(patterns)
        self.max_chars = max_chars
        self.use_hyperscan = use_hyperscan and _hs is not None
        self.plans = [plan_pattern(p, verify=False) for p in self.patterns]
        self.delimited = [delimited_plan(p) for p in self.patterns]
        self.scanners: dict[str, _FieldScanner] = {}
        by_field: dict[str, list[int]] = {}
        for i, p in enumerate(self.patterns):
            by_field.setdefault(p.field, []).append(i)
        for fld, members in by_field.items():
            db, with_hs = self._database(members)
            if db is None and with_hs:
                # some expression Hyperscan refuses: take the verified (maybe looser) plans
                for i in members:
                    self.plans[i] = plan_pattern(self.patterns[i], verify=True)
                db, with_hs = self._database(members)
                if db is None:
                    with_hs = []
            unfiltered = [i for i in members if i not in set(with_hs)]
            for i in unfiltered:  # no scan: nothing is decided without `regex`
                self.plans[i] = replace(self.plans[i], hs=None)
            self.scanners[fld] = _FieldScanner(fld, members, db, with_hs, unfiltered)

    def _database(self, members: list[int]) -> tuple[Any, list[int]]:
        """One Hyperscan database for these patterns: (database or None on failure, pattern indices)."""
        with_hs = [i for i in members if self.use_hyperscan and self.plans[i].hs is not None]
        if not with_hs:
            return None, []
        db = _hs.Database(mode=_hs.HS_MODE_BLOCK)
        try:
            db.compile(expressions=[self.plans[i].hs for i in with_hs], ids=list(range(len(with_hs))), flags=0)
        except _hs.error:
            return None, with_hs
        return db, with_hs

    @property
    def columns(self) -> list[str]:
        """Entry columns the patterns read (fields and `when` columns)."""
        cols = []
        for p in self.patterns:
            for c in [p.field] + [w.column for w in p.when]:
                if c not in cols:
                    cols.append(c)
        return cols


_COMPILED: OrderedDict[tuple, CompiledCatalog] = OrderedDict()


def compile_patterns(patterns: Sequence[Pattern], *, max_chars: int = DEFAULT_MAX_CHARS,
                     use_hyperscan: bool = True) -> CompiledCatalog:
    """`CompiledCatalog`, memoized on the patterns' fingerprints (compiling takes milliseconds)."""
    key = (tuple(p.fingerprint for p in patterns), max_chars, use_hyperscan)
    hit = _COMPILED.get(key)
    if hit is not None:
        _COMPILED.move_to_end(key)
        # same definitions, maybe other ids/categories: rebind the pattern objects
        if [id(p) for p in hit.patterns] != [id(p) for p in patterns]:
            hit = _rebind(hit, patterns)
        return hit
    compiled = CompiledCatalog(patterns, max_chars=max_chars, use_hyperscan=use_hyperscan)
    _COMPILED[key] = compiled
    while len(_COMPILED) > 16:
        _COMPILED.popitem(last=False)
    return compiled


def _rebind(compiled: CompiledCatalog, patterns: Sequence[Pattern]) -> CompiledCatalog:
    clone = object.__new__(CompiledCatalog)
    clone.__dict__.update(compiled.__dict__)
    clone.patterns = list(patterns)
    return clone


# =============================================================================== matching
@dataclass
class MatchResult:
    """Matches of a table: parallel arrays, sorted by (row, pattern)."""

    rows: np.ndarray  # int64 row numbers in the table
    patterns: np.ndarray  # int32 index into CompiledCatalog.patterns
    fields_json: pa.Array  # string: JSON object of the named groups, null for patterns without
    cut: dict[str, int] = field(default_factory=dict)  # field -> texts cut to max_chars
    timeouts: Counter = field(default_factory=Counter)  # pattern index -> regex timeouts
    skipped: Counter = field(default_factory=Counter)  # pattern index -> time-limited texts not evaluated
    limited: Counter = field(default_factory=Counter)  # pattern index -> texts given to time-limited search
    seconds: Counter = field(default_factory=Counter)  # pattern index -> seconds charged to its budget
    candidates: int = 0
    verified: int = 0

    def __len__(self) -> int:
        return len(self.rows)


def as_array(col: pa.ChunkedArray | pa.Array) -> pa.Array:
    if isinstance(col, pa.ChunkedArray):
        if col.num_chunks == 0:
            return pa.array([], col.type)
        col = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    return col


def _plain(arr: pa.Array) -> pa.Array:
    return arr.dictionary_decode() if pa.types.is_dictionary(arr.type) else arr


def decoded(table: pa.Table) -> pa.Table:
    """The table with dictionary columns cast to their value type."""
    fields = [pa.field(f.name, f.type.value_type if pa.types.is_dictionary(f.type) else f.type)
              for f in table.schema]
    return table.cast(pa.schema(fields))


def _text_column(table: pa.Table, name: str, max_chars: int) -> tuple[pa.Array, int]:
    """The column as strings cut to `max_chars`, and how many rows were cut.

    A dictionary column stays encoded (its dictionary is cut): `_segments` scans the dictionary.
    """
    arr = as_array(table.column(name))
    if pa.types.is_dictionary(arr.type) and pa.types.is_string(arr.type.value_type):
        values, cut = _text_column(pa.table({name: arr.dictionary}), name, max_chars)
        if cut:
            long = np.asarray(pc.fill_null(pc.greater(pc.utf8_length(arr.dictionary), max_chars), False)
                              .to_numpy(zero_copy_only=False), dtype=bool)
            codes = _codes(arr)
            cut = int(long[codes[codes >= 0]].sum())
        return pa.DictionaryArray.from_arrays(arr.indices, values), cut
    arr = _plain(arr)
    if arr.type != pa.string():
        arr = arr.cast(pa.string())
    if len(arr) == 0 or arr.null_count == len(arr):
        return arr, 0
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int32, count=len(arr) + 1, offset=arr.offset * 4)
    if int(np.diff(offsets).max()) <= max_chars:  # bytes >= chars: nothing is longer (else checked exactly)
        return arr, 0
    long = pc.greater(pc.utf8_length(arr), max_chars)
    cut = pc.sum(long).as_py() or 0
    if cut:
        arr = pc.if_else(long, pc.utf8_slice_codeunits(arr, 0, max_chars), arr)
    return arr, int(cut)


#: Values are scanned in slices of at most this many bytes (32-bit offsets, bounded memory).
SCAN_SLICE_BYTES = 1 << 30


def _scan(scanner: _FieldScanner, arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Hyperscan over all values at once: (pattern index, row) per candidate."""
    if scanner.db is None or arr.null_count == len(arr):
        return np.empty(0, np.int32), np.empty(0, np.int64)
    lengths = pc.binary_length(arr)
    if (pc.sum(lengths).as_py() or 0) + len(arr) <= SCAN_SLICE_BYTES:
        return _scan_slice(scanner, arr)
    cum = np.cumsum(np.asarray(pc.fill_null(lengths, 0).to_numpy(zero_copy_only=False), dtype=np.int64) + 1)
    out_p, out_r = [], []
    start = 0
    while start < len(arr):
        base = cum[start - 1] if start else 0
        stop = max(start + 1, int(np.searchsorted(cum, base + SCAN_SLICE_BYTES, side="right")))
        p, r = _scan_slice(scanner, arr.slice(start, stop - start))
        out_p.append(p)
        out_r.append(r + start)
        start = stop
    return np.concatenate(out_p), np.concatenate(out_r)


def _scan_slice(scanner: _FieldScanner, arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    if arr.null_count * 2 > len(arr):  # mostly nulls (the short values `_segments` took): join the rest only
        kept = np.flatnonzero(np.asarray(arr.is_valid().to_numpy(zero_copy_only=False), dtype=bool))
        pats, rows = _scan_slice(scanner, arr.take(pa.array(kept)))
        return pats, kept[rows]
    joined = pc.binary_join_element_wise(arr.view(pa.binary()), pa.scalar(b""), pa.scalar(_SEP))
    bufs = joined.buffers()
    offsets = np.frombuffer(bufs[1], dtype=np.int32, count=len(joined) + 1, offset=joined.offset * 4)
    data = bufs[2]
    if data is None or offsets[-1] == 0:
        return np.empty(0, np.int32), np.empty(0, np.int64)
    ids = array("i")
    ends = array("q")
    id_append, end_append = ids.append, ends.append

    def on_match(hs_id: int, _from: int, to: int, _flags: int, _ctx: Any) -> None:
        id_append(hs_id)
        end_append(to)

    view = memoryview(data)[offsets[0]:offsets[-1]]
    scanner.db.scan(view, match_event_handler=on_match)
    if not ids:
        return np.empty(0, np.int32), np.empty(0, np.int64)
    hs_ids = np.frombuffer(ids, dtype=np.int32)
    rows = np.searchsorted(offsets, np.frombuffer(ends, dtype=np.int64) + offsets[0], side="left") - 1
    return np.asarray(scanner.hs_ids, dtype=np.int32)[hs_ids], rows.astype(np.int64)


class _When:
    """`when` conditions of one table: numeric columns are copied to NumPy once and compared there
    (no `take` per condition); other columns go through `_condition_mask`."""

    def __init__(self, table: pa.Table) -> None:
        self.table = table
        self.rows = table.num_rows
        self.numbers: dict[str, np.ndarray | None] = {}
        self.codes: dict[str, tuple[np.ndarray, list[str | None]]] = {}  # dictionary column -> (codes, values)
        self._globbed: dict[Condition, np.ndarray] = {}  # per dictionary value (and a last False for null)
        self._everywhere: dict[tuple[Condition, ...], np.ndarray] = {}

    def everywhere(self, pattern: Pattern) -> np.ndarray:
        """Mask over all rows: where every `when` condition of the pattern holds (memoized)."""
        hit = self._everywhere.get(pattern.when)
        if hit is None:
            hit = np.ones(self.rows, dtype=bool)
            for cond in pattern.when:
                hit &= self.mask(cond, None)
            self._everywhere[pattern.when] = hit
        return hit

    def mask(self, cond: Condition, rows: np.ndarray | None) -> np.ndarray:
        """Where `cond` holds on these rows (None: on all rows)."""
        if cond.column not in self.table.column_names:  # e.g. an entry file written before the column existed
            return np.zeros(self.rows if rows is None else len(rows), dtype=bool)
        col = self.table.column(cond.column)
        if pa.types.is_dictionary(col.type) and cond.op == "glob":  # decided once per distinct value
            if cond.column not in self.codes:
                arr = as_array(col)
                self.codes[cond.column] = (_codes(arr), arr.dictionary.to_pylist())
            codes, values = self.codes[cond.column]
            ok = self._globbed.get(cond)
            if ok is None:
                ok = self._globbed[cond] = np.array([v is not None and cond.matches_value(v) for v in values] + [False])
            return ok[codes if rows is None else codes[rows]]  # a null's code, -1, takes the extra False
        if cond.column not in self.numbers:
            numeric = pa.types.is_integer(col.type) or pa.types.is_floating(col.type)
            self.numbers[cond.column] = np.asarray(  # null -> NaN, which no comparison holds for
                pc.fill_null(as_array(col).cast(pa.float64()), np.nan).to_numpy(), dtype=np.float64) if numeric else None
        vals = self.numbers[cond.column]
        if vals is None or cond.op == "glob":
            return _condition_mask(self.table, cond, np.arange(self.rows) if rows is None else rows)
        v = vals if rows is None else vals[rows]
        if cond.op == ">=":
            return v >= cond.value[0]
        if cond.op == "<=":
            return v <= cond.value[0]
        if cond.op == "eq":
            return v == cond.value[0]
        mask = None
        for lo, hi, lo_incl, hi_incl in cond.value:  # "ranges"; a comparison with NaN (null) never holds
            part = ~np.isnan(v) if lo is None and hi is None else None
            if lo is not None:
                part = (v >= lo) if lo_incl else (v > lo)
            if hi is not None:
                upper = (v <= hi) if hi_incl else (v < hi)
                part = upper if part is None else part & upper
            mask = part if mask is None else mask | part
        return mask if mask is not None else np.zeros(len(v), dtype=bool)


def _condition_mask(table: pa.Table, cond: Condition, rows: np.ndarray) -> np.ndarray:
    if cond.column not in table.column_names:  # e.g. an entry file written before the column existed
        return np.zeros(len(rows), dtype=bool)
    col = _plain(as_array(table.column(cond.column)).take(pa.array(rows)))
    if cond.op in (">=", "<="):
        fn = pc.greater_equal if cond.op == ">=" else pc.less_equal
        mask = fn(col, cond.value[0])
    elif cond.op == "eq":
        mask = pc.equal(col, cond.value[0])
    elif cond.op == "glob":
        uniq = [v for v in pc.unique(col).to_pylist() if v is not None]
        ok = [v for v in uniq if cond.matches_value(v)]
        mask = pc.is_in(col, value_set=pa.array(ok, col.type))
    elif cond.op == "ranges":
        mask = None
        for lo, hi, lo_incl, hi_incl in cond.value:
            part = None
            if lo is not None:
                part = (pc.greater_equal if lo_incl else pc.greater)(col, lo)
            if hi is not None:
                upper = (pc.less_equal if hi_incl else pc.less)(col, hi)
                part = upper if part is None else pc.and_(part, upper)
            mask = part if mask is None else pc.or_(mask, part)
    else:  # pragma: no cover - Condition ops are validated at load time
        raise ValueError(cond.op)
    return np.asarray(pc.fill_null(mask, False).to_numpy(zero_copy_only=False), dtype=bool)


def _json_strings(col: pa.Array) -> pa.Array:
    """JSON text of each string (null -> `null`), vectorised."""
    esc = col
    if _needs_escape(col):
        esc = pc.replace_substring(col, "\\", "\\\\")
        for raw, quoted in (('"', '\\"'), ("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t")):
            esc = pc.replace_substring(esc, raw, quoted)
    out = pc.binary_join_element_wise(pa.scalar('"'), esc, pa.scalar('"'), pa.scalar(""))
    rare = pc.fill_null(pc.match_substring_regex(esc, r"[\x00-\x1f]"), False) if esc is not col else None
    if rare is not None and pc.any(rare).as_py():  # other control characters: let orjson spell them
        fixed = [orjson.dumps(v).decode() if r else o
                 for v, r, o in zip(col.to_pylist(), rare.to_pylist(), out.to_pylist(), strict=True)]
        out = pa.array(fixed, pa.string())
    return pc.if_else(pc.is_null(col), pa.scalar("null"), out)


def _needs_escape(col: pa.Array) -> bool:
    """Whether any value holds a quote, a backslash or a control character (a look at the raw bytes)."""
    col = col.cast(pa.string()) if col.type != pa.string() else col
    bufs = col.buffers()
    if bufs[2] is None or len(col) == 0:
        return False
    offsets = np.frombuffer(bufs[1], dtype=np.int32, count=len(col) + 1, offset=col.offset * 4)
    data = np.frombuffer(bufs[2], dtype=np.uint8)[offsets[0]:offsets[-1]]
    return bool(((data < 0x20) | (data == 0x22) | (data == 0x5C)).any())


def _fields_json(pattern: Pattern, matches: list[Any]) -> pa.Array:
    """`{"name": value, ...}` of each match's named groups (null when a group did not take part).

    Built column by column with Arrow: one `orjson.dumps` per match costs several times more.
    """
    rx = pattern.compiled
    names = tuple(rx.groupindex)
    if not matches:
        return pa.array([], pa.string())
    if rx.groups == len(names):  # only named groups, in order: `re` matches of the ASCII form agree
        rows = [m.groups() for m in matches]
    elif len(names) == 1:
        rows = [(m.group(names[0]),) for m in matches]
    else:
        rows = [m.group(*names) for m in matches]
    return _json_objects(names, [pa.array(column, pa.string()) for column in zip(*rows, strict=True)])


def _json_objects(names: Sequence[str], columns: Sequence[pa.Array], null_rows_from: Sequence[str] = ()
                  ) -> pa.Array:
    """Per row, the JSON object {name: value of that column} (null values as JSON null).

    A null in a column named in `null_rows_from` makes the row's object null instead (and saves
    a pass per such column when its values need no escaping).
    """
    parts: list[Any] = []
    text = ""
    for k, (name, column) in enumerate(zip(names, columns, strict=True)):
        text += ("{" if k == 0 else ",") + orjson.dumps(name).decode() + ":"
        if name in null_rows_from and not _needs_escape(column):
            parts += [pa.scalar(text + '"'), column]
            text = '"'
        else:
            parts += [pa.scalar(text), _json_strings(column)]
            text = ""
    parts.append(pa.scalar(text + "}"))
    parts.append(pa.scalar(""))  # separator
    return pc.binary_join_element_wise(*parts)


def _matches_expression(expr: bytes, texts: pa.Array) -> np.ndarray:
    """Which texts one Hyperscan expression (ending in the separator) matches; all if it does not compile."""
    db = single_database(expr) if _hs is not None else None
    if db is None:
        return np.ones(len(texts), dtype=bool)
    hit = np.zeros(len(texts), dtype=bool)
    hit[_scan(_FieldScanner("", [0], db, [0], []), texts)[1]] = True
    return hit


_RE_ASCII: dict[str, Any] = {}


def _re_ascii(re2: str | None) -> Any:
    """Python `re` compiled from the ASCII-exact translation (same spelling but `\\z`), or None."""
    if re2 is None:
        return None
    hit = _RE_ASCII.get(re2, _RE_ASCII)
    if hit is _RE_ASCII:
        try:
            hit = re.compile(re2.replace(r"\z", r"\Z"))
        except re.error:  # pragma: no cover - the translation only emits syntax both accept
            hit = None
        _RE_ASCII[re2] = hit
    return hit


@contextlib.contextmanager
def _no_gc() -> Any:
    """Millions of short-lived match objects: the cyclic GC only slows this down."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


#: From this many candidate texts on, a literal-delimited pattern is decided in bulk (`logaudit.catalog.delimited`).
DELIMITED_MIN_TEXTS = 512


def _verify(pattern: Pattern, plan: Plan, texts: pa.Array, res: MatchResult, idx: int,
            want_fields: bool, delimited: DelimitedPlan | None = None, *,
            exact_groups: bool = False) -> tuple[np.ndarray, pa.Array | None]:
    """Exact decision for distinct candidate texts: (matched mask, fields_json per text or None).

    Short texts of a proven-linear pattern go to `regex` (or `re`) as they are; the others to RE2
    when they are ASCII and the pattern has an RE2 form (long texts; every text of a pattern
    without groups that is not proven linear), else to `regex` under its time limit and the
    pattern's budget (`_limited_search`). `exact_groups`: long texts go to `regex` rather than
    RE2, which cannot tell an empty group from one that did not take part.
    """
    n = len(texts)
    lengths = np.asarray(pc.fill_null(pc.binary_length(texts), 0).to_numpy())
    if lengths.max(initial=0) > LONG_TEXT:  # bytes >= characters: only then count characters
        lengths = np.asarray(pc.fill_null(pc.utf8_length(texts), 0).to_numpy())
    slow = lengths > LONG_TEXT
    if delimited is not None and (n >= DELIMITED_MIN_TEXTS or slow.any()):  # long texts: linear time, exact
        return _verify_delimited(pattern, plan, texts, res, idx, want_fields, delimited)
    matched = np.zeros(n, dtype=bool)
    search = pattern.compiled.search
    if plan.timeout_always:
        slow[:] = True
    fast = np.flatnonzero(~slow)
    found_at: list[int] = []
    found: list[Any] = []
    with _no_gc():
        if len(fast):
            lanes = [(fast, search)]
            quick = _re_ascii(plan.re2)
            if quick is not None:  # ASCII texts: the `re` form of the ASCII-exact translation is quicker
                is_ascii = np.asarray(pc.fill_null(pc.string_is_ascii(texts), False)
                                      .to_numpy(zero_copy_only=False), dtype=bool)[fast]
                lanes = [(fast[is_ascii], quick.search), (fast[~is_ascii], search)]
            for rows, find in lanes:
                if not len(rows):
                    continue
                for j, m in zip(rows.tolist(), map(find, texts.take(pa.array(rows)).to_pylist()), strict=True):
                    if m is not None:
                        found_at.append(j)
                        found.append(m)
        long_ascii: list[int] = []
        any_length = plan.timeout_always and not pattern.group_names  # RE2 is exact on it
        re2 = bool(slow.any()) and plan.re2 is not None and not exact_groups and re2_compiles(plan.re2)
        for j in np.flatnonzero(slow).tolist():
            text = texts[j].as_py()
            if re2 and (any_length or lengths[j] > LONG_TEXT) and text.isascii():
                long_ascii.append(j)
                continue
            m = _limited_search(search, text, res, idx)
            if m is not None:
                found_at.append(j)
                found.append(m)
        matched[found_at] = True
        values = _fields_json(pattern, found) if want_fields else None
    res.verified += n
    if long_ascii:
        extra = _verify_re2(plan.re2, texts.take(pa.array(long_ascii)), long_ascii, pattern.group_names)
        found_at += [j for j, _ in extra]
        matched[[j for j, _ in extra]] = True
        if want_fields:
            values = pa.concat_arrays([values, pa.array([fj for _, fj in extra], pa.string())])
    if not want_fields:
        return matched, None
    slot = np.full(n, -1, dtype=np.int64)  # text -> position in `values`, -1: no match
    slot[found_at] = np.arange(len(found_at))
    return matched, values.take(pa.array(slot, mask=slot < 0))


def _limited_search(search: Callable[..., Any], text: str, res: MatchResult, idx: int) -> Any:
    """`search(text)` under `REGEX_TIMEOUT`, charged to the pattern's budget for this evaluation;
    None (and counted) when it times out, or when the pattern has used up its budget (skipped)."""
    res.limited[idx] += 1
    if res.timeouts[idx] >= MAX_TIMEOUTS or res.seconds[idx] >= PATTERN_BUDGET + TEXT_BUDGET * res.limited[idx]:
        res.skipped[idx] += 1
        return None
    t0 = time.perf_counter()
    try:
        found = search(text, timeout=REGEX_TIMEOUT)
    except TimeoutError:
        res.timeouts[idx] += 1
        res.seconds[idx] += REGEX_TIMEOUT  # the nominal limit, not the clock: the same texts are skipped each run
        return None
    res.seconds[idx] += time.perf_counter() - t0
    return found


def _verify_delimited(pattern: Pattern, plan: Plan, texts: pa.Array, res: MatchResult, idx: int,
                      want_fields: bool, delimited: DelimitedPlan) -> tuple[np.ndarray, pa.Array | None]:
    """`_verify` in bulk (NumPy on the UTF-8 bytes); the texts it cannot decide go to `regex`."""
    got = search_delimited(delimited, texts)
    matched = got.matched.copy()
    rest = np.flatnonzero(got.undecided)
    if len(rest) and plan.recheck is not None:  # only texts the whole pattern's expression takes
        rest = rest[_matches_expression(plan.recheck, texts.take(pa.array(rest)))]
    fields = None
    if want_fields:
        names = tuple(pattern.compiled.groupindex)
        # a group outside the optional tail is null exactly where the text did not match
        fields = _json_objects(names, [got.groups[name] for name in names], null_rows_from=delimited.required)
        if fields.null_count != len(texts) - int(got.matched.sum()):
            fields = pc.if_else(pa.array(got.matched), fields, pa.scalar(None, pa.string()))
    res.verified += len(texts) - len(rest)
    if len(rest):
        more, more_fields = _verify(pattern, plan, texts.take(pa.array(rest)), res, idx, want_fields,
                                    exact_groups=True)
        matched[rest] = more
        if want_fields:
            slot = np.arange(len(texts))  # texts decided here keep their value, the others take regex's
            slot[rest] = len(texts) + np.arange(len(rest))
            fields = pa.concat_arrays([fields, more_fields]).take(pa.array(slot))
    return matched, fields


def _verify_re2(pattern: str, texts: pa.Array, positions: list[int],
                names: tuple[str, ...]) -> list[tuple[int, str | None]]:
    """Linear-time RE2 (pyarrow) for long ASCII texts; empty groups count as not taking part."""
    if not names:
        hits = pc.match_substring_regex(texts, pattern).to_pylist()
        return [(p, None) for p, h in zip(positions, hits, strict=True) if h]
    got = pc.extract_regex(texts, pattern)
    out = []
    for p, v in zip(positions, got.to_pylist(), strict=True):
        if v is not None:
            out.append((p, orjson.dumps({k: (v.get(k) or None) for k in names}).decode()))
    return out


#: Columns whose values repeat this much (distinct/non-null in a sample) are matched per distinct value.
DEDUP_RATIO = 0.1
_DEDUP_SAMPLE = 20_000
#: In other columns, values of at most this many bytes are matched once per distinct value when
#: they repeat (the same short line logged over and over: "Agent request completed").
SHORT_TEXT_BYTES = 64
_SHORT_MIN_ROWS = 10_000


class _Rows:
    """Which rows hold each value of a segment: `codes[i]` is the value of row `rows[i]` (all rows if None)."""

    def __init__(self, codes: np.ndarray, rows: np.ndarray | None = None) -> None:
        self.codes, self.rows = codes, rows
        self._counts: np.ndarray | None = None

    def count(self, vids: np.ndarray, nvalues: int) -> int:
        """How many rows hold any of the value ids `vids`."""
        if self._counts is None:
            self._counts = np.bincount(self.codes + 1, minlength=nvalues + 1)[1:]  # code -1: null
        return int(self._counts[vids].sum())

    def expand(self, vids: np.ndarray, nvalues: int, where: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        """(rows holding any of the value ids `vids`, ascending; each one's position in `vids`).

        `where`: a mask over the table's rows; only rows where it holds are returned.
        """
        wanted = np.zeros(nvalues + 1, dtype=bool)
        wanted[vids] = True
        sel = wanted[self.codes]  # a code of -1 (null) hits the extra False
        if where is not None:
            sel &= where if self.rows is None else where[self.rows]
        hit = np.flatnonzero(sel)
        slot = np.empty(nvalues + 1, dtype=np.int64)
        slot[vids] = np.arange(len(vids))
        return (hit if self.rows is None else self.rows[hit]), slot[self.codes[hit]]


def _codes(arr: pa.DictionaryArray) -> np.ndarray:
    """A dictionary array's indices as int64, -1 for null."""
    return np.asarray(pc.fill_null(arr.indices.cast(pa.int64()), -1).to_numpy(zero_copy_only=False), dtype=np.int64)


def _segments(arr: pa.Array) -> list[tuple[pa.Array, _Rows | None]]:
    """The values to scan, in segments: (values, their rows, or None when value i is row i).

    Low-cardinality columns are one segment of distinct values. Elsewhere short values that
    repeat are one segment of distinct values and the rest (null where short) another.
    """
    if pa.types.is_dictionary(arr.type):  # already encoded (read so from Parquet): scan the dictionary
        return [(arr.dictionary, _Rows(_codes(arr)))]
    valid = len(arr) - arr.null_count
    if valid < 1000:
        return [(arr, None)]
    sample = arr.slice(0, _DEDUP_SAMPLE)
    sample_valid = len(sample) - sample.null_count
    if sample_valid and pc.count_distinct(sample).as_py() <= DEDUP_RATIO * sample_valid:
        enc = pc.dictionary_encode(arr)
        return [(enc.dictionary, _Rows(_codes(enc)))]
    if arr.type != pa.string():
        return [(arr, None)]
    if arr.offset:  # below, the buffers are used as they are
        arr = pa.concat_arrays([arr])
    valid_mask = np.asarray(arr.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int32, count=len(arr) + 1, offset=arr.offset * 4)
    short = valid_mask & (np.diff(offsets) <= SHORT_TEXT_BYTES)
    rows = np.flatnonzero(short)
    if len(rows) < _SHORT_MIN_ROWS:
        return [(arr, None)]
    enc = pc.dictionary_encode(arr.take(pa.array(rows)))
    if len(enc.dictionary) * 2 > len(rows):  # short but mostly distinct: not worth it
        return [(arr, None)]
    codes = np.asarray(enc.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
    # the other values, as they are: the same strings, with the short ones marked null (no copy)
    validity = pa.array(valid_mask & ~short).buffers()[1]
    rest = pa.Array.from_buffers(pa.string(), len(arr), [validity, arr.buffers()[1], arr.buffers()[2]])
    return [(enc.dictionary, _Rows(codes, rows)), (rest, None)]


def _apply_when(when: _When, pattern: Pattern, rows: np.ndarray) -> np.ndarray:
    for cond in pattern.when:
        if not len(rows):
            break
        rows = rows[when.mask(cond, rows)]
    return rows


class _AsciiMask:
    """Which values are pure ASCII: for a few ids computed on those, else once for all values."""

    def __init__(self, values: pa.Array) -> None:
        self.values = values
        self.mask: np.ndarray | None = None

    def __getitem__(self, ids: np.ndarray) -> np.ndarray:
        if self.mask is None and len(ids) * 16 < len(self.values):
            return np.asarray(pc.fill_null(pc.string_is_ascii(self.values.take(pa.array(ids))), False)
                              .to_numpy(zero_copy_only=False), dtype=bool)
        if self.mask is None:
            self.mask = np.asarray(pc.fill_null(pc.string_is_ascii(self.values), False)
                                   .to_numpy(zero_copy_only=False), dtype=bool)
        return self.mask[ids]


def _decide(pattern: Pattern, plan: Plan, values: pa.Array, ids: np.ndarray, res: MatchResult,
            idx: int, ascii_mask: _AsciiMask, delimited: DelimitedPlan | None = None
            ) -> tuple[np.ndarray, pa.Array | None]:
    """Which candidate value ids really match: (matched ids, their fields_json, or None)."""
    want_fields = bool(pattern.group_names)
    if not want_fields and plan.hs is not None and plan.exactness == EXACT:
        return ids, None
    accept = np.zeros(len(ids), dtype=bool)
    if not want_fields and plan.hs is not None and plan.exactness == ASCII_EXACT:
        accept = ascii_mask[ids]
    todo = np.flatnonzero(~accept)
    fjson = pa.array([], pa.string()) if want_fields else None
    if len(todo):
        texts = values.take(pa.array(ids[todo]))
        if len(texts) > 64 and pc.count_distinct(texts.slice(0, 512)).as_py() < 0.8 * min(512, len(texts)):
            enc = pc.dictionary_encode(texts)  # identical texts: decided once
            texts = enc.dictionary
            codes = np.asarray(enc.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
        else:
            codes = np.arange(len(texts), dtype=np.int64)
        ok, fields = _verify(pattern, plan, texts, res, idx, want_fields, delimited)
        hit = ok[codes]
        accept[todo[hit]] = True
        if fields is not None:  # then nothing was accepted before verification: keep == todo[hit]
            fjson = fields if len(fields) == len(codes) and hit.all() else fields.take(pa.array(codes[hit]))
    keep = np.flatnonzero(accept)
    return ids[keep], fjson


def _match_segment(when: _When, compiled: CompiledCatalog, scanner: _FieldScanner, values: pa.Array,
                   holders: _Rows | None, res: MatchResult, apply_when: bool
                   ) -> Iterable[tuple[int, np.ndarray, pa.Array | None]]:
    """(pattern index, matched rows, their fields_json or None) for one segment of a field's values."""
    ascii_mask = _AsciiMask(values)
    cand_p, cand_v = _scan(scanner, values)
    groups: dict[int, np.ndarray] = {}
    if len(cand_p):
        small = np.uint16 if len(compiled.patterns) <= 1 << 16 else np.int32
        order = np.argsort(cand_p.astype(small), kind="stable")  # 16-bit keys: a radix sort
        sp, sv = cand_p[order], cand_v[order]
        bounds = np.flatnonzero(np.diff(sp)) + 1
        for chunk_p, chunk_v in zip(np.split(sp, bounds), np.split(sv, bounds), strict=True):
            groups[int(chunk_p[0])] = np.sort(chunk_v)
    if scanner.unfiltered:
        valid = np.flatnonzero(np.asarray(values.is_valid().to_numpy(zero_copy_only=False), dtype=bool))
        for idx in scanner.unfiltered:
            groups[idx] = valid.astype(np.int64)
    for idx in sorted(groups):
        ids = groups[idx]
        pattern, plan, delimited = compiled.patterns[idx], compiled.plans[idx], compiled.delimited[idx]
        res.candidates += len(ids)
        if holders is None:
            # one value per row: narrow by `when` first, then decide
            if apply_when and pattern.when:
                ids = _apply_when(when, pattern, ids)
            rows, fjson = _decide(pattern, plan, values, ids, res, idx, ascii_mask, delimited)
        else:
            # decide per distinct value, then expand to rows and apply `when`
            vids, vjson = _decide(pattern, plan, values, ids, res, idx, ascii_mask, delimited)
            if not len(vids):
                continue
            if apply_when and pattern.when and holders.count(vids, len(values)) * 8 > when.rows:
                # most rows would be expanded only to be tested: test all rows at once instead
                rows, pos = holders.expand(vids, len(values), where=when.everywhere(pattern))
            else:
                rows, pos = holders.expand(vids, len(values))
                if apply_when and pattern.when:
                    kept = _apply_when(when, pattern, rows)
                    pos = pos[np.searchsorted(rows, kept)]
                    rows = kept
            fjson = vjson.take(pa.array(pos)) if vjson is not None else None
        if len(rows):
            yield idx, rows, fjson


def match_table(table: pa.Table, compiled: CompiledCatalog, *, apply_when: bool = True) -> MatchResult:
    """Match every row of `table` (entry columns) against the compiled patterns.

    Per field: cut long texts, scan all values with Hyperscan, then per pattern apply `when`
    and verify the candidates that need it. Low-cardinality fields (http_path, log_id, ...),
    and short values that repeat in other fields, are scanned and verified once per distinct value.
    """
    rows_all: list[np.ndarray] = []
    pats_all: list[np.ndarray] = []
    fields_all: list[pa.Array | None] = []
    res = MatchResult(np.empty(0, np.int64), np.empty(0, np.int32), pa.array([], pa.string()))
    # one contiguous array per column used (Parquet hands over one chunk per row group)
    table = pa.table({c: as_array(table.column(c)) for c in compiled.columns if c in table.column_names})
    when = _When(table)
    for fld, scanner in compiled.scanners.items():
        if fld not in table.column_names:
            continue
        arr, cut = _text_column(table, fld, compiled.max_chars)
        res.cut[fld] = cut
        for values, holders in _segments(arr):
            for idx, rows, fjson in _match_segment(when, compiled, scanner, values, holders, res, apply_when):
                rows_all.append(rows.astype(np.int64))
                pats_all.append(np.full(len(rows), idx, dtype=np.int32))
                fields_all.append(fjson)
    if rows_all:
        rows = np.concatenate(rows_all)
        pats = np.concatenate(pats_all)
        flat = pa.concat_arrays([f if f is not None else pa.nulls(len(r), pa.string())
                                 for f, r in zip(fields_all, rows_all, strict=True)])
        order = np.lexsort((pats, rows))
        res.rows, res.patterns = rows[order], pats[order]
        res.fields_json = flat.take(pa.array(order))
    return res


def match_texts(pattern: Pattern, texts: Sequence[str], *, max_chars: int = DEFAULT_MAX_CHARS,
                use_hyperscan: bool = True) -> list[dict[str, str] | None]:
    """Run the engine on plain texts for one pattern (ignoring `when`): fields dict or None each."""
    table = pa.table({pattern.field: pa.array(list(texts), pa.string())})
    compiled = compile_patterns([pattern], max_chars=max_chars, use_hyperscan=use_hyperscan)
    res = match_table(table, compiled, apply_when=False)
    out: list[dict[str, str] | None] = [None] * len(texts)
    for row, fj in zip(res.rows.tolist(), res.fields_json.to_pylist(), strict=True):
        out[row] = orjson.loads(fj) if fj else {}
    return out


MATCH_COLUMNS: tuple[str, ...] = ("entry_row", "pattern_id", "category", "title", "fields_json")


#: Schema metadata key of `classify_table`'s result: JSON list of `ClassifyReport.slow_patterns` entries.
SLOW_PATTERNS_KEY = b"logaudit.slow_patterns"


def classify_table(table: pa.Table, catalog: Catalog | Sequence[Pattern], *,
                   max_chars: int = DEFAULT_MAX_CHARS, use_hyperscan: bool = True) -> pa.Table:
    """Matches of an in-memory entry table: one row per (entry, pattern), plus any key columns present.

    Patterns whose searches timed out or were skipped are listed, as in `ClassifyReport.slow_patterns`,
    in the schema metadata under `SLOW_PATTERNS_KEY` (absent when there are none).
    """
    patterns = list(catalog)
    compiled = compile_patterns(patterns, max_chars=max_chars, use_hyperscan=use_hyperscan)
    res = match_table(table, compiled)
    idx = pa.array(res.rows)
    cols: dict[str, Any] = {}
    for name in KEY_COLUMNS:
        if name in table.column_names:
            cols[name] = table.column(name).take(idx)
    pats = res.patterns.tolist()
    cols["entry_row"] = pa.array(res.rows, pa.int64())
    cols["pattern_id"] = pa.array([patterns[i].id for i in pats], pa.string())
    cols["category"] = pa.array([patterns[i].category for i in pats], pa.string())
    cols["title"] = pa.array([patterns[i].title for i in pats], pa.string())
    cols["fields_json"] = res.fields_json
    out = pa.table(cols)
    slow = [slow_pattern(patterns[i], res.timeouts[i], res.skipped[i]) for i in sorted({*res.timeouts, *res.skipped})]
    return out.replace_schema_metadata({SLOW_PATTERNS_KEY: orjson.dumps(slow)}) if slow else out


def slow_pattern(pattern: Pattern, timeouts: int, skipped: int) -> dict[str, Any]:
    """What to tell about a pattern whose searches timed out or were skipped (`ClassifyReport.slow_patterns`)."""
    counts = f"{timeouts} text(s) timed out and {skipped} were skipped (counted as not matching)"
    if pattern.time_limited:
        found = pattern.analysis
        why = found.risk.message if found.risk else f"it is not proven linear ({found.unanalysed})"
        fix = (f"{why}; rewrite the regex so that `logaudit catalog check` accepts it without "
               f"`allow_backtracking`" + (f" ({found.risk.hint})" if found.risk else ""))
    else:
        fix = (f"they are longer than {LONG_TEXT} characters and RE2 could not decide them; start the regex "
               "with a literal so that fewer start positions are tried")
    return {"pattern_id": pattern.id, "file": pattern.file, "line": pattern.line, "timeouts": timeouts,
            "skipped": skipped, "message": f"{counts}: {fix}"}


__all__ = ["CompiledCatalog", "DEFAULT_MAX_CHARS", "MATCH_COLUMNS", "MatchResult", "REGEX_TIMEOUT", "SLOW_PATTERNS_KEY", "as_array", "classify_table", "compile_patterns", "decoded", "match_table", "match_texts", "slow_pattern"]
