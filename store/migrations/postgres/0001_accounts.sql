-- Accounts of clinicians and administrators, and the one-time links that
-- create the first administrator. Times are Unix milliseconds, UTC, as in
-- the SQLite schema, so that a copy between the two is a plain row copy.
CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    role          TEXT NOT NULL CHECK (role IN ('admin', 'clinician')),
    password_hash TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    disabled_at   BIGINT
);

-- Only a hash of each token is kept: a copy of the database does not hand
-- out a working setup link.
CREATE TABLE setup_tokens (
    token_hash BYTEA PRIMARY KEY,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT
);
