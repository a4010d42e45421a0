"""Integration, for clinic administrators: patients' identifiers, matching records from clinic
systems (certain, uncertain for review, none), the review queue, `resolve_patient` for the
imports, and the webhooks' subscriptions and dead letters."""

from __future__ import annotations

from datetime import date
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest

from commands.identifiers import (
    Demographics,
    IdentifiersApplication,
)
from commands.webhooks import WebhookDispatcher, WebhookPlanner
from projections.process_managers import PatientDemographics
from projections.runner import ProjectionRunner, ensure_tracking
from tests.api.support import assert_problem, auth, field_names

NHS = "9434765919"
OTHER_NHS = "4010232137"
_APP: dict[str, Any] = {}


@pytest.fixture
def wired(container: Any) -> IdentifiersApplication:
    """The identifiers context, as the composition root wires it."""
    identifiers: IdentifiersApplication = container.identifiers
    return identifiers


@pytest.fixture
def admin_client(wired: Any, client: Any) -> Any:
    """A client of the app (the integration controller is one of its controllers)."""
    return client


@pytest.fixture
def admin(staff_member: Any) -> dict[str, str]:
    return staff_member("clinic_admin")


def learn_demographics(container: Any) -> None:
    follower = ProjectionRunner(PatientDemographics(), container.applications,
                                container.database.url)
    with psycopg.connect(container.database.url) as conn:
        with conn.transaction():
            ensure_tracking(conn.cursor(), follower.projection, follower.projection.name)
        follower.catch_up(conn)


def put_identifiers(client: Any, person: dict[str, str], patient_id: str,
                    identifiers: dict[str, str], **headers: str) -> Any:
    return client.put(f"/v1/admin/patients/{patient_id}/identifiers",
                      headers=auth(person) | headers, json={"identifiers": identifiers})


def match(client: Any, person: dict[str, str], identifiers: dict[str, str],
          family_name: str = "Lovelace", born: str = "1958-12-10") -> dict[str, Any]:
    response = client.post("/v1/admin/identifier-matches", headers=auth(person), json={
        "system": "riverside-emis", "identifiers": identifiers, "family_name": family_name,
        "date_of_birth": born})
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def test_an_administrator_records_a_patients_identifiers_and_each_change_is_versioned(
        admin_client, sign_up, admin):
    ada = sign_up()
    saved = put_identifiers(admin_client, admin, ada["account_id"],
                            {"nhs": "943 476 5919", "riverside-emis": "R12345"})
    assert saved.status_code == 200, saved.text
    assert saved.json()["identifiers"] == {"nhs": NHS, "riverside-emis": "R12345"}
    assert saved.headers["etag"] == '"3"'  # opened, and one event per identifier

    stale = put_identifiers(admin_client, admin, ada["account_id"], {"nhs": NHS}, **{
        "If-Match": '"1"'})
    assert_problem(stale, 409)
    changed = put_identifiers(admin_client, admin, ada["account_id"], {"nhs": NHS}, **{
        "If-Match": '"3"'})
    assert changed.json() == {"patient_id": ada["account_id"], "identifiers": {"nhs": NHS},
                              "version": 4}
    read = admin_client.get(f"/v1/admin/patients/{ada['account_id']}/identifiers",
                            headers=auth(admin))
    assert read.json()["identifiers"] == {"nhs": NHS} and read.headers["etag"] == '"4"'


def test_every_wrong_identifier_is_named_at_once(admin_client, sign_up, admin):
    ada = sign_up()
    refused = put_identifiers(admin_client, admin, ada["account_id"], {
        "nhs": "943 476 5918", "hillside-vision": "H1", "riverside-emis": "R 1"})
    problem = assert_problem(refused, 422)
    assert field_names(problem) == {"identifiers.nhs", "identifiers.riverside-emis"}
    elsewhere = put_identifiers(admin_client, admin, ada["account_id"], {"hillside-vision": "H1"})
    assert field_names(assert_problem(elsewhere, 422)) == {"identifiers.hillside-vision"}


def test_one_number_belongs_to_one_patient(admin_client, sign_up, admin):
    ada, grace = sign_up(), sign_up(given_name="Grace", family_name="Hopper")
    assert put_identifiers(admin_client, admin, ada["account_id"], {"nhs": NHS}).status_code == 200
    taken = put_identifiers(admin_client, admin, grace["account_id"], {"nhs": NHS})
    assert field_names(assert_problem(taken, 422)) == {"identifiers.nhs"}


def test_identifiers_are_for_clinic_administrators_only(admin_client, sign_up, staff_member):
    ada = sign_up()
    for person in (ada, staff_member("doctor"), staff_member("reception"),
                   staff_member("auditor")):
        assert_problem(put_identifiers(admin_client, person, ada["account_id"], {"nhs": NHS}),
                       403)
        assert_problem(admin_client.get(f"/v1/admin/patients/{ada['account_id']}/identifiers",
                                        headers=auth(person)), 403)
        assert_problem(admin_client.get("/v1/admin/identifier-reviews", headers=auth(person)),
                       403)


def test_a_known_nhs_or_local_number_is_a_certain_match(admin_client, sign_up, admin):
    ada = sign_up()
    put_identifiers(admin_client, admin, ada["account_id"], {"nhs": NHS, "riverside-emis": "R1"})
    assert match(admin_client, admin, {"nhs": NHS}, family_name="Byron") == {
        "outcome": "matched", "patient_id": ada["account_id"], "reason": "nhs_number",
        "review_id": None}
    assert match(admin_client, admin, {"riverside-emis": "R1"})["reason"] == "local_number"
    assert match(admin_client, admin, {"riverside-emis": "R2"}, family_name="Byron") == {
        "outcome": "none", "patient_id": None, "reason": "no_candidate", "review_id": None}


def test_a_record_to_match_has_every_wrong_field_named_at_once(admin_client, admin):
    refused = admin_client.post("/v1/admin/identifier-matches", headers=auth(admin), json={
        "system": "hillside-vision", "identifiers": {"nhs": "123"}, "family_name": " ",
        "date_of_birth": "1958-12-10"})
    assert field_names(assert_problem(refused, 422)) == {"system", "identifiers.nhs",
                                                          "family_name"}


def test_a_match_by_name_and_birthday_waits_for_review_and_confirming_links_it(
        admin_client, container, sign_up, admin):
    ada = sign_up()
    learn_demographics(container)
    found = match(admin_client, admin, {"nhs": NHS, "riverside-emis": "R7"},
                  family_name="LOVELACE")
    assert (found["outcome"], found["patient_id"], found["reason"]) == (
        "uncertain", None, "demographics")
    again = match(admin_client, admin, {"nhs": NHS, "riverside-emis": "R7"},
                  family_name="LOVELACE")
    assert again["review_id"] == found["review_id"]  # the same record joins its review

    (review,) = admin_client.get("/v1/admin/identifier-reviews", headers=auth(admin)).json()
    assert review["candidates"] == [ada["account_id"]]
    assert review["identifiers"] == {"nhs": NHS, "riverside-emis": "R7"}
    confirmed = admin_client.post(f"/v1/admin/identifier-reviews/{review['review_id']}/confirm",
                                  headers=auth(admin), json={})
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["status"] == "confirmed"
    assert confirmed.json()["patient_id"] == ada["account_id"]
    read = admin_client.get(f"/v1/admin/patients/{ada['account_id']}/identifiers",
                            headers=auth(admin))
    assert read.json()["identifiers"] == {"nhs": NHS, "riverside-emis": "R7"}
    assert match(admin_client, admin, {"nhs": NHS})["outcome"] == "matched"
    assert admin_client.get("/v1/admin/identifier-reviews", headers=auth(admin)).json() == []
    repeated = admin_client.post(f"/v1/admin/identifier-reviews/{review['review_id']}/confirm",
                                 headers=auth(admin), json={})
    assert repeated.status_code == 200  # a repeated click does nothing


def test_identifiers_that_point_to_two_patients_go_to_review_and_may_be_rejected(
        admin_client, sign_up, staff_member, admin):
    ada, grace = sign_up(), sign_up(given_name="Grace", family_name="Hopper")
    put_identifiers(admin_client, admin, ada["account_id"], {"nhs": NHS})
    put_identifiers(admin_client, admin, grace["account_id"], {"riverside-emis": "R9"})
    found = match(admin_client, admin, {"nhs": NHS, "riverside-emis": "R9"})
    assert (found["outcome"], found["reason"]) == ("uncertain", "conflict")
    (review,) = admin_client.get("/v1/admin/identifier-reviews", headers=auth(admin)).json()
    assert set(review["candidates"]) == {ada["account_id"], grace["account_id"]}

    hillside = staff_member("clinic_admin", clinics=("hillside",))
    assert admin_client.get("/v1/admin/identifier-reviews", headers=auth(hillside)).json() == []
    assert_problem(admin_client.post(f"/v1/admin/identifier-reviews/{review['review_id']}/reject",
                                     headers=auth(hillside)), 404)
    # Linking Ada's NHS number and Grace's EMIS number to either one cannot be right.
    clash = admin_client.post(f"/v1/admin/identifier-reviews/{review['review_id']}/confirm",
                              headers=auth(admin), json={"patient_id": ada["account_id"]})
    assert field_names(assert_problem(clash, 422)) == {"identifiers.riverside-emis"}
    rejected = admin_client.post(f"/v1/admin/identifier-reviews/{review['review_id']}/reject",
                                 headers=auth(admin))
    assert rejected.json()["status"] == "rejected"
    listed = admin_client.get("/v1/admin/identifier-reviews?status=rejected", headers=auth(admin))
    assert [r["review_id"] for r in listed.json()] == [review["review_id"]]


def test_resolve_patient_gives_the_patient_only_for_a_certain_match(admin_client, container,
                                                                    sign_up, admin, clock):
    ada = sign_up()
    learn_demographics(container)
    put_identifiers(admin_client, admin, ada["account_id"], {"riverside-emis": "R5"})
    identifiers = container.applications["identifiers"]
    lovelace = Demographics("Lovelace", date(1958, 12, 10))
    assert identifiers.resolve_patient("riverside-emis", {"riverside-emis": "R5"}, lovelace,
                                       clock.now) == UUID(ada["account_id"])
    assert identifiers.resolve_patient("riverside-emis", {"nhs": OTHER_NHS}, lovelace,
                                       clock.now) is None
    (review,) = identifiers.reviews(identifiers_admin(admin, container))
    assert review.reason == "demographics" and review.system == "riverside-emis"
    assert identifiers.resolve_patient("riverside-emis", {}, Demographics("Byron", date(
        1815, 12, 10)), clock.now) is None


def test_a_decision_on_a_record_without_identifiers_holds_when_it_arrives_again(
        admin_client, container, sign_up, admin, clock):
    ada = sign_up()
    sign_up(given_name="Grace", family_name="Hopper")
    learn_demographics(container)
    identifiers = container.applications["identifiers"]
    lovelace = Demographics("Lovelace", date(1958, 12, 10))
    hopper = Demographics("Hopper", date(1958, 12, 10))
    assert identifiers.resolve_patient("riverside-emis", {}, lovelace, clock.now) is None
    assert identifiers.resolve_patient("riverside-emis", {}, hopper, clock.now) is None
    # Both records arrived at the same moment: tell them apart by name, not by their order.
    reviews = {r["family_name"]: r for r in admin_client.get(
        "/v1/admin/identifier-reviews", headers=auth(admin)).json()}
    admin_client.post(f"/v1/admin/identifier-reviews/{reviews['Lovelace']['review_id']}/confirm",
                      headers=auth(admin), json={})
    admin_client.post(f"/v1/admin/identifier-reviews/{reviews['Hopper']['review_id']}/reject",
                      headers=auth(admin))

    assert identifiers.resolve_patient("riverside-emis", {}, lovelace, clock.now) == UUID(
        ada["account_id"])
    assert match(admin_client, admin, {}, family_name="Hopper")["reason"] == "rejected_review"
    assert admin_client.get("/v1/admin/identifier-reviews", headers=auth(admin)).json() == []


def identifiers_admin(admin: dict[str, str], container: Any) -> Any:
    actor = container.identity.actor(UUID(admin["account_id"]))
    assert actor is not None
    return actor


# ---- webhooks ----------------------------------------------------------------------------------

HOOK = "/v1/admin/clinics/riverside/webhooks/emis"


def test_an_administrator_subscribes_a_webhook_and_its_secret_is_shown_once(admin_client,
                                                                            admin):
    created = admin_client.put(HOOK, headers=auth(admin), json={
        "url": "https://ehr.riverside.example/carebridge",
        "event_types": ["appointment.booked", "record.released"]})
    assert created.status_code == 200, created.text
    secret = created.json()["secret"]
    assert secret and len(secret) >= 32
    read = admin_client.get(HOOK, headers=auth(admin))
    assert read.json()["secret"] is None
    assert read.json()["event_types"] == ["appointment.booked", "record.released"]
    changed = admin_client.put(HOOK, headers=auth(admin), json={
        "url": "https://ehr.riverside.example/carebridge", "event_types": ["record.released"]})
    assert changed.json()["secret"] is None  # kept, not shown again

    bad = admin_client.put(HOOK, headers=auth(admin), json={
        "url": "ftp://ehr.riverside.example", "event_types": ["record.content"], "secret": "x"})
    assert field_names(assert_problem(bad, 422)) == {"url", "event_types", "secret"}
    assert admin_client.delete(HOOK, headers=auth(admin)).status_code == 204
    assert_problem(admin_client.get(HOOK, headers=auth(admin)), 404)


def test_webhooks_are_the_clinics_own_administrators(admin_client, staff_member, sign_up):
    body = {"url": "https://ehr.riverside.example/carebridge", "event_types": ["record.released"]}
    for person in (staff_member("clinic_admin", clinics=("hillside",)), staff_member("doctor"),
                   staff_member("auditor"), sign_up()):
        assert_problem(admin_client.put(HOOK, headers=auth(person), json=body), 403)
        assert_problem(admin_client.get(HOOK, headers=auth(person)), 403)


def test_dead_deliveries_are_listed_without_payload_and_sent_again(admin_client, container,
                                                                   admin, staff_member, clock):
    admin_client.put(HOOK, headers=auth(admin), json={
        "url": "https://ehr.riverside.example/carebridge", "event_types": ["appointment.booked"],
        "secret": "a shared secret of thirty-two chars"})
    appointment_id = uuid4()
    with psycopg.connect(container.database.url) as conn:
        conn.execute(
            "INSERT INTO carebridge.slot_bookings (appointment_id, patient_id, clinician_id,"
            " clinic_id, room_id, consultation_type_id, starts_at, ends_at, status, updated_at)"
            " VALUES (%s, %s, %s, 'riverside', NULL, 'gp', %s, %s, 'booked', %s)",
            (appointment_id, uuid4(), uuid4(), clock.now, clock.now, clock.now))
        event = type("Confirmed", (), {"originator_id": appointment_id,
                                       "originator_version": 2, "at": clock.now})()
        for statement in WebhookPlanner().statements(
                "carebridge:appointments.Appointment.Confirmed.v1", event, conn.cursor()):
            conn.execute(statement.sql, statement.params)
    # Never sent: the test's dispatcher refuses every address that is not loopback.
    WebhookDispatcher(container.database.url, clock=clock, loopback_only=True).deliver_due()

    listed = admin_client.get("/v1/admin/webhook-deliveries?state=dead", headers=auth(admin))
    (dead,) = listed.json()
    assert (dead["event_type"], dead["attempts"], dead["last_error"]) == (
        "appointment.booked", 1, "address not allowed")
    assert "payload" not in dead
    hillside = staff_member("clinic_admin", clinics=("hillside",))
    assert admin_client.get("/v1/admin/webhook-deliveries?state=dead",
                            headers=auth(hillside)).json() == []
    assert_problem(admin_client.post(f"/v1/admin/webhook-deliveries/{dead['delivery_id']}/retry",
                                     headers=auth(hillside)), 404)
    again = admin_client.post(f"/v1/admin/webhook-deliveries/{dead['delivery_id']}/retry",
                              headers=auth(admin))
    assert (again.json()["status"], again.json()["attempts"]) == ("pending", 0)
    assert admin_client.get("/v1/admin/webhook-deliveries?state=pending",
                            headers=auth(admin)).json()[0]["delivery_id"] == dead["delivery_id"]


# ---- who may call what (the rows for tests/api/test_access_matrix.py) ---------------------------

NOBODYS_ID = "00000000-0000-4000-8000-0000000000e2"
CALLERS = ("anonymous", "patient_own", "patient_other", "doctor", "nurse", "reception",
           "prescription_coordinator", "care_manager", "support", "clinic_admin", "auditor")
CODES = {"Y": "2xx", "A": 401, "N": 403, "F": 404}
# In the test_access_matrix.py columns: anon own oth doc nur rec pre car sup adm aud.
ROWS = {
    ("PUT", "/v1/admin/patients/{patient_id}/identifiers"): "A N N N N N N N N Y N",
    ("GET", "/v1/admin/patients/{patient_id}/identifiers"): "A N N N N N N N N Y N",
    ("POST", "/v1/admin/identifier-matches"): "A N N N N N N N N Y N",
    ("GET", "/v1/admin/identifier-reviews"): "A N N N N N N N N Y N",
    ("POST", "/v1/admin/identifier-reviews/{review_id}/confirm"): "A N N N N N N N N F N",
    ("POST", "/v1/admin/identifier-reviews/{review_id}/reject"): "A N N N N N N N N F N",
    ("PUT", "/v1/admin/clinics/{clinic_id}/webhooks/{subscription_id}"): "A N N N N N N N N Y N",
    ("GET", "/v1/admin/clinics/{clinic_id}/webhooks/{subscription_id}"): "A N N N N N N N N Y N",
    ("DELETE", "/v1/admin/clinics/{clinic_id}/webhooks/{subscription_id}"): "A N N N N N N N N Y N",
    ("GET", "/v1/admin/webhook-deliveries"): "A N N N N N N N N Y N",
    ("POST", "/v1/admin/webhook-deliveries/{delivery_id}/retry"): "A N N N N N N N N F N",
}
BODIES = {
    "/v1/admin/patients/{patient_id}/identifiers": {"identifiers": {"riverside-emis": "R42"}},
    "/v1/admin/identifier-matches": {"system": "riverside-emis", "identifiers": {},
                                     "family_name": "Nobody", "date_of_birth": "1990-01-01"},
    "/v1/admin/clinics/{clinic_id}/webhooks/{subscription_id}": {
        "url": "https://ehr.riverside.example/carebridge", "event_types": ["appointment.booked"]},
}


def test_every_caller_gets_exactly_the_access_the_rows_give(admin_client, sign_up, staff_member):
    people: dict[str, dict[str, str]] = {"anonymous": {}, "patient_own": sign_up(),
                                         "patient_other": sign_up(given_name="Bob")}
    for role in CALLERS[3:]:
        people[role] = staff_member(role)
    schema = admin_client.get("/schema/openapi.json").json()["paths"]
    documented = {(method.upper(), path) for path, item in schema.items() for method in item
                  if path.startswith(("/v1/admin/patients/{patient_id}/identifiers",
                                      "/v1/admin/identifier-", "/v1/admin/webhook-"))
                  or "/webhooks/" in path}
    assert documented == set(ROWS)
    differences = []
    for (method, template), row in ROWS.items():
        path = template.format(patient_id=people["patient_own"]["account_id"],
                               review_id=NOBODYS_ID, delivery_id=NOBODYS_ID,
                               clinic_id="riverside", subscription_id="emis")
        body = BODIES.get(template, {}) if method in ("POST", "PUT") else None
        for caller, code in zip(CALLERS, row.split(), strict=True):
            headers = auth(people[caller]) if people[caller] else {}
            response = admin_client.request(method, path, headers=headers, json=body)
            actual = "2xx" if 200 <= response.status_code < 300 else response.status_code
            if actual != CODES[code]:
                differences.append(f"{caller} {method} {template}: {response.status_code}")
    assert differences == []
