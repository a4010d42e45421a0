"""Helpers for video consultation tests: a booked video appointment with everything a patient
needs to join, a moving clock with fresh sign-ins, and reading WebSocket frames."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from tests.api.care_support import STAFF_PASSWORD
from tests.api.support import PASSWORD, auth, give, sign_in
from tests.api.visits_support import MONDAY_NINE, book, open_riverside

START = MONDAY_NINE  # a 10-minute video slot with Riverside's doctor
ORIGIN = {"origin": "http://localhost:8000"}


def switch_on_video(client: Any, staff_member: Any) -> None:
    enabled = client.put("/v1/admin/feature-flags/telemedicine/rules",
                         headers=auth(staff_member("clinic_admin")),
                         json={"clinic_id": "riverside", "service_type": "video",
                               "percentage": 100, "patient_ids": [], "reason": "video pilot"})
    assert enabled.status_code in (200, 201), enabled.text


def video_visit(client: Any, container: Any, sign_up: Any, staff_member: Any,
                consent: bool = True, given_name: str = "Amira") -> dict[str, Any]:
    """Riverside's doctor, a patient and their booked video appointment at START."""
    doctor = open_riverside(container, staff_member)["doctor"]
    switch_on_video(client, staff_member)
    patient = sign_up(given_name=given_name)
    if consent:
        assert give(client, patient).status_code == 201
    booked = book(client, patient, doctor, START, type_id="video")
    return {"patient": patient, "doctor": doctor,
            "appointment_id": booked.json()["appointment_id"]}


def at(client: Any, clock: Any, when: datetime, *people: dict[str, str]) -> None:
    """Moves the clock and signs everyone in again (sessions end when idle)."""
    clock.now = when
    container = client.app.state.container
    for person in people:
        account = container.identity.find_account(UUID(person["account_id"]))
        password = PASSWORD if str(account.role) == "patient" else STAFF_PASSWORD
        person.update(sign_in(client, account.email, password))


def join(client: Any, visit: dict[str, Any]) -> Any:
    return client.post(f"/v1/appointments/{visit['appointment_id']}/consultation/join",
                       headers=auth(visit["patient"]))


def admit(client: Any, visit: dict[str, Any], consultation_id: str) -> Any:
    return client.post(f"/v1/staff/consultations/{consultation_id}/join",
                       headers=auth(visit["doctor"]))


def socket_path(grant: dict[str, Any]) -> str:
    return f"{grant['websocket_path']}?ticket={grant['ticket']}"


def next_frame(ws: Any, kind: str, seen: list[dict[str, Any]] | None = None,
               timeout: float = 15.0, **match: Any) -> dict[str, Any]:
    """Reads frames until one of this type (and these fields) arrives; keeps what it read."""
    deadline = datetime.now() + timedelta(seconds=timeout)
    while True:
        left = (deadline - datetime.now()).total_seconds()
        assert left > 0, f"no {kind} frame {match} within {timeout}s; read {seen}"
        frame = ws.receive_json(timeout=left)
        if seen is not None:
            seen.append(frame)
        if frame["type"] == kind and all(_field(frame, k) == v for k, v in match.items()):
            return frame


def next_state(ws: Any, state: str, seen: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return next_frame(ws, "state", seen, state=state)["state"]


def _field(frame: dict[str, Any], key: str) -> Any:
    if key == "state" and isinstance(frame.get("state"), dict):
        return frame["state"]["state"]
    return frame.get(key)


OFFER_SDP = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
ANSWER_SDP = "v=0\r\no=- 3 4 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"


def eventually(read: Any, check: Any, timeout: float = 15.0) -> Any:
    """Reads until `check(result)` holds: a socket's leave is recorded after it closes."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        result = read()
        if check(result):
            return result
        assert time.monotonic() < deadline, f"still not so after {timeout}s: {result}"
        time.sleep(0.05)
