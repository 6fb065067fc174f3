"""Message templates: the same line with different ids, numbers or quoted values is one template.

Used to group unclassified messages (`Audit.unclassified`) and to find new error templates in a
canary (`compare`). Variable parts become `<*>`: timestamps, quoted strings, UUIDs, IPv4 addresses (with a
port), hex strings of 8+ characters (or 6+ after `_`/`-`, as in `ws_conn_3e732c`), emails, and numbers (with a unit suffix such
as `ms`). The rules are RE2-compatible so DuckDB applies them in bulk (`template_sql`).

>>> template("Cache miss for key user:48213:profile after 37ms")
'Cache miss for key user:<*>:profile after <*>ms'
>>> template("Retrying Redis connection to 10.0.3.7:6379 (attempt 2)")
'Retrying Redis connection to <*> (attempt <*>)'
"""

from __future__ import annotations

import re

#: Applied in order; each (pattern, replacement).
MASKS: list[tuple[str, str]] = [
    (r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?: ?(?:Z|[+-]\d{2}:?\d{2}))?", "<*>"),
    (r"'[^']*'", "'<*>'"),
    (r'"[^"]*"', '"<*>"'),
    (r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b", "<*>"),
    (r"\b[\w.+-]+@[\w-]+\.[\w.-]+\b", "<*>"),
    (r"\b\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}(?::\d+)?\b", "<*>"),
    (r"\b(?:0x)?[0-9a-fA-F]{8,}\b", "<*>"),
    (r"([_-])[0-9a-fA-F]{6,}\b", r"\1<*>"),
    (r"\b\d+(?:\.\d+)?", "<*>"),
]
_COMPILED = [(re.compile(p), r) for p, r in MASKS]
#: Longest prefix of a message that is templated (very long lines are cut first).
MAX_TEMPLATE_CHARS = 500


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
