"""Feature flags through the API: administrators roll out per clinic; patients see booleans."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

from api.demo import DEMO_PASSWORD, load_demo
from domain.feature_flags import Feature
from tests.api.support import assert_problem, auth, field_names, sign_in

RULES = "/v1/admin/feature-flags/telemedicine/rules"


def set_rule(client: Any, admin: dict[str, str], key: str | None = None,
             if_match: str | None = None, feature: str = "telemedicine", **body: Any) -> Any:
    headers = auth(admin) | ({"Idempotency-Key": key} if key else {}) | (
        {"If-Match": if_match} if if_match is not None else {})
    rule = {"clinic_id": "riverside", "service_type": None, "percentage": 100,
            "patient_ids": [], "reason": "opening video consultations"} | body
    return client.put(f"/v1/admin/feature-flags/{feature}/rules", headers=headers, json=rule)


def remove_rule(client: Any, admin: dict[str, str], **body: Any) -> Any:
    rule = {"clinic_id": "riverside", "service_type": None, "reason": "pilot over"} | body
    return client.post(f"{RULES}/remove", headers=auth(admin), json=rule)


def features_of(client: Any, patient: dict[str, str], clinic_id: str,
                service_type: str | None = None) -> dict[str, Any]:
    params = {"clinic_id": clinic_id} | ({"service_type": service_type} if service_type else {})
    response = client.get("/v1/me/features", headers=auth(patient), params=params)
    assert response.status_code == 200, response.text
    return response.json()


def telemedicine_of(client: Any, admin: dict[str, str]) -> dict[str, Any]:
    response = client.get("/v1/admin/feature-flags", headers=auth(admin))
    assert response.status_code == 200, response.text
    return next(f for f in response.json() if f["feature"] == "telemedicine")


def test_an_administrator_turns_a_feature_on_and_a_patient_sees_it(client, staff_member, sign_up):
    admin, ada = staff_member("clinic_admin"), sign_up()

    response = set_rule(client, admin, service_type="video")

    assert response.status_code == 200, response.text
    assert response.json() == {"feature": "telemedicine", "version": 2, "changed": True}
    assert response.headers["etag"] == '"2"'
    assert response.headers["carebridge-position"].startswith("feature_flags:")
    assert features_of(client, ada, "riverside", "video") == {
        "clinic_id": "riverside", "service_type": "video", "telemedicine": True,
        "prescriptions": False, "records": False, "messaging": False,
        "emergency_location": False}
    assert features_of(client, ada, "riverside")["telemedicine"] is False  # only video
    assert features_of(client, ada, "hillview", "video")["telemedicine"] is False
    assert telemedicine_of(client, admin) == {
        "feature": "telemedicine", "label": "Video consultations", "version": 2,
        "rules": [{"clinic_id": "riverside", "service_type": "video", "percentage": 100,
                   "patient_ids": []}]}


def test_a_named_patient_gets_the_feature_and_others_do_not(client, staff_member, sign_up):
    admin, ada, bob = staff_member("clinic_admin"), sign_up(), sign_up(given_name="Bob")

    assert set_rule(client, admin, feature="records", percentage=0,
                    patient_ids=[ada["account_id"]], reason="records pilot").status_code == 200

    assert features_of(client, ada, "riverside")["records"] is True
    assert features_of(client, bob, "riverside")["records"] is False


def test_setting_the_same_rule_again_changes_nothing_and_writes_nothing(client, staff_member):
    admin = staff_member("clinic_admin")
    assert set_rule(client, admin).status_code == 200

    again = set_rule(client, admin, reason="just making sure")

    assert again.status_code == 200
    assert again.json() == {"feature": "telemedicine", "version": 2, "changed": False}
    assert "carebridge-position" not in again.headers


def test_removing_a_rule_is_recorded_once_and_is_safe_to_repeat(client, staff_member, sign_up):
    admin, ada = staff_member("clinic_admin"), sign_up()
    set_rule(client, admin)

    first, second = remove_rule(client, admin), remove_rule(client, admin)

    assert (first.status_code, first.json()["changed"]) == (200, True)
    assert (second.status_code, second.json()["changed"]) == (200, False)
    assert features_of(client, ada, "riverside")["telemedicine"] is False


def test_removing_from_a_feature_never_configured_changes_nothing(client, staff_member):
    response = client.post("/v1/admin/feature-flags/messaging/rules/remove",
                           headers=auth(staff_member("clinic_admin")),
                           json={"clinic_id": "riverside", "reason": "tidying up"})
    assert response.json() == {"feature": "messaging", "version": 0, "changed": False}
    blank = client.post("/v1/admin/feature-flags/messaging/rules/remove",
                        headers=auth(staff_member("clinic_admin")),
                        json={"clinic_id": "riverside", "service_type": "Video", "reason": " "})
    assert field_names(assert_problem(blank, 422)) == {"service_type", "reason"}


def test_every_wrong_value_is_named_at_once(client, staff_member):
    admin = staff_member("clinic_admin")

    response = set_rule(client, admin, service_type="Video Calls", percentage=150,
                        patient_ids=[str(uuid4()) for _ in range(10_001)], reason="  ")

    problem = assert_problem(response, 422, "invalid-input")
    assert field_names(problem) == {"service_type", "percentage", "patient_ids", "reason"}
    assert telemedicine_of(client, admin)["version"] == 0


def test_a_body_of_the_wrong_shape_names_each_field(client, staff_member):
    response = set_rule(client, staff_member("clinic_admin"), percentage="twenty",
                        patient_ids=["not-an-id"], colour="blue")

    problem = assert_problem(response, 400)
    assert field_names(problem) == {"percentage", "patient_ids[0]", "colour"}


def test_an_unknown_feature_is_a_404_listing_the_known_ones(client, staff_member):
    admin = staff_member("clinic_admin")

    for response in (set_rule(client, admin, feature="teleportation"),
                     client.get("/v1/admin/feature-flags/teleportation/history",
                                headers=auth(admin))):
        problem = assert_problem(response, 404, "unknown-feature")
        assert problem["extensions"]["known"] == ["telemedicine", "prescriptions", "records",
                                                  "messaging", "emergency_location"]


def test_a_stale_version_is_refused_with_409_and_the_current_version_applies(client, staff_member):
    admin = staff_member("clinic_admin")
    loaded = telemedicine_of(client, admin)["version"]
    assert set_rule(client, admin, if_match=f'"{loaded}"').status_code == 200

    stale = set_rule(client, admin, if_match=f'"{loaded}"', percentage=50)
    problem = assert_problem(stale, 409, "concurrent-change")
    assert problem["extensions"]["current_version"] == 2

    current = problem["extensions"]["current_version"]
    fresh = set_rule(client, admin, if_match=f'"{current}"', percentage=50)
    assert fresh.status_code == 200, fresh.text
    assert telemedicine_of(client, admin)["rules"][0]["percentage"] == 50


def test_an_if_match_that_is_not_a_version_is_refused(client, staff_member):
    problem = assert_problem(set_rule(client, staff_member("clinic_admin"), if_match="*"), 422)
    assert field_names(problem) == {"If-Match"}


def test_a_retried_change_with_the_same_key_is_made_once(client, staff_member):
    admin = staff_member("clinic_admin")

    first = set_rule(client, admin, key="rollout-video-0001", percentage=20)
    second = set_rule(client, admin, key="rollout-video-0001", percentage=20)

    assert first.status_code == second.status_code == 200
    assert first.json() == second.json() == {"feature": "telemedicine", "version": 2,
                                             "changed": True}
    assert second.headers["carebridge-position"] == first.headers["carebridge-position"]
    history = client.get("/v1/admin/feature-flags/telemedicine/history", headers=auth(admin))
    assert len(history.json()) == 1
    reused = set_rule(client, admin, key="rollout-video-0001", percentage=30)
    assert_problem(reused, 409, "idempotency-key-reused")


def test_the_history_shows_each_change_with_who_when_and_why(client, staff_member, clock):
    admin = staff_member("clinic_admin")
    set_rule(client, admin, percentage=20, reason="pilot with the morning team")
    remove_rule(client, admin, reason="pilot over")

    response = client.get("/v1/admin/feature-flags/telemedicine/history", headers=auth(admin))

    assert response.status_code == 200, response.text
    removed, added = response.json()
    assert (removed["action"], removed["reason"], removed["percentage"]) == (
        "rule_removed", "pilot over", None)
    assert (added["action"], added["reason"], added["percentage"], added["clinic_id"]) == (
        "rule_set", "pilot with the morning team", 20, "riverside")
    for entry in (removed, added):
        assert (entry["by_role"], entry["by_account_id"]) == ("clinic_admin", admin["account_id"])
        assert entry["at"].startswith(clock.now.date().isoformat())
        assert entry["at_local"]


def test_an_administrator_of_another_clinic_may_not_touch_or_see_riversides_rules(
        client, staff_member):
    riverside_admin = staff_member("clinic_admin")
    hillview_admin = staff_member("clinic_admin", clinics=("hillview",))
    set_rule(client, riverside_admin, percentage=20)
    set_rule(client, hillview_admin, clinic_id="hillview", reason="hillview opens video")

    assert_problem(set_rule(client, hillview_admin, percentage=100), 403, "forbidden")
    assert_problem(remove_rule(client, hillview_admin), 403, "forbidden")
    assert [r["clinic_id"] for r in telemedicine_of(client, hillview_admin)["rules"]] == [
        "hillview"]
    history = client.get("/v1/admin/feature-flags/telemedicine/history",
                         headers=auth(hillview_admin)).json()
    assert [entry["clinic_id"] for entry in history] == ["hillview"]
    assert telemedicine_of(client, riverside_admin)["rules"][0]["percentage"] == 20


def test_a_patient_asking_about_a_clinic_by_a_wrong_name_is_told_which_field(client, sign_up):
    response = client.get("/v1/me/features", headers=auth(sign_up()),
                          params={"clinic_id": "River Side", "service_type": "Video!"})
    problem = assert_problem(response, 422, "invalid-input")
    assert field_names(problem) == {"clinic_id", "service_type"}


def test_the_patient_answer_never_reveals_the_rollout(client, staff_member, sign_up):
    admin, ada = staff_member("clinic_admin"), sign_up()
    set_rule(client, admin, percentage=37, patient_ids=[str(uuid4())])

    answer = client.get("/v1/me/features", headers=auth(ada), params={"clinic_id": "riverside"})

    assert set(answer.json()) == {"clinic_id", "service_type", "telemedicine", "prescriptions",
                                  "records", "messaging", "emergency_location"}
    assert "37" not in answer.text


def test_a_command_refused_by_the_gate_is_a_403_problem_in_plain_words(
        client, container, sign_up, monkeypatch):
    # No context calls the gate through the API yet; stand one in front of giving consent.
    ada = sign_up()

    def give_behind_the_gate(actor, patient_id, *args, **kwargs):
        container.feature_flags.require(Feature.TELEMEDICINE, patient_id, "riverside", "video")

    monkeypatch.setattr(container.consents, "give", give_behind_the_gate)
    response = client.post("/v1/me/consents", headers=auth(ada),
                           json={"consent_type": "telemedicine", "text_version": "2026-11"})

    problem = assert_problem(response, 403, "feature-not-available")
    assert problem["detail"].startswith("Video consultations are not available at Riverside yet.")
    assert problem["extensions"] == {"feature": "telemedicine"}


def test_the_demo_shows_a_staged_rollout_and_a_second_start_changes_nothing(client, container):
    printed = load_demo(container)
    written = container.feature_flags.recorder.max_notification_id()
    load_demo(container)

    assert "Feature rollout" in printed
    assert written == 12  # each of the 4 features: created, then a rule at each demo clinic
    assert container.feature_flags.recorder.max_notification_id() == written
    ada = sign_in(client, "ada@patients.demo", DEMO_PASSWORD)
    alan = sign_in(client, "alan@patients.demo", DEMO_PASSWORD)
    for clinic_id in ("riverside", "hillview"):
        for patient in (ada, alan):
            answer = features_of(client, patient, clinic_id)
            assert answer["telemedicine"] and answer["prescriptions"]
        assert features_of(client, ada, clinic_id)["records"] is True
        assert features_of(client, alan, clinic_id)["records"] is False
    admin = sign_in(client, "admin@carebridge.demo", DEMO_PASSWORD)
    messaging = next(f for f in client.get("/v1/admin/feature-flags", headers=admin).json()
                     if f["feature"] == "messaging")
    assert {r["percentage"] for r in messaging["rules"]} == {50}
