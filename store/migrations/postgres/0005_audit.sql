-- The audit log: canonical JSON entries with their RFC 6962 leaf hashes,
-- and the signed checkpoints of the tree they form.
CREATE TABLE audit_entries (
    seq       BIGINT PRIMARY KEY,
    canonical BYTEA NOT NULL,
    leaf_hash BYTEA NOT NULL
);

CREATE TABLE audit_checkpoints (
    size       BIGINT PRIMARY KEY,
    note       BYTEA NOT NULL,
    created_at BIGINT NOT NULL
);
