"""Reference data through the API: administrators keep their clinics' schedules; everyone
signed in reads the directory; every change is recorded and every wrong field named."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any
from uuid import UUID

from api.demo import load_demo
from tests.api.support import assert_problem, auth, field_names

RIVERSIDE = {"name": "Riverside Health Centre", "address_lines": ["1 River Street"],
             "town": "Bristol", "postcode": "BS1 1AA", "timezone": "Europe/London",
             "opening_hours": [{"weekday": day, "opens": "08:00", "closes": "18:30"}
                               for day in ("monday", "tuesday", "wednesday", "thursday",
                                           "friday")],
             "policy": {"free_cancellation_hours": 24, "reschedule_notice_hours": 24,
                        "max_reschedules": 2}, "phone": "0117 496 0000"}
GP = {"name": "GP appointment", "mode": "in_person", "duration_minutes": 15,
      "room_kind": "consulting", "preparation": "Bring a list of your medicines."}
VIDEO = {"name": "Video consultation", "mode": "video", "duration_minutes": 15}
MONDAY_MORNING = {"weekday": "monday", "starts": "09:00", "ends": "12:00",
                  "clinic_id": "riverside", "slot_minutes": 15,
                  "consultation_type_ids": ["gp-in-person", "video"]}
CSV_HEADER = ("clinician,clinic,weekday,start,end,slot_minutes,consultation_types,valid_from,"
              "valid_until\n")


def put(client: Any, person: dict[str, str], path: str, body: dict[str, Any],
        key: str | None = None) -> Any:
    headers = auth(person) | ({"Idempotency-Key": key} if key else {})
    return client.put(path, headers=headers, json=body)


def post(client: Any, person: dict[str, str], path: str, body: dict[str, Any],
         key: str | None = None) -> Any:
    headers = auth(person) | ({"Idempotency-Key": key} if key else {})
    return client.post(path, headers=headers, json=body)


def ok(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def set_up_riverside(client: Any, admin: dict[str, str]) -> None:
    """Riverside with a consulting room and the GP and video consultation types."""
    ok(put(client, admin, "/v1/admin/clinics/riverside", RIVERSIDE))
    ok(put(client, admin, "/v1/admin/rooms/riverside-room-1",
           {"clinic_id": "riverside", "kind": "consulting", "name": "Room 1"}))
    ok(put(client, admin, "/v1/admin/consultation-types/gp-in-person", GP))
    ok(put(client, admin, "/v1/admin/consultation-types/video", VIDEO))


def add_clinician(client: Any, admin: dict[str, str], account_id: str,
                  name: str = "Dr Asha Patel", languages: tuple[str, ...] = ("en", "hi")) -> None:
    ok(put(client, admin, f"/v1/admin/clinicians/{account_id}", {
        "display_name": name, "specialty": "General practice", "languages": list(languages),
        "clinic_ids": ["riverside"], "consultation_type_ids": ["gp-in-person", "video"],
        "profile": "Special interest in diabetes care."}))


def set_pattern(client: Any, admin: dict[str, str], account_id: str,
                sessions: list[dict[str, Any]], valid_from: str = "2026-11-23") -> Any:
    return put(client, admin, f"/v1/admin/clinicians/{account_id}/working-pattern",
               {"valid_from": valid_from, "sessions": sessions})


def test_an_administrator_sets_up_a_clinic_and_patients_find_its_clinicians(
        client, container, staff_member, sign_up):
    admin, doctor, ada = staff_member("clinic_admin"), staff_member("doctor"), sign_up()
    set_up_riverside(client, admin)
    add_clinician(client, admin, doctor["account_id"])
    saved = ok(set_pattern(client, admin, doctor["account_id"], [MONDAY_MORNING]))
    assert saved["changed"] is True

    clinics = ok(client.get("/v1/clinics", headers=auth(ada)))
    assert [c["clinic_id"] for c in clinics] == ["riverside"]
    assert clinics[0]["opening_hours"][0] == {"weekday": "monday", "opens": "08:00",
                                              "closes": "18:30"}
    found = ok(client.get("/v1/clinicians", headers=auth(ada),
                          params={"language": "hi", "clinic": "riverside",
                                  "consultation_type": "video"}))
    assert [c["account_id"] for c in found] == [doctor["account_id"]]
    assert ok(client.get("/v1/clinicians", headers=auth(ada), params={"language": "fr"})) == []
    profile = ok(client.get(f"/v1/clinicians/{doctor['account_id']}", headers=auth(ada)))
    assert profile["display_name"] == "Dr Asha Patel"
    assert profile["specialty"] == "general practice"
    assert "email" not in profile and "@" not in str(profile)
    types = ok(client.get("/v1/consultation-types", headers=auth(ada)))
    assert {t["type_id"] for t in types} == {"gp-in-person", "video"}
    sessions = container.scheduling.sessions(UUID(doctor["account_id"]), date(2026, 11, 30))
    assert [s.starts_at.isoformat() for s in sessions] == ["2026-11-30T09:00:00+00:00"]


def test_leave_takes_the_days_sessions_away_until_it_is_withdrawn(client, container,
                                                                   staff_member):
    admin, doctor = staff_member("clinic_admin"), staff_member("doctor")
    set_up_riverside(client, admin)
    add_clinician(client, admin, doctor["account_id"])
    ok(set_pattern(client, admin, doctor["account_id"], [MONDAY_MORNING]))
    monday, days = date(2026, 11, 30), {"first_day": "2026-11-30", "last_day": "2026-11-30"}
    path = f"/v1/admin/clinicians/{doctor['account_id']}/leave"

    ok(post(client, admin, path, days | {"reason": "annual leave"}))
    assert container.scheduling.sessions(UUID(doctor["account_id"]), monday) == []
    withdrawn = ok(post(client, admin, f"{path}/withdraw", days))
    again = post(client, admin, f"{path}/withdraw", days)

    assert withdrawn["changed"] is True
    assert len(container.scheduling.sessions(UUID(doctor["account_id"]), monday)) == 1
    assert "No leave" in assert_problem(again, 404)["detail"]


def test_a_clinician_profile_shows_the_next_free_slots(client, staff_member, sign_up):
    admin, doctor, ada = staff_member("clinic_admin"), staff_member("doctor"), sign_up()
    set_up_riverside(client, admin)
    add_clinician(client, admin, doctor["account_id"])
    ok(set_pattern(client, admin, doctor["account_id"], [MONDAY_MORNING]))

    profile = ok(client.get(f"/v1/clinicians/{doctor['account_id']}", headers=auth(ada)))

    slots = profile["next_available"]
    assert slots, profile
    assert all(slot["clinic_id"] == "riverside" for slot in slots)
    assert slots[0]["starts_at"] > "2026-11-23T09:00"


def test_every_wrong_field_of_a_clinic_is_named_at_once(client, staff_member):
    admin = staff_member("clinic_admin")
    wrong = RIVERSIDE | {"name": " ", "timezone": "Mars/Olympus",
                         "opening_hours": [{"weekday": "someday", "opens": "8", "closes": "07:00"}],
                         "policy": {"free_cancellation_hours": 1000}}

    problem = assert_problem(put(client, admin, "/v1/admin/clinics/riverside", wrong), 422,
                             "invalid-input")

    assert field_names(problem) == {"name", "timezone", "opening_hours[0].weekday",
                                    "opening_hours[0].opens", "policy.free_cancellation_hours"}
    assert ok(client.get("/v1/clinics", headers=auth(admin))) == []
    unknown = put(client, admin, "/v1/admin/clinics/riverside", RIVERSIDE | {"colour": "blue"})
    assert field_names(assert_problem(unknown, 400)) == {"colour"}


def test_a_working_pattern_names_every_wrong_session_field(client, staff_member):
    admin, doctor = staff_member("clinic_admin"), staff_member("doctor")
    set_up_riverside(client, admin)
    add_clinician(client, admin, doctor["account_id"])

    response = set_pattern(client, admin, doctor["account_id"], [
        MONDAY_MORNING,
        MONDAY_MORNING | {"starts": "11:00", "ends": "13:00"},
        MONDAY_MORNING | {"weekday": "tue", "slot_minutes": 300, "clinic_id": "hillview",
                          "consultation_type_ids": ["flu-vaccination"],
                          "room_id": "nowhere"}])

    problem = assert_problem(response, 422, "invalid-input")
    assert field_names(problem) == {
        "sessions[1].starts", "sessions[2].slot_minutes", "sessions[2].clinic_id",
        "sessions[2].consultation_type_ids", "sessions[2].room_id"}


def test_another_clinics_administrator_cannot_change_riverside(client, staff_member):
    admin = staff_member("clinic_admin")
    hillview_admin = staff_member("clinic_admin", clinics=("hillview",))
    set_up_riverside(client, admin)

    refused = put(client, hillview_admin, "/v1/admin/clinics/riverside", RIVERSIDE)
    assert_problem(refused, 403, "forbidden")
    assert_problem(client.get("/v1/admin/clinics/riverside/history",
                              headers=auth(hillview_admin)), 403)
    # Consultation types are shared by the network: any clinic administrator may keep them.
    assert ok(put(client, hillview_admin, "/v1/admin/consultation-types/video",
                  VIDEO | {"duration_minutes": 20}))["changed"] is True


def test_only_a_clinical_staff_account_can_have_a_clinician_profile(client, staff_member,
                                                                    sign_up):
    admin = staff_member("clinic_admin")
    set_up_riverside(client, admin)
    for account in (sign_up(), staff_member("reception")):
        response = put(client, admin, f"/v1/admin/clinicians/{account['account_id']}", {
            "display_name": "Not a clinician", "specialty": "none", "languages": ["en"],
            "clinic_ids": ["riverside"], "consultation_type_ids": ["video"]})
        assert_problem(response, 404, "not-found")


def test_a_bank_holiday_is_recorded_once_and_retries_are_answered_the_same(client,
                                                                          staff_member):
    admin = staff_member("clinic_admin")
    set_up_riverside(client, admin)
    body = {"days": ["2026-12-25", "2026-12-26"], "reason": "Christmas"}

    first = post(client, admin, "/v1/admin/clinics/riverside/closures", body, key="close-0001")
    retried = post(client, admin, "/v1/admin/clinics/riverside/closures", body,
                   key="close-0001")
    again = post(client, admin, "/v1/admin/clinics/riverside/closures", body)

    assert ok(first)["changed"] is True and first.headers["carebridge-position"]
    assert ok(retried) == ok(first)
    assert ok(again)["changed"] is False and "carebridge-position" not in again.headers
    clinic = ok(client.get("/v1/clinics/riverside", headers=auth(admin)))
    assert clinic["closed_days"] == ["2026-12-25", "2026-12-26"]
    history = ok(client.get("/v1/admin/clinics/riverside/history", headers=auth(admin)))
    assert [h["change"] for h in history] == ["Closed", "DetailsSet", "Created"]
    assert history[0]["by_role"] == "clinic_admin"
    assert history[0]["by_account_id"] == admin["account_id"]
    assert history[0]["at_local"]


def test_a_csv_import_saves_every_row_or_none(client, container, clock, staff_member):
    admin, doctor = staff_member("clinic_admin"), staff_member("doctor")
    set_up_riverside(client, admin)
    add_clinician(client, admin, doctor["account_id"])
    email = container.identity.find_account(UUID(doctor["account_id"])).email
    good = (f"{email},riverside,monday,09:00,12:00,15,gp-in-person;video,2026-11-23,\n"
            f"{doctor['account_id']},riverside,Wednesday,14:00,17:00,10,video,2026-11-23,\n")
    bad = good + f"{email},riverside,friday,17:00,09:00,15,gp-in-person,2026-11-23,\n"

    refused = post(client, admin, "/v1/admin/schedule-import", {"csv": CSV_HEADER + bad})
    assert field_names(assert_problem(refused, 422)) == {"line 4.ends"}
    history = ok(client.get(f"/v1/admin/clinicians/{doctor['account_id']}/history",
                            headers=auth(admin)))
    assert "PatternSet" not in [h["change"] for h in history]

    clock.now += timedelta(minutes=5)
    imported = ok(post(client, admin, "/v1/admin/schedule-import", {"csv": CSV_HEADER + good},
                       key="import-0001"))
    assert imported == {"clinicians": 1, "periods": 1, "sessions": 2, "changed": True}
    history = ok(client.get(f"/v1/admin/clinicians/{doctor['account_id']}/history",
                            headers=auth(admin)))
    assert history[0]["change"] == "PatternSet"
    assert [s["weekday"] for s in history[0]["details"]["sessions"]] == [0, 2]


def test_a_csv_without_the_documented_columns_is_refused(client, staff_member):
    admin = staff_member("clinic_admin")
    response = post(client, admin, "/v1/admin/schedule-import",
                    {"csv": "name,day\nDr Patel,monday\n"})
    problem = assert_problem(response, 422)
    assert field_names(problem) == {"csv"}
    assert "clinician" in problem["detail"]


def test_the_demo_has_schedules_and_loading_it_again_records_nothing(client, container):
    load_demo(container)
    position = container.scheduling.recorder.max_notification_id()

    load_demo(container)

    assert container.scheduling.recorder.max_notification_id() == position
    assert {c.display_name for c in container.scheduling.clinicians()} == {
        "Dr Amara Okafor", "Nurse Ffion Jones", "Dr Rui Silva"}
    flu = container.scheduling.consultation_type("flu-vaccination")
    assert (flu.capacity_per_slot, flu.room_kind) == (6, "vaccination")
    jones = container.identity.account_by_email("nurse.jones@riverside.demo")
    morning, afternoon = container.scheduling.sessions(jones.id, date(2026, 11, 30))
    assert (morning.consultation_type_ids, morning.room_id) == (("flu-vaccination",),
                                                                "riverside-vaccination")
    assert afternoon.consultation_type_ids == ("screening",)
    assert container.scheduling.sessions(jones.id, date(2026, 11, 29)) == []  # a Sunday


def test_a_fixed_room_must_be_of_the_kind_the_sessions_types_need(client, staff_member):
    admin, doctor = staff_member("clinic_admin"), staff_member("doctor")
    set_up_riverside(client, admin)
    ok(put(client, admin, "/v1/admin/rooms/riverside-vaccination",
           {"clinic_id": "riverside", "kind": "vaccination", "name": "Vaccination room"}))
    add_clinician(client, admin, doctor["account_id"])

    wrong = set_pattern(client, admin, doctor["account_id"],
                        [MONDAY_MORNING | {"room_id": "riverside-vaccination"}])
    right = set_pattern(client, admin, doctor["account_id"],
                        [MONDAY_MORNING | {"room_id": "riverside-room-1"}])

    assert field_names(assert_problem(wrong, 422)) == {"sessions[0].room_id"}
    assert ok(right)["changed"] is True
