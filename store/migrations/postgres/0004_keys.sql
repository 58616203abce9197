-- Data keys, each wrapped (AES-256-GCM) by the master key, which is never
-- stored here. master names the master key's fingerprint. Ids are chosen by
-- the keyring, not by the database.
CREATE TABLE data_keys (
    id         BIGINT PRIMARY KEY,
    wrapped    BYTEA NOT NULL,
    master     TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    active     BIGINT NOT NULL DEFAULT 0
);
