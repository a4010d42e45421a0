-- Tamper evidence: signed checkpoints of a hash chain over each application's event log.
--
-- The audit sealer follows every events table in notification order and extends one chain per
-- application; every N events and at the end of each round it appends a checkpoint: the chain
-- hash at `position`, signed (Ed25519) with the audit signing key. A checkpoint also keeps the
-- positions and content digests of the events it covers, so that `carebridge audit verify` can
-- name the very event that was altered, removed or moved. Digests are SHA-256 of ciphertext:
-- no health content is stored here. Append-only like the event tables.
CREATE TABLE IF NOT EXISTS carebridge.audit_checkpoints (
    application text NOT NULL,
    position bigint NOT NULL,           -- the notification id of the last event covered
    previous_position bigint NOT NULL,  -- the preceding checkpoint's position (0 for the first)
    event_count integer NOT NULL,       -- events between previous_position and position
    chain_hash bytea NOT NULL,          -- SHA-256 chain hash after the event at `position`
    signed_at timestamptz NOT NULL,
    key_id text NOT NULL,               -- first 16 hex digits of SHA-256 of the public key
    signature bytea NOT NULL,           -- Ed25519 over application, positions, count, hash, time
    positions bigint[] NOT NULL,        -- each covered event's notification id, in order
    digests bytea NOT NULL,             -- each covered event's 32-byte content digest, in order
    PRIMARY KEY (application, position)
);
DROP TRIGGER IF EXISTS audit_checkpoints_append_only_rows ON carebridge.audit_checkpoints;
CREATE TRIGGER audit_checkpoints_append_only_rows BEFORE UPDATE OR DELETE
    ON carebridge.audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION carebridge.reject_event_change();
DROP TRIGGER IF EXISTS audit_checkpoints_append_only_truncate ON carebridge.audit_checkpoints;
CREATE TRIGGER audit_checkpoints_append_only_truncate BEFORE TRUNCATE
    ON carebridge.audit_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION carebridge.reject_event_change();
REVOKE ALL ON carebridge.audit_checkpoints FROM carebridge_app;
GRANT SELECT, INSERT ON carebridge.audit_checkpoints TO carebridge_app;
GRANT SELECT ON carebridge.audit_checkpoints TO carebridge_auditor;
