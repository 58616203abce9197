-- The audit log: canonical JSON entries with their RFC 6962 leaf hashes,
-- and the signed checkpoints of the tree they form.
CREATE TABLE audit_entries (
    seq       INTEGER PRIMARY KEY,
    canonical BLOB NOT NULL,
    leaf_hash BLOB NOT NULL
);

CREATE TABLE audit_checkpoints (
    size       INTEGER PRIMARY KEY,
    note       BLOB NOT NULL,
    created_at BIGINT NOT NULL
);
