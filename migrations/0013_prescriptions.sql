-- Repeat prescriptions.
--
-- carebridge.prescription_requests is a write-side lookup kept in step with the prescriptions
-- context's events in the same transaction: the staff queues, the delayed-request sweep and the
-- patient's list read it with one indexed query. It holds identifiers, statuses and times only
-- (never medication names, notes or explanations).
CREATE TABLE IF NOT EXISTS carebridge.prescription_requests (
    request_id uuid PRIMARY KEY,
    patient_id uuid NOT NULL,
    clinic_id text NOT NULL,
    queue text NOT NULL CHECK (queue IN ('prescriber', 'coordinator')),
    status text NOT NULL,
    delayed boolean NOT NULL DEFAULT false,
    handoff_failed boolean NOT NULL DEFAULT false,
    submitted_at timestamptz NOT NULL,
    promised_by timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS prescription_requests_queue
    ON carebridge.prescription_requests (clinic_id, queue, submitted_at)
    WHERE status IN ('submitted', 'under_review', 'approved', 'ready_for_collection',
                     'sent_to_pharmacy');
CREATE INDEX IF NOT EXISTS prescription_requests_patient
    ON carebridge.prescription_requests (patient_id, submitted_at);
CREATE INDEX IF NOT EXISTS prescription_requests_promised
    ON carebridge.prescription_requests (promised_by)
    WHERE NOT delayed AND status IN ('submitted', 'under_review', 'approved');
GRANT SELECT, INSERT, UPDATE ON carebridge.prescription_requests TO carebridge_app;
GRANT SELECT ON carebridge.prescription_requests TO carebridge_auditor;
