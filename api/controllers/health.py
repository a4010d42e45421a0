"""Liveness and readiness for load balancers and process managers."""

from __future__ import annotations

from litestar import Controller, Response, get
from litestar.di import NamedDependency, Provide
from psycopg_pool import AsyncConnectionPool

from api.database import migration_files
from api.dependencies import provide_read_pool


class HealthController(Controller):
    path = "/health"
    tags = ["health"]
    dependencies = {"read_pool": Provide(provide_read_pool, sync_to_thread=False)}

    @get("/live", summary="The process is running")
    async def live(self) -> dict[str, str]:
        return {"status": "live"}

    @get("/ready", summary="The database answers and every migration is applied")
    async def ready(self, read_pool: NamedDependency[AsyncConnectionPool]) -> Response[dict[str, object]]:
        try:
            async with read_pool.connection(timeout=2) as conn:
                cur = await conn.execute("SELECT name FROM carebridge.schema_migrations")
                applied = {row[0] for row in await cur.fetchall()}
        except Exception:
            return Response({"status": "unavailable", "database": "unreachable"}, status_code=503)
        pending = [p.name for p in migration_files() if p.name not in applied]
        if pending:
            return Response({"status": "unavailable", "pending_migrations": pending},
                            status_code=503)
        return Response({"status": "ready"}, status_code=200)
