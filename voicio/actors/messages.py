"""Messages between the Supervisor and its ChatActors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from voicio.domain import Inbound


@dataclass(frozen=True)
class Deliver:
    """An update for the receiving ChatActor's chat.

    `stored` (a CallbackFuture[bool]) answers whether the update is new to the
    inbox; None for updates that need no such check.
    """

    event: Inbound
    stored: Any = None


@dataclass(frozen=True)
class Reload:
    """Load the chat's unfinished updates again: some came in elsewhere."""


@dataclass(frozen=True)
class Passivate:
    """Stop if idle; answer Passivated or PassivateDeclined."""


@dataclass(frozen=True)
class ChildIdle:
    """A ChatActor has nothing left to do."""

    chat_id: int


@dataclass(frozen=True)
class Passivated:
    """A ChatActor agreed to stop; it handles nothing after this."""

    chat_id: int


@dataclass(frozen=True)
class PassivateDeclined:
    """A ChatActor had work after all and keeps running."""

    chat_id: int


@dataclass(frozen=True)
class ChildFailed:
    """A ChatActor crashed; its unfinished updates are still in the inbox."""

    chat_id: int
    actor_urn: str
    error: str
