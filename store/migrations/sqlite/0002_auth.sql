-- Sign-in, second factor, sessions and account tokens.
ALTER TABLE users ADD COLUMN email_enc BLOB;
ALTER TABLE users ADD COLUMN totp_secret_enc BLOB;
ALTER TABLE users ADD COLUMN totp_enabled_at BIGINT;
-- The last TOTP time step accepted: a code of that step or earlier is a replay.
ALTER TABLE users ADD COLUMN totp_last_step BIGINT NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN must_change_password INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN password_changed_at BIGINT;
-- An account created by an administrator is usable once its owner has
-- chosen a password through the activation link.
ALTER TABLE users ADD COLUMN activated_at BIGINT;
UPDATE users SET activated_at = created_at, password_changed_at = created_at;

CREATE TABLE password_history (
    id            INTEGER PRIMARY KEY,
    user_id       TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    password_hash TEXT NOT NULL,
    created_at    BIGINT NOT NULL
);
CREATE INDEX password_history_user ON password_history (user_id, created_at);

CREATE TABLE recovery_codes (
    user_id   TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    code_hash BLOB NOT NULL,
    used_at   BIGINT,
    PRIMARY KEY (user_id, code_hash)
);

-- Failed sign-ins are counted per username whether or not the account
-- exists, so a lockout says nothing about which usernames are real.
CREATE TABLE signin_failures (
    username     TEXT PRIMARY KEY,
    failures     INTEGER NOT NULL,
    locked_until BIGINT NOT NULL DEFAULT 0
);

-- Server-side sessions; the cookie holds the id, the table only its hash.
-- stage: password (second factor pending), enroll (second factor must be set
-- up), change (password must be changed), full.
CREATE TABLE sessions (
    id_hash      BLOB PRIMARY KEY,
    user_id      TEXT REFERENCES users(id) ON DELETE CASCADE,
    guest_id     TEXT,
    consult_id   TEXT,
    stage        TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    CHECK ((user_id IS NULL) <> (guest_id IS NULL))
);
CREATE INDEX sessions_user ON sessions (user_id);

-- Single-use links mailed to a user: password reset and account activation.
CREATE TABLE user_tokens (
    token_hash BLOB PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    purpose    TEXT NOT NULL CHECK (purpose IN ('reset', 'activate')),
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT
);
CREATE INDEX user_tokens_user ON user_tokens (user_id);
