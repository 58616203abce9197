-- The name a clinician shows to patients ("Dr. Ana Ruiz"), chosen by the
-- account's owner or an administrator; empty shows the username.
ALTER TABLE users ADD COLUMN display_name TEXT NOT NULL DEFAULT '';
