"""--since/--until parsing: durations before now, RFC 3339 / ISO times, clear errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from logaudit.errors import UsageError
from logaudit.timeparse import (
    format_ns,
    format_rfc3339,
    parse_duration,
    parse_rfc3339_ns,
    parse_time,
    parse_window,
    to_ns,
)

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
    ("2025-13-01", "--since '2025-13-01': not a valid time (month must be in 1..12)"),
    ("2025-09-09T25:00:00Z", "--since '2025-09-09T25:00:00Z': not a valid time (hour must be in 0..23)"),
    ("2025-09-09T18:00:00+24:00", "--since '2025-09-09T18:00:00+24:00': not a valid time (offset +24:00 out of range)"),
    ("2025-09-09+02:00", "--since '2025-09-09+02:00': not a time"),
    ("1757440800", "--since '1757440800': not a time"),
])
def test_rejected_forms_name_the_option(text, message):
    with pytest.raises(UsageError) as info:
        parse_time(text, now=NOW, name="--since")
    assert info.value.message == message
    assert info.value.exit_code == 2


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
        assert err.exit_code == 2
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
