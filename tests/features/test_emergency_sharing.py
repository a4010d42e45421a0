"""Step definitions for features/emergency_sharing.feature, driven through the HTTP API and the
two WebSockets (the patient's phone and the on-call screen), which stay open across steps."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
from pytest_bdd import given, parsers, scenarios, then, when

from domain.emergency import Position
from tests.api.care_support import signed_in_again
from tests.api.emergency_support import (
    ALONG,
    BENCH,
    consent_version,
    contact_link,
    position,
    ready_to_share,
    sharing_on,
    start_sharing,
)
from tests.api.support import auth

scenarios("emergency_sharing.feature")

ON_CALL_LIST = "/v1/staff/emergency-shares?clinic_id=riverside"
WHAT = "your emergency location share"


@pytest.fixture
def scene(client: Any) -> Iterator[dict[str, Any]]:
    """What the scenario has so far; the sockets it opened close when it ends."""
    with ExitStack() as sockets:
        yield {"sockets": sockets}


def share_path(scene: dict[str, Any]) -> str:
    return f"/v1/emergency-shares/{scene['share']['share_id']}"


def page(client: Any, scene: dict[str, Any]) -> Any:
    return client.get(urlsplit(scene["link"]).path)


def phone(client: Any, scene: dict[str, Any]) -> Any:
    """Ada's phone, streaming positions for her share (connected on first use)."""
    if "phone" not in scene:
        scene["phone"] = scene["sockets"].enter_context(client.websocket_connect(
            f"{share_path(scene)}/positions", headers=auth(scene["ada"])))
        assert scene["phone"].receive_json()["type"] == "ready"
    return scene["phone"]


@given("Ada is a patient at Riverside, where emergency location sharing is switched on")
def ada_at_riverside(client, sign_up, scene):
    sharing_on(client)
    scene["ada"] = sign_up(given_name="Ada")


@given("Ada named her daughter Ann as her emergency contact")
def ada_named_ann(client, scene):
    ready_to_share(client, scene["ada"])


@given("the on-call nurse at Riverside has the emergency screen open")
def screen_open(client, staff_member, scene):
    scene["nurse"] = staff_member("nurse")
    scene["screen"] = scene["sockets"].enter_context(client.websocket_connect(
        "/v1/staff/emergency-shares/live?clinic_id=riverside", headers=auth(scene["nurse"])))
    assert scene["screen"].receive_json() == {"type": "ready"}


@when(parsers.parse('Ada, who fell on the Thames path, shares her location with the note "{note}", '
                    "giving her consent to share her information in the same step"))
def ada_shares(client, container, scene, note):
    consents = client.get("/v1/me/consents", headers=auth(scene["ada"])).json()
    assert "given" not in {c["status"] for c in consents if c["consent_type"] == "data_sharing"}
    response = start_sharing(client, scene["ada"], note=note,
                             consent_version=consent_version(client, scene["ada"]))
    assert response.status_code == 201, response.text
    scene["share"] = response.json()
    assert (scene["share"]["state"], scene["share"]["contact_told"]) == ("active", True)
    scene["link"] = contact_link(container, scene["ada"]["account_id"])
    scene["note"] = note


@given("Ada is sharing her location")
def ada_is_sharing(client, container, scene):
    response = start_sharing(client, scene["ada"],
                             consent_version=consent_version(client, scene["ada"]))
    assert response.status_code == 201, response.text
    scene["share"] = response.json()
    scene["link"] = contact_link(container, scene["ada"]["account_id"])


@then("the nurse's screen hears that Ada started sharing")
def screen_hears_start(scene):
    assert scene["screen"].receive_json() == {
        "type": "share", "share_id": scene["share"]["share_id"], "clinic_id": "riverside",
        "patient_id": scene["ada"]["account_id"], "state": "active"}


@then("her daughter gets a text with a link to see where Ada is")
def daughter_texted(mailbox, scene):
    text = mailbox.last(scene["ada"]["account_id"], "emergency_contact_alert", channel="sms")
    assert text["link"] == scene["link"]
    assert urlsplit(scene["link"]).path.startswith("/emergency/")


@when("Ada's phone sends her position on the bench by the river")
def sends_bench(client, clock, scene):
    sends(client, clock, scene, BENCH, clock.now - timedelta(seconds=5))


@when("Ada's phone sends her position a few metres along the path")
def sends_along(client, clock, scene):
    sends(client, clock, scene, ALONG, clock.now)


def sends(client: Any, clock: Any, scene: dict[str, Any], where: tuple[float, float],
          at: Any) -> None:
    phone(client, scene).send_json(position(at, where=where))
    assert scene["phone"].receive_json() == {"type": "accepted", "at": at.isoformat()}
    scene["sent"] = (where, at)


@then("the nurse's screen shows that position as it arrives")
def screen_shows_position(scene):
    (latitude, longitude), at = scene["sent"]
    assert scene["screen"].receive_json() == {
        "type": "position", "share_id": scene["share"]["share_id"], "clinic_id": "riverside",
        "latitude": latitude, "longitude": longitude, "accuracy": 12, "at": at.isoformat()}


@then("her daughter's page shows the coordinates, their accuracy and the distance Ada moved, "
      "with no map tiles or scripts")
def daughter_sees(client, clock, scene):
    shown = page(client, scene)
    assert shown.status_code == 200
    moved = Position(*BENCH, 12, clock.now).metres_to(Position(*ALONG, 12, clock.now))
    for words in ("Ada is sharing their location with you", f"{ALONG[0]:.6f},{ALONG[1]:.6f}",
                  "Accurate to about 12 m", f"Moved {round(moved, 1):.0f} m since sharing started"):
        assert words in shown.text
    for fetched in ("<script", "<img", "<iframe", "<link", "<object", "tile"):
        assert fetched not in shown.text.lower()
    assert shown.headers["content-security-policy"].startswith("default-src 'none'")


@when("Ada's phone sends a position north of the North Pole")
def sends_impossible(client, clock, scene):
    phone(client, scene).send_json(position(clock.now, where=(123.0, ALONG[1])))
    scene["answer"] = scene["phone"].receive_json()


@then("the phone is told that the latitude must be between -90 and 90")
def told_what_is_wrong(scene):
    assert scene["answer"] == {"type": "error", "errors": [
        {"field": "latitude", "message": "must be between -90 and 90"}]}


@then("the nurse's screen still shows the last good position")
def still_last_good(client, scene):
    [listed] = client.get(ON_CALL_LIST, headers=auth(scene["nurse"])).json()
    assert listed["note"] == scene["note"]
    assert (listed["position"]["latitude"], listed["position"]["longitude"]) == ALONG


@when("Ada stops sharing")
def ada_stops(client, scene):
    stopped = client.post(f"{share_path(scene)}/stop", headers=auth(scene["ada"]))
    assert stopped.status_code == 200, stopped.text
    assert stopped.json()["state"] == "stopped"
    assert scene["phone"].receive_json() == {"type": "ended", "state": "stopped"}


@then("the nurse's screen hears that the share ended")
def screen_hears_end(scene):
    ended = scene["screen"].receive_json()
    assert (ended["type"], ended["share_id"], ended["state"]) == (
        "share", scene["share"]["share_id"], "stopped")


@then("her daughter's link says that Ada stopped sharing")
def link_says_stopped(client, scene):
    link_says(client, scene, "You stopped sharing your location.")


@then("her daughter's link says that the share's time ran out")
def link_says_expired(client, scene):
    link_says(client, scene, "This emergency share ended after its time ran out.")


@then("her daughter's link says that the clinic closed the share")
def link_says_closed(client, scene):
    link_says(client, scene, "The clinic closed this emergency share.")


def link_says(client: Any, scene: dict[str, Any], words: str) -> None:
    gone = page(client, scene)
    assert gone.status_code == 410
    assert "This location share has ended" in gone.text and words in gone.text
    assert "Latest position" not in gone.text


@when(parsers.parse("{minutes:d} minutes pass and the clinic's expiry sweep runs"))
def time_passes(container, clock, scene, minutes):
    clock.now += timedelta(minutes=minutes)
    scene["expired"] = container.emergency.expire_due(clock.now)


@then("her daughter's link still shows where Ada is")
def link_still_works(client, scene):
    assert scene["expired"] == 0
    assert page(client, scene).status_code == 200


@then("the share has expired")
def share_expired(client, container, scene):
    assert scene["expired"] == 1
    ada = signed_in_again(client, container, scene["ada"])
    assert client.get(share_path(scene), headers=auth(ada)).json()["state"] == "expired"


@when(parsers.parse('the on-call doctor closes Ada\'s share with the outcome "{outcome}"'))
def doctor_closes(client, staff_member, scene, outcome):
    scene["doctor"] = staff_member("doctor")
    closed = client.post(f"/v1/staff/emergency-shares/{scene['share']['share_id']}/close",
                         headers=auth(scene["doctor"]), json={"outcome": outcome.replace(" ", "_")})
    assert closed.status_code == 200, closed.text


@then(parsers.parse('the doctor sees the share closed with the outcome "{outcome}"'))
def doctor_sees_closed(client, scene, outcome):
    view = client.get(f"/v1/staff/emergency-shares/{scene['share']['share_id']}",
                      headers=auth(scene["doctor"])).json()
    assert (view["state"], view["outcome"]) == ("closed", outcome.replace(" ", "_"))


@then("Ada's share is no longer on the clinic's on-call list")
def not_on_call(client, scene):
    assert client.get(ON_CALL_LIST, headers=auth(scene["doctor"])).json() == []


@when("her daughter opens the link")
def daughter_opens(client, scene):
    assert page(client, scene).status_code == 200


@when("the on-call nurse opens Ada's share")
def nurse_opens(client, staff_member, scene):
    scene["nurse"] = staff_member("nurse")
    opened = client.get(f"/v1/staff/emergency-shares/{scene['share']['share_id']}",
                        headers=auth(scene["nurse"]))
    assert opened.status_code == 200, opened.text


@then("Ada's access report shows that her emergency contact and the nurse looked at her location")
def access_report(client, scene):
    report = client.get("/v1/me/record-access", headers=auth(scene["ada"]))
    assert report.status_code == 200, report.text
    looks = {(a["who"], a["role"]) for a in report.json()["accesses"] if a["what"] == WHAT}
    assert looks == {("Your emergency contact (from the link we sent)", None),
                     ("Sam Staff", "nurse")}
