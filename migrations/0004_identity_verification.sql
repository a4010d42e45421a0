-- Step-up verification: when the session last proved a second factor. Kept in step with the
-- Session aggregate's SecondFactorVerified events, in the same transaction.
ALTER TABLE carebridge.session_activity ADD COLUMN IF NOT EXISTS verified_at timestamptz;
