"""--since/--until parsing: durations before now, RFC 3339 / ISO times, clear errors."""

from __future__ import annotations

import calendar
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from oracles import oracle_rfc3339, rfc3339_texts

from logaudit.core.errors import UsageError
from logaudit.core.timeparse import (
    TimestampError,
    format_ns,
    format_rfc3339,
    parse_duration,
    parse_rfc3339_ns,
    parse_time,
    parse_window,
    to_ns,
)

pytestmark = pytest.mark.timezone  # times must be UTC in any local zone (tests/test_timezones.py)

NOW = datetime(2025, 9, 9, 18, 0, 0, tzinfo=UTC)
UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


@pytest.mark.parametrize(("text", "expected"), [
    ("30m", datetime(2025, 9, 9, 17, 30, tzinfo=UTC)),
    ("6h", datetime(2025, 9, 9, 12, 0, tzinfo=UTC)),
    ("2d", datetime(2025, 9, 7, 18, 0, tzinfo=UTC)),
    ("1w", datetime(2025, 9, 2, 18, 0, tzinfo=UTC)),
    ("45s", datetime(2025, 9, 9, 17, 59, 15, tzinfo=UTC)),
    ("1h30m", datetime(2025, 9, 9, 16, 30, tzinfo=UTC)),
    (" 6h ", datetime(2025, 9, 9, 12, 0, tzinfo=UTC)),
    ("now", NOW),
    ("NOW", NOW),
    ("2025-09-09", datetime(2025, 9, 9, tzinfo=UTC)),
    ("2025-09-09T18:00:00Z", datetime(2025, 9, 9, 18, tzinfo=UTC)),
    ("2025-09-09t18:00:00z", datetime(2025, 9, 9, 18, tzinfo=UTC)),
    ("2025-09-09 18:00", datetime(2025, 9, 9, 18, tzinfo=UTC)),
    ("2025-09-09T18:00", datetime(2025, 9, 9, 18, tzinfo=UTC)),
    ("2025-09-09T20:30:00+02:00", datetime(2025, 9, 9, 18, 30, tzinfo=UTC)),
    ("2025-09-09T20:30:00+0200", datetime(2025, 9, 9, 18, 30, tzinfo=UTC)),
    ("2025-09-09T13:00:00-05:00", datetime(2025, 9, 9, 18, tzinfo=UTC)),
    ("2025-09-09T18:00:00.5Z", datetime(2025, 9, 9, 18, 0, 0, 500000, tzinfo=UTC)),
    ("2025-09-09T18:00:00.123456789Z", datetime(2025, 9, 9, 18, 0, 0, 123456, tzinfo=UTC)),
    ("2025-09-09T18:00:00,25Z", datetime(2025, 9, 9, 18, 0, 0, 250000, tzinfo=UTC)),
    ("2025-09-09T18:00:00", datetime(2025, 9, 9, 18, tzinfo=UTC)),
])
def test_accepted_forms(text, expected):
    got = parse_time(text, now=NOW)
    assert got == expected
    assert got.tzinfo is UTC


@pytest.mark.parametrize(("text", "message"), [
    ("6x", "--since '6x': not a time"),
    ("", "--since '': not a time"),
    ("yesterday", "--since 'yesterday': not a time"),
    ("0h", "--since '0h': duration must be greater than zero"),
    ("6 h", "--since '6 h': not a time"),
    ("-6h", "--since '-6h': not a time"),
    ("1.5h", "--since '1.5h': not a time"),
    ("2025-13-01", "--since '2025-13-01': not a valid time (month 13 is not in 01..12)"),
    ("2025-09-09T25:00:00Z", "--since '2025-09-09T25:00:00Z': not a valid time (hour 25 is not in 00..23)"),
    ("2025-09-09T18:00:00+24:00", "--since '2025-09-09T18:00:00+24:00': not a valid time (offset +24:00 is out of range (hours 00..23, minutes 00..59))"),
    ("2025-09-09+02:00", "--since '2025-09-09+02:00': not a time"),
    ("1757440800", "--since '1757440800': not a time"),
])
def test_rejected_forms_name_the_option(text, message):
    with pytest.raises(UsageError) as info:
        parse_time(text, now=NOW, name="--since")
    assert info.value.message == message
    assert info.value.exit_code == 64  # bad usage


def test_hint_lists_the_accepted_forms():
    with pytest.raises(UsageError) as info:
        parse_time("tomorrow", name="--until")
    assert str(info.value) == (
        "--until 'tomorrow': not a time\n"
        "  hint: expected a duration before now like 30m, 6h, 2d, 1w (or `now`), "
        "or a time like 2025-09-09T18:00:00Z / 2025-09-09"
    )


def test_window_must_be_ordered():
    assert parse_window("6h", "1h", now=NOW) == (datetime(2025, 9, 9, 12, tzinfo=UTC), datetime(2025, 9, 9, 17, tzinfo=UTC))
    assert parse_window(None, None, now=NOW, default_since="1d") == (datetime(2025, 9, 8, 18, tzinfo=UTC), None)
    with pytest.raises(UsageError) as info:
        parse_window("1h", "6h", now=NOW)
    assert info.value.message == "--since 2025-09-09T17:00:00Z is not before --until 2025-09-09T12:00:00Z"


def test_now_must_be_aware():
    with pytest.raises(UsageError):
        parse_time("6h", now=datetime(2025, 9, 9))


def test_formatting():
    assert format_rfc3339(datetime(2025, 9, 9, 18, tzinfo=UTC)) == "2025-09-09T18:00:00Z"
    assert format_rfc3339(datetime(2025, 9, 9, 18, 0, 0, 120000, tzinfo=UTC)) == "2025-09-09T18:00:00.120Z"
    assert format_rfc3339(datetime(2025, 9, 9, 20, 0, 0, 1, tzinfo=timezone(timedelta(hours=2)))) == "2025-09-09T18:00:00.000001Z"
    assert format_ns(1_757_440_800_123_456_789) == "2025-09-09T18:00:00.123456789Z"
    assert format_ns(1_757_440_800_120_000_000) == "2025-09-09T18:00:00.120Z"
    assert format_ns(1_757_440_800_000_001_000) == "2025-09-09T18:00:00.000001Z"
    assert parse_rfc3339_ns("2025-09-09T18:00:00.123456789Z") == 1_757_440_800_123_456_789
    assert parse_rfc3339_ns("2025-09-09T20:00:00.1+02:00") == 1_757_440_800_100_000_000
    for bad in ("2025-09-09", "2025-09-09T18:00:00", "2025-02-30T00:00:00Z"):
        with pytest.raises(ValueError):
            parse_rfc3339_ns(bad)


# ---------------------------------------------------------------------------- properties
instants = st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(9998, 12, 31), timezones=st.just(UTC))
offsets = st.integers(min_value=-23 * 60 - 59, max_value=23 * 60 + 59).map(lambda m: timezone(timedelta(minutes=m)))


@given(instants, offsets, st.sampled_from(["T", "t", " "]), st.integers(0, 9), st.booleans())
def test_any_rfc3339_rendering_parses_to_the_same_instant(instant, offset, sep, digits, colon):
    local = instant.astimezone(offset)
    frac = f"{local.microsecond:06d}{'000'}"[:digits]
    off = local.strftime("%z")
    off = "Z" if offset.utcoffset(None) == timedelta(0) and colon else (f"{off[:3]}:{off[3:]}" if colon else off)
    text = f"{local:%Y-%m-%d}{sep}{local:%H:%M:%S}" + (f".{frac}" if digits else "") + off
    expected = instant.replace(microsecond=int(frac.ljust(6, "0")[:6]) if digits else 0)
    assert parse_time(text) == expected


@given(st.lists(st.tuples(st.integers(0, 10_000), st.sampled_from("smhdw")), min_size=1, max_size=4))
def test_durations_add_up(parts):
    text = "".join(f"{n}{u}" for n, u in parts)
    seconds = sum(n * UNIT_SECONDS[u] for n, u in parts)
    if seconds == 0:
        with pytest.raises(UsageError):
            parse_duration(text)
    else:
        assert parse_duration(text) == timedelta(seconds=seconds)
        assert parse_time(text, now=NOW) == NOW - timedelta(seconds=seconds)


@given(st.text(max_size=40))
def test_anything_else_is_a_usage_error_or_an_aware_utc_time(text):
    try:
        value = parse_time(text, now=NOW)
    except UsageError as err:
        assert err.exit_code == 64
        assert repr(text) in err.message
    else:
        assert value.tzinfo is UTC


@given(instants)
def test_format_and_parse_round_trip(instant):
    assert parse_time(format_rfc3339(instant)) == instant
    assert parse_rfc3339_ns(format_ns(to_ns(instant))) == to_ns(instant)


@given(st.integers(min_value=0, max_value=253_402_300_799_999_999_999))
def test_nanosecond_round_trip(ns):
    assert parse_rfc3339_ns(format_ns(ns)) == ns


@given(st.datetimes(timezones=st.just(UTC)) | st.datetimes(min_value=datetime(2, 1, 1), max_value=datetime(9998, 1, 1),
                                                         timezones=offsets))
def test_micro_fraction_is_isoformat_in_utc(value):
    # the form the store's records and reports always had (`isoformat` with Z)
    assert format_rfc3339(value, fraction="micro") == value.astimezone(UTC).isoformat().replace("+00:00", "Z")


@given(st.integers(min_value=-(2**63) + 1, max_value=2**63 - 1))
def test_micro_fraction_of_nanoseconds_is_pandas_isoformat(ns):
    import pandas as pd

    assert format_ns(ns, fraction="micro") == pd.Timestamp(ns, tz="UTC").isoformat().replace("+00:00", "Z")


@given(st.integers(min_value=0, max_value=253_402_300_799_999_999_999))
def test_short_fraction_has_0_3_6_or_9_digits_and_no_zero_group(ns):
    text = format_ns(ns)
    frac = text[20:-1] if text[19] == "." else ""
    assert len(frac) in (0, 3, 6, 9)
    assert not frac.endswith("000")
    assert format_ns(ns, fraction="micro").startswith(text[:-1])


def test_naive_datetimes_are_utc_and_unknown_fractions_are_refused():
    assert format_rfc3339(datetime(2025, 9, 9, 18, 0, 0, 5000)) == "2025-09-09T18:00:00.005Z"
    assert format_rfc3339(datetime(2025, 9, 9, 18, 0, 0, 5000), fraction="micro") == "2025-09-09T18:00:00.005000Z"
    with pytest.raises(ValueError, match="fraction must be 'short' or 'micro', not 'nano'"):
        format_ns(1, fraction="nano")


@given(st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=offsets))
def test_to_ns_is_exact(value):
    utc = value.astimezone(UTC)
    seconds = calendar.timegm(utc.timetuple())
    assert to_ns(value) == seconds * 1_000_000_000 + utc.microsecond * 1000


# ---------------------------------------------------------------------------- strict RFC 3339 checks
@pytest.mark.parametrize(("text", "detail"), [
    ("2025-09-10T24:00:00Z", "hour 24 is not in 00..23"),
    ("2025-09-10T02:18:34+99:99", "offset +99:99 is out of range (hours 00..23, minutes 00..59)"),
    ("2025-09-10T02:18:34+24:00", "offset +24:00 is out of range (hours 00..23, minutes 00..59)"),
    ("2025-09-10T02:18:34-05:60", "offset -05:60 is out of range (hours 00..23, minutes 00..59)"),
    ("2025-09-10T02:60:00Z", "minute 60 is not in 00..59"),
    ("2025-09-10T02:18:61Z", "second 61 is not in 00..60"),
    ("2025-13-10T02:18:34Z", "month 13 is not in 01..12"),
    ("2025-00-10T02:18:34Z", "month 00 is not in 01..12"),
    ("2025-02-29T02:18:34Z", "day 29 is not in 01..28 for 2025-02"),
    ("2025-09-00T02:18:34Z", "day 00 is not in 01..30 for 2025-09"),
    ("2025-09-10T23:59:60Z", "second 60 (a leap second) is only possible at 23:59:60 UTC on the last day of a month"),
    ("2016-12-31T22:59:60Z", "second 60 (a leap second) is only possible at 23:59:60 UTC on the last day of a month"),
    ("2016-12-31T23:59:60+01:00", "second 60 (a leap second) is only possible at 23:59:60 UTC on the last day of a month"),
])
def test_rfc3339_rejects_say_which_part_is_wrong(text, detail):
    with pytest.raises(TimestampError) as info:
        parse_rfc3339_ns(text)
    assert info.value.detail == detail
    assert str(info.value) == f"{text!r} is not a valid time: {detail}"
    with pytest.raises(UsageError) as usage:
        parse_time(text, name="--until")
    assert usage.value.message == f"--until {text!r}: not a valid time ({detail})"


@pytest.mark.parametrize(("text", "expected"), [
    # a leap second is the instant after 23:59:59 UTC, as POSIX time counts it; the fraction is kept
    ("2016-12-31T23:59:60Z", "2017-01-01T00:00:00Z"),
    ("2016-12-31T23:59:60.5Z", "2017-01-01T00:00:00.500Z"),
    ("2015-06-30T23:59:60.123456789Z", "2015-07-01T00:00:00.123456789Z"),
    ("2017-01-01T00:59:60+01:00", "2017-01-01T00:00:00Z"),
    ("2016-12-31T18:59:60-05:00", "2017-01-01T00:00:00Z"),
    ("2025-04-30T23:59:60Z", "2025-05-01T00:00:00Z"),
    ("0000-02-29T00:00:00Z", "0000-02-29T00:00:00Z"),  # year 0 is a leap year (proleptic Gregorian)
    ("2000-02-29T00:00:00Z", "2000-02-29T00:00:00Z"),
])
def test_leap_seconds_and_leap_days(text, expected):
    expected_ns = parse_rfc3339_ns(expected)
    assert parse_rfc3339_ns(text) == expected_ns
    if not text.startswith("0000"):
        assert to_ns(parse_time(text)) == expected_ns // 1000 * 1000


def test_shape_errors_have_no_detail():
    for text in ("2025-09-10T02:18:34", "2025-09-10 02:18:34.1234567891Z", "2025-09-10T2:18:34Z", "x"):
        with pytest.raises(TimestampError) as info:
            parse_rfc3339_ns(text)
        assert info.value.detail is None
        assert str(info.value) == f"not an RFC 3339 timestamp: {text!r}"


@pytest.mark.slow
@settings(max_examples=1500, deadline=None)
@given(rfc3339_texts)
def test_parse_rfc3339_ns_agrees_with_an_independent_reading(text):
    kind, value = oracle_rfc3339(text)
    if kind == "ok":
        assert parse_rfc3339_ns(text) == value
        return
    with pytest.raises(TimestampError) as info:
        parse_rfc3339_ns(text)
    assert info.value.detail == value


@pytest.mark.slow
@settings(max_examples=1000, deadline=None)
@given(rfc3339_texts)
def test_parse_time_agrees_with_an_independent_reading(text):
    """--since/--until take the same times (to the microsecond), and refuse the same ones."""
    kind, value = oracle_rfc3339(text)
    if kind == "shape":
        return  # parse_time takes more shapes (no seconds, no offset, +hhmm): see test_accepted_forms
    if kind == "invalid":
        with pytest.raises(UsageError) as info:
            parse_time(text, name="--since")
        assert info.value.message == f"--since {text!r}: not a valid time ({value})"
        return
    assert isinstance(value, int)
    seconds, ns = divmod(value, 1_000_000_000)
    if not -62135596800 <= seconds <= 253402300799:  # beyond datetime's years 1-9999
        with pytest.raises(UsageError) as info:
            parse_time(text, name="--since")
        assert info.value.message == f"--since {text!r}: not a valid time (date value out of range)"
        return
    expected = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds, microseconds=ns // 1000)
    assert parse_time(text) == expected


def test_bounds_beyond_what_a_store_holds_select_the_same_entries():
    """The fuzz test's export window started at 1677-09-21T00:12:43Z, before the first
    nanosecond a store holds: DuckDB failed converting it ("Could not convert Timestamp")."""
    assert parse_window("1677-09-21T00:12:43Z", "2262-04-12T00:00:00Z") == (None, None)
    assert parse_window("1000-01-01T00:00:00Z", "2025-01-01T00:00:00Z") == \
        (None, datetime(2025, 1, 1, tzinfo=UTC))
    assert parse_window("1677-09-21T00:12:44Z", None) == (datetime(1677, 9, 21, 0, 12, 44, tzinfo=UTC), None)


@pytest.mark.parametrize(("since", "until", "message"), [
    (None, "1677-09-21T00:12:43Z", "--until 1677-09-21T00:12:43Z is before the first time a store can hold "
                                   "(1677-09-21T00:12:43.145224194Z)"),
    ("2262-04-12T00:00:00Z", None, "--since 2262-04-12T00:00:00Z is after the last time a store can hold "
                                   "(2262-04-11T23:47:16.854775806Z)"),
])
def test_a_window_no_entry_can_be_in_is_a_usage_error(since, until, message):
    with pytest.raises(UsageError) as err:
        parse_window(since, until)
    assert err.value.message == message
