-- SAML assertions that signed someone in, kept until they expire so that a
-- captured assertion never signs in a second time, whichever server it is
-- posted to. A row past expires_at may be dropped: the assertion itself is
-- refused by then.
CREATE TABLE saml_assertions (
    provider     TEXT NOT NULL,
    assertion_id TEXT NOT NULL,
    expires_at   BIGINT NOT NULL,
    PRIMARY KEY (provider, assertion_id)
);

CREATE INDEX saml_assertions_expiry ON saml_assertions (expires_at);
