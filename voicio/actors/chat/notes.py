"""The voice-note pipeline of a ChatActor.

A note is recorded, then answered from what is already known (a replay, or a
forwarded copy of a file transcribed before) or sent to the GeminiPool.
Several of a chat's notes may be with the model at once, but their replies go
out strictly in the order the notes were sent: each waits for the one before.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from voicio import render
from voicio.actors.chat.core import ChatCore, ChatDeps, Tick
from voicio.actors.delivery import deliver
from voicio.actors.gemini_pool import JobDone, PartJob, SummarizeJob, TranscribeJob
from voicio.actors.keyboards import note_keyboard
from voicio.actors.ports import Keyboard
from voicio.actors.runner import Outcome
from voicio.audio.segments import Segment, merge_transcripts
from voicio.domain import (
    AudioIn,
    GroupPolicy,
    Mode,
    Summary,
    Transcription,
    Usage,
)
from voicio.i18n import Translator
from voicio.model.errors import OutputTruncated
from voicio.model.quota import hours_until_quota_reset
from voicio.storage.repository import NewNote, NotePrep

logger = logging.getLogger(__name__)

RECEIVED_REACTION = "👀"
# Parts of a long note: ten minutes of speech stays well inside the output limit.
PART_SECONDS = 600.0


@dataclass
class NoteTask:
    """A voice note from arrival until its reply is sent."""

    event: AudioIn
    mode: Mode
    summary_language: str
    started: float
    transcript: str | None = None
    summary: str | None = None
    # Why the note failed, as the catalogs' `error.*` keys name it.
    failure: str | None = None
    model_seconds: float = 0.0
    reply_ids: list[int] = field(default_factory=list)
    ready: bool = False
    sending: bool = False
    in_parts: bool = False


@dataclass
class _Parts:
    """The parts of a long note on their way through the model."""

    folder: Path
    waiting: int
    heard: dict[int, Transcription] = field(default_factory=dict)
    error: BaseException | None = None


class NotesPart(ChatCore):
    """Take voice notes in, answer them in order."""

    def __init__(self, chat_id: int, supervisor: Any, deps: ChatDeps) -> None:
        super().__init__(chat_id, supervisor, deps)
        self._notes: OrderedDict[int, NoteTask] = OrderedDict()

    def _has_work(self) -> bool:
        return bool(self._notes) or super()._has_work()

    # -- intake ------------------------------------------------------------------

    def _on_audio(self, event: AudioIn) -> None:
        settings = self.settings
        policy = settings.group_policy
        if (
            event.chat.is_group
            and not event.requested
            and policy is not GroupPolicy.ALL
        ):
            # "On request" and "off" cost nothing until someone asks.
            self._finish(event.update_id, f"group_{policy.value}")
            return
        if settings.paused and not event.requested:
            self._finish(event.update_id, "paused")
            return
        if event.message_id in self._notes:
            self._finish(event.update_id, "duplicate")
            return
        task = NoteTask(
            event=event,
            mode=settings.default_mode,
            summary_language=settings.summary_language,
            started=time.monotonic(),
        )
        self._notes[event.message_id] = task
        size = event.audio.file_size
        if size is not None and size > self._deps.audio.max_bytes:
            self._fail(task, "too_big")
            return
        self._after(self._deps.ack_delay, Tick("ack", event.message_id))
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

    def _on_tick(self, tick: Tick) -> None:
        if tick.what == "ack":
            self._acknowledge(tick.key)
        super()._on_tick(tick)

    def _acknowledge(self, message_id: int) -> None:
        task = self._notes.get(message_id)
        if task is None or task.sending:
            return  # answered already: the answer is the acknowledgement
        self._io(
            self._deps.port.react(self.target_id, message_id, RECEIVED_REACTION),
            lambda outcome: self._log_failure("reaction", outcome),
        )

    # -- getting the text ------------------------------------------------------------

    def _on_prepared(self, task: NoteTask, outcome: Outcome[NotePrep]) -> None:
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
            self._transcribe(task)
            return
        task.transcript = prep.transcript
        language = prep.language or "und"
        if prep.summary is not None:
            if prep.from_cache:
                self._store_copy(task, language, prep.summary)
            self._ready(task, prep.summary)
            return
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

    def _transcribe(self, task: NoteTask) -> None:
        long_after = self._deps.long_audio_seconds
        if task.event.audio.duration > long_after:
            self._transcribe_in_parts(task, min(PART_SECONDS, long_after))
            return
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

    def _on_transcribed(self, task: NoteTask, done: JobDone) -> None:
        task.model_seconds += done.model_seconds
        if isinstance(done.error, OutputTruncated) and not task.in_parts:
            # The transcript outgrew the output limit: hear it in shorter parts.
            seconds = max(60.0, task.event.audio.duration / 4)
            self._transcribe_in_parts(task, seconds)
            return
        if not isinstance(done.result, Transcription):
            self._fail(task, failure_reason(done.error), done.error)
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

    # -- long notes, in parts ----------------------------------------------------------

    def _transcribe_in_parts(self, task: NoteTask, part_seconds: float) -> None:
        """Split the audio at silences, transcribe the parts in parallel, merge."""
        task.in_parts = True
        folder = Path(tempfile.mkdtemp(prefix="voicio-note-"))
        logger.info(
            "Chat %s note %s: %ds long, transcribing in parts of about %.0fs",
            self.chat_id,
            task.event.message_id,
            task.event.audio.duration,
            part_seconds,
        )
        self._io(
            self._deps.audio.split_to_parts(task.event.audio, folder, part_seconds),
            lambda outcome: self._on_split(task, folder, outcome),
        )

    def _on_split(
        self, task: NoteTask, folder: Path, outcome: Outcome[list[Segment]]
    ) -> None:
        if outcome.error is not None or not outcome.value:
            shutil.rmtree(folder, ignore_errors=True)
            error = outcome.error if isinstance(outcome.error, Exception) else None
            self._fail(task, failure_reason(error), error)
            return
        parts = _Parts(folder, len(outcome.value))
        for segment in outcome.value:
            self._submit(
                partial(
                    PartJob,
                    self.chat_id,
                    task.event.message_id,
                    segment.path,
                    segment.index,
                    self.actor_ref,
                ),
                partial(self._on_part, task, parts, segment.index),
            )

    def _on_part(
        self, task: NoteTask, parts: _Parts, index: int, done: JobDone
    ) -> None:
        task.model_seconds += done.model_seconds
        if isinstance(done.result, Transcription):
            parts.heard[index] = done.result
        elif parts.error is None:
            parts.error = done.error or RuntimeError("part failed")
        parts.waiting -= 1
        if parts.waiting:
            return
        shutil.rmtree(parts.folder, ignore_errors=True)
        if parts.error is not None:
            error = parts.error if isinstance(parts.error, Exception) else None
            self._fail(task, failure_reason(error), error)
            return
        heard = [parts.heard[i] for i in sorted(parts.heard)]
        task.transcript = merge_transcripts([part.transcript for part in heard])
        language = Counter(part.language for part in heard).most_common(1)[0][0]
        usage = sum((part.usage for part in heard), Usage())
        logger.info(
            "Chat %s note %s: %d parts heard, %d characters",
            self.chat_id,
            task.event.message_id,
            len(heard),
            len(task.transcript),
        )
        self._submit(
            lambda tag: SummarizeJob(
                self.chat_id,
                task.event.message_id,
                task.transcript or "",
                task.mode,
                task.summary_language,
                self.actor_ref,
                tag,
            ),
            lambda summarized: self._on_merged_summary(
                task, summarized, language, usage
            ),
        )

    def _on_merged_summary(
        self, task: NoteTask, done: JobDone, language: str, usage: Usage
    ) -> None:
        task.model_seconds += done.model_seconds
        if not isinstance(done.result, Summary):
            self._fail(task, failure_reason(done.error), done.error)
            return
        whole = Transcription(
            task.transcript or "",
            done.result.text,
            language,
            usage + done.result.usage,
            done.result.model,
        )
        self._deps.storage.save_transcription(
            self.chat_id, task.event.message_id, task.summary_language, whole, task.mode
        )
        self._ready(task, done.result.text)

    def _on_summarized(
        self, task: NoteTask, done: JobDone, language: str, from_cache: bool
    ) -> None:
        task.model_seconds += done.model_seconds
        if not isinstance(done.result, Summary):
            self._fail(task, failure_reason(done.error), done.error)
            return
        if from_cache:
            self._store_copy(task, language, done.result.text)
        self._deps.storage.save_summary(
            self.chat_id,
            task.event.message_id,
            task.mode,
            task.summary_language,
            done.result,
        )
        self._ready(task, done.result.text)

    def _store_copy(self, task: NoteTask, language: str, summary: str) -> None:
        """Give a forwarded copy its own transcript; it cost no request."""
        copy = Transcription(task.transcript or "", summary, language, Usage(), "cache")
        self._deps.storage.save_transcription(
            self.chat_id, task.event.message_id, task.summary_language, copy, task.mode
        )

    def _ready(self, task: NoteTask, summary: str) -> None:
        if task.transcript is not None and not task.transcript.strip():
            # Nothing was said: whatever the model wrote is not a summary.
            summary = ""
        task.summary = summary
        task.ready = True
        self._flush()

    def _fail(
        self, task: NoteTask, reason: str, error: Exception | None = None
    ) -> None:
        # Expected refusals are the user's to fix; the rest is work given up on.
        expected = reason in ("too_big", "unreadable", "quota_exhausted", "blocked")
        log = logger.warning if expected else logger.error
        log(
            "Chat %s note %s failed (%s): %s",
            self.chat_id,
            task.event.message_id,
            reason,
            error,
        )
        self._deps.storage.fail_note(self.chat_id, task.event.message_id, reason)
        self._deps.stats.note_failed(reason)
        task.failure = reason
        task.summary = None
        task.ready = True
        self._flush()

    # -- answering, in order -----------------------------------------------------------

    def _flush(self) -> None:
        """Send the oldest note's reply once it is ready; the rest wait their turn."""
        if not self._notes:
            return
        task = next(iter(self._notes.values()))
        if not task.ready or task.sending:
            return
        task.sending = True
        if task.reply_ids and not task.event.requested:
            # A replay of a note whose reply went out before a restart (one
            # asked for again with /transcribe is answered again).
            self._settle_note(task, task.reply_ids, "done")
            return
        rendered, buttons = self._render_task(task)
        self._transmit(
            lambda: deliver(
                self._deps.port,
                self.target_id,
                rendered,
                reply_to=task.event.message_id,
                buttons=buttons,
            ),
            lambda ids, outcome: self._settle_note(task, ids, outcome),
        )

    def _render_task(self, task: NoteTask) -> tuple[render.Rendered, Keyboard | None]:
        t = self._translator(task.event)
        if task.summary is None:
            notice = failure_notice(t, task.failure or "internal")
            return render.Rendered([render.text(notice).html]), None
        header = self.note_header(
            t,
            sender=task.event.sender.display_name if task.event.sender else None,
            sent_at=task.event.date,
            mode=task.mode,
            forward_origin=task.event.forward_origin,
        )
        rendered = render.note_reply(
            t, header, task.mode, task.summary, task.transcript
        )
        return rendered, note_keyboard(t, task.event.message_id)

    def note_header(
        self,
        t: Translator,
        *,
        sender: str | None,
        sent_at: Any,
        mode: Mode,
        forward_origin: str | None,
    ) -> render.Fragment:
        """The reply's first line, with the note's time in the chat's time zone."""
        return render.note_header(
            t,
            sender=sender,
            sent_at=sent_at.astimezone(self._zone()),
            mode=mode,
            forward_origin=forward_origin,
        )

    def _settle_note(self, task: NoteTask, ids: list[int], outcome: str) -> None:
        message_id = task.event.message_id
        self._notes.pop(message_id, None)
        if outcome == "done" and task.summary is None:
            outcome = "failed"
        self._deps.storage.finish_note(
            self.chat_id, message_id, task.event.update_id, ids, outcome
        )
        if task.summary is not None and outcome in ("done", "maybe_delivered"):
            seconds = time.monotonic() - task.started
            self._deps.stats.note_finished(seconds)
            logger.info(
                "Chat %s note %s answered in %.2fs (model %.2fs, mode %s)",
                self.chat_id,
                message_id,
                seconds,
                task.model_seconds,
                task.mode,
            )
        self._flush()

    def _drop_queued_work(self) -> None:
        dropped = [task for task in self._notes.values() if not task.sending]
        if dropped:
            logger.warning(
                "Chat %s: dropping %d queued notes nobody can receive",
                self.chat_id,
                len(dropped),
            )
        for task in dropped:
            del self._notes[task.event.message_id]
            self._finish(task.event.update_id, "unreachable")
        super()._drop_queued_work()


def failure_notice(t: Translator, reason: str) -> str:
    """The user's sentence for a failure, with when to try again if known."""
    if reason == "quota_exhausted":
        return t("error.quota_exhausted", hours=hours_until_quota_reset())
    return t(f"error.{reason}")


def failure_reason(error: Exception | None) -> str:
    """Name a job's failure the way user messages and metrics know it."""
    return str(getattr(error, "reason", "internal")) if error else "internal"
