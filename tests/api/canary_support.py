"""The canary test's helpers: marker strings planted in staff-only fields, one patient with a
proxy and a care team whose every aggregate holds internal content, a walk over every
patient-facing GET in the OpenAPI document, and readers of the outbox, the views and analytics
tables, the logs, the local mail and SMS logs and the live message feed.

Each helper here is reused by `test_canary.py`; the seeding goes through the API wherever the
API can do it, with the same helpers the feature tests use.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from uuid import UUID

import psycopg
from psycopg import sql

from api.default_forms import DEFAULT_FORMS
from domain.care import ProxyScope
from domain.consents import ConsentType
from tests.api.care_support import authorise_proxy, in_care_team
from tests.api.consultation_support import START, at, join, switch_on_video
from tests.api.document_support import Upload, uploaded
from tests.api.message_support import answer, started
from tests.api.prescription_support import ask, pharmacy_patient, step
from tests.api.support import auth, give
from tests.api.test_logs import everything_logged
from tests.api.visits_support import book

# Paths no patient or proxy calls: staff and administrators' endpoints, the operator console
# and the OpenAPI document itself. WebSockets are not in the OpenAPI document.
NOT_PATIENT_FACING = ("/v1/staff/", "/v1/admin/", "/v1/audit/", "/fhir/AuditEvent", "/console",
                      "/schema")
# Schemas whose every table the canary reads: what patients read, and what analysts and read
# replicas get. Staff-only content (queues with notes, unreleased drafts) belongs elsewhere.
READ_SCHEMAS = ("views", "analytics")
FOLLOW_UP = "Take the inhaler twice a day and book a review in two weeks."
LAB_FOLLOW_UP = "Book a review with the nurse."
REJECTION = "Please book a blood pressure check before we renew this."
REQUEST_ID = re.compile(r'"request_id":"[^"]*"')  # differs between any two problem answers
TEST_CLIENT_URL = "http://testserver.local/"  # Litestar's TestClient
DOCUMENT_REJECTION = "unreadable_image"  # a reason code; the patient reads its fixed words
MESSAGE_ANSWER = "It is a little high. Please book a review with the practice nurse."
LIVE_FRAME_WAIT_S = 30  # guards against a hang only: a frame comes at once or not at all


@dataclass
class Canary:
    """Unique marker strings, one per place internal content was written, and where any was
    seen. A marker is `CANARY-<area>-<hex>`; the hex alone is unique too, so a view that cut
    or reformatted the prefix is still caught."""

    markers: dict[str, str] = field(default_factory=dict)
    sightings: list[str] = field(default_factory=list)

    def marker(self, area: str) -> str:
        assert area not in self.markers, f"one marker per area: {area}"
        self.markers[area] = f"CANARY-{area}-{uuid.uuid4().hex}"
        return self.markers[area]

    def found_in(self, content: str | bytes | None) -> list[str]:
        """The areas whose marker is in `content` (text, or bytes read as they are)."""
        if content is None:
            return []
        text = content.decode("latin-1") if isinstance(content, bytes) else content
        text = text.lower()
        return [area for area, marker in self.markers.items()
                if marker.lower() in text or marker.rsplit("-", 1)[1] in text]

    def scan(self, where: str, content: str | bytes | None) -> list[str]:
        """Records a sighting for every marker in `content`; returns the areas found."""
        areas = self.found_in(content)
        self.sightings.extend(f"{area} in {where}" for area in areas)
        return areas


@dataclass
class Seeded:
    """Ada, her proxy who holds every scope, her care team and the ids of what was seeded.
    `ids` maps each path parameter of the patient-facing API to the values to call it with."""

    canary: Canary
    ada: dict[str, str]
    proxy: dict[str, str]
    doctor: dict[str, str]
    nurse: dict[str, str]
    coordinator: dict[str, str]
    ids: dict[str, list[str]] = field(default_factory=dict)
    named: dict[str, str] = field(default_factory=dict)  # e.g. "released_record": its id
    frames: dict[str, list[str]] = field(default_factory=dict)  # heard live, by caller

    def add(self, parameter: str, value: str, name: str | None = None) -> None:
        self.ids.setdefault(parameter, []).append(str(value))
        if name is not None:
            self.named[name] = str(value)

    @property
    def staff(self) -> list[dict[str, str]]:
        return [self.doctor, self.nurse, self.coordinator]


# ---- seeding ---------------------------------------------------------------------------------

def seed_people(client: Any, container: Any, clock: Any, sign_up: Any, staff_member: Any,
                canary: Canary) -> Seeded:
    """Ada with repeat medicines at Riverside, her daughter as a proxy with every scope, and a
    doctor and a nurse of Riverside in her care team."""
    ada = sign_up(given_name="Ada")
    proxy = sign_up(given_name="Anne", family_name="King")
    rx = pharmacy_patient(client, container, lambda **_: ada, staff_member)
    seeded = Seeded(canary, ada, proxy, rx["doctor"], staff_member("nurse"), rx["coordinator"])
    for clinician in (seeded.doctor, seeded.nurse):
        in_care_team(container, clock, ada["account_id"], clinician["account_id"])
    for consent in (ConsentType.TELEMEDICINE, ConsentType.DOCUMENT_REVIEW):
        assert give(client, ada, consent.value).status_code == 201
    authorise_proxy(client, ada, proxy, [scope.value for scope in ProxyScope])
    seeded.add("patient_id", ada["account_id"])
    seeded.add("account_id", seeded.doctor["account_id"])
    seeded.ids["clinic_id"] = ["riverside"]
    seeded.ids["consent_type"] = [consent.value for consent in ConsentType]
    seeded.ids["form_id"] = list(DEFAULT_FORMS)
    return seeded


def seed_prescriptions(client: Any, seeded: Seeded) -> None:
    """One request rejected after a coordinator's note, one approved after an escalation whose
    note is for the prescriber: the notes carry markers, the patient's explanation none."""
    canary, coordinator = seeded.canary, seeded.coordinator
    rejected = ask(client, seeded.ada, "amlodipine")
    assert rejected.status_code == 201, rejected.text
    rejected_id = rejected.json()["request_id"]
    noted = step(client, coordinator, rejected_id, "notes",
                 {"note": f"{canary.marker('prescription-note')} readings missing since June"})
    assert noted.status_code == 200, noted.text
    refused = step(client, coordinator, rejected_id, "reject",
                   {"reason_code": "needs_review", "explanation": REJECTION})
    assert refused.status_code == 200, refused.text
    approved = ask(client, seeded.ada, "amlodipine")
    assert approved.status_code == 201, approved.text
    approved_id = approved.json()["request_id"]
    for action, body, by in [
            ("review", None, coordinator),
            ("escalate", {"note": f"{canary.marker('prescription-escalation')} check renal"}, coordinator),
            ("approve", None, seeded.doctor),
            ("ready", None, seeded.doctor)]:
        done = step(client, by, approved_id, action, body)
        assert done.status_code == 200, (action, done.text)
    seeded.add("request_id", rejected_id)
    seeded.add("request_id", approved_id)


def seed_document(client: Any, container: Any, clock: Any, seeded: Seeded,
                  appointment_id: str) -> None:
    """An uploaded document the nurse notes (marker) and rejects for a reason the patient
    reads (no marker)."""
    document = uploaded(container, Upload(UUID(seeded.ada["account_id"]),
                                          appointment_id=UUID(appointment_id)), clock.now)
    document_id = document["document_id"]
    noted = client.post(f"/v1/staff/documents/{document_id}/notes", headers=auth(seeded.nurse),
                        json={"note": f"{seeded.canary.marker('document-note')} glare on page"})
    assert noted.status_code == 200, noted.text
    rejected = client.post(f"/v1/staff/documents/{document_id}/reject", headers=auth(seeded.nurse),
                           json={"reason_code": DOCUMENT_REJECTION})
    assert rejected.status_code == 200, rejected.text
    seeded.add("document_id", document_id)


def book_video(client: Any, staff_member: Any, seeded: Seeded) -> str:
    """Ada's video appointment with the doctor at START; returns its id."""
    switch_on_video(client, staff_member)
    booked = book(client, seeded.ada, seeded.doctor, START, type_id="video")
    appointment_id = booked.json()["appointment_id"]
    seeded.add("appointment_id", appointment_id)
    return str(appointment_id)


def seed_consultation(client: Any, clock: Any, seeded: Seeded, appointment_id: str) -> None:
    """The video consultation: Ada joins, it ends, the doctor writes a summary whose internal
    notes carry a marker and whose follow-up instructions carry none."""
    at(client, clock, START - timedelta(minutes=5), seeded.ada, seeded.proxy, *seeded.staff)
    joined = join(client, {"appointment_id": appointment_id, "patient": seeded.ada})
    assert joined.status_code == 200, joined.text
    consultation_id = joined.json()["consultation_id"]
    path = f"/v1/staff/consultations/{consultation_id}"
    # Ending as a technical failure needs no media; a summary follows any ending.
    ended = client.post(f"{path}/end", headers=auth(seeded.doctor),
                        json={"outcome": "technical_failure"})
    assert ended.status_code == 200, ended.text
    summary = client.put(f"{path}/summary", headers=auth(seeded.doctor), json={
        "follow_up_instructions": FOLLOW_UP,
        "internal_notes": f"{seeded.canary.marker('consultation-notes')} possible early COPD"})
    assert summary.status_code == 200, summary.text
    seeded.add("consultation_id", consultation_id)


def seed_records(client: Any, clock: Any, seeded: Seeded) -> None:
    """A lab result the doctor notes (marker) and releases, and an unreleased one whose own
    content carries a marker: unreleased content is no more the patient's than a note."""
    canary, doctor = seeded.canary, seeded.doctor
    released = enter_lab_result(client, clock, seeded, comment="Slightly raised; recheck.")
    noted = client.post(f"/v1/staff/records/{released}/notes", headers=auth(doctor),
                        json={"note": f"{canary.marker('record-note')} query adherence"})
    assert noted.status_code in (200, 201), noted.text
    done = client.post(f"/v1/staff/records/{released}/release", headers=auth(doctor))
    assert done.status_code == 200, done.text
    unreleased = enter_lab_result(client, clock, seeded,
                                  comment=f"{canary.marker('record-unreleased')} awaiting review")
    seeded.add("record_id", released, "released_record")
    seeded.add("record_id", unreleased, "unreleased_record")


def enter_lab_result(client: Any, clock: Any, seeded: Seeded, comment: str) -> str:
    entered = client.post(
        f"/v1/staff/patients/{seeded.ada['account_id']}/records", headers=auth(seeded.doctor),
        json={"kind": "lab_result", "code": "hba1c", "title": "HbA1c", "clinic_id": "riverside",
              "occurred_at": (clock.now - timedelta(days=2)).isoformat(),
              "content": {"observations": [{"name": "HbA1c", "value": 48, "unit": "mmol/mol",
                                            "reference_low": 20, "reference_high": 41}],
                          "comment": comment, "follow_up": LAB_FOLLOW_UP},
              "release_now": False})
    assert entered.status_code == 201, entered.text
    return str(entered.json()["record_id"])


def seed_messages(client: Any, seeded: Seeded) -> None:
    """Ada asks the nurses about her released result, from the result; a nurse adds a note for
    staff (marker) and answers (no marker) while Ada and her proxy listen on the live feed.
    Every frame they hear is scanned and kept in `seeded.frames`."""
    canary, nurse = seeded.canary, seeded.nurse
    thread = started(client, seeded.ada, category="lab_result", subject="My HbA1c result",
                     body="What does 48 mean for me?", clinic_id=None,
                     context={"kind": "record", "id": seeded.named["released_record"]})
    thread_id = thread["thread_id"]
    listeners = {"patient": seeded.ada, "proxy": seeded.proxy}
    with contextlib.ExitStack() as stack:
        sockets = {caller: stack.enter_context(client.websocket_connect(
            "/v1/messages/live", headers=auth(person))) for caller, person in listeners.items()}
        for caller, socket in sockets.items():  # subscribed once it says it is ready
            seeded.frames[caller] = [socket.receive_text(timeout=LIVE_FRAME_WAIT_S)]
            assert json.loads(seeded.frames[caller][0]) == {"type": "ready"}, seeded.frames
        noted = client.post(f"/v1/staff/message-threads/{thread_id}/notes", headers=auth(nurse),
                            json={"note": f"{canary.marker('message-note')} call if anxious"})
        assert noted.status_code == 200, noted.text
        answer(client, nurse, thread_id, MESSAGE_ANSWER)
        for caller, socket in sockets.items():
            # Changes arrive in commit order: anything the note sent comes before the answer.
            while json.loads(seeded.frames[caller][-1]) != answer_frame(thread_id):
                seeded.frames[caller].append(socket.receive_text(timeout=LIVE_FRAME_WAIT_S))
    for caller, frames in seeded.frames.items():
        for frame in frames:
            canary.scan(f"live frame to the {caller}", frame)
    seeded.add("thread_id", thread_id)


def answer_frame(thread_id: str) -> dict[str, str]:
    """What the live feed says when the clinic answers in a conversation: ids and the state."""
    return {"type": "thread", "thread_id": thread_id, "event": "message",
            "state": "pending_patient"}


def calendar_feed(client: Any, seeded: Seeded) -> None:
    """Ada's calendar feed, so the feed file (a patient-facing download) is read too."""
    made = client.post("/v1/me/calendar-feed", headers=auth(seeded.ada))
    assert made.status_code == 201, made.text
    seeded.add("feed_file", made.json()["url"].rsplit("/", 1)[1])


def seed_everything(client: Any, container: Any, clock: Any, sign_up: Any, staff_member: Any,
                    canary: Canary) -> Seeded:
    seeded = seed_people(client, container, clock, sign_up, staff_member, canary)
    seed_prescriptions(client, seeded)
    appointment_id = book_video(client, staff_member, seeded)
    seed_document(client, container, clock, seeded, appointment_id)
    calendar_feed(client, seeded)
    seed_consultation(client, clock, seeded, appointment_id)
    seed_records(client, clock, seeded)
    seed_messages(client, seeded)
    seed_emergency_share(client, seeded)
    # The FHIR API's own path parameters (consents, prescription items, messages, answers, slots).
    from tests.api.test_fhir import fhir_ids

    for name, values in fhir_ids(client, seeded.ada).items():
        seeded.ids.setdefault(name, []).extend(values)
    return seeded


def seed_emergency_share(client: Any, seeded: Seeded) -> None:
    """Ada shares her location; the doctor opens it and closes it with an outcome (what the
    clinic decided is the clinic's: the patient's view of the share never shows it)."""
    from tests.api.emergency_support import consent_version, ready_to_share, start_sharing

    ready_to_share(client, seeded.ada)
    shared = start_sharing(client, seeded.ada, consent_version=consent_version(client,
                                                                               seeded.ada))
    assert shared.status_code == 201, shared.text
    share_id = shared.json()["share_id"]
    assert client.get(f"/v1/staff/emergency-shares/{share_id}",
                      headers=auth(seeded.doctor)).status_code == 200
    seeded.add("share_id", share_id)


# ---- the walk over the patient-facing API ----------------------------------------------------

@dataclass(frozen=True)
class Operation:
    template: str
    path_parameters: tuple[str, ...]
    required_query: tuple[str, ...]
    optional_query: tuple[str, ...] = ()


@dataclass(frozen=True)
class Call:
    caller: str
    template: str
    url: str
    status: int
    content: bytes
    headers: str


def patient_facing_gets(client: Any) -> list[Operation]:
    """Every GET in the OpenAPI document that a patient or a proxy may call."""
    schema = client.get("/schema/openapi.json")
    assert schema.status_code == 200, schema.text
    operations = []
    for template, item in schema.json()["paths"].items():
        get = item.get("get")
        if get is None or template.startswith(NOT_PATIENT_FACING):
            continue
        parameters = get.get("parameters") or []
        operations.append(Operation(
            template,
            tuple(p["name"] for p in parameters if p["in"] == "path"),
            tuple(p["name"] for p in parameters if p["in"] == "query" and p.get("required")),
            tuple(p["name"] for p in parameters
                  if p["in"] == "query" and not p.get("required"))))
    return operations


def unknown_parameters(operations: Iterable[Operation], ids: dict[str, list[str]]) -> list[str]:
    """Path and required query parameters the seeding has no value for."""
    return sorted({f"{op.template}: {name}" for op in operations
                   for name in (*op.path_parameters, *op.required_query) if not ids.get(name)})


def urls(operation: Operation, ids: dict[str, list[str]]) -> Iterator[str]:
    """The operation's URL for every combination of seeded values of its path parameters."""
    combinations: list[dict[str, str]] = [{}]
    for name in operation.path_parameters:
        combinations = [{**c, name: value} for c in combinations for value in ids[name]]
    query = "&".join(f"{name}={ids[name][0]}" for name in operation.required_query)
    for values in combinations:
        yield operation.template.format(**values) + (f"?{query}" if query else "")


def walk(client: Any, seeded: Seeded) -> list[Call]:
    """Calls every patient-facing GET as Ada and as her proxy, with every seeded id, and scans
    every answer (bodies, downloads included, and headers) for markers."""
    operations = patient_facing_gets(client)
    unknown = unknown_parameters(operations, seeded.ids)
    assert not unknown, ("the canary does not know what to put in these parameters; seed what "
                         "they name (with internal content, if it has any) and add their "
                         f"values to Seeded.ids: {unknown}")
    calls = []
    for caller, person in (("patient", seeded.ada), ("proxy", seeded.proxy)):
        for operation in operations:
            for url in urls(operation, seeded.ids):
                response = client.get(url, headers=auth(person))
                call = Call(caller, operation.template, url, response.status_code,
                            response.content, str(dict(response.headers)))
                seeded.canary.scan(f"GET {url} as the {caller}", call.content + call.headers.encode())
                calls.append(call)
    return calls


def search_answers(client: Any, seeded: Seeded) -> list[str]:
    """Searching is a way to read too: a patient-facing search (a `q` parameter) must answer a
    marker exactly as it answers a string found nowhere, or it tells whether a note holds it.
    Returns the searches whose answers differ."""
    differences = []
    searches = [op for op in patient_facing_gets(client) if "q" in op.optional_query]
    for caller, person in (("patient", seeded.ada), ("proxy", seeded.proxy)):
        for operation in searches:
            for url in urls(operation, seeded.ids):
                joiner = "&" if "?" in url else "?"
                for area, marker in seeded.canary.markers.items():
                    decoy = f"CANARY-{area}-{uuid.uuid4().hex}"
                    answers = [client.get(f"{url}{joiner}q={text}", headers=auth(person))
                               for text in (marker, decoy)]
                    found, nothing = (REQUEST_ID.sub("", a.text.replace(text, "<q>"))
                                      for a, text in zip(answers, (marker, decoy), strict=True))
                    if (answers[0].status_code, found) != (answers[1].status_code, nothing):
                        differences.append(f"{area}: GET {url}{joiner}q=<marker> as the {caller}")
    return differences


# ---- what else a patient could come to read --------------------------------------------------

def caught_up(container: Any) -> None:
    """Every projection has applied every event written so far."""
    with psycopg.connect(container.database.url, autocommit=True) as conn:
        for runner in container.runners:
            runner.catch_up(conn)
            lagging = [s for s in runner.status(conn) if s.lag]
            assert not lagging, f"projection still behind: {lagging}"


def scan_outbox(container: Any, canary: Canary) -> int:
    """Every outbox row, every column as text, and each message as it would be worded to be
    sent (sending then erases recipient and content); returns how many rows were read."""
    from commands.outbox import OUTBOX, Outgoing

    with psycopg.connect(container.database.owner_url, autocommit=True) as conn:
        rows = conn.execute(f"SELECT o.message_id, o.kind, row_to_json(o)::text, o.account_id,"
                            f" o.channel, o.recipient, o.payload FROM {OUTBOX} o").fetchall()
    for message_id, kind, text, account_id, channel, recipient, payload in rows:
        canary.scan(f"outbox row {message_id} ({kind})", text)
        if payload is not None:
            message = Outgoing(message_id, account_id, channel, kind, recipient or "", dict(payload))
            canary.scan(f"outbox message {message_id} ({kind}) as sent",
                        f"{message.subject()}\n{message.text()}")
    return len(rows)


def scan_sent(container: Any, canary: Canary) -> int:
    """Sends what is due, as the outbox dispatcher does, then reads the local mail and SMS
    logs; returns how many lines they hold."""
    container.outbox.deliver_due()
    lines = 0
    for path in (container.settings.mail_log_path, container.settings.sms_log_path):
        if path is not None and path.exists():
            text = path.read_text()
            lines += len(text.splitlines())
            canary.scan(str(path.name), text)
    return lines


def scan_tables(container: Any, canary: Canary) -> dict[str, int]:
    """Every row of every table in the views and analytics schemas, as text; returns the row
    count of each table."""
    counts = {}
    with psycopg.connect(container.database.owner_url, autocommit=True) as conn:
        tables = conn.execute(
            "SELECT table_schema, table_name FROM information_schema.tables"
            " WHERE table_schema = ANY(%s) ORDER BY 1, 2", (list(READ_SCHEMAS),)).fetchall()
        for schema, table in tables:
            rows = conn.execute(sql.SQL("SELECT t::text FROM {} t").format(
                sql.Identifier(schema, table))).fetchall()
            for (text,) in rows:
                canary.scan(f"table {schema}.{table}", text)
            counts[f"{schema}.{table}"] = len(rows)
    return counts


def scan_logs(records: Iterable[logging.LogRecord], canary: Canary) -> int:
    """Every log record, with its arguments and extra fields; returns how many were read. The
    test client's own request lines are not CareBridge's logs: they name the URLs this test
    asks for, searches for markers included."""
    count = 0
    for record in records:
        if record.name == "httpx" and TEST_CLIENT_URL in record.getMessage():
            continue
        canary.scan(f"log record of {record.name}", everything_logged(record))
        count += 1
    return count
