-- The pharmacy directory and the pharmacy handoff queue (commands/pharmacy.py).
--
-- carebridge.pharmacies is reference data kept by clinic administrators: where a pharmacy is,
-- and how a prescription reaches it (an HTTPS endpoint, or a folder under the drop directory
-- that the pharmacy's own system collects from). Patients choose from it; they never see the
-- channel or the endpoint.
CREATE TABLE IF NOT EXISTS carebridge.pharmacies (
    pharmacy_id text PRIMARY KEY,
    name text NOT NULL,
    address text NOT NULL,
    postcode text NOT NULL,
    phone text NOT NULL,
    channel text NOT NULL CHECK (channel IN ('http', 'file')),
    endpoint text NOT NULL,            -- an URL, or a folder name under the drop directory
    active boolean NOT NULL DEFAULT true,
    updated_at timestamptz NOT NULL,
    updated_by text NOT NULL           -- the administrator's actor ref (role:account id)
);
CREATE INDEX IF NOT EXISTS pharmacies_postcode
    ON carebridge.pharmacies (upper(replace(postcode, ' ', ''))) WHERE active;
GRANT SELECT, INSERT, UPDATE ON carebridge.pharmacies TO carebridge_app;
GRANT SELECT ON carebridge.pharmacies TO carebridge_auditor;

-- One approved prescription on its way to a pharmacy: queued in the same transaction as the
-- approval, delivered by the handoff dispatcher, retried with backoff, and "dead" when every
-- attempt failed (staff see it in the dead-letter view and may retry it). The payload (the
-- prescription itself) is erased once delivered; payload_sha256 stays to show what was sent.
-- last_error holds an error class or an HTTP status, never content.
CREATE TABLE IF NOT EXISTS carebridge.pharmacy_handoffs (
    handoff_id uuid PRIMARY KEY,
    request_id uuid NOT NULL,
    clinic_id text NOT NULL,           -- the request's clinic: its staff see the handoff
    pharmacy_id text NOT NULL REFERENCES carebridge.pharmacies (pharmacy_id),
    payload jsonb,
    payload_sha256 text NOT NULL,
    status text NOT NULL CHECK (status IN ('pending', 'delivered', 'dead')),
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL,
    last_error text,
    created_at timestamptz NOT NULL,
    delivered_at timestamptz,
    dead_at timestamptz,
    retried_by text,                   -- who last sent a dead handoff back to the queue
    retried_at timestamptz
);
CREATE INDEX IF NOT EXISTS pharmacy_handoffs_due
    ON carebridge.pharmacy_handoffs (next_attempt_at) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS pharmacy_handoffs_clinic
    ON carebridge.pharmacy_handoffs (clinic_id, status, created_at);
CREATE INDEX IF NOT EXISTS pharmacy_handoffs_request
    ON carebridge.pharmacy_handoffs (request_id);
GRANT SELECT, INSERT, UPDATE ON carebridge.pharmacy_handoffs TO carebridge_app;
GRANT SELECT (handoff_id, request_id, clinic_id, pharmacy_id, payload_sha256, status, attempts,
              next_attempt_at, last_error, created_at, delivered_at, dead_at, retried_by,
              retried_at)
    ON carebridge.pharmacy_handoffs TO carebridge_auditor;
