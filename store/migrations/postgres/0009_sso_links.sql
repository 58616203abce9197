-- Accounts signed in through an institution's identity provider (single
-- sign-on). A link ties the provider's stable subject to one account; the
-- account was created at its first sign-in and has no local password.
CREATE TABLE sso_links (
    provider   TEXT NOT NULL,
    subject    TEXT NOT NULL,
    user_id    TEXT NOT NULL UNIQUE REFERENCES users(id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (provider, subject)
);

-- An account of the identity provider never gets a local password, whatever
-- path tries: the provider alone decides who may sign in as it.
CREATE FUNCTION sso_links_no_password() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM sso_links WHERE user_id = NEW.id) THEN
        RAISE EXCEPTION 'single sign-on account has no local password';
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER sso_links_no_password BEFORE UPDATE OF password_hash ON users
FOR EACH ROW EXECUTE FUNCTION sso_links_no_password();

CREATE FUNCTION sso_links_no_password_link() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM sso_links WHERE user_id = NEW.user_id) THEN
        RAISE EXCEPTION 'single sign-on account has no local password';
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER sso_links_no_password_link BEFORE INSERT ON user_tokens
FOR EACH ROW EXECUTE FUNCTION sso_links_no_password_link();
