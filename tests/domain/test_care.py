"""Care relationships, proxy grants and break-glass: their rules and their events, in memory."""

from __future__ import annotations

from datetime import date, timedelta
from uuid import UUID

import pytest

from domain.care import (
    AlreadyReviewed,
    BreakGlass,
    CareBasis,
    CareRelationship,
    ProxyGrant,
    ProxyScope,
    RelationshipEnded,
    ReviewOutcome,
    check_reason,
    is_child,
    sixteenth_birthday,
)
from domain.errors import Conflict, InvalidInput, Rejections

from .support import ADA, GRACE, MORNING, NOON, new_events, replay

DOCTOR = UUID("00000000-0000-4000-8000-0000000000d0")
ADMIN = "clinic_admin:00000000-0000-4000-8000-0000000000ad"
DOCTOR_REF = f"doctor:{DOCTOR}"
REASON = "Collapsed in the waiting room; need medication history immediately."


def care_relationship(days: int = 30) -> CareRelationship:
    care = CareRelationship(patient_id=ADA, clinician_id=DOCTOR, clinic_id="riverside",
                            basis=CareBasis.REFERRAL.value, source_ref="letter-1",
                            starts_at=MORNING, ends_at=MORNING + timedelta(days=days), by=ADMIN,
                            at=MORNING)
    care.collect_events()
    return care


def offered(*scopes: ProxyScope, expires_at=None) -> ProxyGrant:
    grant = ProxyGrant(patient_id=ADA, proxy_email="emma@example.com", proxy_account_id=GRACE,
                       kind="family", scopes=[s.value for s in scopes or (ProxyScope.APPOINTMENTS,)],
                       expires_at=expires_at, by=f"patient:{ADA}", at=MORNING)
    grant.collect_events()
    return grant


def accepted(*scopes: ProxyScope, expires_at=None) -> ProxyGrant:
    grant = offered(*scopes, expires_at=expires_at)
    grant.accept(by=f"patient:{GRACE}", at=MORNING)
    grant.collect_events()
    return grant


def opened() -> BreakGlass:
    access = BreakGlass(clinician_id=DOCTOR, patient_id=ADA, clinic_id="riverside", reason=REASON,
                        expires_at=MORNING + timedelta(hours=1), by=DOCTOR_REF, at=MORNING)
    access.collect_events()
    return access


# ---- care relationships ----------------------------------------------------------------------

def test_a_care_relationship_is_active_from_its_start_until_its_end_date():
    care = care_relationship(days=1)
    assert care.is_active(MORNING)
    assert not care.is_active(MORNING - timedelta(seconds=1))
    assert not care.is_active(MORNING + timedelta(days=1))


def test_the_same_source_names_the_same_relationship():
    first, second = care_relationship(), care_relationship()
    assert first.id == second.id


def test_extending_moves_the_end_date_later_and_never_earlier():
    care = care_relationship(days=10)
    assert care.extend(MORNING + timedelta(days=20), by=ADMIN, at=NOON)
    assert not care.extend(MORNING + timedelta(days=5), by=ADMIN, at=NOON)
    assert new_events(care) == ["Extended"]
    assert care.ends_at == MORNING + timedelta(days=20)


def test_an_ended_relationship_gives_no_access_and_ends_once():
    care = care_relationship()
    assert care.end("moved away", by=ADMIN, at=NOON)
    assert not care.end("moved away", by=ADMIN, at=NOON)
    assert not care.is_active(NOON)
    assert new_events(care) == ["Ended"]
    with pytest.raises(RelationshipEnded):
        care.extend(MORNING + timedelta(days=90), by=ADMIN, at=NOON)


def test_an_end_date_in_the_past_or_beyond_two_years_is_refused():
    for ends_at in (MORNING - timedelta(days=1), MORNING + timedelta(days=800)):
        errors = Rejections()
        CareRelationship.check(MORNING, ends_at, MORNING, errors)
        assert [e.field for e in errors.errors] == ["ends_at"]


def test_replaying_a_relationships_events_rebuilds_it():
    care = CareRelationship(patient_id=ADA, clinician_id=DOCTOR, clinic_id="riverside",
                            basis="assignment", source_ref="a-1", starts_at=MORNING,
                            ends_at=MORNING + timedelta(days=30), by=ADMIN, at=MORNING)
    care.extend(MORNING + timedelta(days=60), by=ADMIN, at=NOON)
    care.end("discharged", by=ADMIN, at=NOON)
    rebuilt = replay(care.collect_events())
    assert (rebuilt.ends_at, rebuilt.ended_at) == (care.ends_at, NOON)


# ---- proxy grants ----------------------------------------------------------------------------

def test_an_offer_gives_nothing_until_it_is_accepted():
    grant = offered()
    assert not grant.is_active(MORNING)
    assert grant.accept(by=f"patient:{GRACE}", at=NOON)
    assert grant.is_active(NOON)
    assert not grant.accept(by=f"patient:{GRACE}", at=NOON)
    assert new_events(grant) == ["Accepted"]


def test_a_grant_expires_at_its_end():
    grant = accepted(expires_at=NOON)
    assert grant.is_active(NOON - timedelta(seconds=1))
    assert not grant.is_active(NOON)


def test_an_expired_offer_cannot_be_accepted():
    grant = offered(expires_at=NOON)
    with pytest.raises(RelationshipEnded, match="expired"):
        grant.accept(by=f"patient:{GRACE}", at=NOON)
    assert new_events(grant) == []


def test_a_revoked_grant_stays_revoked():
    grant = accepted()
    assert grant.revoke(stepped_down=False, by=f"patient:{ADA}", at=NOON)
    assert not grant.revoke(stepped_down=True, by=f"patient:{GRACE}", at=NOON)
    assert (grant.status, grant.ended_by, grant.is_active(NOON)) == ("revoked", "patient", False)
    with pytest.raises(RelationshipEnded):
        grant.accept(by=f"patient:{GRACE}", at=NOON)
    with pytest.raises(RelationshipEnded):
        grant.change_scopes(["records"], by=f"patient:{ADA}", at=NOON)
    assert new_events(grant) == ["Revoked"]


def test_a_declined_offer_cannot_be_accepted():
    grant = offered()
    grant.decline(by=f"patient:{GRACE}", at=NOON)
    with pytest.raises(RelationshipEnded):
        grant.accept(by=f"patient:{GRACE}", at=NOON)
    assert new_events(grant) == ["Declined"]


def test_changing_scopes_to_the_same_set_records_nothing_and_an_empty_set_is_refused():
    grant = accepted(ProxyScope.APPOINTMENTS, ProxyScope.CONSENTS)
    assert not grant.change_scopes(["consents", "appointments"], by=f"patient:{ADA}", at=NOON)
    with pytest.raises(InvalidInput) as refusal:
        grant.change_scopes([], by=f"patient:{ADA}", at=NOON)
    assert [e.field for e in refusal.value.errors] == ["scopes"]
    assert grant.change_scopes(["records"], by=f"patient:{ADA}", at=NOON)
    assert grant.scopes == ["records"]


def test_a_parents_scopes_are_not_narrowed():
    grant = ProxyGrant(patient_id=ADA, proxy_email="p@example.com", proxy_account_id=GRACE,
                       kind="parent", scopes=sorted(ProxyScope), expires_at=None, by=ADMIN,
                       at=MORNING)
    with pytest.raises(Conflict):
        grant.change_scopes(["appointments"], by=f"patient:{ADA}", at=NOON)


@pytest.mark.parametrize(("born", "sixteen"), [
    (date(2015, 6, 1), date(2031, 6, 1)),
    (date(2012, 2, 29), date(2028, 2, 29)),
    (date(2084, 2, 29), date(2100, 3, 1)),  # 2100 is not a leap year: from 1 March
])
def test_a_child_is_a_child_until_their_sixteenth_birthday(born, sixteen):
    ends = sixteenth_birthday(born)
    assert ends.date() == sixteen
    assert is_child(born, ends - timedelta(seconds=1))
    assert not is_child(born, ends)


# ---- break-glass -----------------------------------------------------------------------------

@pytest.mark.parametrize(("reason", "fine"), [
    ("urgent", False), (" " * 30, False), (REASON, True), ("x" * 1000, True), ("x" * 1001, False)])
def test_a_break_glass_reason_must_say_something(reason, fine):
    errors = Rejections()
    check_reason(reason, errors)
    assert (not errors.errors) is fine


def test_break_glass_is_active_until_it_expires_or_is_closed():
    access = opened()
    assert access.is_active(MORNING + timedelta(minutes=59))
    assert not access.is_active(MORNING + timedelta(hours=1))
    assert not access.close(by=DOCTOR_REF, at=MORNING + timedelta(hours=2))  # already over
    assert access.close(by=DOCTOR_REF, at=MORNING + timedelta(minutes=10))
    assert not access.is_active(MORNING + timedelta(minutes=11))
    assert new_events(access) == ["Closed"]


def test_a_review_is_recorded_once_and_an_inappropriate_one_needs_a_note():
    access = opened()
    with pytest.raises(InvalidInput) as refusal:
        access.review(ReviewOutcome.INAPPROPRIATE, None, by=ADMIN, at=NOON)
    assert [e.field for e in refusal.value.errors] == ["note"]
    assert access.review(ReviewOutcome.APPROPRIATE, "Seen in A&E.", by=ADMIN, at=NOON)
    assert not access.review(ReviewOutcome.APPROPRIATE, "Seen in A&E.", by=ADMIN, at=NOON)
    with pytest.raises(AlreadyReviewed):
        access.review(ReviewOutcome.INAPPROPRIATE, "No emergency.", by=ADMIN, at=NOON)
    assert new_events(access) == ["Reviewed"]


def test_every_care_event_carries_who_and_when():
    care, grant, access = care_relationship(), offered(), opened()
    care.extend(MORNING + timedelta(days=40), by=ADMIN, at=NOON)
    care.end("done", by=ADMIN, at=NOON)
    grant.accept(by=f"patient:{GRACE}", at=NOON)
    grant.change_scopes(["records"], by=f"patient:{ADA}", at=NOON)
    grant.revoke(True, by=f"patient:{GRACE}", at=NOON)
    access.close(by=DOCTOR_REF, at=MORNING + timedelta(minutes=5))
    access.review(ReviewOutcome.APPROPRIATE, None, by=ADMIN, at=NOON)
    events = [e for a in (care, grant, access) for e in a.collect_events()]
    assert len(events) == 7
    for event in events:
        assert event.by and event.at.tzinfo is not None and event.timestamp == event.at
        assert event.patient_id == ADA
