-- Live consults on several signal replicas. One replica owns each live
-- consult through its lease row; epoch grows by one at every takeover and
-- is never reset (a released lease keeps its row with expires_at 0), so a
-- replica that lost the lease cannot pass for its owner again. Times are
-- milliseconds of the database's clock, never of a replica's.
-- waiting is how many wait in the consult's lobby, as the owner last said.
CREATE TABLE consult_leases (
    consult_id TEXT PRIMARY KEY REFERENCES consults(id) ON DELETE CASCADE,
    owner      TEXT NOT NULL,
    epoch      BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    waiting    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX consult_leases_owner ON consult_leases (owner);

-- Members admitted to a live consult, so that the replica that takes the
-- consult over after its owner died lets them back in without the lobby.
-- A row goes when the member leaves, is removed or times out.
CREATE TABLE consult_admissions (
    consult_id  TEXT NOT NULL REFERENCES consults(id) ON DELETE CASCADE,
    member_id   TEXT NOT NULL,
    admitted_at BIGINT NOT NULL,
    PRIMARY KEY (consult_id, member_id)
);
