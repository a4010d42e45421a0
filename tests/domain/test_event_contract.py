"""The storage contract of every event: explicit stable topics, and who acted and when."""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from typing import Any

import pytest

import domain
from domain.aggregate import CareAggregate
from domain.consents import Consent, ConsentText, ConsentType, text_hash
from domain.identity import LOCKOUT_THRESHOLD, Account, EmailClaim, Role
from domain.sessions import Session, token_hash

from .support import (
    ADA,
    ADA_REF,
    ADMIN_REF,
    MORNING,
    NOVEMBER,
    NOVEMBER_TEXT,
    given_consent,
    new_events,
    published_text,
    telemedicine_consent,
)


def aggregate_classes() -> list[type[CareAggregate]]:
    """Every concrete aggregate in the domain package (imports each module to find them)."""
    for module in pkgutil.walk_packages(domain.__path__, "domain."):
        importlib.import_module(module.name)

    def descendants(cls: type[CareAggregate]) -> Iterator[type[CareAggregate]]:
        for sub in cls.__subclasses__():
            yield sub
            yield from descendants(sub)

    return [cls for cls in descendants(CareAggregate) if "TOPIC" in cls.__dict__]


def event_classes() -> list[type[Any]]:
    return [event for cls in aggregate_classes() for name, event in vars(cls).items()
            if isinstance(event, type) and issubclass(event, CareAggregate.Event)
            and name != "Event"]


def all_kinds_of_event() -> list[Any]:
    """One scenario that records at least one event of every kind, each an hour apart."""
    hours = iter(range(100))

    def next_hour() -> Any:
        return MORNING + timedelta(hours=next(hours))

    document = ConsentText(consent_type=ConsentType.TELEMEDICINE.value, by=ADMIN_REF,
                           at=next_hour())
    document.publish(NOVEMBER, NOVEMBER_TEXT, by=ADMIN_REF, at=next_hour())
    consent = Consent(patient_id=ADA, consent_type=ConsentType.TELEMEDICINE.value, by=ADA_REF,
                      at=next_hour())
    consent.give(NOVEMBER, text_hash(NOVEMBER_TEXT), NOVEMBER, by=ADA_REF, at=next_hour())
    consent.withdraw("moving away", by=ADA_REF, at=next_hour())
    account = Account(email="ada@example.com", role=Role.PATIENT.value, given_name="Ada",
                      family_name="Lovelace", password_hash="$argon2id$h", clinic_ids=[],
                      date_of_birth=date(1958, 12, 10), mobile_phone=None, by="self",
                      at=next_hour())
    for _ in range(LOCKOUT_THRESHOLD):  # the last failure pauses sign-in
        account.record_failed_sign_in(at=next_hour())
    account.record_sign_in(by=f"patient:{ADA}", at=next_hour())
    account.rehash_password("$argon2id$h2", by="system", at=next_hour())
    account.start_totp_enrolment("JBSWY3DPEHPK3PXP", by=f"patient:{ADA}", at=next_hour())
    account.confirm_totp(1, ["hash-of-a-recovery-code"], by=f"patient:{ADA}", at=next_hour())
    account.use_totp_step(2, by=f"patient:{ADA}", at=next_hour())
    account.send_email_verification("link-hash", MORNING + timedelta(days=30), by=f"patient:{ADA}",
                                    at=next_hour())
    account.verify_email("link-hash", at=next_hour())
    account.send_code("sign_in", "email", "code-hash", MORNING + timedelta(days=30),
                      by="anonymous", at=next_hour())
    account.use_code("sign_in", "wrong-hash", by=f"patient:{ADA}", at=next_hour())
    account.use_code("sign_in", "code-hash", by=f"patient:{ADA}", at=next_hour())
    account.note_device("phone-1", "Ada's phone", by=f"patient:{ADA}", at=next_hour())
    account.remember_device("phone-1", "Ada's phone", "device-hash", MORNING + timedelta(days=30),
                            by=f"patient:{ADA}", at=next_hour())
    account.request_password_reset("reset-hash", MORNING + timedelta(days=30), at=next_hour())
    account.reset_password("reset-hash", "$argon2id$h3", at=next_hour())  # forgets the device
    claim = EmailClaim.claim("ada@example.com", account.id, by="self", at=next_hour())
    started = next_hour()
    session = Session(account_id=account.id, device_id="phone-1", device_label="Ada's phone",
                      refresh_sha256=token_hash("first"), ends_at=started + timedelta(days=1),
                      by=f"patient:{ADA}", at=started)
    session.verify("totp", by=f"patient:{ADA}", at=started)
    rotated = next_hour()
    session.rotate(token_hash("first"), token_hash("second"), timedelta(days=1), started,
                   at=rotated)
    session.rotate(token_hash("first"), token_hash("third"), timedelta(days=1), started,
                   at=rotated + timedelta(seconds=5))  # the app retried: a lost answer
    session.rotate(token_hash("first"), token_hash("fourth"), timedelta(days=1), started,
                   at=next_hour())  # a spent token comes back: the session ends
    return [e for a in (document, consent, account, claim, session) for e in a.collect_events()]


def test_the_domain_has_the_aggregates_this_contract_is_checked_against():
    names = {cls.__name__ for cls in aggregate_classes()}
    assert {"Consent", "ConsentText", "Account", "EmailClaim", "Session"} <= names


@pytest.mark.parametrize("cls", aggregate_classes(), ids=lambda c: c.__name__)
def test_every_aggregate_has_an_explicit_versioned_topic(cls):
    assert cls.TOPIC.startswith("carebridge:")
    assert cls.TOPIC.endswith(".v1")


@pytest.mark.parametrize("event", event_classes(), ids=lambda e: e.__qualname__)
def test_every_event_has_an_explicit_versioned_topic_of_its_own(event):
    assert "TOPIC" in event.__dict__, "an inherited topic would be shared with another event"
    assert event.TOPIC.startswith("carebridge:")
    assert event.TOPIC.endswith(".v1")


def test_no_two_events_share_a_topic():
    topics = [e.TOPIC for e in event_classes()]
    assert len(topics) == len(set(topics))


@pytest.mark.parametrize("event", event_classes(), ids=lambda e: e.__qualname__)
def test_every_event_carries_who_acted_and_when(event):
    fields = {f.name for f in dataclasses.fields(event)}
    assert {"by", "at"} <= fields


def test_the_scenario_records_every_kind_of_consent_and_identity_event():
    recorded = {type(e) for e in all_kinds_of_event()}
    known = {e for e in event_classes()
             if e.__module__ in ("domain.consents", "domain.identity", "domain.sessions")}
    assert recorded == known


def test_every_recorded_event_is_stamped_with_the_commands_own_time():
    events = all_kinds_of_event()

    for event in events:
        assert event.by
        assert event.at.tzinfo is not None
        assert event.timestamp == event.at, type(event).__qualname__
    # A lockout shares the moment of its failure; a retried refresh comes seconds later.
    moments = sorted({e.at for e in events if type(e).__name__ != "RotationRetried"})
    assert moments == [MORNING + timedelta(hours=h) for h in range(len(moments))]


NAIVE_NOON = datetime(2026, 11, 23, 12, 0)  # no zone: a programming error, not a clinic time


@pytest.mark.parametrize("command", ["create", "give", "withdraw", "publish", "sign in"])
def test_a_command_at_a_time_without_a_zone_is_refused_and_records_nothing(command):
    consent = given_consent() if command == "withdraw" else telemedicine_consent()
    document = published_text()
    account = Account(email="ada@example.com", role=Role.PATIENT.value, given_name="Ada",
                      family_name="Lovelace", password_hash="$argon2id$h", clinic_ids=[],
                      date_of_birth=None, mobile_phone=None, by="self", at=MORNING)
    account.collect_events()
    run = {
        "create": lambda: Consent(patient_id=ADA, consent_type=ConsentType.DATA_SHARING.value,
                                  by=ADA_REF, at=NAIVE_NOON),
        "give": lambda: consent.give(NOVEMBER, text_hash(NOVEMBER_TEXT), NOVEMBER, by=ADA_REF,
                                     at=NAIVE_NOON),
        "withdraw": lambda: consent.withdraw(None, by=ADA_REF, at=NAIVE_NOON),
        "publish": lambda: document.publish(NOVEMBER, NOVEMBER_TEXT, by=ADMIN_REF, at=NAIVE_NOON),
        "sign in": lambda: account.record_sign_in(by=f"patient:{account.id}", at=NAIVE_NOON),
    }[command]

    with pytest.raises(ValueError, match="timezone-aware"):
        run()

    assert [new_events(a) for a in (consent, document, account)] == [[], [], []]
