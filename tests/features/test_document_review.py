"""Step definitions for features/document_review.feature, through the HTTP API (an upload is
handed over as the uploads context hands it over when it completes)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any
from uuid import UUID

import pytest
from pytest_bdd import given, parsers, scenarios, then, when

from tests.api.document_support import Upload, uploaded
from tests.api.support import auth, give
from tests.api.visits_support import MONDAY_NINE, book, open_riverside

scenarios("document_review.feature")


@pytest.fixture
def scene() -> Iterator[dict[str, Any]]:
    with ExitStack() as stack:  # a server a scenario starts stops with it
        yield {"stack": stack}


@given("Grace has an appointment at Riverside and has agreed to the review of her documents")
def grace(client, container, sign_up, staff_member, scene):
    doctor = open_riverside(container, staff_member)["doctor"]
    scene["grace"] = sign_up(given_name="Grace")
    assert give(client, scene["grace"], "document_review").status_code == 201
    scene["appointment_id"] = UUID(book(client, scene["grace"], doctor, MONDAY_NINE)
                                   .json()["appointment_id"])
    scene["reception"] = staff_member("reception")


@given("Grace uploaded a photo of her passport for her appointment")
def passport(container, clock, scene):
    scene["first"] = uploaded(container, Upload(UUID(scene["grace"]["account_id"]),
                                                appointment_id=scene["appointment_id"]),
                              clock.now)


@when(parsers.parse('reception rejects it because the image is unreadable, noting "{note}" '
                    "for staff"))
def rejects(client, scene, note):
    path = f"/v1/staff/documents/{scene['first']['document_id']}"
    assert client.post(path + "/notes", headers=auth(scene["reception"]),
                       json={"note": note}).status_code == 200
    rejected = client.post(path + "/reject", headers=auth(scene["reception"]),
                           json={"reason_code": "unreadable_image"})
    assert rejected.status_code == 200, rejected.text


def seen(client: Any, scene: dict[str, Any], key: str) -> dict[str, Any]:
    response = client.get(f"/v1/documents/{scene[key]['document_id']}",
                          headers=auth(scene["grace"]))
    assert response.status_code == 200, response.text
    scene.setdefault("texts", []).append(response.text)
    return dict(response.json())


@then("Grace sees that it was not accepted and reads that she should take a new photo in good "
      "light")
def sees_reason(client, scene):
    document = seen(client, scene, "first")
    assert document["status_words"] == "Not accepted"
    assert "take a new photo in good light" in document["explanation"]


@then("Grace is told there is an update, without any detail")
def told(mailbox, scene):
    message = mailbox.last(scene["grace"]["account_id"], "document_update")
    assert set(message) <= {"message_id", "kind", "account_id"}


@then(parsers.parse('nothing Grace can see mentions "{word}"'))
def nothing(client, mailbox, scene, word):
    everything = client.get("/v1/me/documents", headers=auth(scene["grace"])).text
    assert all(word not in text for text in [*scene["texts"], everything])
    assert all(word not in str(m) for m in mailbox.messages())


@when("Grace uploads a new photo to replace it")
def replaces(container, clock, scene):
    scene["second"] = uploaded(container, Upload(
        UUID(scene["grace"]["account_id"]), appointment_id=scene["appointment_id"],
        replaces=UUID(scene["first"]["document_id"])), clock.now)


@then("the first upload shows as replaced by the new one")
def replaced(client, scene):
    first = seen(client, scene, "first")
    assert first["status_words"] == "Replaced by a newer upload"
    assert first["replaced_by"] == scene["second"]["document_id"]


@then("reception sees only the new one waiting for review")
def queue(client, scene):
    response = client.get("/v1/staff/documents?clinic_id=riverside",
                          headers=auth(scene["reception"]))
    assert [d["document_id"] for d in response.json()["documents"]] == [
        scene["second"]["document_id"]]


@when("reception accepts it")
def accepts(client, scene):
    accepted = client.post(f"/v1/staff/documents/{scene['second']['document_id']}/accept",
                           headers=auth(scene["reception"]))
    assert accepted.status_code == 200, accepted.text


@then("Grace sees her document as accepted")
def accepted(client, scene):
    assert seen(client, scene, "second")["status_words"] == "Accepted"


PAGE = 256 * 1024
LETTER = b"%PDF-1.7\n" + bytes(range(256)) * (3 * PAGE // 256)


@given("Grace starts uploading her three-page referral letter for her appointment")
def starts(container, clock, scene):
    from tusclient.client import TusClient

    from tests.api.document_support import served

    base = scene["stack"].enter_context(served(container, clock))
    scene["tus"] = lambda: TusClient(f"{base}/v1/uploads", headers=auth(scene["grace"]))
    scene["uploader"] = scene["tus"]().uploader(
        file_stream=io.BytesIO(LETTER), chunk_size=PAGE,
        metadata={"filename": "referral.pdf", "document_type": "referral_letter",
                  "appointment_id": str(scene["appointment_id"])})


@when("her phone loses its connection after the first two pages")
def drops(scene):
    scene["uploader"].upload(stop_at=2 * PAGE)


@when("she opens the app again later")
def reopens(scene):
    scene["again"] = scene["tus"]().uploader(file_stream=io.BytesIO(LETTER), chunk_size=PAGE,
                                             url=scene["uploader"].url)


@then("the upload continues from where it stopped, not from the start")
def continues(scene):
    assert scene["again"].offset == 2 * PAGE  # the server said so (HEAD)
    scene["again"].upload()


@then("the clinic receives the whole letter, waiting for review")
def received(client, container, scene):
    [letter] = client.get("/v1/me/documents", headers=auth(scene["grace"])).json()
    assert letter["status"] == "pending_review" and letter["size"] == len(LETTER)
    assert letter["content_type"] == "application/pdf"
    content = client.get(f"/v1/documents/{letter['document_id']}/content",
                         headers=auth(scene["grace"]))
    assert content.content == LETTER
