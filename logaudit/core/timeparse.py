"""Parse the times people type: `--since 6h`, `--until 2025-09-09T18:00:00+02:00`.

Two forms are accepted:

* a **duration before now**: an integer and a unit, `s` (seconds), `m` (minutes), `h` (hours),
  `d` (days) or `w` (weeks), optionally several in a row (`1h30m`, `1d12h`); `now` is now;
* a **point in time**: an RFC 3339 / ISO 8601 date-time such as `2025-09-09T18:00:00Z`,
  `2025-09-09T18:00:00.123456789+02:00`, `2025-09-09 18:00`, or a date `2025-09-09` (midnight UTC).
  A date-time without an offset is taken as UTC. Fractions finer than a microsecond are truncated.

Times are checked strictly, here and for the timestamps of log entries (`parse_rfc3339_ns`, and
`logaudit.store.normalize` which applies the same rules): month 01-12, a day that exists in that month,
hour 00-23 (`24:00:00` is refused), minute 00-59, second 00-59, offset within +-23:59 (minutes
00-59). Second 60 is a leap second: it is accepted only where one can occur, at 23:59:60 UTC on
the last day of a month, and read as POSIX time does, as the instant that follows 23:59:59 (the
first instant of the next day; the fraction is kept). Each refusal says which part is wrong.

Every result is an aware `datetime` in UTC. Anything else raises `UsageError` with a message
naming the option and the accepted forms.

>>> from datetime import UTC, datetime
>>> now = datetime(2025, 9, 9, 18, 0, tzinfo=UTC)
>>> parse_time("6h", now=now).isoformat()
'2025-09-09T12:00:00+00:00'
>>> parse_time("2025-09-09T20:30:00+02:00").isoformat()
'2025-09-09T18:30:00+00:00'
>>> format_rfc3339(parse_time("2025-09-09"))
'2025-09-09T00:00:00Z'
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from logaudit.core.errors import UsageError

UNITS: dict[str, timedelta] = {
    "s": timedelta(seconds=1),
    "m": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
    "w": timedelta(weeks=1),
}

_DURATION = re.compile(r"(?:\d+[smhdw])+", re.ASCII)
_PART = re.compile(r"(\d+)([smhdw])", re.ASCII)
_DATETIME = re.compile(
    r"(?P<y>\d{4})-(?P<mo>\d{2})-(?P<d>\d{2})"
    r"(?:[Tt ](?P<h>\d{2}):(?P<mi>\d{2})(?::(?P<s>\d{2})(?:[.,](?P<f>\d{1,9}))?)?"
    r"(?P<tz>[Zz]|[+-]\d{2}:?\d{2})?)?",
    re.ASCII,
)
_RFC3339_STRICT = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:\d{2})", re.ASCII
)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

FORMS = "a duration before now like 30m, 6h, 2d, 1w (or `now`), or a time like 2025-09-09T18:00:00Z / 2025-09-09"


def parse_duration(text: str, *, name: str = "duration") -> timedelta:
    """`30m`, `6h`, `2d`, `1w`, `1h30m` -> timedelta (positive). Raises UsageError."""
    raw = text.strip()
    if not _DURATION.fullmatch(raw):
        raise UsageError(f"{name} {text!r}: not a duration", hint="expected an integer and a unit s, m, h, d or w, e.g. 30m, 6h, 2d, 1w, 1h30m")
    try:
        total = sum((int(n) * UNITS[u] for n, u in _PART.findall(raw)), timedelta())
    except OverflowError as err:
        raise UsageError(f"{name} {text!r}: duration too large") from err
    if total <= timedelta(0):
        raise UsageError(f"{name} {text!r}: duration must be greater than zero")
    return total


class TimestampError(ValueError):
    """A text that is not an RFC 3339 time. `detail` says which part is wrong; it is None when
    the text does not have the shape of one at all."""

    def __init__(self, text: str, detail: str | None = None) -> None:
        self.text, self.detail = text, detail
        super().__init__(f"not an RFC 3339 timestamp: {text!r}" if detail is None
                         else f"{text!r} is not a valid time: {detail}")


def days_in_month(year: int, month: int) -> int:
    """Days in a month of the proleptic Gregorian calendar (year 0 is a leap year)."""
    if month == 2:
        return 29 if year % 4 == 0 and (year % 100 != 0 or year % 400 == 0) else 28
    return 30 if month in (4, 6, 9, 11) else 31


def _days_from_civil(year: int, month: int, day: int) -> int:
    """Days from 1970-01-01 to a proleptic Gregorian date (any year, including 0)."""
    year -= month <= 2
    era = year // 400
    yoe = year - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    return era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468


def _offset_seconds(tz: str | None) -> int:
    """`Z`, `+hh:mm`, `-hhmm` (or None: UTC) -> seconds east of UTC; raises ValueError(detail)."""
    if tz is None or tz in ("Z", "z"):
        return 0
    digits = tz[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:])
    if hours > 23 or minutes > 59:
        raise ValueError(f"offset {tz} is out of range (hours 00..23, minutes 00..59)")
    return (-1 if tz[0] == "-" else 1) * (hours * 3600 + minutes * 60)


def utc_seconds(year: int, month: int, day: int, hour: int, minute: int, second: int, tz: str | None) -> int:
    """Seconds since the Unix epoch of a local date-time with offset `tz`, after the strict checks
    (see the module docstring); raises ValueError with the part that is wrong.

    >>> utc_seconds(2016, 12, 31, 23, 59, 60, "Z") == utc_seconds(2017, 1, 1, 0, 0, 0, "Z")
    True
    """
    if not 1 <= month <= 12:
        raise ValueError(f"month {month:02d} is not in 01..12")
    last = days_in_month(year, month)
    if not 1 <= day <= last:
        raise ValueError(f"day {day:02d} is not in 01..{last} for {year:04d}-{month:02d}")
    if hour > 23:
        raise ValueError(f"hour {hour:02d} is not in 00..23")
    if minute > 59:
        raise ValueError(f"minute {minute:02d} is not in 00..59")
    if second > 60:
        raise ValueError(f"second {second:02d} is not in 00..60")
    base = _days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + min(second, 59)
    base -= _offset_seconds(tz)
    if second == 60:
        day_after, rest = divmod(base + 1, 86400)
        if rest or _civil_day(day_after) != 1:
            raise ValueError("second 60 (a leap second) is only possible at 23:59:60 UTC on the last day of a month")
        return base + 1
    return base


def _civil_day(days: int) -> int:
    """Day of the month of the date `days` after 1970-01-01 (the inverse of `_days_from_civil`)."""
    doe = (days + 719468) % 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    return doy - (153 * ((5 * doy + 2) // 153) + 2) // 5 + 1


def parse_time(text: str, *, now: datetime | None = None, name: str = "time") -> datetime:
    """A duration before `now` (default: the current time) or an absolute time -> aware UTC datetime."""
    if not isinstance(text, str):
        raise UsageError(f"{name}: expected text, got {type(text).__name__}")
    raw = text.strip()
    if raw.lower() == "now" or _DURATION.fullmatch(raw):
        base = now if now is not None else datetime.now(UTC)
        if base.tzinfo is None:
            raise UsageError(f"{name}: `now` must be timezone-aware")
        if raw.lower() == "now":
            return base.astimezone(UTC)
        delta = parse_duration(raw, name=name)
        try:
            return (base - delta).astimezone(UTC)
        except OverflowError as err:
            raise UsageError(f"{name} {text!r}: reaches before year 1") from err
    m = _DATETIME.fullmatch(raw)
    if not m:
        raise UsageError(f"{name} {text!r}: not a time", hint=f"expected {FORMS}")
    try:
        seconds = utc_seconds(int(m["y"]), int(m["mo"]), int(m["d"]), int(m["h"] or 0), int(m["mi"] or 0),
                              int(m["s"] or 0), m["tz"])
        micro = int((m["f"] or "0").ljust(9, "0")[:6])
        return _EPOCH + timedelta(seconds=seconds, microseconds=micro)
    except (ValueError, OverflowError) as err:
        raise UsageError(f"{name} {text!r}: not a valid time ({err})", hint=f"expected {FORMS}") from err


#: The first and last instants a store holds (`schema.MIN_TIMESTAMP_NS` / `MAX_TIMESTAMP_NS`,
#: repeated here so that this module needs nothing but the standard library).
_STORE_FIRST = datetime(1677, 9, 21, 0, 12, 43, 145224, tzinfo=UTC)  # .145224194
_STORE_LAST = datetime(2262, 4, 11, 23, 47, 16, 854775, tzinfo=UTC)  # .854775806


def clamp_window(lo: datetime | None, hi: datetime | None) -> tuple[datetime | None, datetime | None]:
    """A window's bounds as a store can compare them, same entries selected: a start before the
    first instant a store holds is no start, an end after the last is no end. A start after the
    last instant or an end before the first is a UsageError (no entry can be there).

    >>> clamp_window(datetime(1000, 1, 1, tzinfo=UTC), datetime(3000, 1, 1, tzinfo=UTC))
    (None, None)
    """
    if lo is not None and lo > _STORE_LAST:
        raise UsageError(f"--since {format_rfc3339(lo)} is after the last time a store can hold "
                         "(2262-04-11T23:47:16.854775806Z)")
    if hi is not None and hi <= _STORE_FIRST:
        raise UsageError(f"--until {format_rfc3339(hi)} is before the first time a store can hold "
                         "(1677-09-21T00:12:43.145224194Z)")
    if lo is not None and lo <= _STORE_FIRST:
        lo = None
    if hi is not None and hi > _STORE_LAST:
        hi = None
    return lo, hi


def parse_window(since: str | None, until: str | None, *, now: datetime | None = None,
                 default_since: str | None = None) -> tuple[datetime | None, datetime | None]:
    """Parse `--since/--until` against one `now`; check since < until. Either may be None."""
    now = now if now is not None else datetime.now(UTC)
    if since is None:
        since = default_since
    lo = parse_time(since, now=now, name="--since") if since is not None else None
    hi = parse_time(until, now=now, name="--until") if until is not None else None
    if lo is not None and hi is not None and lo >= hi:
        raise UsageError(f"--since {format_rfc3339(lo)} is not before --until {format_rfc3339(hi)}",
                         hint="the window is [since, until): since must be earlier")
    return clamp_window(lo, hi)


def format_rfc3339(value: datetime, *, fraction: str = "short") -> str:
    """Aware datetime (naive: taken as UTC) -> RFC 3339 UTC text, the one formatter of logaudit.

    `fraction` says how a non-zero fraction is written: "short" (default) with 3 or 6 digits,
    "micro" always with 6 (Python's `isoformat`, the form of the store's JSON and reports:
    ingest and pull records, a store's first/last). A whole second has no fraction in both.

    >>> t = datetime(2025, 9, 9, 18, 0, 0, 123000, tzinfo=UTC)
    >>> format_rfc3339(t), format_rfc3339(t, fraction="micro"), format_rfc3339(t.replace(microsecond=0))
    ('2025-09-09T18:00:00.123Z', '2025-09-09T18:00:00.123000Z', '2025-09-09T18:00:00Z')
    """
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    value = value.astimezone(UTC)
    return _seconds_text(value) + _fraction(value.microsecond * 1000, fraction) + "Z"


def to_ns(value: datetime) -> int:
    """Aware datetime -> integer nanoseconds since the Unix epoch (exact)."""
    delta = value.astimezone(UTC) - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


def format_ns(ns: int, *, fraction: str = "short") -> str:
    """Epoch nanoseconds -> RFC 3339 UTC text: "short" (default) with 0, 3, 6 or 9 fraction digits, as
    the Logging API writes them; "micro" with 0, 6 or 9 (see `format_rfc3339`).

    >>> format_ns(1_500_000_000), format_ns(1_500_000_000, fraction="micro"), format_ns(1)
    ('1970-01-01T00:00:01.500Z', '1970-01-01T00:00:01.500000Z', '1970-01-01T00:00:00.000000001Z')
    """
    seconds, frac = divmod(ns, 1_000_000_000)
    return _seconds_text(_EPOCH + timedelta(seconds=seconds)) + _fraction(frac, fraction) + "Z"


def _fraction(nanos: int, form: str) -> str:
    """`.ddd` for a fraction of a second in nanoseconds: no text for 0; "short" drops trailing
    zero groups of three (3, 6 or 9 digits), "micro" only a zero nanosecond group (6 or 9)."""
    if form not in ("short", "micro"):
        raise ValueError(f"fraction must be 'short' or 'micro', not {form!r}")
    if not nanos:
        return ""
    digits = f"{nanos:09d}"
    for size in ((3, 6) if form == "short" else (6,)):
        if digits[size:] == "0" * (9 - size):
            return "." + digits[:size]
    return "." + digits


def parse_rfc3339_ns(text: str) -> int:
    """An RFC 3339 timestamp as the Logging API writes it -> epoch nanoseconds, exactly.

    The checks of the module docstring apply (years 0000-9999; whether the instant fits a
    store's 64-bit nanoseconds is for the caller to check). Raises TimestampError (a ValueError)
    saying what is wrong.

    >>> parse_rfc3339_ns("1970-01-01T00:00:01.5Z"), parse_rfc3339_ns("1970-01-01T01:00:00.000000001+01:00")
    (1500000000, 1)
    >>> parse_rfc3339_ns("2025-09-10T24:00:00Z")
    Traceback (most recent call last):
    ...
    logaudit.core.timeparse.TimestampError: '2025-09-10T24:00:00Z' is not a valid time: hour 24 is not in 00..23
    """
    m = _RFC3339_STRICT.fullmatch(text) if isinstance(text, str) else None
    if not m:
        raise TimestampError(str(text))
    y, mo, d, h, mi, s, frac, tz = m.groups()
    try:
        seconds = utc_seconds(int(y), int(mo), int(d), int(h), int(mi), int(s), tz)
    except ValueError as err:
        raise TimestampError(text, str(err)) from None
    return seconds * 1_000_000_000 + int((frac or "").ljust(9, "0"))


def _seconds_text(v: datetime) -> str:
    return f"{v.year:04d}-{v.month:02d}-{v.day:02d}T{v.hour:02d}:{v.minute:02d}:{v.second:02d}"


__all__ = ["FORMS", "UNITS", "TimestampError", "days_in_month", "format_ns", "format_rfc3339", "parse_duration",
           "parse_rfc3339_ns", "parse_time", "parse_window", "to_ns", "utc_seconds"]
