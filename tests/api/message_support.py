"""Helpers for messaging tests and scenarios."""

from __future__ import annotations

from typing import Any

from tests.api.support import auth


def messaging_on(client: Any, clinic_id: str = "riverside") -> None:
    """Switches secure messaging on for everyone at the clinic, as its administrator would."""
    from datetime import UTC, datetime
    from uuid import uuid4

    from domain.access import Actor
    from domain.feature_flags import Feature
    from domain.identity import Role

    flags = client.app.state.container.feature_flags
    if not flags.is_available(Feature.MESSAGING, uuid4(), clinic_id):
        admin = Actor(uuid4(), Role.CLINIC_ADMIN, frozenset({clinic_id}))
        flags.set_rule(admin, Feature.MESSAGING, clinic_id, None, 100, [], "messaging pilot",
                       datetime.now(UTC))


def start(client: Any, person: dict[str, str], category: str = "general",
          subject: str = "Parking at the clinic", body: str = "Is there parking nearby?",
          **more: Any) -> Any:
    more.setdefault("clinic_id", "riverside")
    messaging_on(client, more["clinic_id"] or "riverside")
    headers = auth(person) | ({"Idempotency-Key": more.pop("key")} if "key" in more else {})
    return client.post("/v1/message-threads", headers=headers,
                       json={"category": category, "subject": subject, "body": body, **more})


def started(client: Any, person: dict[str, str], **options: Any) -> dict[str, Any]:
    response = start(client, person, **options)
    assert response.status_code == 201, response.text
    return response.json() | {"position": response.headers.get("CareBridge-Position")}


def answer(client: Any, staff: dict[str, str], thread_id: str, body: str) -> Any:
    response = client.post(f"/v1/staff/message-threads/{thread_id}/messages",
                           headers=auth(staff), json={"body": body})
    assert response.status_code == 201, response.text
    return response


def thread_as(client: Any, person: dict[str, str], thread_id: str, after: Any = None) -> Any:
    headers = auth(person)
    position = after.headers.get("CareBridge-Position") if after is not None else None
    if position:
        headers["CareBridge-Wait-For"] = position
    return client.get(f"/v1/message-threads/{thread_id}", headers=headers)


def queue(client: Any, staff: dict[str, str], query: str = "") -> list[dict[str, Any]]:
    response = client.get(f"/v1/staff/message-threads?clinic_id=riverside{query}",
                          headers=auth(staff))
    assert response.status_code == 200, response.text
    return response.json()["threads"]


def my_threads(client: Any, person: dict[str, str], position: str | None = None,
               patient_id: str | None = None) -> list[dict[str, Any]]:
    """The conversations as the patient's side lists them (someone else's, for a proxy), once
    the patient's view has caught up with the write at `position`."""
    headers = auth(person) | ({"CareBridge-Wait-For": position} if position else {})
    path = f"/v1/patients/{patient_id}/message-threads" if patient_id else "/v1/me/message-threads"
    response = client.get(path, headers=headers)
    assert response.status_code == 200, response.text
    return list(response.json())


def new_message_notices(container: Any, account_id: str) -> list[dict[str, Any]]:
    """The outbox rows that tell an account the clinic wrote to it."""
    with container.identity.factory.datastore.get_connection() as conn:
        return list(conn.execute("SELECT kind, payload::text AS payload FROM carebridge.outbox"
                                 " WHERE account_id = %s AND kind = 'new_message'"
                                 " ORDER BY created_at", (account_id,)).fetchall())
