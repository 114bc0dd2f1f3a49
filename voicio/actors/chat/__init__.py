"""The ChatActor: one per conversation, the only one that acts for it.

It takes the chat's updates in `update_id` order, whether they arrive fresh
from the edge or are replayed from the inbox, and drops any it has seen. It
never waits: storage answers, model results and Telegram outcomes all come
back to it as messages, so thousands of ChatActors share a handful of
dispatcher threads.

It is assembled from three parts: `core` (life cycle, order, continuations,
sending), `notes` (the voice-note pipeline) and `conversation` (commands,
buttons, history, settings).
"""

from __future__ import annotations

from voicio.actors.chat.conversation import ConversationPart
from voicio.actors.chat.core import BotInfo, ChatDeps

__all__ = ["BotInfo", "ChatActor", "ChatDeps"]


class ChatActor(ConversationPart):
    """Serialize one chat's work and answer its voice notes in order."""
