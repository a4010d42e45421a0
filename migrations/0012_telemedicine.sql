-- Telemedicine signaling.
--
-- carebridge.consultation_signals carries the frames of a consultation's signaling (offers,
-- answers, ICE candidates, state changes) between API processes: a process inserts a frame and
-- NOTIFYs `consultation_signals` with its id; every process LISTENs and delivers the frame to
-- the sockets of that consultation it holds. Frames go through a table because an SDP offer can
-- exceed NOTIFY's 8000-byte payload. They hold session descriptions and network addresses,
-- never media and never health content, and are deleted minutes after they are delivered.
CREATE TABLE IF NOT EXISTS carebridge.consultation_signals (
    signal_id bigserial PRIMARY KEY,
    consultation_id uuid NOT NULL,
    recipient text NOT NULL CHECK (recipient IN ('patient', 'clinician', 'both')),
    sender_connection text,            -- the socket it came from (never echoed back to it)
    frame jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS consultation_signals_age ON carebridge.consultation_signals (created_at);
GRANT SELECT, INSERT, DELETE ON carebridge.consultation_signals TO carebridge_app;
GRANT USAGE ON SEQUENCE carebridge.consultation_signals_signal_id_seq TO carebridge_app;

-- WebSocket tickets work once: the first use records the ticket's id here.
CREATE TABLE IF NOT EXISTS carebridge.consultation_tickets_used (
    ticket_id uuid PRIMARY KEY,
    expires_at timestamptz NOT NULL
);
GRANT SELECT, INSERT, DELETE ON carebridge.consultation_tickets_used TO carebridge_app;
CREATE INDEX IF NOT EXISTS consultation_signals_consultation
    ON carebridge.consultation_signals (consultation_id, signal_id);

-- Who viewed which part of a patient's record, and when (a consultation's summary here; the
-- records and documents contexts add theirs). Append-only like the event tables: the service
-- may only add rows, auditors read them.
CREATE TABLE IF NOT EXISTS carebridge.record_access (
    access_id bigserial PRIMARY KEY,
    at timestamptz NOT NULL,
    actor text NOT NULL,               -- role:account id, as in events
    patient_id uuid NOT NULL,
    resource text NOT NULL,            -- e.g. consultation_summary
    resource_id uuid NOT NULL,
    action text NOT NULL CHECK (action IN ('view', 'download'))
);
CREATE INDEX IF NOT EXISTS record_access_patient ON carebridge.record_access (patient_id, at);
DROP TRIGGER IF EXISTS record_access_append_only_rows ON carebridge.record_access;
CREATE TRIGGER record_access_append_only_rows BEFORE UPDATE OR DELETE ON carebridge.record_access
    FOR EACH ROW EXECUTE FUNCTION carebridge.reject_event_change();
DROP TRIGGER IF EXISTS record_access_append_only_truncate ON carebridge.record_access;
CREATE TRIGGER record_access_append_only_truncate BEFORE TRUNCATE ON carebridge.record_access
    FOR EACH STATEMENT EXECUTE FUNCTION carebridge.reject_event_change();
REVOKE ALL ON carebridge.record_access FROM carebridge_app;
GRANT SELECT, INSERT ON carebridge.record_access TO carebridge_app;
GRANT USAGE ON SEQUENCE carebridge.record_access_access_id_seq TO carebridge_app;
GRANT SELECT ON carebridge.record_access TO carebridge_auditor;

-- Pre-call connection checks: the API process that runs a check's echo peer writes what the
-- peer observed here every second, so that the result can be reported to any API process behind
-- the load balancer; when another process takes the result, the owner sees `finished_at` and
-- closes its peer. Rows hold figures and the browser's user agent only.
CREATE TABLE IF NOT EXISTS carebridge.connection_checks (
    check_id uuid PRIMARY KEY,
    owner text NOT NULL,               -- the account that started the check
    user_agent text,
    observations jsonb,                -- the echo peer's latest observations
    started_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    finished_at timestamptz
);
CREATE INDEX IF NOT EXISTS connection_checks_age ON carebridge.connection_checks (started_at);
GRANT SELECT, INSERT, UPDATE, DELETE ON carebridge.connection_checks TO carebridge_app;
