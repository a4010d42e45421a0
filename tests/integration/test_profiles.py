"""Profiles on a real PostgreSQL: history, stale versions, retries, encryption, account activity."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest

from commands.idempotency import IdempotencyKey
from commands.identity import NewAccount
from domain.access import Actor
from domain.errors import ConcurrentChange, Forbidden
from domain.identity import Role
from domain.profiles import (
    AccessibilityPreferences,
    ContactDetails,
    EmergencyContact,
    PreferredClinic,
    profile_id,
)

from .support import MONDAY, minutes_after_monday, rows, stored_events

pytestmark = pytest.mark.integration

MOBILE = "+44 7700 900123"
HOME = ContactDetails(MOBILE, None, ("12 Harbour Street",), "Whitby", "YO21 3PU", "GB")
DAUGHTER = EmergencyContact("Ann Hopper", "daughter", "+44 7700 900456")


def registered_patient(container: Any, mobile_phone: str | None = MOBILE) -> Actor:
    outcome = container.identity.register_patient(NewAccount(
        f"grace.{uuid4().hex[:10]}@patients.test",
        "a long enough passphrase", "Grace", "Hopper", date(1946, 12, 9), mobile_phone),
        at=MONDAY)
    return Actor(UUID(outcome.result["account_id"]), Role.PATIENT)


def profile_events(url: str) -> list[tuple[Any, ...]]:
    return stored_events(url, "profiles_events")


def test_a_profile_never_changed_reads_as_the_registered_mobile_and_stores_nothing(container,
                                                                                     database):
    grace = registered_patient(container)

    profile = container.profiles.profile(grace, grace.account_id)
    unchanged = container.profiles.change_contact(grace, grace.account_id,
                                                  ContactDetails(f" {MOBILE} "), at=MONDAY)

    assert (profile.version, profile.contact.mobile_phone) == (0, MOBILE)
    assert unchanged.result == {"section": "contact", "version": 0, "changed": False}
    assert unchanged.position is None
    assert profile_events(database.url) == []


def test_history_lists_each_change_newest_first_and_leaves_out_the_profiles_start(container):
    grace = registered_patient(container)
    profiles = container.profiles
    profiles.change_contact(grace, grace.account_id, HOME, at=minutes_after_monday(1))
    profiles.change_emergency_contact(grace, grace.account_id, DAUGHTER, at=minutes_after_monday(2))
    profiles.change_preferred_clinic(grace, grace.account_id, PreferredClinic("riverside"),
                                     at=minutes_after_monday(3))
    profiles.remove_emergency_contact(grace, grace.account_id, at=minutes_after_monday(4))

    history = profiles.history(grace, grace.account_id)

    assert [(c.section, c.removed, c.at) for c in history] == [
        ("emergency_contact", True, minutes_after_monday(4)),
        ("preferred_clinic", False, minutes_after_monday(3)),
        ("emergency_contact", False, minutes_after_monday(2)),
        ("contact", False, minutes_after_monday(1)),
    ]
    assert history[-1].fields == ("address_lines", "town", "postcode", "country")
    assert {c.by for c in history} == {grace.ref}
    assert profiles.profile(grace, grace.account_id).version == 5


def test_a_change_based_on_a_stale_version_is_refused_and_saves_nothing(container, database):
    grace = registered_patient(container)
    profiles = container.profiles
    first = profiles.change_contact(grace, grace.account_id, HOME, at=minutes_after_monday(1),
                                    expected_version=0)
    read_on_the_tablet = first.result["version"]
    profiles.change_emergency_contact(grace, grace.account_id, DAUGHTER,
                                      at=minutes_after_monday(2), expected_version=read_on_the_tablet)
    log_before = profile_events(database.url)

    with pytest.raises(ConcurrentChange) as refusal:
        profiles.change_accessibility(grace, grace.account_id, AccessibilityPreferences(True),
                                      at=minutes_after_monday(3), expected_version=read_on_the_tablet)

    assert "reload your profile" in refusal.value.detail
    assert refusal.value.extensions == {"current_version": 3}
    assert profile_events(database.url) == log_before


def test_two_devices_saving_the_same_version_at_once_cannot_both_win(container):
    grace = registered_patient(container)
    container.profiles.change_contact(grace, grace.account_id, HOME, at=minutes_after_monday(1))
    app = container.profiles
    phone, tablet = (app.repository.get(profile_id(grace.account_id)) for _ in range(2))
    phone.change_emergency_contact(DAUGHTER, by=grace.ref, at=minutes_after_monday(2))
    tablet.change_preferred_clinic(PreferredClinic("hillview"), by=grace.ref,
                                   at=minutes_after_monday(2))
    app.save_all(phone)

    with pytest.raises(ConcurrentChange):
        app.save_all(tablet)

    assert app.profile(grace, grace.account_id).preferred_clinic is None


def test_a_retried_change_with_the_same_key_answers_the_same_and_records_once(container, database):
    grace = registered_patient(container)
    key = IdempotencyKey.for_request(grace.ref, "grace-emergency-0001", "profile.emergency_contact",
                                     {"name": DAUGHTER.name})

    first = container.profiles.change_emergency_contact(grace, grace.account_id, DAUGHTER,
                                                        at=MONDAY, key=key, expected_version=0)
    retry = container.profiles.change_emergency_contact(grace, grace.account_id, DAUGHTER,
                                                        at=MONDAY + timedelta(seconds=5), key=key,
                                                        expected_version=0)

    assert first.result == retry.result == {"section": "emergency_contact", "version": 2,
                                            "changed": True}
    assert (retry.replayed, retry.position) == (True, first.position)
    assert [r[2] for r in profile_events(database.url)] == [1, 2]


def test_personal_details_are_encrypted_at_rest_and_the_idempotency_record_holds_none(container,
                                                                                      database):
    grace = registered_patient(container)
    key = IdempotencyKey.for_request(grace.ref, "grace-contact-0001", "profile.contact", {})
    container.profiles.change_contact(grace, grace.account_id, HOME, at=MONDAY, key=key)

    stored = b"".join(bytes(r[4]) for r in profile_events(database.url))
    remembered = b"".join(bytes(r[0]) for r in rows(
        database.url, "SELECT result FROM carebridge.idempotency_keys"))

    for secret in (b"Harbour", b"900123", b"YO21"):
        assert secret not in stored
        assert secret not in remembered


def test_nobody_else_changes_or_reads_a_patients_profile_through_the_own_profile_commands(
        container):
    grace, bob = registered_patient(container), registered_patient(container, "+44 7700 900777")

    with pytest.raises(Forbidden):
        container.profiles.change_contact(bob, grace.account_id, HOME, at=MONDAY)
    with pytest.raises(Forbidden):
        container.profiles.profile(bob, grace.account_id)
    with pytest.raises(Forbidden):
        container.profiles.history(bob, grace.account_id)
    with pytest.raises(Forbidden):
        container.profiles.patient_profile(bob, grace.account_id)


def test_account_activity_lists_each_change_by_section_only(container, database):
    grace = registered_patient(container)
    container.profiles.change_contact(grace, grace.account_id, HOME, at=minutes_after_monday(1))
    container.profiles.change_emergency_contact(grace, grace.account_id, DAUGHTER,
                                                at=minutes_after_monday(2))
    container.profiles.remove_emergency_contact(grace, grace.account_id,
                                                at=minutes_after_monday(3))

    with psycopg.connect(database.url, autocommit=True) as conn:
        container.runner("security_events").catch_up(conn)
    listed = rows(database.url, "SELECT kind, detail, at FROM views.security_events"
                                " WHERE account_id = %s AND kind = 'profile_updated'"
                                " ORDER BY at", (grace.account_id,))

    assert listed == [("profile_updated", "contact", minutes_after_monday(1)),
                      ("profile_updated", "emergency_contact", minutes_after_monday(2)),
                      ("profile_updated", "emergency_contact", minutes_after_monday(3))]
