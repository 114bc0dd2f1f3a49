-- The mode a note's summary message currently shows (buttons switch it), so
-- "redo" knows what to redo; and an index for the retention purge and the
-- history view, which both walk a chat's notes by time.

ALTER TABLE voice_notes ADD COLUMN shown_mode text;

CREATE INDEX voice_notes_by_chat_and_time ON voice_notes (chat_id, sent_at DESC, message_id DESC);

CREATE INDEX voice_notes_by_time ON voice_notes (created_at);

CREATE INDEX updates_done_by_time ON updates (done_at) WHERE done_at IS NOT NULL;
