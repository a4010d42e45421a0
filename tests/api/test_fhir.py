"""The FHIR R4 read API: every resource validated by `fhir.resources`, searches as Bundles,
access by the API's one policy with OperationOutcome errors, internal content nowhere, and every
read of clinical content in the record access log."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from uuid import UUID

import psycopg
import pytest
from fhir.resources.R4B import get_fhir_model_class

from api.controllers.fhir import FhirController
from commands.availability import Availability, PostgresBookings
from tests.api.canary_support import (
    FOLLOW_UP,
    Canary,
    Seeded,
    book_video,
    caught_up,
    patient_facing_gets,
    seed_consultation,
    seed_document,
    seed_messages,
    seed_people,
    seed_prescriptions,
    seed_records,
    unknown_parameters,
    urls,
)
from tests.api.support import auth
from tests.api.test_forms import FORM, ask_before_visits
from tests.domain.test_availability import ASHA, network
from tests.domain.test_forms import complete_answers

FHIR_JSON = "application/fhir+json"
CARE_TYPES = ("Appointment", "MedicationRequest", "Consent", "DocumentReference",
              "Communication", "QuestionnaireResponse")
CLINICAL_TYPES = ("MedicationRequest", "DocumentReference", "Communication",
                  "QuestionnaireResponse")


_APP: list[Any] = []


@pytest.fixture
def client(container: Any, clock: Any) -> Iterator[Any]:
    """The API with the FHIR controller (registered here until the app registers it), an app
    of this module's own so that no other test's app gains its routes."""
    from litestar.testing import TestClient

    from api.app import create_app
    from tests.conftest import TOKEN_SECRET

    container.start_projections()
    if not _APP:
        app = create_app(container, TOKEN_SECRET, clock=clock)
        if not any(route.path.startswith("/fhir") for route in app.routes):
            app.register(FhirController)
        _APP.append(app)
    app = _APP[0]
    app.state.container, app.state.clock = container, clock
    with TestClient(app) as test_client:
        yield test_client


def valid(resource: dict[str, Any]) -> dict[str, Any]:
    """The resource, after the FHIR library has validated it against its R4(B) model."""
    get_fhir_model_class(resource["resourceType"]).model_validate(resource)
    return resource


def fhir_get(client: Any, person: dict[str, str] | None, path: str, status: int = 200,
             **params: str) -> dict[str, Any]:
    """The answer's resource, validated; every answer carries the request id."""
    response = client.get(f"/fhir/{path}", params=params,
                          headers=auth(person) if person is not None else {})
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(FHIR_JSON), response.headers
    assert "x-request-id" in response.headers, response.headers
    return valid(response.json())


def searched(client: Any, person: dict[str, str], resource_type: str,
             **params: str) -> list[dict[str, Any]]:
    found = fhir_get(client, person, resource_type, **params)
    assert found["resourceType"] == "Bundle" and found["type"] == "searchset", found
    assert found["total"] == len(found.get("entry", []))
    resources = [valid(entry["resource"]) for entry in found.get("entry", [])]
    assert {r["resourceType"] for r in resources} <= {resource_type}
    return resources


def refused(client: Any, person: dict[str, str] | None, path: str, status: int,
            code: str, **params: str) -> dict[str, Any]:
    outcome = fhir_get(client, person, path, status, **params)
    assert outcome["resourceType"] == "OperationOutcome", outcome
    assert outcome["issue"][0]["code"] == code, outcome
    return outcome


def accesses(container: Any, patient_id: str) -> list[tuple[str, str, str]]:
    with psycopg.connect(container.database.url, autocommit=True) as conn:
        return [(actor, resource, str(resource_id)) for actor, resource, resource_id in
                conn.execute("SELECT actor, resource, resource_id FROM carebridge.record_access"
                             " WHERE patient_id = %s ORDER BY access_id", (patient_id,))]


@pytest.fixture
def seeded(client: Any, container: Any, clock: Any, sign_up: Any, staff_member: Any) -> Seeded:
    """Ada's care with internal notes (canary markers) everywhere the clinic writes them: two
    prescription requests, a video appointment with her submitted form, an upload, the
    consultation's summary, a released lab result and an unreleased one, a conversation."""
    seeded = seed_people(client, container, clock, sign_up, staff_member, Canary())
    seed_prescriptions(client, seeded)
    ask_before_visits(client, staff_member("clinic_admin"), [FORM], [], type_id="video")
    appointment_id = book_video(client, staff_member, seeded)
    sent = client.post(f"/v1/appointments/{appointment_id}/forms/{FORM}/submit",
                       headers=auth(seeded.ada),
                       json={"resourceType": "QuestionnaireResponse", "item": complete_answers()})
    assert sent.status_code in (200, 201), sent.text
    seed_document(client, container, clock, seeded, appointment_id)
    seed_consultation(client, clock, seeded, appointment_id)
    seed_records(client, clock, seeded)
    seed_messages(client, seeded)
    caught_up(container)
    return seeded


def test_ada_reads_her_care_as_valid_fhir_with_no_internal_content(client, container, seeded):
    ada, canary = seeded.ada, seeded.canary
    found = {t: searched(client, ada, t) for t in CARE_TYPES}
    assert len(found["Appointment"]) == 1
    assert found["Appointment"][0]["status"] == "booked"
    assert len(found["MedicationRequest"]) == 2  # one medicine in each of two requests
    assert {r["status"] for r in found["MedicationRequest"]} == {"cancelled", "active"}
    assert {r["category"][0]["coding"][0]["code"] for r in found["Consent"]} >= {
        "telemedicine", "document_review"}
    assert len(found["QuestionnaireResponse"]) == 1
    assert found["QuestionnaireResponse"][0]["status"] == "completed"
    # Her upload, and the video consultation's summary (a released record) with its follow-up.
    documents = {r["id"]: r for r in found["DocumentReference"]}
    assert seeded.ids["document_id"][0] in documents
    [summary] = [r for r in documents.values() if r["type"]["coding"][0]["code"] == "34117-2"]
    assert FOLLOW_UP in base64.b64decode(summary["content"][0]["attachment"]["data"]).decode()
    # The question and the answer; the nurse's note to colleagues is not a message.
    assert [bool(r["sender"].get("reference", "").startswith("Patient/"))
            for r in found["Communication"]] == [True, False]
    me = fhir_get(client, ada, f"Patient/{ada['account_id']}")
    assert searched(client, ada, "Patient") == [me]
    assert me["name"][0]["given"] == ["Ada"] and "telecom" not in me
    everything = [me]
    for resource_type, resources in found.items():
        for resource in resources:
            read = fhir_get(client, ada, f"{resource_type}/{resource['id']}")
            assert read == resource
            everything.append(read)
    assert canary.scan("the FHIR API", str(everything)) == []
    # The unreleased result is nobody's document yet.
    refused(client, ada, f"DocumentReference/{seeded.named['unreleased_record']}", 404,
            "not-found")


def test_every_read_of_clinical_content_is_in_the_access_log(client, container, seeded):
    ada, doctor = seeded.ada, seeded.doctor
    before = len(accesses(container, ada["account_id"]))
    for resource_type in CLINICAL_TYPES:
        assert searched(client, doctor, resource_type, patient=f"Patient/{ada['account_id']}")
    logged = accesses(container, ada["account_id"])[before:]
    assert {resource for actor, resource, _ in logged} == {
        "prescription_request", "document", "record", "message_thread", "form_response"}
    assert {actor for actor, _, _ in logged} == {f"doctor:{doctor['account_id']}"}
    [message] = searched(client, ada, "Communication", _count="1")
    before = len(accesses(container, ada["account_id"]))
    fhir_get(client, ada, f"Communication/{message['id']}")
    assert accesses(container, ada["account_id"])[before:] == [
        (f"patient:{ada['account_id']}", "message_thread", seeded.ids["thread_id"][0])]


def test_access_follows_the_one_policy_and_errors_are_operation_outcomes(
        client, container, seeded, sign_up, staff_member):
    ada, proxy = seeded.ada, seeded.proxy
    ada_ref = f"Patient/{ada['account_id']}"
    [appointment] = searched(client, ada, "Appointment")
    stranger = sign_up(given_name="Sam")
    refused(client, stranger, f"Appointment/{appointment['id']}", 403, "forbidden")
    refused(client, stranger, "MedicationRequest", 403, "forbidden", patient=ada_ref)
    refused(client, stranger, f"Patient/{ada['account_id']}", 403, "forbidden")
    assert searched(client, stranger, "Appointment") == []  # their own: none
    # Ada's proxy holds every scope: her care, but not her demographics (her own profile).
    assert searched(client, proxy, "Appointment", patient=ada_ref) == [appointment]
    assert len(searched(client, proxy, "MedicationRequest", subject=ada_ref)) == 2
    refused(client, proxy, f"Patient/{ada['account_id']}", 403, "forbidden")
    # Reception does administrative work for patients known at its clinic: never clinical.
    reception = staff_member("reception")
    assert searched(client, reception, "Appointment", patient=ada_ref) == [appointment]
    assert fhir_get(client, reception, f"Patient/{ada['account_id']}")["id"] == ada["account_id"]
    assert [p["id"] for p in searched(client, reception, "Patient", _id=ada["account_id"])] == [
        ada["account_id"]]
    refused(client, reception, "Patient", 400, "invalid")
    for resource_type in CLINICAL_TYPES:
        refused(client, reception, resource_type, 403, "forbidden", patient=ada_ref)
    refused(client, staff_member("support"), "Appointment", 403, "forbidden", patient=ada_ref)
    # Staff name the patient; bad search parameters are 400.
    refused(client, seeded.doctor, "Appointment", 400, "invalid")
    refused(client, seeded.doctor, "Appointment", 400, "invalid", patient=ada_ref,
            date="yesterday")
    refused(client, None, "Appointment", 401, "login")
    refused(client, ada, "Appointment/00000000-0000-4000-8000-000000000000", 404, "not-found")


def test_date_searches_narrow_each_search(client, seeded, clock):
    ada = seeded.ada
    [appointment] = searched(client, ada, "Appointment")
    day = appointment["start"][:10]
    assert searched(client, ada, "Appointment", date=day) == [appointment]
    assert searched(client, ada, "Appointment", date=f"gt{day}") == []
    later = (clock.now + timedelta(days=400)).date().isoformat()
    for resource_type in CARE_TYPES:
        assert searched(client, ada, resource_type, date=f"ge{later}") == []


@pytest.fixture
def directory(container: Any) -> Any:
    """The test network (tests/domain/test_availability.py) as the reference data."""
    container.availability = Availability(network(), PostgresBookings(
        container.identity.factory.datastore))
    return container.availability.schedule


def test_the_directory_schedules_and_free_slots_for_anyone_signed_in(client, sign_up, directory,
                                                                     clock):
    grace = sign_up(given_name="Grace")
    practitioners = searched(client, grace, "Practitioner")
    assert {p["id"] for p in practitioners} == {str(c.account_id) for c in directory.clinicians()}
    asha = fhir_get(client, grace, f"Practitioner/{ASHA}")
    assert asha["name"][0]["text"] == "Dr Asha Patel"
    assert searched(client, grace, "Practitioner", name="asha") == [asha]
    [schedule] = searched(client, grace, "Schedule", actor=f"Practitioner/{ASHA}")
    assert schedule == fhir_get(client, grace, f"Schedule/{ASHA}")
    day = clock.now.date().isoformat()
    slots = searched(client, grace, "Slot", schedule=f"Schedule/{ASHA}", start=day, _count="3")
    assert len(slots) == 3 and all(s["status"] == "free" for s in slots)
    assert [s["start"] for s in slots] == sorted(s["start"] for s in slots)
    assert fhir_get(client, grace, f"Slot/{slots[0]['id']}") == slots[0]
    assert UUID(slots[0]["schedule"]["reference"].removeprefix("Schedule/")) == ASHA
    off_grid = slots[0]["id"][:-2] + "07"  # seven minutes past: no slot starts then
    for missing in (off_grid, f"{ASHA.hex}-209901010900", "not-a-slot"):
        refused(client, grace, f"Slot/{missing}", 404, "not-found")
    refused(client, grace, f"Practitioner/{UUID(int=1)}", 404, "not-found")
    refused(client, None, "Practitioner", 401, "login")


def test_the_capability_statement_lists_each_resource(client, sign_up):
    grace = sign_up()
    statement = fhir_get(client, grace, "metadata")
    assert {r["type"] for r in statement["rest"][0]["resource"]} == {
        "Patient", "Practitioner", "Schedule", "Slot", *CARE_TYPES, "AuditEvent"}


def fhir_ids(client: Any, person: dict[str, str]) -> dict[str, list[str]]:
    """Values for the FHIR API's own path parameters, from the person's searches (the canary
    fills the others: patient, appointment, document, clinician). Where a search finds
    nothing, a made-up id: it answers 404, which is fine for a walk."""
    made_up = str(UUID(int=1))

    def ids(resource_type: str, otherwise: str = made_up) -> list[str]:
        return [r["id"] for r in searched(client, person, resource_type)] or [otherwise]

    return {"consent_id": ids("Consent"),
            "medication_request_id": ids("MedicationRequest", f"{made_up}-1"),
            "message_id": ids("Communication"), "response_id": ids("QuestionnaireResponse"),
            "slot_id": ids("Slot", f"{UUID(int=1).hex}-202611240900")[:1]}


def test_no_fhir_answer_to_ada_or_her_proxy_holds_internal_content(client, seeded):
    """The canary's walk over every FHIR GET, as Ada and as her proxy, with every seeded id."""
    canary = seeded.canary
    operations = [op for op in patient_facing_gets(client) if op.template.startswith("/fhir")]
    ids = seeded.ids | fhir_ids(client, seeded.ada)
    assert unknown_parameters(operations, ids) == []
    statuses = []
    for caller, person in (("patient", seeded.ada), ("proxy", seeded.proxy)):
        for operation in operations:
            for url in urls(operation, ids):
                response = client.get(url, headers=auth(person))
                assert response.headers["content-type"].startswith(FHIR_JSON), url
                valid(response.json())
                canary.scan(f"GET {url} as the {caller}", response.text + str(response.headers))
                statuses.append(response.status_code)
    assert canary.sightings == []
    assert statuses.count(200) > len(operations)  # the walk read what was seeded
