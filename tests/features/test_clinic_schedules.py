"""Step definitions for features/clinic_schedules.feature, driven through the HTTP API.

What a clinician works on a day is read through the scheduling context's `sessions` (what
booking and availability read), in the clinic's own time.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import pytest
from pytest_bdd import given, parsers, scenarios, then, when

from tests.api.support import auth
from tests.api.test_scheduling import add_clinician, ok, post, set_pattern, set_up_riverside

scenarios("clinic_schedules.feature")

LONDON = ZoneInfo("Europe/London")
DAYS = {"Mondays": "monday", "Tuesdays": "tuesday", "Wednesdays": "wednesday",
        "Thursdays": "thursday", "Fridays": "friday"}


@pytest.fixture
def scene() -> dict[str, Any]:
    return {}


def day_of(text: str) -> date:
    """'30 November 2026' or 'Monday 30 November 2026'."""
    words = text.split()
    return datetime.strptime(" ".join(words[-3:]), "%d %B %Y").date()


def session(days: str, starts: str, ends: str) -> dict[str, Any]:
    return {"weekday": DAYS[days], "starts": starts, "ends": ends, "clinic_id": "riverside",
            "slot_minutes": 15, "consultation_type_ids": ["gp-in-person"]}


def sessions_of(container: Any, scene: dict[str, Any], day: str) -> list[Any]:
    return container.scheduling.sessions(UUID(scene["patel"]["account_id"]), day_of(day))


@given("Riverside offers GP appointments")
def riverside(client, staff_member, scene):
    scene["setup_admin"] = staff_member("clinic_admin")
    set_up_riverside(client, scene["setup_admin"])


@given("Dr Patel is a doctor at Riverside")
def dr_patel(client, staff_member, scene):
    scene["patel"] = staff_member("doctor")
    add_clinician(client, scene["setup_admin"], scene["patel"]["account_id"])


@given("the Riverside administrator is signed in")
def administrator(staff_member, scene):
    scene["admin"] = staff_member("clinic_admin", clinics=("riverside",))


@given(parsers.parse("Dr Patel works {days} {starts}-{ends} from {valid_from}"))
def patel_works(client, scene, days, starts, ends, valid_from):
    ok(set_pattern(client, scene["admin"], scene["patel"]["account_id"],
                   [session(days, starts, ends)], day_of(valid_from).isoformat()))


@when(parsers.parse("the administrator sets Dr Patel's pattern from {valid_from} to {first} "
                    "{first_starts}-{first_ends} and {second} {second_starts}-{second_ends} "
                    "in 15-minute slots"))
def sets_pattern(client, scene, valid_from, first, first_starts, first_ends, second,
                 second_starts, second_ends):
    saved = ok(set_pattern(client, scene["admin"], scene["patel"]["account_id"], [
        session(first, first_starts, first_ends), session(second, second_starts, second_ends)],
        day_of(valid_from).isoformat()))
    assert saved["changed"] is True


@when(parsers.parse('the administrator closes Riverside on {day} for "{reason}"'))
def closes(client, scene, day, reason):
    ok(post(client, scene["admin"], "/v1/admin/clinics/riverside/closures",
            {"days": [day_of(day).isoformat()], "reason": reason}))


@when(parsers.parse("the administrator withdraws Dr Patel's leave from {first} to {last}"))
def withdraws_leave(client, scene, first, last):
    ok(post(client, scene["admin"],
            f"/v1/admin/clinicians/{scene['patel']['account_id']}/leave/withdraw",
            {"first_day": day_of(first).isoformat(), "last_day": day_of(last).isoformat()}))


@given(parsers.parse("the administrator records Dr Patel's leave from {first} to {last}"))
@when(parsers.parse("the administrator records Dr Patel's leave from {first} to {last}"))
def records_leave(client, scene, first, last):
    ok(post(client, scene["admin"], f"/v1/admin/clinicians/{scene['patel']['account_id']}/leave",
            {"first_day": day_of(first).isoformat(), "last_day": day_of(last).isoformat(),
             "reason": "annual leave"}))


@then(parsers.parse("Dr Patel works {starts}-{ends} at Riverside on {day}, with {slots:d} slots"))
def works(container, scene, starts, ends, day, slots):
    (found,) = sessions_of(container, scene, day)
    assert found.clinic_id == "riverside"
    assert found.starts_at.astimezone(LONDON).strftime("%H:%M") == starts
    assert found.ends_at.astimezone(LONDON).strftime("%H:%M") == ends
    assert len(found.slot_starts()) == slots


@then(parsers.parse("Dr Patel does not work on {day}"))
def does_not_work(container, scene, day):
    assert sessions_of(container, scene, day) == []


@then("Dr Patel's history shows the new pattern was set by a clinic administrator")
def history_shows(client, scene):
    history = ok(client.get(f"/v1/admin/clinicians/{scene['patel']['account_id']}/history",
                            headers=auth(scene["admin"])))
    latest = next(h for h in history if h["change"] == "PatternSet")
    assert (latest["by_role"], latest["by_account_id"]) == ("clinic_admin",
                                                            scene["admin"]["account_id"])
    assert [s["weekday"] for s in latest["details"]["sessions"]] == [0, 2]


@then(parsers.parse("patients see that Riverside is closed on {day}"))
def patients_see_closed(client, sign_up, day):
    clinic = ok(client.get("/v1/clinics/riverside", headers=auth(sign_up())))
    assert day_of(day).isoformat() in clinic["closed_days"]


@then(parsers.parse("the session on {day} starts at {hour:d}:00 UTC, an hour earlier than the "
                    "week before"))
def earlier_in_utc(container, scene, day, hour):
    (after,) = sessions_of(container, scene, day)
    (before,) = container.scheduling.sessions(UUID(scene["patel"]["account_id"]),
                                              date(2027, 3, 22))
    assert after.starts_at.hour == hour
    assert before.starts_at.hour == hour + 1
