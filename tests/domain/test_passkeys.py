"""Passkeys: the signature counter, cloned authenticators, names, removal."""

from __future__ import annotations

from datetime import timedelta

import pytest

from domain.errors import Rejections
from domain.passkeys import (
    MAX_LABEL_LENGTH,
    Passkey,
    PasskeyNotUsable,
    clean_label,
    counter_went_backwards,
    passkey_id,
)

from .support import ADA, ADA_REF, MORNING, NOON, new_events, replay

CREDENTIAL = "q7Jm3n0WcU0Zo5aR4bX0bQ"


def registered(sign_count: int = 0) -> Passkey:
    passkey = Passkey.register(account_id=ADA, credential_id=CREDENTIAL, public_key="pQECAyYg",
                               sign_count=sign_count, transports=["internal"], aaguid="c0ffee",
                               label="Ada's phone", backed_up=True, by=ADA_REF, at=MORNING)
    passkey.collect_events()
    return passkey


def label_problems(label: str) -> list[str]:
    errors = Rejections()
    clean_label(label, errors)
    return [e.field for e in errors.errors]


def test_a_passkeys_stream_is_named_by_its_credential():
    assert registered().id == passkey_id(CREDENTIAL)
    assert passkey_id(CREDENTIAL) != passkey_id(CREDENTIAL + "A")


@pytest.mark.parametrize(("known", "presented", "cloned"), [
    (0, 0, False),  # a synced passkey that never counts
    (0, 1, False),  # starts counting
    (5, 6, False),
    (5, 50, False),  # used elsewhere in between: fine
    (5, 5, True),  # the same count twice: two devices hold the key
    (5, 4, True),
    (5, 0, True),  # stopped counting after counting: WebAuthn treats it as a clone too
])
def test_a_counter_that_does_not_move_on_means_a_cloned_authenticator(known, presented, cloned):
    assert counter_went_backwards(known, presented) is cloned


def test_a_genuine_assertion_moves_the_counter_on_and_records_the_use():
    passkey = registered(sign_count=3)

    assert passkey.accept_assertion(4, backed_up=True, by=ADA_REF, at=NOON) is True

    assert new_events(passkey) == ["Used"]
    assert (passkey.sign_count, passkey.last_used_at) == (4, NOON)


def test_a_counter_going_backwards_is_refused_recorded_and_blocks_the_passkey():
    passkey = registered(sign_count=7)

    assert passkey.accept_assertion(6, backed_up=True, by=ADA_REF, at=NOON) is False

    assert new_events(passkey) == ["CloneSuspected"]
    assert passkey.sign_count == 7  # the clone's counter is not adopted
    assert not passkey.is_usable
    with pytest.raises(PasskeyNotUsable):  # nor the genuine one's: nobody can tell them apart
        passkey.accept_assertion(8, backed_up=True, by=ADA_REF, at=NOON + timedelta(minutes=1))


def test_a_removed_passkey_never_signs_in_again_and_removing_twice_records_once():
    passkey = registered()

    assert passkey.remove(by=ADA_REF, at=NOON) is True
    assert passkey.remove(by=ADA_REF, at=NOON) is False

    assert new_events(passkey) == ["Removed"]
    with pytest.raises(PasskeyNotUsable):
        passkey.accept_assertion(1, backed_up=True, by=ADA_REF, at=NOON)


def test_renaming_to_the_same_name_records_nothing():
    passkey = registered()
    passkey.rename("Ada's phone", by=ADA_REF, at=NOON)
    passkey.rename("Old phone", by=ADA_REF, at=NOON)
    assert new_events(passkey) == ["Renamed"]
    assert passkey.label == "Old phone"


def test_the_history_rebuilds_the_same_passkey():
    passkey = Passkey.register(account_id=ADA, credential_id=CREDENTIAL, public_key="pQECAyYg",
                               sign_count=0, transports=["hybrid", "internal"], aaguid="c0ffee",
                               label="Ada's phone", backed_up=False, by=ADA_REF, at=MORNING)
    passkey.accept_assertion(1, backed_up=True, by=ADA_REF, at=NOON)
    passkey.accept_assertion(1, backed_up=True, by=ADA_REF, at=NOON)  # a clone
    rebuilt = replay(passkey.collect_events())

    assert (rebuilt.account_id, rebuilt.sign_count, rebuilt.backed_up) == (ADA, 1, True)
    assert (rebuilt.last_used_at, rebuilt.clone_suspected_at) == (NOON, NOON)
    assert rebuilt.transports == ["hybrid", "internal"]


@pytest.mark.parametrize(("label", "fields"), [
    ("Grace's iPhone", []),
    ("  Grace's   iPad  ", []),
    ("Téléphone de Grâce 👩‍👧", []),  # accents and emoji (with their joiner) are fine
    ("", ["label"]),
    ("   ", ["label"]),
    ("x" * (MAX_LABEL_LENGTH + 1), ["label"]),
    ("phone\x00", ["label"]),
    ("\u202eenohp", ["label"]),  # a right-to-left override that disguises the name
])
def test_a_passkey_name_is_short_printable_text(label, fields):
    assert label_problems(label) == fields


def test_a_passkey_name_is_trimmed_and_its_spaces_collapsed():
    assert clean_label("  Grace's   iPad  ", Rejections()) == "Grace's iPad"
