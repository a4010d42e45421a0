"""The canary test (issue #8): internal notes carrying unique markers are written in every
aggregate that has internal content; then every patient-facing endpoint in the OpenAPI
document is called as the patient and as her proxy, and every outbox message, log record,
local mail and SMS line and views and analytics table is read. No marker may appear anywhere.

It grows with the API: a new patient-facing GET is called without anyone adding it here, and a
new path parameter fails the test until the seeding gives it a value.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from tests.api.canary_support import (
    FOLLOW_UP,
    LAB_FOLLOW_UP,
    MESSAGE_ANSWER,
    REJECTION,
    Canary,
    Seeded,
    answer_frame,
    caught_up,
    patient_facing_gets,
    scan_logs,
    scan_outbox,
    scan_sent,
    scan_tables,
    search_answers,
    seed_everything,
    unknown_parameters,
    walk,
)
from tests.api.message_support import answer
from tests.api.prescription_support import ask, step
from tests.api.support import auth, withdraw


@pytest.fixture
def seeded(client, container, clock, sign_up, staff_member, caplog) -> Seeded:
    caplog.set_level(logging.DEBUG)
    return seed_everything(client, container, clock, sign_up, staff_member, Canary())


def test_no_internal_content_reaches_the_patient_her_proxy_a_message_a_log_or_a_table(
        client, container, seeded, caplog):
    canary = seeded.canary
    assert set(canary.markers) == {"prescription-note", "prescription-escalation", "document-note",
                                   "consultation-notes", "record-note", "record-unreleased",
                                   "message-note"}
    assert_stored_where_staff_read_them(client, seeded)

    caught_up(container)  # what was written is in every view a patient reads
    calls = walk(client, seeded)
    searches = search_answers(client, seeded)
    outbox_rows = scan_outbox(container, canary)
    sent_lines = scan_sent(container, canary)
    tables = scan_tables(container, canary)
    logged = scan_logs(caplog.records, canary)

    assert not canary.sightings, "internal content reached a patient-facing place:\n" + "\n".join(
        canary.sightings)
    assert not searches, "a search tells whether internal content holds a marker:\n" + "\n".join(
        searches)
    assert_the_walk_reached_what_was_seeded(calls, seeded)
    assert_the_live_feed_was_heard(seeded)
    failures = [f"{c.status} GET {c.url} as the {c.caller}" for c in calls if c.status >= 500]
    assert not failures, failures
    assert outbox_rows and sent_lines and logged, (outbox_rows, sent_lines, logged)
    assert any(n for name, n in tables.items() if name.startswith("views.")), tables


def test_the_same_scan_finds_a_marker_written_where_the_patient_reads(client, container, seeded,
                                                                      caplog):
    """A marker in a patient-facing field (a rejection's explanation, a consent withdrawal's
    reason, the clinic's answer in a conversation) and in a log line is found, so the test
    above cannot pass because its scans are blind."""
    canary = seeded.canary
    planted = canary.marker("planted-explanation")
    made = ask(client, seeded.ada, "sertraline")
    assert made.status_code == 201, made.text
    request_id = made.json()["request_id"]
    refused = step(client, seeded.doctor, request_id, "reject",
                   {"reason_code": "needs_review", "explanation": f"{planted} {REJECTION}"})
    assert refused.status_code == 200, refused.text
    seeded.add("request_id", request_id)
    logging.getLogger("carebridge.canary").info("a line that should never be written: %s",
                                                canary.marker("planted-log"))
    withdrawn = withdraw(client, seeded.ada, reason=canary.marker("planted-reason"))
    assert withdrawn.status_code == 200, withdrawn.text
    [thread_id] = seeded.ids["thread_id"]
    answer(client, seeded.nurse, thread_id, f"{canary.marker('planted-answer')} {MESSAGE_ANSWER}")

    caught_up(container)
    walk(client, seeded)
    scan_logs(caplog.records, canary)
    scan_tables(container, canary)

    found = "\n".join(canary.sightings)
    for caller in ("patient", "proxy"):
        assert f"planted-explanation in GET /v1/prescription-requests/{request_id} as the {caller}" \
            in found, found
    assert "planted-explanation in GET /v1/me/prescription-requests as the patient" in found, found
    assert "planted-log in log record of carebridge.canary" in found, found
    assert "planted-reason in table views.consent_history" in found, found
    for caller in ("patient", "proxy"):
        assert f"planted-answer in GET /v1/message-threads/{thread_id} as the {caller}" in found, found
    assert "planted-answer in table views.patient_messages" in found, found
    assert {s.split(" ")[0] for s in canary.sightings} >= {
        "planted-explanation", "planted-log", "planted-reason", "planted-answer"}


def test_every_patient_facing_parameter_has_a_seeded_value(client, seeded):
    """Fails (naming them) when a new endpoint brings a path parameter the canary cannot
    fill: seed what it names, with its internal content, so the canary keeps covering it."""
    assert unknown_parameters(patient_facing_gets(client), seeded.ids) == []


def assert_stored_where_staff_read_them(client: Any, seeded: Seeded) -> None:
    """The markers were really written: the staff views that should show them do."""
    canary = seeded.canary
    staff_reads = [(seeded.coordinator, f"/v1/staff/prescription-requests/{rid}")
                   for rid in seeded.ids["request_id"]]
    staff_reads += [(seeded.doctor, f"/v1/staff/consultations/{cid}")
                    for cid in seeded.ids["consultation_id"]]
    staff_reads += [(seeded.doctor, f"/v1/staff/records/{rid}") for rid in seeded.ids["record_id"]]
    staff_reads += [(seeded.nurse, f"/v1/documents/{did}") for did in seeded.ids["document_id"]]
    staff_reads += [(seeded.nurse, f"/v1/staff/message-threads/{tid}")
                    for tid in seeded.ids["thread_id"]]
    seen: set[str] = set()
    for person, path in staff_reads:
        response = client.get(path, headers=auth(person))
        assert response.status_code == 200, (path, response.text)
        seen.update(canary.found_in(response.text))
    assert seen == set(canary.markers), seen


def assert_the_walk_reached_what_was_seeded(calls: list[Any], seeded: Seeded) -> None:
    ok = [c for c in calls if c.status == 200]
    assert len(ok) > len(calls) // 2, "most patient-facing reads should answer"
    by_url = {(c.caller, c.url): c for c in calls}
    ada = seeded.ada["account_id"]
    for caller in ("patient", "proxy"):
        for path in (f"/v1/patients/{ada}/documents", f"/v1/patients/{ada}/appointments",
                     *(f"/v1/prescription-requests/{rid}" for rid in seeded.ids["request_id"]),
                     *(f"/v1/documents/{did}" for did in seeded.ids["document_id"]),
                     *(f"/v1/documents/{did}/content" for did in seeded.ids["document_id"]),
                     *(f"/v1/appointments/{aid}/consultation"
                       for aid in seeded.ids["appointment_id"])):
            call = by_url[(caller, path)]
            assert call.status == 200, (caller, path, call.status, call.content[:300])
        assert b'"document_id"' in by_url[(caller, f"/v1/patients/{ada}/documents")].content
    mine = by_url[("patient", "/v1/me/prescription-requests")].content
    assert all(rid.encode() in mine for rid in seeded.ids["request_id"]), mine[:500]
    for aid in seeded.ids["appointment_id"]:
        consultation = by_url[("patient", f"/v1/appointments/{aid}/consultation")].content
        assert FOLLOW_UP.encode() in consultation, consultation[:500]
    for rid in seeded.ids["request_id"][:1]:
        assert REJECTION.encode() in by_url[("patient", f"/v1/prescription-requests/{rid}")].content
    if "released_record" in seeded.named:
        released = f"/v1/records/{seeded.named['released_record']}"
        unreleased = f"/v1/records/{seeded.named['unreleased_record']}"
        for caller in ("patient", "proxy"):
            assert by_url[(caller, released)].status == 200, by_url[(caller, released)]
            assert LAB_FOLLOW_UP.encode() in by_url[(caller, released)].content
            assert by_url[(caller, unreleased)].status == 404, by_url[(caller, unreleased)]
            listed = by_url[(caller, f"/v1/patients/{ada}/records")].content
            assert seeded.named["released_record"].encode() in listed, listed[:500]
            assert seeded.named["unreleased_record"].encode() not in listed, listed[:500]
    [thread_id] = seeded.ids["thread_id"]
    for caller in ("patient", "proxy"):
        thread = by_url[(caller, f"/v1/message-threads/{thread_id}")]
        assert thread.status == 200, (caller, thread.status, thread.content[:300])
        assert MESSAGE_ANSWER.encode() in thread.content, thread.content[:500]
        listed = by_url[(caller, f"/v1/patients/{ada}/message-threads")]
        assert listed.status == 200 and thread_id.encode() in listed.content, listed
    assert thread_id.encode() in by_url[("patient", "/v1/me/message-threads")].content


def assert_the_live_feed_was_heard(seeded: Seeded) -> None:
    """Ada and her proxy heard the nurse's answer live, so the frames the canary scanned are
    the ones a note could have leaked into."""
    [thread_id] = seeded.ids["thread_id"]
    for caller in ("patient", "proxy"):
        heard = [json.loads(frame) for frame in seeded.frames[caller]]
        assert heard[0] == {"type": "ready"}, heard
        assert heard[-1] == answer_frame(thread_id), heard
