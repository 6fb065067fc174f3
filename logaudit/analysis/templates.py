"""Message templates: messages that say the same thing with other values share one template.

**The grouping** is `group_templates(messages) -> list[str]` (one template per message, also
`logaudit.group_templates`), for the unclassified messages of `summarize`, `compare`, the report
and the notebooks. It is data-driven, after Drain (He et al., ICWS 2017):

1. **Masks** (`mask`, and `mask_sql`: the same in DuckDB) replace what always varies by `<*>`:
   dates and times in common formats (ISO, `Dec 10 06:55:46`, `Sun Dec 04 04:47:44 2005`,
   `10/Oct/2000:13:55:36 -0700`, `9/3/2025`, clock times), UUIDs, emails, IPv4 (with a port),
   IPv6 and MAC addresses, `0x` hex, hex ids of 8+ digits, and numbers: negative (`blk_-42` and
   `blk_42` are both `blk_<*>`), decimal, with a unit (`37ms` is `<*>ms`), after `_ - . /` in a
   name (`core.<*>`, `node-<*>`) but not inside a word (`jk2_init`, `ee0`, `gpt-4o` stay).
   Whitespace runs are one space; a run of variables (`<*> <*>`, `<*>, <*>`, `<*>.<*>`) is one.
   Words, quoted values and identifiers are left to the next steps.
2. **Words**: the masked text is split on whitespace and ``= , ; : ( ) [ ] { } " '`` (kept in
   the template as they are; a URL is one word, an apostrophe inside a word belongs to it). A
   word with `<*>` repeated (`blk_<*> blk_<*> ...`) is kept once: a list of any length.
3. **Drain's tree**: messages with the same number of words, the same separators and the same
   first two words without digits share a leaf; there, in sorted order, each message joins the
   group whose template has the most of its words in place, if that is at least `SIMILARITY`
   (half) of them, else starts a group.
4. **What varies**, in each group, word position by position: a position is a variable (`<*>`,
   keeping the literal prefix and suffix all values share up to a punctuation mark, as in
   `user:<*>:profile`) when a value has a digit or `<*>`, when all values are units (`ms`, `KB`,
   `seconds`) or all are paths or URLs, or when it takes at least `MIN_DISTINCT` (4) plain words
   beside at least two fixed words and none is an identifier (CONSTANT_CASE such as
   `DATABASE_URL`, a dotted name such as `app.monitoring.metrics`, an exception class such as
   `ModuleNotFoundError`). Any other varying position splits the group, a template per value. So
   `connect to redis` / `connect to postgres` stay two templates, `Login failed for user
   alice|bob|carol|dave` is one, `No module named 'netra_backend.app.monitoring'` keeps its
   module (different modules: a template each), and a quoted value is masked only when it varies
   like a value.
5. **Merge**: groups whose templates differ in one position only are one when the values there,
   taken together, are a variable by the same rule and at least half the words stay fixed
   (messages whose first words vary; the same event split over leaves).

`group_templates` is deterministic and independent of order and repetitions: the result depends
only on the set of distinct messages. A template depends on the other messages of the call, so
group everything that is compared (both revisions) in one call. `mask` is idempotent and
`group_templates` gives the same on masked messages as on the messages, so a window's messages
can be reduced in DuckDB first (`SELECT DISTINCT mask_sql(message)`) and the distinct masked
messages grouped in Python (100,000 distinct messages: about 1.6 s of one core; see
benchmarks/bench_templates.py and docs/compare.md for speed and accuracy). Only the first
`MAX_TEMPLATE_CHARS` characters of a message count.

**The first stage** is `template` (and `template_sql`): what the per-file aggregates keep, one
template per distinct message, made in DuckDB; every output then groups those with
`group_templates` (`logaudit.analysis.aggregates.grouping`). Its per-message masks also hide
quoted strings other than names (a quoted module path, config key or word explains and stays:
``No module named 'app.monitoring'``, ``KeyError: 'DATABASE_URL'``; ``'user 42'`` becomes
``'<*>'``), the value of a logfmt ``key=value``, and tokens that mix letters and digits the way
ids do (``8fKq2LmZa``, ``x2kqz``, ``1m30s``, also quoted: ``'user_42'``). The rules are
RE2-compatible and applied in the same passes, with ASCII semantics, by Python (`template`) and
DuckDB (`template_sql`).

>>> template("Cache miss for key user:48213:profile after 37ms")
'Cache miss for key user:<*>:profile after <*>ms'
>>> template("Request req_8fKq2LmZa timed out after 30s (user=alice)")
'Request <*> timed out after <*>s (user=<*>)'
>>> group_templates(["Cache miss for key user:48213:profile after 37ms", "Cache miss for key user:7:profile after 5ms",
...                  "Missing configuration value: DATABASE_URL"])
['Cache miss for key user:<*>:profile after <*>ms', 'Cache miss for key user:<*>:profile after <*>ms', \
'Missing configuration value: DATABASE_URL']
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from operator import eq
from os.path import commonprefix
from typing import overload

_VARIABLE = "|".join([
    r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?: ?(?:Z|[+-]\d{2}:?\d{2}))?",  # timestamps
    r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b",  # UUIDs
    r"\b[\w.+-]+@[\w-]+\.[\w.-]+\b",  # emails
    r"\b[0-9a-fA-F]{1,4}(?::[0-9a-fA-F]{0,4}){2,7}\b",  # IPv6 (3+ groups, `::` allowed)
    r"\b\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}(?::\d+)?\b",  # IPv4[:port]
    r"\b(?:0x)?[0-9a-fA-F]{8,}\b",  # hex ids
])
_TOKENS = "|".join([
    # a token mixing letters and digits like an id; a number followed by letters only (37ms,
    # 5s, 100KB) is a number with a unit: its number goes, its unit stays
    r"\b(?:[A-Za-z_][A-Za-z0-9_]*[0-9]|[0-9][0-9_]*[A-Za-z_][A-Za-z0-9_]*[0-9])[A-Za-z0-9_]*\b",
    r"\b\d+(?:\.\d+)?",  # numbers
])
#: Passes, in order: (pattern, replacement). RE2 syntax; Python compiles them with re.ASCII so that
#: \w, \d and \b mean what they mean in RE2. One alternation does most of the work in one scan.
_QUOTED_NAME = r"([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)"
MASKS: list[tuple[str, str]] = [
    # a quoted name (module path, config key, class, word) explains: it is set aside (between
    # \x1f or \x1e), the other quoted strings are masked, then it is put back; the passes after
    # mask it only when it looks like an id (`'user_42'`, a hex id)
    (f"'{_QUOTED_NAME}'", "\x1f\\1\x1f"),
    (r"'[^']*'", "'<*>'"),
    (f'"{_QUOTED_NAME}"', "\x1e\\1\x1e"),
    (r'"[^"]*"', '"<*>"'),
    (f"\x1f{_QUOTED_NAME}\x1f", "'\\1'"),
    (f"\x1e{_QUOTED_NAME}\x1e", '"\\1"'),
    # logfmt: key=value (the value up to a space, comma, semicolon, ampersand, quote or bracket)
    (r"\b([A-Za-z_][\w.-]*)=[^\s,;&'\"()\[\]{}<>]+", r"\1=<*>"),
    (_VARIABLE, "<*>"),
    (r"([_-])[0-9a-fA-F]{6,}\b", r"\1<*>"),
    (_TOKENS, "<*>"),
]
_COMPILED = [(re.compile(p, re.ASCII), r) for p, r in MASKS]
#: Longest prefix of a message that is templated (very long lines are cut first).
MAX_TEMPLATE_CHARS = 500
#: `group_templates`: fewest distinct plain words that make a word position variable.
MIN_DISTINCT = 4


def template(message: str | None) -> str | None:
    """The message with its variable parts replaced by `<*>`."""
    if message is None:
        return None
    text = message[:MAX_TEMPLATE_CHARS]
    for pattern, replacement in _COMPILED:
        text = pattern.sub(replacement, text)
    return text


def template_sql(column: str) -> str:
    """A DuckDB expression computing `template(column)` in bulk."""
    from logaudit.core.db import sql_text

    expr = f"left({column}, {MAX_TEMPLATE_CHARS})"
    for pattern, replacement in MASKS:
        expr = f"regexp_replace({expr}, {sql_text(pattern)}, {sql_text(replacement)}, 'g')"
    return expr


# ------------------------------------------------------------------------------------ grouping
_EDGE = re.compile(r"\W", re.ASCII)
_MONTH = (r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|Sep(?:t(?:ember)?)?|"
          r"Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)")
_WEEKDAY = r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)[a-z]*,? +"
_CLOCK = r"\d{1,2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?"
_ZONE = r"(?: ?(?:Z|UTC|GMT|[+-]\d{2}:?\d{2})\b)?"
_UNIT = r"(?:ms|us|ns|s|m|h|d|min|sec|[KMGT]i?B|[kKMG]|B|x)?"
_NUMBER = r"(?:[0-9a-fA-F]{8,}|\d+)"  # hex first: `00000000001d` is an id, not 1 day
_NEGATIVE_AFTER = r"[ _=(\[,:]"
_DATES_BY_NAME = "|".join([
    # `Sun Dec 04 04:47:44 2005`, `Dec 10 06:55:46`, `Sep 3, 2025 10:00`, `Sep 3, 2025`, `10/Oct/2000:13:55:36 -0700`
    rf"\b(?:{_WEEKDAY})?{_MONTH} +\d{{1,2}}(?:,? +\d{{4}} +{_CLOCK}|,? +\d{{4}}\b| +{_CLOCK}(?: +\d{{4}}\b)?){_ZONE}",
    rf"\b\d{{1,2}}[/ -]{_MONTH}[/ -]\d{{4}}(?:[: ]{_CLOCK})?(?: [+-]\d{{4}}\b)?",
])
_VALUES = "|".join([
    rf"\b\d{{4}}[-/.]\d{{1,2}}[-/.]\d{{1,2}}(?:[T -]\d{{1,2}}[:.]\d{{2}}[:.]\d{{2}}(?:[.,]\d+)?)?{_ZONE}\b",  # ISO-like
    r"\b\d{1,2}/\d{1,2}/\d{2,4}\b",  # 9/3/2025
    rf"\b{_CLOCK}{_ZONE}\b",  # 10:00:01.5
    r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b",  # UUIDs
    r"\b\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}(?::\d{1,5})?\b",  # IPv4[:port]
    r"\b[0-9a-fA-F]{1,4}(?::[0-9a-fA-F]{0,4}){2,}\b",  # IPv6, MAC addresses
    r"\b0[xX][0-9a-fA-F]+\b",  # 0x hex
])
#: `mask` passes, in order: (pattern, replacement). RE2 syntax without look-around, so that DuckDB
#: (`mask_sql`) gives what Python gives; the number pass runs twice because a match takes the
#: character after it, which may be the one before the next number (`rdd_11_0`). Python does the
#: same with look-around in one pass, and skips a pass when a substring test shows it cannot match.
GROUP_MASKS: list[tuple[str, str]] = [
    (r"[ \t\n\r\f\v]+", " "),  # whitespace runs are one space
    (_DATES_BY_NAME, "<*>"),
    (r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b", "<*>"),  # emails
    (_VALUES, "<*>"),
    # numbers (with a unit such as `37ms` or `5KB`) and hex ids of 8+ digits: not inside a word (`jk2`,
    # `ee0`, `gpt-4o` stay), but after `_`, `-`, `/` or a dot (`blk_<*>`, `node-<*>`, `core.<*>`)
    (rf"(^|[^0-9A-Za-z]){_NUMBER}({_UNIT})([^0-9A-Za-z]|$)", r"\1<*>\2\3"),
    (rf"(^|[^0-9A-Za-z]){_NUMBER}({_UNIT})([^0-9A-Za-z]|$)", r"\1<*>\2\3"),
    (rf"(^|{_NEGATIVE_AFTER})-<\*>", r"\1<*>"),  # a negative number is a number: blk_-<*> is blk_<*>
    # a run of variables is one variable: `<*> <*>`, `<*>, <*>`, and a decimal `<*>.<*>` (`5.2KB` is `<*>KB`)
    (r"<\*>(?:[ ,]*<\*>|\.<\*>)+", "<*>"),
]
_MONTH_HINT = re.compile("Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec")  # every `_MONTH` starts so
_DIGIT = re.compile(r"\d", re.ASCII)
_HEX8 = re.compile(r"[0-9a-fA-F]{8}")
_DATES_BY_NAME_RE = re.compile(_DATES_BY_NAME, re.ASCII)
_EMAIL_RE = re.compile(GROUP_MASKS[2][0], re.ASCII)
_VALUES_RE = re.compile(_VALUES, re.ASCII)
_NUMBER_RE = re.compile(rf"(?<![0-9A-Za-z]){_NUMBER}(?={_UNIT}(?![0-9A-Za-z]))", re.ASCII)
_NEGATIVE_RE = re.compile(rf"(?:(?<={_NEGATIVE_AFTER})|^)-<\*>", re.ASCII)
_SPACES = re.compile(GROUP_MASKS[0][0])
_STARS = re.compile(GROUP_MASKS[-1][0])
#: `group_templates`: at least this share of a message's words equal a group's template for it to join.
SIMILARITY = 0.5
#: `group_templates`: messages share a leaf of the tree when their first this many fixed words are the same.
_ROUTE_WORDS = 2
#: `group_templates`: plain words are a variable (taking `MIN_DISTINCT` values) only beside this many fixed words.
_MIN_FIXED = 2

# words: a URL whole, else a run of characters other than spaces and `=,;:()[]{}"'` (an apostrophe
# inside a word, as in `can't`, belongs to it; other apostrophes are quotes)
_WORD = re.compile(r"""([A-Za-z][A-Za-z0-9+.-]*://[^\s"'()\[\]{},;]+|[^\s=,;:()\[\]{}"']+(?:'[^\s=,;:()\[\]{}"']+)*)""")
_VARIABLE_WORD = re.compile(r"\d|<\*>")
_PATH = re.compile(r"\.{0,2}/|~/|[A-Za-z][A-Za-z0-9+.-]*://")
_UNITS = frozenset(["b", "kb", "mb", "gb", "tb", "kib", "mib", "gib", "tib", "byte", "bytes", "ms", "us", "ns", "s",
                    "sec", "secs", "second", "seconds", "m", "min", "mins", "minute", "minutes", "h", "hr", "hrs",
                    "hour", "hours", "milliseconds", "microseconds", "nanoseconds"])
# identifiers that explain: CONSTANT_CASE (DATABASE_URL, NOT_FOUND), dotted names (app.monitoring.metrics),
# exception classes (ModuleNotFoundError)
_IDENTIFIER = re.compile(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+|[A-Z]{3,}|[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+|"
                         r"[A-Z]\w*(?:Error|Exception|Warning|Exit|Interrupt)", re.ASCII)


def mask(message: str) -> str:
    """The first step of `group_templates`: what always varies becomes `<*>`, whitespace runs one space.

    Masked: dates and times in common formats, UUIDs, emails, IPv4 (with a port) and IPv6
    addresses, hex (`0x..`, or 8+ hex digits), numbers (negative, decimal, with a unit such as
    `37ms`), then a run of `<*>` becomes one. Words, quoted values and identifiers are left to the
    grouping. `mask(mask(m)) == mask(m)`.

    >>> mask("Deleting block blk_-1046472716157313227 at  2025-09-03 10:00:01,123 took 3.5s")
    'Deleting block blk_<*> at <*> took <*>s'
    """
    text = message[:MAX_TEMPLATE_CHARS]
    if "  " in text or not text.isprintable():
        text = _SPACES.sub(" ", text)
    if _MONTH_HINT.search(text):
        text = _DATES_BY_NAME_RE.sub("<*>", text)
    if "@" in text:
        text = _EMAIL_RE.sub("<*>", text)
    digit = _DIGIT.search(text)
    if digit or ":" in text:
        text = _VALUES_RE.sub("<*>", text)
    if digit or _HEX8.search(text):
        text = _NUMBER_RE.sub("<*>", text)
    if "-<*>" in text:
        text = _NEGATIVE_RE.sub("<*>", text)
    if "<*>" in text:
        text = _STARS.sub("<*>", text)
    return text.strip(" ")


def mask_sql(column: str) -> str:
    """A DuckDB expression computing `mask(column)` in bulk (same result, checked by the tests)."""
    from logaudit.core.db import sql_text

    expr = f"left({column}, {MAX_TEMPLATE_CHARS})"
    for pattern, replacement in GROUP_MASKS:
        expr = f"regexp_replace({expr}, {sql_text(pattern)}, {sql_text(replacement)}, 'g')"
    return f"trim({expr}, ' ')"


def _tokens(text: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(words, separators): separators[i] comes before words[i]; the last one ends the text.

    A word containing `<*>` repeated (`blk_<*> blk_<*> blk_<*>`) is kept once: a list of any length.
    """
    parts = _WORD.split(text)
    words, seps = parts[1::2], parts[0::2]
    if len(set(words)) < len(words):
        keep = [i for i, w in enumerate(words)
                if not (i and w == words[i - 1] and "<*>" in w and seps[i].strip(" ,") == "")]
        words, seps = [words[i] for i in keep], [seps[i] for i in keep] + seps[-1:]
    return tuple(words), tuple(seps)


def _is_variable(values: set[str], min_distinct: int, fixed: int) -> bool:
    """Whether a word position taking `values` (2 or more) in one group, where `fixed` other words
    are the same in all messages, is a variable."""
    if any(_VARIABLE_WORD.search(v) for v in values):
        return True
    if all(v.lower() in _UNITS for v in values) or all(_PATH.match(v) for v in values):
        return True
    return len(values) >= min_distinct and fixed >= _MIN_FIXED and not any(_IDENTIFIER.fullmatch(v) for v in values)


@overload
def group_templates(messages: Iterable[str], *, similarity: float = ..., min_distinct: int = ...) -> list[str]: ...


@overload
def group_templates(messages: Iterable[str | None], *, similarity: float = ...,
                    min_distinct: int = ...) -> list[str | None]: ...


def group_templates(messages: Iterable[str | None], *, similarity: float = SIMILARITY,
                    min_distinct: int = MIN_DISTINCT) -> list[str | None]:
    """One template per message: messages that say the same thing with other values share one.

    Deterministic and independent of order and repetitions: the result depends only on the set
    of distinct messages (so group what is compared, e.g. both revisions, in one call). A `None`
    message gets `None`, as with `template`. The module docstring has the rules.

    >>> group_templates(["Login failed for user alice: account locked", "Connect to redis at 10.0.0.1:6379",
    ...                  "Login failed for user bob: account locked", "Connect to postgres at 10.0.0.2:5432",
    ...                  "Login failed for user carol: account locked", "Login failed for user dave: account locked"])[:4]
    ['Login failed for user <*>: account locked', 'Connect to redis at <*>', \
'Login failed for user <*>: account locked', 'Connect to postgres at <*>']
    """
    messages = list(messages)
    masked: dict[str | None, str | None] = {m: mask(m) for m in set(messages) if m is not None}
    masked[None] = None
    tokens = {t: _tokens(t) for t in set(masked.values()) if t is not None}
    # Drain's tree, flattened: a leaf per word count, separators and first fixed words
    leaves: dict[tuple, list[tuple[str, ...]]] = defaultdict(list)
    for t in sorted(tokens):
        words, seps = tokens[t]
        leaves[(len(words), seps, _route(words))].append(words)
    found: dict[tuple[tuple[str, ...], tuple[str, ...]], tuple[str, ...]] = {}
    for (_, seps, _), members in leaves.items():
        for cluster in _cluster(members, similarity):
            for words, template in _split(cluster, min_distinct).items():
                found[(words, seps)] = template
    merged = _merge({(template, seps) for (_, seps), template in found.items()}, similarity, min_distinct)
    text = {key: _render(merged[(template, key[1])], key[1]) for key, template in found.items()}
    by_mask: dict[str | None, str | None] = {t: text[key] for t, key in tokens.items()}
    by_mask[None] = None
    return [by_mask[masked[m]] for m in messages]


def _route(words: tuple[str, ...]) -> tuple[str, ...]:
    """Drain's tree: the first `_ROUTE_WORDS` words without digits (words with digits or `<*>` are variables)."""
    out: list[str] = []
    for w in words:
        if not _VARIABLE_WORD.search(w):
            out.append(w)
            if len(out) == _ROUTE_WORDS:
                break
    return tuple(out)


def _cluster(members: list[tuple[str, ...]], similarity: float) -> list[list[tuple[str, ...]]]:
    """Drain's leaf step: each word list joins the group whose template it is most similar to, or starts one."""
    groups: list[tuple[list[str], list[tuple[str, ...]]]] = []
    need = similarity * len(members[0])
    for words in members:
        best, best_same = None, -1
        for template, group in groups:
            same = sum(map(eq, template, words))
            if same > best_same:
                best, best_same = (template, group), same
        if best is not None and (best_same >= need or not words):
            template, group = best
            for i, w in enumerate(words):
                if template[i] != w:
                    template[i] = "<*>"
            group.append(words)
        else:
            groups.append((list(words), [words]))
    return [g for _, g in groups]


def _split(cluster: list[tuple[str, ...]], min_distinct: int) -> dict[tuple[str, ...], tuple[str, ...]]:
    """{words: template}: a position whose values are variables becomes `<*>`; other varying positions split."""
    template = list(cluster[0])
    columns = [{w[i] for w in cluster} for i in range(len(template))]
    fixed = sum(len(values) == 1 and "<*>" not in template[i] for i, values in enumerate(columns))
    keys = []
    for i, values in enumerate(columns):
        if len(values) > 1:
            if _is_variable(values, min_distinct, fixed):
                template[i] = _star(values)
            else:
                keys.append(i)
    out = {}
    for words in cluster:
        for i in keys:
            template[i] = words[i]
        out[words] = tuple(template)
    return out


def _merge(templates: set[tuple[tuple[str, ...], tuple[str, ...]]], similarity: float, min_distinct: int) -> dict:
    """{(template, separators): merged template}: templates that differ in one position only, where the
    values they take together are variables, are one when `similarity` of the words stay fixed (Drain's
    tree keeps apart messages whose first words differ, and its similarity short ones)."""
    final = {t: t[0] for t in templates}
    current = set(templates)
    while True:
        rename: dict[tuple, tuple[str, ...]] = {}
        by_shape: dict[tuple, list[tuple[str, ...]]] = defaultdict(list)
        for words, seps in sorted(current):
            by_shape[(len(words), seps)].append(words)
        for (width, seps), members in by_shape.items():
            need = similarity * width
            for i in range(width):
                buckets: dict[tuple[str, ...], list[tuple[str, ...]]] = defaultdict(list)
                for words in members:
                    if (words, seps) not in rename:
                        buckets[words[:i] + words[i + 1:]].append(words)
                for rest, same in buckets.items():
                    fixed = sum("<*>" not in w for w in rest)
                    if fixed < need:
                        continue
                    values = {w[i] for w in same}
                    if len(values) > 1 and _is_variable(values, min_distinct, fixed):
                        star = _star(values)
                        for words in same:
                            rename[(words, seps)] = (*words[:i], star, *words[i + 1:])
        if not rename:
            return final
        final = {t: rename.get((w, t[1]), w) for t, w in final.items()}
        current = {(rename.get(t, t[0]), t[1]) for t in current}


def _star(values: set[str]) -> str:
    """The template word for a variable position: `<*>` with the literal prefix and suffix all values
    share, each ending at a punctuation mark (`user:<*>`, `blk_<*>` stays `<*>` when values differ there)."""
    heads = [v.split("<*>", 1)[0] for v in values]
    tails = [v.rsplit("<*>", 1)[-1] for v in values]
    pre = _edge(heads, 1)
    room = min(len(v) - len(pre) if "<*>" not in v else len(t) for v, t in zip(values, tails, strict=True))
    suf = _edge([t[len(t) - room:] for t in tails], -1)
    return pre + "<*>" + suf


def _edge(texts: list[str], direction: int) -> str:
    """The longest common prefix (direction 1) or suffix (-1) of `texts` that ends (starts) at a non-word character."""
    common = commonprefix(texts if direction == 1 else [t[::-1] for t in texts])
    while common and not _EDGE.match(common[-1]):
        common = common[:-1]
    return common if direction == 1 else common[::-1]


def _render(words: tuple[str, ...], seps: tuple[str, ...]) -> str:
    return _STARS.sub("<*>", seps[0] + "".join(w + s for w, s in zip(words, seps[1:], strict=True)))
