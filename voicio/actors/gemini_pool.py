"""The GeminiPool: bounded, fair, rate-limit-aware access to the model.

Jobs wait in one queue per chat and are taken round-robin across chats, so a
chat with fifty notes queued does not hold another chat's note behind all
fifty, while a chat alone gets every free slot.

How many requests may be in flight adapts (AIMD, as TCP does): each 429
halves the limit (at most once per second, so one burst counts once), each
success adds 1/limit, up to the configured maximum. A per-minute 429 also
pauses new launches pool-wide until the delay the server gave has passed. A
spent per-day quota fails jobs at once, without a request, until it resets
(probing again every ten minutes at most).

The requests themselves run as coroutines on the asyncio loop (no thread per
request); their outcomes come back to this actor and to the asking ChatActor
as messages. (A second loop for the model client was measured and rejected:
two loops contending for the GIL cost more CPU and added latency.)
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from tenacity import RetryCallState

from voicio.actors.base import ThreadedActor
from voicio.actors.ports import DeliveryError
from voicio.actors.runner import AsyncRunner, Outcome
from voicio.actors.stats import Stats
from voicio.audio.errors import AudioError
from voicio.audio.prepare import AudioPreparer
from voicio.domain import AudioRef, Mode, Summary, Transcription
from voicio.model.errors import ModelError, QuotaExhausted, RateLimited
from voicio.model.quota import hours_until_quota_reset
from voicio.model.retry import model_retrying

logger = logging.getLogger(__name__)


class ModelClient(Protocol):
    """The two requests Voicio makes of a model."""

    async def aclose(self) -> None: ...

    async def transcribe(
        self, audio: bytes, mime_type: str, mode: Mode, summary_language: str
    ) -> Transcription: ...

    async def summarize(
        self, transcript: str, mode: Mode, summary_language: str
    ) -> Summary: ...

    async def transcribe_part(self, audio: bytes, mime_type: str) -> Transcription: ...


@dataclass(frozen=True)
class TranscribeJob:
    """Hear a note's audio and summarize it."""

    chat_id: int
    message_id: int
    audio: AudioRef
    mode: Mode
    summary_language: str
    reply_to: Any
    # The submitter's own correlation id, returned unchanged in JobDone.
    tag: int = 0


@dataclass(frozen=True)
class SummarizeJob:
    """Summarize a transcript that is already stored (text only)."""

    chat_id: int
    message_id: int
    transcript: str
    mode: Mode
    summary_language: str
    reply_to: Any
    tag: int = 0


@dataclass(frozen=True)
class PartJob:
    """Transcribe one part (a file on disk) of a long note."""

    chat_id: int
    message_id: int
    path: Path
    index: int
    reply_to: Any
    tag: int = 0


Job = TranscribeJob | SummarizeJob | PartJob

EXPECTED_ERRORS = (ModelError, AudioError, DeliveryError)


@dataclass(frozen=True)
class JobDone:
    """The answer to a job, sent to the actor that submitted it."""

    job: Job
    result: Transcription | Summary | None
    error: Exception | None
    model_seconds: float


@dataclass(frozen=True)
class PoolStats:
    """The pool's gauges at one moment."""

    in_flight: int
    limit: int
    queued: int


@dataclass(frozen=True)
class GetPoolStats:
    """Ask the pool for a PoolStats."""


@dataclass(frozen=True)
class _Finished:
    job: Job
    ok: bool
    quota_spent: bool = False


@dataclass(frozen=True)
class _Throttled:
    until: float


@dataclass(frozen=True)
class _Resume:
    pass


class GeminiPool(ThreadedActor):
    """Queue jobs per chat and run at most `limit` of them at once."""

    def __init__(
        self,
        *,
        client: ModelClient,
        audio: AudioPreparer,
        runner: AsyncRunner,
        stats: Stats,
        limit: int,
        max_attempts: int,
    ) -> None:
        super().__init__()
        self._runner = runner
        self._stats_counters = stats
        self._max_limit = limit
        self._limit = float(limit)
        self._last_decrease = 0.0
        self._queues: dict[int, deque[Job]] = {}
        self._rotation: deque[int] = deque()
        self._in_flight = 0
        self._paused_until = 0.0
        self._resume_scheduled = False
        self._quota_blocked_until = 0.0
        self._execute = _Executor(client, audio, stats, max_attempts, self._throttle)

    def on_receive(self, message: Any) -> Any:
        match message:
            case TranscribeJob() | SummarizeJob() | PartJob():
                self._enqueue(message)
            case _Finished():
                self._on_finished(message)
            case _Throttled(until=until):
                self._paused_until = max(self._paused_until, until)
                self._decrease()
            case _Resume():
                self._resume_scheduled = False
            case GetPoolStats():
                return self._stats()
            case _:
                return super().on_receive(message)
        self._launch()
        return None

    def _enqueue(self, job: Job) -> None:
        queue = self._queues.get(job.chat_id)
        if queue is None:
            queue = self._queues[job.chat_id] = deque()
            self._rotation.append(job.chat_id)
        queue.append(job)

    def _on_finished(self, finished: _Finished) -> None:
        self._in_flight -= 1
        if finished.quota_spent:
            self._block_for_quota()
        elif finished.ok:
            # Additive increase: one more slot per `limit` successes.
            self._limit = min(float(self._max_limit), self._limit + 1 / self._limit)

    def _decrease(self) -> None:
        now = time.monotonic()
        if now - self._last_decrease < 1.0:
            return  # the same burst of 429s
        self._last_decrease = now
        self._limit = max(1.0, self._limit / 2)
        logger.warning(
            "Gemini rate-limited: concurrency lowered to %d", int(self._limit)
        )

    def _block_for_quota(self) -> None:
        wait = min(600.0, hours_until_quota_reset() * 3600.0)
        self._quota_blocked_until = time.monotonic() + wait
        logger.error(
            "Gemini's daily quota is spent; failing notes without a request for %.0fs",
            wait,
        )

    def _launch(self) -> None:
        while self._in_flight < int(self._limit) and self._rotation:
            wait = self._paused_until - time.monotonic()
            if wait > 0:
                self._schedule_resume(wait)
                return
            job = self._next_job()
            if time.monotonic() < self._quota_blocked_until:
                self._refuse(job)
                continue
            self._in_flight += 1
            self._runner.run(self._execute(job), self._on_outcome(job))

    def _refuse(self, job: Job) -> None:
        error = QuotaExhausted("daily quota spent (no request made)", "cached")
        self._stats_counters.note_model_refusal()
        job.reply_to.tell(JobDone(job, None, error, 0.0))

    def _next_job(self) -> Job:
        chat_id = self._rotation.popleft()
        queue = self._queues[chat_id]
        job = queue.popleft()
        if queue:
            self._rotation.append(chat_id)
        else:
            del self._queues[chat_id]
        return job

    def _on_outcome(self, job: Job) -> Callable[[Outcome[JobDone]], None]:
        pool = self.actor_ref

        def done(outcome: Outcome[JobDone]) -> None:
            result = outcome.value
            ok = result is not None and result.error is None
            spent = result is not None and isinstance(result.error, QuotaExhausted)
            pool.tell(_Finished(job, ok, spent))
            if result is not None:
                job.reply_to.tell(result)
            else:
                logger.error(
                    "Job for chat %s note %s crashed",
                    job.chat_id,
                    job.message_id,
                    exc_info=outcome.error,
                )
                error = outcome.error if isinstance(outcome.error, Exception) else None
                job.reply_to.tell(JobDone(job, None, error, 0.0))

        return done

    def _schedule_resume(self, wait: float) -> None:
        if self._resume_scheduled:
            return
        self._resume_scheduled = True
        pool = self.actor_ref
        self._runner.call_later(wait, lambda: pool.tell(_Resume()))

    def _throttle(self, until: float) -> None:
        # Called from the loop thread: only a message may touch pool state.
        self.actor_ref.tell(_Throttled(until))

    def _stats(self) -> PoolStats:
        queued = sum(len(q) for q in self._queues.values())
        return PoolStats(self._in_flight, int(self._limit), queued)


class _Executor:
    """Run one job with retries; holds nothing that changes, so any thread may."""

    def __init__(
        self,
        client: ModelClient,
        audio: AudioPreparer,
        stats: Stats,
        max_attempts: int,
        throttle: Callable[[float], None],
    ) -> None:
        self._client = client
        self._audio = audio
        self._stats = stats
        self._max_attempts = max_attempts
        self._throttle = throttle

    async def __call__(self, job: Job) -> JobDone:
        model_seconds = 0.0

        async def timed(request: Callable[[], Awaitable[Any]]) -> Any:
            nonlocal model_seconds
            started = time.monotonic()
            try:
                return await self._with_retries(job, request)
            finally:
                model_seconds += time.monotonic() - started

        try:
            if isinstance(job, TranscribeJob):
                audio = await self._audio.prepare(job.audio)
                result: Transcription | Summary = await timed(
                    lambda: self._client.transcribe(
                        audio.data, audio.mime_type, job.mode, job.summary_language
                    )
                )
            elif isinstance(job, PartJob):
                part = await asyncio.to_thread(job.path.read_bytes)
                result = await timed(
                    lambda: self._client.transcribe_part(part, "audio/ogg")
                )
            else:
                result = await timed(
                    lambda: self._client.summarize(
                        job.transcript, job.mode, job.summary_language
                    )
                )
        except EXPECTED_ERRORS as exc:
            return JobDone(job, None, exc, model_seconds)
        self._stats.model_usage(result.model, result.usage)
        return JobDone(job, result, None, model_seconds)

    async def _with_retries(
        self, job: Job, request: Callable[[], Awaitable[Any]]
    ) -> Any:
        def before_sleep(state: RetryCallState) -> None:
            self._note_retry(job, state)

        async for attempt in model_retrying(self._max_attempts, before_sleep):
            with attempt:
                self._stats.model_request()
                try:
                    return await request()
                except RateLimited:
                    self._stats.rate_limited()
                    raise
        raise AssertionError("unreachable: tenacity reraises the last error")

    def _note_retry(self, job: Job, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        wait = state.upcoming_sleep
        limited = isinstance(error, RateLimited)
        self._stats.model_retry()
        if limited:
            self._throttle(time.monotonic() + wait)
        logger.warning(
            "Gemini request for chat %s note %s failed (%s);"
            " attempt %d, retrying in %.1fs",
            job.chat_id,
            job.message_id,
            error,
            state.attempt_number,
            wait,
        )
