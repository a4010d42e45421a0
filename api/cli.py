"""The `carebridge` command: serve, migrate, api, worker, projections, staff and audit."""

from __future__ import annotations

import getpass
import logging
import os
import secrets
import signal
import sys
import threading
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import click
import psycopg

from api.container import Container
from api.database import Database, local_secrets, resolve
from api.settings import Mode, Settings

log = logging.getLogger("carebridge")
# How the API's HTTP server treats slow, huge and idle clients (api/server_limits.py): deadlines
# for a request's head and body, a cap on its head, idle keep-alive connections closed after
# 5 s, and at most 2,048 requests in flight per process.
SERVER_LIMITS: dict[str, Any] = {"http": "api.server_limits:GuardedHttpTools",
                                 "timeout_keep_alive": 5, "limit_concurrency": 2048,
                                 "backlog": 2048}


class Runtime:
    """Settings, database and keys resolved once per command."""

    def __init__(self) -> None:
        from api.logs import configure_logging

        self.settings = Settings()
        self.settings.check_production()
        configure_logging(self.settings.log_level, self.settings.log_json)
        self.database: Database = resolve(self.settings)
        generated = (local_secrets(self.settings.data_dir)
                     if self.settings.mode is Mode.DEVELOPMENT else {})
        self.encryption_key = self.settings.encryption_key or generated["encryption_key"]
        self.token_secret = self.settings.token_secret or generated["token_secret"]

    def migrate(self) -> list[str]:
        from api.container import migrate

        return migrate(self.settings, self.database, self.encryption_key)

    def require_migrated(self) -> None:
        from api.database import pending_migrations

        if self.database.embedded_dir is not None:
            self.migrate()  # the embedded database is ours to keep current
        elif pending := pending_migrations(self.database.url):
            _fail("migrations are pending (" + ", ".join(pending) + "); run `carebridge migrate`")

    def container(self) -> Container:
        return Container(self.settings, self.database, self.encryption_key)


def _fail(message: str) -> None:
    click.echo(f"carebridge: {message}", err=True)
    sys.exit(2)


class _Group(click.Group):
    """Turns an unreachable database into one line saying what to check, not a traceback."""

    def invoke(self, ctx: click.Context) -> object:
        from eventsourcing.persistence import OperationalError

        try:
            return super().invoke(ctx)
        except (psycopg.OperationalError, OperationalError) as error:
            first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
            _fail(f"cannot use the database ({first_line}); check DATABASE_URL and that "
                  "PostgreSQL is running")
            raise


@click.group(cls=_Group)
def main() -> None:
    """CareBridge: the care-coordination core behind the clinic network's patient app."""


@main.command()
@click.option("--host", default=None, help="Address to listen on (default 127.0.0.1).")
@click.option("--port", default=None, type=int, help="Port to listen on (default 8000).")
@click.option("--demo", is_flag=True, help="Load a small demo clinic network and print its "
              "sign-ins.")
def serve(host: str | None, port: int | None, demo: bool) -> None:
    """Run everything: database (embedded unless DATABASE_URL), migrations, projections,
    an in-process worker and the API."""
    runtime = _runtime()
    runtime.migrate()
    container = runtime.container()
    from api.default_forms import publish_default_forms
    from api.seed import publish_default_consent_texts

    publish_default_consent_texts(container)
    publish_default_forms(container)
    if demo:
        from api.demo import load_demo

        click.echo(load_demo(container))
    container.start_projections()
    container.start_followers()
    from api.broker import InProcessWorker, Tasks, create_broker

    # Notifications go through the broker's actor, as in production (here in-process).
    broker = create_broker(runtime.settings)
    tasks = Tasks(broker, runtime.database.url, container.uploads, container.outbox)
    container.outbox.queue = tasks.queue_notification
    worker = InProcessWorker(broker, tasks, runtime.settings.worker_threads)
    worker.start()
    container.start_outbox()
    if not runtime.settings.smtp_host:
        click.echo("Emails (confirmation links and sign-in codes) are written to "
                   f"{runtime.settings.mail_log_path or runtime.settings.data_dir / 'mail.log'}")
    try:
        _run_api(runtime, container, host, port)
    finally:
        worker.stop()
        container.close()
        click.echo("CareBridge stopped.")


@main.command()
def migrate() -> None:
    """Apply database migrations and create the event tables."""
    runtime = _runtime()
    applied = runtime.migrate()
    click.echo(f"applied {len(applied)} migration(s): {', '.join(applied) or 'none pending'}")


@main.command("api")
@click.option("--host", default=None, help="Address to listen on.")
@click.option("--port", default=None, type=int, help="Port to listen on.")
@click.option("--workers", default=1, type=click.IntRange(1, 64), show_default=True,
              help="API processes sharing the port. One process uses one core for Python; "
              "give one per core the API may use (each keeps its own connections and caches).")
def api_only(host: str | None, port: int | None, workers: int) -> None:
    """Run only the HTTP API (production, behind a process manager; run `migrate` first)."""
    runtime = _runtime()
    runtime.require_migrated()
    container = runtime.container()
    from api.default_forms import publish_default_forms
    from api.seed import publish_default_consent_texts

    publish_default_consent_texts(container)
    publish_default_forms(container)
    if workers > 1:
        container.close()
        _run_api_workers(runtime, host, port, workers)
        return
    try:
        _run_api(runtime, container, host, port)
    finally:
        container.close()


@main.command()
def worker() -> None:
    """Run dramatiq workers (Redis when BROKER_URL is set), the outbox dispatcher (it hands due
    notifications to the `deliver_notification` actor) and the pharmacy handoff dispatcher
    until interrupted."""
    runtime = _runtime()
    from api.broker import InProcessWorker, Tasks, create_broker

    broker = create_broker(runtime.settings)
    container = runtime.container()  # the handoffs' outcomes are recorded on the requests
    tasks = Tasks(broker, runtime.database.url, container.uploads, container.outbox)
    container.outbox.queue = tasks.queue_notification
    running = InProcessWorker(broker, tasks, runtime.settings.worker_threads)
    running.start()
    container.start_outbox()
    click.echo(f"worker running with {runtime.settings.worker_threads} thread(s); Ctrl-C stops")
    try:
        _wait_for_signal()
    finally:
        container.close()
        running.stop()


@main.group()
def projections() -> None:
    """Projection status, rebuilds, and running the projection runners on their own."""


@projections.command("status")
def projections_status() -> None:
    """Position and lag of every projection."""
    runtime = _runtime()
    with runtime.container() as container, psycopg.connect(runtime.database.url,
                                                           autocommit=True) as conn:
        click.echo(f"{'projection':<24} {'application':<14} {'position':>10} {'head':>10} "
                   f"{'lag':>8}")
        for runner in container.runners:
            for s in runner.status(conn):
                click.echo(f"{s.projection:<24} {s.application:<14} {s.position:>10} "
                           f"{s.head:>10} {s.lag:>8}")


@projections.command("rebuild")
@click.argument("name")
def projections_rebuild(name: str) -> None:
    """Rebuild projection NAME from the first event into fresh tables, then swap them in."""
    runtime = _runtime()
    with runtime.container() as container, psycopg.connect(runtime.database.url,
                                                           autocommit=True) as conn:
        try:
            runner = container.runner(name)
        except KeyError as error:
            _fail(str(error.args[0]))
        from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn

        columns = (TextColumn("[bold]{task.description}"), BarColumn(), TaskProgressColumn(),
                   TextColumn("{task.completed:,.0f}/{task.total:,.0f} events"),
                   TextColumn("{task.fields[rate]:,.0f} events/s"))
        started = datetime.now(UTC)
        with Progress(*columns) as progress:
            task = progress.add_task(name, total=0, rate=0.0)

            def update(done: int, total: int) -> None:
                elapsed = max((datetime.now(UTC) - started).total_seconds(), 1e-6)
                progress.update(task, completed=done, total=total, rate=done / elapsed)

            applied = runner.rebuild(conn, update)
        elapsed = (datetime.now(UTC) - started).total_seconds()
        click.echo(f"rebuilt {name}: {applied} events in {elapsed:.2f} s "
                   f"({applied / max(elapsed, 1e-6):,.0f} events/s)")


@projections.command("run")
def projections_run() -> None:
    """Run every projection runner in this process (one leader per projection)."""
    runtime = _runtime()
    with runtime.container() as container:
        container.start_projections()
        container.start_followers()
        click.echo("projection runners started; Ctrl-C stops")
        _wait_for_signal()


@main.group()
def staff() -> None:
    """Staff accounts."""


@staff.command("add")
@click.option("--role", required=True, type=click.Choice(
    ["doctor", "nurse", "reception", "prescription_coordinator", "care_manager", "support",
     "clinic_admin", "auditor"]), help="The staff member's role.")
@click.option("--email", required=True, help="Sign-in email address.")
@click.option("--given-name", required=True)
@click.option("--family-name", required=True)
@click.option("--clinic", "clinics", multiple=True, help="Clinic id (repeatable).")
@click.option("--password", default=None, help="Omit to be asked, or to generate one with "
              "--generate-password.")
@click.option("--generate-password", is_flag=True, help="Generate and print a password.")
def staff_add(role: str, email: str, given_name: str, family_name: str, clinics: tuple[str, ...],
              password: str | None, generate_password: bool) -> None:
    """Create a staff account with a role."""
    from commands.identity import NewAccount
    from domain.errors import CareBridgeError, InvalidInput
    from domain.identity import Role

    if generate_password:
        password = secrets.token_urlsafe(18)
    elif password is None:
        password = getpass.getpass("Password for the new account: ")
    runtime = _runtime()
    runtime.require_migrated()
    with runtime.container() as container:
        try:
            outcome = container.identity.add_staff(
                NewAccount(email, password, given_name, family_name), Role(role), list(clinics),
                by="cli:" + getpass.getuser(), at=datetime.now(UTC))
        except InvalidInput as error:
            _fail("; ".join(f"{e.field}: {e.message}" for e in error.errors))
        except CareBridgeError as error:
            _fail(error.detail)
    click.echo(f"created {role} {outcome.result['account_id']} <{email}>")
    if generate_password:
        click.echo(f"password: {password}")


@main.group()
def audit() -> None:
    """Auditor tools: replay streams, trails of patients and actors, FHIR export, and the
    tamper-evident chain."""


@audit.command("trail")
@click.option("--aggregate", "aggregate_id", required=True, type=click.UUID,
              help="The aggregate (stream) id.")
@click.option("--as-of", "as_of", default=None, type=click.DateTime(
    formats=["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"]),
    help="Also print the state at this time (UTC unless an offset is given).")
def audit_trail(aggregate_id: UUID, as_of: datetime | None) -> None:
    """Every event of a stream (type, time, actor, version); with --as-of, the state then."""
    from zoneinfo import ZoneInfo

    from api.audit import find_stream, state_as_of, trail

    runtime = _runtime()
    zone = ZoneInfo(runtime.settings.clinic_timezone)
    with runtime.container() as container:
        app = find_stream(container.applications, aggregate_id)
        if app is None:
            _fail(f"no stream with id {aggregate_id}")
            return
        click.echo(f"stream {aggregate_id} in {app.name}")
        click.echo(f"{'version':>7}  {'time (UTC)':<32}  {'time (' + str(zone) + ')':<32}  "
                   f"{'event':<40}  actor")
        for entry in trail(app, aggregate_id):
            click.echo(f"{entry.version:>7}  {entry.at.isoformat():<32}  "
                       f"{entry.at.astimezone(zone).isoformat():<32}  {entry.event_type:<40}  "
                       f"{entry.actor}")
        if as_of is not None:
            moment = as_of if as_of.tzinfo else as_of.replace(tzinfo=UTC)
            state = state_as_of(app, aggregate_id, moment)
            click.echo(f"\nstate as of {moment.isoformat()}:")
            if state is None:
                click.echo("  (did not exist yet)")
            for key, value in (state or {}).items():
                click.echo(f"  {key}: {value}")


from api.cli_audit import AUDIT_COMMANDS  # noqa: E402
from api.cli_chain import audit_public_key, audit_seal, audit_verify  # noqa: E402

for _audit_command in AUDIT_COMMANDS:
    audit.add_command(_audit_command)
audit.add_command(audit_verify)
audit.add_command(audit_seal)
audit.add_command(audit_public_key)


@main.command("settings")
def settings_table() -> None:
    """Print every setting as a Markdown table (the README's configuration table)."""
    click.echo("| environment variable | default | meaning |\n| --- | --- | --- |")
    for name, field in Settings.model_fields.items():
        env = f"CAREBRIDGE_{name.upper()}"
        if name in ("database_url", "broker_url"):
            env += f" or {name.upper()}"
        default = "unset" if field.default is None else f"`{field.default}`"
        click.echo(f"| `{env}` | {default} | {field.description or ''} |")


def _runtime() -> Runtime:
    from pydantic import ValidationError

    from api.settings import MissingSetting

    try:
        return Runtime()
    except MissingSetting as error:
        _fail(str(error))
        raise
    except ValidationError as error:
        _fail("; ".join(f"CAREBRIDGE_{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}"
                        for e in error.errors()))
        raise


def _run_api(runtime: Runtime, container, host: str | None, port: int | None) -> None:
    import uvicorn

    from api.app import create_app

    host = host or runtime.settings.host
    port = port or runtime.settings.port
    app = _tuned(create_app(container, runtime.token_secret), runtime.settings)
    container.warm()
    click.echo(f"CareBridge API on http://{host}:{port} — interactive docs at "
               f"http://{host}:{port}/schema (OpenAPI: /schema/openapi.json). Ctrl-C stops.")
    uvicorn.run(app, host=host, port=port, log_config=None, access_log=False, **SERVER_LIMITS)


def _run_api_workers(runtime: Runtime, host: str | None, port: int | None, workers: int) -> None:
    import uvicorn

    host = host or runtime.settings.host
    port = port or runtime.settings.port
    # The workers are new processes that read their settings again: they use the database this
    # process resolved (an embedded one it started stays up while it runs).
    os.environ["CAREBRIDGE_DATABASE_URL"] = runtime.database.url
    click.echo(f"CareBridge API on http://{host}:{port} with {workers} worker processes. "
               "Ctrl-C stops.")
    uvicorn.run("api.cli:worker_app", factory=True, workers=workers, host=host, port=port,
                log_config=None, access_log=False, **SERVER_LIMITS)


def worker_app() -> Any:
    """The app of one API worker process (`carebridge api --workers N` starts N of them)."""
    from api.app import create_app

    runtime = _runtime()
    container = runtime.container()
    app = _tuned(create_app(container, runtime.token_secret), runtime.settings)
    app.on_shutdown.append(container.close)
    container.warm()
    return app


def _tuned(app: Any, settings: Settings) -> Any:
    """The served app with its process-wide tuning applied when its event loop starts."""

    async def limit_threads() -> None:
        import anyio.to_thread

        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.api_threads

    app.on_startup.append(limit_threads)
    return app


def _wait_for_signal() -> None:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()


from api.cli_report import report  # noqa: E402

main.add_command(report)


if __name__ == "__main__":
    main()

