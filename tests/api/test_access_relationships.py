"""Who may act on one patient's care: every patient-scoped endpoint against every relationship.

The main matrix (test_access_matrix.py) asks every endpoint of callers with no relationship to
the patient. This one asks the patient-scoped endpoints of callers who have one: proxies with
and without the right scope or with a revoked grant, staff in the care team, staff at the
patient's clinic but outside the care team, staff of another clinic, and clinicians with
active or expired break-glass. The table is written out by hand; zero unexpected allows.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest

from commands.care import CareAccessApplication
from domain.care import ProxyKind, ProxyScope
from tests.api.care_support import REASON, authorise_proxy, in_care_team, open_break_glass
from tests.api.support import assert_problem, auth

OK = "2xx"
CODES = {"Y": OK, "A": 401, "N": 403, "V": 422, "C": 409, "F": 404}
CLINICAL = ("doctor", "nurse", "prescription_coordinator", "care_manager")
STAFF = ("doctor", "nurse", "reception", "prescription_coordinator", "care_manager", "support",
         "clinic_admin", "auditor")
CALLERS = (
    "anonymous", "self", "other_patient", "proxy_scoped", "proxy_unscoped", "proxy_revoked",
    *(f"team_{role}" for role in CLINICAL),
    *(f"clinic_{role}" for role in STAFF),
    *(f"far_{role}" for role in STAFF),
    "break_glass", "break_glass_expired",
)

# Y: allowed (2xx)  A: sign in first (401)  N: denied (403)  F: not found (404, the id is not
# theirs)  V: allowed, the deliberately wrong input refused (422)  C: allowed, refused by state
# (409). Columns, in groups separated by "|":
#   anonymous, Ada herself, Bob, Ada's proxy with the consents scope, her proxy with appointments
#     only, her proxy whose grant she revoked
#   in Ada's care team at riverside:   doctor nurse prescription_coordinator care_manager
#   at riverside, outside the team:    doc nur rec pre car sup adm aud
#   at hillside (another clinic):      doc nur rec pre car sup adm aud
#   a riverside doctor with active break-glass, one whose break-glass has expired
#
#                     patients        team      riverside          hillside       glass
ROWS: dict[str, str] = {
    "staff consents":     "A N N N N N | Y Y Y Y | N N N N N N Y N | N N N N N N N N | Y N",
    "staff profile":      "A N N N N N | Y Y Y Y | N N Y N N N Y N | N N N N N N N N | Y N",
    "care team":          "A N N N N N | Y Y Y Y | N N Y N Y N Y N | N N N N N N N N | Y N",
    "assign":             "A N N N N N | N N N Y | N N N N Y N Y N | N N N N N N N N | N N",
    "refer":              "A N N N N N | Y N N Y | N N N N Y N Y N | N N N N N N N N | N N",
    "end relationship":   "A N N N N N | N N N Y | N N N N Y N Y N | N N N N N N N N | N N",
    "parental":           "A N N N N N | N N N N | N N C N N N C N | N N N N N N N N | N N",
    "open break-glass":   "A N N N N N | V V N N | V V N N N N N N | V V N N N N N N | V V",
    "review break-glass": "A N N N N N | N N N N | N N N N N N Y Y | N N N N N N N Y | N N",
    "close break-glass":  "A N N N N N | N N N N | N N N N N N N N | N N N N N N N N | N Y",
    "break-glass list":   "A N N N N N | N N N N | N N N N N N Y Y | N N N N N N Y Y | N N",
    "patient consents":   "A Y N Y N N | N N N N | N N N N N N N N | N N N N N N N N | N N",
    "revoke a grant":     "A Y F F F F | N N N N | N N N N N N N N | N N N N N N N N | N N",
}


class World:
    """Ada, everyone related to her, and fresh resources for the requests that change things."""

    def __init__(self, client: Any, container: Any, clock: Any, sign_up: Callable[..., Any],
                 staff_member: Callable[..., Any]) -> None:
        self.client, self.container, self.clock = client, container, clock
        self.serial = itertools.count(1)
        ada = sign_up(given_name="Ada")
        self.ada_id = ada["account_id"]
        people: dict[str, dict[str, str]] = {"anonymous": {}, "self": ada,
                                             "other_patient": sign_up(given_name="Bob")}
        for name in ("proxy_scoped", "proxy_unscoped", "proxy_revoked"):
            people[name] = sign_up(given_name="Proxy")
        authorise_proxy(client, ada, people["proxy_scoped"], ["appointments", "consents"])
        authorise_proxy(client, ada, people["proxy_unscoped"], ["appointments"])
        revoked = authorise_proxy(client, ada, people["proxy_revoked"], ["consents"])
        assert client.post(f"/v1/me/proxies/{revoked}/revoke", headers=auth(ada)).is_success
        for role in CLINICAL:
            people[f"team_{role}"] = staff_member(role)
            in_care_team(container, clock, self.ada_id, people[f"team_{role}"]["account_id"])
        for role in STAFF:
            people[f"clinic_{role}"] = staff_member(role)
            people[f"far_{role}"] = staff_member(role, clinics=("hillside",))
        people["break_glass"] = staff_member("doctor")
        opened = open_break_glass(client, people["break_glass"], self.ada_id)
        assert opened.status_code == 201, opened.text
        self.access_id = opened.json()["access_id"]
        people["break_glass_expired"] = staff_member("doctor")
        self.expired_access_id = self.care.open_break_glass(
            self.actor(people["break_glass_expired"]), UUID(self.ada_id), None, REASON,
            at=clock.now - timedelta(hours=2)).result["access_id"]
        self.spare_nurse = staff_member("nurse")["account_id"]  # whom the assignments add
        self.people = people

    @property
    def care(self) -> CareAccessApplication:
        return self.container.care

    def actor(self, person: dict[str, str]) -> Any:
        return self.container.identity.actor(UUID(person["account_id"]))

    def fresh_relationship(self) -> str:
        in_care = self.care.join_through_appointment(
            UUID(self.ada_id), UUID(self.spare_nurse), "riverside", f"appt-{uuid4().hex}",
            starts_at=self.clock.now, ends_at=self.clock.now + timedelta(days=3),
            at=self.clock.now)
        return in_care.result["relationship_id"]

    def fresh_grant(self) -> str:
        offered = self.care.offer_proxy(
            self.actor(self.people["self"]), f"helper.{uuid4().hex[:8]}@patients.test",
            ProxyKind.CARER, [ProxyScope.APPOINTMENTS], None, at=self.clock.now)
        return offered.result["grant_id"]

    def request(self, row: str) -> tuple[str, str, dict[str, Any] | None]:
        """A fresh, otherwise valid request for the row: only the caller decides the answer."""
        patient = f"/v1/staff/patients/{self.ada_id}"
        ends_at = (self.clock.now + timedelta(days=7)).isoformat()
        assign = {"clinician_id": self.spare_nurse, "clinic_id": "riverside", "ends_at": ends_at}
        return {
            "staff consents": lambda: ("GET", f"{patient}/consents", None),
            "staff profile": lambda: ("GET", f"{patient}/profile", None),
            "care team": lambda: ("GET", f"{patient}/care-team", None),
            "assign": lambda: ("POST", f"{patient}/care-team", assign | {"basis": "assignment"}),
            "refer": lambda: ("POST", f"{patient}/care-team", assign | {
                "basis": "referral", "source_ref": f"letter-{next(self.serial)}"}),
            "end relationship": lambda: (
                "POST", f"{patient}/care-team/{self.fresh_relationship()}/end",
                {"reason": "no longer needed"}),
            # Ada is not a child: staff who may record it are told so (409).
            "parental": lambda: ("POST", f"{patient}/parental-responsibility",
                                 {"parent_account_id": self.people["proxy_scoped"]["account_id"]}),
            # Too short a reason: nothing is opened, so no caller's access changes.
            "open break-glass": lambda: ("POST", f"{patient}/break-glass", {"reason": "urgent"}),
            "review break-glass": lambda: (
                "POST", f"/v1/staff/break-glass/{self.access_id}/review",
                {"outcome": "appropriate"}),
            "close break-glass": lambda: (
                "POST", f"/v1/staff/break-glass/{self.expired_access_id}/close", None),
            "break-glass list": lambda: ("GET", "/v1/staff/break-glass", None),
            "patient consents": lambda: ("GET", f"/v1/patients/{self.ada_id}/consents", None),
            "revoke a grant": lambda: ("POST", f"/v1/me/proxies/{self.fresh_grant()}/revoke",
                                       None),
        }[row]()


@pytest.fixture
def world(client, container, clock, sign_up, staff_member) -> World:
    return World(client, container, clock, sign_up, staff_member)


def test_the_table_has_one_column_per_caller():
    for row, codes in ROWS.items():
        assert len(codes.replace("|", " ").split()) == len(CALLERS), row


def test_every_relationship_gets_exactly_the_access_the_table_gives(client, world):
    unexpected_allows, other_differences = [], []
    for row, codes in ROWS.items():
        expected_codes = [CODES[c] for c in codes.replace("|", " ").split()]
        for caller, expected in zip(CALLERS, expected_codes, strict=True):
            method, path, body = world.request(row)
            person = world.people[caller]
            response = client.request(method, path, headers=auth(person) if person else {},
                                      json=body)
            actual = OK if response.is_success else response.status_code
            if actual != OK:
                assert_problem(response, response.status_code)
            if actual == expected:
                continue
            line = f"{caller:>32} {row}: expected {expected}, got {response.status_code}"
            (unexpected_allows if actual == OK else other_differences).append(line)
    assert not unexpected_allows + other_differences, (
        "unexpected allows:\n" + "\n".join(unexpected_allows)
        + "\nother differences:\n" + "\n".join(other_differences))


def test_a_proxys_access_follows_the_grant_from_one_request_to_the_next(client, world):
    ada, proxy = world.people["self"], world.people["proxy_unscoped"]
    path = f"/v1/patients/{world.ada_id}/consents"
    assert_problem(client.get(path, headers=auth(proxy)), 403, "forbidden")
    grants = client.get("/v1/me/proxies", headers=auth(ada)).json()
    grant = next(g for g in grants if g["scopes"] == ["appointments"] and g["status"] == "active")
    changed = client.post(f"/v1/me/proxies/{grant['grant_id']}/scopes", headers=auth(ada),
                          json={"scopes": ["appointments", "consents"]})
    assert changed.status_code == 200, changed.text
    assert client.get(path, headers=auth(proxy)).status_code == 200
    client.post(f"/v1/me/proxies/{grant['grant_id']}/revoke", headers=auth(ada))
    assert_problem(client.get(path, headers=auth(proxy)), 403, "forbidden")
