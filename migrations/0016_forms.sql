-- Intake forms: write-side lookups kept in step with the forms context's events in the same
-- transaction. They hold identifiers, titles of forms, statuses, counts and times: never an
-- answer (answers live only in the encrypted events).
--
-- carebridge.forms: the current version of each published form (its title labels outstanding
-- items). carebridge.visit_requirements: what each consultation type asks for before the
-- visit. carebridge.form_responses: one row per (appointment, form) with its status and
-- progress, for outstanding items, reminders and the pre-consultation view.
CREATE TABLE IF NOT EXISTS carebridge.forms (
    form_id text PRIMARY KEY,
    current_version integer NOT NULL,
    title text NOT NULL,
    updated_at timestamptz NOT NULL
);

CREATE TABLE IF NOT EXISTS carebridge.visit_requirements (
    consultation_type_id text PRIMARY KEY,
    forms text[] NOT NULL DEFAULT '{}',
    uploads text[] NOT NULL DEFAULT '{}',
    updated_at timestamptz NOT NULL
);

CREATE TABLE IF NOT EXISTS carebridge.form_responses (
    response_id uuid PRIMARY KEY,
    patient_id uuid NOT NULL,
    appointment_id uuid NOT NULL,
    form_id text NOT NULL,
    form_version integer NOT NULL,
    status text NOT NULL CHECK (status IN ('draft', 'submitted')),
    answered integer NOT NULL,
    questions integer NOT NULL,
    updated_at timestamptz NOT NULL,
    submitted_at timestamptz,
    UNIQUE (appointment_id, form_id)
);
CREATE INDEX IF NOT EXISTS form_responses_patient ON carebridge.form_responses (patient_id);

GRANT SELECT, INSERT, UPDATE ON carebridge.forms, carebridge.visit_requirements,
    carebridge.form_responses TO carebridge_app;
GRANT SELECT ON carebridge.forms, carebridge.visit_requirements, carebridge.form_responses
    TO carebridge_auditor;
