"""A small schemathesis run over every operation of the OpenAPI document (bench.fuzz in
miniature), so that a schema break or a server error in any operation fails CI; and the bugs the
full fuzzer found, each pinned by a test of its own."""

from __future__ import annotations

from typing import Any

import pytest
import requests
import schemathesis
from schemathesis.transport.requests import REQUESTS_TRANSPORT

from bench.fuzz import fuzz
from bench.fuzz_seed import seed
from tests.api.support import auth

BASE_URL = "http://testserver.local"
ROLES = ["patient", "clinic_admin", "anonymous"]
EXAMPLES = 2  # per operation and role: a smoke test; `uv run python -m bench.fuzz` goes deep


def through_test_client(client: Any) -> Any:
    """Sends a schemathesis case through Litestar's test client, as the wire would carry it."""

    def send(case: Any, headers: dict[str, str]) -> Any:
        prepared = requests.Request(**REQUESTS_TRANSPORT.serialize_case(
            case, base_url=BASE_URL, headers=headers)).prepare()
        return client.request(prepared.method, prepared.url, headers=dict(prepared.headers),
                              content=prepared.body)

    return send


def test_every_operation_answers_as_documented(client: Any, container: Any) -> None:
    world = seed(container, client.app.state.tokens, client, client.app.state.clock)
    assert world.failed_seeds == []
    config = schemathesis.Config.from_dict({"generation": {"with-security-parameters": False}})
    schema = schemathesis.openapi.from_dict(client.get("/schema/openapi.json").json(),
                                            config=config)
    tally, operations = fuzz(schema, world, ROLES, EXAMPLES, seconds=600, seed_value=2026,
                             send=through_test_client(client))
    assert operations > 200
    assert tally.pairs_cut == 0 and tally.errors == []
    assert tally.by_status_class.get("5xx", 0) == 0
    assert tally.failures == [], "\n".join(
        f"{f['operation']} as {f['role']}: {f['status']} {f['checks']}\n  {f['reproduce']}"
        for f in tally.failures)


# ---- what the full fuzzer found ---------------------------------------------------------------

def test_a_body_field_named_like_a_dependency_is_reported_as_bad_input(
        client: Any, staff_member: Any) -> None:
    """`identifiers` was also the name of a dependency, so Litestar took a bad value there for
    a broken dependency: a 500 instead of a 400."""
    admin = staff_member("clinic_admin")
    response = client.post("/v1/admin/identifier-matches", headers=auth(admin), json={
        "system": "riverside-emis", "identifiers": -2330, "family_name": "Lovelace",
        "date_of_birth": "1958-12-10"})
    assert response.status_code == 400, response.text
    assert response.json()["errors"] == [{"field": "identifiers", "message": "must be an object"}]


@pytest.mark.parametrize("code", ["١٢٣٤٥٦", "12345é", "\U000728c1"])
def test_a_second_factor_code_in_any_script_is_refused_not_a_server_error(
        client: Any, sign_up: Any, code: str) -> None:
    patient = sign_up()
    assert client.post("/v1/me/second-factor/totp", headers=auth(patient)).status_code == 201
    response = client.post("/v1/me/second-factor/totp/confirm", headers=auth(patient),
                           json={"code": code})
    assert 400 <= response.status_code < 500, response.text
    assert response.headers["content-type"].startswith("application/problem+json")


def test_the_clinic_cancelling_an_appointment_the_patient_cancelled_is_answered(
        client: Any, container: Any, staff_member: Any, sign_up: Any) -> None:
    """A cancel that finds the appointment already cancelled changes nothing and says so; it
    used to fail building the answer (a 500)."""
    from tests.api.visits_support import MONDAY_NINE, book, open_riverside

    riverside = open_riverside(container, staff_member)
    patient = sign_up()
    appointment_id = book(client, patient, riverside["doctor"], MONDAY_NINE).json()["appointment_id"]
    cancelled = client.post(f"/v1/appointments/{appointment_id}/cancel", headers=auth(patient),
                            json={"reason_code": "feeling_better"})
    assert cancelled.status_code == 200, cancelled.text
    again = client.post(f"/v1/staff/appointments/{appointment_id}/cancel",
                        headers=auth(staff_member("reception")),
                        json={"reason_code": "clinician_unavailable"})
    assert again.status_code == 200, again.text
    assert again.json()["status"] == "cancelled"


def test_republishing_the_same_consent_text_is_documented(client: Any) -> None:
    """It answers 200 (nothing changed) where a new version answers 201: both are in the
    document."""
    responses = client.get("/schema/openapi.json").json()["paths"][
        "/v1/staff/consent-texts/{consent_type}"]["post"]["responses"]
    assert {"200", "201"} <= set(responses)


def test_calendar_files_are_text_calendar_once(client: Any) -> None:
    operation = client.get("/schema/openapi.json").json()["paths"][
        "/v1/appointments/{appointment_id}/calendar.ics"]["get"]
    assert list(operation["responses"]["200"]["content"]) == ["text/calendar"]



def test_no_body_field_shares_its_name_with_a_dependency(client: Any) -> None:
    """Litestar reads a bad value in such a field as a broken dependency (a 500): keep the names
    apart. (`identifiers` was both.)"""
    import msgspec

    from api.validation import _struct_of

    clashes = []
    for route in client.app.routes:
        for handler in getattr(route, "route_handlers", []):
            body = handler.parsed_fn_signature.parameters.get("data")
            struct = _struct_of(body.annotation) if body is not None else None
            if struct is None:
                continue
            fields = {f.encode_name for f in msgspec.structs.fields(struct)}
            clashes += [f"{route.path}: {name}"
                        for name in sorted(fields & set(handler.resolve_dependencies()))]
    assert clashes == []


@pytest.mark.parametrize("ends_at", ["0001-01-01T00:01:01+01:00", "9999-12-31T23:59:59-01:00"])
def test_a_date_that_leaves_the_calendar_in_utc_is_bad_input(
        client: Any, staff_member: Any, sign_up: Any, ends_at: str) -> None:
    manager, nurse, patient = staff_member("care_manager"), staff_member("nurse"), sign_up()
    response = client.post(f"/v1/staff/patients/{patient['account_id']}/care-team",
                           headers=auth(manager), json={
                               "clinician_id": nurse["account_id"], "clinic_id": "riverside",
                               "basis": "assignment", "ends_at": ends_at})
    assert response.status_code == 400, response.text
    assert response.json()["type"].endswith("/out-of-range")


def test_a_limit_in_other_digits_is_bad_input(client: Any, sign_up: Any) -> None:
    """'³' is a digit to str.isdigit() but not to int(): it was a 500."""
    response = client.get("/v1/availability", headers=auth(sign_up()),
                          params={"consultation_type_id": "gp-in-person", "limit": "³"})
    assert response.status_code == 422, response.text
    assert any(e["field"] == "limit" for e in response.json()["errors"])
