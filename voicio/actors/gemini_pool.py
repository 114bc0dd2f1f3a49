"""The GeminiPool: bounded, fair, rate-limit-aware access to the model.

Jobs wait in one queue per chat and are taken round-robin across chats, so a
chat with fifty notes queued does not hold another chat's note behind all
fifty, while a chat alone gets every free slot. At most `limit` requests are
in flight. A per-minute 429 pauses new launches pool-wide until the delay the
server gave has passed.

The requests themselves run as coroutines on the asyncio loop (no thread per
request); their outcomes come back to this actor and to the asking ChatActor
as messages. (A second loop for the model client was measured and rejected:
two loops contending for the GIL cost more CPU and added latency.)
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from tenacity import RetryCallState

from voicio.actors.base import ThreadedActor
from voicio.actors.ports import DeliveryError
from voicio.actors.runner import AsyncRunner, Outcome
from voicio.actors.stats import Stats
from voicio.audio.errors import AudioError
from voicio.audio.prepare import AudioPreparer
from voicio.domain import AudioRef, Mode, Summary, Transcription
from voicio.model.errors import ModelError, RateLimited
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


Job = TranscribeJob | SummarizeJob

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
    queued_chats: int


@dataclass(frozen=True)
class GetPoolStats:
    """Ask the pool for a PoolStats."""


@dataclass(frozen=True)
class _Finished:
    job: Job


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
        self._limit = limit
        self._queues: dict[int, deque[Job]] = {}
        self._rotation: deque[int] = deque()
        self._in_flight = 0
        self._paused_until = 0.0
        self._resume_scheduled = False
        self._execute = _Executor(client, audio, stats, max_attempts, self._throttle)

    def on_receive(self, message: Any) -> Any:
        match message:
            case TranscribeJob() | SummarizeJob():
                self._enqueue(message)
            case _Finished():
                self._in_flight -= 1
            case _Throttled(until=until):
                self._paused_until = max(self._paused_until, until)
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

    def _launch(self) -> None:
        while self._in_flight < self._limit and self._rotation:
            wait = self._paused_until - time.monotonic()
            if wait > 0:
                self._schedule_resume(wait)
                return
            job = self._next_job()
            self._in_flight += 1
            self._runner.run(self._execute(job), self._on_outcome(job))

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
            pool.tell(_Finished(job))
            if outcome.value is not None:
                job.reply_to.tell(outcome.value)
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
        return PoolStats(self._in_flight, self._limit, queued, len(self._queues))


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
            else:
                result = await timed(
                    lambda: self._client.summarize(
                        job.transcript, job.mode, job.summary_language
                    )
                )
        except EXPECTED_ERRORS as exc:
            return JobDone(job, None, exc, model_seconds)
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
                    if attempt.retry_state.attempt_number >= self._max_attempts:
                        self._stats.rate_limited()
                    raise
        raise AssertionError("unreachable: tenacity reraises the last error")

    def _note_retry(self, job: Job, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        wait = state.upcoming_sleep
        limited = isinstance(error, RateLimited)
        self._stats.model_retry(rate_limited=limited)
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
