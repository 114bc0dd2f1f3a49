"""Counters and timings the actors share: for the stats log line and /metrics.

Every counter is kept twice: as a Prometheus metric (on this Stats' own
registry) and in a window of recent samples for the p50/p95 the log line
shows. Gauges (live actors, mailboxes, the pool) are read from the
Supervisor when Prometheus asks (see `SnapshotCollector`).
"""

from __future__ import annotations

import threading
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client import Counter as PromCounter
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from voicio.domain import Usage
from voicio.model.pricing import estimate_cost

_SECONDS_BUCKETS = (0.25, 0.5, 1, 2, 3, 5, 8, 13, 21, 34, 60, 120, 300, 900)


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
    gemini_requests: int
    gemini_retries: int
    gemini_429: int


class Stats:
    """Thread-safe counters; timings keep the most recent `window` samples."""

    def __init__(self, window: int = 2048) -> None:
        self.registry = CollectorRegistry()
        self._lock = threading.Lock()
        self._done = 0
        self._failures: Counter[str] = Counter()
        self._durations: deque[float] = deque(maxlen=window)
        self._requests = 0
        self._retries = 0
        self._rate_limited = 0
        metric = _Factory(self.registry)
        self._m_updates = metric.counter(
            "updates_received", "Telegram updates received"
        )
        self._m_notes = metric.counter("notes", "Voice notes finished", ["outcome"])
        self._m_failures = metric.counter(
            "note_failures", "Voice notes that failed, by reason", ["reason"]
        )
        self._m_seconds = Histogram(
            "voicio_note_seconds",
            "From a note's arrival to its reply",
            buckets=_SECONDS_BUCKETS,
            registry=self.registry,
        )
        self._m_requests = metric.counter("gemini_requests", "Gemini requests sent")
        self._m_retries = metric.counter("gemini_retries", "Gemini requests retried")
        self._m_429 = metric.counter("gemini_rate_limited", "Gemini 429 answers")
        self._m_refused = metric.counter(
            "gemini_refused", "Jobs failed without a request (daily quota spent)"
        )
        self._m_tokens = metric.counter(
            "gemini_tokens", "Gemini tokens used, by modality", ["modality"]
        )
        self._m_cost = metric.counter(
            "gemini_cost_usd", "Estimated Gemini cost in US dollars"
        )
        self._m_telegram = metric.counter(
            "telegram_errors", "Telegram calls that failed, by error type", ["type"]
        )

    # -- counting ----------------------------------------------------------------

    def update_received(self) -> None:
        self._m_updates.inc()

    def note_finished(self, seconds: float) -> None:
        """Count a note answered `seconds` after it arrived."""
        with self._lock:
            self._done += 1
            self._durations.append(seconds)
        self._m_notes.labels("done").inc()
        self._m_seconds.observe(seconds)

    def note_failed(self, reason: str) -> None:
        with self._lock:
            self._failures[reason] += 1
        self._m_notes.labels("failed").inc()
        self._m_failures.labels(reason).inc()

    def model_request(self) -> None:
        with self._lock:
            self._requests += 1
        self._m_requests.inc()

    def model_retry(self) -> None:
        with self._lock:
            self._retries += 1
        self._m_retries.inc()

    def rate_limited(self) -> None:
        """Count a 429 answer."""
        with self._lock:
            self._rate_limited += 1
        self._m_429.inc()

    def note_model_refusal(self) -> None:
        """Count a job failed without a request (the daily quota is spent)."""
        self._m_refused.inc()

    def model_usage(self, model: str, usage: Usage) -> None:
        """Count the tokens (and estimated cost) of one answered request."""
        for modality, tokens in (
            ("audio", usage.audio_tokens),
            ("text", usage.text_tokens),
            ("output", usage.output_tokens),
            ("thought", usage.thought_tokens),
        ):
            self._m_tokens.labels(modality).inc(tokens)
        self._m_cost.inc(estimate_cost(model, usage))

    def telegram_error(self, kind: str) -> None:
        self._m_telegram.labels(kind).inc()

    # -- reading -----------------------------------------------------------------

    def snapshot(self) -> StatsSnapshot:
        with self._lock:
            durations = sorted(self._durations)
            return StatsSnapshot(
                notes_done=self._done,
                notes_failed=sum(self._failures.values()),
                failures=dict(self._failures),
                p50_seconds=percentile(durations, 0.5),
                p95_seconds=percentile(durations, 0.95),
                gemini_requests=self._requests,
                gemini_retries=self._retries,
                gemini_429=self._rate_limited,
            )


class _Factory:
    """Counters named `voicio_<name>` on one registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def counter(
        self, name: str, documentation: str, labels: tuple[str, ...] | list[str] = ()
    ) -> PromCounter:
        return PromCounter(
            f"voicio_{name}", documentation, list(labels), registry=self._registry
        )


class SnapshotCollector(Collector):
    """Gauges read when Prometheus scrapes: actors, mailboxes, the pool."""

    def __init__(self, read: Callable[[], Any | None]) -> None:
        self._read = read

    def collect(self) -> Iterator[Metric]:
        snapshot = self._read()
        if snapshot is None:
            return
        pool = snapshot.pool
        gauges = {
            "voicio_chat_actors": ("Live chat actors", snapshot.live_chats),
            "voicio_chat_actors_busy": ("Chat actors with work", snapshot.busy_chats),
            "voicio_mailbox_depth_max": ("Longest chat mailbox", snapshot.mailbox_max),
            "voicio_mailbox_depth_total": (
                "Messages waiting in chat mailboxes",
                snapshot.mailbox_total,
            ),
            "voicio_actor_restarts": ("Chat actors restarted", snapshot.restarts),
            "voicio_pool_in_flight": (
                "Gemini requests in flight",
                pool.in_flight if pool else 0,
            ),
            "voicio_pool_limit": (
                "Current Gemini concurrency",
                pool.limit if pool else 0,
            ),
            "voicio_pool_queued": (
                "Jobs waiting for Gemini",
                pool.queued if pool else 0,
            ),
        }
        for name, (documentation, value) in gauges.items():
            yield GaugeMetricFamily(name, documentation, value=value)
