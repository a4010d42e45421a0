"""Helpers for emergency sharing tests and scenarios."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

from tests.api.support import auth

DAUGHTER = {"name": "Ann Hopper", "relationship": "daughter", "phone": "+44 7700 900456"}
# A bench on the Thames path, then a few metres along it.
BENCH = (51.507222, -0.127500)
ALONG = (51.507300, -0.127300)


def sharing_on(client: Any, clinic_id: str = "riverside") -> None:
    """Switches emergency location sharing on for everyone at the clinic."""
    from domain.access import Actor
    from domain.feature_flags import Feature
    from domain.identity import Role

    flags = client.app.state.container.feature_flags
    if not flags.is_available(Feature.EMERGENCY_LOCATION, uuid4(), clinic_id):
        admin = Actor(uuid4(), Role.CLINIC_ADMIN, frozenset({clinic_id}))
        flags.set_rule(admin, Feature.EMERGENCY_LOCATION, clinic_id, None, 100, [],
                       "emergency sharing pilot", datetime.now(UTC))


def ready_to_share(client: Any, person: dict[str, str], contact: bool = True) -> None:
    """The patient chose Riverside and named an emergency contact."""
    sharing_on(client)
    for section, body in (("preferred-clinic", {"clinic_id": "riverside"}),
                          *((("emergency-contact", DAUGHTER),) if contact else ())):
        changed = client.put(f"/v1/me/profile/{section}", json=body, headers=auth(person))
        assert changed.status_code == 200, changed.text


def consent_version(client: Any, person: dict[str, str]) -> str:
    text = client.get("/v1/consent-texts/data_sharing", headers=auth(person))
    assert text.status_code == 200, text.text
    return str(text.json()["version"])


def start_sharing(client: Any, person: dict[str, str], **body: Any) -> Any:
    return client.post("/v1/emergency-shares", headers=auth(person), json=body)


def position(at: datetime, where: tuple[float, float] = BENCH,
             accuracy: float = 12) -> dict[str, Any]:
    return {"type": "position", "latitude": where[0], "longitude": where[1],
            "accuracy": accuracy, "at": at.isoformat()}


def contact_link(container: Any, account_id: str) -> str:
    with container.identity.factory.datastore.get_connection() as conn:
        row = conn.execute("SELECT payload->>'link' AS link, channel, recipient"
                           " FROM carebridge.outbox WHERE account_id = %s"
                           " AND kind = 'emergency_contact_alert'", (account_id,)).fetchone()
    assert row is not None, "the emergency contact was not told"
    assert (row["channel"], row["recipient"]) == ("sms", DAUGHTER["phone"])
    return str(row["link"])
