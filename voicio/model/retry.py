"""When and how long to wait before asking the model again."""

from __future__ import annotations

import random
from collections.abc import Callable

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    wait_exponential_jitter,
)
from tenacity.stop import stop_base
from tenacity.wait import wait_base

from voicio.model.errors import ModelError, RateLimited


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, ModelError) and exc.retryable


class wait_server_delay(wait_base):
    """Wait as long as a 429 asked (plus jitter), else defer to `fallback`.

    The jitter only ever adds time, so no retry comes earlier than the delay
    the server gave, and many notes throttled together do not all return in
    the same instant.
    """

    def __init__(self, fallback: wait_base, max_jitter: float = 0.5) -> None:
        self._fallback = fallback
        self._max_jitter = max_jitter

    def __call__(self, retry_state: RetryCallState) -> float:
        outcome = retry_state.outcome
        exc = outcome.exception() if outcome is not None else None
        if isinstance(exc, RateLimited) and exc.retry_delay is not None:
            jitter = random.uniform(0, self._max_jitter)  # noqa: S311 - not crypto
            return exc.retry_delay + jitter
        return float(self._fallback(retry_state))


class stop_after_failures(stop_base):
    """Stop after `failures` failures that were not 429s, or after `seconds`.

    A per-minute 429 is the server pacing us, not the request failing: it
    waits without using up the attempts that 5xx, timeouts and bad output
    get. The deadline still bounds the whole, so nothing loops forever.
    """

    def __init__(self, failures: int, seconds: float) -> None:
        self._failures = failures
        self._seconds = seconds
        self._counted = 0

    def __call__(self, retry_state: RetryCallState) -> bool:
        outcome = retry_state.outcome
        error = outcome.exception() if outcome is not None else None
        if not isinstance(error, RateLimited):
            self._counted += 1
        elapsed = retry_state.seconds_since_start or 0.0
        return self._counted >= self._failures or elapsed >= self._seconds


def model_retrying(
    max_attempts: int,
    before_sleep: Callable[[RetryCallState], None] | None = None,
    *,
    initial_wait: float = 1.0,
    max_wait: float = 30.0,
    deadline: float = 900.0,
) -> AsyncRetrying:
    """Build the retry loop for one model request.

    429s wait what the server asked; 5xx, timeouts and malformed output back
    off exponentially with jitter; everything else fails at once. After
    `max_attempts` non-429 failures, or `deadline` seconds, the last error is
    raised as is.
    """
    return AsyncRetrying(
        retry=retry_if_exception(_retryable),
        wait=wait_server_delay(
            wait_exponential_jitter(initial=initial_wait, max=max_wait)
        ),
        stop=stop_after_failures(max_attempts, deadline),
        before_sleep=before_sleep,
        reraise=True,
    )
