"""`carebridge audit patient|actor|export`: a patient's or an actor's trail, and FHIR export.

Registered on the `audit` group of api/cli.py (`for command in AUDIT_COMMANDS:
audit.add_command(command)`).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import click

from commands.audit_trail import AuditTrail, Entry

_MOMENT = click.DateTime(formats=["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"])


def _trail_of(container: Any) -> AuditTrail:
    return AuditTrail(container.applications, ZoneInfo(container.settings.clinic_timezone))


def _echo(entries: list[Entry], zone: ZoneInfo) -> None:
    click.echo(f"{'time (UTC)':<32}  {'time (' + str(zone) + ')':<32}  {'actor':<46}  "
               f"{'what':<44}  stream")
    for e in entries:
        what = e.event_type if e.kind == "change" else f"{e.event_type} ({e.action})"
        where = f"{e.application} {e.aggregate_id}" + (f" v{e.version}" if e.version else "")
        click.echo(f"{e.at.isoformat():<32}  {e.at.astimezone(zone).isoformat():<32}  "
                   f"{e.actor:<46}  {what:<44}  {where}")


def _moment(value: datetime, trail: AuditTrail) -> datetime:
    """A date alone means the end of that day in the clinic's zone; a time without an offset
    is UTC."""
    if (value.hour, value.minute, value.second) == (0, 0, 0) and value.tzinfo is None:
        return trail.end_of(value.date())
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@click.command("patient")
@click.argument("patient_id", type=click.UUID)
@click.option("--as-of", "as_of", default=None, type=_MOMENT,
              help="Only what happened until then, and the records the patient could see "
              "then (a date alone: the end of that day in the clinic's zone).")
def audit_patient(patient_id: UUID, as_of: datetime | None) -> None:
    """Every change to a patient's streams in every context, and every read of their record."""
    from api.cli import _runtime

    runtime = _runtime()
    zone = ZoneInfo(runtime.settings.clinic_timezone)
    with runtime.container() as container:
        trail = _trail_of(container)
        entries = trail.patient(patient_id)
        moment = _moment(as_of, trail) if as_of is not None else None
        if moment is not None:
            entries = [e for e in entries if e.at < moment]
        click.echo(f"patient {patient_id}: {len(entries)} entries")
        _echo(entries, zone)
        if moment is not None:
            seen = trail.seen_at(patient_id, moment)
            click.echo(f"\nrecords the patient could see as of {moment.isoformat()}:")
            if not seen:
                click.echo("  (none)")
            for record in seen:
                click.echo(f"  {record['record_id']} v{record['version']}  {record['kind']}  "
                           f"{record['status']}  {record['title']}  released "
                           f"{record['released_at']}")


@click.command("actor")
@click.argument("actor_ref")
def audit_actor(actor_ref: str) -> None:
    """Everything an actor (`doctor:<id>`, `system`, or an account id) changed and read."""
    from api.cli import _runtime

    runtime = _runtime()
    with runtime.container() as container:
        entries = _trail_of(container).actor(actor_ref)
        click.echo(f"actor {actor_ref}: {len(entries)} entries")
        _echo(entries, ZoneInfo(runtime.settings.clinic_timezone))


@click.command("export")
@click.option("--patient", "patient_id", required=True, type=click.UUID)
@click.option("--format", "format_", type=click.Choice(["fhir"]), default="fhir",
              show_default=True, help="FHIR R4: a Bundle of AuditEvent resources.")
def audit_export(patient_id: UUID, format_: str) -> None:
    """A patient's trail as FHIR R4 AuditEvents (a searchset Bundle) on standard output."""
    from api.audit import audit_bundle
    from api.cli import _runtime

    runtime = _runtime()
    with runtime.container() as container:
        bundle = audit_bundle(_trail_of(container).patient(patient_id), patient_id)
    click.echo(json.dumps(bundle, indent=2))


AUDIT_COMMANDS = (audit_patient, audit_actor, audit_export)
