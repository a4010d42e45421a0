-- Sign-in sessions: a write-side lookup of each session's liveness, checked on every request.
-- The Session aggregate's events are the record; this table is kept in step with them in the
-- same transaction, and additionally remembers when the session was last used.

CREATE TABLE IF NOT EXISTS carebridge.session_activity (
    session_id uuid PRIMARY KEY,
    account_id uuid NOT NULL,
    device_label text NOT NULL,
    started_at timestamptz NOT NULL,
    last_seen_at timestamptz NOT NULL,
    ends_at timestamptz NOT NULL,
    ended_reason text
);
CREATE INDEX IF NOT EXISTS session_activity_account
    ON carebridge.session_activity (account_id) WHERE ended_reason IS NULL;

GRANT SELECT, INSERT, UPDATE ON carebridge.session_activity TO carebridge_app;
GRANT SELECT ON carebridge.session_activity TO carebridge_auditor;
