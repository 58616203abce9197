-- Passkeys and security keys (WebAuthn credentials) of staff accounts.
-- credential holds the verified credential as the relying-party library
-- encodes it (public key, flags, attestation facts); sign_count is kept in
-- its own column so that a regression can be refused in one statement.
CREATE TABLE passkeys (
    id            TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    credential_id BLOB NOT NULL UNIQUE,
    name          TEXT NOT NULL,
    credential    BLOB NOT NULL,
    sign_count    BIGINT NOT NULL DEFAULT 0,
    created_at    BIGINT NOT NULL,
    last_used_at  BIGINT
);
CREATE INDEX passkeys_user ON passkeys (user_id);

-- The state of one WebAuthn ceremony (its challenge, user and options) is
-- kept here, tied to the session that began it, and taken exactly once: the
-- browser never supplies a challenge of its own.
CREATE TABLE webauthn_ceremonies (
    session_hash BLOB PRIMARY KEY REFERENCES sessions(id_hash) ON DELETE CASCADE,
    purpose      TEXT NOT NULL,
    data         BLOB NOT NULL,
    expires_at   BIGINT NOT NULL
);
