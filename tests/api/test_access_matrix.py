"""Who may call what: every endpoint in the OpenAPI schema against every kind of caller.

The table is explicit on purpose. A new endpoint fails `test_every_endpoint_has_a_row` until
someone decides, row by row, who may call it.
"""

from __future__ import annotations

import itertools
from typing import Any
from uuid import UUID

import pytest

from tests.api.support import CURRENT_VERSION, PASSWORD, assert_problem, auth, give

OK, SIGN_IN, DENY, REFUSED_INPUT = "2xx", 401, 403, 422
CODES = {"Y": OK, "A": SIGN_IN, "N": DENY, "V": REFUSED_INPUT}
STAFF = ("doctor", "nurse", "reception", "prescription_coordinator", "care_manager", "support",
         "clinic_admin", "auditor")
CALLERS = ("anonymous", "patient_own", "patient_other", *STAFF)

# Y: allowed (2xx)   A: must sign in first (401)   N: denied (403)
# V: allowed, and the deliberately wrong input is refused (422)
# patient_own is Ada, whose id fills {patient_id}; patient_other is Bob, another patient.
#                                                       anon own oth doc nur rec pre car sup adm aud
MATRIX: dict[tuple[str, str], str] = {
    ("GET", "/health/live"):                             "Y   Y   Y   Y   Y   Y   Y   Y   Y   Y   Y",
    ("GET", "/health/ready"):                            "Y   Y   Y   Y   Y   Y   Y   Y   Y   Y   Y",
    ("POST", "/v1/auth/register"):                       "Y   Y   Y   Y   Y   Y   Y   Y   Y   Y   Y",
    ("POST", "/v1/auth/login"):                          "Y   Y   Y   Y   Y   Y   Y   Y   Y   Y   Y",
    ("POST", "/v1/auth/refresh"):                        "Y   Y   Y   Y   Y   Y   Y   Y   Y   Y   Y",
    ("POST", "/v1/auth/logout"):                         "A   Y   Y   Y   Y   Y   Y   Y   Y   Y   Y",
    ("GET", "/v1/me/sessions"):                          "A   Y   Y   Y   Y   Y   Y   Y   Y   Y   Y",
    ("POST", "/v1/me/sessions/sign-out-everywhere"):     "A   Y   Y   Y   Y   Y   Y   Y   Y   Y   Y",
    ("GET", "/v1/me"):                                   "A   Y   Y   Y   Y   Y   Y   Y   Y   Y   Y",
    ("GET", "/v1/me/security-events"):                   "A   Y   Y   Y   Y   Y   Y   Y   Y   Y   Y",
    ("POST", "/v1/auth/second-factor"):                  "A   A   A   A   A   A   A   A   A   A   A",
    ("POST", "/v1/me/second-factor/totp"):               "A   Y   Y   Y   Y   Y   Y   Y   Y   Y   Y",
    ("POST", "/v1/me/second-factor/totp/confirm"):       "A   V   V   V   V   V   V   V   V   V   V",
    ("GET", "/v1/consent-texts/{consent_type}"):         "A   Y   Y   Y   Y   Y   Y   Y   Y   Y   Y",
    ("GET", "/v1/me/consents"):                          "A   Y   Y   N   N   N   N   N   N   N   N",
    ("POST", "/v1/me/consents"):                         "A   Y   Y   N   N   N   N   N   N   N   N",
    ("GET", "/v1/me/consents/history"):                  "A   Y   Y   N   N   N   N   N   N   N   N",
    ("POST", "/v1/me/consents/{consent_type}/withdraw"): "A   Y   Y   N   N   N   N   N   N   N   N",
    ("GET", "/v1/staff/patients/{patient_id}/consents"): "A   N   N   Y   Y   N   Y   Y   N   Y   N",
    ("POST", "/v1/staff/consent-texts/{consent_type}"):  "A   N   N   N   N   N   N   N   N   Y   N",
}
METHODS = ("get", "put", "post", "patch", "delete", "head", "options", "trace")


def schema_operations(client: Any) -> set[tuple[str, str]]:
    return {(method.upper(), path)
            for path, item in (client.app.openapi_schema.paths or {}).items()
            for method in METHODS if getattr(item, method, None) is not None}


# Rows whose call ends sessions run last, each on a session of its own, so that every other
# row uses the caller's standing session.
ENDS_SESSION = {("POST", "/v1/auth/logout"), ("POST", "/v1/me/sessions/sign-out-everywhere")}
STAFF_PASSWORD = "staff passphrase 2026"  # the `staff_member` fixture's


def log_in(client: Any, email: str, password: str) -> dict[str, Any]:
    response = client.post("/v1/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    return response.json()


class Requests:
    """A valid request for each endpoint, so that only the caller decides the answer."""

    def __init__(self, client: Any, login_email: str, patient_id: str) -> None:
        self.client, self.login_email, self.patient_id = client, login_email, patient_id
        self.serial = itertools.count(1)

    def path(self, template: str) -> str:
        consent_type = "data_sharing" if "/staff/consent-texts/" in template else "telemedicine"
        return template.format(consent_type=consent_type, patient_id=self.patient_id)

    def body(self, method: str, template: str) -> dict[str, Any] | None:
        if method != "POST":
            return None
        n = next(self.serial)
        if template == "/v1/auth/refresh":
            return {"refresh_token": log_in(self.client, self.login_email, PASSWORD)["refresh_token"]}
        return {
            "/v1/auth/register": {"email": f"new.{n}@patients.test", "password": PASSWORD,
                                  "given_name": "New", "family_name": "Patient",
                                  "date_of_birth": "1980-01-01"},
            "/v1/auth/login": {"email": self.login_email, "password": PASSWORD},
            # A made-up challenge: refused whoever sends it.
            "/v1/auth/second-factor": {"challenge_token": "made-up", "code": "123456"},
            # Never a valid authenticator code (not digits): the caller gets past access control
            # to the input check.
            "/v1/me/second-factor/totp/confirm": {"code": "abcdef"},
            "/v1/me/consents": {"consent_type": "telemedicine", "text_version": CURRENT_VERSION},
            "/v1/me/consents/{consent_type}/withdraw": {"reason": None},
            "/v1/staff/consent-texts/{consent_type}": {
                "version": f"2027-{n:02d}", "text": "A new wording of the data sharing consent."},
        }.get(template, {})

    def headers(self, caller: dict[str, str], operation: tuple[str, str]) -> dict[str, str]:
        if not caller:
            return {}
        if operation in ENDS_SESSION:
            token = log_in(self.client, caller["email"], caller["password"])["access_token"]
            return {"Authorization": f"Bearer {token}"}
        return auth(caller)


@pytest.fixture
def callers(client, container, sign_up, staff_member) -> dict[str, dict[str, str]]:
    people = {"anonymous": {}, "patient_own": sign_up(), "patient_other": sign_up(given_name="Bob")}
    for patient in ("patient_own", "patient_other"):
        people[patient]["password"] = PASSWORD
        assert give(client, people[patient]).status_code == 201  # so that withdrawing is possible
    for role in STAFF:
        member = staff_member(role)
        email = container.identity.find_account(UUID(member["account_id"])).email
        people[role] = member | {"email": email, "password": STAFF_PASSWORD}
    return people


def status_class(status: int) -> Any:
    return OK if 200 <= status < 300 else status


def test_every_endpoint_has_a_row(client):
    operations = schema_operations(client)
    assert operations, "the OpenAPI schema lists no endpoints"
    without_a_row = sorted(operations - MATRIX.keys())
    assert not without_a_row, f"decide who may call these, and add their rows: {without_a_row}"
    stale = sorted(MATRIX.keys() - operations)
    assert not stale, f"rows for endpoints that no longer exist: {stale}"


def test_every_caller_gets_exactly_the_access_the_table_gives(client, callers, sign_up):
    requests = Requests(client, login_email=sign_up()["email"],
                        patient_id=callers["patient_own"]["account_id"])
    unexpected_allows, other_differences = [], []
    for (method, template), row in sorted(MATRIX.items(), key=lambda item: item[0] in ENDS_SESSION):
        codes = row.split()
        assert len(codes) == len(CALLERS), f"{method} {template}: one column per caller"
        for caller, expected in zip(CALLERS, map(CODES.__getitem__, codes), strict=True):
            headers = requests.headers(callers[caller], (method, template))
            response = client.request(method, requests.path(template), headers=headers,
                                      json=requests.body(method, template))
            actual = status_class(response.status_code)
            if actual != OK:
                assert_problem(response, response.status_code)
            if actual == expected:
                continue
            line = f"{caller:>24} {method} {template}: expected {expected}, got {response.status_code}"
            (unexpected_allows if actual == OK else other_differences).append(line)
    assert not unexpected_allows + other_differences, (
        "unexpected allows:\n" + "\n".join(unexpected_allows)
        + "\nother differences:\n" + "\n".join(other_differences))
