-- The waitlist and planned reminders.
--
-- carebridge.waitlist_entries is a write-side lookup kept in step with the waitlist context's
-- events in the same transaction: the process manager finds the first eligible patient for a
-- freed slot with one indexed query. It holds identifiers, dates and the urgency only.
CREATE TABLE IF NOT EXISTS carebridge.waitlist_entries (
    entry_id uuid PRIMARY KEY,
    patient_id uuid NOT NULL,
    clinic_id text NOT NULL,
    clinician_id uuid,                 -- NULL: any clinician for the consultation type
    consultation_type_id text NOT NULL,
    date_from date NOT NULL,           -- clinic-local days, inclusive
    date_to date NOT NULL,
    urgency_rank smallint NOT NULL,    -- 0 urgent, 1 soon, 2 routine
    joined_at timestamptz NOT NULL,
    status text NOT NULL CHECK (status IN ('waiting', 'offered', 'fulfilled', 'left')),
    offer_clinician_id uuid,
    offer_starts_at timestamptz,
    offer_expires_at timestamptz,
    updated_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS waitlist_entries_queue
    ON carebridge.waitlist_entries (clinic_id, consultation_type_id, urgency_rank, joined_at)
    WHERE status = 'waiting';
CREATE INDEX IF NOT EXISTS waitlist_entries_offers
    ON carebridge.waitlist_entries (offer_expires_at) WHERE status = 'offered';
CREATE INDEX IF NOT EXISTS waitlist_entries_patient
    ON carebridge.waitlist_entries (patient_id, joined_at);
GRANT SELECT, INSERT, UPDATE ON carebridge.waitlist_entries TO carebridge_app;
GRANT SELECT ON carebridge.waitlist_entries TO carebridge_auditor;

-- Planned messages (appointment reminders): not sent before `not_before`; `about_id` names the
-- appointment so that a cancellation or a move withdraws them; a withdrawn message is never
-- sent and keeps no recipient or content.
ALTER TABLE carebridge.outbox ADD COLUMN IF NOT EXISTS not_before timestamptz;
ALTER TABLE carebridge.outbox ADD COLUMN IF NOT EXISTS about_id uuid;
ALTER TABLE carebridge.outbox ADD COLUMN IF NOT EXISTS withdrawn_at timestamptz;
CREATE INDEX IF NOT EXISTS outbox_about ON carebridge.outbox (about_id)
    WHERE about_id IS NOT NULL AND delivered_at IS NULL;
GRANT SELECT (not_before, about_id, withdrawn_at) ON carebridge.outbox TO carebridge_auditor;
