"""The pharmacy directory over HTTP (patients search it, clinic administrators keep it, with
every field error at once) and the dead letters of the handoff for coordinators and
administrators."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from commands.pharmacy import (
    DeliveryFailed,
    FileDropAdapter,
    OutgoingHandoff,
    PharmacyHandoffDispatcher,
)
from tests.api.prescription_support import ask, pharmacy_patient, step
from tests.api.support import assert_problem, auth, field_names

HIGH_STREET = {"name": "High Street Pharmacy", "address": "1 High Street, Bristol",
               "postcode": "bs1 4dj", "phone": "0117 496 0000", "channel": "http",
               "endpoint": "https://pharmacy.example/prescriptions"}
DOCKSIDE = {"name": "Dockside Chemist", "address": "5 Harbour Walk, Bristol",
            "postcode": "BS8 4RU", "phone": "+44 117 496 0001", "channel": "file",
            "endpoint": "dockside"}


@pytest.fixture
def pharmacy_client(client: Any) -> Any:
    """The API's client (the pharmacy side is wired in api/app.py and api/container.py)."""
    return client


@pytest.fixture
def admin(staff_member: Any) -> dict[str, str]:
    return staff_member("clinic_admin")


def put(client: Any, person: dict[str, str], pharmacy_id: str, entry: dict[str, Any]) -> Any:
    return client.put(f"/v1/admin/pharmacies/{pharmacy_id}", json=entry, headers=auth(person))


def test_an_administrator_adds_pharmacies_and_patients_find_them(pharmacy_client, admin,
                                                                  sign_up):
    saved = put(pharmacy_client, admin, "high-street", HIGH_STREET)
    assert saved.status_code == 200, saved.text
    assert saved.json() == {**HIGH_STREET, "pharmacy_id": "high-street", "postcode": "BS1 4DJ",
                            "active": True}
    assert put(pharmacy_client, admin, "dockside", DOCKSIDE).status_code == 200
    assert put(pharmacy_client, admin, "closed-one", {**DOCKSIDE, "name": "Closed Pharmacy",
                                                      "active": False}).status_code == 200
    ada = sign_up()

    everything = pharmacy_client.get("/v1/pharmacies", headers=auth(ada))
    by_postcode = pharmacy_client.get("/v1/pharmacies", params={"postcode": "bs1"},
                                      headers=auth(ada))
    by_name = pharmacy_client.get("/v1/pharmacies", params={"q": "harbour"}, headers=auth(ada))
    wildcard = pharmacy_client.get("/v1/pharmacies", params={"q": "%"}, headers=auth(ada))

    assert everything.status_code == 200, everything.text
    assert everything.json() == [
        {"pharmacy_id": "dockside", "name": "Dockside Chemist",
         "address": "5 Harbour Walk, Bristol", "postcode": "BS8 4RU",
         "phone": "+44 117 496 0001"},
        {"pharmacy_id": "high-street", "name": "High Street Pharmacy",
         "address": "1 High Street, Bristol", "postcode": "BS1 4DJ", "phone": "0117 496 0000"}]
    assert [p["pharmacy_id"] for p in by_postcode.json()] == ["high-street"]
    assert [p["pharmacy_id"] for p in by_name.json()] == ["dockside"]
    assert wildcard.json() == []  # a literal '%', not a wildcard


def test_every_field_error_is_reported_at_once(pharmacy_client, admin):
    response = put(pharmacy_client, admin, "Not_An_Id!", {
        "name": " ", "address": "", "postcode": "!!", "phone": "call us", "channel": "fax",
        "endpoint": "anything"})

    problem = assert_problem(response, 422, "invalid-input")
    assert field_names(problem) == {"pharmacy_id", "name", "address", "postcode", "phone",
                                    "channel"}


@pytest.mark.parametrize(("channel", "endpoint"), [
    ("http", "http://pharmacy.example/prescriptions"),  # not encrypted
    ("http", "ftp://pharmacy.example/"),
    ("http", "https://user:secret@pharmacy.example/"),
    ("file", "../elsewhere"),
    ("file", "a/b"),
])
def test_an_endpoint_must_be_https_or_a_plain_folder_name(pharmacy_client, admin, channel,
                                                          endpoint):
    response = put(pharmacy_client, admin, "high-street",
                   {**HIGH_STREET, "channel": channel, "endpoint": endpoint})

    problem = assert_problem(response, 422, "invalid-input")
    assert field_names(problem) == {"endpoint"}


def test_only_clinic_administrators_keep_the_directory(pharmacy_client, staff_member, sign_up):
    for person in (sign_up(), staff_member("prescription_coordinator"), staff_member("doctor"),
                   staff_member("auditor")):
        assert_problem(put(pharmacy_client, person, "high-street", HIGH_STREET), 403,
                       "forbidden")
    assert_problem(pharmacy_client.put("/v1/admin/pharmacies/high-street", json=HIGH_STREET),
                   401)
    assert_problem(pharmacy_client.get("/v1/pharmacies"), 401)


class Gone:
    """A pharmacy endpoint that refuses for good."""

    def deliver(self, handoff: OutgoingHandoff) -> None:
        raise DeliveryFailed("HTTP 410", permanent=True)


class Accepts:
    def deliver(self, handoff: OutgoingHandoff) -> None:
        pass


def dead_handoff(container: Any, pharmacy_client: Any, admin: dict[str, str]) -> str:
    assert put(pharmacy_client, admin, "dockside", DOCKSIDE).status_code == 200
    request_id = uuid.uuid4()
    statements = container.pharmacies.handoff(
        request_id, "dockside", {"clinic_id": "riverside", "items": [{"name": "Amlodipine"}]},
        datetime.now(UTC))
    with psycopg.connect(container.database.url) as conn:
        for statement in statements:
            conn.execute(statement.sql, statement.params)
    PharmacyHandoffDispatcher(container.database.url, {"file": Gone()}).deliver_due()
    return str(request_id)


def test_coordinators_see_dead_handoffs_and_send_them_again(pharmacy_client, container, admin,
                                                            staff_member, sign_up):
    request_id = dead_handoff(container, pharmacy_client, admin)
    coordinator = staff_member("prescription_coordinator")

    listed = pharmacy_client.get("/v1/staff/pharmacy-handoffs", params={"status": "dead"},
                                 headers=auth(coordinator))

    assert listed.status_code == 200, listed.text
    (entry,) = listed.json()
    assert entry["request_id"] == request_id
    assert (entry["pharmacy_id"], entry["pharmacy_name"]) == ("dockside", "Dockside Chemist")
    assert (entry["status"], entry["attempts"], entry["last_error"]) == ("dead", 1, "HTTP 410")
    assert entry["dead_at"] is not None
    assert "payload" not in entry and "Amlodipine" not in listed.text
    assert pharmacy_client.get("/v1/staff/pharmacy-handoffs",
                               headers=auth(admin)).json() == listed.json()
    elsewhere = staff_member("prescription_coordinator", clinics=("hillside",))
    assert pharmacy_client.get("/v1/staff/pharmacy-handoffs", headers=auth(elsewhere)).json() == []

    path = f"/v1/staff/pharmacy-handoffs/{entry['handoff_id']}/retry"
    assert_problem(pharmacy_client.post(path, headers=auth(elsewhere)), 404, "not-found")
    retried = pharmacy_client.post(path, headers=auth(coordinator))
    assert retried.status_code == 200, retried.text
    assert (retried.json()["status"], retried.json()["attempts"]) == ("pending", 0)
    assert pharmacy_client.post(path, headers=auth(coordinator)).json()["status"] == "pending"
    assert pharmacy_client.get("/v1/staff/pharmacy-handoffs",
                               headers=auth(coordinator)).json() == []
    pending = pharmacy_client.get("/v1/staff/pharmacy-handoffs", params={"status": "pending"},
                                  headers=auth(coordinator)).json()
    assert [e["handoff_id"] for e in pending] == [entry["handoff_id"]]

    PharmacyHandoffDispatcher(container.database.url, {"file": Accepts()}).deliver_due()
    assert_problem(pharmacy_client.post(path, headers=auth(coordinator)), 409, "conflict")
    made_up = f"/v1/staff/pharmacy-handoffs/{uuid.uuid4()}/retry"
    assert_problem(pharmacy_client.post(made_up, headers=auth(admin)), 404, "not-found")


def test_only_coordinators_and_administrators_work_the_dead_letters(pharmacy_client, container,
                                                                     admin, staff_member,
                                                                     sign_up):
    dead_handoff(container, pharmacy_client, admin)
    path = f"/v1/staff/pharmacy-handoffs/{uuid.uuid4()}/retry"
    for person in (sign_up(), staff_member("doctor"), staff_member("reception"),
                   staff_member("auditor")):
        assert_problem(pharmacy_client.get("/v1/staff/pharmacy-handoffs", headers=auth(person)),
                       403, "forbidden")
        assert_problem(pharmacy_client.post(path, headers=auth(person)), 403, "forbidden")
    assert_problem(pharmacy_client.get("/v1/staff/pharmacy-handoffs?status=lost",
                                       headers=auth(admin)), 400)


def test_an_approved_request_for_a_pharmacy_is_dropped_there_and_the_patient_sees_it_sent(
        pharmacy_client, client, container, sign_up, staff_member, clock, tmp_path):
    rx = pharmacy_patient(client, container, sign_up, staff_member)
    assert put(pharmacy_client, rx["admin"], "dockside", DOCKSIDE).status_code == 200
    made = ask(client, rx["patient"], "amlodipine", fulfilment="pharmacy",
               pharmacy_id="dockside")
    assert made.status_code == 201, made.text
    rid = made.json()["request_id"]
    for action in ("review", "approve"):
        assert step(client, rx["coordinator"], rid, action).status_code == 200
    dispatcher = PharmacyHandoffDispatcher(
        container.database.url, {"file": FileDropAdapter(tmp_path / "drop")},
        container.prescriptions.handed_off, container.prescriptions.handoff_dead,
        clock=lambda: clock.now)

    assert dispatcher.deliver_due() == 1

    (dropped,) = (tmp_path / "drop" / "dockside").iterdir()
    assert '"request_id":"' + rid + '"' in dropped.read_text()
    mine = client.get(f"/v1/prescription-requests/{rid}", headers=auth(rx["patient"])).json()
    assert mine["status"] == "sent_to_pharmacy"
    assert [t["status"] for t in mine["timeline"]][-1] == "sent_to_pharmacy"


def test_a_dead_handoff_shows_in_the_clinic_queue_and_a_retry_still_reaches_the_pharmacy(
        pharmacy_client, client, container, sign_up, staff_member, clock):
    rx = pharmacy_patient(client, container, sign_up, staff_member)
    coordinator = rx["coordinator"]
    assert put(pharmacy_client, rx["admin"], "dockside", DOCKSIDE).status_code == 200
    rid = ask(client, rx["patient"], "amlodipine", fulfilment="pharmacy",
              pharmacy_id="dockside").json()["request_id"]
    for action in ("review", "approve"):
        assert step(client, coordinator, rid, action).status_code == 200
    callbacks = (container.prescriptions.handed_off, container.prescriptions.handoff_dead)

    PharmacyHandoffDispatcher(container.database.url, {"file": Gone()}, *callbacks,
                              clock=lambda: clock.now).deliver_due()

    seen = client.get(f"/v1/staff/prescription-requests/{rid}", headers=auth(coordinator))
    assert seen.json()["status"] == "approved" and seen.json()["handoff_failed"] is True
    (dead,) = pharmacy_client.get("/v1/staff/pharmacy-handoffs", headers=auth(coordinator)).json()
    assert dead["request_id"] == rid
    retried = pharmacy_client.post(f"/v1/staff/pharmacy-handoffs/{dead['handoff_id']}/retry",
                                   headers=auth(coordinator))
    assert retried.status_code == 200, retried.text

    assert PharmacyHandoffDispatcher(container.database.url, {"file": Accepts()}, *callbacks,
                                     clock=lambda: clock.now).deliver_due() == 1

    mine = client.get(f"/v1/prescription-requests/{rid}", headers=auth(rx["patient"])).json()
    assert mine["status"] == "sent_to_pharmacy"
