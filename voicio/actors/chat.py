"""The ChatActor: one per conversation, the only one that acts for it.

It takes the chat's updates in `update_id` order, whether they arrive fresh
from the edge or are replayed from the inbox, and drops any it has seen. Its
notes may be transcribed concurrently, but replies go out strictly in the
order the notes were sent. It never waits: storage answers, model results
and Telegram outcomes all come back to it as messages, so thousands of
ChatActors share a handful of dispatcher threads.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import Any, TypeVar, cast
from zoneinfo import ZoneInfo

from pykka import ActorDeadError, ActorRef

from voicio import render
from voicio.actors.delivery import deliver, replace_message
from voicio.actors.dispatch import DispatchedActor, Dispatcher
from voicio.actors.futures import CallbackFuture
from voicio.actors.gemini_pool import JobDone, SummarizeJob, TranscribeJob
from voicio.actors.messages import (
    ChildFailed,
    ChildIdle,
    Deliver,
    Passivate,
    Passivated,
    PassivateDeclined,
)
from voicio.actors.ports import (
    ChatUnreachable,
    Keyboard,
    TelegramPort,
)
from voicio.actors.runner import AsyncRunner, Outcome
from voicio.actors.stats import Stats
from voicio.actors.storage import ChatState, NoteView, StorageClient
from voicio.domain import (
    AudioIn,
    CallbackIn,
    ChatSettings,
    CommandIn,
    Inbound,
    Mode,
    OtherIn,
    Summary,
    Transcription,
    Usage,
)
from voicio.i18n import Translator, pick_language, translator
from voicio.storage.repository import NewNote, NotePrep

logger = logging.getLogger(__name__)

T = TypeVar("T")

RECEIVED_REACTION = "👀"


@dataclass(frozen=True)
class ChatDeps:
    """Everything a ChatActor uses, shared by all of them."""

    dispatcher: Dispatcher
    storage: StorageClient
    pool: ActorRef[Any]
    port: TelegramPort
    runner: AsyncRunner
    stats: Stats
    parse_update: Callable[[dict[str, Any]], Inbound | None]
    max_file_bytes: int
    # A note still unanswered after this long gets a 👀 reaction, so the user
    # knows it arrived; a faster answer is its own acknowledgement.
    ack_delay: float = 0.5


@dataclass(frozen=True)
class _Resumed:
    """A continuation's awaited outcome has arrived."""

    token: int
    outcome: Outcome[Any]


@dataclass(frozen=True)
class _AckDue:
    """Time to acknowledge a note if it is still unanswered."""

    message_id: int


@dataclass
class _NoteTask:
    """A voice note from arrival until its reply is sent."""

    event: AudioIn
    mode: Mode
    summary_language: str
    started: float
    transcript: str | None = None
    summary: str | None = None
    error: Exception | None = None
    # Why the note failed, as the catalogs' `error.*` keys name it.
    failure: str | None = None
    model_seconds: float = 0.0
    reply_ids: list[int] = field(default_factory=list)
    ready: bool = False
    sending: bool = False


class ChatActor(DispatchedActor):
    """Serialize one chat's work and answer its voice notes in order."""

    def __init__(self, chat_id: int, supervisor: ActorRef[Any], deps: ChatDeps) -> None:
        super().__init__(deps.dispatcher)
        self.chat_id = chat_id
        self._supervisor = supervisor
        self._deps = deps
        self._settings: ChatSettings | None = None
        # Delivered updates, each with the future that says whether the inbox
        # saw it for the first time; taken strictly in order.
        self._arrivals: deque[tuple[Inbound, CallbackFuture[bool] | None]] = deque()
        self._awaiting_arrival = False
        self._pending_at_load: set[int] = set()
        self._last_update_id = 0
        self._notes: OrderedDict[int, _NoteTask] = OrderedDict()
        self._waiting: dict[int, Callable[[Outcome[Any]], None]] = {}
        self._tokens = itertools.count(1)
        self._reported_idle = False
        self._unreachable = False

    # -- life cycle --------------------------------------------------------------

    def on_start(self) -> None:
        logger.debug("ChatActor for chat %s started", self.chat_id)
        self._await(self._deps.storage.load_chat_state(self.chat_id), self._on_loaded)

    def on_failure(
        self,
        exception_type: type[BaseException] | None,
        exception_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._supervisor.tell(
            ChildFailed(self.chat_id, self.actor_urn, repr(exception_value))
        )

    def on_receive(self, message: Any) -> Any:
        match message:
            case Deliver(event=event, stored=stored):
                self._arrivals.append((event, stored))
                self._take_arrivals()
            case _Resumed(token=token, outcome=outcome):
                self._waiting.pop(token)(outcome)
            case _AckDue(message_id=message_id):
                self._acknowledge(message_id)
            case JobDone(job=job):
                self._waiting.pop(job.tag)(Outcome(message))
            case Passivate():
                self._on_passivate()
                return None
            case _:
                return super().on_receive(message)
        self._report_idle()
        return None

    @property
    def busy(self) -> bool:
        return bool(
            self._settings is None or self._arrivals or self._notes or self._waiting
        )

    def _report_idle(self) -> None:
        if self.busy:
            self._reported_idle = False
        elif not self._reported_idle:
            self._reported_idle = True
            self._supervisor.tell(ChildIdle(self.chat_id))

    def _on_passivate(self) -> None:
        if self.busy:
            self._supervisor.tell(PassivateDeclined(self.chat_id))
            return
        self._supervisor.tell(Passivated(self.chat_id))
        self.stop()

    # -- continuations -------------------------------------------------------------

    def _await(
        self, future: CallbackFuture[T], then: Callable[[Outcome[T]], None]
    ) -> None:
        """Continue with `then(outcome)` once `future` is done, as a message."""
        token = self._park(then)
        future.add_done_callback(
            lambda done: self._resume(token, Outcome(*done.outcome()))
        )

    def _io(
        self, coro: Coroutine[Any, Any, T], then: Callable[[Outcome[T]], None]
    ) -> None:
        """Run `coro` on the I/O loop and continue with `then(outcome)`."""
        token = self._park(then)
        self._deps.runner.run(coro, lambda outcome: self._resume(token, outcome))

    def _submit(
        self,
        make_job: Callable[[int], TranscribeJob | SummarizeJob],
        then: Callable[[JobDone], None],
    ) -> None:
        """Queue a model job; continue with `then(job_done)`."""
        token = self._park(lambda outcome: then(cast(JobDone, outcome.value)))
        self._deps.pool.tell(make_job(token))

    def _park(self, then: Callable[[Outcome[Any]], None]) -> int:
        token = next(self._tokens)
        self._waiting[token] = then
        return token

    def _resume(self, token: int, outcome: Outcome[Any]) -> None:
        try:
            self.actor_ref.tell(_Resumed(token, outcome))
        except ActorDeadError:
            logger.debug("Chat %s stopped before an answer arrived", self.chat_id)

    # -- arrival and ordering ----------------------------------------------------

    def _on_loaded(self, outcome: Outcome[ChatState]) -> None:
        if outcome.error is not None:
            # Without settings nothing can be decided; crash so the supervisor
            # restarts this actor with backoff (the updates stay in the inbox).
            raise RuntimeError(f"cannot load chat {self.chat_id}") from outcome.error
        state = outcome.value
        assert state is not None
        self._settings = state.settings or ChatSettings()
        self._pending_at_load = {pending.update_id for pending in state.pending}
        # Updates being delivered are in the inbox too; parse only the others
        # (reading a stored update back costs more than all the rest).
        arriving = {event.update_id for event, _ in self._arrivals}
        replayed = [
            event
            for pending in state.pending
            if pending.update_id not in arriving
            and (event := self._deps.parse_update(pending.payload))
        ]
        if replayed:
            logger.info(
                "Chat %s: resuming %d unfinished updates", self.chat_id, len(replayed)
            )
        for event in sorted(replayed, key=lambda e: e.update_id):
            self._accept(event)
        self._take_arrivals()

    def _take_arrivals(self) -> None:
        """Accept delivered updates in order, each once its store is answered."""
        while self._settings is not None and self._arrivals:
            if self._awaiting_arrival:
                return
            event, stored = self._arrivals[0]
            if stored is not None and not stored.done():
                self._awaiting_arrival = True
                self._await(stored, self._on_arrival_stored)
                return
            self._arrivals.popleft()
            if stored is None or self._is_fresh(event, stored):
                self._accept(event)

    def _on_arrival_stored(self, _: Outcome[bool]) -> None:
        self._awaiting_arrival = False
        self._take_arrivals()

    def _is_fresh(self, event: Inbound, stored: CallbackFuture[bool]) -> bool:
        new, error = stored.outcome()
        if error is not None or new:
            # An error: the edge keeps retrying the store; the work goes on.
            return True
        if event.update_id in self._pending_at_load:
            return True  # stored before a restart and never finished
        logger.info(
            "Chat %s: update %s was handled before; not again",
            self.chat_id,
            event.update_id,
        )
        return False

    def _accept(self, event: Inbound) -> None:
        if event.update_id <= self._last_update_id:
            return  # a replay of something already under way
        self._last_update_id = event.update_id
        if self._unreachable:
            self._deps.storage.finish_update(event.update_id, "unreachable")
            return
        self._deps.storage.save_chat(event.chat, event.sender)
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
                self._deps.storage.finish_update(event.update_id, "ignored")

    def _translator(self, event: Inbound | None = None) -> Translator:
        settings = self._settings or ChatSettings()
        spoken = event.sender.language_code if event and event.sender else None
        return translator(pick_language(settings.language, spoken))

    # -- voice notes -------------------------------------------------------------

    def _on_audio(self, event: AudioIn) -> None:
        settings = self._settings or ChatSettings()
        task = _NoteTask(
            event=event,
            mode=settings.default_mode,
            summary_language=settings.summary_language,
            started=time.monotonic(),
        )
        self._notes[event.message_id] = task
        size = event.audio.file_size
        if size is not None and size > self._deps.max_file_bytes:
            self._fail(task, "too_big")
            return
        self._schedule_ack(event.message_id)
        note = NewNote(
            chat_id=self.chat_id,
            message_id=event.message_id,
            update_id=event.update_id,
            sender_id=event.sender.id if event.sender else None,
            audio=event.audio,
            forward_origin=event.forward_origin,
            sent_at=event.date,
            mode=task.mode,
        )
        prepared = self._deps.storage.prepare_note(note, task.summary_language)
        self._await(prepared, lambda outcome: self._on_prepared(task, outcome))

    def _schedule_ack(self, message_id: int) -> None:
        me = self.actor_ref

        def due() -> None:
            try:
                me.tell(_AckDue(message_id))
            except ActorDeadError:
                logger.debug("Chat %s stopped before its acknowledgement", self.chat_id)

        self._deps.runner.call_later(self._deps.ack_delay, due)

    def _acknowledge(self, message_id: int) -> None:
        task = self._notes.get(message_id)
        if task is None or task.sending:
            return  # answered already: the answer is the acknowledgement
        self._io(
            self._deps.port.react(self.chat_id, message_id, RECEIVED_REACTION),
            lambda outcome: self._log_failure("reaction", outcome),
        )

    def _on_prepared(self, task: _NoteTask, outcome: Outcome[NotePrep]) -> None:
        if outcome.error is not None or outcome.value is None:
            logger.error(
                "Chat %s note %s: could not record the note: %r",
                self.chat_id,
                task.event.message_id,
                outcome.error,
            )
            self._fail(task, "internal")
            return
        prep = outcome.value
        task.reply_ids = prep.reply_ids
        if prep.transcript is None:
            self._submit(
                lambda tag: TranscribeJob(
                    self.chat_id,
                    task.event.message_id,
                    task.event.audio,
                    task.mode,
                    task.summary_language,
                    self.actor_ref,
                    tag,
                ),
                lambda done: self._on_transcribed(task, done),
            )
            return
        task.transcript = prep.transcript
        if prep.summary is not None:
            if prep.from_cache:
                self._store_copy(task, prep.language or "und", prep.summary, Usage())
            self._ready(task, prep.summary)
            return
        language = prep.language or "und"
        self._submit(
            lambda tag: SummarizeJob(
                self.chat_id,
                task.event.message_id,
                prep.transcript or "",
                task.mode,
                task.summary_language,
                self.actor_ref,
                tag,
            ),
            lambda done: self._on_summarized(task, done, language, prep.from_cache),
        )

    def _on_transcribed(self, task: _NoteTask, done: JobDone) -> None:
        task.model_seconds += done.model_seconds
        if not isinstance(done.result, Transcription):
            self._fail(task, _reason(done.error), done.error)
            return
        result = done.result
        self._deps.storage.save_transcription(
            self.chat_id,
            task.event.message_id,
            task.summary_language,
            result,
            task.mode,
        )
        task.transcript = result.transcript
        self._ready(task, result.summary)

    def _on_summarized(
        self, task: _NoteTask, done: JobDone, language: str, from_cache: bool
    ) -> None:
        task.model_seconds += done.model_seconds
        if not isinstance(done.result, Summary):
            self._fail(task, _reason(done.error), done.error)
            return
        if from_cache:
            self._store_copy(task, language, done.result.text, Usage())
        self._deps.storage.save_summary(
            self.chat_id,
            task.event.message_id,
            task.mode,
            task.summary_language,
            done.result,
        )
        self._ready(task, done.result.text)

    def _store_copy(
        self, task: _NoteTask, language: str, summary: str, usage: Usage
    ) -> None:
        """Give a forwarded copy its own transcript row; it cost no request."""
        copy = Transcription(task.transcript or "", summary, language, usage, "cache")
        self._deps.storage.save_transcription(
            self.chat_id, task.event.message_id, task.summary_language, copy, task.mode
        )

    def _ready(self, task: _NoteTask, summary: str) -> None:
        task.summary = summary
        task.ready = True
        self._flush()

    def _fail(
        self, task: _NoteTask, reason: str, error: Exception | None = None
    ) -> None:
        log = logger.error if reason == "internal" else logger.warning
        log(
            "Chat %s note %s failed (%s): %s",
            self.chat_id,
            task.event.message_id,
            reason,
            error,
        )
        self._deps.storage.fail_note(self.chat_id, task.event.message_id, reason)
        self._deps.stats.note_failed(reason)
        task.error = error
        task.failure = reason
        task.summary = None
        task.ready = True
        self._flush()

    def _flush(self) -> None:
        """Send the oldest note's reply once it is ready; the rest wait their turn."""
        if not self._notes:
            return
        task = next(iter(self._notes.values()))
        if not task.ready or task.sending:
            return
        task.sending = True
        if task.reply_ids:
            # A replay of a note whose reply went out before a restart.
            self._on_note_delivered(task, Outcome(task.reply_ids))
            return
        rendered, buttons = self._render_task(task)
        self._io(
            deliver(
                self._deps.port,
                self.chat_id,
                rendered,
                reply_to=task.event.message_id,
                buttons=buttons,
            ),
            lambda outcome: self._on_note_delivered(task, outcome),
        )

    def _render_task(self, task: _NoteTask) -> tuple[render.Rendered, Keyboard | None]:
        t = self._translator(task.event)
        if task.summary is None:
            notice = t(f"error.{task.failure or 'internal'}")
            return render.Rendered([render.text(notice).html]), None
        header = self._header(t, task.event, task.mode)
        rendered = render.note_reply(
            t, header, task.mode, task.summary, task.transcript
        )
        return rendered, note_keyboard(t, task.event.message_id)

    def _header(self, t: Translator, event: AudioIn, mode: Mode) -> render.Fragment:
        sender = event.sender.display_name if event.sender else None
        return render.note_header(
            t,
            sender=sender,
            sent_at=event.date.astimezone(self._zone()),
            mode=mode,
            forward_origin=event.forward_origin,
        )

    def _zone(self) -> ZoneInfo:
        settings = self._settings or ChatSettings()
        try:
            return ZoneInfo(settings.timezone)
        except (ValueError, KeyError):
            return ZoneInfo("UTC")

    def _on_note_delivered(self, task: _NoteTask, outcome: Outcome[list[int]]) -> None:
        message_id = task.event.message_id
        self._notes.pop(message_id, None)
        if outcome.error is not None:
            self._on_delivery_error(task.event, outcome.error)
        else:
            ids = outcome.value or []
            result = "failed" if task.summary is None else "done"
            self._deps.storage.finish_note(
                self.chat_id, message_id, task.event.update_id, ids, result
            )
            if task.summary is not None:
                seconds = time.monotonic() - task.started
                self._deps.stats.note_finished(seconds, task.model_seconds)
                logger.info(
                    "Chat %s note %s answered in %.2fs (model %.2fs, mode %s)",
                    self.chat_id,
                    message_id,
                    seconds,
                    task.model_seconds,
                    task.mode,
                )
        self._flush()

    def _on_delivery_error(self, event: Inbound, error: BaseException) -> None:
        if isinstance(error, ChatUnreachable):
            self._become_unreachable(error)
            return
        logger.error(
            "Chat %s: could not deliver the answer to update %s: %r",
            self.chat_id,
            event.update_id,
            error,
        )
        self._deps.storage.finish_update(event.update_id, "undeliverable")

    def _become_unreachable(self, error: BaseException) -> None:
        """Stop working for a chat that blocked or removed the bot."""
        logger.warning(
            "Chat %s is unreachable (%s); dropping %d queued notes",
            self.chat_id,
            error,
            len(self._notes),
        )
        self._unreachable = True
        for task in self._notes.values():
            self._deps.storage.finish_update(task.event.update_id, "unreachable")
        self._notes.clear()

    # -- commands, buttons, other messages ---------------------------------------

    def _on_command(self, event: CommandIn) -> None:
        if not event.addressed_to_me:
            self._deps.storage.finish_update(event.update_id, "not_for_me")
            return
        t = self._translator(event)
        if event.command in ("start", "help"):
            self._reply(event, render.text(t("command.help")).html)
        elif event.command == "mode":
            self._on_mode_command(event, t)
        else:
            self._reply(event, render.text(t("command.unknown")).html)

    def _on_mode_command(self, event: CommandIn, t: Translator) -> None:
        settings = self._settings or ChatSettings()
        choice = event.args.strip().lower()
        if choice in Mode.__members__.values():
            self._settings = replace(settings, default_mode=Mode(choice))
            self._deps.storage.save_settings(self.chat_id, self._settings)
            label = render.mode_label(t, Mode(choice))
            self._reply(event, render.text(t("command.mode_set", mode=label)).html)
            return
        current = render.mode_label(t, settings.default_mode)
        options = ", ".join(m.value for m in Mode)
        self._reply(
            event,
            render.text(t("command.mode_usage", mode=current, options=options)).html,
        )

    def _on_other(self, event: OtherIn) -> None:
        if event.chat.is_group or event.what != "text":
            self._deps.storage.finish_update(event.update_id, "ignored")
            return
        t = self._translator(event)
        self._reply(event, render.text(t("other.send_voice")).html)

    def _reply(self, event: CommandIn | OtherIn, html: str) -> None:
        """Answer a message, then close its update."""
        rendered = render.Rendered([html])
        self._io(
            deliver(self._deps.port, self.chat_id, rendered, reply_to=event.message_id),
            lambda outcome: self._after_reply(event, outcome),
        )

    def _after_reply(self, event: Inbound, outcome: Outcome[list[int]]) -> None:
        if outcome.error is not None:
            self._on_delivery_error(event, outcome.error)
            return
        self._deps.storage.finish_update(event.update_id, "done")

    def _on_callback(self, event: CallbackIn) -> None:
        action = parse_callback(event.data)
        t = self._translator(event)
        if action is None or event.message_id is None:
            logger.warning(
                "Chat %s: unusable callback data %r from user %s",
                self.chat_id,
                event.data,
                event.sender.id if event.sender else None,
            )
            self._answer(event, t("callback.expired"), alert=True)
            return
        verb, note_id, mode = action
        settings = self._settings or ChatSettings()
        view = self._deps.storage.note_view(
            self.chat_id,
            note_id,
            mode or settings.default_mode,
            settings.summary_language,
        )
        self._await(view, lambda outcome: self._on_view(event, verb, mode, outcome))

    def _on_view(
        self,
        event: CallbackIn,
        verb: str,
        mode: Mode | None,
        outcome: Outcome[NoteView | None],
    ) -> None:
        t = self._translator(event)
        view = outcome.value
        if view is None or view.note.transcript is None:
            self._answer(event, t("callback.not_found"), alert=True)
            return
        assert event.message_id is not None
        if verb == "pick":
            buttons = mode_keyboard(t, view.note.message_id, view.note.mode)
            self._io(
                self._deps.port.edit_buttons(self.chat_id, event.message_id, buttons),
                lambda o: self._answer(event, None),
            )
        elif verb == "back":
            buttons = note_keyboard(t, view.note.message_id)
            self._io(
                self._deps.port.edit_buttons(self.chat_id, event.message_id, buttons),
                lambda o: self._answer(event, None),
            )
        elif mode is not None and view.summary is not None:
            self._show_mode(event, view, mode, view.summary)
        elif mode is not None:
            self._summarize_for(event, view, mode)

    def _summarize_for(self, event: CallbackIn, view: NoteView, mode: Mode) -> None:
        settings = self._settings or ChatSettings()
        t = self._translator(event)
        self._io(
            self._deps.port.answer_callback(event.callback_id, t("callback.working")),
            lambda o: self._log_failure("callback answer", o),
        )

        def then(done: JobDone) -> None:
            if not isinstance(done.result, Summary):
                logger.warning(
                    "Chat %s note %s: no %s summary: %r",
                    self.chat_id,
                    view.note.message_id,
                    mode,
                    done.error,
                )
                self._deps.storage.finish_update(event.update_id, "failed")
                return
            self._deps.storage.save_summary(
                self.chat_id,
                view.note.message_id,
                mode,
                settings.summary_language,
                done.result,
            )
            self._show_mode(event, view, mode, done.result.text, answered=True)

        self._submit(
            lambda tag: SummarizeJob(
                self.chat_id,
                view.note.message_id,
                view.note.transcript or "",
                mode,
                settings.summary_language,
                self.actor_ref,
                tag,
            ),
            then,
        )

    def _show_mode(
        self,
        event: CallbackIn,
        view: NoteView,
        mode: Mode,
        summary: str,
        *,
        answered: bool = False,
    ) -> None:
        """Edit the pressed message to show the note in `mode`."""
        t = self._translator(event)
        note = view.note
        header = render.note_header(
            t,
            sender=note.sender_name,
            sent_at=note.sent_at.astimezone(self._zone()),
            mode=mode,
            forward_origin=note.forward_origin,
        )
        rendered = render.note_reply(t, header, mode, summary, note.transcript)
        assert event.message_id is not None
        self._io(
            replace_message(
                self._deps.port,
                self.chat_id,
                event.message_id,
                rendered,
                note_keyboard(t, note.message_id),
            ),
            lambda outcome: self._after_edit(event, outcome, answered),
        )

    def _after_edit(
        self, event: CallbackIn, outcome: Outcome[list[int]], answered: bool
    ) -> None:
        if outcome.error is not None:
            self._on_delivery_error(event, outcome.error)
            return
        if not answered:
            self._answer(event, None)
        else:
            self._deps.storage.finish_update(event.update_id, "done")

    def _answer(
        self, event: CallbackIn, notice: str | None, *, alert: bool = False
    ) -> None:
        """Answer a button press, then close its update."""
        self._io(
            self._deps.port.answer_callback(event.callback_id, notice, alert=alert),
            lambda outcome: self._after_reply(event, _ignore_value(outcome)),
        )

    def _log_failure(self, what: str, outcome: Outcome[Any]) -> None:
        if outcome.error is not None:
            logger.warning("Chat %s: %s failed: %r", self.chat_id, what, outcome.error)


def _ignore_value(outcome: Outcome[Any]) -> Outcome[list[int]]:
    return Outcome([], outcome.error)


def _reason(error: Exception | None) -> str:
    """Name a job's failure the way user messages and metrics know it."""
    return str(getattr(error, "reason", "internal")) if error else "internal"


# -- buttons -----------------------------------------------------------------------

CALLBACK_PICK = "p"
CALLBACK_BACK = "b"
CALLBACK_MODE = "m"


def note_keyboard(t: Translator, note_id: int) -> Keyboard:
    """The buttons under a note's reply."""
    return [[(t("button.change_mode"), f"{CALLBACK_PICK}:{note_id}")]]


def mode_keyboard(t: Translator, note_id: int, current: Mode) -> Keyboard:
    """The mode picker: one button per mode, and back."""
    buttons = [
        (render.mode_label(t, mode), f"{CALLBACK_MODE}:{note_id}:{mode.value}")
        for mode in Mode
    ]
    return [
        buttons[:3],
        buttons[3:],
        [(t("button.back"), f"{CALLBACK_BACK}:{note_id}")],
    ]


def parse_callback(data: str) -> tuple[str, int, Mode | None] | None:
    """Read callback data; None for anything Voicio never sent."""
    parts = data.split(":")
    if len(parts) < 2 or not parts[1].isdigit() or len(parts[1]) > 15:
        return None
    note_id = int(parts[1])
    if parts[0] == CALLBACK_PICK and len(parts) == 2:
        return "pick", note_id, None
    if parts[0] == CALLBACK_BACK and len(parts) == 2:
        return "back", note_id, None
    if (
        parts[0] == CALLBACK_MODE
        and len(parts) == 3
        and parts[2] in Mode._value2member_map_
    ):
        return "mode", note_id, Mode(parts[2])
    return None
