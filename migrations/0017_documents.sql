-- Documents patients upload, for the clinic's review.
--
-- carebridge.documents is a write-side lookup kept in step with the documents context's events
-- in the same transaction: the review queue, the pre-consultation view and an appointment's
-- outstanding items read it. The file name is the patient's own words and may say something
-- about their health: auditors may read it, analysts never (no grant).
CREATE TABLE IF NOT EXISTS carebridge.documents (
    document_id uuid PRIMARY KEY,
    patient_id uuid NOT NULL,
    clinic_id text NOT NULL,
    appointment_id uuid,
    document_type text NOT NULL,
    status text NOT NULL,
    filename text NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS documents_queue ON carebridge.documents (clinic_id, status, created_at);
CREATE INDEX IF NOT EXISTS documents_patient ON carebridge.documents (patient_id, created_at);
CREATE INDEX IF NOT EXISTS documents_appointment ON carebridge.documents (appointment_id)
    WHERE appointment_id IS NOT NULL;
GRANT SELECT, INSERT, UPDATE ON carebridge.documents TO carebridge_app;
GRANT SELECT ON carebridge.documents TO carebridge_auditor;
