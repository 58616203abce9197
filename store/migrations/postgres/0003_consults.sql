-- Consults, the links that let guests in, the guests who used them, and the
-- chat. Names, titles, link tokens and chat text are sealed (AES-256-GCM)
-- before they reach these tables.
CREATE TABLE consults (
    id         TEXT PRIMARY KEY,
    owner_id   TEXT NOT NULL REFERENCES users(id),
    title_enc  BYTEA,
    relay_only BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    ended_at   BIGINT
);
CREATE INDEX consults_owner ON consults (owner_id, created_at);

-- label says who the link is for (patient, interpreter, family); it is a
-- role, not a name. The token is kept sealed so the owner can show the link
-- again, and hashed so a link can be looked up without unsealing.
CREATE TABLE consult_links (
    id         TEXT PRIMARY KEY,
    consult_id TEXT NOT NULL REFERENCES consults(id) ON DELETE CASCADE,
    token_hash BYTEA NOT NULL UNIQUE,
    token_enc  BYTEA NOT NULL,
    label      TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX consult_links_consult ON consult_links (consult_id);

CREATE TABLE guests (
    id         TEXT PRIMARY KEY,
    consult_id TEXT NOT NULL REFERENCES consults(id) ON DELETE CASCADE,
    link_id    TEXT NOT NULL REFERENCES consult_links(id) ON DELETE CASCADE,
    name_enc   BYTEA NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE chat_messages (
    consult_id TEXT NOT NULL REFERENCES consults(id) ON DELETE CASCADE,
    seq        BIGINT NOT NULL,
    member_id  TEXT NOT NULL,
    name_enc   BYTEA NOT NULL,
    text_enc   BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (consult_id, seq)
);
