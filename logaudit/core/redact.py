"""Redaction of secrets (and, by default, email addresses) in everything logaudit displays or exports.

Log lines carry what applications print: passwords in ``key=value`` pairs and JSON, bearer
tokens, API keys, cookies, database URLs with passwords, private keys. Every text logaudit shows
(terminal, JSON, Markdown, HTML, charts, `Audit` results in notebooks), exports (Parquet, JSON)
or lists (ingest rejects, error messages) passes through a `Redactor`, on by default.

The rules are RE2 regular expressions, and RE2 runs them on both sides: in Python through
``pyarrow.compute`` (vectorised over arrays) and in DuckDB (`Redactor.sql`). RE2 runs in time
linear in the text, so no line - up to Cloud Logging's 256 kB entry limit - can make a rule
slow, and both sides give the same result byte for byte. docs/summary-json.md lists the rules.

The rules keep JSON valid: run over JSON text (``payload_json``, ``labels_json``, a JSON
message) they replace a secret member's value by the string ``"<redacted>"`` and a secret inside
a string by text without quotes or backslashes, so the document still parses.

>>> Redactor().redact("login with Authorization: Bearer abc.def-123 ok")
'login with Authorization: Bearer <redacted> ok'
>>> Redactor().redact("postgresql://app:s3cr3t@10.1.2.3:5432/netra")
'postgresql://app:<redacted>@10.1.2.3:5432/netra'
>>> Redactor().redact('{"user": "ann@example.com", "password": "hunter2", "retries": 3}')
'{"user": "<redacted:email>", "password": "<redacted>", "retries": 3}'
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from logaudit.core.errors import UsageError
from logaudit.core.secret_rules import (
    DEFAULT_RULES,
    DEFAULT_TRIGGER,
    EMAIL_RULES,
    SECRET_RULES,
    Rule,
    apply_rules,
)

#: $LOGAUDIT_REDACT_CONFIG: a YAML file with `emails: true|false` and extra `rules` (docs/summary-json.md).
CONFIG_ENV = "LOGAUDIT_REDACT_CONFIG"


# ---------------------------------------------------------------------------- the redactor
@dataclass
class Redactor:
    """Applies the redaction rules. `enabled=False` passes text through (for trusted local debugging).

    `emails=False` keeps email addresses; `extra` adds (name, RE2 pattern, replacement) rules
    after the defaults. A pattern RE2 cannot compile raises `UsageError`.

    >>> Redactor(extra=[("employee-id", r"\\bEMP-\\d{6}\\b", "<redacted:employee>")]).redact("by EMP-123456")
    'by <redacted:employee>'
    """

    enabled: bool = True
    emails: bool = True
    extra: list[tuple[str, str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.extra = [Rule(*r) for r in self.extra]
        for rule in self.extra:
            _check_rule(rule)

    @property
    def rules(self) -> list[Rule]:
        """The rules this redactor applies, in order (none when disabled)."""
        if not self.enabled:
            return []
        return [*SECRET_RULES, *(EMAIL_RULES if self.emails else []), *self.extra]

    @property
    def trigger(self) -> str:
        """A pattern found wherever a rule matches: one scan decides whether a text needs the rules."""
        return "|".join([DEFAULT_TRIGGER, *(f"(?:{p})" for _, p, _ in self.extra)])

    def redact(self, text: str | None) -> str | None:
        """The text with every secret replaced (None stays None).

        >>> Redactor().redact("DB_PASSWORD=hunter2 aws_secret_access_key=wJalrXUtnFEMI/K7MDENG")
        'DB_PASSWORD=<redacted> aws_secret_access_key=<redacted>'
        """
        if not isinstance(text, str):
            return None
        return self.redact_all([text])[0]

    def redact_all(self, texts: Iterable[str | None]) -> list[str | None]:
        """`redact` for many texts in one vectorised pass."""
        texts = [t if isinstance(t, str) else None for t in texts]
        if not self.enabled or not texts:
            return texts
        import pyarrow as pa

        return self.redact_array(pa.array(texts, pa.large_string())).to_pylist()

    def redact_array(self, array: Any) -> Any:
        """A pyarrow string array (a chunked array is combined) with every value redacted; nulls stay null."""
        return self.redact_arrays([array])[0]

    def redact_arrays(self, arrays: list[Any]) -> list[Any]:
        """`redact_array` for several arrays (say, the text columns of a record batch) at once.

        One scan per array finds the values with a trigger; those of all arrays go through the
        rules together, so the rules are compiled once, not once per array.
        """
        if not self.enabled:
            return list(arrays)
        return apply_rules(arrays, self.rules, self.trigger)

    def redact_tree(self, value: Any) -> Any:
        """`value` (JSON-like: dicts, lists, tuples, scalars) with every string value redacted; keys kept."""
        if not self.enabled:
            return value
        found: list[str] = []
        _collect(value, found)
        if not found:
            return value
        done = iter(self.redact_all(found))
        return _rebuild(value, done)

    def sql(self, column: str) -> str:
        """A DuckDB expression redacting `column` with the same rules (RE2 in DuckDB too).

        Texts without a trigger word skip the rules: one scan with `trigger` decides.
        """
        if not self.enabled:
            return column
        from logaudit.core.db import sql_text

        expr = column
        for _, pattern, replacement in self.rules:
            expr = f"regexp_replace({expr}, {sql_text(pattern)}, {sql_text(replacement)}, 'g')"
        return f"CASE WHEN regexp_matches({column}, {sql_text(self.trigger)}) THEN {expr} ELSE {column} END"


def _check_rule(rule: Rule) -> None:
    """UsageError unless RE2 compiles the pattern and accepts the replacement."""
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        pc.replace_substring_regex(pa.array([""]), rule.pattern, rule.replacement)
    except (pa.ArrowInvalid, TypeError) as err:
        raise UsageError(f"redaction rule {rule.name!r}: {err}",
                         hint="patterns are RE2 syntax (no lookaround, no backreferences); "
                              "replacements name groups as \\1") from None


def _collect(value: Any, out: list[str]) -> None:
    if isinstance(value, str):
        out.append(value)
    elif isinstance(value, dict):
        for v in value.values():
            _collect(v, out)
    elif isinstance(value, list | tuple) or _is_object_array(value):
        for v in value:
            _collect(v, out)


def _rebuild(value: Any, done: Any) -> Any:
    if isinstance(value, str):
        return next(done)
    if isinstance(value, dict):
        return {k: _rebuild(v, done) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_rebuild(v, done) for v in value]
    if _is_object_array(value):
        import numpy as np

        out = np.empty(len(value), dtype=object)
        out[:] = [_rebuild(v, done) for v in value]
        return out
    return value


def _is_object_array(value: Any) -> bool:
    """A numpy array of Python objects (how pandas holds DuckDB lists of text)."""
    return str(getattr(value, "dtype", "")) == "object" and getattr(value, "ndim", 0) == 1


def redact_tree(value: Any, redactor: Redactor) -> Any:
    """`redactor.redact_tree(value)`: every string of a JSON-like value redacted."""
    return redactor.redact_tree(value)


def redact_frame(df: Any, redactor: Redactor) -> Any:
    """A pandas DataFrame with every text cell redacted (also inside lists, dicts and arrays), in one pass."""
    if not redactor.enabled or df.empty:
        return df
    columns = [c for c in df.columns if df[c].dtype == object or str(df[c].dtype) in ("string", "str")]
    cells = {c: df[c].tolist() for c in columns}
    redacted = redactor.redact_tree(cells)
    out = df.copy()
    for c in columns:
        out[c] = _series(redacted[c], df[c])
    return out


def _series(values: list[Any], like: Any) -> Any:
    """`values` as a Series with the index, name and (text) dtype of `like`."""
    import pandas as pd

    return pd.Series(values, index=like.index, name=like.name, dtype=like.dtype)


# ---------------------------------------------------------------------------- configuration
def load_redactor(path: str | os.PathLike | None = None, *, emails: bool | None = None) -> Redactor:
    """The redactor configured by `path` (default: $LOGAUDIT_REDACT_CONFIG; none: the defaults).

    The file is YAML: ``emails: false`` keeps email addresses, ``rules:`` adds rules, each with
    ``name``, ``pattern`` (RE2) and ``replacement``. `emails` overrides the file. A bad file
    raises `UsageError`.
    """
    path = path or os.environ.get(CONFIG_ENV) or None
    config = _read_config(Path(path)) if path else {}
    keep = config.get("emails", True) if emails is None else emails
    return Redactor(emails=keep, extra=config.get("rules", []))


def _read_config(path: Path) -> dict[str, Any]:
    import yaml

    where = f"redaction config {path}"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as err:
        raise UsageError(f"{where}: cannot read: {err.strerror}", hint=f"check ${CONFIG_ENV}") from None
    except yaml.YAMLError as err:
        raise UsageError(f"{where}: not valid YAML: {getattr(err, 'problem', err)}") from None
    if not isinstance(data, dict) or set(data) - {"emails", "rules"}:
        raise UsageError(f"{where}: expected a mapping with the keys emails and rules")
    if not isinstance(data.get("emails", True), bool):
        raise UsageError(f"{where}: emails: expected true or false")
    rules = []
    for i, item in enumerate(data.get("rules") or [], start=1):
        if not isinstance(item, dict) or not all(isinstance(item.get(k), str) for k in ("name", "pattern")) \
                or not isinstance(item.get("replacement", "<redacted>"), str):
            raise UsageError(f"{where}: rules[{i}]: expected name, pattern and replacement (text)")
        rules.append((item["name"], item["pattern"], item.get("replacement", "<redacted>")))
    return {"emails": data.get("emails", True), "rules": rules}


DEFAULT = Redactor()


def redact(text: str | None) -> str | None:
    """Redact with the default rules."""
    return DEFAULT.redact(text)


__all__ = ["CONFIG_ENV", "DEFAULT_RULES", "EMAIL_RULES", "SECRET_RULES", "Redactor", "Rule", "load_redactor",
           "redact", "redact_frame", "redact_tree"]
