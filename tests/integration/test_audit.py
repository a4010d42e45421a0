"""The auditor's view: every event of a stream with who and when, and state at any past moment."""

from __future__ import annotations

from datetime import date, timedelta
from uuid import UUID

import pytest

from api.audit import REDACTED, find_stream, state_as_of, trail
from commands.identity import NewAccount
from domain.consents import ConsentType, consent_id

from .support import MONDAY, a_patient, give, minutes_after_monday, withdraw

pytestmark = pytest.mark.integration


def test_the_trail_lists_each_event_with_its_actor_and_time(container):
    ada = a_patient()
    give(container, ada, at=minutes_after_monday(0))
    withdraw(container, ada, at=minutes_after_monday(60))
    stream = consent_id(ada.account_id, ConsentType.TELEMEDICINE)

    entries = list(trail(container.consents, stream))

    assert [(e.version, e.event_type, e.actor, e.at) for e in entries] == [
        (1, "consents.Consent.Created.v1", ada.ref, minutes_after_monday(0)),
        (2, "consents.Consent.Given.v1", ada.ref, minutes_after_monday(0)),
        (3, "consents.Consent.Withdrawn.v1", ada.ref, minutes_after_monday(60)),
    ]
    assert {e.application for e in entries} == {"consents"}


def test_the_auditor_finds_which_context_holds_a_stream(container):
    ada = a_patient()
    give(container, ada)

    found = find_stream(container.applications, consent_id(ada.account_id, ConsentType.TELEMEDICINE))

    assert found is container.consents
    assert find_stream(container.applications, a_patient().account_id) is None


def test_state_as_of_shows_the_consent_as_it_was_at_each_moment(container):
    ada = a_patient()
    give(container, ada, at=minutes_after_monday(0))
    withdraw(container, ada, at=minutes_after_monday(60))
    stream = consent_id(ada.account_id, ConsentType.TELEMEDICINE)

    before = state_as_of(container.consents, stream, MONDAY - timedelta(seconds=1))
    while_given = state_as_of(container.consents, stream, minutes_after_monday(59))
    once_withdrawn = state_as_of(container.consents, stream, minutes_after_monday(60))

    assert before is None
    assert while_given is not None and once_withdrawn is not None
    assert (while_given["status"], while_given["version"], while_given["withdrawn_at"]) == (
        "given", 2, None)
    assert (once_withdrawn["status"], once_withdrawn["version"]) == ("withdrawn", 3)
    assert once_withdrawn["withdrawn_at"] == minutes_after_monday(60)
    assert while_given["patient_id"] == ada.account_id


def test_password_hashes_are_redacted_from_an_accounts_past_state(container):
    outcome = container.identity.register_patient(
        NewAccount("ada@patients.test", "a long enough passphrase", "Ada", "Lovelace",
                   date_of_birth=date(1958, 12, 10)), at=MONDAY)
    account_id = UUID(outcome.result["account_id"])

    state = state_as_of(container.identity, account_id, minutes_after_monday(1))

    assert state is not None
    assert state["password_hash"] == REDACTED
    assert not any(str(v).startswith("$argon2") for v in state.values())
    assert (state["email"], state["given_name"], state["role"]) == (
        "ada@patients.test", "Ada", "patient")
