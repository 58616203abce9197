-- Documents and photos shared in a consult's chat. The file name and the
-- content are sealed; the type and size are not PHI and drive the download.
CREATE TABLE documents (
    id           TEXT PRIMARY KEY,
    consult_id   TEXT NOT NULL REFERENCES consults(id) ON DELETE CASCADE,
    member_id    TEXT NOT NULL,
    name_enc     BYTEA NOT NULL,
    content_type TEXT NOT NULL,
    size         BIGINT NOT NULL,
    data_enc     BYTEA NOT NULL,
    created_at   BIGINT NOT NULL
);
CREATE INDEX documents_consult ON documents (consult_id);

ALTER TABLE chat_messages ADD COLUMN document_id TEXT REFERENCES documents(id);
