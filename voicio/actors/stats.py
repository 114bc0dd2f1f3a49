"""Counters and timings the actors share, read by the stats log and metrics."""

from __future__ import annotations

import threading
from collections import Counter, deque
from dataclasses import dataclass


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Return the value below which `fraction` of `sorted_values` fall."""
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, round(fraction * (len(sorted_values) - 1)))
    return sorted_values[index]


@dataclass(frozen=True)
class StatsSnapshot:
    """A consistent copy of the counters at one moment."""

    notes_done: int
    notes_failed: int
    failures: dict[str, int]
    p50_seconds: float
    p95_seconds: float
    added_p50_seconds: float
    added_p95_seconds: float
    gemini_requests: int
    gemini_retries: int
    gemini_429: int


class Stats:
    """Thread-safe counters; timings keep the most recent `window` samples."""

    def __init__(self, window: int = 2048) -> None:
        self._lock = threading.Lock()
        self._done = 0
        self._failures: Counter[str] = Counter()
        self._durations: deque[float] = deque(maxlen=window)
        self._added: deque[float] = deque(maxlen=window)
        self._requests = 0
        self._retries = 0
        self._rate_limited = 0
        self._refused = 0

    def note_finished(self, seconds: float, model_seconds: float) -> None:
        """Count a note answered after `seconds`, `model_seconds` of it in Gemini."""
        with self._lock:
            self._done += 1
            self._durations.append(seconds)
            self._added.append(max(0.0, seconds - model_seconds))

    def note_failed(self, reason: str) -> None:
        with self._lock:
            self._failures[reason] += 1

    def model_request(self) -> None:
        with self._lock:
            self._requests += 1

    def model_retry(self) -> None:
        with self._lock:
            self._retries += 1

    def note_model_refusal(self) -> None:
        """Count a job failed without a request (the daily quota is spent)."""
        with self._lock:
            self._refused += 1

    def rate_limited(self) -> None:
        """Count a 429 answer."""
        with self._lock:
            self._rate_limited += 1

    def snapshot(self) -> StatsSnapshot:
        with self._lock:
            durations = sorted(self._durations)
            added = sorted(self._added)
            return StatsSnapshot(
                notes_done=self._done,
                notes_failed=sum(self._failures.values()),
                failures=dict(self._failures),
                p50_seconds=percentile(durations, 0.5),
                p95_seconds=percentile(durations, 0.95),
                added_p50_seconds=percentile(added, 0.5),
                added_p95_seconds=percentile(added, 0.95),
                gemini_requests=self._requests,
                gemini_retries=self._retries,
                gemini_429=self._rate_limited,
            )
