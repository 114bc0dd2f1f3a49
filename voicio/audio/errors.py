"""Why a piece of audio cannot be sent to the model."""

from __future__ import annotations


class AudioError(Exception):
    """The audio cannot be used; `reason` names why, for users and metrics."""

    reason = "audio"


class AudioTooBig(AudioError):
    """Larger than Telegram lets a bot download."""

    reason = "too_big"


class AudioUnreadable(AudioError):
    """Empty, truncated, not audio, or in a format ffmpeg cannot decode."""

    reason = "unreadable"
