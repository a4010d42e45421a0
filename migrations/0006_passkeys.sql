-- Passkeys (WebAuthn): a write-side lookup from a credential id to its account and stream, so
-- that a sign-in without an email address can find the passkey it presents. The Passkey
-- aggregate's events are the record; this table is kept in step with them in the same
-- transaction. Nothing here is secret: public keys live only in the (encrypted) events.
CREATE TABLE IF NOT EXISTS carebridge.passkeys (
    credential_id text PRIMARY KEY,
    account_id uuid NOT NULL,
    passkey_id uuid NOT NULL UNIQUE,
    registered_at timestamptz NOT NULL,
    removed_at timestamptz,
    clone_suspected_at timestamptz
);
CREATE INDEX IF NOT EXISTS passkeys_account
    ON carebridge.passkeys (account_id) WHERE removed_at IS NULL;

GRANT SELECT, INSERT, UPDATE ON carebridge.passkeys TO carebridge_app;
GRANT SELECT ON carebridge.passkeys TO carebridge_auditor;

-- Each passkey challenge works once: its hash is recorded when it is presented and kept until
-- the signed options that carry it have expired (housekeeping deletes older rows).
CREATE TABLE IF NOT EXISTS carebridge.spent_webauthn_challenges (
    challenge_sha256 bytea PRIMARY KEY,
    expires_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS spent_webauthn_challenges_expires
    ON carebridge.spent_webauthn_challenges (expires_at);

GRANT SELECT, INSERT, DELETE ON carebridge.spent_webauthn_challenges TO carebridge_app;
GRANT SELECT ON carebridge.spent_webauthn_challenges TO carebridge_auditor;
