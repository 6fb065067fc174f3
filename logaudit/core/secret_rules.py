"""The secret-redaction rules (RE2) and how they are applied to Arrow arrays.

`logaudit.core.redact.Redactor` applies them (with the email rule and configured extra rules);
every `LogauditError` message goes through `redact_message` (the secret rules, emails kept: no
configuration, so that an error in the configuration file can be reported too).
docs/summary-json.md lists the rules.

>>> redact_message("GET /v1?api_key=abc123 failed for ann@example.com")
'GET /v1?api_key=<redacted> failed for ann@example.com'
"""

from __future__ import annotations

from typing import Any, NamedTuple


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
    y = rf"({_B_KEY}{key}(?:'')?{_SEP}''"  # inside a YAML single-quoted string a quote is doubled
    s, keep = (_SCHEME, r"\2") if scheme else ("", "")
    rules = [
        Rule(f"{name}-json", rf'{q}"){s}{_STR}"', rf'\1{keep}<redacted>"'),
        Rule(f"{name}-json-escaped", rf"{e}{_EQ}){s}{_ESC_STR}", rf"\1{keep}<redacted>"),
        Rule(f"{name}-double-quoted", rf'{u}"){s}{_QUOTED_FIRST}{_STR}"', rf'\1{keep}<redacted>"'),
        Rule(f"{name}-escaped-quoted", rf"{u}{_EQ}){s}{_ESC_STR}", rf"\1{keep}<redacted>"),
        Rule(f"{name}-yaml-quoted", rf"{y}){s}(?:[^'\r\n]|'[^'\r\n])*?''", rf"\1{keep}<redacted>''"),
        Rule(f"{name}-single-quoted", rf"{u}'){s}(?:[^'\"\\\r\n]|\\[^\"])+'", rf"\1{keep}<redacted>'"),
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


def apply_rules(arrays: list[Any], rules: list[Rule], trigger: str) -> list[Any]:
    """`arrays` (pyarrow string arrays; chunked ones are combined) with `rules` applied in order.

    One scan per array finds the values matching `trigger` (a pattern found wherever a rule
    matches); those of all arrays go through the rules together, so the rules are compiled once.
    Nulls stay null.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    arrays = [a.combine_chunks() if isinstance(a, pa.ChunkedArray) else a for a in arrays]
    masks = [pc.fill_null(pc.match_substring_regex(a, trigger), False) if len(a) else None for a in arrays]
    hit = [i for i, m in enumerate(masks) if m is not None and pc.any(m).as_py()]
    if not hit:
        return arrays
    parts = [arrays[i].filter(masks[i]).cast(pa.large_string()) for i in hit]
    joined = pa.concat_arrays(parts)
    for _, pattern, replacement in rules:
        joined = pc.replace_substring_regex(joined, pattern, replacement)
    out, offset = list(arrays), 0
    for i, part in zip(hit, parts, strict=True):
        done = joined.slice(offset, len(part)).cast(arrays[i].type)
        offset += len(part)
        out[i] = pc.replace_with_mask(arrays[i], masks[i], done)  # takes the values in order
    return out


def redact_message(text: str) -> str:
    """`text` (an error message, a traceback) with the secret rules applied; emails are kept."""
    import pyarrow as pa

    return apply_rules([pa.array([text], pa.large_string())], SECRET_RULES, DEFAULT_TRIGGER)[0].to_pylist()[0]


__all__ = ["DEFAULT_RULES", "DEFAULT_TRIGGER", "EMAIL_RULES", "SECRET_RULES", "Rule", "apply_rules", "redact_message"]
