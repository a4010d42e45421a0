-- Secure messaging (commands/messaging.py).
--
-- carebridge.message_threads is a write-side lookup kept in step with the messaging context's
-- events in the same transaction: the team queues read it, with the answers that are late. It
-- holds the subject the patient wrote (which may say something about their health: auditors may
-- read it, analysts never) and never a message or a staff note.
CREATE TABLE IF NOT EXISTS carebridge.message_threads (
    thread_id uuid PRIMARY KEY,
    patient_id uuid NOT NULL,
    clinic_id text NOT NULL,
    category text NOT NULL,
    subject text NOT NULL,
    team text NOT NULL,
    clinician_id uuid,
    state text NOT NULL,
    due_by timestamptz,
    started_at timestamptz NOT NULL,
    last_message_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS message_threads_queue ON carebridge.message_threads
    (clinic_id, team, state, due_by);
CREATE INDEX IF NOT EXISTS message_threads_patient ON carebridge.message_threads
    (patient_id, last_message_at);
GRANT SELECT, INSERT, UPDATE ON carebridge.message_threads TO carebridge_app;
GRANT SELECT ON carebridge.message_threads TO carebridge_auditor;
