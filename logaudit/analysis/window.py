"""Query windows: `since <= timestamp < until`, with exact service and revision filters.

Times are RFC 3339 / ISO dates (any offset) or durations before now (`30m`, `6h`, `2d`);
datetimes must be timezone-aware.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from logaudit.core.errors import UsageError
from logaudit.core.timeparse import clamp_window, format_rfc3339, parse_time

# A path segment that is an id: a UUID, 8+ hex characters, or a number (same rule as the sample generator).
_ID_SEGMENT = r"^(?:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|[0-9a-fA-F]{8,}|[0-9]+)$"


@dataclass(frozen=True)
class Window:
    """A resolved query window: aware UTC datetimes (or None = unbounded) and exact filters."""

    since: datetime | None = None
    until: datetime | None = None
    service: str | None = None
    revision: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "since": format_rfc3339(self.since) if self.since else None,
            "until": format_rfc3339(self.until) if self.until else None,
            "service": self.service,
            "revision": self.revision,
        }


def resolve_window(since: str | datetime | None = None, until: str | datetime | None = None,
                   service: str | None = None, revision: str | None = None,
                   *, now: datetime | None = None, clamp: bool = True) -> Window:
    """Turn user input (durations, RFC 3339 text, aware datetimes) into a `Window`; bounds beyond
    what a store holds are clamped (`timeparse.clamp_window`) unless `clamp=False`."""
    now = now or datetime.now(UTC)

    def one(value: str | datetime | None, name: str) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, datetime):
            if value.tzinfo is None:
                raise UsageError(f"{name}: a datetime must be timezone-aware", hint="use datetime(..., tzinfo=UTC)")
            return value.astimezone(UTC)
        if isinstance(value, pd.Timestamp):
            return one(value.to_pydatetime(), name)
        return parse_time(str(value), now=now, name=name)

    lo, hi = one(since, "--since"), one(until, "--until")
    if lo is not None and hi is not None and lo >= hi:
        raise UsageError(f"--since {format_rfc3339(lo)} is not before --until {format_rfc3339(hi)}")
    return Window(*(clamp_window(lo, hi) if clamp else (lo, hi)), service, revision)




ID_SEGMENT_RE = re.compile(_ID_SEGMENT)


def normalize_path(path: str | None) -> str | None:
    """`/api/threads/8f3a2b1c-1234-4abc-9def-0123456789ab/messages` -> `/api/threads/{id}/messages`."""
    if path is None:
        return None
    return "/".join("{id}" if ID_SEGMENT_RE.match(seg) else seg for seg in path.split("/"))



def iso(value: Any) -> str | None:
    """RFC 3339 UTC text for timestamps (nanoseconds kept when present)."""
    if value is None or (isinstance(value, float) and value != value) or value is pd.NaT:
        return None
    ts = pd.Timestamp(value)
    if pd.isna(ts):
        return None
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    text = ts.isoformat()
    return re.sub(r"\+00:00$", "Z", text)
