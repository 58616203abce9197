-- Shared documents move into the object store. object names the stored
-- object (a random name) and key_enc is its data key sealed by the
-- keyring. A row whose key_enc is NULL still holds its content in
-- data_enc until signal moves it at start-up; a moved row keeps an empty
-- data_enc.
ALTER TABLE documents ADD COLUMN object TEXT;
ALTER TABLE documents ADD COLUMN key_enc BLOB;
