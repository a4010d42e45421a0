"""Emergency location sharing in memory: which positions the viewers may be shown (and every
refusal, named by field), the distance between two fixes, and the share's life from start to
its one ending."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from typing import Any
from uuid import uuid4

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.emergency import (
    MAX_ACCURACY_METRES,
    EmergencyShare,
    Outcome,
    Position,
    ShareEnded,
    ShareState,
    checked_position,
)
from domain.errors import InvalidInput

from .support import ADA, ADA_REF, MORNING, new_events, replay

NOW = MORNING
NURSE_REF = "nurse:00000000-0000-4000-8000-00000000f00d"
DOCTOR_REF = "doctor:00000000-0000-4000-8000-0000000d0c70"
CONTACT = "emergency_contact"
LASTS, LIMIT = timedelta(minutes=60), timedelta(minutes=240)
# A bench on the Thames path; a few metres along it; the middle of Paris.
BENCH = (51.507222, -0.127500)
ALONG = (51.507300, -0.127300)
LONDON = (51.5074, -0.1278)
PARIS = (48.8566, 2.3522)


def fix(where: tuple[float, float] = BENCH, accuracy: float = 12, at: datetime = NOW) -> Position:
    return Position(where[0], where[1], accuracy, at)


def refused_fields(latitude: object = BENCH[0], longitude: object = BENCH[1],
                   accuracy: object = 12, at: datetime | None = NOW, now: datetime = NOW,
                   previous: Position | None = None) -> list[str]:
    """The fields a refusal names, in order (fails if the position is accepted)."""
    with pytest.raises(InvalidInput) as refused:
        checked_position(latitude, longitude, accuracy, at, now, previous)
    assert all(e.message for e in refused.value.errors)
    return [e.field for e in refused.value.errors]


# ---- positions ------------------------------------------------------------------------------


def test_a_fresh_position_in_range_is_accepted_as_it_came() -> None:
    taken = NOW - timedelta(seconds=5)
    assert checked_position(BENCH[0], BENCH[1], 12, taken, NOW, None) == fix(at=taken)
    assert checked_position(-90, 180, 0, NOW, NOW, None) == Position(-90.0, 180.0, 0.0, NOW)


@pytest.mark.parametrize(("changes", "fields"), [
    ({"latitude": 90.0001}, ["latitude"]),
    ({"latitude": -91}, ["latitude"]),
    ({"longitude": 180.5}, ["longitude"]),
    ({"longitude": -181}, ["longitude"]),
    ({"accuracy": -1}, ["accuracy"]),
    ({"accuracy": MAX_ACCURACY_METRES + 1}, ["accuracy"]),
    ({"latitude": 123.0, "longitude": 200.0, "accuracy": 9000}, ["latitude", "longitude",
                                                                 "accuracy"]),
])
def test_a_position_out_of_range_or_too_inaccurate_to_help_is_refused(changes, fields) -> None:
    assert refused_fields(**changes) == fields


@pytest.mark.parametrize("value", ["51.5", None, True, math.nan, math.inf, -math.inf, [51.5]])
def test_anything_but_a_finite_number_is_refused(value: object) -> None:
    with pytest.raises(InvalidInput) as refused:
        checked_position(value, value, value, NOW, NOW, None)
    assert [(e.field, e.message) for e in refused.value.errors] == [
        (field, "must be a number") for field in ("latitude", "longitude", "accuracy")]


def test_a_stale_position_is_refused_and_one_just_fresh_enough_is_not() -> None:
    assert refused_fields(at=NOW - timedelta(minutes=2, seconds=1)) == ["at"]
    assert checked_position(*BENCH, 12, NOW - timedelta(minutes=2), NOW, None).at == \
        NOW - timedelta(minutes=2)


def test_a_position_from_the_future_is_refused_beyond_a_small_clock_difference() -> None:
    assert refused_fields(at=NOW + timedelta(seconds=31)) == ["at"]
    assert checked_position(*BENCH, 12, NOW + timedelta(seconds=30), NOW, None).at == \
        NOW + timedelta(seconds=30)


def test_a_position_without_a_time_or_its_zone_is_refused() -> None:
    assert refused_fields(at=None) == ["at"]
    assert refused_fields(at=NOW.replace(tzinfo=None)) == ["at"]
    assert refused_fields(latitude=95, at=None) == ["latitude", "at"]


def test_a_time_in_another_zone_is_the_same_moment() -> None:
    paris_time = NOW.astimezone(timezone(timedelta(hours=1)))
    assert checked_position(*BENCH, 12, paris_time, NOW, None).at == NOW


def test_an_impossible_jump_from_the_last_position_is_refused() -> None:
    last = fix(LONDON, accuracy=10, at=NOW - timedelta(seconds=5))
    assert refused_fields(*PARIS, 10, NOW, NOW, last) == ["latitude"]


def test_a_walk_and_a_fast_train_are_plausible_movements() -> None:
    last = fix(BENCH, at=NOW - timedelta(seconds=10))
    walked = checked_position(*ALONG, 12, NOW, NOW, last)
    assert (walked.latitude, walked.longitude) == ALONG
    # London to Paris in 20 minutes is 286 m/s: fast, but not faster than an airliner.
    earlier = fix(LONDON, at=NOW - timedelta(minutes=20))
    assert checked_position(*PARIS, 12, NOW, NOW, earlier).latitude == PARIS[0]


def test_the_accuracy_of_both_fixes_counts_in_favour_of_the_movement() -> None:
    last = fix(BENCH, accuracy=0, at=NOW - timedelta(seconds=1))
    beyond = Position(BENCH[0] + 0.01, BENCH[1], 0, NOW)  # about 1.1 km in one second
    assert refused_fields(beyond.latitude, beyond.longitude, 0, NOW, NOW, last) == ["latitude"]
    assert checked_position(beyond.latitude, beyond.longitude, 1000, NOW, NOW, last) == \
        Position(beyond.latitude, beyond.longitude, 1000.0, NOW)


def test_a_fix_older_than_the_last_one_is_refused() -> None:
    last = fix(at=NOW - timedelta(seconds=5))
    assert refused_fields(at=NOW - timedelta(seconds=6), previous=last) == ["at"]


def test_an_impossible_jump_is_refused_even_at_the_same_time_as_the_last_fix() -> None:
    assert refused_fields(*PARIS, 10, NOW, NOW, fix(LONDON, at=NOW)) == ["latitude"]


def test_a_number_too_large_for_a_float_is_refused() -> None:
    assert refused_fields(latitude=10 ** 400) == ["latitude"]


def test_london_to_paris_is_about_343_and_a_half_kilometres() -> None:
    london, paris = fix(LONDON), fix(PARIS)
    assert london.metres_to(paris) == pytest.approx(343_500, abs=1000)
    assert paris.metres_to(london) == pytest.approx(london.metres_to(paris))
    assert london.metres_to(london) == 0
    # Half the Earth's circumference (mean radius 6,371 km) between antipodes.
    assert fix((0, 0)).metres_to(fix((0, 180))) == pytest.approx(math.pi * 6_371_000)


# ---- every random position is accepted or refused by field, never anything else -------------

anything = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-10 ** 6, max_value=10 ** 6),
    st.text(max_size=6), st.none(), st.booleans())
offsets = st.builds(timezone, st.timedeltas(min_value=timedelta(hours=-14),
                                             max_value=timedelta(hours=14)))
# Around now: some stale, some from the future, some naive, in any zone.
moments = st.builds(
    lambda moved, zone: (NOW + moved).astimezone(zone) if zone else (NOW + moved).replace(tzinfo=None),
    st.timedeltas(min_value=timedelta(minutes=-3), max_value=timedelta(minutes=1)),
    st.none() | offsets)
previous_fixes = st.none() | st.builds(
    Position, st.floats(-90, 90), st.floats(-180, 180), st.floats(0, MAX_ACCURACY_METRES),
    st.builds(lambda moved: NOW + moved, st.timedeltas(min_value=timedelta(minutes=-3),
                                                       max_value=timedelta(seconds=30))))


def wrong_number(value: Any, low: float, high: float) -> bool:
    return isinstance(value, bool) or not isinstance(value, (int, float)) \
        or not math.isfinite(value) or not low <= value <= high


@given(anything | st.floats(-90, 90), anything | st.floats(-180, 180),
       anything | st.floats(0, MAX_ACCURACY_METRES), st.none() | moments, previous_fixes)
def test_any_position_is_either_accepted_or_refused_naming_its_fields(
        latitude: Any, longitude: Any, accuracy: Any, at: datetime | None,
        previous: Position | None) -> None:
    must_name = {name for name, value, low, high in (
        ("latitude", latitude, -90, 90), ("longitude", longitude, -180, 180),
        ("accuracy", accuracy, 0, MAX_ACCURACY_METRES)) if wrong_number(value, low, high)}
    if at is None or at.tzinfo is None:
        must_name.add("at")
    try:
        position = checked_position(latitude, longitude, accuracy, at, NOW, previous)
    except InvalidInput as refused:
        named = [e.field for e in refused.errors]
        assert named and set(named) <= {"latitude", "longitude", "accuracy", "at"}
        assert must_name <= set(named)
        assert all(e.message for e in refused.errors)
        return
    assert not must_name
    assert (position.latitude, position.longitude, position.accuracy, position.at) == (
        latitude, longitude, accuracy, at)
    assert at is not None and NOW - timedelta(minutes=2) <= at <= NOW + timedelta(seconds=30)
    assert previous is None or at >= previous.at


# ---- the share's life -----------------------------------------------------------------------


def started(note: str | None = "Fell on the path, cannot get up", at: datetime = NOW) -> EmergencyShare:
    share = EmergencyShare.start(ADA, "riverside", note, LASTS, by=ADA_REF, at=at)
    share.collect_events()
    return share


def ended(how: str) -> EmergencyShare:
    share = started()
    {"stop": lambda: share.stop(by=ADA_REF, at=NOW + timedelta(minutes=5)),
     "close": lambda: share.close(Outcome.HELP_ARRIVED, by=DOCTOR_REF, at=NOW + timedelta(minutes=5)),
     "expire": lambda: share.expire(NOW + LASTS)}[how]()
    share.collect_events()
    return share


def test_a_started_share_is_active_for_its_time_with_the_patients_words() -> None:
    share = EmergencyShare.start(ADA, "riverside", "  Fell on the path  ", LASTS, by=ADA_REF,
                                 at=NOW)
    assert new_events(share) == ["Created"]
    assert (share.patient_id, share.clinic_id, share.note) == (ADA, "riverside",
                                                               "Fell on the path")
    assert (share.state, share.started_at, share.expires_at) == (ShareState.ACTIVE, NOW,
                                                                 NOW + LASTS)
    assert share.is_active(NOW + LASTS - timedelta(seconds=1))
    assert not share.is_active(NOW + LASTS)


def test_a_blank_note_is_no_note_and_a_long_one_is_refused() -> None:
    assert started(note="   ").note is None and started(note=None).note is None
    with pytest.raises(InvalidInput) as refused:
        EmergencyShare.start(ADA, "riverside", "x" * 281, LASTS, by=ADA_REF, at=NOW)
    assert [e.field for e in refused.value.errors] == ["note"]
    assert started(note="x" * 280).note == "x" * 280


def test_the_emergency_contact_is_granted_a_link_while_the_share_lasts() -> None:
    share, link = started(), uuid4()
    share.grant_contact(link, "Ann Hopper", "daughter", by=ADA_REF, at=NOW)
    assert new_events(share) == ["ViewerGranted"]
    assert link in share.links
    assert share.told == [{"viewer": CONTACT, "name": "Ann Hopper", "at": NOW}]


def test_each_viewer_looking_is_part_of_the_story_once() -> None:
    share = started()
    assert share.looked(NURSE_REF, NOW) is True
    assert share.looked(NURSE_REF, NOW + timedelta(minutes=1)) is False
    assert share.looked(f"{CONTACT}:{uuid4()}", NOW) is True
    assert new_events(share) == ["Looked", "Looked"]


def test_a_share_is_extended_up_to_its_limit_and_no_further() -> None:
    share = started()
    share.extend(LASTS, LIMIT, by=ADA_REF, at=NOW + timedelta(minutes=50))
    assert share.expires_at == NOW + timedelta(minutes=110)
    share.extend(LASTS, LIMIT, by=ADA_REF, at=NOW + timedelta(minutes=100))
    share.extend(LASTS, LIMIT, by=ADA_REF, at=NOW + timedelta(minutes=150))
    share.extend(LASTS, LIMIT, by=ADA_REF, at=NOW + timedelta(minutes=200))
    assert share.expires_at == NOW + LIMIT
    with pytest.raises(InvalidInput) as refused:
        share.extend(LASTS, LIMIT, by=ADA_REF, at=NOW + timedelta(minutes=230))
    assert [e.field for e in refused.value.errors] == ["minutes"]
    assert share.expires_at == NOW + LIMIT
    assert new_events(share) == ["Extended"] * 4


def test_extending_right_away_changes_nothing_and_is_refused() -> None:
    share = started()
    with pytest.raises(InvalidInput):
        share.extend(LASTS, LIMIT, by=ADA_REF, at=NOW)
    assert new_events(share) == []


@pytest.mark.parametrize(("how", "state", "outcome"), [
    ("stop", ShareState.STOPPED, None),
    ("close", ShareState.CLOSED, Outcome.HELP_ARRIVED),
])
def test_a_share_is_stopped_or_closed_once(how: str, state: ShareState,
                                           outcome: Outcome | None) -> None:
    share = started()
    end = {"stop": lambda at: share.stop(by=ADA_REF, at=at),
           "close": lambda at: share.close(Outcome.HELP_ARRIVED, by=DOCTOR_REF, at=at)}[how]
    assert end(NOW + timedelta(minutes=5)) is True
    assert end(NOW + timedelta(minutes=6)) is False
    assert (share.state, share.outcome, share.ended_at) == (state, outcome,
                                                            NOW + timedelta(minutes=5))
    assert not share.is_active(NOW + timedelta(minutes=5))
    assert new_events(share) == ["Ended"]


def test_a_share_expires_at_its_time_not_before_and_once() -> None:
    share = started()
    assert share.expire(NOW + LASTS - timedelta(seconds=1)) is False
    assert share.state is ShareState.ACTIVE
    assert share.expire(NOW + LASTS) is True
    assert share.expire(NOW + LASTS + timedelta(minutes=1)) is False
    assert (share.state, share.ended_at) == (ShareState.EXPIRED, NOW + LASTS)
    assert new_events(share) == ["Ended"]


def test_an_extended_share_does_not_expire_at_its_first_time() -> None:
    share = started()
    share.extend(LASTS, LIMIT, by=ADA_REF, at=NOW + timedelta(minutes=30))
    assert share.expire(NOW + LASTS) is False
    assert share.expire(NOW + timedelta(minutes=90)) is True


@pytest.mark.parametrize("how", ["stop", "close", "expire"])
def test_nothing_happens_to_a_share_after_it_ended(how: str) -> None:
    share = ended(how)
    later = NOW + timedelta(minutes=10) if how != "expire" else NOW + LASTS
    with pytest.raises(ShareEnded) as refused:
        share.grant_contact(uuid4(), "Ann Hopper", "daughter", by=ADA_REF, at=later)
    assert refused.value.extensions == {"state": share.state.value}
    with pytest.raises(ShareEnded):
        share.extend(LASTS, LIMIT, by=ADA_REF, at=later)
    assert share.stop(by=ADA_REF, at=later) is False
    assert share.close(Outcome.PATIENT_SAFE, by=DOCTOR_REF, at=later) is False
    assert share.expire(later + LIMIT) is False
    assert new_events(share) == []


def test_once_its_time_ran_out_a_share_takes_no_new_viewer_even_before_the_sweep() -> None:
    share = started()
    with pytest.raises(ShareEnded) as refused:
        share.grant_contact(uuid4(), "Ann Hopper", "daughter", by=ADA_REF, at=NOW + LASTS)
    assert refused.value.extensions == {"state": ShareState.EXPIRED.value}
    with pytest.raises(ShareEnded):
        share.extend(LASTS, LIMIT, by=ADA_REF, at=NOW + LASTS)
    assert new_events(share) == []


def test_the_recorded_events_alone_rebuild_the_share() -> None:
    share, link = EmergencyShare.start(ADA, "riverside", "Fell", LASTS, by=ADA_REF, at=NOW), uuid4()
    share.grant_contact(link, "Ann Hopper", "daughter", by=ADA_REF, at=NOW)
    share.looked(NURSE_REF, NOW + timedelta(minutes=1))
    share.extend(LASTS, LIMIT, by=ADA_REF, at=NOW + timedelta(minutes=30))
    share.close(Outcome.EMERGENCY_SERVICES_CALLED, by=DOCTOR_REF, at=NOW + timedelta(minutes=40))
    rebuilt = replay(share.collect_events())
    assert (rebuilt.state, rebuilt.outcome, rebuilt.expires_at, rebuilt.ended_at) == (
        ShareState.CLOSED, Outcome.EMERGENCY_SERVICES_CALLED, NOW + timedelta(minutes=90),
        NOW + timedelta(minutes=40))
    assert (rebuilt.links, rebuilt.lookers, rebuilt.told) == (share.links, share.lookers,
                                                              share.told)
