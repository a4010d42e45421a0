-- Resumable uploads (tus 1.0): the state of each upload while it is sent, checked and claimed.
--
-- The bytes are never here: each received chunk is an encrypted object in file storage, named
-- in `parts` ([{"key", "offset", "size"}]) until the upload is complete and assembled under
-- `storage_key`. `metadata` is the client's Upload-Metadata header as sent (HEAD must echo
-- it); it and `filename` are the patient's own words, so auditors may read them, analysts
-- never (no grant). Rows go once they expire (`commands/uploads.py: purge_expired`).
CREATE TABLE IF NOT EXISTS carebridge.uploads (
    upload_id uuid PRIMARY KEY,
    owner_id uuid NOT NULL,
    patient_id uuid NOT NULL,
    idempotency_key text,
    fingerprint text NOT NULL,
    length bigint NOT NULL CHECK (length > 0),
    upload_offset bigint NOT NULL DEFAULT 0 CHECK (upload_offset >= 0 AND upload_offset <= length),
    metadata text NOT NULL,
    filename text NOT NULL,
    document_type text NOT NULL,
    appointment_id uuid,
    replaces uuid,
    status text NOT NULL CHECK (status IN ('receiving', 'complete', 'claimed', 'rejected',
                                           'terminated')),
    rejection text,
    content_type text,
    sha256 text,
    storage_key text,
    parts jsonb NOT NULL DEFAULT '[]',
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    completed_at timestamptz,
    expires_at timestamptz NOT NULL
);
-- A retried creation with the same Idempotency-Key finds the upload it made.
CREATE UNIQUE INDEX IF NOT EXISTS uploads_idempotency
    ON carebridge.uploads (owner_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS uploads_expiry ON carebridge.uploads (expires_at);
GRANT SELECT, INSERT, UPDATE, DELETE ON carebridge.uploads TO carebridge_app;
GRANT SELECT ON carebridge.uploads TO carebridge_auditor;
