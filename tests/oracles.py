"""Independent readings of the formats logaudit normalizes, for property tests: each says what
the documented rule gives (value, or why not) without using logaudit's code; and what the sample
generator's events must be counted as."""

from __future__ import annotations

import calendar
import re
from datetime import date

from hypothesis import strategies as st


# ---------------------------------------------------------------------------- RFC 3339 timestamps
def oracle_rfc3339(text: str) -> tuple[str, int | str | None]:
    """An independent reading of RFC 3339 with logaudit's rules: ("ok", epoch ns), ("invalid",
    detail) or ("shape", None). Built on the standard library's calendar (years shifted by one
    400-year Gregorian cycle where `datetime` has no year)."""
    m = re.fullmatch(r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:\d{2})",
                     text, re.ASCII)
    if not m:
        return "shape", None
    y, mo, d, h, mi, s = (int(g) for g in m.groups()[:6])
    frac, tz = m[7] or "", m[8]
    if not 1 <= mo <= 12:
        return "invalid", f"month {m[2]} is not in 01..12"
    last = calendar.monthrange(y + 400 if y < 400 else y, mo)[1]  # year 0 has no `datetime`: 400 years on
    if not 1 <= d <= last:
        return "invalid", f"day {m[3]} is not in 01..{last} for {m[1]}-{m[2]}"
    if h > 23:
        return "invalid", f"hour {m[4]} is not in 00..23"
    if mi > 59:
        return "invalid", f"minute {m[5]} is not in 00..59"
    if s > 60:
        return "invalid", f"second {m[6]} is not in 00..60"
    offset = 0
    if tz not in ("Z", "z"):
        oh, om = int(tz[1:3]), int(tz[4:6])
        if oh > 23 or om > 59:
            return "invalid", f"offset {tz} is out of range (hours 00..23, minutes 00..59)"
        offset = (1 if tz[0] == "+" else -1) * (oh * 3600 + om * 60)
    shift = 400 if y < 400 else 0
    days = date(y + shift, mo, d).toordinal() - date(1970 + shift, 1, 1).toordinal()
    utc = days * 86400 + h * 3600 + mi * 60 + min(s, 59) - offset
    if s == 60:
        day_after, rest = divmod(utc + 1, 86400)
        ordinal = date(1970, 1, 1).toordinal() + day_after
        ordinal += 146097 if ordinal < 1 else -146097 if ordinal > date.max.toordinal() else 0
        if rest or date.fromordinal(ordinal).day != 1:
            return "invalid", "second 60 (a leap second) is only possible at 23:59:60 UTC on the last day of a month"
        utc += 1
    return "ok", utc * 1_000_000_000 + int(frac.ljust(9, "0"))


def _two(lo: int, hi: int) -> st.SearchStrategy[str]:
    return st.integers(lo, hi).map(lambda v: f"{v:02d}")


#: RFC 3339-like texts whose every part may be out of range (or malformed).
rfc3339_texts = st.builds(
    lambda y, mo, d, sep, h, mi, s, frac, tz: f"{y:04d}-{mo}-{d}{sep}{h}:{mi}:{s}{frac}{tz}",
    st.one_of(st.integers(0, 9999), st.sampled_from([0, 1, 1677, 1678, 1970, 2000, 2016, 2100, 2261, 2262, 9999])),
    _two(0, 13), _two(0, 32), st.sampled_from(["T", "t", " ", "_"]),
    st.one_of(_two(0, 25), st.just("23")), st.one_of(_two(0, 61), st.just("59")),
    st.one_of(_two(0, 61), st.just("60"), st.just("59")),
    st.one_of(st.just(""), st.integers(1, 10).flatmap(lambda n: st.text("0123456789", min_size=n, max_size=n)).map(
        lambda f: "." + f)),
    st.one_of(st.sampled_from(["Z", "z", "+00:00", "-00:00", "", "+2:00", "+0200"]),
              st.builds(lambda sign, hh, mm: f"{sign}{hh}:{mm}", st.sampled_from("+-"), _two(0, 25), _two(0, 61))),
)


#: The instants the store holds (int64 nanoseconds less DuckDB's two infinities), written out.
STORE_MIN_NS, STORE_MAX_NS = -9223372036854775806, 9223372036854775806
STORE_RANGE = "1677-09-21T00:12:43.145224194Z to 2262-04-11T23:47:16.854775806Z"


def boundary_texts() -> st.SearchStrategy[str]:
    """RFC 3339 renderings (any offset) of instants within a few seconds of the store's range ends."""
    from datetime import UTC, datetime, timedelta, timezone

    def render(ns: int, minutes: int, zulu: bool) -> str:
        seconds, frac = divmod(ns, 1_000_000_000)
        local = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds, minutes=0 if zulu else minutes)
        zone = "Z" if zulu else local.astimezone(timezone(timedelta(minutes=minutes))).strftime("%z")
        if not zulu:
            zone = f"{zone[:3]}:{zone[3:]}"
        return f"{local:%Y-%m-%dT%H:%M:%S}.{frac:09d}{zone}"

    near = st.one_of(st.integers(STORE_MIN_NS - 3 * 10**9, STORE_MIN_NS + 3 * 10**9),
                     st.integers(STORE_MAX_NS - 3 * 10**9, STORE_MAX_NS + 3 * 10**9),
                     st.sampled_from([STORE_MIN_NS - 2, STORE_MIN_NS - 1, STORE_MIN_NS, STORE_MAX_NS, STORE_MAX_NS + 1]))
    return st.builds(render, near, st.integers(-23 * 60 - 59, 23 * 60 + 59), st.booleans())


# ---------------------------------------------------------------------------- severities
LEVELS = {"DEFAULT": 0, "DEBUG": 100, "INFO": 200, "NOTICE": 300, "WARNING": 400, "ERROR": 500, "CRITICAL": 600,
          "ALERT": 700, "EMERGENCY": 800}
SPELLINGS = {**LEVELS, "WARN": 400, "ERR": 500, "FATAL": 600, "CRIT": 600, "EMERG": 800, "PANIC": 800, "SEVERE": 500,
             "INFORMATION": 200, "INFORMATIONAL": 200, "TRACE": 100, "TRACE_INT": 100, "FINE": 100, "FINER": 100,
             "FINEST": 100, "CONFIG": 100, "VERBOSE": 100, "D": 100, "I": 200, "N": 300, "W": 400, "E": 500,
             "C": 600, "A": 700, "F": 600}
LEVEL_NAME = {v: k for k, v in LEVELS.items()}


def severity_text(value: object) -> str | None:
    """The text a JSON severity value is read as (a number's digits; None for other types)."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def oracle_severity(value: object) -> int | None:
    """LogSeverity level of a JSON severity value by the documented table, None when none applies."""
    text = severity_text(value)
    if text is None:
        return None
    word = text.strip(" \t\r\n")
    if re.fullmatch(r"[0-9]+", word):
        return min(800, int(word) // 100 * 100)
    if re.fullmatch(r"[A-Za-z_]+", word):
        return SPELLINGS.get(word.upper())
    return None


def _random_case(word: str) -> st.SearchStrategy[str]:
    return st.lists(st.booleans(), min_size=len(word), max_size=len(word)).map(
        lambda flips: "".join(c.lower() if f else c for c, f in zip(word, flips, strict=True)))


_pad = st.sampled_from(["", " ", "\t", "\n ", "\r\n", "\u00a0"])
severity_values = st.one_of(
    st.builds(lambda a, w, b: a + w + b, _pad, st.sampled_from(sorted(SPELLINGS)).flatmap(_random_case), _pad),
    st.builds(lambda a, w, b: a + w + b, _pad, st.from_regex(r"[0-9]{1,25}", fullmatch=True), _pad),
    st.integers(-(2**62), 2**62), st.integers(0, 1000),
    st.text(max_size=10), st.floats(allow_nan=False, allow_infinity=False), st.booleans(), st.none(),
    st.sampled_from(["WARNINGS", "ınfo", "E R R", "-100", "+500", "5e2", "0x1F4", ""]),
)


# ---------------------------------------------------------------------------- latencies (Duration)
MAX_DURATION_S = 315_576_000_000


def oracle_latency_ms(value: object) -> float | None:
    """Milliseconds of a JSON latency value: "S[.F]s" (F 1-9 digits) or {"seconds", "nanos"} with
    non-negative integers (numbers or digit strings; a missing or null field is 0); integer
    nanoseconds converted to a double, then divided by 1e6. None for anything else."""
    if isinstance(value, str):
        m = re.fullmatch(r"([0-9]{1,12})(?:\.([0-9]{1,9}))?s", value)
        if not m or int(m[1]) > MAX_DURATION_S:
            return None
        return float(int(m[1]) * 10**9 + int((m[2] or "").ljust(9, "0"))) / 1e6
    if isinstance(value, dict):
        if not set(value) <= {"seconds", "nanos"}:
            return None
        parts = []
        for key, digits in (("seconds", 12), ("nanos", 9)):
            v = value.get(key)
            text = "0" if v is None else severity_text(v)
            if text is None or not re.fullmatch(rf"[0-9]{{1,{digits}}}", text):
                return None
            parts.append(int(text))
        if parts[0] > MAX_DURATION_S:
            return None
        return float(parts[0] * 10**9 + parts[1]) / 1e6
    return None


_digits = st.from_regex(r"[0-9]{1,13}", fullmatch=True)
latency_values = st.one_of(
    st.from_regex(r"-?[0-9]{0,13}(\.[0-9]{0,10})?s?", fullmatch=True),
    st.builds(lambda s, f: f"{s}.{f}s", st.integers(0, MAX_DURATION_S + 2), st.from_regex(r"[0-9]{1,9}", fullmatch=True)),
    st.dictionaries(st.sampled_from(["seconds", "nanos"]),
                    st.one_of(st.integers(-5, 10**13), _digits, st.none(), st.floats(0, 10), st.booleans()), max_size=2),
    st.dictionaries(st.sampled_from(["seconds", "nanos", "other"]), st.integers(0, 10), max_size=3),
    st.text(max_size=8), st.integers(-5, 10**6), st.floats(allow_nan=False, allow_infinity=False), st.none(),
    st.sampled_from(["0s", "0.001115s", "1e3s", " 1s", "1s ", "1.s", ".5s", "NaNs", "infs", "{}", '{"seconds":1}']),
)


# ---------------------------------------------------------------------------- the sample's truth
#: pattern id -> the generator's kinds it must count exactly (seed findings and platform lines)
EXPECTED_KINDS: dict[str, tuple[str, ...]] = {
    "ws-no-token-debug": ("ws_no_token_debug",),
    "ws-auth-failure": ("ws_auth_failure",),
    "ws-rejected-no-jwt": ("ws_rejected_no_jwt",),
    "dependency-validation-failed": ("dependency_validation_failed",),
    "startup-validation-failures-detected": ("startup_failures_header",),
    "golden-path-chat-broken": ("golden_path_chat_broken",),
    "golden-path-jwt-failure": ("golden_path_jwt_failure",),
    "golden-path-other-failure": (),
    "golden-path-business-risk": ("golden_path_business_risk",),
    "startup-validation-bypassed": ("startup_validation_bypassed",),
    "demo-mode-auth-bypass": ("demo_mode_bypass",),
    "request-session-completed": ("session_completed",),
    "db-session-created": ("db_session_created",),
    "thread-creation-working": ("thread_created",),
    "request-session-create-failed": ("session_create_failed",),
    "leaked-session-detected": ("leaked_session",),
    "startup-sequence-failed": ("startup_sequence_failed",),
    "agent-request-completed": ("agent_request_json",),
    "api-agents-not-found": ("req_agents_404",),
    "api-threads-forbidden": ("req_threads_403",),
    "chat-api-server-error": ("req_chat_500",),
    "health-check-ok": ("req_health",),
    "auth-token-issued": ("auth_token_issued",),
    "auth-verify-rejected": ("auth_verify_401",),
    "container-exit": ("container_exit",),
    "gunicorn-worker-boot-failed": ("gunicorn_worker_boot_failed",),
    "malformed-response-503": ("req_malformed_503",),
    "instance-started": ("instance_started",),
    "http-server-error": ("req_chat_500", "req_malformed_503"),
    "secret-jwt-logged": ("secret_leak_jwt",),
    "secret-bearer-token-logged": ("secret_leak_bearer",),
    "secret-google-api-key-logged": ("secret_leak_api_key",),
    "secret-database-password-logged": ("secret_leak_db_url",),
}
