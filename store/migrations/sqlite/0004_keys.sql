-- Data keys, each wrapped (AES-256-GCM) by the master key, which is never
-- stored here. master names the master key's fingerprint.
CREATE TABLE data_keys (
    id         INTEGER PRIMARY KEY,
    wrapped    BLOB NOT NULL,
    master     TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    active     INTEGER NOT NULL DEFAULT 0
);
