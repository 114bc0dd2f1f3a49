"""What a ChatActor says and does for commands and buttons.

Every command and button is checked against the acting user's place in the
chat: in a private chat the user is the chat; in a group, reading needs
membership and changing settings needs an administrator (statuses come from
getChatMember and are cached for a few minutes). A button whose data Voicio
never sent, or that names a note this chat does not have, gets a short alert
and changes nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from voicio import render
from voicio.actors import keyboards as kb
from voicio.actors.chat.core import ChatDeps
from voicio.actors.chat.notes import NotesPart, failure_notice, failure_reason
from voicio.actors.gemini_pool import JobDone, SummarizeJob, TranscribeJob
from voicio.actors.keyboards import Action
from voicio.actors.ports import ChatMoved, Keyboard
from voicio.actors.runner import Outcome
from voicio.actors.storage import NoteView
from voicio.domain import (
    AudioIn,
    CallbackIn,
    ChatSettings,
    CommandIn,
    GroupPolicy,
    Inbound,
    Mode,
    OtherIn,
    RepliedAudio,
    Summary,
    Transcription,
)
from voicio.i18n import Translator
from voicio.storage.repository import HistoryEntry, StoredNote

logger = logging.getLogger(__name__)

ADMINS = ("creator", "administrator")
MEMBERS = (*ADMINS, "member", "restricted")
ROLE_CACHE_SECONDS = 300.0
# Longer than this, a text in a private chat is surely not a command typo.
LONG_TEXT = 500


class ConversationPart(NotesPart):
    """Commands, buttons, history, settings."""

    def __init__(self, chat_id: int, supervisor: Any, deps: ChatDeps) -> None:
        super().__init__(chat_id, supervisor, deps)
        self._roles: dict[int, tuple[str, float]] = {}

    def _handle(self, event: Inbound) -> None:
        match event:
            case AudioIn():
                self._on_audio(event)
            case CommandIn():
                self._on_command(event)
            case CallbackIn():
                self._on_callback(event)
            case OtherIn():
                self._on_other(event)
            case _:
                self._finish(event.update_id, "ignored")

    # -- who may do what -----------------------------------------------------------

    def _with_role(
        self, event: Inbound, needed: tuple[str, ...], then: Callable[[], None]
    ) -> None:
        """Run `then` if the acting user's status in the chat is in `needed`."""
        user = event.sender
        if user is None:
            self._deny(event, needed)
            return
        if not event.chat.is_group:
            if user.id == event.chat.id:
                then()
            else:
                self._deny(event, needed)
            return
        if needed == MEMBERS and isinstance(event, CommandIn):
            then()  # who writes in a group is in it
            return
        cached = self._roles.get(user.id)
        if cached is not None and cached[1] > time.monotonic():
            self._decide(event, cached[0], needed, then)
            return

        def known(outcome: Outcome[str]) -> None:
            if isinstance(outcome.error, ChatMoved):
                self._move_to(outcome.error.new_chat_id)
                self._with_role(event, needed, then)
                return
            status = outcome.value if outcome.error is None else "unknown"
            assert status is not None
            if outcome.error is None:
                expires = time.monotonic() + ROLE_CACHE_SECONDS
                self._roles[user.id] = (status, expires)
            else:
                logger.warning(
                    "Chat %s: no status for user %s: %r",
                    self.chat_id,
                    user.id,
                    outcome.error,
                )
            self._decide(event, status, needed, then)

        self._io(self._deps.port.member_status(self.target_id, user.id), known)

    def _decide(
        self,
        event: Inbound,
        status: str,
        needed: tuple[str, ...],
        then: Callable[[], None],
    ) -> None:
        if status in needed:
            then()
        else:
            self._deny(event, needed)

    def _deny(self, event: Inbound, needed: tuple[str, ...]) -> None:
        logger.warning(
            "Chat %s: user %s may not do that (update %s)",
            self.chat_id,
            event.sender.id if event.sender else None,
            event.update_id,
        )
        t = self._translator(event)
        key = "auth.admins_only" if needed == ADMINS else "auth.members_only"
        if isinstance(event, CallbackIn):
            self._answer(event, t(key), alert=True, outcome="denied")
        elif isinstance(event, CommandIn):
            self._say(event, t(key))
        else:
            self._finish(event.update_id, "denied")

    # -- commands ------------------------------------------------------------------

    def _on_command(self, event: CommandIn) -> None:
        if not event.addressed_to_me:
            self._finish(event.update_id, "not_for_me")
            return
        handler = self._commands().get(event.command)
        if handler is None:
            self._say(event, self._translator(event)("command.unknown"))
            return
        handler(event)

    def _commands(self) -> dict[str, Callable[[CommandIn], None]]:
        return {
            "start": self._on_start_command,
            "help": self._on_help,
            "mode": self._on_mode_command,
            "history": lambda e: self._with_role(
                e, MEMBERS, lambda: self._history(e, 0)
            ),
            "settings": self._on_settings_command,
            "pause": lambda e: self._set_paused(e, paused=True),
            "resume": lambda e: self._set_paused(e, paused=False),
            "transcribe": self._on_transcribe,
            "privacy": self._on_privacy,
            "forget": self._on_forget,
        }

    def _on_start_command(self, event: CommandIn) -> None:
        t = self._translator(event)
        text = t("command.start")
        if event.chat.is_group and not self._deps.bot.can_read_all_group_messages:
            text = (
                f"{text}\n\n{t('command.start_privacy', bot=self._deps.bot.username)}"
            )
        self._say(event, text)

    def _on_help(self, event: CommandIn) -> None:
        self._say(event, self._translator(event)("command.help"))

    def _on_mode_command(self, event: CommandIn) -> None:
        t = self._translator(event)
        choice = event.args.strip().lower()
        if not choice:
            label = t(f"mode.{self.settings.default_mode.value}")
            self._say(
                event,
                t("command.mode_pick", mode=label),
                buttons=kb.setting_choices(t, "mode", self.settings),
            )
        elif choice in Mode._value2member_map_:
            self._with_role(
                event,
                ADMINS,
                lambda: self._change(event, "mode", choice, announce=True),
            )
        else:
            options = ", ".join(mode.value for mode in Mode)
            self._say(event, t("command.mode_usage", options=options))

    def _on_settings_command(self, event: CommandIn) -> None:
        t = self._translator(event)
        self._say(
            event,
            self._settings_text(t, event.chat.is_group),
            buttons=kb.settings_keyboard(t, self.settings, group=event.chat.is_group),
        )

    def _set_paused(self, event: CommandIn, *, paused: bool) -> None:
        value = "on" if paused else "off"
        self._with_role(
            event, ADMINS, lambda: self._change(event, "pause", value, announce=True)
        )

    def _on_transcribe(self, event: CommandIn) -> None:
        if event.replied is None:
            self._say(event, self._translator(event)("command.transcribe_usage"))
            return
        self._transcribe_replied(event, event.replied)

    def _transcribe_replied(self, event: Inbound, replied: RepliedAudio) -> None:
        """Treat the replied-to voice message as a note someone asked for."""
        note = AudioIn(
            update_id=event.update_id,
            chat=event.chat,
            sender=replied.sender,
            date=replied.date,
            message_id=replied.message_id,
            audio=replied.audio,
            forward_origin=replied.forward_origin,
            requested=True,
        )
        self._on_audio(note)

    def _on_privacy(self, event: CommandIn) -> None:
        t = self._translator(event)
        days = t.plural("privacy.days", self._deps.retention_days)
        self._say(event, t("command.privacy", days=days))

    def _on_forget(self, event: CommandIn) -> None:
        t = self._translator(event)
        self._with_role(
            event,
            ADMINS,
            lambda: self._say(
                event, t("forget.confirm"), buttons=kb.forget_keyboard(t)
            ),
        )

    def _on_other(self, event: OtherIn) -> None:
        if event.migrated_to is not None:
            self._move_to(event.migrated_to)
            self._finish(event.update_id, "migrated")
            return
        if event.migrated_from is not None:
            # The supergroup's own actor moves the data, in order with its
            # updates (the old group's actor may be slower to notice).
            self._deps.storage.migrate_chat(event.migrated_from, self.chat_id)
            self._finish(event.update_id, "migrated")
            return
        if event.replied is not None and event.mentions_me:
            self._transcribe_replied(event, event.replied)
            return
        if event.chat.is_group:
            self._finish(event.update_id, "ignored")
            return
        t = self._translator(event)
        key = (
            "other.long_text"
            if len(event.text or "") > LONG_TEXT
            else "other.send_voice"
        )
        if event.what == "document":
            key = "other.not_audio"
        self._say(event, t(key))

    def _say(
        self, event: Inbound, text: str, *, buttons: Keyboard | None = None
    ) -> None:
        """Answer a message with plain text (escaped), then close its update."""
        message_id = getattr(event, "message_id", None)
        rendered = render.Rendered([render.text(text).html])
        self._send(event.update_id, rendered, reply_to=message_id, buttons=buttons)

    # -- buttons -------------------------------------------------------------------

    def _on_callback(self, event: CallbackIn) -> None:
        action = kb.parse(event.data)
        if action is None or event.message_id is None:
            logger.warning(
                "Chat %s: callback data %r from user %s is not Voicio's",
                self.chat_id,
                event.data[:80],
                event.sender.id if event.sender else None,
            )
            self._answer(
                event,
                self._translator(event)("callback.expired"),
                alert=True,
                outcome="forged",
            )
            return
        # Looking is for members; changing settings or forgetting, for admins.
        changes = action.verb == "f" or (
            action.verb == "s" and "=" in (action.arg or "")
        )
        self._with_role(
            event, ADMINS if changes else MEMBERS, lambda: self._act(event, action)
        )

    def _act(self, event: CallbackIn, action: Action) -> None:
        match action.verb:
            case "d":
                self._edit_buttons(event, None)
            case "H":
                self._history(event, 0, new_message=True)
            case "h":
                self._history(event, action.position or 0)
            case "s":
                self._on_setting(event, action.arg)
            case "f":
                self._on_forget_answer(event, confirmed=action.arg == "y")
            case _:
                assert action.note is not None
                self._with_note(event, action)

    def _with_note(self, event: CallbackIn, action: Action) -> None:
        """Look the note up in this chat, then act on it; alert if it is gone."""
        assert action.note is not None
        mode = Mode(action.arg) if action.verb == "m" and action.arg else None
        view = self._deps.storage.note_view(
            self.chat_id,
            action.note,
            mode or self.settings.default_mode,
            self.settings.summary_language,
        )

        def found(outcome: Outcome[NoteView | None]) -> None:
            view = outcome.value
            if view is None or view.note.transcript is None:
                t = self._translator(event)
                self._answer(event, t("callback.not_found"), alert=True, outcome="gone")
                return
            self._on_note_action(event, action, view)

        self._await(view, found)

    def _on_note_action(
        self, event: CallbackIn, action: Action, view: NoteView
    ) -> None:
        t = self._translator(event)
        note = view.note
        shown = note.shown_mode or note.mode
        match (action.verb, action.arg):
            case ("m", None):
                buttons = kb.mode_keyboard(t, note.message_id, shown, action.position)
                self._edit_buttons(event, buttons)
            case ("m", str(mode)):
                self._show_note(event, view, Mode(mode), action.position)
            case ("b", _):
                self._edit_buttons(event, kb.note_keyboard(t, note.message_id))
            case ("r", None):
                self._edit_buttons(event, kb.redo_keyboard(t, note.message_id))
            case ("r", "s"):
                self._redo(event, view, shown, from_audio=False)
            case ("r", "a"):
                self._redo(event, view, shown, from_audio=True)
            case ("t", _):
                self._send_transcript(event, note)
            case ("x", _):
                self._with_owner(
                    event, note, lambda: self._confirm_delete(event, action)
                )
            case ("X", _):
                self._with_owner(event, note, lambda: self._delete(event, action))
            case _:
                self._answer(event, t("callback.expired"), alert=True, outcome="forged")

    def _with_owner(
        self, event: CallbackIn, note: StoredNote, then: Callable[[], None]
    ) -> None:
        """Deleting a note takes its sender or an administrator."""
        if event.sender is not None and event.sender.id == note.sender_id:
            then()
        else:
            self._with_role(event, ADMINS, then)

    def _answer(
        self,
        event: CallbackIn,
        notice: str | None,
        *,
        alert: bool = False,
        outcome: str = "done",
    ) -> None:
        """Answer a button press (stops its spinner), then close the update."""

        def answered(result: Outcome[None]) -> None:
            self._log_failure("answerCallbackQuery", result)
            self._finish(event.update_id, outcome)

        self._io(
            self._deps.port.answer_callback(event.callback_id, notice, alert=alert),
            answered,
        )

    def _answer_working(self, event: CallbackIn) -> None:
        """Stop a button's spinner with a "working" notice; the update stays open."""
        t = self._translator(event)
        self._io(
            self._deps.port.answer_callback(event.callback_id, t("callback.working")),
            lambda o: self._log_failure("answerCallbackQuery", o),
        )

    def _replace_and_answer(
        self,
        event: CallbackIn,
        rendered: render.Rendered,
        buttons: Keyboard | None,
        *,
        answered: bool = False,
    ) -> None:
        """Edit the pressed message, then stop the button's spinner."""
        assert event.message_id is not None
        then = None if answered else (lambda _: self._answer(event, None))
        self._replace(event.update_id, event.message_id, rendered, buttons, then)

    def _edit_buttons(self, event: CallbackIn, buttons: Keyboard | None) -> None:
        assert event.message_id is not None

        def edited(outcome: Outcome[None]) -> None:
            self._log_failure("editMessageReplyMarkup", outcome)
            self._answer(event, None)

        self._io(
            self._deps.port.edit_buttons(self.target_id, event.message_id, buttons),
            edited,
        )

    # -- a note in another mode, redone, or as a transcript -----------------------

    def _show_note(
        self, event: CallbackIn, view: NoteView, mode: Mode, position: int | None
    ) -> None:
        if view.summary is not None:
            self._display(event, view.note, mode, view.summary, position)
            return
        self._answer_working(event)
        self._summarize(
            view.note,
            mode,
            lambda text: self._display(event, view.note, mode, text, position, True),
            lambda reason: self._notice(event, reason),
        )

    def _summarize(
        self,
        note: StoredNote,
        mode: Mode,
        then: Callable[[str], None],
        failed: Callable[[str], None],
    ) -> None:
        """Write (and store) a fresh summary of a stored transcript."""
        language = self.settings.summary_language

        def done(job: JobDone) -> None:
            if not isinstance(job.result, Summary):
                failed(failure_reason(job.error))
                return
            self._deps.storage.save_summary(
                self.chat_id, note.message_id, mode, language, job.result
            )
            then(job.result.text)

        self._submit(
            lambda tag: SummarizeJob(
                self.chat_id,
                note.message_id,
                note.transcript or "",
                mode,
                language,
                self.actor_ref,
                tag,
            ),
            done,
        )

    def _redo(
        self, event: CallbackIn, view: NoteView, mode: Mode, from_audio: bool
    ) -> None:
        self._answer_working(event)
        note = view.note
        if not from_audio:
            self._summarize(
                note,
                mode,
                lambda text: self._display(event, note, mode, text, None, True),
                lambda reason: self._notice(event, reason),
            )
            return
        language = self.settings.summary_language

        def heard(job: JobDone) -> None:
            if not isinstance(job.result, Transcription):
                self._notice(event, failure_reason(job.error))
                return
            self._deps.storage.save_transcription(
                self.chat_id, note.message_id, language, job.result, mode
            )
            fresh = replace(note, transcript=job.result.transcript)
            self._display(event, fresh, mode, job.result.summary, None, True)

        self._submit(
            lambda tag: TranscribeJob(
                self.chat_id,
                note.message_id,
                note.audio,
                mode,
                language,
                self.actor_ref,
                tag,
            ),
            heard,
        )

    def _notice(self, event: CallbackIn, reason: str) -> None:
        """Tell the presser why nothing changed (the spinner is already answered)."""
        t = self._translator(event)
        rendered = render.Rendered([render.text(failure_notice(t, reason)).html])
        self._send(event.update_id, rendered, reply_to=event.message_id)

    def _display(
        self,
        event: CallbackIn,
        note: StoredNote,
        mode: Mode,
        summary: str,
        position: int | None,
        answered: bool = False,
    ) -> None:
        """Edit the pressed message to show the note in `mode`."""
        self._deps.storage.set_shown_mode(self.chat_id, note.message_id, mode)
        if position is not None:
            # The history entry, reloaded, now shows the new mode.
            self._history(event, position, answered=answered)
            return
        t = self._translator(event)
        header = self.note_header(
            t,
            sender=note.sender_name,
            sent_at=note.sent_at,
            mode=mode,
            forward_origin=note.forward_origin,
        )
        rendered = render.note_reply(t, header, mode, summary, note.transcript)
        buttons = kb.note_keyboard(t, note.message_id)
        self._replace_and_answer(event, rendered, buttons, answered=answered)

    def _send_transcript(self, event: CallbackIn, note: StoredNote) -> None:
        t = self._translator(event)
        text = note.transcript or t("note.nothing_heard")
        rendered = render.long_text(t, t("note.transcript_title"), text)
        self._send(
            None,
            rendered,
            reply_to=event.message_id,
            then=lambda _: self._answer(event, None),
        )

    # -- history -----------------------------------------------------------------

    def _history(
        self,
        event: Inbound,
        position: int,
        *,
        new_message: bool = False,
        answered: bool = False,
    ) -> None:
        """Show the history entry at `position` (0 = newest)."""
        entry = self._deps.storage.history_entry(
            self.chat_id, position, self.settings.summary_language
        )

        def loaded(outcome: Outcome[HistoryEntry | None]) -> None:
            if outcome.value is None and position > 0:
                # Deleted from under the view: show the one before.
                self._history(
                    event, position - 1, new_message=new_message, answered=answered
                )
                return
            view = self._history_view(event, position, outcome.value)
            self._show(event, view, new_message=new_message, answered=answered)

        self._await(entry, loaded)

    def _history_view(
        self, event: Inbound, position: int, entry: HistoryEntry | None
    ) -> tuple[render.Rendered, Keyboard | None]:
        t = self._translator(event)
        if entry is None:
            return render.Rendered([render.text(t("history.empty")).html]), None
        note = entry.note
        title = render.join(
            render.text("🗂 "),
            render.bold(render.text(t("history.title"))),
            render.text(f" · {position + 1} / {entry.total}"),
        )
        header = self.note_header(
            t,
            sender=note.sender_name,
            sent_at=note.sent_at,
            mode=note.shown_mode or note.mode,
            forward_origin=note.forward_origin,
        )
        body = (entry.summary or "").strip() or t("note.nothing_heard")
        budget = render.MESSAGE_LIMIT - title.visible - header.visible - 100
        pieces = render.split_text(body, budget)
        text = render.join(title, header, render.text(pieces[0]), sep="\n\n")
        if len(pieces) > 1:
            # The full text is one tap away (Transcript, or the mode picker).
            more = render.italic(render.text(t("history.more")))
            text = render.join(text, more, sep="\n\n")
        buttons = kb.history_keyboard(t, note.message_id, position, entry.total)
        return render.Rendered([text.html]), buttons

    def _show(
        self,
        event: Inbound,
        view: tuple[render.Rendered, Keyboard | None],
        *,
        new_message: bool,
        answered: bool,
    ) -> None:
        """Show a view: in place of the pressed message, or as a new reply."""
        rendered, buttons = view
        if isinstance(event, CallbackIn) and not new_message:
            self._replace_and_answer(event, rendered, buttons, answered=answered)
            return
        message_id = getattr(event, "message_id", None)
        then = (
            (lambda _: self._answer(event, None))
            if isinstance(event, CallbackIn)
            else None
        )
        self._send(
            event.update_id, rendered, reply_to=message_id, buttons=buttons, then=then
        )

    def _confirm_delete(self, event: CallbackIn, action: Action) -> None:
        assert action.note is not None
        t = self._translator(event)
        self._edit_buttons(
            event, kb.delete_keyboard(t, action.note, action.position or 0)
        )

    def _delete(self, event: CallbackIn, action: Action) -> None:
        assert action.note is not None
        position = action.position or 0

        def deleted(outcome: Outcome[bool]) -> None:
            if outcome.value:
                logger.info(
                    "Chat %s: note %s deleted by user %s",
                    self.chat_id,
                    action.note,
                    event.sender.id if event.sender else None,
                )
            self._history(event, position)

        self._await(self._deps.storage.delete_note(self.chat_id, action.note), deleted)

    # -- settings ------------------------------------------------------------------

    def _settings_text(self, t: Translator, group: bool) -> str:
        s = self.settings
        rows = [
            (
                "language",
                t(f"language.{s.language}" if s.language else "language.auto"),
            ),
            ("summary_language", t(f"language.{s.summary_language}")),
            ("mode", t(f"mode.{s.default_mode.value}")),
            ("timezone", s.timezone),
            ("status", t("settings.paused" if s.paused else "settings.active")),
        ]
        if group:
            rows.append(("group_policy", t(f"group_policy.{s.group_policy.value}")))
        lines = [f"{t(f'settings.{name}')}: {value}" for name, value in rows]
        return "\n".join([t("settings.title"), "", *lines])

    def _on_setting(self, event: CallbackIn, arg: str | None) -> None:
        t = self._translator(event)
        if arg is None:
            self._show_settings(event)
        elif "=" not in arg:
            self._edit_buttons(event, kb.setting_choices(t, arg, self.settings))
        else:
            field, value = arg.split("=", 1)
            self._change(event, field, value)

    def _show_settings(self, event: CallbackIn) -> None:
        assert event.message_id is not None
        t = self._translator(event)
        group = event.chat.is_group
        rendered = render.Rendered([render.text(self._settings_text(t, group)).html])
        buttons = kb.settings_keyboard(t, self.settings, group=group)
        self._replace_and_answer(event, rendered, buttons)

    def _change(
        self, event: Inbound, field: str, value: str, *, announce: bool = False
    ) -> None:
        """Change one setting; it applies to every update after this one."""
        self._settings = changed(self.settings, field, value)
        self._deps.storage.save_settings(self.chat_id, self.settings)
        logger.info(
            "Chat %s: %s set to %s by user %s",
            self.chat_id,
            field,
            value,
            event.sender.id if event.sender else None,
        )
        t = self._translator(event)
        if isinstance(event, CallbackIn) and not announce:
            self._show_settings(event)
            return
        label = kb.choice_label(t, field, value)
        if field == "pause":
            self._say(
                event,
                t("settings.paused_now" if value == "on" else "settings.resumed_now"),
            )
        else:
            self._say(
                event,
                t(
                    "settings.changed",
                    setting=t(f"settings.{_FIELD_KEYS[field]}"),
                    value=label,
                ),
            )

    # -- forgetting --------------------------------------------------------------

    def _on_forget_answer(self, event: CallbackIn, *, confirmed: bool) -> None:
        t = self._translator(event)
        if not confirmed:
            kept = render.Rendered([render.text(t("forget.kept")).html])
            self._replace_and_answer(event, kept, None)
            return

        def forgotten(outcome: Outcome[int]) -> None:
            count = outcome.value or 0
            logger.info(
                "Chat %s: %d notes forgotten at the request of user %s",
                self.chat_id,
                count,
                event.sender.id if event.sender else None,
            )
            text = t.plural("forget.done", count)
            done = render.Rendered([render.text(text).html])
            self._replace_and_answer(event, done, None)

        self._await(self._deps.storage.forget_chat(self.chat_id), forgotten)


_FIELD_KEYS = {
    "lang": "language",
    "sum": "summary_language",
    "mode": "mode",
    "tz": "timezone",
    "grp": "group_policy",
    "pause": "status",
}


def changed(settings: ChatSettings, field: str, value: str) -> ChatSettings:
    """Return `settings` with one field set from its callback value."""
    match field:
        case "lang":
            return replace(settings, language=value)
        case "sum":
            return replace(settings, summary_language=value)
        case "mode":
            return replace(settings, default_mode=Mode(value))
        case "tz":
            return replace(settings, timezone=value.replace("+", "/"))
        case "pause":
            return replace(settings, paused=value == "on")
        case "grp":
            return replace(settings, group_policy=GroupPolicy(value))
    raise ValueError(f"unknown setting {field!r}")
