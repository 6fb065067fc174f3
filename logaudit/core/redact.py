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
from typing import Any, NamedTuple

#: $LOGAUDIT_REDACT_CONFIG: a YAML file with `emails: true|false` and extra `rules` (docs/summary-json.md).
CONFIG_ENV = "LOGAUDIT_REDACT_CONFIG"


class Rule(NamedTuple):
    """One redaction rule: an RE2 pattern and its replacement (``\\1`` names a group)."""

    name: str
    pattern: str
    replacement: str


# ---------------------------------------------------------------------------- building blocks
# A JSON escape (\n, \t, \/, \uXXXX, ...) is consumed whole, and a lone backslash never: a
# replaced part then never starts inside an escape sequence, which keeps JSON text valid.
_ESC = r"\\[nrtbf/]|\\u[0-9A-Fa-f]{4}"
#: Before a token: the start, a JSON escape or a character that is no word character.
_B_WORD = rf"(?:{_ESC}|^|[^A-Za-z0-9_\\])"
#: Before a key: as `_B_WORD`, and neither `.` nor `-` (they are part of keys such as `db.password`).
_B_KEY = rf"(?:{_ESC}|^|[^A-Za-z0-9_.\\-])"
#: Before an email address: no character of its local part.
_B_EMAIL = rf"(?:{_ESC}|^|[^A-Za-z0-9._%+\\-])"

#: Keys whose value is a secret, matched case-insensitively as the END of the key: `password`,
#: `DB_PASSWORD`, `dbPassword`, `x-api-key`, `aws_secret_access_key`, `JWT_SECRET_KEY`, ... The
#: short words (pass, pwd, sig, auth) count only as the whole key or after `_`, `.` or `-`
#: (`pass`, `db_pwd`, `basic_auth`; not `bypass`). `token_count`, `max_tokens`, `password_reset`
#: end in another word and are kept.
_SECRET_KEY = (
    r"(?:[A-Za-z0-9_.-]*(?:password|passwd|passphrase|secrets?|token|api[_.-]?key"
    r"|(?:secret|access|private|signing|encryption|master|account|client)[_.-]?key"
    r"|credentials?|signature|[_.-]secret[_.-][A-Za-z0-9_.-]*)"
    r"|secret[_.-][A-Za-z0-9_.-]*"
    r"|(?:[A-Za-z0-9_.-]*[_.-])?(?:pass|pwd|sig)"
    r"|[A-Za-z0-9_.-]*[_.-]auth)"
)
_AUTH_KEY = r"[A-Za-z0-9_-]*authorization"
_COOKIE_KEY = r"[A-Za-z0-9_-]*cookie"
#: The scheme of an Authorization value (`Bearer `, `Basic `, `Token `, `AWS4-HMAC-SHA256 `), kept.
_SCHEME = r"((?:[A-Za-z][A-Za-z0-9_.-]*[ \t]+)?)"
_SEP = r"[ \t]*(?:=>|[:=])[ \t]*"
#: JSON string contents (escape-aware); the same inside a JSON string whose quotes are escaped.
_STR = r'(?:[^"\\\r\n]|\\.)*'
#: A quote inside a JSON string (``\"``), at any depth (``\\\"`` when that JSON is in a string too),
#: and the contents of such a string: up to the next escaped quote.
_EQ = r'\\+"'
_ESC_STR = r'(?:[^"\\]|\\+[^"\\])*'
_NUMBER = r"-?[0-9][0-9.eE+-]*"
#: A quoted value right after `key=`: its first character is none that can follow the closing
#: quote of a JSON string, so in JSON text `"... token:", "next": ...` is never taken for a value.
_QUOTED_FIRST = r'(?:[^"\\\r\n,:}\]\s]|\\.)'
_BARE = r"[^\s\"'\\&,;)}\]{\[][^\s\"'\\&,;)}\]]*"


def _key_value_rules(name: str, key: str, bare: str, *, scheme: bool = False, numbers: bool = True) -> list[Rule]:
    """The rules that redact the value of `key` in its forms, in this order:

    - a JSON member ``"key": "v"`` (also a number, or an array of strings, as ``"<redacted>"``),
    - the same inside a JSON string (``\\"key\\": \\"v\\"``, a number, an array of strings),
    - ``key=v`` / ``key: v`` with the value in double, escaped-double or single quotes, or bare.

    With `scheme`, a leading scheme word of the value (``Bearer``) is kept.
    """
    q = rf'((?:^|[^\\])"{key}"\s*:\s*'  # an unescaped JSON key: what precedes it is never a backslash
    e = rf"({_EQ}{key}{_EQ}[ \t]*:[ \t]*"
    u = rf"({_B_KEY}{key}'?{_SEP}"
    s, keep = (_SCHEME, r"\2") if scheme else ("", "")
    rules = [
        Rule(f"{name}-json", rf'{q}"){s}{_STR}"', rf'\1{keep}<redacted>"'),
        Rule(f"{name}-json-escaped", rf"{e}{_EQ}){s}{_ESC_STR}", rf"\1{keep}<redacted>"),
        Rule(f"{name}-double-quoted", rf'{u}"){s}{_QUOTED_FIRST}{_STR}"', rf'\1{keep}<redacted>"'),
        Rule(f"{name}-escaped-quoted", rf"{u}{_EQ}){s}{_ESC_STR}", rf"\1{keep}<redacted>"),
        Rule(f"{name}-single-quoted", rf"{u}'){s}(?:[^'\"\\\r\n]|\\[^\"])*'", rf"\1{keep}<redacted>'"),
        Rule(f"{name}-bare", rf"{u}){s}{bare}", rf"\1{keep}<redacted>"),
    ]
    if numbers:
        rules[1:1] = [
            Rule(f"{name}-json-number", rf"{q}){_NUMBER}", r'\1"<redacted>"'),
            Rule(f"{name}-json-array", rf'{q}\[)\s*"{_STR}"(?:\s*,\s*"{_STR}")*\s*\]', r'\1"<redacted>"]'),
        ]
        rules[4:4] = [
            Rule(f"{name}-json-escaped-number", rf"(({_EQ}){key}{_EQ}[ \t]*:[ \t]*){_NUMBER}", r"\1\2<redacted>\2"),
            Rule(f"{name}-json-escaped-array",
                 rf"{e}\[[ \t]*)({_EQ}){_ESC_STR}{_EQ}(?:[ \t]*,[ \t]*{_EQ}{_ESC_STR}{_EQ})*[ \t]*\]",
                 r"\1\2<redacted>\2]"),
        ]
    return [Rule(n, "(?i)" + p, r) for n, p, r in rules]


def _token(name: str, body: str, label: str = "token") -> Rule:
    return Rule(name, rf"({_B_WORD}){body}", rf"\1<redacted:{label}>")


#: Secrets, in the order they run. Names are stable (docs list them); patterns may get better.
SECRET_RULES: list[Rule] = [
    Rule("private-key",
         r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----(?:[A-Za-z0-9+/=\s:,.]|\\+[nrt/]|-[A-Za-z0-9])*"
         r"(?:-----END[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----)?",
         "<redacted:private-key>"),
    # scheme://user:password@host - the password may hold `@`, `:` or `/`: up to the LAST `@`
    # (the user part holds no `<`: `<redacted:email>:<redacted>@` stays as it is)
    Rule("url-password", r'([A-Za-z][A-Za-z0-9+.-]*://[^\s:/?#"\\<>]*:)(?:[^\s"\\]|\\[^\s"])*@', r"\1<redacted>@"),
    *_key_value_rules("authorization", _AUTH_KEY, r"[^\s\"'\\,;&]+", scheme=True, numbers=False),
    *_key_value_rules("cookie", _COOKIE_KEY, r"[^\s\"'\\][^\r\n\"'\\]*", numbers=False),  # to the end of the line
    *_key_value_rules("secret-key", _SECRET_KEY, _BARE),
    _token("jwt", r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}(?:\.[A-Za-z0-9_-]*){1,3}", "jwt"),
    Rule("bearer", rf"(?i)({_B_WORD}bearer[ \t]+)[A-Za-z0-9._~+/=-]{{8,}}", r"\1<redacted>"),
    _token("google-api-key", r"AIza[0-9A-Za-z_-]{30,}", "api-key"),
    _token("google-oauth-token", r"(?:ya29\.[0-9A-Za-z_-]{10,}|1//0[0-9A-Za-z_-]{20,}|GOCSPX-[0-9A-Za-z_-]{20,})"),
    _token("aws-access-key", r"(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AIPA|ANPA|ANVA|AROA|APKA)[0-9A-Z]{16,}", "aws-key"),
    _token("github-token", r"(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})"),
    _token("gitlab-token", r"glpat-[A-Za-z0-9_-]{20,}"),
    _token("slack-token", r"xox[abposrce]-[A-Za-z0-9-]{10,}"),
    Rule("slack-webhook", r"(hooks\.slack\.com/services/)[A-Za-z0-9_/-]+", r"\1<redacted>"),
    _token("stripe-key", r"(?:(?:sk|rk)_(?:live|test)_[0-9A-Za-z]{10,}|whsec_[0-9A-Za-z]{20,})"),
    _token("openai-key", r"sk-[A-Za-z0-9_-]{32,}"),
    _token("npm-token", r"npm_[A-Za-z0-9]{36,}"),
    _token("pypi-token", r"pypi-AgE[A-Za-z0-9_-]{50,}"),
    _token("sendgrid-key", r"SG\.[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,}"),
]
#: Email addresses (on by default; `Redactor(emails=False)` keeps them).
EMAIL_RULES: list[Rule] = [
    Rule("email", rf"({_B_EMAIL})[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{{2,}}",
         r"\1<redacted:email>"),
]
#: Every default rule (secrets, then emails).
DEFAULT_RULES: list[Rule] = [*SECRET_RULES, *EMAIL_RULES]
#: Found in every match of a default rule (tested): texts without it skip the rules, which is
#: most of them - and this pattern compiles in microseconds, where the rules take milliseconds.
DEFAULT_TRIGGER = (
    r"(?i:pass|pwd|secret|token|key|credential|sig|auth|cookie|bearer)|://|@|eyJ|AIza|ya29\.|1//0|GOCSPX-"
    r"|A(?:KI|SI|BI|CC|GP|ID|IP|NP|NV|RO|PK)A|gh[pousr]_|github_pat_|glpat-|xox[abposrce]-|hooks\.slack\.com"
    r"|sk_|rk_|whsec_|sk-|npm_|pypi-|SG\."
)


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
        import pyarrow as pa
        import pyarrow.compute as pc

        arrays = [a.combine_chunks() if isinstance(a, pa.ChunkedArray) else a for a in arrays]
        trigger = self.trigger
        masks = [pc.fill_null(pc.match_substring_regex(a, trigger), False) if len(a) else None for a in arrays]
        hit = [i for i, m in enumerate(masks) if m is not None and pc.any(m).as_py()]
        if not hit:
            return arrays
        parts = [arrays[i].filter(masks[i]).cast(pa.large_string()) for i in hit]
        joined = pa.concat_arrays(parts)
        for _, pattern, replacement in self.rules:
            joined = pc.replace_substring_regex(joined, pattern, replacement)
        out, offset = list(arrays), 0
        for i, part in zip(hit, parts, strict=True):
            done = joined.slice(offset, len(part)).cast(arrays[i].type)
            offset += len(part)
            out[i] = pc.replace_with_mask(arrays[i], masks[i], done)  # takes the values in order
        return out

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

    from logaudit.core.errors import UsageError

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

    from logaudit.core.errors import UsageError

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
#: For logaudit's own error messages: the default secret rules, emails kept (no configuration, so
#: that an error in the configuration file can be reported too).
MESSAGES = Redactor(emails=False)


def redact(text: str | None) -> str | None:
    """Redact with the default rules."""
    return DEFAULT.redact(text)


__all__ = ["CONFIG_ENV", "DEFAULT_RULES", "EMAIL_RULES", "SECRET_RULES", "Redactor", "Rule", "load_redactor",
           "redact", "redact_frame", "redact_tree"]
