"""The access policy: who may do what to whose consent. Anything not listed here is denied."""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta
from uuid import UUID

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.access import (
    CLINICAL_ACTIONS,
    NO_RELATIONSHIP,
    PARENT_ONLY,
    SCOPE_OF,
    SYSTEM,
    Action,
    Actor,
    Link,
    PatientResource,
    Relationship,
    authorise,
    is_allowed,
    may_ever,
    relationship_of,
)
from domain.care import ProxyGrant, ProxyKind, ProxyScope
from domain.errors import CareBridgeError, Forbidden
from domain.identity import Role

from .support import ADA, GRACE, MORNING

BOB = UUID("00000000-0000-4000-8000-000000000b0b")

STAFF_ID = UUID("00000000-0000-4000-8000-00000000057a")
ADAS_RECORD = PatientResource(ADA)

# The policy table, written out by hand so that a change to the policy shows up here: who may
# read a patient's consents, for a patient known at riverside with this staff member in the
# care team (where the role can be), and with no relationship at all.
IN_THE_CARE_TEAM = PatientResource(ADA, Relationship(care_team_clinics=frozenset({"riverside"}),
                                                     patient_clinics=frozenset({"riverside"})))
MAY_READ_A_PATIENTS_CONSENTS = {
    Role.DOCTOR: True,
    Role.NURSE: True,
    Role.PRESCRIPTION_COORDINATOR: True,
    Role.CARE_MANAGER: True,
    Role.CLINIC_ADMIN: True,
    Role.RECEPTION: False,
    Role.SUPPORT: False,
    Role.AUDITOR: False,
}
MAY_PUBLISH_CONSENT_TEXTS = {role: role == Role.CLINIC_ADMIN for role in MAY_READ_A_PATIENTS_CONSENTS}


def patient(account_id: UUID = ADA) -> Actor:
    return Actor(account_id, Role.PATIENT)


def staff(role: Role) -> Actor:
    return Actor(STAFF_ID, role, frozenset({"riverside"}))


@pytest.mark.parametrize("action", [Action.CONSENT_GIVE, Action.CONSENT_WITHDRAW,
                                    Action.CONSENT_READ, Action.PROFILE_READ])
def test_a_patient_may_act_on_their_own_record(action):
    assert is_allowed(patient(ADA), action, ADAS_RECORD)
    authorise(patient(ADA), action, ADAS_RECORD)


@pytest.mark.parametrize("action", list(Action))
def test_a_patient_may_not_act_on_another_patients_record(action):
    assert not is_allowed(patient(GRACE), action, ADAS_RECORD)
    with pytest.raises(Forbidden) as refusal:
        authorise(patient(GRACE), action, ADAS_RECORD)
    assert "clinic administrator" in refusal.value.detail


def test_a_patient_may_not_publish_consent_texts():
    assert not is_allowed(patient(), Action.CONSENT_TEXT_PUBLISH)
    assert not is_allowed(patient(), Action.CONSENT_TEXT_PUBLISH, ADAS_RECORD)


@pytest.mark.parametrize(("role", "allowed"), MAY_READ_A_PATIENTS_CONSENTS.items())
def test_which_staff_may_read_a_patients_consents(role, allowed):
    assert is_allowed(staff(role), Action.PATIENT_CONSENTS_READ, IN_THE_CARE_TEAM) is allowed


@pytest.mark.parametrize("role", list(MAY_READ_A_PATIENTS_CONSENTS))
def test_no_staff_member_reads_consents_without_a_relationship(role):
    assert not is_allowed(staff(role), Action.PATIENT_CONSENTS_READ, ADAS_RECORD)


@pytest.mark.parametrize("role", list(MAY_READ_A_PATIENTS_CONSENTS))
def test_no_one_reads_consents_without_naming_the_patient(role):
    assert not is_allowed(staff(role), Action.PATIENT_CONSENTS_READ)


@pytest.mark.parametrize("role", list(MAY_READ_A_PATIENTS_CONSENTS))
def test_staff_do_not_read_consents_through_the_patients_own_action(role):
    assert not is_allowed(staff(role), Action.CONSENT_READ, ADAS_RECORD)


def test_a_patient_reads_their_consents_only_through_their_own_action():
    assert not is_allowed(patient(ADA), Action.PATIENT_CONSENTS_READ, ADAS_RECORD)


@pytest.mark.parametrize(("role", "allowed"), MAY_PUBLISH_CONSENT_TEXTS.items())
def test_only_a_clinic_administrator_publishes_consent_texts(role, allowed):
    assert is_allowed(staff(role), Action.CONSENT_TEXT_PUBLISH) is allowed


@pytest.mark.parametrize("role", list(MAY_READ_A_PATIENTS_CONSENTS))
@pytest.mark.parametrize("action", [Action.CONSENT_GIVE, Action.CONSENT_WITHDRAW,
                                    Action.PROFILE_READ])
def test_staff_may_not_change_consents_or_read_patients_profiles_by_default(role, action):
    with pytest.raises(Forbidden):
        authorise(staff(role), action, ADAS_RECORD)


def test_staff_may_read_their_own_profile():
    assert is_allowed(staff(Role.NURSE), Action.PROFILE_READ, PatientResource(STAFF_ID))


def test_an_action_the_policy_does_not_know_is_denied():
    unknown = "prescription.approve"

    assert not is_allowed(staff(Role.CLINIC_ADMIN), unknown, ADAS_RECORD)  # type: ignore[arg-type]
    assert not is_allowed(patient(), unknown, ADAS_RECORD)  # type: ignore[arg-type]


def test_carebridge_itself_acts_as_system_and_may_publish_the_default_texts():
    assert SYSTEM.ref == "system"
    assert is_allowed(SYSTEM, Action.CONSENT_TEXT_PUBLISH)
    assert patient().ref == f"patient:{ADA}"


# ---- relationships: care teams, proxies, break-glass ---------------------------------------

HERE, ELSEWHERE = frozenset({"riverside"}), frozenset({"hillside"})
KNOWN_HERE = Relationship(patient_clinics=HERE)
CARE_HERE = Relationship(care_team_clinics=HERE, patient_clinics=HERE)
CARE_ELSEWHERE = Relationship(care_team_clinics=ELSEWHERE, patient_clinics=ELSEWHERE)
GLASS = Relationship(break_glass=True)
EVERYTHING = Relationship(care_team_clinics=HERE, patient_clinics=HERE, break_glass=True,
                          proxy_scopes=frozenset(ProxyScope), parent=True)


def proxy(*scopes: ProxyScope, parent: bool = False) -> PatientResource:
    return PatientResource(ADA, Relationship(proxy_scopes=frozenset(scopes), parent=parent))


def on_ada(relationship: Relationship, clinic_id: str | None = None,
           holder_id: UUID | None = None) -> PatientResource:
    return PatientResource(ADA, relationship, clinic_id, holder_id)


# (actor, action, resource, allowed): each line one decision the policy must make.
DECISIONS = [
    # A proxy does what its scopes cover, and nothing else.
    (patient(GRACE), Action.APPOINTMENTS_BOOK, proxy(ProxyScope.APPOINTMENTS), True),
    (patient(GRACE), Action.PRESCRIPTIONS_REQUEST, proxy(ProxyScope.APPOINTMENTS), False),
    (patient(GRACE), Action.CONSENT_READ, proxy(ProxyScope.CONSENTS), True),
    (patient(GRACE), Action.CONSENT_GIVE, proxy(ProxyScope.CONSENTS), False),
    (patient(GRACE), Action.CONSENT_GIVE, proxy(*ProxyScope, parent=True), True),
    (patient(GRACE), Action.CONSENT_WITHDRAW, proxy(*ProxyScope, parent=True), True),
    (patient(GRACE), Action.PROFILE_UPDATE, proxy(*ProxyScope, parent=True), False),
    (patient(GRACE), Action.PROXIES_MANAGE, proxy(*ProxyScope, parent=True), False),
    (patient(GRACE), Action.RECORDS_READ, on_ada(EVERYTHING), True),
    # A care relationship or break-glass is no use to a patient account.
    (patient(GRACE), Action.RECORDS_READ, on_ada(CARE_HERE), False),
    (patient(GRACE), Action.RECORDS_READ, on_ada(GLASS), False),
    # Only the invited account answers an invitation.
    (patient(GRACE), Action.PROXY_RESPOND, on_ada(NO_RELATIONSHIP, holder_id=GRACE), True),
    (patient(GRACE), Action.PROXY_RESPOND, on_ada(NO_RELATIONSHIP, holder_id=ADA), False),
    # Clinicians: care team at one of their own clinics, or break-glass.
    (staff(Role.DOCTOR), Action.RECORDS_READ, on_ada(CARE_HERE), True),
    (staff(Role.DOCTOR), Action.RECORDS_READ, on_ada(CARE_ELSEWHERE), False),
    (staff(Role.DOCTOR), Action.RECORDS_READ, on_ada(KNOWN_HERE), False),
    (staff(Role.DOCTOR), Action.RECORDS_READ, on_ada(GLASS), True),
    (staff(Role.NURSE), Action.PATIENT_PROFILE_READ, on_ada(GLASS), True),
    (staff(Role.PRESCRIPTION_COORDINATOR), Action.PRESCRIPTIONS_READ, on_ada(CARE_HERE), True),
    (staff(Role.DOCTOR), Action.PRESCRIPTIONS_REQUEST, on_ada(EVERYTHING), False),
    # Reception: administration for patients known at its clinics; never clinical content.
    (staff(Role.RECEPTION), Action.APPOINTMENTS_BOOK, on_ada(KNOWN_HERE), True),
    (staff(Role.RECEPTION), Action.PATIENT_PROFILE_READ, on_ada(KNOWN_HERE), True),
    (staff(Role.RECEPTION), Action.PATIENT_PROFILE_READ, on_ada(CARE_ELSEWHERE), False),
    (staff(Role.RECEPTION), Action.PATIENT_CONSENTS_READ, on_ada(EVERYTHING), False),
    (staff(Role.RECEPTION), Action.PARENTAL_RESPONSIBILITY_RECORD, on_ada(KNOWN_HERE), True),
    (staff(Role.RECEPTION), Action.PARENTAL_RESPONSIBILITY_RECORD, on_ada(NO_RELATIONSHIP),
     False),
    # Care teams are managed per clinic.
    (staff(Role.CLINIC_ADMIN), Action.CARE_TEAM_MANAGE, on_ada(NO_RELATIONSHIP, "riverside"), True),
    (staff(Role.CLINIC_ADMIN), Action.CARE_TEAM_MANAGE, on_ada(NO_RELATIONSHIP, "hillside"), False),
    (staff(Role.CARE_MANAGER), Action.CARE_TEAM_MANAGE, on_ada(NO_RELATIONSHIP, "riverside"), True),
    (staff(Role.DOCTOR), Action.CARE_TEAM_MANAGE, on_ada(CARE_HERE, "riverside"), False),
    (staff(Role.DOCTOR), Action.CARE_TEAM_REFER, on_ada(CARE_HERE, "riverside"), True),
    (staff(Role.DOCTOR), Action.CARE_TEAM_REFER, on_ada(KNOWN_HERE, "riverside"), False),
    (staff(Role.NURSE), Action.CARE_TEAM_REFER, on_ada(CARE_HERE, "riverside"), False),
    (SYSTEM, Action.CARE_TEAM_MANAGE, on_ada(NO_RELATIONSHIP, "riverside"), True),
    (SYSTEM, Action.RECORDS_READ, on_ada(NO_RELATIONSHIP), False),
    (staff(Role.CLINIC_ADMIN), Action.CARE_TEAM_READ, on_ada(KNOWN_HERE), True),
    (staff(Role.CLINIC_ADMIN), Action.CARE_TEAM_READ, on_ada(KNOWN_HERE, "hillside"), False),
    # Break-glass: doctors and nurses open it at their clinic; reviewers review.
    (staff(Role.DOCTOR), Action.BREAK_GLASS_OPEN, on_ada(NO_RELATIONSHIP, "riverside"), True),
    (staff(Role.DOCTOR), Action.BREAK_GLASS_OPEN, on_ada(NO_RELATIONSHIP, "hillside"), False),
    (staff(Role.CARE_MANAGER), Action.BREAK_GLASS_OPEN, on_ada(NO_RELATIONSHIP, "riverside"),
     False),
    (staff(Role.DOCTOR), Action.BREAK_GLASS_CLOSE, on_ada(GLASS, holder_id=STAFF_ID), True),
    (staff(Role.DOCTOR), Action.BREAK_GLASS_CLOSE, on_ada(GLASS, holder_id=ADA), False),
    (staff(Role.CLINIC_ADMIN), Action.BREAK_GLASS_REVIEW, on_ada(NO_RELATIONSHIP, "riverside",
                                                                  GRACE), True),
    (staff(Role.CLINIC_ADMIN), Action.BREAK_GLASS_REVIEW, on_ada(NO_RELATIONSHIP, "hillside",
                                                                  GRACE), False),
    (staff(Role.CLINIC_ADMIN), Action.BREAK_GLASS_REVIEW, on_ada(NO_RELATIONSHIP, "riverside",
                                                                  STAFF_ID), False),
    (staff(Role.AUDITOR), Action.BREAK_GLASS_REVIEW, on_ada(NO_RELATIONSHIP, "hillside", GRACE),
     True),
    (staff(Role.AUDITOR), Action.RECORDS_READ, on_ada(EVERYTHING), False),
    (staff(Role.DOCTOR), Action.BREAK_GLASS_REVIEW, None, False),
]


@pytest.mark.parametrize(("actor", "action", "resource", "allowed"), DECISIONS,
                         ids=[f"{a.role}-{act}-{ok}" for a, act, _, ok in DECISIONS])
def test_each_decision_of_the_policy(actor, action, resource, allowed):
    assert is_allowed(actor, action, resource) is allowed


@pytest.mark.parametrize("action", sorted(CLINICAL_ACTIONS | {Action.PATIENT_CONSENTS_READ}))
@pytest.mark.parametrize("role", [Role.RECEPTION, Role.SUPPORT, Role.AUDITOR])
def test_reception_support_and_auditors_never_see_clinical_content(action, role):
    assert not is_allowed(staff(role), action, on_ada(EVERYTHING))


@pytest.mark.parametrize("action", sorted(SCOPE_OF))
def test_each_scope_opens_exactly_its_own_actions(action):
    assert is_allowed(patient(GRACE), action, proxy(SCOPE_OF[action]))
    others = set(ProxyScope) - {SCOPE_OF[action]}
    assert not is_allowed(patient(GRACE), action, proxy(*others, parent=True))


@pytest.mark.parametrize("action", list(Action))
@pytest.mark.parametrize("role", list(Role))
def test_may_ever_is_never_narrower_than_a_decision(action, role):
    """The coarse gate before a resource is loaded must not refuse what the policy allows."""
    actor = staff(role) if role != Role.PATIENT else patient(GRACE)
    resources = [None, on_ada(EVERYTHING, "riverside", STAFF_ID), on_ada(EVERYTHING, "riverside",
                 GRACE), proxy(*ProxyScope, parent=True), PatientResource(GRACE)]
    if any(is_allowed(actor, action, r) for r in resources):
        assert may_ever(actor, action)


def test_the_relationship_counts_only_the_askers_live_links():
    links = [
        Link("care_team", STAFF_ID, "riverside", "assignment"),
        Link("care_team", STAFF_ID, "hillside", "referral", live=False),
        Link("care_team", GRACE, "northgate", "appointment"),
        Link("proxy", STAFF_ID, basis="family", scopes=("appointments",), live=False),
        Link("break_glass", GRACE, "riverside"),
    ]
    assert relationship_of(STAFF_ID, links) == Relationship(
        care_team_clinics=frozenset({"riverside"}),
        patient_clinics=frozenset({"riverside", "hillside", "northgate"}))
    assert relationship_of(GRACE, links).break_glass


SCOPES = st.sets(st.sampled_from(list(ProxyScope)), min_size=1)
STEPS = st.lists(st.tuples(st.sampled_from(["accept", "decline", "revoke", "step down",
                                            "change scopes"]),
                           st.integers(0, 72), SCOPES), max_size=6)


def take_step(grant: ProxyGrant, step: str, scopes: list[str], at: datetime) -> None:
    if step == "accept":
        grant.accept(by=f"patient:{GRACE}", at=at)
    elif step == "decline":
        grant.decline(by=f"patient:{GRACE}", at=at)
    elif step == "change scopes":
        grant.change_scopes(scopes, by=f"patient:{ADA}", at=at)
    else:
        grant.revoke(step == "step down", by=f"patient:{ADA}", at=at)


@settings(max_examples=300, deadline=None)
@given(kind=st.sampled_from(list(ProxyKind)), scopes=SCOPES, expires_in=st.none() | st.integers(1, 200),
       steps=STEPS, asked_after=st.integers(0, 300), action=st.sampled_from(list(Action)))
def test_no_patient_reaches_another_without_an_accepted_unexpired_unrevoked_grant_in_scope(
        kind, scopes, expires_in, steps, asked_after, action):
    expires_at = MORNING + timedelta(hours=expires_in) if expires_in is not None else None
    grant = ProxyGrant(patient_id=ADA, proxy_email="grace@example.com", proxy_account_id=GRACE,
                       kind=kind.value, scopes=sorted(scopes), expires_at=expires_at,
                       by=f"patient:{ADA}", at=MORNING)
    at = MORNING
    for step, hours, new_scopes in steps:
        at += timedelta(hours=hours)
        with contextlib.suppress(CareBridgeError):
            take_step(grant, step, sorted(new_scopes), at)
    asked_at = at + timedelta(hours=asked_after)
    links = [Link("proxy", GRACE, basis=grant.kind, scopes=tuple(grant.scopes),
                  live=grant.is_active(asked_at)),
             # Someone else's grant and care relationship give Grace nothing.
             Link("proxy", BOB, basis="parent", scopes=tuple(ProxyScope)),
             Link("care_team", BOB, "riverside", "assignment")]
    resource = PatientResource(ADA, relationship_of(GRACE, links))

    if is_allowed(patient(GRACE), action, resource):
        assert grant.status == "active" and grant.accepted_at is not None
        assert expires_at is None or asked_at < expires_at
        needed = SCOPE_OF.get(action) or PARENT_ONLY[action]
        assert needed.value in grant.scopes
        assert action not in PARENT_ONLY or grant.kind == ProxyKind.PARENT
