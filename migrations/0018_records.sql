-- Medical records (commands/records.py).
--
-- carebridge.records is a write-side lookup kept in step with the records context's events in
-- the same transaction: the staff lists, the clinic's release queue and the release sweep
-- read it. It holds what a record is, for whom, and where it stands, never its content or its
-- internal notes (only how many there are). Auditors may read it; analysts never (no grant).
CREATE TABLE IF NOT EXISTS carebridge.records (
    record_id uuid PRIMARY KEY,
    patient_id uuid NOT NULL,
    clinic_id text NOT NULL,
    kind text NOT NULL,
    code text NOT NULL,
    title text NOT NULL,
    status text NOT NULL,
    occurred_at timestamptz NOT NULL,
    entered_at timestamptz NOT NULL,
    release_due_at timestamptz,
    released_at timestamptz,
    entered_in_error boolean NOT NULL DEFAULT false,
    internal_note_count integer NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS records_patient ON carebridge.records (patient_id, occurred_at);
CREATE INDEX IF NOT EXISTS records_release_due ON carebridge.records (release_due_at)
    WHERE released_at IS NULL AND NOT entered_in_error;
CREATE INDEX IF NOT EXISTS records_waiting ON carebridge.records (clinic_id, entered_at)
    WHERE released_at IS NULL AND NOT entered_in_error;
GRANT SELECT, INSERT, UPDATE ON carebridge.records TO carebridge_app;
GRANT SELECT ON carebridge.records TO carebridge_auditor;

-- The access report reads a patient's accesses newest first.
CREATE INDEX IF NOT EXISTS record_access_patient_newest ON carebridge.record_access (patient_id, at DESC, access_id DESC);

-- Records entered but not yet released to the patient (projections/record_views.py keeps them
-- here until release). A schema of their own, apart from `views`, so that nothing that reads
-- patient views can ever read a record the clinic has not released. Auditors read it.
CREATE SCHEMA IF NOT EXISTS pending;
GRANT USAGE, CREATE ON SCHEMA pending TO carebridge_app;
GRANT USAGE ON SCHEMA pending TO carebridge_auditor;
ALTER DEFAULT PRIVILEGES FOR ROLE carebridge_app IN SCHEMA pending
    GRANT SELECT ON TABLES TO carebridge_auditor;
