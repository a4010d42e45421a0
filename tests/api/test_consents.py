"""Giving, withdrawing and reading consents through the HTTP API, including retries."""

from __future__ import annotations

from datetime import timedelta

from tests.api.support import (
    CURRENT_VERSION,
    assert_problem,
    auth,
    consent_of,
    field_names,
    give,
    read,
    withdraw,
)

ALL_TYPES = {"telemedicine", "data_sharing", "prescription_requests", "document_review"}


def test_a_patient_gives_consent_to_the_current_text(client, sign_up):
    ada = sign_up()
    text = client.get("/v1/consent-texts/telemedicine", headers=auth(ada)).json()
    assert text["version"] == CURRENT_VERSION
    given = give(client, ada, "telemedicine", text["version"])
    assert given.status_code == 201, given.text
    body = given.json()
    assert body["status"] == "given"
    assert body["text_version"] == CURRENT_VERSION
    assert body["changed"] is True
    assert given.headers["CareBridge-Position"].startswith("consents:")


def test_current_state_lists_every_consent_type_including_those_not_given(client, sign_up):
    ada = sign_up()
    given = give(client, ada, "data_sharing")
    states = read(client, ada, "/v1/me/consents", after=given).json()
    assert {state["consent_type"] for state in states} == ALL_TYPES
    sharing = consent_of(states, "data_sharing")
    assert sharing["status"] == "given"
    assert sharing["text_version"] == sharing["current_text_version"] == CURRENT_VERSION
    assert sharing["needs_renewal"] is False
    for other in ALL_TYPES - {"data_sharing"}:
        state = consent_of(states, other)
        assert state["status"] == "not_given"
        assert state["given_at"] is None and state["text_version"] is None


def test_withdrawing_shows_in_state_and_in_history_newest_first(client, clock, sign_up):
    ada = sign_up()
    given = give(client, ada)
    assert given.status_code == 201, given.text
    clock.now += timedelta(minutes=2)
    withdrawn = withdraw(client, ada, reason="I prefer to come in person")
    assert withdrawn.status_code == 200, withdrawn.text
    assert withdrawn.json()["status"] == "withdrawn"
    state = consent_of(read(client, ada, "/v1/me/consents", after=withdrawn).json(), "telemedicine")
    assert state["status"] == "withdrawn"
    assert state["withdrawn_at"] is not None
    history = read(client, ada, "/v1/me/consents/history", after=withdrawn).json()
    assert [entry["action"] for entry in history] == ["withdrawn", "given"]
    assert history[0]["reason"] == "I prefer to come in person"
    assert history[1]["text_version"] == CURRENT_VERSION
    assert all(entry["by_you"] and entry["actor_role"] == "patient" for entry in history)
    assert history[0]["at"] > history[1]["at"]


def test_giving_consent_to_an_outdated_text_names_the_current_version(client, sign_up):
    ada = sign_up()
    problem = assert_problem(give(client, ada, version="2025-01"), 409, "consent-text-outdated")
    assert CURRENT_VERSION in problem["detail"]
    assert problem["extensions"]["current_version"] == CURRENT_VERSION


def test_withdrawing_a_consent_never_given_is_refused(client, sign_up):
    ada = sign_up()
    problem = assert_problem(withdraw(client, ada, "document_review"), 409, "nothing-to-withdraw")
    assert "review of the documents you upload" in problem["detail"]


def test_a_retry_with_the_same_key_returns_the_same_answer_and_records_once(client, sign_up):
    ada = sign_up()
    first = give(client, ada, key="give-telemedicine-0001")
    retry = give(client, ada, key="give-telemedicine-0001")
    assert first.status_code == retry.status_code == 201
    assert retry.json() == first.json()
    assert retry.headers["CareBridge-Position"] == first.headers["CareBridge-Position"]
    history = read(client, ada, "/v1/me/consents/history", after=retry).json()
    assert [entry["action"] for entry in history] == ["given"]


def test_a_retried_withdrawal_records_once(client, sign_up):
    ada = sign_up()
    give(client, ada)
    first = withdraw(client, ada, reason="changed my mind", key="withdraw-tele-0001")
    retry = withdraw(client, ada, reason="changed my mind", key="withdraw-tele-0001")
    assert retry.json() == first.json()
    history = read(client, ada, "/v1/me/consents/history", after=retry).json()
    assert [entry["action"] for entry in history] == ["withdrawn", "given"]


def test_reusing_a_key_for_a_different_request_is_refused(client, sign_up):
    ada = sign_up()
    assert give(client, ada, "telemedicine", key="give-0000-reused").status_code == 201
    problem = assert_problem(give(client, ada, "data_sharing", key="give-0000-reused"), 409,
                             "idempotency-key-reused")
    assert "new key" in problem["detail"]
    states = read(client, ada, "/v1/me/consents").json()
    assert consent_of(states, "data_sharing")["status"] == "not_given"


def test_one_patients_key_does_not_collide_with_anothers(client, sign_up):
    ada, bob = sign_up(), sign_up(given_name="Bob")
    adas = give(client, ada, key="shared-key-0001")
    bobs = give(client, bob, "data_sharing", key="shared-key-0001")
    assert adas.status_code == bobs.status_code == 201, bobs.text
    assert bobs.json()["consent_id"] != adas.json()["consent_id"]
    assert bobs.json()["consent_type"] == "data_sharing"


def test_a_malformed_idempotency_key_is_named(client, sign_up):
    ada = sign_up()
    problem = assert_problem(give(client, ada, key="bad key!"), 422, "invalid-input")
    assert field_names(problem) == {"Idempotency-Key"}


def test_an_unknown_consent_type_in_the_body_is_named(client, sign_up):
    ada = sign_up()
    problem = assert_problem(give(client, ada, "astrology"), 400)
    assert field_names(problem) == {"consent_type"}


def test_an_unknown_consent_type_in_the_path_is_named(client, sign_up):
    ada = sign_up()
    for response in (withdraw(client, ada, "astrology"),
                     client.get("/v1/consent-texts/astrology", headers=auth(ada))):
        problem = assert_problem(response, 400)
        assert field_names(problem) == {"consent_type"}
        assert "astrology" in problem["detail"]


def test_a_withdrawal_reason_longer_than_allowed_is_named(client, sign_up):
    ada = sign_up()
    give(client, ada)
    problem = assert_problem(withdraw(client, ada, reason="x" * 501), 400)
    assert field_names(problem) == {"reason"}
