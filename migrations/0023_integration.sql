-- Integration with the clinic systems around CareBridge (commands/identifiers.py,
-- commands/webhooks.py).
--
-- The cross-reference of patient identifiers: the lookup (system, value) -> patient, written in
-- the same transaction as the identifiers context's events; one identifier belongs to one
-- patient at most. `nhs` is the NHS number; other systems are named `<clinic>-<system>`.
CREATE TABLE IF NOT EXISTS carebridge.patient_identifier_index (
    system text NOT NULL,
    value text NOT NULL,
    patient_id uuid NOT NULL,
    PRIMARY KEY (system, value)
);
CREATE INDEX IF NOT EXISTS patient_identifier_index_patient
    ON carebridge.patient_identifier_index (patient_id);
GRANT SELECT, INSERT, UPDATE, DELETE ON carebridge.patient_identifier_index TO carebridge_app;
GRANT SELECT ON carebridge.patient_identifier_index TO carebridge_auditor;

-- Patients' family names (folded: case, spaces and punctuation aside) and dates of birth, for
-- matching records that carry no known identifier; filled from the identity log.
CREATE TABLE IF NOT EXISTS carebridge.patient_demographics (
    patient_id uuid PRIMARY KEY,
    family_name_key text NOT NULL,
    date_of_birth date NOT NULL
);
CREATE INDEX IF NOT EXISTS patient_demographics_match
    ON carebridge.patient_demographics (family_name_key, date_of_birth);
GRANT SELECT, INSERT, UPDATE ON carebridge.patient_demographics TO carebridge_app;

-- Records from clinic systems that matched uncertainly, for the clinic's administrators to
-- confirm (linking the record's identifiers to the patient) or reject. The same record waiting
-- again joins its open review (fingerprint).
CREATE TABLE IF NOT EXISTS carebridge.identifier_reviews (
    review_id uuid PRIMARY KEY,
    clinic_id text NOT NULL,
    system text NOT NULL,
    identifiers jsonb NOT NULL,        -- what the record carries: {"nhs": ..., "riverside-emis": ...}
    family_name text NOT NULL,
    date_of_birth date NOT NULL,
    reason text NOT NULL CHECK (reason IN ('conflict', 'demographics')),
    candidates uuid[] NOT NULL,
    status text NOT NULL CHECK (status IN ('open', 'confirmed', 'rejected')),
    fingerprint text NOT NULL,
    patient_id uuid,                   -- the patient confirmed
    created_at timestamptz NOT NULL,
    decided_by text,
    decided_at timestamptz
);
CREATE UNIQUE INDEX IF NOT EXISTS identifier_reviews_open
    ON carebridge.identifier_reviews (fingerprint) WHERE status = 'open';
-- An administrator's last decision on the same record, when it arrives again.
CREATE INDEX IF NOT EXISTS identifier_reviews_decided
    ON carebridge.identifier_reviews (fingerprint, decided_at) WHERE status <> 'open';
CREATE INDEX IF NOT EXISTS identifier_reviews_clinic
    ON carebridge.identifier_reviews (clinic_id, status, created_at);
GRANT SELECT, INSERT, UPDATE ON carebridge.identifier_reviews TO carebridge_app;
GRANT SELECT (review_id, clinic_id, system, reason, candidates, status, patient_id, created_at,
              decided_by, decided_at)
    ON carebridge.identifier_reviews TO carebridge_auditor;

-- Outbound webhooks: each clinic's subscriptions (where to POST, the signing secret, which
-- event types), and the deliveries planned by the webhook follower in the same transaction as
-- its tracking position. Payloads hold ids and statuses only, never clinical content;
-- last_error holds an error class or an HTTP status.
CREATE TABLE IF NOT EXISTS carebridge.webhook_subscriptions (
    clinic_id text NOT NULL,
    subscription_id text NOT NULL,
    url text NOT NULL,
    secret text NOT NULL,
    event_types text[] NOT NULL,
    active boolean NOT NULL DEFAULT true,
    updated_at timestamptz NOT NULL,
    updated_by text NOT NULL,
    PRIMARY KEY (clinic_id, subscription_id)
);
GRANT SELECT, INSERT, UPDATE, DELETE ON carebridge.webhook_subscriptions TO carebridge_app;
GRANT SELECT (clinic_id, subscription_id, url, event_types, active, updated_at, updated_by)
    ON carebridge.webhook_subscriptions TO carebridge_auditor;

CREATE TABLE IF NOT EXISTS carebridge.webhook_deliveries (
    delivery_id uuid PRIMARY KEY,
    clinic_id text NOT NULL,
    subscription_id text NOT NULL,
    event_type text NOT NULL,
    event_key text NOT NULL,           -- the source event (aggregate id and version)
    payload jsonb NOT NULL,
    status text NOT NULL CHECK (status IN ('pending', 'delivered', 'dead')),
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL,
    last_error text,
    created_at timestamptz NOT NULL,
    delivered_at timestamptz,
    dead_at timestamptz,
    retried_by text,
    retried_at timestamptz,
    UNIQUE (clinic_id, subscription_id, event_key)
);
CREATE INDEX IF NOT EXISTS webhook_deliveries_due
    ON carebridge.webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS webhook_deliveries_clinic
    ON carebridge.webhook_deliveries (clinic_id, status, created_at);
GRANT SELECT, INSERT, UPDATE ON carebridge.webhook_deliveries TO carebridge_app;
GRANT SELECT ON carebridge.webhook_deliveries TO carebridge_auditor;
