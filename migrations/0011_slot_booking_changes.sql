-- A change counter on the booking lookup, so that availability search keeps an in-memory
-- mirror of it and reads only what changed since its last search (one indexed query).
--
-- Every write to carebridge.slot_bookings happens inside the appointments context's event
-- transaction, which holds that context's ordering lock until commit; so the counter's order
-- is the commit order, and "every change numbered above N" misses nothing that committed.
CREATE SEQUENCE IF NOT EXISTS carebridge.slot_bookings_change;
ALTER TABLE carebridge.slot_bookings ADD COLUMN IF NOT EXISTS change bigint;

CREATE OR REPLACE FUNCTION carebridge.number_slot_booking_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.change := nextval('carebridge.slot_bookings_change');
    RETURN NEW;
END;
$$;

DROP TRIGGER IF EXISTS number_change ON carebridge.slot_bookings;
CREATE TRIGGER number_change BEFORE INSERT OR UPDATE ON carebridge.slot_bookings
    FOR EACH ROW EXECUTE FUNCTION carebridge.number_slot_booking_change();

UPDATE carebridge.slot_bookings SET change = nextval('carebridge.slot_bookings_change')
 WHERE change IS NULL;
CREATE INDEX IF NOT EXISTS slot_bookings_by_change ON carebridge.slot_bookings (change);

GRANT USAGE ON SEQUENCE carebridge.slot_bookings_change TO carebridge_app;
