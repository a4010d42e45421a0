"""Helpers for care teams, proxy access and break-glass, shared by API tests and scenarios."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from tests.api.support import auth

REASON = "Unconscious in the emergency department; need allergies and medication now."


def put_in_care_team(client: Any, manager: dict[str, str], patient_id: str, clinician_id: str,
                     ends_at: datetime, clinic_id: str = "riverside", basis: str = "assignment",
                     source_ref: str | None = None, key: str | None = None) -> Any:
    headers = auth(manager) | ({"Idempotency-Key": key} if key else {})
    return client.post(f"/v1/staff/patients/{patient_id}/care-team", headers=headers, json={
        "clinician_id": clinician_id, "clinic_id": clinic_id, "basis": basis,
        "ends_at": ends_at.isoformat(), "source_ref": source_ref})


def offer(client: Any, patient: dict[str, str], email: str, scopes: list[str],
          kind: str = "family", expires_on: str | None = None, key: str | None = None) -> Any:
    headers = auth(patient) | ({"Idempotency-Key": key} if key else {})
    return client.post("/v1/me/proxies", headers=headers, json={
        "email": email, "kind": kind, "scopes": scopes, "expires_on": expires_on})


def authorise_proxy(client: Any, patient: dict[str, str], proxy: dict[str, str],
                    scopes: list[str], kind: str = "family") -> str:
    """The patient invites the proxy and the proxy accepts; returns the grant id."""
    offered = offer(client, patient, proxy["email"], scopes, kind)
    assert offered.status_code == 202, offered.text
    grant_id = offered.json()["grant_id"]
    accepted = client.post(f"/v1/me/represented/{grant_id}/accept", headers=auth(proxy))
    assert accepted.status_code == 200, accepted.text
    return grant_id


def open_break_glass(client: Any, clinician: dict[str, str], patient_id: str,
                     reason: str = REASON) -> Any:
    return client.post(f"/v1/staff/patients/{patient_id}/break-glass", headers=auth(clinician),
                       json={"reason": reason})


def later(clock: Any, **delta: float) -> datetime:
    return clock.now + timedelta(**delta)


STAFF_PASSWORD = "staff passphrase 2026"  # the `staff_member` fixture's


def signed_in_again(client: Any, container: Any, person: dict[str, str]) -> dict[str, str]:
    """The same person with a fresh session, after the test moved the clock past the last."""
    from uuid import UUID

    from tests.api.support import PASSWORD, sign_in

    account = container.identity.find_account(UUID(person["account_id"]))
    password = PASSWORD if account.role == "patient" else STAFF_PASSWORD
    return person | sign_in(client, account.email, password)


def in_care_team(container: Any, clock: Any, patient_id: str, clinician_id: str,
                 clinic_id: str = "riverside", days: int = 30) -> None:
    """Puts a clinician in a patient's care team as a booked appointment does."""
    from uuid import UUID, uuid4

    container.care.join_through_appointment(
        UUID(patient_id), UUID(clinician_id), clinic_id, f"appointment-{uuid4().hex[:8]}",
        starts_at=clock.now, ends_at=clock.now + timedelta(days=days), at=clock.now)
