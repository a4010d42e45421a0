"""Identity: accounts, the email claim, and the checks on what a person registers with."""

from __future__ import annotations

from datetime import date
from uuid import UUID

import pytest

from domain.errors import InvalidInput, Rejections
from domain.identity import (
    MAX_PASSWORD_LENGTH,
    MIN_PASSWORD_LENGTH,
    Account,
    EmailClaim,
    Role,
    check_birth_date,
    check_email,
    check_password,
    email_claim_id,
)

from .support import EVENING, MORNING, NOON, new_events

COMMON = frozenset({"correcthorsebatterystaple", "password123456"})
TODAY = date(2026, 11, 23)


def password_problems(password: str, email: str = "margaret@example.com") -> list[str]:
    errors = Rejections()
    check_password(password, email, COMMON, errors)
    return [e.message for e in errors.errors]


def email_problems(email: str) -> list[str]:
    errors = Rejections()
    check_email(email, errors)
    return [e.field for e in errors.errors]


def birth_date_problems(born: date) -> list[str]:
    errors = Rejections()
    check_birth_date(born, TODAY, errors)
    return [e.message for e in errors.errors]


def registered_account(email: str = "Ada.Lovelace@Example.com ") -> Account:
    account = Account(email=email, role=Role.PATIENT.value, given_name="Ada",
                      family_name="Lovelace", password_hash="$argon2id$first", clinic_ids=[],
                      date_of_birth=date(1958, 12, 10), mobile_phone=None, by="self", at=MORNING)
    account.collect_events()
    return account


@pytest.mark.parametrize("password", [
    "tea at four, then biscuits",
    "Twelve chars",  # exactly the minimum
    "abcd" * 32,  # exactly the maximum
])
def test_a_long_uncommon_password_is_accepted(password):
    assert password_problems(password) == []


@pytest.mark.parametrize(("password", "problem"), [
    ("eleven char", f"Use at least {MIN_PASSWORD_LENGTH} characters."),
    ("abcd" * 32 + "e", f"Use at most {MAX_PASSWORD_LENGTH} characters."),
    ("correcthorsebatterystaple", "This password is too common or too simple; choose another."),
    ("CorrectHorseBatteryStaple", "This password is too common or too simple; choose another."),
    ("abababababababab", "This password is too common or too simple; choose another."),
    ("Margaret loves tea", "Do not use your email address in your password."),
])
def test_a_weak_password_is_refused_with_one_reason(password, problem):
    assert password_problems(password) == [problem]


def test_a_short_email_name_inside_a_password_is_not_a_problem():
    assert password_problems("ada writes programs", email="ada@example.com") == []


@pytest.mark.parametrize("email", ["name@example.com", "  name@example.com  ",
                                   "first.last+clinic@mail.example.co.uk"])
def test_a_well_formed_email_address_is_accepted(email):
    assert email_problems(email) == []


@pytest.mark.parametrize("email", ["name", "name@example", "@example.com", "a b@example.com",
                                   "name@@example.com", "x" * 250 + "@example.com"])
def test_a_malformed_email_address_is_refused(email):
    assert email_problems(email) == ["email"]


def test_a_birth_date_today_or_130_years_ago_is_accepted():
    assert birth_date_problems(TODAY) == []
    assert birth_date_problems(date(1896, 1, 1)) == []


@pytest.mark.parametrize(("born", "problem"), [
    (date(2026, 11, 24), "The date of birth cannot be in the future."),
    (date(1895, 12, 31), "Check the year of birth."),
])
def test_an_impossible_birth_date_is_refused(born, problem):
    assert birth_date_problems(born) == [problem]


def test_every_registration_problem_is_reported_at_once():
    errors = Rejections()
    check_email("not an email", errors)
    check_password("short", "not an email", COMMON, errors)
    check_birth_date(date(2030, 1, 1), TODAY, errors)

    with pytest.raises(InvalidInput) as refusal:
        errors.raise_if_any()

    assert [e.field for e in refusal.value.errors] == ["email", "password", "date_of_birth"]


def test_a_registered_account_keeps_its_email_normalised():
    account = registered_account("  Ada.Lovelace@Example.COM ")

    assert account.email == "ada.lovelace@example.com"
    assert (account.display_name, account.is_staff, account.failed_sign_ins) == (
        "Ada Lovelace", False, 0)


def test_failed_sign_ins_are_counted_and_a_sign_in_resets_the_count():
    account = registered_account()

    account.record_failed_sign_in(at=MORNING)
    account.record_failed_sign_in(at=NOON)
    assert account.failed_sign_ins == 2
    account.record_sign_in(by=f"patient:{account.id}", at=EVENING)

    assert new_events(account) == ["SignInFailed", "SignInFailed", "SignedIn"]
    assert account.pending_events[0].by == "anonymous"
    assert (account.failed_sign_ins, account.last_sign_in_at) == (0, EVENING)


def test_rehashing_with_the_same_hash_records_nothing():
    account = registered_account()

    account.rehash_password("$argon2id$first", by="system", at=NOON)
    assert new_events(account) == []
    account.rehash_password("$argon2id$stronger", by="system", at=NOON)

    assert new_events(account) == ["PasswordRehashed"]
    assert account.password_hash == "$argon2id$stronger"


def test_an_email_claim_is_the_same_stream_however_the_address_is_written():
    account_id = UUID("00000000-0000-4000-8000-0000000000a1")

    claim = EmailClaim.claim(" ADA@Example.com", account_id, by="self", at=MORNING)

    assert claim.id == email_claim_id("ada@example.com")
    assert claim.account_id == account_id
    assert new_events(claim) == ["Created"]
    assert email_claim_id("grace@example.com") != claim.id
