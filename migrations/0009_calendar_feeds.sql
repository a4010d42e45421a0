-- Private calendar feeds: a write-side lookup from the SHA-256 of a feed token to the patient
-- it belongs to, kept in step with the CalendarFeed events in the same transaction. The token
-- itself is never stored; a rotated or revoked token keeps its row with revoked_at set.
CREATE TABLE IF NOT EXISTS carebridge.calendar_feeds (
    token_sha256 bytea PRIMARY KEY,
    account_id uuid NOT NULL,
    created_at timestamptz NOT NULL,
    revoked_at timestamptz
);
CREATE UNIQUE INDEX IF NOT EXISTS calendar_feeds_live
    ON carebridge.calendar_feeds (account_id) WHERE revoked_at IS NULL;

GRANT SELECT, INSERT, UPDATE ON carebridge.calendar_feeds TO carebridge_app;
GRANT SELECT ON carebridge.calendar_feeds TO carebridge_auditor;
