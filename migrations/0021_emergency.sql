-- Emergency location sharing (commands/emergency.py).
--
-- carebridge.emergency_shares is a write-side lookup kept in step with the emergency context's
-- events in the same transaction: the on-call list and the expiry sweep read it. It never holds
-- a position (positions are never stored in PostgreSQL) or the patient's note.
CREATE TABLE IF NOT EXISTS carebridge.emergency_shares (
    share_id uuid PRIMARY KEY,
    patient_id uuid NOT NULL,
    clinic_id text NOT NULL,
    state text NOT NULL,
    started_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    ended_at timestamptz,
    updated_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS emergency_shares_active ON carebridge.emergency_shares
    (clinic_id, started_at) WHERE state = 'active';
CREATE INDEX IF NOT EXISTS emergency_shares_expiry ON carebridge.emergency_shares (expires_at)
    WHERE state = 'active';
GRANT SELECT, INSERT, UPDATE ON carebridge.emergency_shares TO carebridge_app;
GRANT SELECT ON carebridge.emergency_shares TO carebridge_auditor;
