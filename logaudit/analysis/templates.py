"""Message templates: the same line with different ids, numbers or quoted values is one template.

Used to group unclassified messages (`Audit.unclassified`) and to find new error templates in a
canary (`compare`). Grouping happens in two stages:

1. **Masks** (`template`, and `template_sql` for DuckDB): variable parts become `<*>`:
   quoted strings, the value of a logfmt ``key=value``, timestamps, UUIDs, emails, IPv6 and
   IPv4 addresses (with a port), hex strings of 8+ characters (or 6+ after `_`/`-`, as in
   `ws_conn_3e732c`), tokens that mix letters and digits the way ids do (``8fKq2LmZa``,
   ``x2kqz``, ``1m30s``), and numbers (a unit suffix such as `ms` stays). The rules are
   RE2-compatible and applied in the same passes, with ASCII semantics, by Python (`template`)
   and DuckDB (`template_sql`), so both give the same templates.
2. **Merge** (`merge_templates`, on the distinct templates of a result, in Python): templates
   that differ in one or two whitespace-separated words only are merged when each such word
   takes at least `MIN_DISTINCT` different values (``Login failed for user alice|bob|carol|
   dave: ...`` is one message about many users; ``connect to redis`` / ``connect to postgres``
   stay two). `compare` uses both stages; the grouping accuracy of each is measured by
   benchmarks/bench_templates.py (see docs/compare.md).

>>> template("Cache miss for key user:48213:profile after 37ms")
'Cache miss for key user:<*>:profile after <*>ms'
>>> template("Retrying Redis connection to 10.0.3.7:6379 (attempt 2)")
'Retrying Redis connection to <*> (attempt <*>)'
>>> template("Request req_8fKq2LmZa timed out after 30s (user=alice)")
'Request <*> timed out after <*>s (user=<*>)'
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Mapping

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
MASKS: list[tuple[str, str]] = [
    (r"'[^']*'", "'<*>'"),
    (r'"[^"]*"', '"<*>"'),
    # logfmt: key=value (the value up to a space, comma, semicolon, ampersand, quote or bracket)
    (r"\b([A-Za-z_][\w.-]*)=[^\s,;&'\"()\[\]{}<>]+", r"\1=<*>"),
    (_VARIABLE, "<*>"),
    (r"([_-])[0-9a-fA-F]{6,}\b", r"\1<*>"),
    (_TOKENS, "<*>"),
]
_COMPILED = [(re.compile(p, re.ASCII), r) for p, r in MASKS]
#: Longest prefix of a message that is templated (very long lines are cut first).
MAX_TEMPLATE_CHARS = 500
#: `merge_templates`: fewest distinct values that make a word position variable.
MIN_DISTINCT = 4
#: `merge_templates`: pairs of positions are tried only among at most this many candidate positions.
MAX_PAIR_POSITIONS = 24
#: `merge_templates`: at most this many distinct templates (the most frequent) are merged.
MAX_MERGE_TEMPLATES = 5_000


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
    expr = f"left({column}, {MAX_TEMPLATE_CHARS})"
    for pattern, replacement in MASKS:
        pat = pattern.replace("'", "''")
        expr = f"regexp_replace({expr}, '{pat}', '{replacement.replace(chr(39), chr(39) * 2)}', 'g')"
    return expr


_SPLIT = re.compile(r"(\s+)")
_EDGE = re.compile(r"\W", re.ASCII)


def _common_edges(words: list[str]) -> tuple[str, str]:
    """The longest common prefix ending, and suffix starting, at a non-word character."""
    first = words[0]
    pre = len(first)
    for w in words[1:]:
        pre = min(pre, len(w))
        for i in range(pre):
            if w[i] != first[i]:
                pre = i
                break
    while pre > 0 and not _EDGE.match(first[pre - 1]):
        pre -= 1
    suf = min(len(w) for w in words) - pre
    for w in words[1:]:
        n = 0
        while n < suf and w[-1 - n] == first[-1 - n]:
            n += 1
        suf = n
    while suf > 0 and not _EDGE.match(first[len(first) - suf]):
        suf -= 1
    return first[:pre], first[len(first) - suf:] if suf else ""


def merge_templates(templates: Mapping[str, int] | list[str], min_distinct: int = MIN_DISTINCT) -> dict[str, str]:
    """Merge masked templates that differ in one or two words whose values look variable.

    Templates are split on whitespace; those with the same number of words that agree
    everywhere except at one position are merged when that position holds at least
    `min_distinct` distinct words (the merged word keeps the prefix and suffix its values
    share up to a punctuation mark, so ``alice:`` / ``bob:`` become ``<*>:``). Repeated until
    nothing changes; then the same for two positions that vary together (each with at least
    `min_distinct` distinct words), as in ``Pod worker-x2kqz on node pool-abcde``.

    Returns {template: merged template} for every input template (unchanged ones map to
    themselves). Deterministic: the result depends only on the set of templates (and, past
    `MAX_MERGE_TEMPLATES` distinct templates, on their counts: only the most frequent merge).

    >>> m = merge_templates(["User alice: locked", "User bob: locked", "User carol: locked", "User dave: locked",
    ...                      "Connect to redis", "Connect to postgres"])
    >>> m["User bob: locked"], m["Connect to redis"]
    ('User <*>: locked', 'Connect to redis')
    """
    if min_distinct < 2:
        raise ValueError("min_distinct must be at least 2")
    if isinstance(templates, Mapping) and len(templates) > MAX_MERGE_TEMPLATES:
        ranked = sorted(templates, key=lambda t: (-templates[t], t))
        current = {t: t for t in sorted(ranked[:MAX_MERGE_TEMPLATES])}
        rest = {t: t for t in ranked[MAX_MERGE_TEMPLATES:]}
    else:
        current = {t: t for t in sorted(set(templates))}
        rest = {}
    for width in (1, 2):
        for _ in range(8):
            rename = _merge_round(sorted(set(current.values())), width, min_distinct)
            if not rename:
                break
            current = {t: rename.get(g, g) for t, g in current.items()}
    return current | rest


def _merge_round(groups: list[str], width: int, min_distinct: int) -> dict[str, str]:
    split = {g: _SPLIT.split(g) for g in groups}
    rename: dict[str, str] = {}
    by_len: dict[int, list[str]] = defaultdict(list)
    for g in groups:
        by_len[len(split[g])].append(g)
    for length, members in sorted(by_len.items()):
        if len(members) < min_distinct:
            continue
        # only word positions (even indexes) with enough distinct values anywhere can vary
        words = [i for i in range(0, length, 2) if len({split[g][i] for g in members}) >= min_distinct]
        if width == 1:
            combos: list[tuple[int, ...]] = [(i,) for i in words]
        elif len(words) <= MAX_PAIR_POSITIONS:
            combos = [(i, j) for i in words for j in words if i < j]
        else:
            combos = []
        for combo in combos:
            buckets: dict[tuple[str, ...], list[str]] = defaultdict(list)
            for g in members:
                if g in rename:
                    continue
                parts = list(split[g])
                for i in combo:
                    parts[i] = "\0"
                buckets[tuple(parts)].append(g)
            for key, gs in buckets.items():
                if len(gs) < min_distinct:
                    continue
                values = [sorted({split[g][i] for g in gs}) for i in combo]
                if any(len(v) < min_distinct for v in values):
                    continue
                parts = list(key)
                for i, v in zip(combo, values, strict=True):
                    pre, suf = _common_edges(v)
                    parts[i] = pre + "<*>" + suf
                merged = "".join(parts)
                for g in gs:
                    rename[g] = merged
    return rename
