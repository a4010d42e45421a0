-- Step-up verification: when the session last proved a second factor. Kept in step with the
-- Session aggregate's SecondFactorVerified events, in the same transaction.
ALTER TABLE carebridge.session_activity ADD COLUMN IF NOT EXISTS verified_at timestamptz;

-- The notification outbox: messages to send by email, SMS or push, written in the same
-- transaction as the events that call for them, and delivered by a dispatcher (several may
-- run: rows are claimed with SKIP LOCKED). Once delivered, the recipient and the message
-- content are erased; what remains is a record that a message of a kind was sent to an
-- account, when, and how many attempts it took. Messages never carry medical detail.
CREATE TABLE IF NOT EXISTS carebridge.outbox (
    message_id uuid PRIMARY KEY,
    account_id uuid,
    channel text NOT NULL CHECK (channel IN ('email', 'sms', 'push')),
    kind text NOT NULL,
    recipient text,
    payload jsonb,
    created_at timestamptz NOT NULL,
    next_attempt_at timestamptz NOT NULL,
    attempts integer NOT NULL DEFAULT 0,
    delivered_at timestamptz,
    failed_at timestamptz,
    last_error text
);
CREATE INDEX IF NOT EXISTS outbox_due ON carebridge.outbox (next_attempt_at)
    WHERE delivered_at IS NULL AND failed_at IS NULL;
CREATE INDEX IF NOT EXISTS outbox_account ON carebridge.outbox (account_id, created_at);

GRANT SELECT, INSERT, UPDATE ON carebridge.outbox TO carebridge_app;
GRANT SELECT (message_id, account_id, channel, kind, created_at, attempts, delivered_at,
              failed_at) ON carebridge.outbox TO carebridge_auditor;
