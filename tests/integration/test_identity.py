"""Identity on the real store: one account per email address, and failed sign-ins on record."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from typing import Any

import pytest

from commands.identity import EmailAlreadyRegistered, NewAccount
from commands.sign_in import Device
from domain.errors import InvalidInput, Unauthenticated
from domain.identity import Account, email_claim_id

from .support import MONDAY, minutes_after_monday, rows

pytestmark = pytest.mark.integration

PASSPHRASE = "a long enough passphrase"


def ada(email: str = "ada@patients.test", password: str = PASSPHRASE) -> NewAccount:
    return NewAccount(email=email, password=password, given_name="Ada", family_name="Lovelace",
                      date_of_birth=date(1958, 12, 10))


def registered(container: Any, details: NewAccount | None = None) -> Account:
    outcome = container.identity.register_patient(details or ada(), at=MONDAY)
    account: Account = container.identity.account(outcome.result["account_id"])
    return account


def event_names(container: Any, account: Account) -> list[str]:
    return [type(e).__name__ for e in container.identity.events.get(account.id)]


def test_a_registered_patient_signs_in_with_their_password(container):
    account = registered(container)

    done = container.sign_in.password("ADA@patients.test", PASSPHRASE, Device("d1", "Phone"),
                                      at=minutes_after_monday(5), source=None)

    signed_in = container.identity.account(account.id)
    assert done.account.id == account.id
    assert signed_in.last_sign_in_at == minutes_after_monday(5)
    assert event_names(container, account) == ["Created", "SignedIn", "SignedInOnNewDevice"]
    assert PASSPHRASE not in signed_in.password_hash


def test_registering_the_same_email_address_twice_is_refused(container):
    registered(container)

    with pytest.raises(EmailAlreadyRegistered) as refusal:
        registered(container, ada(email="  Ada@Patients.TEST "))

    assert "Sign in, or reset your password" in refusal.value.detail
    claim = container.identity.repository.get(email_claim_id("ada@patients.test"))
    assert claim.version == 1


def test_two_simultaneous_registrations_of_one_address_make_one_account(container, database):
    start = threading.Barrier(4)

    def register(_: int) -> str:
        start.wait(timeout=30)
        try:
            registered(container, ada())
        except EmailAlreadyRegistered:
            return "refused"
        return "registered"

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = sorted(pool.map(register, range(4)))

    assert results == ["refused"] * 3 + ["registered"]
    accounts = rows(database.url, "SELECT count(*) FROM eventstore.identity_events WHERE topic = %s",
                    (Account.Created.TOPIC,))  # type: ignore[attr-defined]
    assert accounts == [(1,)]


def test_a_wrong_password_is_refused_and_recorded_as_a_failed_sign_in(container):
    account = registered(container)

    with pytest.raises(Unauthenticated) as refusal:
        container.identity.authenticate("ada@patients.test", "not the passphrase",
                                        at=minutes_after_monday(5))

    assert refusal.value.detail.startswith("The email address or password is not correct")
    assert event_names(container, account) == ["Created", "SignInFailed"]
    assert container.identity.account(account.id).failed_sign_ins == 1


def test_an_unknown_address_is_refused_in_the_same_words_as_a_wrong_password(container):
    registered(container)
    with pytest.raises(Unauthenticated) as wrong_password:
        container.identity.authenticate("ada@patients.test", "not the passphrase", at=MONDAY)

    with pytest.raises(Unauthenticated) as unknown_address:
        container.identity.authenticate("nobody@patients.test", PASSPHRASE, at=MONDAY)

    assert unknown_address.value.detail == wrong_password.value.detail
    assert unknown_address.value.code == wrong_password.value.code


def test_a_registration_with_several_problems_names_every_one(container):
    details = NewAccount(email="not-an-email", password="short", given_name=" ",
                         family_name="Lovelace", date_of_birth=date(2030, 1, 1))

    with pytest.raises(InvalidInput) as refusal:
        container.identity.register_patient(details, at=MONDAY)

    assert {e.field for e in refusal.value.errors} == {
        "given_name", "date_of_birth", "email", "password"}


def test_one_address_guessing_at_many_accounts_is_paused_for_every_account(container):
    registered(container)
    guesser, neighbour = "203.0.113.9", "198.51.100.7"
    for attempt in range(20):
        with pytest.raises(Unauthenticated):
            container.identity.authenticate(f"someone{attempt}@patients.test", "wrong guess",
                                            at=minutes_after_monday(1), source=guesser)

    with pytest.raises(Unauthenticated) as paused:
        container.identity.authenticate("ada@patients.test", PASSPHRASE,
                                        at=minutes_after_monday(2), source=guesser)
    assert paused.value.detail.startswith("The email address or password is not correct")
    assert container.identity.authenticate("ada@patients.test", PASSPHRASE,
                                           at=minutes_after_monday(2), source=neighbour)
    assert container.identity.authenticate("ada@patients.test", PASSPHRASE,
                                           at=minutes_after_monday(18), source=guesser)


def test_a_few_mistakes_from_one_address_do_not_pause_it(container):
    registered(container)
    for _ in range(3):
        with pytest.raises(Unauthenticated):
            container.identity.authenticate("ada@patients.test", "not my passphrase",
                                            at=minutes_after_monday(1), source="192.0.2.1")
    done = container.sign_in.password("ada@patients.test", PASSPHRASE, Device("d1", "Phone"),
                                      at=minutes_after_monday(2), source="192.0.2.1")
    assert done.account.failed_sign_ins == 0
