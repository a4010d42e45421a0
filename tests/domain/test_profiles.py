"""Patient profiles: every section's checks, changes that change nothing, history, quiet hours."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from domain.errors import InvalidInput
from domain.profiles import (
    AccessibilityPreferences,
    CommunicationPreferences,
    ContactDetails,
    EmergencyContact,
    PatientProfile,
    PreferredClinic,
    Profile,
    QuietHours,
    changes,
    empty_profile,
    in_quiet_hours,
    profile_id,
    who_changed,
)

from .support import GRACE, MORNING, NOON, new_events, replay

GRACE_REF = f"patient:{GRACE}"
NURSE_REF = "nurse:00000000-0000-4000-8000-00000000a115"
MOBILE = "+44 7700 900123"
HOME = ContactDetails(MOBILE, "020 7946 0958", ("12 Harbour Street", "Flat 3"), "Whitby",
                      "YO21 3PU", "GB")
DAUGHTER = EmergencyContact("Ann Hopper", "daughter", "+44 7700 900456")
EVENINGS_OFF = CommunicationPreferences(("sms", "email"), QuietHours("21:00", "07:00",
                                                                     "Europe/London"), "en")


def grace_profile(**already: Any) -> PatientProfile:
    """Grace's profile as it stands after the changes named (collected: not new any more)."""
    profile = PatientProfile(patient_id=GRACE, registered_mobile_phone=MOBILE, by=GRACE_REF,
                             at=MORNING)
    for section, value in already.items():
        getattr(profile, f"change_{section}")(value, by=GRACE_REF, at=MORNING)
    profile.collect_events()
    return profile


def problems(change: Any) -> dict[str, str]:
    with pytest.raises(InvalidInput) as refused:
        change()
    return {e.field: e.message for e in refused.value.errors}


# ---- a new profile ---------------------------------------------------------------------------


def test_a_profile_is_named_after_its_patient_and_starts_with_the_registered_mobile():
    profile = grace_profile()
    assert profile.id == profile_id(GRACE)
    assert profile.state() == Profile(GRACE, 1, ContactDetails(mobile_phone=MOBILE), None, None,
                                      None, AccessibilityPreferences())
    assert empty_profile(GRACE, MOBILE) == Profile(GRACE, 0, ContactDetails(mobile_phone=MOBILE),
                                                   None, None, None, AccessibilityPreferences())


# ---- contact details -------------------------------------------------------------------------


def test_contact_details_are_tidied_before_they_are_kept():
    profile = grace_profile()
    profile.change_contact(ContactDetails(" +44 7700  900999 ", None, ("1 Bay Road", "  "), "Whitby ",
                                          "yo213pu", "gb"), by=GRACE_REF, at=NOON)
    assert profile.contact == ContactDetails("+44 7700 900999", None, ("1 Bay Road",), "Whitby",
                                             "YO21 3PU", "GB")
    assert new_events(profile) == ["ContactDetailsChanged"]


def test_every_problem_with_contact_details_is_named_at_once():
    profile = grace_profile()
    found = problems(lambda: profile.change_contact(
        ContactDetails("call me", "12", ("x" * 101,), None, "not a postcode", "United Kingdom"),
        by=GRACE_REF, at=NOON))
    assert set(found) == {"mobile_phone", "landline", "address_lines", "town", "postcode",
                          "country"}
    assert "mobile number" in found["mobile_phone"]
    assert "phone number" in found["landline"] and "mobile" not in found["landline"]
    assert new_events(profile) == []


def test_an_address_in_the_uk_needs_a_real_looking_postcode_and_the_mobile_is_required():
    found = problems(lambda: ContactDetails(None, None, ("1 Bay Road",), "Whitby", "12345",
                                            "GB").checked())
    assert set(found) == {"mobile_phone", "postcode"}
    assert found["postcode"] == "Enter a postcode like SW1A 1AA."


def test_an_address_abroad_may_have_another_postcode_or_none():
    assert ContactDetails(MOBILE, None, ("Rue de la Paix 1",), "Paris", "75002",
                          "fr").checked().country == "FR"
    assert ContactDetails(MOBILE, None, ("Main Street",), "Ennis", None, "IE").checked().postcode is None


def test_more_than_three_address_lines_are_refused():
    found = problems(lambda: ContactDetails(MOBILE, None, ("a", "b", "c", "d"), "Whitby",
                                            "YO21 3PU", "GB").checked())
    assert set(found) == {"address_lines"}


# ---- emergency contact, clinic -------------------------------------------------------------


def test_an_emergency_contact_needs_a_name_a_relationship_and_a_phone():
    found = problems(lambda: EmergencyContact(" ", None, "no phone").checked())
    assert set(found) == {"name", "relationship", "phone"}


def test_removing_an_emergency_contact_that_is_not_there_records_nothing():
    profile = grace_profile()
    assert profile.remove_emergency_contact(by=GRACE_REF, at=NOON) is False
    profile = grace_profile(emergency_contact=DAUGHTER)
    assert profile.remove_emergency_contact(by=GRACE_REF, at=NOON) is True
    assert profile.emergency_contact is None
    assert new_events(profile) == ["EmergencyContactRemoved"]


@pytest.mark.parametrize("clinic_id", ["riverside", "hillview-clinic", "c2"])
def test_a_preferred_clinic_is_a_clinic_id(clinic_id):
    assert PreferredClinic(clinic_id).checked().clinic_id == clinic_id


@pytest.mark.parametrize("clinic_id", [None, "", "x", "Riverside", "river side", "-riverside",
                                       "riverside-", "a" * 51, "river--side"])
def test_anything_else_is_not_a_clinic(clinic_id):
    assert problems(lambda: PreferredClinic(clinic_id).checked()) == {
        "clinic_id": "Choose a clinic from the list."}


# ---- communication and accessibility ---------------------------------------------------------


def test_channels_are_kept_once_each_in_a_fixed_order_and_language_codes_in_their_usual_case():
    preferences = CommunicationPreferences(("push", "sms", "push"), None, "PT-br").checked()
    assert preferences == CommunicationPreferences(("sms", "push"), None, "pt-BR")
    assert CommunicationPreferences(("email",), None, "zh-hant-tw").checked().language == "zh-Hant-TW"


def test_every_problem_with_communication_preferences_is_named_at_once():
    found = problems(lambda: CommunicationPreferences(
        ("email", "fax"), QuietHours("9pm", "24:00", "Europe/Londres"), "English").checked())
    assert set(found) == {"channels", "quiet_hours.start", "quiet_hours.end", "quiet_hours.zone",
                          "language"}
    assert problems(lambda: CommunicationPreferences((), None, "en").checked()) == {
        "channels": "Choose at least one way to hear from us: email, sms or push."}


def test_quiet_hours_need_all_three_parts_and_cannot_start_when_they_end():
    assert set(problems(lambda: CommunicationPreferences(
        ("sms",), QuietHours(None, None, None), "en").checked())) == {
        "quiet_hours.start", "quiet_hours.end", "quiet_hours.zone"}
    assert set(problems(lambda: CommunicationPreferences(
        ("sms",), QuietHours("22:00", "22:00", "Europe/London"), "en").checked())) == {
        "quiet_hours.end"}


def test_accessibility_needs_nothing_but_a_sensible_interpreter_language():
    assert AccessibilityPreferences(True, False, True, " BFI ").checked() == \
        AccessibilityPreferences(True, False, True, "bfi")
    assert set(problems(lambda: AccessibilityPreferences(interpreter_language="sign language")
                        .checked())) == {"interpreter_language"}


# ---- changes that change nothing -------------------------------------------------------------


@pytest.mark.parametrize(("section", "value"), [
    ("contact", HOME), ("emergency_contact", DAUGHTER), ("preferred_clinic", PreferredClinic("riverside")),
    ("communication", EVENINGS_OFF), ("accessibility", AccessibilityPreferences(larger_text=True)),
])
def test_saving_a_section_unchanged_records_nothing(section, value):
    profile = grace_profile(**{section: value})
    assert getattr(profile, f"change_{section}")(value, by=GRACE_REF, at=NOON) is False
    assert new_events(profile) == []


def test_the_same_values_written_differently_are_no_change():
    profile = grace_profile(contact=HOME, communication=EVENINGS_OFF)
    assert profile.change_contact(ContactDetails("+44  7700 900123", "020 7946 0958",
                                                 ("12 Harbour Street", "Flat 3", ""), "Whitby",
                                                 "yo21 3pu", "gb"), by=GRACE_REF, at=NOON) is False
    assert profile.change_communication(CommunicationPreferences(
        ("email", "sms"), QuietHours("21:00", "07:00", "Europe/London"), "EN"),
        by=GRACE_REF, at=NOON) is False
    assert new_events(profile) == []


def test_the_registered_mobile_alone_is_no_change_and_default_accessibility_neither():
    profile = grace_profile()
    assert profile.change_contact(ContactDetails(MOBILE), by=GRACE_REF, at=NOON) is False
    assert profile.change_accessibility(AccessibilityPreferences(), by=GRACE_REF, at=NOON) is False


# ---- history -------------------------------------------------------------------------------


def test_history_names_each_change_its_section_and_only_the_fields_that_changed():
    profile = PatientProfile(patient_id=GRACE, registered_mobile_phone=MOBILE, by=GRACE_REF,
                             at=MORNING)
    profile.change_contact(ContactDetails(MOBILE, None, ("1 Bay Road",), "Whitby", "YO21 3PU",
                                          "GB"), by=GRACE_REF, at=MORNING + timedelta(hours=1))
    profile.change_contact(ContactDetails("+44 7700 900999", None, ("1 Bay Road",), "Whitby",
                                          "YO21 3PU", "GB"), by=NURSE_REF,
                           at=MORNING + timedelta(hours=2))
    profile.change_emergency_contact(DAUGHTER, by=GRACE_REF, at=MORNING + timedelta(hours=3))
    profile.remove_emergency_contact(by=GRACE_REF, at=MORNING + timedelta(hours=4))
    profile.change_accessibility(AccessibilityPreferences(screen_reader=True), by=GRACE_REF,
                                 at=MORNING + timedelta(hours=5))

    history = changes(profile.collect_events())

    assert [(c.section, c.fields, c.removed) for c in history] == [
        ("contact", ("address_lines", "town", "postcode", "country"), False),
        ("contact", ("mobile_phone",), False),
        ("emergency_contact", ("name", "relationship", "phone"), False),
        ("emergency_contact", ("name", "relationship", "phone"), True),
        ("accessibility", ("screen_reader",), False),
    ]
    assert [c.at for c in history] == [MORNING + timedelta(hours=h) for h in range(1, 6)]
    assert history[1].by == NURSE_REF


def test_who_changed_it_is_said_in_the_patients_words_never_with_an_id():
    assert who_changed(GRACE_REF, GRACE) == "you"
    assert who_changed(NURSE_REF, GRACE) == "clinic staff"
    assert who_changed("system", GRACE) == "CareBridge"
    assert who_changed("patient:00000000-0000-4000-8000-0000000ca4e5", GRACE) == \
        "someone acting for you"


def test_replaying_the_events_rebuilds_the_same_profile():
    profile = PatientProfile(patient_id=GRACE, registered_mobile_phone=None, by=GRACE_REF,
                             at=MORNING)
    for section, value in (("contact", HOME), ("emergency_contact", DAUGHTER),
                           ("preferred_clinic", PreferredClinic("hillview")),
                           ("communication", EVENINGS_OFF),
                           ("accessibility", AccessibilityPreferences(True, True, True, "pl"))):
        getattr(profile, f"change_{section}")(value, by=GRACE_REF, at=NOON)
    rebuilt = replay(profile.collect_events())
    assert rebuilt.state() == profile.state()
    assert rebuilt.version == 6


# ---- quiet hours -----------------------------------------------------------------------------


def london(start: str, end: str) -> CommunicationPreferences:
    return CommunicationPreferences(("sms",), QuietHours(start, end, "Europe/London"), "en")


def utc(day: str, clock: str) -> datetime:
    return datetime.fromisoformat(f"{day}T{clock}:00+00:00")


@pytest.mark.parametrize(("at", "quiet"), [
    (utc("2026-01-15", "20:59"), False),
    (utc("2026-01-15", "21:00"), True),  # the start is inside the window
    (utc("2026-01-16", "03:00"), True),
    (utc("2026-01-16", "06:59"), True),
    (utc("2026-01-16", "07:00"), False),  # the end is not
    (utc("2026-07-15", "20:00"), True),  # 21:00 BST
    (utc("2026-07-15", "19:59"), False),
    (utc("2026-07-16", "05:59"), True),  # 06:59 BST
    (utc("2026-07-16", "06:00"), False),  # 07:00 BST
])
def test_a_window_over_midnight_follows_the_clock_on_the_wall_in_winter_and_summer(at, quiet):
    assert in_quiet_hours(london("21:00", "07:00"), at) is quiet


@pytest.mark.parametrize(("at", "quiet"), [
    # Sunday 29 March 2026: at 01:00 GMT the clocks go forward to 02:00 BST.
    (utc("2026-03-28", "21:00"), True),  # 21:00 GMT on Saturday
    (utc("2026-03-29", "05:59"), True),  # 06:59 BST
    (utc("2026-03-29", "06:00"), False),  # 07:00 BST: an hour earlier in UTC than the day before
    (utc("2026-03-28", "06:30"), True),  # the day before, 06:30 GMT was still quiet
    (utc("2026-03-29", "20:00"), True),  # 21:00 BST on Sunday evening
])
def test_quiet_hours_across_the_march_clock_change(at, quiet):
    assert in_quiet_hours(london("21:00", "07:00"), at) is quiet


@pytest.mark.parametrize(("at", "quiet"), [
    # Sunday 25 October 2026: at 02:00 BST the clocks go back to 01:00 GMT.
    (utc("2026-10-24", "20:00"), True),  # 21:00 BST on Saturday
    (utc("2026-10-25", "06:30"), True),  # 06:30 GMT
    (utc("2026-10-25", "07:00"), False),  # 07:00 GMT: an hour later in UTC than the day before
    (utc("2026-10-25", "20:30"), False),  # 20:30 GMT on Sunday evening
    (utc("2026-10-25", "21:00"), True),
])
def test_quiet_hours_across_the_october_clock_change(at, quiet):
    assert in_quiet_hours(london("21:00", "07:00"), at) is quiet


def test_the_repeated_hour_in_october_is_quiet_both_times_and_the_skipped_one_in_march_never():
    night = london("01:00", "02:00")
    assert in_quiet_hours(night, utc("2026-10-25", "00:30"))  # 01:30 BST
    assert in_quiet_hours(night, utc("2026-10-25", "01:30"))  # 01:30 GMT, again
    assert not in_quiet_hours(night, utc("2026-10-25", "02:00"))  # 02:00 GMT
    assert not in_quiet_hours(night, utc("2026-03-29", "00:30"))  # 00:30 GMT
    assert not in_quiet_hours(night, utc("2026-03-29", "01:00"))  # straight to 02:00 BST


def test_a_window_within_one_day_and_no_window_at_all():
    lunch = london("12:00", "13:30")
    assert in_quiet_hours(lunch, utc("2026-01-15", "12:45"))
    assert not in_quiet_hours(lunch, utc("2026-01-15", "13:30"))
    assert not in_quiet_hours(lunch, utc("2026-01-15", "11:59"))
    assert not in_quiet_hours(None, utc("2026-01-15", "03:00"))
    assert not in_quiet_hours(CommunicationPreferences(("sms",), None, "en"), utc("2026-01-15", "03:00"))


def test_quiet_hours_are_read_in_the_patients_own_zone():
    new_york = CommunicationPreferences(("sms",), QuietHours("21:00", "07:00", "America/New_York"),
                                        "en")
    assert in_quiet_hours(new_york, utc("2026-01-15", "03:00"))  # 22:00 in New York
    assert not in_quiet_hours(new_york, utc("2026-01-15", "15:00"))  # 10:00 in New York


def test_a_time_without_a_zone_is_a_programming_error():
    with pytest.raises(ValueError, match="timezone-aware"):
        in_quiet_hours(london("21:00", "07:00"), datetime(2026, 1, 15, 3, 0))


HH_MM = st.builds(lambda h, m: f"{h:02d}:{m:02d}", st.integers(0, 23), st.integers(0, 59))
ZONES = st.sampled_from(["Europe/London", "America/New_York", "Australia/Lord_Howe",
                         "Asia/Kolkata", "UTC"])
INSTANTS = st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2028, 12, 31),
                        timezones=st.just(UTC))


@settings(max_examples=300, deadline=None)
@given(start=HH_MM, end=HH_MM, zone=ZONES, at=INSTANTS)
def test_at_any_moment_exactly_one_of_a_window_and_its_complement_is_quiet(start, end, zone, at):
    assume(start != end)
    window = CommunicationPreferences(("sms",), QuietHours(start, end, zone), "en")
    rest_of_day = CommunicationPreferences(("sms",), QuietHours(end, start, zone), "en")
    assert in_quiet_hours(window, at) != in_quiet_hours(rest_of_day, at)


@settings(max_examples=300, deadline=None)
@given(start=HH_MM, end=HH_MM, zone=ZONES, at=INSTANTS)
def test_quiet_means_the_local_minute_lies_between_start_and_end_going_round_the_clock(
        start, end, zone, at):
    assume(start != end)
    window = CommunicationPreferences(("sms",), QuietHours(start, end, zone), "en")
    local = at.astimezone(ZoneInfo(zone))
    minute = local.hour * 60 + local.minute

    def minutes(hh_mm: str) -> int:
        return int(hh_mm[:2]) * 60 + int(hh_mm[3:])

    expected = (minute - minutes(start)) % 1440 < (minutes(end) - minutes(start)) % 1440
    assert in_quiet_hours(window, at) is expected
