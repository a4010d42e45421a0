-- Notification delivery (commands/outbox.py, commands/push.py).
--
-- The dispatcher hands each due outbox row to a dramatiq actor and notes when (`queued_at`):
-- a row queued but never processed (the broker lost the message, a worker died) is queued
-- again once the lease has run out. Quiet hours move a care notification's `not_before` to the
-- end of the window; `deferred_count` says how often that happened (no attempt is counted).
ALTER TABLE carebridge.outbox ADD COLUMN IF NOT EXISTS queued_at timestamptz;
ALTER TABLE carebridge.outbox ADD COLUMN IF NOT EXISTS deferred_count integer NOT NULL DEFAULT 0;
ALTER TABLE carebridge.outbox ADD COLUMN IF NOT EXISTS retried_at timestamptz;
CREATE INDEX IF NOT EXISTS outbox_failed ON carebridge.outbox (failed_at)
    WHERE failed_at IS NOT NULL;
GRANT SELECT (queued_at, deferred_count, retried_at, last_error) ON carebridge.outbox
    TO carebridge_auditor;

-- Push devices: the app registers each installation's provider token. A token the provider
-- calls unregistered is deleted. Tokens are credentials of the device: auditors get no grant.
CREATE TABLE IF NOT EXISTS carebridge.push_devices (
    account_id uuid NOT NULL,
    device_id text NOT NULL,
    platform text NOT NULL CHECK (platform IN ('fcm', 'apns')),
    token text NOT NULL,
    registered_at timestamptz NOT NULL,
    PRIMARY KEY (account_id, device_id)
);
GRANT SELECT, INSERT, UPDATE, DELETE ON carebridge.push_devices TO carebridge_app;
