-- Consult recordings. Each recorded member's media is one WebM file
-- (recording_files; format 'matroska' for H.264 video), stored encrypted in the object store as a sequence
-- of segment objects whose concatenation is the file; key_enc is each
-- segment's data key sealed by the keyring. state is 'recording' while it
-- runs (updated_at moves with every stored segment), then 'complete', or
-- 'partial' when the media node failed or the recording was interrupted.
-- Consent names are sealed. Retention destroys every segment's key
-- (expired_at), deletes the objects, then sets deleted_at; the recording,
-- its files and consents stay as a record that it existed.
CREATE TABLE recordings (
    id           TEXT PRIMARY KEY,
    consult_id   TEXT NOT NULL REFERENCES consults(id) ON DELETE CASCADE,
    requested_by TEXT NOT NULL,
    started_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    ended_at     BIGINT,
    state        TEXT NOT NULL,
    stop_reason  TEXT NOT NULL DEFAULT '',
    size         BIGINT NOT NULL DEFAULT 0,
    duration_ms  BIGINT NOT NULL DEFAULT 0,
    expired_at   BIGINT,
    deleted_at   BIGINT
);
CREATE INDEX recordings_consult ON recordings (consult_id, started_at);
CREATE INDEX recordings_started ON recordings (started_at);

CREATE TABLE recording_files (
    id           TEXT PRIMARY KEY,
    recording_id TEXT NOT NULL REFERENCES recordings(id) ON DELETE CASCADE,
    member_id    TEXT NOT NULL,
    kinds        TEXT NOT NULL,
    format       TEXT NOT NULL DEFAULT 'webm',
    offset_ms    BIGINT NOT NULL,
    duration_ms  BIGINT NOT NULL DEFAULT 0,
    size         BIGINT NOT NULL DEFAULT 0,
    complete     INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX recording_files_recording ON recording_files (recording_id);

CREATE TABLE recording_segments (
    file_id TEXT NOT NULL REFERENCES recording_files(id) ON DELETE CASCADE,
    seq     INTEGER NOT NULL,
    object  TEXT NOT NULL,
    key_enc BYTEA,
    size    BIGINT NOT NULL,
    PRIMARY KEY (file_id, seq)
);

CREATE TABLE recording_consents (
    recording_id TEXT NOT NULL REFERENCES recordings(id) ON DELETE CASCADE,
    member_id    TEXT NOT NULL,
    account_id   TEXT,
    name_enc     BYTEA NOT NULL,
    consented_at BIGINT NOT NULL,
    PRIMARY KEY (recording_id, member_id)
);
