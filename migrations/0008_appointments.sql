-- Booked and held slots: a write-side lookup kept in step with the appointments context's
-- events in the same transaction, so it is always exactly the truth. Availability search and
-- the waitlist read it; booking itself decides with the day ledgers (aggregates), never here.
--
-- An entry is active while status = 'booked', or status = 'held' and hold_expires_at > now.
-- No patient-facing content and nothing clinical: ids, times and a status.

CREATE TABLE IF NOT EXISTS carebridge.slot_bookings (
    appointment_id uuid PRIMARY KEY,
    patient_id uuid NOT NULL,
    clinician_id uuid NOT NULL,
    clinic_id text NOT NULL,
    room_id text,                       -- NULL for video
    consultation_type_id text NOT NULL,
    starts_at timestamptz NOT NULL,     -- the slot start (UTC)
    ends_at timestamptz NOT NULL,       -- starts_at + the type's duration and buffers
    status text NOT NULL CHECK (status IN ('held', 'booked', 'released')),
    hold_expires_at timestamptz,        -- for 'held'
    updated_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS slot_bookings_clinician
    ON carebridge.slot_bookings (clinician_id, starts_at) WHERE status <> 'released';
CREATE INDEX IF NOT EXISTS slot_bookings_room
    ON carebridge.slot_bookings (room_id, starts_at) WHERE status <> 'released';
-- Holds that have run out, for the leader that records their lapse.
CREATE INDEX IF NOT EXISTS slot_bookings_held
    ON carebridge.slot_bookings (hold_expires_at) WHERE status = 'held';
CREATE INDEX IF NOT EXISTS slot_bookings_patient
    ON carebridge.slot_bookings (patient_id, starts_at);

GRANT SELECT, INSERT, UPDATE ON carebridge.slot_bookings TO carebridge_app;
GRANT SELECT ON carebridge.slot_bookings TO carebridge_auditor;
