-- Passkeys and security keys (WebAuthn credentials) of staff accounts.
-- credential holds the verified credential as the relying-party library
-- encodes it (public key, flags, attestation facts); sign_count is kept in
-- its own column so that a regression can be refused in one statement.
CREATE TABLE passkeys (
    id            TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    credential_id BYTEA NOT NULL UNIQUE,
    name          TEXT NOT NULL,
    credential    BYTEA NOT NULL,
    sign_count    BIGINT NOT NULL DEFAULT 0,
    created_at    BIGINT NOT NULL,
    last_used_at  BIGINT
);
CREATE INDEX passkeys_user ON passkeys (user_id);

-- The state of one WebAuthn ceremony (its challenge, user and options) is
-- kept here and taken exactly once: the browser never supplies a challenge
-- of its own. owner_hash is the hash of the session that began the
-- ceremony, or for a sign-in without a password the hash of a random
-- cookie set with the options. Expired rows are purged as new ones come.
CREATE TABLE webauthn_ceremonies (
    owner_hash BYTEA PRIMARY KEY,
    purpose    TEXT NOT NULL,
    data       BYTEA NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX webauthn_ceremonies_expiry ON webauthn_ceremonies (expires_at);
