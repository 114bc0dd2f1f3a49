"""When Gemini's daily quotas come back."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

_PACIFIC = ZoneInfo("America/Los_Angeles")


def hours_until_quota_reset(now: datetime | None = None) -> int:
    """Return whole hours (at least 1) until midnight Pacific time, when
    per-day quotas reset."""
    local = (now or datetime.now(UTC)).astimezone(_PACIFIC)
    midnight = datetime.combine(local.date() + timedelta(days=1), datetime.min.time())
    reset = midnight.replace(tzinfo=_PACIFIC)
    return max(1, math.ceil((reset - local).total_seconds() / 3600))
