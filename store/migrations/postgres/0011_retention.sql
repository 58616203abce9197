-- Retention of shared documents. A consult under legal hold keeps its
-- documents whatever their age. The retention sweeper first destroys a
-- document's sealed data key (key_enc and any content left in data_enc
-- are cleared and expired_at is set), then deletes its object, then sets
-- deleted_at; the row stays as a tombstone so the chat still says a
-- document was shared. A row with expired_at set is never moved or read.
ALTER TABLE consults ADD COLUMN legal_hold INTEGER NOT NULL DEFAULT 0;
ALTER TABLE documents ADD COLUMN expired_at BIGINT;
ALTER TABLE documents ADD COLUMN deleted_at BIGINT;
