-- Failed sign-ins counted per source address, so that one address guessing at many accounts is
-- slowed down even though no single account reaches its own lockout.

CREATE TABLE IF NOT EXISTS carebridge.sign_in_sources (
    source text PRIMARY KEY,
    window_started_at timestamptz NOT NULL,
    failures integer NOT NULL,
    blocked_until timestamptz
);

GRANT SELECT, INSERT, UPDATE ON carebridge.sign_in_sources TO carebridge_app;
