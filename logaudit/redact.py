"""Redaction of secrets inside log messages, for everything logaudit displays or exports.

Log lines carry what applications print: bearer tokens, JWTs, API keys, database URLs with
passwords. Every message logaudit shows (terminal, JSON, reports, notebooks via the public
API) or exports passes through a `Redactor`, on by default. The rules are RE2-compatible so
the same rules run in Python (`Redactor.redact`) and inside DuckDB (`Redactor.sql`).

>>> Redactor().redact("login with Authorization: Bearer abc.def-123 ok")
'login with Authorization: Bearer <redacted>'
>>> Redactor().redact("postgresql://app:s3cr3t@10.1.2.3:5432/netra")
'postgresql://app:<redacted>@10.1.2.3:5432/netra'
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

#: (name, pattern, replacement). Replacements use \\1-style groups (Python) / \\1 (DuckDB).
DEFAULT_RULES: list[tuple[str, str, str]] = [
    ("private-key",
     r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)",
     "<redacted:private-key>"),
    ("jwt", r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}", "<redacted:jwt>"),
    ("bearer", r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{6,}", r"\1 <redacted>"),
    ("google-api-key", r"\bAIza[0-9A-Za-z_-]{35}\b", "<redacted:api-key>"),
    ("aws-access-key", r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b", "<redacted:aws-key>"),
    ("github-token", r"\bgh[pousr]_[A-Za-z0-9]{30,}\b", "<redacted:token>"),
    ("slack-token", r"\bxox[abposr]-[A-Za-z0-9-]{10,}", "<redacted:token>"),
    ("url-password", r"\b([a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@]+):([^@\s/]+)@", r"\1:<redacted>@"),
    ("key-value",
     r"(?i)\b((?:password|passwd|pwd|secret|client_secret|api[_-]?key|apikey|access[_-]?token|"
     r"refresh[_-]?token|auth[_-]?token|token|private[_-]?key|credentials?)[\"']?\s*[:=]\s*[\"']?)"
     r"([^\s\"'&,;)}\]]+)",
     r"\1<redacted>"),
]


@dataclass
class Redactor:
    """Applies redaction rules. `enabled=False` passes text through (for trusted local debugging).

    `extra` adds (name, pattern, replacement) rules after the defaults.
    """

    enabled: bool = True
    extra: list[tuple[str, str, str]] = field(default_factory=list)
    _compiled: list[tuple[re.Pattern[str], str]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._compiled = [(re.compile(p), r) for _, p, r in self.rules]

    @property
    def rules(self) -> list[tuple[str, str, str]]:
        return [*DEFAULT_RULES, *self.extra] if self.enabled else []

    def redact(self, text: str | None) -> str | None:
        """The text with every secret replaced."""
        if not isinstance(text, str) or not self.enabled:
            return text if isinstance(text, str) else None
        for pattern, replacement in self._compiled:
            text = pattern.sub(replacement, text)
        return text

    def redact_all(self, texts: Iterable[str | None]) -> list[str | None]:
        return [self.redact(t) for t in texts]

    def sql(self, column: str) -> str:
        """A DuckDB expression redacting `column` with the same rules."""
        expr = column
        for _, pattern, replacement in self.rules:
            pat = pattern.replace("'", "''")
            expr = f"regexp_replace({expr}, '{pat}', '{replacement.replace(chr(39), chr(39) * 2)}', 'g')"
        return expr


DEFAULT = Redactor()


def redact(text: str | None) -> str | None:
    """Redact with the default rules."""
    return DEFAULT.redact(text)
