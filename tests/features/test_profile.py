"""Step definitions for features/profile.feature, through the HTTP API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from pytest_bdd import given, parsers, scenarios, then, when

from tests.api.support import assert_problem, auth
from tests.api.test_profile import patient, profile_of, put, step_up

scenarios("profile.feature")

SECTIONS = {"preferred clinic": "preferred_clinic", "accessibility": "accessibility",
            "emergency contact": "emergency_contact", "contact details": "contact"}


@pytest.fixture
def scene() -> dict[str, Any]:
    return {}


def at_clock(clock: Any, hh_mm: str) -> None:
    """Moves the test clock to that time of the scenario's day (November: local time is UTC)."""
    hour, minute = map(int, hh_mm.split(":"))
    clock.now = clock.now.replace(hour=hour, minute=minute)


@given(parsers.parse('Grace has registered with the mobile number "{mobile}"'))
def grace_registered(client, scene, mobile):
    scene["grace"] = patient(client, mobile_phone=mobile)


def emergency_contact(name: str, relationship: str, phone: str) -> dict[str, str]:
    return {"name": name, "relationship": relationship, "phone": phone}


@when(parsers.parse('Grace names "{name}", her {relationship}, on "{phone}" as her emergency '
                    'contact'))
def names_emergency_contact(client, scene, name, relationship, phone):
    scene["contact"] = emergency_contact(name, relationship, phone)
    scene["answer"] = put(client, scene["grace"], "emergency-contact", scene["contact"])
    assert scene["answer"].status_code == 200, scene["answer"].text


@then(parsers.parse('her profile shows "{name}" as her emergency contact'))
@then(parsers.parse('her profile still shows "{name}" as her emergency contact'))
def shows_emergency_contact(client, scene, name):
    assert profile_of(client, scene["grace"])["emergency_contact"]["name"] == name


@when("Grace saves the same emergency contact again")
def saves_again(client, scene):
    scene["answer"] = put(client, scene["grace"], "emergency-contact", scene["contact"])


@then("she is told that nothing changed")
def nothing_changed(scene):
    assert scene["answer"].status_code == 200, scene["answer"].text
    assert scene["answer"].json()["changed"] is False


@when(parsers.parse('Grace changes her mobile number to "{mobile}"'))
def changes_mobile(client, scene, mobile):
    scene["answer"] = put(client, scene["grace"], "contact", {"mobile_phone": mobile})


@then("she is asked to confirm it is her")
def asked_to_confirm(scene):
    problem = assert_problem(scene["answer"], 403, "step-up-required")
    assert "confirm it is you" in problem["detail"]


@then(parsers.parse('her mobile number is still "{mobile}"'))
@then(parsers.parse('her mobile number is "{mobile}"'))
def mobile_is(client, scene, mobile):
    assert profile_of(client, scene["grace"])["contact"]["mobile_phone"] == mobile


@when("Grace confirms it is her with her authenticator app")
def confirms(container, clock, scene):
    step_up(container, clock, scene["grace"])


@given(parsers.parse("at {hh_mm} Grace asked for larger text"))
def asked_for_larger_text(client, clock, scene, hh_mm):
    at_clock(clock, hh_mm)
    assert put(client, scene["grace"], "accessibility", {"larger_text": True}).status_code == 200


@given(parsers.parse('at {hh_mm} Grace chose "{clinic_id}" as her preferred clinic'))
def chose_clinic(client, clock, scene, hh_mm, clinic_id):
    at_clock(clock, hh_mm)
    scene["answer"] = put(client, scene["grace"], "preferred-clinic", {"clinic_id": clinic_id})
    assert scene["answer"].status_code == 200, scene["answer"].text


@when("Grace looks at the history of her profile")
def looks_at_history(client, scene):
    response = client.get("/v1/me/profile/history", headers=auth(scene["grace"]))
    assert response.status_code == 200, response.text
    scene["history"] = response.json()


@then("she sees, newest first")
def sees_history(scene, datatable):
    expected = [(SECTIONS[what], who, at) for what, who, at in datatable[1:]]
    shown = [(h["section"], h["changed_by"], datetime.fromisoformat(h["at_local"]).strftime("%H:%M"))
             for h in scene["history"]]
    assert shown == expected


@then("her account activity shows that her profile was updated, without the details")
def activity_shows_update(client, scene):
    headers = auth(scene["grace"]) | {
        "CareBridge-Wait-For": scene["answer"].headers["carebridge-position"]}
    events = client.get("/v1/me/security-events", headers=headers).json()
    updates = [e["detail"] for e in events if e["kind"] == "profile_updated"]
    assert updates == ["preferred_clinic", "accessibility"]
    assert "riverside" not in str(events)


@given("Grace opened her profile on her phone and on her tablet")
def opened_twice(client, scene):
    etag = client.get("/v1/me/profile", headers=auth(scene["grace"])).headers["etag"]
    scene["phone"] = scene["tablet"] = etag


@when(parsers.parse('Grace names "{name}", her {relationship}, on "{phone}" as her emergency '
                    'contact on her phone'))
def names_on_phone(client, scene, name, relationship, phone):
    answer = put(client, scene["grace"], "emergency-contact",
                 emergency_contact(name, relationship, phone), if_match=scene["phone"])
    assert answer.status_code == 200, answer.text


@when("Grace asks for larger text on her tablet")
def larger_text_on_tablet(client, scene):
    scene["answer"] = put(client, scene["grace"], "accessibility", {"larger_text": True},
                          if_match=scene["tablet"])


@then("her tablet is asked to reload her profile before saving")
def tablet_reloads(client, scene):
    problem = assert_problem(scene["answer"], 409, "concurrent-change")
    assert "reload your profile" in problem["detail"]
    assert profile_of(client, scene["grace"])["accessibility"]["larger_text"] is False
