"""`carebridge report weekly`: the weekly operations report for clinic managers, as one HTML
file (inline SVG charts, no scripts, nothing fetched), from the analytics tables."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import click
import psycopg
from psycopg import sql

from commands.weekly_report import Week, build, render
from projections.runner import TABLE_OWNER


@click.group()
def report() -> None:
    """Reports for clinic managers, from the pseudonymised analytics tables."""


@report.command("weekly")
@click.option("--week", "week_text", default=None, metavar="YYYY-Www",
              help="ISO week, e.g. 2026-W47 (default: last whole week in the clinic's zone).")
@click.option("--clinic", "clinic_id", default=None, help="Clinic id (default: every clinic).")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the HTML file.")
def weekly(week_text: str | None, clinic_id: str | None, out: Path) -> None:
    """Write the week's operations report (bookings, cancellations, waitlist, messages,
    prescriptions, video, forms, uploads) as a self-contained HTML file."""
    from api.cli import _fail, _runtime

    runtime = _runtime()
    runtime.require_migrated()
    with runtime.container() as container:
        zone = _zone(container, clinic_id)
        if zone is None:
            _fail(f"no clinic named {clinic_id!r}")
            return
        # Bring the analytics up to date first, so the report counts everything recorded.
        with psycopg.connect(runtime.database.url, autocommit=True) as conn:
            conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(TABLE_OWNER)))
            for runner in container.runners:
                if runner.projection.schema == "analytics":
                    runner.catch_up(conn)
            conn.execute("RESET ROLE")
            try:
                week = Week.parse(week_text) if week_text else \
                    Week.before(datetime.now(zone).date())
            except ValueError as error:
                _fail(str(error))
                return
            built = build(conn, week, clinic_id, zone)
    out.write_text(render(built), encoding="utf-8")
    click.echo(f"wrote the {week} report for {clinic_id or 'all clinics'} to {out}")


def _zone(container: object, clinic_id: str | None) -> ZoneInfo | None:
    """The clinic's zone; for every clinic, the zone they share (UTC if they differ)."""
    schedule = container.appointments.schedule  # type: ignore[attr-defined]
    if clinic_id is not None:
        clinic = schedule.clinic(clinic_id)
        return clinic.zone if clinic is not None else None
    zones = {c.timezone for c in schedule.clinics()}
    return ZoneInfo(zones.pop()) if len(zones) == 1 else ZoneInfo("UTC")

