"""GoogleSQL (BigQuery) literals: one place that quotes text for a query.

>>> string_literal(r"\\bexit\\((\\d+)\\)")
"r'\\\\bexit\\\\((\\\\d+)\\\\)'"
>>> string_literal("it's")
"'it\\\\'s'"
"""

from __future__ import annotations

_ESCAPES = {"\\": "\\\\", "'": "\\'", "\n": "\\n", "\r": "\\r"}


def string_literal(text: str) -> str:
    """`text` as a GoogleSQL string literal: raw (`r'...'`, backslashes kept as written) when it
    can be, else a quoted literal with `\\\\`, `\\'`, `\\n` and `\\r` escaped.

    A raw literal cannot hold its quote, a line break, or end in a backslash (which would escape
    the closing quote), so such texts take the escaped form.
    """
    if "'" not in text and "\n" not in text and "\r" not in text and not text.endswith("\\"):
        return f"r'{text}'"
    return "'" + "".join(_ESCAPES.get(c, c) for c in text) + "'"


__all__ = ["string_literal"]
