-- Voicio's first schema: chats and their settings, users, the durable inbox of
-- Telegram updates, voice notes with their transcripts, summaries per mode, and
-- the bot messages sent for each note.

CREATE TABLE chats (
    id               bigint PRIMARY KEY,
    type             text NOT NULL,
    title            text,
    -- NULL: speak the language of whoever is talking to the bot
    language         text,
    -- 'same': summarize in the language that was spoken
    summary_language text NOT NULL DEFAULT 'same',
    default_mode     text NOT NULL DEFAULT 'brief',
    timezone         text NOT NULL DEFAULT 'UTC',
    paused           boolean NOT NULL DEFAULT false,
    group_policy     text NOT NULL DEFAULT 'all',
    -- set when Telegram answers Forbidden: the bot was blocked or removed
    unreachable_at   timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
    id            bigint PRIMARY KEY,
    first_name    text NOT NULL,
    last_name     text,
    username      text,
    language_code text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- Every update is stored here before Telegram may consider it delivered.
CREATE TABLE updates (
    update_id   bigint PRIMARY KEY,
    chat_id     bigint,
    payload     jsonb NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    attempts    integer NOT NULL DEFAULT 0,
    done_at     timestamptz,
    outcome     text
);

CREATE INDEX updates_pending_by_chat ON updates (chat_id, update_id)
    WHERE done_at IS NULL;

CREATE TABLE voice_notes (
    chat_id        bigint NOT NULL REFERENCES chats (id)
                       ON DELETE CASCADE ON UPDATE CASCADE,
    message_id     bigint NOT NULL,
    update_id      bigint,
    sender_id      bigint,
    kind           text NOT NULL,
    file_id        text NOT NULL,
    file_unique_id text NOT NULL,
    duration       integer NOT NULL,
    file_size      bigint,
    mime_type      text,
    file_name      text,
    forward_origin text,
    sent_at        timestamptz NOT NULL,
    mode           text NOT NULL,
    status         text NOT NULL DEFAULT 'pending',
    transcript     text,
    language       text,
    model          text,
    audio_tokens   integer NOT NULL DEFAULT 0,
    text_tokens    integer NOT NULL DEFAULT 0,
    output_tokens  integer NOT NULL DEFAULT 0,
    thought_tokens integer NOT NULL DEFAULT 0,
    error          text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    transcribed_at timestamptz,
    PRIMARY KEY (chat_id, message_id)
);

-- A forwarded copy keeps its file_unique_id: look the transcript up instead of
-- paying for it again.
CREATE INDEX voice_notes_transcribed_file ON voice_notes (file_unique_id)
    WHERE transcript IS NOT NULL;

CREATE TABLE summaries (
    chat_id        bigint NOT NULL,
    message_id     bigint NOT NULL,
    mode           text NOT NULL,
    -- the summary language asked for ('same' or a language code)
    language       text NOT NULL,
    text           text NOT NULL,
    model          text,
    audio_tokens   integer NOT NULL DEFAULT 0,
    text_tokens    integer NOT NULL DEFAULT 0,
    output_tokens  integer NOT NULL DEFAULT 0,
    thought_tokens integer NOT NULL DEFAULT 0,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (chat_id, message_id, mode),
    FOREIGN KEY (chat_id, message_id) REFERENCES voice_notes (chat_id, message_id)
        ON DELETE CASCADE ON UPDATE CASCADE
);

-- The bot's own messages for a note, so a replay edits what exists instead of
-- sending it twice.
CREATE TABLE replies (
    chat_id         bigint NOT NULL,
    note_message_id bigint NOT NULL,
    part            integer NOT NULL,
    message_id      bigint NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (chat_id, note_message_id, part),
    FOREIGN KEY (chat_id, note_message_id) REFERENCES voice_notes (chat_id, message_id)
        ON DELETE CASCADE ON UPDATE CASCADE
);
