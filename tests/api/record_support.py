"""Helpers for record tests and scenarios: a lab result as a clinician enters it, and reads that
wait for the patient's record to show a write."""

from __future__ import annotations

from typing import Any

from tests.api.support import auth, read


def hba1c(value: float = 48, **content: Any) -> dict[str, Any]:
    """The content of an HbA1c result (above the usual range unless told otherwise)."""
    return {"observations": [{"name": "HbA1c", "value": value, "unit": "mmol/mol",
                              "reference_low": 20, "reference_high": 41}], **content}


def enter(client: Any, clinician: dict[str, str], patient_id: str, *, kind: str = "lab_result",
          code: str | None = "hba1c", title: str | None = "HbA1c (blood sugar over 3 months)",
          content: dict[str, Any] | None = None, release_now: bool = False,
          key: str | None = None, **more: Any) -> Any:
    body: dict[str, Any] = {"kind": kind, "content": content if content is not None else hba1c(),
                            "release_now": release_now, **more}
    if code is not None:
        body["code"] = code
    if title is not None:
        body["title"] = title
    headers = auth(clinician) | ({"Idempotency-Key": key} if key else {})
    return client.post(f"/v1/staff/patients/{patient_id}/records", headers=headers, json=body)


def entered(client: Any, clinician: dict[str, str], patient_id: str, **options: Any) -> Any:
    response = enter(client, clinician, patient_id, **options)
    assert response.status_code == 201, response.text
    return response


def release(client: Any, clinician: dict[str, str], record_id: str) -> Any:
    response = client.post(f"/v1/staff/records/{record_id}/release", headers=auth(clinician))
    assert response.status_code == 200, response.text
    return response


def note(client: Any, clinician: dict[str, str], record_id: str, words: str) -> Any:
    response = client.post(f"/v1/staff/records/{record_id}/notes", headers=auth(clinician),
                           json={"note": words})
    assert response.status_code == 200, response.text
    return response


def my_records(client: Any, person: dict[str, str], after: Any = None,
               query: str = "") -> list[dict[str, Any]]:
    response = read(client, person, f"/v1/me/records{query}", after=after)
    assert response.status_code == 200, response.text
    return response.json()["records"]


def settle(container: Any) -> None:
    """Brings the patient's record up to date now (after a write that returned no position,
    such as the release sweep)."""
    import psycopg

    runner = next(r for r in container.runners if r.projection.name == "patient_records")
    with psycopg.connect(container.database.url, autocommit=True) as conn:
        runner.catch_up(conn)


def outbox(container: Any, account_id: str) -> list[dict[str, Any]]:
    """The messages planned for an account that say something new is in its record."""
    with container.identity.factory.datastore.get_connection() as conn:
        return conn.execute("SELECT kind, payload::text AS payload FROM carebridge.outbox"
                            " WHERE account_id = %s AND kind LIKE %s ORDER BY created_at",
                            (account_id, "%_available")).fetchall()
