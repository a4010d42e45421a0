"""Care relationships, proxies and break-glass on a real PostgreSQL: the lookup table that every
access decision reads is right from the very next request, and a replay of the events
rebuilds it exactly."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any
from uuid import UUID

import psycopg
import pytest

from commands.care import ACCESS, lookup_statements
from commands.identity import NewAccount
from domain.access import Actor
from domain.care import CareBasis, ProxyKind, ProxyScope, ReviewOutcome
from domain.errors import ConcurrentChange
from domain.identity import Role

from .support import MONDAY, rows

pytestmark = pytest.mark.integration
REASON = "Found unresponsive at home; need allergies and current medicines."


def register(container: Any, name: str, born: date = date(1960, 5, 1)) -> Actor:
    outcome = container.identity.register_patient(NewAccount(
        f"{name.lower()}@patients.test", "a long enough passphrase", name, "Tester", born),
        at=MONDAY)
    return Actor(UUID(outcome.result["account_id"]), Role.PATIENT)


def staff(container: Any, role: Role, clinic: str = "riverside") -> Actor:
    outcome = container.identity.add_staff(NewAccount(
        f"{role.value}.{clinic}@clinic.test", "staff passphrase 2026", "Sam", "Staff"), role,
        [clinic], by="test", at=MONDAY)
    return Actor(UUID(outcome.result["account_id"]), role, frozenset({clinic}))


def scopes_of(container: Any, actor: Actor, patient: Actor, at=MONDAY) -> set[ProxyScope]:
    return set(container.care.relationship(actor, patient.account_id, at).proxy_scopes)


def proxy_for(container: Any, patient: Actor, proxy: Actor, scopes: list[ProxyScope],
              expires_on: date | None = None) -> UUID:
    email = container.identity.find_account(proxy.account_id).email
    offered = container.care.offer_proxy(patient, email, ProxyKind.FAMILY, scopes, expires_on,
                                         at=MONDAY)
    grant_id = UUID(offered.result["grant_id"])
    container.care.respond_to_proxy(proxy, grant_id, "accept", at=MONDAY)
    return grant_id


def test_a_revocation_holds_from_the_very_next_decision(container):
    grace, emma = register(container, "Grace"), register(container, "Emma")
    grant_id = proxy_for(container, grace, emma, [ProxyScope.APPOINTMENTS, ProxyScope.CONSENTS])
    assert scopes_of(container, emma, grace) == {ProxyScope.APPOINTMENTS, ProxyScope.CONSENTS}
    container.care.revoke_proxy(grace, grant_id, at=MONDAY)
    assert scopes_of(container, emma, grace) == set()


def test_an_offer_gives_nothing_until_accepted(container):
    grace, emma = register(container, "Grace"), register(container, "Emma")
    container.care.offer_proxy(grace, "emma@patients.test", ProxyKind.CARER,
                               [ProxyScope.RECORDS], None, at=MONDAY)
    assert scopes_of(container, emma, grace) == set()


def test_a_grant_expires_at_the_end_of_its_last_day(container):
    grace, emma = register(container, "Grace"), register(container, "Emma")
    proxy_for(container, grace, emma, [ProxyScope.APPOINTMENTS], expires_on=date(2026, 11, 30))
    last_moment = MONDAY.replace(day=30, hour=23, minute=59)
    assert scopes_of(container, emma, grace, at=last_moment) == {ProxyScope.APPOINTMENTS}
    assert scopes_of(container, emma, grace, at=last_moment + timedelta(minutes=1)) == set()


def test_parental_responsibility_ends_on_the_sixteenth_birthday(container):
    lily = register(container, "Lily", born=date(2014, 3, 9))
    priya, reception = register(container, "Priya"), staff(container, Role.RECEPTION)
    doctor = staff(container, Role.DOCTOR)
    container.care.join_through_appointment(lily.account_id, doctor.account_id, "riverside",
                                            "appt-1", MONDAY, MONDAY + timedelta(days=1),
                                            at=MONDAY)
    container.care.record_parental_responsibility(reception, lily.account_id, priya.account_id,
                                                  at=MONDAY)
    relationship = container.care.relationship(priya, lily.account_id, MONDAY)
    assert relationship.parent and relationship.proxy_scopes == frozenset(ProxyScope)
    birthday = MONDAY.replace(year=2030, month=3, day=9, hour=0)
    assert scopes_of(container, priya, lily, at=birthday - timedelta(seconds=1))
    assert scopes_of(container, priya, lily, at=birthday) == set()


def test_break_glass_lasts_the_configured_time(container):
    ada, doctor = register(container, "Ada"), staff(container, Role.DOCTOR)
    container.care.open_break_glass(doctor, ada.account_id, None, REASON, at=MONDAY)
    minutes = container.settings.break_glass_minutes
    assert container.care.relationship(
        doctor, ada.account_id, MONDAY + timedelta(minutes=minutes - 1)).break_glass
    assert not container.care.relationship(
        doctor, ada.account_id, MONDAY + timedelta(minutes=minutes)).break_glass


def test_the_reason_for_break_glass_is_not_in_the_lookup_table(container, database):
    ada, doctor = register(container, "Ada"), staff(container, Role.DOCTOR)
    container.care.open_break_glass(doctor, ada.account_id, None, REASON, at=MONDAY)
    assert REASON not in str(rows(database.url, f"SELECT * FROM {ACCESS}"))


def test_two_simultaneous_changes_of_one_grant_save_one(container):
    grace, emma = register(container, "Grace"), register(container, "Emma")
    grant_id = proxy_for(container, grace, emma, [ProxyScope.APPOINTMENTS])
    first = container.care.repository.get(grant_id)
    second = container.care.repository.get(grant_id)
    first.revoke(False, by=grace.ref, at=MONDAY)
    second.change_scopes(["records"], by=grace.ref, at=MONDAY)
    container.care.save_all(first, also=lookup_statements(first.pending_events))
    with pytest.raises(ConcurrentChange):
        container.care.save_all(second, also=lookup_statements(second.pending_events))
    assert scopes_of(container, emma, grace) == set()


def test_the_lookup_table_is_what_a_replay_of_the_events_makes(container, database):
    grace, emma, ada = (register(container, n) for n in ("Grace", "Emma", "Ada"))
    doctor, admin = staff(container, Role.DOCTOR), staff(container, Role.CLINIC_ADMIN)
    nurse = staff(container, Role.NURSE)
    kept = proxy_for(container, grace, emma, [ProxyScope.APPOINTMENTS])
    container.care.change_proxy_scopes(grace, kept, [ProxyScope.RECORDS], at=MONDAY)
    revoked = proxy_for(container, ada, emma, [ProxyScope.CONSENTS])
    container.care.revoke_proxy(ada, revoked, at=MONDAY)
    declined = container.care.offer_proxy(ada, "emma@patients.test", ProxyKind.CARER,
                                          [ProxyScope.DOCUMENTS], None, at=MONDAY)
    container.care.respond_to_proxy(emma, UUID(declined.result["grant_id"]), "decline", at=MONDAY)
    container.care.offer_proxy(ada, "nobody@patients.test", ProxyKind.CARER,
                               [ProxyScope.MESSAGING], None, at=MONDAY)
    care = container.care.add_to_care_team(admin, ada.account_id, nurse.account_id, "riverside",
                                           CareBasis.ASSIGNMENT, None, MONDAY + timedelta(days=9),
                                           at=MONDAY)
    container.care.end_care_relationship(admin, ada.account_id,
                                         UUID(care.result["relationship_id"]), "moved", at=MONDAY)
    container.care.join_through_appointment(ada.account_id, doctor.account_id, "riverside", "a-1",
                                            MONDAY, MONDAY + timedelta(days=2), at=MONDAY)
    container.care.join_through_appointment(ada.account_id, doctor.account_id, "riverside", "a-1",
                                            MONDAY, MONDAY + timedelta(days=5), at=MONDAY)
    access = container.care.open_break_glass(doctor, grace.account_id, None, REASON, at=MONDAY)
    access_id = UUID(access.result["access_id"])
    container.care.close_break_glass(doctor, access_id, at=MONDAY + timedelta(minutes=5))
    container.care.review_break_glass(admin, access_id, ReviewOutcome.APPROPRIATE, None,
                                      at=MONDAY + timedelta(hours=1))

    app = container.care
    events = [app.mapper.to_domain_event(n) for n in app.recorder.select_notifications(1, 10_000)]
    columns = ("aggregate_id, kind, patient_id, account_id, clinic_id, basis, scopes, state,"
               " starts_at, ends_at, ended_at, reviewed_at")
    with psycopg.connect(database.url) as conn:
        conn.execute(f"CREATE TEMPORARY TABLE replayed (LIKE {ACCESS} INCLUDING ALL)")
        for statement in lookup_statements(events, table="replayed"):
            conn.execute(statement.sql, statement.params)
        replayed = conn.execute(f"SELECT {columns} FROM replayed ORDER BY 1").fetchall()
        live = conn.execute(f"SELECT {columns} FROM {ACCESS} ORDER BY 1").fetchall()
    assert len(live) == 7
    assert replayed == live
