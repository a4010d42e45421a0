"""Documents through the API: a completed upload waits for review, the clinic's queue, rejection
with a reason the patient understands, resubmission, downloads recorded, access."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import psycopg
import pytest

from domain.errors import Forbidden, InvalidInput
from tests.api.document_support import PNG, Upload, uploaded
from tests.api.support import assert_problem, auth, field_names, give
from tests.api.visits_support import MONDAY_NINE, book, open_riverside


@pytest.fixture
def visit(client, container, sign_up, staff_member) -> dict[str, Any]:
    doctor = open_riverside(container, staff_member)["doctor"]
    grace = sign_up(given_name="Grace")
    assert give(client, grace, "document_review").status_code == 201
    booked = book(client, grace, doctor, MONDAY_NINE).json()
    return {"patient": grace, "doctor": doctor, "reception": staff_member("reception"),
            "appointment_id": UUID(booked["appointment_id"])}


def test_an_upload_for_an_appointment_waits_for_the_clinics_review(client, container, clock,
                                                                   visit):
    patient = visit["patient"]
    document = uploaded(container, Upload(UUID(patient["account_id"]),
                                          appointment_id=visit["appointment_id"]), clock.now)
    assert document["status"] == "pending_review" and document["clinic_id"] == "riverside"
    again = container.documents.claim(Upload(UUID(patient["account_id"]),
                                             upload_id=_same_upload(container, document)),
                                      clock.now)
    assert again["document_id"] == document["document_id"], "a repeated completion claims once"
    mine = client.get("/v1/me/documents", headers=auth(patient)).json()
    assert [d["status_words"] for d in mine] == ["Waiting for the clinic to check it"]
    queue = client.get("/v1/staff/documents?clinic_id=riverside", headers=auth(visit["reception"]))
    assert queue.status_code == 200, queue.text
    [entry] = queue.json()["documents"]
    assert entry["patient_name"] == "Grace Lovelace" and entry["document_type"] == "id_document"


def _same_upload(container: Any, document: dict[str, Any]) -> UUID:
    row = container.documents._document(UUID(document["document_id"]))
    return UUID(str(row.upload_id))


def test_a_rejection_says_why_and_a_resubmission_replaces_it(client, container, clock, visit,
                                                              mailbox):
    patient, reception = visit["patient"], visit["reception"]
    owner = UUID(patient["account_id"])
    first = uploaded(container, Upload(owner, appointment_id=visit["appointment_id"]), clock.now)
    noted = client.post(f"/v1/staff/documents/{first['document_id']}/notes",
                        headers=auth(reception), json={"note": "Photo of a passport, glare"})
    assert noted.status_code == 200, noted.text
    rejected = client.post(f"/v1/staff/documents/{first['document_id']}/reject",
                           headers=auth(reception), json={"reason_code": "unreadable_image"})
    assert rejected.status_code == 200, rejected.text
    seen = client.get(f"/v1/documents/{first['document_id']}", headers=auth(patient))
    assert seen.json()["status_words"] == "Not accepted"
    assert seen.json()["explanation"].startswith("We could not read it")
    assert "glare" not in seen.text and "internal_notes" not in seen.json()
    told = mailbox.last(patient["account_id"], "document_update")
    assert set(told) <= {"message_id", "kind", "account_id"}
    second = uploaded(container, Upload(owner, appointment_id=visit["appointment_id"],
                                        replaces=UUID(first["document_id"])), clock.now)
    assert second["replaces"] == first["document_id"]
    old = client.get(f"/v1/documents/{first['document_id']}", headers=auth(patient)).json()
    assert old["status"] == "replaced" and old["replaced_by"] == second["document_id"]
    accepted = client.post(f"/v1/staff/documents/{second['document_id']}/accept",
                           headers=auth(reception))
    assert accepted.status_code == 200 and accepted.json()["status"] == "accepted"
    with pytest.raises(InvalidInput) as refused:
        uploaded(container, Upload(owner, replaces=UUID(second["document_id"]),
                                   appointment_id=visit["appointment_id"]), clock.now)
    assert refused.value.errors[0].field == "replaces"


def test_other_needs_a_note_and_every_wrong_field_is_named(client, container, clock, visit):
    owner = UUID(visit["patient"]["account_id"])
    document = uploaded(container, Upload(owner, appointment_id=visit["appointment_id"]),
                        clock.now)
    refused = client.post(f"/v1/staff/documents/{document['document_id']}/reject",
                          headers=auth(visit["reception"]), json={"reason_code": "other"})
    assert field_names(assert_problem(refused, 422)) == {"note"}
    bad = client.post(f"/v1/staff/documents/{document['document_id']}/reject",
                      headers=auth(visit["reception"]), json={"reason_code": "smudged"})
    assert field_names(assert_problem(bad, 400)) == {"reason_code"}


def test_uploads_need_the_consent_and_a_clinic(client, container, clock, sign_up, visit):
    from commands.documents import ConsentRequired

    bob = sign_up(given_name="Bob")
    chose = client.put("/v1/me/profile/preferred-clinic", headers=auth(bob),
                       json={"clinic_id": "riverside"})
    assert chose.status_code == 200, chose.text
    with pytest.raises(ConsentRequired) as refused:
        uploaded(container, Upload(UUID(bob["account_id"])), clock.now)
    assert refused.value.extensions["consent_type"] == "document_review"
    assert give(client, bob, "document_review").status_code == 201
    to_preferred = uploaded(container, Upload(UUID(bob["account_id"])), clock.now)
    assert to_preferred["clinic_id"] == "riverside"
    with pytest.raises(InvalidInput) as not_his:
        uploaded(container, Upload(UUID(bob["account_id"]),
                                   appointment_id=visit["appointment_id"]), clock.now)
    assert [(e.field, e.message) for e in not_his.value.errors] == [
        ("appointment_id", "This is not one of your appointments.")]
    ada = sign_up(given_name="Ada")
    assert give(client, ada, "document_review").status_code == 201
    with pytest.raises(InvalidInput) as no_clinic:
        uploaded(container, Upload(UUID(ada["account_id"])), clock.now)
    assert "choose your clinic" in no_clinic.value.errors[0].message


def test_downloads_pass_the_policy_and_every_view_and_download_is_recorded(
        client, container, clock, visit, sign_up, staff_member):
    patient = visit["patient"]
    document = uploaded(container, Upload(UUID(patient["account_id"]),
                                          appointment_id=visit["appointment_id"]), clock.now)
    path = f"/v1/documents/{document['document_id']}"
    downloaded = client.get(path + "/content", headers=auth(patient))
    assert downloaded.status_code == 200 and downloaded.content == PNG
    assert downloaded.headers["content-type"] == "image/png"
    assert "attachment" in downloaded.headers["content-disposition"]
    assert client.get(path, headers=auth(visit["reception"])).status_code == 200
    bob = sign_up(given_name="Bob")
    assert_problem(client.get(path + "/content", headers=auth(bob)), 403)
    elsewhere = staff_member("reception", clinics=("hillview",))
    assert_problem(client.get(path + "/content", headers=auth(elsewhere)), 403)
    assert_problem(client.get(path, headers=auth(staff_member("support"))), 403)
    with psycopg.connect(container.database.url) as conn:
        rows = conn.execute("SELECT split_part(actor, ':', 1), action FROM carebridge.record_access"
                            " WHERE resource = 'document' ORDER BY access_id").fetchall()
    assert rows == [("patient", "download"), ("reception", "view")]


def test_only_the_clinics_reviewers_review(client, container, clock, visit, staff_member):
    document = uploaded(container, Upload(UUID(visit["patient"]["account_id"]),
                                          appointment_id=visit["appointment_id"]), clock.now)
    for person in (staff_member("reception", clinics=("hillview",)), staff_member("support"),
                   visit["patient"]):
        assert_problem(client.post(f"/v1/staff/documents/{document['document_id']}/accept",
                                   headers=auth(person)), 403)
    assert_problem(client.get("/v1/staff/documents?clinic_id=riverside",
                              headers=auth(staff_member("clinic_admin"))), 403)
    assert Forbidden  # the policy's refusals are Forbidden (403) problems
