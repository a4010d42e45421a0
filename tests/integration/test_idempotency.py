"""Idempotency keys: a retried command returns its first result and never acts twice."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from commands.default_consent_texts import DEFAULT_VERSION
from commands.idempotency import IdempotencyKey, IdempotencyKeyReused, Outcome
from domain.access import Actor
from domain.consents import ConsentType, consent_id

from .support import GIVEN, a_patient, count_topics, events_of, give, rows

pytestmark = pytest.mark.integration

ONE_SET_OF_EVENTS = ["carebridge:consents.Consent.Created.v1", GIVEN]


def key_for(patient: Actor, key: str, consent_type: ConsentType = ConsentType.TELEMEDICINE
            ) -> IdempotencyKey:
    """The key a client sends with its request, fingerprinted with what it asked for."""
    return IdempotencyKey.for_request(str(patient.account_id), key, "consent.give",
                                      {"consent_type": consent_type.value,
                                       "text_version": DEFAULT_VERSION})


def telemedicine_stream(patient: Actor) -> Any:
    return consent_id(patient.account_id, ConsentType.TELEMEDICINE)


def test_the_same_key_twice_gives_consent_once_and_replays_the_first_result(container, database):
    ada = a_patient()

    first = give(container, ada, key=key_for(ada, "retry-1"))
    second = give(container, ada, key=key_for(ada, "retry-1"))

    assert events_of(database.url, telemedicine_stream(ada)) == ONE_SET_OF_EVENTS
    assert (first.replayed, second.replayed) == (False, True)
    assert second.result == first.result
    assert first.result["changed"] is True
    assert second.position == first.position is not None


def test_a_key_is_remembered_even_when_the_command_changed_nothing(container, database):
    ada = a_patient()
    give(container, ada)

    first = give(container, ada, key=key_for(ada, "already-given"))
    second = give(container, ada, key=key_for(ada, "already-given"))

    assert (first.result["changed"], first.position) == (False, None)
    assert second.replayed and second.result == first.result
    assert events_of(database.url, telemedicine_stream(ada)) == ONE_SET_OF_EVENTS


def test_the_same_key_for_a_different_request_is_refused(container, database):
    ada = a_patient()
    give(container, ada, key=key_for(ada, "reused"))

    with pytest.raises(IdempotencyKeyReused) as refusal:
        give(container, ada, consent_type=ConsentType.DATA_SHARING,
             key=key_for(ada, "reused", ConsentType.DATA_SHARING))

    assert "Use a new key" in refusal.value.detail
    assert events_of(database.url, consent_id(ada.account_id, ConsentType.DATA_SHARING)) == []


def test_two_patients_may_use_the_same_key_string(container, database):
    ada, grace = a_patient(), a_patient()

    give(container, ada, key=key_for(ada, "shared-name"))
    give(container, grace, key=key_for(grace, "shared-name"))

    assert events_of(database.url, telemedicine_stream(ada)) == ONE_SET_OF_EVENTS
    assert events_of(database.url, telemedicine_stream(grace)) == ONE_SET_OF_EVENTS


def test_eight_concurrent_calls_with_one_key_give_consent_exactly_once(container, database):
    ada = a_patient()
    start = threading.Barrier(8)

    def call(_: int) -> Outcome:
        start.wait(timeout=30)
        return give(container, ada, key=key_for(ada, "double-click"))

    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(call, range(8)))

    assert events_of(database.url, telemedicine_stream(ada)) == ONE_SET_OF_EVENTS
    assert count_topics(database.url, GIVEN) == 1
    assert all(o.result["status"] == "given" for o in outcomes)
    assert sum(o.result["changed"] and not o.replayed for o in outcomes) == 1
    [(remembered,)] = rows(database.url, "SELECT count(*) FROM carebridge.idempotency_keys"
                                         " WHERE scope = %s", (str(ada.account_id),))
    assert remembered == 1


def test_a_retry_racing_the_first_attempt_gets_the_first_attempts_result(container, database,
                                                                       monkeypatch):
    """The retry looks its key up just before the first attempt commits, then finds the
    consent already given. It must still answer with the first result, as a replay."""
    ada = a_patient()
    store = container.consents.idempotency
    look_up = store.find
    first: list[Outcome] = []

    def find_while_the_first_attempt_commits(key: IdempotencyKey) -> Outcome | None:
        found = look_up(key)
        if found is None and not first:
            monkeypatch.setattr(store, "find", look_up)
            first.append(give(container, ada, key=key_for(ada, "racing")))
        return found

    monkeypatch.setattr(store, "find", find_while_the_first_attempt_commits)
    retry = give(container, ada, key=key_for(ada, "racing"))

    assert events_of(database.url, telemedicine_stream(ada)) == ONE_SET_OF_EVENTS
    assert first[0].result["changed"] is True
    assert retry.result == first[0].result
    assert retry.position == first[0].position
    assert retry.replayed
