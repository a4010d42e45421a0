-- Who may act for or look after each patient: care-team relationships, proxy grants and
-- break-glass access. A write-side lookup kept in step with the care context's events in the
-- same transaction, so that every access decision reads the current state with one indexed
-- query, and a revocation takes effect on the very next request (no projection lag).
--
-- One row per relationship aggregate. A row is in force while state = 'active',
-- starts_at <= now and (ends_at IS NULL OR ends_at > now). Break-glass reasons and proxy
-- email addresses stay in the (encrypted) events, never here.

CREATE TABLE IF NOT EXISTS carebridge.access_relationships (
    aggregate_id uuid PRIMARY KEY,
    kind text NOT NULL CHECK (kind IN ('care_team', 'proxy', 'break_glass')),
    patient_id uuid NOT NULL,
    account_id uuid,               -- NULL only for an offer to an address with no account
    clinic_id text,                -- care team and break-glass: the clinic
    basis text,                    -- care team: appointment | referral | assignment; proxy: kind
    scopes text[],                 -- proxy only
    state text NOT NULL CHECK (state IN ('offered', 'active', 'declined', 'ended')),
    starts_at timestamptz NOT NULL,
    ends_at timestamptz,           -- the end date, expiry, or a child's 16th birthday
    ended_at timestamptz,          -- ended early: revoked, stepped down, closed
    reviewed_at timestamptz        -- break-glass only
);
CREATE INDEX IF NOT EXISTS access_relationships_account
    ON carebridge.access_relationships (account_id, patient_id);
CREATE INDEX IF NOT EXISTS access_relationships_patient
    ON carebridge.access_relationships (patient_id, kind);
CREATE INDEX IF NOT EXISTS access_relationships_break_glass_review
    ON carebridge.access_relationships (clinic_id, starts_at DESC)
    WHERE kind = 'break_glass';

GRANT SELECT, INSERT, UPDATE ON carebridge.access_relationships TO carebridge_app;
GRANT SELECT ON carebridge.access_relationships TO carebridge_auditor;
