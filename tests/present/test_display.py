"""Display helpers shared by the renderers."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from logaudit.core.timeparse import format_rfc3339
from logaudit.present.display import short_time


def test_short_time_cuts_to_whole_seconds():
    assert short_time("2025-09-10T02:18:34.619410Z") == "2025-09-10 02:18:34Z"
    assert short_time("2025-09-10T02:18:34Z") == "2025-09-10 02:18:34Z"
    assert (short_time(None), short_time("")) == ("-", "-")


@given(st.datetimes(min_value=datetime(1000, 1, 1), timezones=st.just(UTC)), st.sampled_from(["short", "micro"]))
def test_short_time_is_the_full_form_without_its_fraction(value, fraction):
    assert short_time(format_rfc3339(value, fraction=fraction)) == format_rfc3339(value.replace(microsecond=0)).replace("T", " ")
