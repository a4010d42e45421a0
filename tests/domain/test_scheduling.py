"""Reference data in memory: checking input, recording changes once, and sessions on a day."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.access import SYSTEM, Action, Actor, ClinicResource, is_allowed
from domain.errors import InvalidInput, Rejections
from domain.identity import Role
from domain.schedule_types import Session, local_to_utc
from domain.scheduling import (
    Clinic,
    Leave,
    PatternPeriod,
    SessionTimes,
    WorkingPattern,
    check_no_overlap,
    parse_clinic,
    parse_consultation_type,
    parse_session,
    sessions_on,
)
from tests.domain.support import ADMIN_REF, MORNING

PATEL = UUID("00000000-0000-4000-8000-0000000000a5")
LONDON = ZoneInfo("Europe/London")
MONDAY = date(2026, 11, 30)
AUTUMN_CHANGE = date(2026, 10, 25)  # a Sunday: 02:00 BST becomes 01:00 GMT
SPRING_CHANGE = date(2027, 3, 28)  # a Sunday: 01:00 GMT becomes 02:00 BST

RIVERSIDE = {"name": "Riverside Health Centre", "address_lines": ["1 River Street"],
             "town": "Bristol", "postcode": "bs1 1aa", "timezone": "Europe/London",
             "opening_hours": [{"weekday": "monday", "opens": "08:00", "closes": "18:30"}],
             "policy": {"free_cancellation_hours": 24, "reschedule_notice_hours": 12,
                        "max_reschedules": 2}, "phone": "0117 000 0000"}


def weekly(weekday: int, starts: str, ends: str, clinic: str = "riverside",
           slot: int = 15) -> SessionTimes:
    return SessionTimes(time.fromisoformat(starts), time.fromisoformat(ends), clinic, slot,
                        ("gp-in-person",), None, weekday)


def pattern_with(*sessions: SessionTimes, valid_from: date = date(2026, 1, 1),
                 valid_until: date | None = None) -> WorkingPattern:
    pattern = WorkingPattern(account_id=PATEL, by=ADMIN_REF, at=MORNING)
    pattern.set_pattern(PatternPeriod(valid_from, valid_until, sessions), by=ADMIN_REF,
                        at=MORNING)
    return pattern


def sessions(pattern: WorkingPattern, day: date, closed: set[date] | None = None
             ) -> list[Session]:
    return sessions_on(pattern, day, lambda clinic: LONDON if clinic == "riverside" else None,
                       lambda clinic, d: d in (closed or set()))


def local(session: Session) -> tuple[str, str]:
    return (session.starts_at.astimezone(LONDON).strftime("%H:%M"),
            session.ends_at.astimezone(LONDON).strftime("%H:%M"))


def errors_of(check: Any) -> set[str]:
    errors = Rejections()
    check(errors)
    return {e.field for e in errors.errors}


def test_a_clinic_with_every_field_wrong_names_every_field():
    wrong = {"name": " ", "address_lines": [], "town": "", "postcode": "x" * 13,
             "timezone": "Europe/Atlantis",
             "opening_hours": [{"weekday": "someday", "opens": "9am", "closes": "08:00"}],
             "policy": {"free_cancellation_hours": -1, "reschedule_notice_hours": 500,
                        "max_reschedules": True}}
    assert errors_of(lambda e: parse_clinic(wrong, e)) == {
        "name", "address_lines", "town", "postcode", "timezone", "opening_hours[0].weekday",
        "opening_hours[0].opens", "policy.free_cancellation_hours",
        "policy.reschedule_notice_hours", "policy.max_reschedules"}


def test_setting_a_clinic_to_what_it_already_is_records_nothing():
    clinic = Clinic(clinic_id="riverside", by=ADMIN_REF, at=MORNING)
    details = parse_clinic(RIVERSIDE, Rejections())
    assert clinic.set_details(details, by=ADMIN_REF, at=MORNING) is True
    clinic.collect_events()

    assert clinic.set_details(parse_clinic(RIVERSIDE, Rejections()), by=ADMIN_REF,
                              at=MORNING) is False
    assert clinic.collect_events() == []
    info = clinic.info()
    assert info is not None and info.postcode == "BS1 1AA" and info.policy.max_reschedules == 2


def test_closing_a_clinic_twice_on_the_same_day_records_it_once():
    clinic = Clinic(clinic_id="riverside", by=ADMIN_REF, at=MORNING)
    clinic.close_on([date(2026, 12, 25)], "Christmas Day", by=ADMIN_REF, at=MORNING)
    clinic.collect_events()

    assert clinic.close_on([date(2026, 12, 25)], "Christmas", by=ADMIN_REF, at=MORNING) is False
    assert clinic.closures == {date(2026, 12, 25): "Christmas Day"}


def test_a_consultation_type_needs_a_room_kind_in_person_and_none_by_video():
    assert errors_of(lambda e: parse_consultation_type(
        {"name": "GP", "mode": "in_person", "duration_minutes": 15}, e)) == {"room_kind"}
    assert errors_of(lambda e: parse_consultation_type(
        {"name": "Video", "mode": "video", "duration_minutes": 15, "room_kind": "consulting"},
        e)) == {"room_kind"}
    assert errors_of(lambda e: parse_consultation_type(
        {"name": "Flu", "mode": "carrier-pigeon", "duration_minutes": 2,
         "capacity_per_slot": 501}, e)) == {"mode", "duration_minutes", "capacity_per_slot"}


def test_a_session_with_every_field_wrong_names_every_field():
    raw = {"weekday": "funday", "starts": "25:00", "ends": "08:00", "clinic_id": "River Side",
           "slot_minutes": 4, "consultation_type_ids": [], "room_id": "Room 1"}
    assert errors_of(lambda e: parse_session(raw, "sessions[0]", e, weekly=True)) == {
        "sessions[0].weekday", "sessions[0].starts", "sessions[0].clinic_id",
        "sessions[0].slot_minutes", "sessions[0].consultation_type_ids", "sessions[0].room_id"}


def test_a_session_must_end_after_it_starts_and_not_overlap_another():
    assert errors_of(lambda e: parse_session(
        {"weekday": "mon", "starts": "12:00", "ends": "09:00", "clinic_id": "riverside",
         "slot_minutes": 15, "consultation_type_ids": ["gp-in-person"]}, "s", e,
        weekly=True)) == {"s.ends"}
    assert errors_of(lambda e: check_no_overlap(
        [weekly(0, "09:00", "12:00"), weekly(0, "11:30", "13:00"), weekly(1, "11:30", "13:00")],
        "sessions", e)) == {"sessions[1].starts"}


def test_the_weekly_pattern_gives_the_days_sessions_in_clinic_time():
    pattern = pattern_with(weekly(0, "09:00", "12:00"), weekly(0, "14:00", "17:00"),
                           weekly(2, "09:00", "12:00"))

    monday = sessions(pattern, MONDAY)

    assert [local(s) for s in monday] == [("09:00", "12:00"), ("14:00", "17:00")]
    assert monday[0].starts_at == datetime(2026, 11, 30, 9, 0, tzinfo=UTC)  # GMT in winter
    assert len(monday[0].slot_starts()) == 12
    assert sessions(pattern, MONDAY + timedelta(days=1)) == []


def test_a_nine_oclock_session_is_at_nine_oclock_on_both_sides_of_each_clock_change():
    pattern = pattern_with(weekly(6, "09:00", "12:00"), weekly(5, "09:00", "12:00"))
    for day in (AUTUMN_CHANGE - timedelta(days=1), AUTUMN_CHANGE,
                SPRING_CHANGE - timedelta(days=1), SPRING_CHANGE):
        (session,) = sessions(pattern, day)
        assert local(session) == ("09:00", "12:00"), day
        assert session.ends_at - session.starts_at == timedelta(hours=3)
    assert sessions(pattern, AUTUMN_CHANGE)[0].starts_at.hour == 9  # GMT after the change
    assert sessions(pattern, SPRING_CHANGE)[0].starts_at.hour == 8  # BST after the change


def test_a_session_across_the_autumn_change_is_an_hour_longer_in_real_time():
    pattern = pattern_with(weekly(6, "00:30", "03:00", slot=30))

    (session,) = sessions(pattern, AUTUMN_CHANGE)

    assert session.starts_at == datetime(2026, 10, 24, 23, 30, tzinfo=UTC)  # 00:30 BST
    assert session.ends_at == datetime(2026, 10, 25, 3, 0, tzinfo=UTC)  # 03:00 GMT
    assert len(session.slot_starts()) == 7  # 3.5 hours of real time, not 2.5


def test_a_session_across_the_spring_change_is_an_hour_shorter_in_real_time():
    pattern = pattern_with(weekly(6, "00:30", "03:00", slot=30))

    (session,) = sessions(pattern, SPRING_CHANGE)

    assert session.starts_at == datetime(2027, 3, 28, 0, 30, tzinfo=UTC)  # 00:30 GMT
    assert session.ends_at == datetime(2027, 3, 28, 2, 0, tzinfo=UTC)  # 03:00 BST
    assert len(session.slot_starts()) == 3


def test_a_session_ending_in_the_skipped_hour_never_runs_into_the_next_one():
    # 01:30 does not exist on the spring day: it becomes 02:30 BST, after the next session's
    # 02:00 start; the next session starts when the first ends.
    pattern = pattern_with(weekly(6, "00:00", "01:30", slot=15), weekly(6, "02:00", "04:00"))

    first, second = sessions(pattern, SPRING_CHANGE)

    assert first.ends_at == datetime(2027, 3, 28, 1, 30, tzinfo=UTC)
    assert second.starts_at == first.ends_at
    assert second.ends_at == datetime(2027, 3, 28, 3, 0, tzinfo=UTC)


def test_leave_removes_the_days_sessions_and_a_bank_holiday_closes_the_clinic():
    pattern = pattern_with(weekly(0, "09:00", "12:00"), weekly(1, "09:00", "12:00"))
    pattern.record_leave(Leave(MONDAY, MONDAY, "annual leave"), by=ADMIN_REF, at=MORNING)

    assert sessions(pattern, MONDAY) == []
    assert sessions(pattern, MONDAY + timedelta(days=1), closed={MONDAY + timedelta(days=1)}) \
        == []
    assert len(sessions(pattern, MONDAY + timedelta(days=8))) == 1


def test_recording_the_same_leave_again_records_nothing():
    pattern = pattern_with()
    pattern.record_leave(Leave(MONDAY, MONDAY, "leave"), by=ADMIN_REF, at=MORNING)
    pattern.collect_events()

    assert pattern.record_leave(Leave(MONDAY, MONDAY, "leave"), by=ADMIN_REF, at=MORNING) is False
    assert pattern.collect_events() == []


def test_withdrawn_leave_gives_the_days_their_sessions_back():
    pattern = pattern_with(weekly(0, "09:00", "12:00"))
    pattern.record_leave(Leave(MONDAY, MONDAY, "annual leave"), by=ADMIN_REF, at=MORNING)
    assert sessions(pattern, MONDAY) == []

    assert pattern.withdraw_leave(MONDAY, MONDAY, by=ADMIN_REF, at=MORNING) is True
    assert len(sessions(pattern, MONDAY)) == 1
    assert pattern.withdraw_leave(MONDAY, MONDAY, by=ADMIN_REF, at=MORNING) is False
    assert [type(e).__name__ for e in pattern.collect_events()][-2:] == ["LeaveRecorded",
                                                                          "LeaveWithdrawn"]


def test_an_extra_session_adds_to_the_day_unless_it_overlaps_the_pattern():
    pattern = pattern_with(weekly(0, "09:00", "12:00"))
    saturday = MONDAY + timedelta(days=5)
    for day, starts, ends in ((saturday, "10:00", "13:00"), (MONDAY, "11:00", "13:00"),
                              (MONDAY, "13:00", "15:00")):
        pattern.add_extra_session(SessionTimes(time.fromisoformat(starts),
                                               time.fromisoformat(ends), "riverside", 15,
                                               ("gp-in-person",), day=day),
                                  by=ADMIN_REF, at=MORNING)

    assert [local(s) for s in sessions(pattern, saturday)] == [("10:00", "13:00")]
    assert [local(s) for s in sessions(pattern, MONDAY)] == [("09:00", "12:00"),
                                                             ("13:00", "15:00")]


def test_a_new_pattern_starts_on_its_date_and_the_old_one_runs_until_then():
    pattern = pattern_with(weekly(0, "09:00", "12:00"))
    change = MONDAY + timedelta(days=7)
    pattern.set_pattern(PatternPeriod(change, change + timedelta(days=13),
                                      (weekly(0, "13:00", "17:00"),)), by=ADMIN_REF, at=MORNING)

    assert [local(s) for s in sessions(pattern, MONDAY)] == [("09:00", "12:00")]
    assert [local(s) for s in sessions(pattern, change)] == [("13:00", "17:00")]
    assert sessions(pattern, change + timedelta(days=14)) == []  # nothing after it ends


def test_setting_the_same_pattern_again_records_nothing():
    pattern = pattern_with(weekly(0, "09:00", "12:00"))
    pattern.collect_events()
    assert pattern.set_pattern(PatternPeriod(date(2026, 1, 1), None,
                                             (weekly(0, "09:00", "12:00"),)),
                               by=ADMIN_REF, at=MORNING) is False
    assert pattern.collect_events() == []


def test_the_events_carry_who_and_when():
    pattern = pattern_with(weekly(0, "09:00", "12:00"))
    recorded = pattern.collect_events()
    assert [type(e).__name__ for e in recorded] == ["Created", "PatternSet"]
    assert all(e.by == ADMIN_REF and e.at == MORNING for e in recorded)  # type: ignore[attr-defined]


def test_an_invalid_input_lists_all_fields():
    errors = Rejections()
    parse_clinic({}, errors)
    with pytest.raises(InvalidInput) as refused:
        errors.raise_if_any()
    assert {"name", "address_lines", "town", "postcode", "timezone"} <= {
        e.field for e in refused.value.errors}


quarter_hours = st.integers(min_value=0, max_value=95).map(
    lambda n: time(n // 4, (n % 4) * 15))
weekly_sessions = st.lists(
    st.tuples(st.integers(0, 6), quarter_hours, st.integers(1, 24), st.sampled_from([5, 10, 15])),
    max_size=8)
days = st.one_of(st.sampled_from([AUTUMN_CHANGE, SPRING_CHANGE]),
                 st.dates(date(2026, 1, 1), date(2028, 12, 31)))


@settings(max_examples=300, deadline=None)
@given(weekly_sessions, days, st.sampled_from(["Europe/London", "America/New_York",
                                               "Australia/Lord_Howe", "Asia/Kolkata"]))
def test_sessions_never_overlap_and_lie_inside_the_local_day(raw, day, zone_name):
    zone = ZoneInfo(zone_name)
    candidates = []
    for weekday, starts, quarters, slot in raw:
        end_minutes = min(starts.hour * 60 + starts.minute + quarters * 15, 23 * 60 + 59)
        ends = time(end_minutes // 60, end_minutes % 60)
        if ends > starts:
            candidates.append(SessionTimes(starts, ends, "riverside", slot, ("gp-in-person",),
                                           None, weekday))
    kept: list[SessionTimes] = []
    for candidate in candidates:  # what the pattern check accepts: no overlaps on a weekday
        errors = Rejections()
        check_no_overlap([*kept, candidate], "s", errors)
        if not errors.errors:
            kept.append(candidate)
    pattern = pattern_with(*kept)

    found = sessions_on(pattern, day, lambda _: zone, lambda *_: False)

    day_starts = local_to_utc(day, time(0), zone)
    day_ends = local_to_utc(day + timedelta(days=1), time(0), zone)
    for session in found:
        assert day_starts <= session.starts_at < session.ends_at <= day_ends
    for earlier, later in pairwise(found):
        assert earlier.ends_at <= later.starts_at
    assert len(found) <= sum(1 for s in kept if s.weekday == day.weekday())


def test_only_a_clinics_administrators_keep_its_reference_data():
    riverside_admin = Actor(PATEL, Role.CLINIC_ADMIN, frozenset({"riverside"}))
    reception = Actor(PATEL, Role.RECEPTION, frozenset({"riverside"}))
    patient = Actor(PATEL, Role.PATIENT)
    manage, read = Action.SCHEDULE_MANAGE, Action.SCHEDULE_READ

    assert is_allowed(riverside_admin, manage, ClinicResource("riverside"))
    assert not is_allowed(riverside_admin, manage, ClinicResource("hillview"))
    assert is_allowed(riverside_admin, manage)  # network-wide: consultation types
    assert not is_allowed(reception, manage, ClinicResource("riverside"))
    assert not is_allowed(SYSTEM, manage)
    assert is_allowed(patient, read) and is_allowed(reception, read)
    assert not is_allowed(patient, read, ClinicResource("riverside"))
