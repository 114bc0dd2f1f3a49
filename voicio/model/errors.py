"""What can go wrong when asking the model, as behaviour rather than HTTP codes."""

from __future__ import annotations


class ModelError(Exception):
    """A model request failed.

    `retryable` tells the retry policy whether trying again can help;
    `reason` is a short stable name for logs, metrics and user messages.
    """

    retryable = False
    reason = "model_error"


class RateLimited(ModelError):
    """A per-minute quota was hit: wait `retry_delay` seconds, then try again."""

    retryable = True
    reason = "rate_limited"

    def __init__(self, message: str, retry_delay: float | None, quota_id: str) -> None:
        super().__init__(message)
        self.retry_delay = retry_delay
        self.quota_id = quota_id


class QuotaExhausted(ModelError):
    """A per-day quota is spent: no retry helps until the quota resets."""

    reason = "quota_exhausted"

    def __init__(self, message: str, quota_id: str) -> None:
        super().__init__(message)
        self.quota_id = quota_id


class ModelUnavailable(ModelError):
    """A 5xx answer, a timeout or a broken connection: back off and retry."""

    retryable = True
    reason = "unavailable"


class RequestRejected(ModelError):
    """The request itself was refused (bad audio, bad key): retrying won't help."""

    reason = "rejected"


class OutputTruncated(ModelError):
    """The answer hit the output-token limit before the JSON was complete."""

    reason = "truncated"


class OutputBlocked(ModelError):
    """The model declined to answer (safety or another block reason)."""

    reason = "blocked"


class BadOutput(ModelError):
    """The answer was not the JSON that was asked for."""

    retryable = True
    reason = "bad_output"
