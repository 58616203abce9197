ALTER TABLE guests ADD COLUMN device_hash BYTEA;
ALTER TABLE guests ADD COLUMN denied_at BIGINT;
CREATE INDEX guests_link_device ON guests (link_id, device_hash);
