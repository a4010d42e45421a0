"""Sign-in sessions and account lockout: rotation, theft detection, time limits, pauses."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
from hypothesis import given as for_all
from hypothesis import strategies as st

from domain.identity import (
    LOCKOUT_PERIOD,
    LOCKOUT_THRESHOLD,
    MAX_LOCKOUT_PERIOD,
    Account,
    Role,
)
from domain.sessions import (
    REFRESH_RETRY_GRACE,
    EndReason,
    RefreshRefused,
    Session,
    SessionEnded,
    ended_message,
    token_hash,
)

from .support import ADA, ADA_REF, MORNING, new_events, replay

INACTIVITY = timedelta(minutes=15)
LIFETIME = timedelta(hours=12)
FIRST, SECOND, THIRD = token_hash("first secret"), token_hash("second secret"), token_hash("third")


def signed_in(at: datetime = MORNING) -> Session:
    """Ada's session on her phone, started at `at` with the refresh token FIRST."""
    session = Session(account_id=ADA, device_id="phone-1", device_label="Ada's phone",
                      refresh_sha256=FIRST, ends_at=at + LIFETIME, by=ADA_REF, at=at)
    session.collect_events()
    return session


def refresh(session: Session, presented: str, new: str, at: datetime,
            last_active_at: datetime | None = None) -> EndReason | None:
    return session.rotate(presented, new, INACTIVITY, last_active_at or session.last_active_at, at)


def registered_account() -> Account:
    account = Account(email="ada@patients.test", role=Role.PATIENT.value, given_name="Ada",
                      family_name="Lovelace", password_hash="$argon2id$hash", clinic_ids=[],
                      date_of_birth=date(1958, 12, 10), mobile_phone=None, by="self", at=MORNING)
    account.collect_events()
    return account


def fail_sign_in(account: Account, times: int, at: datetime) -> None:
    for _ in range(times):
        account.record_failed_sign_in(at=at)


# Sessions


def test_a_refresh_spends_the_old_token_and_keeps_the_session_alive():
    session = signed_in()
    later = MORNING + timedelta(minutes=9)

    assert refresh(session, FIRST, SECOND, at=later) is None

    assert new_events(session) == ["Rotated"]
    rotated = session.pending_events[0]
    assert (rotated.refresh_sha256, rotated.by, rotated.at) == (SECOND, f"session:{session.id}", later)
    assert (session.refresh_sha256, session.spent, session.last_active_at) == (SECOND, [FIRST], later)
    assert session.is_active


def test_a_stored_session_holds_hashes_and_never_the_tokens():
    session = Session(account_id=ADA, device_id="phone-1", device_label="Ada's phone",
                      refresh_sha256=token_hash("first secret"), ends_at=MORNING + LIFETIME,
                      by=ADA_REF, at=MORNING)
    session.rotate(token_hash("first secret"), token_hash("second secret"), INACTIVITY,
                   MORNING, MORNING + timedelta(minutes=5))

    recorded = repr([vars(e) for e in session.collect_events()])
    assert "first secret" not in recorded
    assert "second secret" not in recorded
    assert token_hash("second secret") in recorded


def test_a_spent_token_presented_again_ends_the_session_as_stolen():
    session = signed_in()
    refresh(session, FIRST, SECOND, at=MORNING + timedelta(minutes=5))
    session.collect_events()
    theft_at = MORNING + timedelta(minutes=6)

    assert refresh(session, FIRST, THIRD, at=theft_at) is EndReason.REFRESH_TOKEN_REUSED

    assert new_events(session) == ["Ended"]
    ended = session.pending_events[0]
    assert (ended.reason, ended.by, ended.at) == ("refresh_token_reused", "system", theft_at)
    assert not session.is_active
    assert session.refresh_sha256 == SECOND  # the thief's new token was never accepted


def test_after_theft_even_the_newest_token_is_refused_and_nothing_more_is_recorded():
    session = signed_in()
    refresh(session, FIRST, SECOND, at=MORNING + timedelta(minutes=5))
    refresh(session, FIRST, THIRD, at=MORNING + timedelta(minutes=6))
    session.collect_events()

    with pytest.raises(SessionEnded) as refusal:
        refresh(session, SECOND, THIRD, at=MORNING + timedelta(minutes=7))

    assert refusal.value.detail == ended_message(EndReason.REFRESH_TOKEN_REUSED)
    assert "used from two places" in refusal.value.detail
    assert new_events(session) == []


def test_a_refresh_retried_moments_later_with_the_same_token_rotates_once_more():
    # The app refreshed, the answer was lost on a train's patchy signal, and it sent the
    # same refresh token again: that is not theft.
    session = signed_in()
    rotated = MORNING + timedelta(minutes=5)
    refresh(session, FIRST, SECOND, at=rotated)
    session.collect_events()

    assert refresh(session, FIRST, THIRD, at=rotated + timedelta(seconds=20)) is None

    assert new_events(session) == ["RotationRetried"]
    assert session.is_active and session.refresh_sha256 == THIRD
    assert SECOND in session.spent  # the lost answer's token never works


def test_a_second_retry_or_a_late_one_is_treated_as_theft():
    rotated = MORNING + timedelta(minutes=5)
    twice = signed_in()
    refresh(twice, FIRST, SECOND, at=rotated)
    refresh(twice, FIRST, THIRD, at=rotated + timedelta(seconds=10))
    late = signed_in()
    refresh(late, FIRST, SECOND, at=rotated)

    assert refresh(twice, SECOND, token_hash("fourth"), at=rotated + timedelta(seconds=15)) \
        is EndReason.REFRESH_TOKEN_REUSED
    assert refresh(late, FIRST, THIRD, at=rotated + REFRESH_RETRY_GRACE + timedelta(seconds=1)) \
        is EndReason.REFRESH_TOKEN_REUSED


def test_an_unknown_token_is_refused_without_recording_anything():
    session = signed_in()

    with pytest.raises(RefreshRefused):
        refresh(session, token_hash("guessed"), SECOND, at=MORNING + timedelta(minutes=1))

    assert new_events(session) == []
    assert session.is_active
    assert refresh(session, FIRST, SECOND, at=MORNING + timedelta(minutes=2)) is None


def test_a_session_unused_for_the_inactivity_limit_ends():
    session = signed_in()
    idle_until = MORNING + INACTIVITY

    assert refresh(session, FIRST, SECOND, at=idle_until) is EndReason.INACTIVITY

    assert new_events(session) == ["Ended"]
    assert session.pending_events[0].reason == "inactivity"
    assert session.refresh_sha256 == FIRST


def test_a_session_used_just_within_the_inactivity_limit_stays_alive():
    session = signed_in()

    assert refresh(session, FIRST, SECOND, at=MORNING + INACTIVITY - timedelta(seconds=1)) is None


def test_recent_use_seen_elsewhere_keeps_an_idle_looking_session_alive():
    session = signed_in()
    later = MORNING + timedelta(minutes=20)

    # The session's own record says 20 minutes idle; a request five minutes ago says otherwise.
    assert refresh(session, FIRST, SECOND, at=later,
                   last_active_at=later - timedelta(minutes=5)) is None
    assert new_events(session) == ["Rotated"]


def test_a_session_ends_at_its_lifetime_however_active():
    session = signed_in()
    token, at = FIRST, MORNING
    while at + timedelta(minutes=9) < MORNING + LIFETIME:
        at += timedelta(minutes=9)
        new = token_hash(f"secret at {at}")
        assert refresh(session, token, new, at=at) is None
        token = new
    session.collect_events()

    assert refresh(session, token, THIRD, at=MORNING + LIFETIME) is EndReason.LIFETIME

    assert new_events(session) == ["Ended"]
    assert session.pending_events[0].reason == "lifetime"


def test_signing_out_twice_records_one_end():
    session = signed_in()
    signed_out_at = MORNING + timedelta(minutes=3)

    assert session.end(EndReason.SIGNED_OUT, by=ADA_REF, at=signed_out_at) is True
    assert session.end(EndReason.SIGNED_OUT_EVERYWHERE, by=ADA_REF, at=signed_out_at) is False

    assert new_events(session) == ["Ended"]
    assert (session.pending_events[0].reason, session.pending_events[0].by) == ("signed_out", ADA_REF)
    assert session.ended_reason == "signed_out"


def test_a_signed_out_session_refuses_its_refresh_token_and_records_nothing():
    session = signed_in()
    session.end(EndReason.SIGNED_OUT, by=ADA_REF, at=MORNING)
    session.collect_events()

    with pytest.raises(SessionEnded) as refusal:
        refresh(session, FIRST, SECOND, at=MORNING + timedelta(minutes=1))

    assert refusal.value.detail == "You signed out. Please sign in again."
    assert new_events(session) == []


def test_replaying_a_session_rebuilds_what_decisions_need():
    session = Session(account_id=ADA, device_id="phone-1", device_label="Ada's phone",
                      refresh_sha256=FIRST, ends_at=MORNING + LIFETIME, by=ADA_REF, at=MORNING)
    refresh(session, FIRST, SECOND, at=MORNING + timedelta(minutes=5))
    refresh(session, FIRST, THIRD, at=MORNING + timedelta(minutes=6))

    rebuilt = replay(session.collect_events())

    assert (rebuilt.refresh_sha256, rebuilt.spent, rebuilt.ended_reason) == (
        SECOND, [FIRST], "refresh_token_reused")
    assert (rebuilt.device_label, rebuilt.ends_at) == ("Ada's phone", MORNING + LIFETIME)


@for_all(st.lists(st.sampled_from(["rotate", "replay spent", "unknown", "sign out"]), max_size=12))
def test_an_ended_session_never_records_another_event(steps):
    session = signed_in()
    current, spent, at = FIRST, [], MORNING
    for number, step in enumerate(steps):
        at += timedelta(minutes=1)
        new = token_hash(f"secret {number}")
        was_active = session.is_active
        recorded_before = len(session.pending_events)
        try:
            if step == "rotate":
                refresh(session, current, new, at=at)
                if session.refresh_sha256 == new:
                    spent.append(current)
                    current = new
            elif step == "replay spent" and spent:
                refresh(session, spent[0], new, at=at)
            elif step == "unknown":
                refresh(session, token_hash("guessed"), new, at=at)
            elif step == "sign out":
                session.end(EndReason.SIGNED_OUT, by=ADA_REF, at=at)
        except (SessionEnded, RefreshRefused):
            pass
        if not was_active:
            assert len(session.pending_events) == recorded_before
    assert sum(type(e).__name__ == "Ended" for e in session.pending_events) <= 1


# Lockout


def test_five_wrong_passwords_pause_sign_in_for_fifteen_minutes():
    account = registered_account()
    fail_sign_in(account, LOCKOUT_THRESHOLD - 1, at=MORNING)
    assert not account.is_locked(MORNING)

    account.record_failed_sign_in(at=MORNING)

    assert new_events(account) == ["SignInFailed"] * LOCKOUT_THRESHOLD + ["LockedOut"]
    locked = account.pending_events[-1]
    assert (locked.until, locked.by) == (MORNING + timedelta(minutes=15), "system")
    assert account.is_locked(MORNING + timedelta(minutes=14, seconds=59))
    assert not account.is_locked(MORNING + timedelta(minutes=15))


def test_after_a_pause_one_stray_guess_does_not_pause_again_but_five_pause_twice_as_long():
    account = registered_account()
    fail_sign_in(account, LOCKOUT_THRESHOLD, at=MORNING)
    after_pause = MORNING + LOCKOUT_PERIOD
    account.collect_events()

    account.record_failed_sign_in(at=after_pause)
    assert new_events(account) == ["SignInFailed"]
    assert not account.is_locked(after_pause)

    fail_sign_in(account, LOCKOUT_THRESHOLD - 1, at=after_pause)
    assert account.locked_until == after_pause + 2 * LOCKOUT_PERIOD
    assert account.lockouts == 2


def test_lockouts_double_up_to_a_day_and_no_longer():
    account = registered_account()
    at, pauses = MORNING, []
    for _ in range(10):
        fail_sign_in(account, LOCKOUT_THRESHOLD, at=at)
        assert account.locked_until is not None
        pauses.append(account.locked_until - at)
        at = account.locked_until

    assert pauses[:4] == [timedelta(minutes=m) for m in (15, 30, 60, 120)]
    assert max(pauses) == MAX_LOCKOUT_PERIOD == pauses[-1]


def test_failures_during_a_pause_do_not_extend_it():
    account = registered_account()
    fail_sign_in(account, LOCKOUT_THRESHOLD, at=MORNING)
    account.collect_events()

    fail_sign_in(account, 3, at=MORNING + timedelta(minutes=5))

    assert "LockedOut" not in new_events(account)
    assert account.locked_until == MORNING + LOCKOUT_PERIOD


def test_a_successful_sign_in_clears_failures_and_the_doubling():
    account = registered_account()
    fail_sign_in(account, LOCKOUT_THRESHOLD, at=MORNING)
    after_pause = MORNING + LOCKOUT_PERIOD
    account.record_sign_in(by=f"patient:{account.id}", at=after_pause)

    assert (account.failed_sign_ins, account.lockouts, account.locked_until) == (0, 0, None)
    fail_sign_in(account, LOCKOUT_THRESHOLD - 1, at=after_pause)
    assert not account.is_locked(after_pause)
    account.record_failed_sign_in(at=after_pause)
    assert account.locked_until == after_pause + LOCKOUT_PERIOD


def test_a_replayed_account_remembers_its_pause():
    account = Account(email="ada@patients.test", role=Role.PATIENT.value, given_name="Ada",
                      family_name="Lovelace", password_hash="$argon2id$hash", clinic_ids=[],
                      date_of_birth=None, mobile_phone=None, by="self", at=MORNING)
    fail_sign_in(account, LOCKOUT_THRESHOLD, at=MORNING)

    rebuilt = replay(account.collect_events())

    assert rebuilt.is_locked(MORNING + timedelta(minutes=1))
    assert (rebuilt.failed_sign_ins, rebuilt.lockouts) == (0, 1)  # counting restarts after it
