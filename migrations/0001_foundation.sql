-- Schemas, roles, the append-only guard, projection tracking and idempotency keys.
--
-- Roles: carebridge_app is what the running service uses (INSERT and SELECT only on event
-- tables); carebridge_analyst reads the analytics schema; carebridge_auditor reads everything.

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'carebridge_app') THEN
        CREATE ROLE carebridge_app NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'carebridge_analyst') THEN
        CREATE ROLE carebridge_analyst NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'carebridge_auditor') THEN
        CREATE ROLE carebridge_auditor NOLOGIN;
    END IF;
END
$$;

CREATE SCHEMA IF NOT EXISTS carebridge;   -- infrastructure: tracking, idempotency, migrations
CREATE SCHEMA IF NOT EXISTS eventstore;   -- one append-only events table per bounded context
CREATE SCHEMA IF NOT EXISTS views;        -- patient views and staff queues (projections)
CREATE SCHEMA IF NOT EXISTS analytics;    -- pseudonymised tables for analysts

GRANT USAGE ON SCHEMA carebridge, eventstore, views, analytics TO carebridge_app;
GRANT CREATE ON SCHEMA views, analytics TO carebridge_app;  -- projection rebuilds create tables
GRANT USAGE ON SCHEMA analytics TO carebridge_analyst;
GRANT USAGE ON SCHEMA carebridge, eventstore, views, analytics TO carebridge_auditor;

-- Rejects every UPDATE, DELETE and TRUNCATE of a stored event, whoever asks.
CREATE OR REPLACE FUNCTION carebridge.reject_event_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'stored events are append-only: % on %.% is not allowed',
        TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END
$$;

-- Applied to each events table after it is created (the tables come from eventsourcing).
CREATE OR REPLACE FUNCTION carebridge.make_append_only(events_table regclass) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('DROP TRIGGER IF EXISTS events_append_only_rows ON %s', events_table);
    EXECUTE format('CREATE TRIGGER events_append_only_rows BEFORE UPDATE OR DELETE ON %s '
                   'FOR EACH ROW EXECUTE FUNCTION carebridge.reject_event_change()', events_table);
    EXECUTE format('DROP TRIGGER IF EXISTS events_append_only_truncate ON %s', events_table);
    EXECUTE format('CREATE TRIGGER events_append_only_truncate BEFORE TRUNCATE ON %s '
                   'FOR EACH STATEMENT EXECUTE FUNCTION carebridge.reject_event_change()',
                   events_table);
    EXECUTE format('REVOKE ALL ON %s FROM carebridge_app', events_table);
    EXECUTE format('GRANT SELECT, INSERT ON %s TO carebridge_app', events_table);
    EXECUTE format('GRANT SELECT ON %s TO carebridge_auditor', events_table);
    EXECUTE format('GRANT USAGE, SELECT ON SEQUENCE %s TO carebridge_app',
                   pg_get_serial_sequence(events_table::text, 'notification_id'));
END
$$;

-- Snapshots are derived data (a cache of a fold); the application may replace them.
CREATE OR REPLACE FUNCTION carebridge.grant_snapshots(snapshots_table regclass) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('GRANT SELECT, INSERT, DELETE ON %s TO carebridge_app', snapshots_table);
END
$$;

-- Tables that projections create (as carebridge_app) are readable by auditors, and the
-- analytics tables by analysts, including tables created later by a rebuild.
ALTER DEFAULT PRIVILEGES FOR ROLE carebridge_app IN SCHEMA views
    GRANT SELECT ON TABLES TO carebridge_auditor;
ALTER DEFAULT PRIVILEGES FOR ROLE carebridge_app IN SCHEMA analytics
    GRANT SELECT ON TABLES TO carebridge_analyst, carebridge_auditor;

CREATE TABLE IF NOT EXISTS carebridge.projection_tracking (
    projection text NOT NULL,
    application text NOT NULL,
    position bigint NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (projection, application)
);

CREATE TABLE IF NOT EXISTS carebridge.idempotency_keys (
    scope text NOT NULL,
    key text NOT NULL,
    fingerprint text NOT NULL,
    result bytea NOT NULL,
    position bigint,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, key)
);
CREATE INDEX IF NOT EXISTS idempotency_keys_created_at ON carebridge.idempotency_keys (created_at);

GRANT SELECT, INSERT, UPDATE, DELETE ON carebridge.projection_tracking TO carebridge_app;
GRANT SELECT ON carebridge.schema_migrations TO carebridge_app, carebridge_auditor;
GRANT SELECT, INSERT, DELETE ON carebridge.idempotency_keys TO carebridge_app;
GRANT SELECT ON carebridge.projection_tracking TO carebridge_auditor;
