"""The access policy: who may do what to whose consent. Anything not listed here is denied."""

from __future__ import annotations

from uuid import UUID

import pytest

from domain.access import SYSTEM, Action, Actor, PatientResource, authorise, is_allowed
from domain.errors import Forbidden
from domain.identity import Role

from .support import ADA, GRACE

STAFF_ID = UUID("00000000-0000-4000-8000-00000000057a")
ADAS_RECORD = PatientResource(ADA)

# The policy table, written out by hand so that a change to the policy shows up here.
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
    assert is_allowed(staff(role), Action.PATIENT_CONSENTS_READ, ADAS_RECORD) is allowed


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
