-- Denials of guests. A guest denied admission or removed by the host is
-- marked, and its session ends. device_hash is the SHA-256 of a random
-- per-browser cookie, so a link can refuse a device denied too often; it
-- names no one.
ALTER TABLE guests ADD COLUMN device_hash BLOB;
ALTER TABLE guests ADD COLUMN denied_at BIGINT;
CREATE INDEX guests_link_device ON guests (link_id, device_hash);
