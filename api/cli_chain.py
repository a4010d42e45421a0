"""`carebridge audit verify`, `audit seal` and `audit public-key`: the tamper-evident chain."""

from __future__ import annotations

import time
from typing import Any

import click
import psycopg

from commands.audit_chain import public_key_from, public_key_text, signing_key, verify


def _signing_key(runtime: Any) -> Any:
    return signing_key(runtime.settings.audit_signing_key, runtime.encryption_key)


def _runtime() -> Any:
    from api.cli import _runtime as resolved

    return resolved()


@click.command("verify")
@click.option("--application", "applications", multiple=True,
              help="Verify only this application's log (repeatable). Default: every log.")
@click.option("--public-key", default=None,
              help="The checkpoints' Ed25519 public key (base64, from `carebridge audit "
              "public-key`). Default: the one of the configured signing key.")
def audit_verify(applications: tuple[str, ...], public_key: str | None) -> None:
    """Recompute every event log's hash chain from position 0, check every checkpoint's hash and
    signature, and name each altered, removed, inserted or reordered event by its position.
    Exits 1 when anything was found."""
    runtime = _runtime()
    key = public_key_from(public_key) if public_key else _signing_key(runtime).public_key()
    began = time.monotonic()
    with psycopg.connect(runtime.database.url) as conn:
        reports = verify(conn, key, applications or None)
    seconds = time.monotonic() - began
    findings = [f for r in reports for f in r.findings]
    for report in reports:
        verdict = "intact" if not report.findings else f"{len(report.findings)} finding(s)"
        click.echo(f"{report.application:<16} {report.events:>10,} events, sealed to "
                   f"{report.sealed_to} by {report.checkpoints} checkpoints (chain "
                   f"{report.head[:16] or '-'}), {report.unsealed} not yet sealed: {verdict}")
    for finding in findings:
        click.echo(str(finding))
    total = sum(r.events for r in reports)
    click.echo(f"verified {total:,} events in {len(reports)} logs in {seconds:.1f} s: "
               + ("no findings" if not findings else f"{len(findings)} finding(s)"))
    if findings:
        raise SystemExit(1)


@click.command("seal")
def audit_seal() -> None:
    """Seal every event not yet sealed into its log's chain now (the worker and `projections
    run` do this continuously)."""
    from projections.audit_chain import AuditSealer

    runtime = _runtime()
    runtime.require_migrated()
    with runtime.container() as container:
        sealer = AuditSealer(container.applications, runtime.database.url, _signing_key(runtime),
                             runtime.settings.audit_checkpoint_every)
        with psycopg.connect(runtime.database.url, autocommit=True) as conn:
            sealed = sealer.catch_up(conn)
    click.echo(f"sealed {sealed:,} events")


@click.command("public-key")
def audit_public_key() -> None:
    """Print the checkpoints' public key (base64), for `audit verify --public-key` by auditors
    who must not hold the signing key."""
    click.echo(public_key_text(_signing_key(_runtime()).public_key()))
