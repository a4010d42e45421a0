"""Helpers for repeat prescription tests: Riverside with the feature on, a patient's repeat
medicines imported from the clinic's system, and requests through the API."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any
from uuid import UUID

from domain.access import Actor
from domain.identity import Role
from domain.prescriptions import Medication
from tests.api.support import auth, give
from tests.api.visits_support import open_riverside

TODAY = date(2026, 11, 23)  # the test clock's day (a Monday)


def medicines(today: date = TODAY) -> list[Medication]:
    """One medicine for every reason a request may be refused, and two that may be requested."""
    soon = today + timedelta(days=120)
    return [
        Medication("amlodipine", "Amlodipine 5 mg tablets", "One a day", "28 tablets", 5, soon,
                   False, False),
        Medication("sertraline", "Sertraline 50 mg tablets", "One in the morning", "28 tablets",
                   3, soon, True, False),
        Medication("salbutamol", "Salbutamol 100 micrograms inhaler", "Two puffs when needed",
                   "1 inhaler", 4, soon, False, False, 30, today - timedelta(days=5)),
        Medication("ramipril", "Ramipril 2.5 mg capsules", "One a day", "28 capsules", 2,
                   today - timedelta(days=10), False, False),
        Medication("metformin", "Metformin 500 mg tablets", "One twice a day", "56 tablets", 2,
                   today - timedelta(days=60), False, False),
        Medication("atorvastatin", "Atorvastatin 20 mg tablets", "One at night", "28 tablets", 0,
                   soon, False, False),
        Medication("codeine", "Codeine 30 mg tablets", "One when needed", "28 tablets", 2, soon,
                   False, True),
    ]


def switch_on_prescriptions(client: Any, staff_member: Any) -> dict[str, str]:
    admin = staff_member("clinic_admin")
    enabled = client.put("/v1/admin/feature-flags/prescriptions/rules", headers=auth(admin),
                         json={"clinic_id": "riverside", "percentage": 100, "patient_ids": [],
                               "reason": "repeat prescriptions online"})
    assert enabled.status_code in (200, 201), enabled.text
    return admin


def pharmacy_patient(client: Any, container: Any, sign_up: Any, staff_member: Any,
                     consent: bool = True, given_name: str = "Grace",
                     at: datetime | None = None) -> dict[str, Any]:
    """Riverside (its doctor and a coordinator), and a patient with imported repeat medicines."""
    riverside = open_riverside(container, staff_member)
    admin = switch_on_prescriptions(client, staff_member)
    patient = sign_up(given_name=given_name)
    if consent:
        assert give(client, patient, "prescription_requests").status_code == 201
    importer = Actor(UUID(admin["account_id"]), Role.CLINIC_ADMIN, frozenset({"riverside"}))
    container.prescriptions.import_medications(
        importer, "riverside", [(UUID(patient["account_id"]), m) for m in medicines()],
        at or client.app.state.clock())
    return {"patient": patient, "doctor": riverside["doctor"], "admin": admin,
            "coordinator": staff_member("prescription_coordinator")}


def ask(client: Any, person: dict[str, str], *medication_ids: str, fulfilment: str = "collection",
        key: str | None = None, **extra: Any) -> Any:
    headers = auth(person) | ({"Idempotency-Key": key} if key else {})
    return client.post("/v1/prescription-requests", headers=headers, json={
        "clinic_id": "riverside", "fulfilment": fulfilment,
        "items": [{"medication_id": m, "dosage_confirmed": True} for m in medication_ids],
        **extra})


def step(client: Any, person: dict[str, str], request_id: str, action: str,
         body: dict[str, Any] | None = None) -> Any:
    return client.post(f"/v1/staff/prescription-requests/{request_id}/{action}",
                       headers=auth(person), json=body or {})
