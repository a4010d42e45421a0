"""A patient's profile through the API: every endpoint, step-up, versions, who may see it."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any
from uuid import UUID

from tests.api.care_support import later, put_in_care_team
from tests.api.support import PASSWORD, assert_problem, auth, field_names

MOBILE = "+44 7700 900123"
HOME = {"mobile_phone": "+44 7700 900999", "landline": None,
        "address_lines": ["12 Harbour Street"], "town": "Whitby", "postcode": "yo21 3pu",
        "country": "GB"}
DAUGHTER = {"name": "Ann Hopper", "relationship": "daughter", "phone": "+44 7700 900456"}
EVENINGS_OFF = {"channels": ["sms", "email"],
                "quiet_hours": {"start": "21:00", "end": "07:00", "zone": "Europe/London"},
                "language": "en-GB"}
HELP = {"larger_text": True, "screen_reader": False, "simple_language": True,
        "interpreter_language": "bfi"}


def patient(client: Any, mobile_phone: str | None = MOBILE, given_name: str = "Grace"
            ) -> dict[str, str]:
    """A patient registered with a mobile number and signed in; carries its session id."""
    email = f"{given_name.lower()}.{uuid.uuid4().hex[:8]}@patients.test"
    registered = client.post("/v1/auth/register", json={
        "email": email, "password": PASSWORD, "given_name": given_name, "family_name": "Hopper",
        "date_of_birth": "1946-12-09", "mobile_phone": mobile_phone})
    assert registered.status_code == 201, registered.text
    signed_in = client.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert signed_in.status_code == 200, signed_in.text
    tokens = signed_in.json()
    return {"account_id": tokens["account_id"], "session_id": tokens["session_id"],
            "email": email, "refresh_token": tokens["refresh_token"],
            "Authorization": f"Bearer {tokens['access_token']}"}


def step_up(container: Any, clock: Any, person: dict[str, str]) -> None:
    """What `POST /v1/me/step-up` records once the person proves a second factor."""
    actor = container.identity.actor(UUID(person["account_id"]))
    container.sessions.verified(actor, UUID(person["session_id"]), "totp", at=clock.now)


def put(client: Any, person: dict[str, str], section: str, body: dict[str, Any] | None,
        **headers: str) -> Any:
    return client.put(f"/v1/me/profile/{section}", json=body,
                      headers=auth(person) | {k.replace("_", "-"): v for k, v in headers.items()})


def profile_of(client: Any, person: dict[str, str]) -> dict[str, Any]:
    response = client.get("/v1/me/profile", headers=auth(person))
    assert response.status_code == 200, response.text
    assert response.headers["etag"] == f'"{response.json()["version"]}"'
    assert response.headers["cache-control"] == "no-store"
    return response.json()


# ---- reading and changing each section ---------------------------------------------------


def test_a_new_profile_shows_the_mobile_given_at_registration_and_nothing_else(client):
    grace = patient(client)

    profile = profile_of(client, grace)

    assert profile == {
        "patient_id": grace["account_id"], "version": 0,
        "contact": {"mobile_phone": MOBILE, "landline": None, "address_lines": [], "town": None,
                    "postcode": None, "country": None},
        "emergency_contact": None, "preferred_clinic": None, "communication": None,
        "accessibility": {"larger_text": False, "screen_reader": False,
                          "simple_language": False, "interpreter_language": None},
    }


def test_each_section_is_changed_on_its_own_and_saving_it_again_changes_nothing(client):
    grace = patient(client)
    for section, body in (("emergency-contact", DAUGHTER),
                          ("preferred-clinic", {"clinic_id": "riverside"}),
                          ("communication", EVENINGS_OFF), ("accessibility", HELP)):
        changed = put(client, grace, section, body)
        assert changed.status_code == 200, changed.text
        assert changed.json()["changed"] is True
        assert changed.headers["carebridge-position"].startswith("profiles:")
        assert changed.headers["etag"] == f'"{changed.json()["version"]}"'
        again = put(client, grace, section, body)
        assert again.json() == {**changed.json(), "changed": False}
        assert "carebridge-position" not in again.headers

    profile = profile_of(client, grace)
    assert profile["version"] == 5  # the profile's start, then four changes
    assert profile["emergency_contact"] == DAUGHTER
    assert profile["preferred_clinic"] == {"clinic_id": "riverside"}
    assert profile["communication"] == {**EVENINGS_OFF, "channels": ["email", "sms"]}
    assert profile["accessibility"] == HELP


def test_an_emergency_contact_can_be_removed_once(client):
    grace = patient(client)
    put(client, grace, "emergency-contact", DAUGHTER)

    removed = client.delete("/v1/me/profile/emergency-contact", headers=auth(grace))
    again = client.delete("/v1/me/profile/emergency-contact", headers=auth(grace))

    assert removed.status_code == 200, removed.text
    assert removed.json() == {"section": "emergency_contact", "version": 3, "changed": True}
    assert again.json()["changed"] is False
    assert profile_of(client, grace)["emergency_contact"] is None


def test_quiet_hours_can_be_turned_off(client):
    grace = patient(client)
    put(client, grace, "communication", EVENINGS_OFF)
    assert put(client, grace, "communication", {**EVENINGS_OFF, "quiet_hours": None}).json()["changed"]
    assert profile_of(client, grace)["communication"]["quiet_hours"] is None


# ---- mistakes --------------------------------------------------------------------------------


def test_every_mistake_in_a_section_is_named_at_once(client):
    grace = patient(client)

    communication = assert_problem(put(client, grace, "communication", {
        "channels": ["email", "pigeon"],
        "quiet_hours": {"start": "9pm", "end": "25:00", "zone": "Europe/Londres"},
        "language": "English"}), 422, "invalid-input")
    emergency = assert_problem(put(client, grace, "emergency-contact", {}), 422, "invalid-input")
    clinic = assert_problem(put(client, grace, "preferred-clinic", {"clinic_id": "River Side"}),
                            422)

    assert field_names(communication) == {"channels", "quiet_hours.start", "quiet_hours.end",
                                          "quiet_hours.zone", "language"}
    assert field_names(emergency) == {"name", "relationship", "phone"}
    assert field_names(clinic) == {"clinic_id"}
    assert profile_of(client, grace)["version"] == 0


def test_a_body_that_does_not_fit_the_form_is_refused_with_each_field_named(client):
    grace = patient(client)
    problem = assert_problem(put(client, grace, "accessibility", {
        "larger_text": "yes", "screen_reader": 1, "font": "big"}), 400)
    assert field_names(problem) == {"larger_text", "screen_reader", "font"}


# ---- changing contact details needs step-up --------------------------------------------------


def test_contact_details_change_only_after_the_patient_confirms_it_is_them(client, container,
                                                                           clock):
    grace = patient(client)

    refused = assert_problem(put(client, grace, "contact", HOME), 403, "step-up-required")
    assert refused["extensions"]["step_up"] == "/v1/me/step-up"
    assert profile_of(client, grace)["contact"]["mobile_phone"] == MOBILE

    step_up(container, clock, grace)
    changed = put(client, grace, "contact", HOME)

    assert changed.status_code == 200, changed.text
    assert profile_of(client, grace)["contact"] == {**HOME, "postcode": "YO21 3PU"}


def test_every_mistake_in_contact_details_is_named_once_stepped_up(client, container, clock):
    grace = patient(client)
    step_up(container, clock, grace)
    problem = assert_problem(put(client, grace, "contact", {
        "mobile_phone": "call me", "landline": "12", "address_lines": ["1 Bay Road"],
        "postcode": "12345", "country": "GB"}), 422, "invalid-input")
    assert field_names(problem) == {"mobile_phone", "landline", "town", "postcode"}


def test_the_confirmation_lasts_for_the_step_up_window_only(client, container, clock):
    grace = patient(client)
    step_up(container, clock, grace)
    window = timedelta(minutes=container.settings.step_up_minutes)

    clock.now += window - timedelta(minutes=1)
    refreshed = client.post("/v1/auth/refresh", json={"refresh_token": grace["refresh_token"]})
    assert refreshed.status_code == 200, refreshed.text
    grace["Authorization"] = f"Bearer {refreshed.json()['access_token']}"
    assert put(client, grace, "contact", HOME).status_code == 200

    clock.now += timedelta(minutes=2)  # past the window; the session itself is still live
    assert_problem(put(client, grace, "contact", {**HOME, "landline": "020 7946 0958"}), 403,
                   "step-up-required")


def test_staff_are_refused_a_patients_profile_change_before_any_step_up(client, staff_member):
    nurse = staff_member("nurse")
    assert_problem(put(client, nurse, "contact", HOME), 403, "forbidden")
    assert_problem(put(client, nurse, "accessibility", HELP), 403, "forbidden")


# ---- versions ------------------------------------------------------------------------------


def test_a_change_made_on_a_stale_copy_is_refused_with_a_way_forward(client):
    grace = patient(client)
    etag = client.get("/v1/me/profile", headers=auth(grace)).headers["etag"]
    on_the_phone = put(client, grace, "emergency-contact", DAUGHTER, if_match=etag)
    assert on_the_phone.status_code == 200, on_the_phone.text

    on_the_tablet = put(client, grace, "accessibility", HELP, if_match=etag)

    problem = assert_problem(on_the_tablet, 409, "concurrent-change")
    assert "reload your profile" in problem["detail"]
    assert problem["extensions"] == {"current_version": 2}
    assert profile_of(client, grace)["accessibility"]["larger_text"] is False
    fresh = put(client, grace, "accessibility", HELP, if_match=on_the_phone.headers["etag"])
    assert fresh.status_code == 200, fresh.text


def test_if_match_must_be_a_version(client):
    grace = patient(client)
    problem = assert_problem(put(client, grace, "accessibility", HELP, if_match='W/"x"'), 422)
    assert field_names(problem) == {"If-Match"}
    assert put(client, grace, "accessibility", HELP, if_match="*").status_code == 200


def test_a_retry_with_the_same_key_gets_the_first_answer_even_with_its_old_if_match(client):
    grace = patient(client)
    headers = {"if_match": '"0"', "idempotency_key": "grace-clinic-00000001"}

    first = put(client, grace, "preferred-clinic", {"clinic_id": "hillview"}, **headers)
    retry = put(client, grace, "preferred-clinic", {"clinic_id": "hillview"}, **headers)
    reused = put(client, grace, "preferred-clinic", {"clinic_id": "riverside"}, **headers)

    assert first.status_code == retry.status_code == 200
    assert retry.json() == first.json() == {"section": "preferred_clinic", "version": 2,
                                            "changed": True}
    assert retry.headers["carebridge-position"] == first.headers["carebridge-position"]
    assert_problem(reused, 409, "idempotency-key-reused")


# ---- history and account activity ------------------------------------------------------------


def test_the_history_says_what_changed_when_and_by_whom_newest_first(client, container, clock):
    grace = patient(client)
    put(client, grace, "accessibility", HELP)
    clock.now += timedelta(minutes=1)
    step_up(container, clock, grace)
    put(client, grace, "contact", HOME)
    clock.now += timedelta(minutes=1)
    client.delete("/v1/me/profile/emergency-contact", headers=auth(grace))  # nothing to remove

    response = client.get("/v1/me/profile/history", headers=auth(grace))

    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    history = response.json()
    assert [(h["section"], h["fields"], h["changed_by"]) for h in history] == [
        ("contact", ["mobile_phone", "address_lines", "town", "postcode", "country"], "you"),
        ("accessibility", ["larger_text", "simple_language", "interpreter_language"], "you"),
    ]
    assert history[0]["at_local"] == "2026-11-23T09:01:00+00:00"  # November: GMT
    assert "900999" not in response.text and "Whitby" not in response.text


def activity(client: Any, person: dict[str, str], after: Any) -> list[dict[str, Any]]:
    headers = auth(person) | {"CareBridge-Wait-For": after.headers["carebridge-position"]}
    response = client.get("/v1/me/security-events", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def test_each_profile_change_shows_in_account_activity_by_section_never_by_value(client,
                                                                                container, clock):
    grace = patient(client)
    step_up(container, clock, grace)
    put(client, grace, "contact", HOME)
    clock.now += timedelta(minutes=1)
    last = put(client, grace, "emergency-contact", DAUGHTER)

    events = activity(client, grace, last)

    updates = [(e["kind"], e["detail"]) for e in events if e["kind"] == "profile_updated"]
    assert updates == [("profile_updated", "emergency_contact"), ("profile_updated", "contact")]
    shown = str(events)
    for personal in ("900999", "Harbour", "Ann Hopper", "900456", "daughter"):
        assert personal not in shown


# ---- who may see a profile ----------------------------------------------------------------


def test_another_patient_sees_neither_the_profile_nor_its_history(client, sign_up):
    grace, bob = patient(client), sign_up(given_name="Bob")
    changed = put(client, grace, "emergency-contact", DAUGHTER)

    assert_problem(client.get(f"/v1/staff/patients/{grace['account_id']}/profile",
                              headers=auth(bob)), 403)
    assert profile_of(client, bob)["emergency_contact"] is None
    assert client.get("/v1/me/profile/history", headers=auth(bob)).json() == []
    assert "profile_updated" not in {e["kind"] for e in activity(client, bob, changed)}


def staff_read(client: Any, member: dict[str, str], patient_id: str) -> Any:
    return client.get(f"/v1/staff/patients/{patient_id}/profile", headers=auth(member))


def test_the_care_team_and_reception_of_its_clinic_read_a_patients_profile(client, clock,
                                                                           staff_member):
    grace = patient(client)
    put(client, grace, "emergency-contact", DAUGHTER)
    doctor, reception = staff_member("doctor"), staff_member("reception")
    assert_problem(staff_read(client, doctor, grace["account_id"]), 403)  # not in her care yet

    added = put_in_care_team(client, staff_member("clinic_admin"), grace["account_id"],
                             doctor["account_id"], later(clock, days=30))
    assert added.status_code == 201, added.text

    for member in (doctor, reception):  # reception: Grace is now known at its clinic
        response = staff_read(client, member, grace["account_id"])
        assert response.status_code == 200, response.text
        assert response.json()["emergency_contact"] == DAUGHTER
        assert response.json()["contact"]["mobile_phone"] == MOBILE
        assert response.headers["etag"] == '"2"'


def test_support_staff_and_made_up_patients_get_nothing(client, staff_member):
    grace = patient(client)
    assert_problem(staff_read(client, staff_member("support"), grace["account_id"]), 403)
    assert_problem(staff_read(client, staff_member("doctor"), str(uuid.uuid4())), 403)


def test_everything_needs_a_signed_in_caller(client):
    for method, path in (("GET", "/v1/me/profile"), ("GET", "/v1/me/profile/history"),
                         ("PUT", "/v1/me/profile/accessibility"),
                         ("DELETE", "/v1/me/profile/emergency-contact")):
        assert_problem(client.request(method, path, json=HELP if method == "PUT" else None), 401)
