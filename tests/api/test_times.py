"""Times leave the API in UTC with a `_local` twin in the clinic's zone, Europe/London."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.api.support import consent_of, give, read, withdraw


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


@pytest.mark.parametrize(("moment", "local"), [
    ("2026-07-01T12:00:00+00:00", "2026-07-01T13:00:00+01:00"),  # British Summer Time
    ("2026-12-01T12:00:00+00:00", "2026-12-01T12:00:00+00:00"),  # Greenwich Mean Time
])
def test_a_consent_shows_its_time_in_utc_and_in_london(client, clock, sign_up, moment, local):
    clock.now = at(moment)
    ada = sign_up()
    given = give(client, ada)
    assert given.status_code == 201, given.text
    state = consent_of(read(client, ada, "/v1/me/consents", after=given).json(), "telemedicine")
    assert at(state["given_at"]) == clock.now
    assert state["given_at"].endswith(("Z", "+00:00"))
    assert state["given_at_local"] == local
    entry = read(client, ada, "/v1/me/consents/history", after=given).json()[0]
    assert at(entry["at"]) == clock.now
    assert entry["at_local"] == local


def test_times_either_side_of_the_spring_clock_change(client, clock, sign_up):
    clock.now = at("2026-03-29T00:55:00+00:00")
    ada = sign_up()
    clock.now = at("2026-03-29T00:59:00+00:00")
    assert give(client, ada).status_code == 201
    clock.now = at("2026-03-29T01:01:00+00:00")  # clocks went forward at 01:00 UTC
    withdrawn = withdraw(client, ada)
    assert withdrawn.status_code == 200, withdrawn.text
    history = read(client, ada, "/v1/me/consents/history", after=withdrawn).json()
    assert [(e["action"], e["at_local"]) for e in history] == [
        ("withdrawn", "2026-03-29T02:01:00+01:00"),
        ("given", "2026-03-29T00:59:00+00:00"),
    ]
    state = consent_of(read(client, ada, "/v1/me/consents", after=withdrawn).json(), "telemedicine")
    assert state["given_at_local"] == "2026-03-29T00:59:00+00:00"
    assert state["withdrawn_at_local"] == "2026-03-29T02:01:00+01:00"
    assert at(state["withdrawn_at"]) - at(state["given_at"]) == clock.now - at("2026-03-29T00:59:00Z")


def test_a_state_never_given_has_no_times(client, sign_up):
    ada = sign_up()
    state = consent_of(read(client, ada, "/v1/me/consents").json(), "document_review")
    assert state["given_at"] is None and state["given_at_local"] is None
    assert state["withdrawn_at"] is None and state["withdrawn_at_local"] is None
