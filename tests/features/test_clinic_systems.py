"""Step definitions for features/clinic_systems.feature, through the HTTP API (the webhook
follower and dispatcher are run as the worker runs them)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import psycopg
import pytest
from pytest_bdd import given, parsers, scenarios, then, when

from commands.webhooks import verify
from tests.api.record_support import my_records, settle
from tests.api.support import auth
from tests.api.test_integration import learn_demographics
from tests.api.visits_support import MONDAY_NINE, book, open_riverside
from tests.domain.test_record_import import immunization

scenarios("clinic_systems.feature")

NHS = "9434765919"
SECRET = "riverside's shared webhook secret, 40 chars"


@pytest.fixture
def scene() -> Iterator[dict[str, Any]]:
    received: list[dict[str, Any]] = []

    class RecordsSystem(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append({"headers": self.headers, "body": body})  # case-insensitive
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), RecordsSystem)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield {"received": received,
               "endpoint": f"http://127.0.0.1:{server.server_address[1]}/carebridge"}
    finally:
        server.shutdown()
        server.server_close()


@given("Ada Lovelace, born on 10 December 1958, is a CareBridge patient")
def ada(container, sign_up, staff_member, scene):
    scene["ada"] = sign_up()  # the fixture registers her born on 1958-12-10
    scene["admin"] = staff_member("clinic_admin")
    learn_demographics(container)


@given("Riverside's administrator has recorded Ada's NHS number")
def nhs_number(client, scene):
    recorded = client.put(f"/v1/admin/patients/{scene['ada']['account_id']}/identifiers",
                          headers=auth(scene["admin"]), json={"identifiers": {"nhs": NHS}})
    assert recorded.status_code == 200, recorded.text


def send(client: Any, scene: dict[str, Any], identifiers: list[dict[str, str]]) -> Any:
    patient = {"resourceType": "Patient", "id": "emis-7", "identifier": identifiers,
               "name": [{"family": "Lovelace"}], "birthDate": "1958-12-10"}
    vaccine = immunization(patient={"reference": "Patient/emis-7"},
                           identifier=[{"value": "emis-imm-7"}])
    scene["import"] = client.post("/v1/admin/record-import", headers=auth(scene["admin"]), json={
        "clinic_id": "riverside", "system": "riverside-emis", "bundle": {
            "resourceType": "Bundle", "type": "collection",
            "entry": [{"fullUrl": "Patient/emis-7", "resource": patient},
                      {"resource": vaccine}]}})
    return scene["import"]


@when("Riverside's records system sends a vaccination for the patient with Ada's NHS number")
def send_by_nhs(client, scene):
    send(client, scene, [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": NHS}])


@when(parsers.parse('Riverside\'s records system sends a vaccination for "Lovelace", born on '
                    '10 December 1958, with only its own record number'))
def send_by_local_number(client, scene):
    scene["local"] = [{"system": "https://emis.example/mrn", "value": "R777"}]
    send(client, scene, scene["local"])


@when("Riverside's records system sends the same vaccination again")
def send_again(client, scene):
    send(client, scene, scene["local"])


@then("the vaccination is in Ada's record")
def in_record(client, container, scene):
    assert scene["import"].status_code == 200, scene["import"].text
    settle(container)
    assert [r["kind"] for r in my_records(client, scene["ada"])] == ["vaccination"]


@then("the import is refused, naming the entry")
def refused(scene):
    answer = scene["import"]
    assert answer.status_code == 422, answer.text
    assert [e["field"] for e in answer.json()["errors"]] == [
        "entry[1].resource.patient.reference"]


@then("the administrator finds the record waiting in the review queue with Ada as the candidate")
def waiting(client, scene):
    [review] = client.get("/v1/admin/identifier-reviews", headers=auth(scene["admin"])).json()
    assert review["family_name"] == "Lovelace"
    assert scene["ada"]["account_id"] in json.dumps(review["candidates"])
    scene["review"] = review


@when("the administrator confirms that it is Ada")
def confirm(client, scene):
    confirmed = client.post(
        f"/v1/admin/identifier-reviews/{scene['review']['review_id']}/confirm",
        headers=auth(scene["admin"]), json={"patient_id": scene["ada"]["account_id"]})
    assert confirmed.status_code == 200, confirmed.text


@given("Riverside's administrator has subscribed its records system to bookings")
def subscribe(client, scene):
    subscribed = client.put("/v1/admin/clinics/riverside/webhooks/emis",
                            headers=auth(scene["admin"]), json={
                                "url": scene["endpoint"], "event_types": ["appointment.booked"],
                                "secret": SECRET})
    assert subscribed.status_code in (200, 201), subscribed.text


@when("Ada books an appointment at Riverside")
def books(client, container, staff_member, scene):
    doctor = open_riverside(container, staff_member)["doctor"]
    booked = book(client, scene["ada"], doctor, MONDAY_NINE)
    assert booked.status_code in (200, 201), booked.text
    scene["appointment_id"] = booked.json()["appointment_id"]
    planner = next(f for f in container.followers if f.projection.name == "webhook_planning")
    with psycopg.connect(container.database.url, autocommit=True) as conn:
        planner.catch_up(conn)
    assert container.webhook_dispatcher.deliver_due() == 1


@then("the records system receives one signed notice of the booking")
def signed(scene):
    [notice] = scene["received"]
    header = notice["headers"]["X-CareBridge-Signature"]
    timestamp = int(dict(p.split("=", 1) for p in header.split(","))["t"])
    assert verify(SECRET, notice["body"], header, timestamp)
    body = json.loads(notice["body"])
    assert (body["type"], body["data"]["appointment_id"]) == (
        "appointment.booked", scene["appointment_id"])


@then("the notice carries ids and the status only")
def ids_only(scene):
    body = json.loads(scene["received"][0]["body"])
    text = json.dumps(body)
    assert "Lovelace" not in text and NHS not in text and "gp" not in text.lower()
    assert set(body["data"]) <= {"appointment_id", "status", "patient"}
