"""Feature flags on a real PostgreSQL: the audit trail, stale versions, retries, the gate across
processes, and snapshots."""

from __future__ import annotations

from datetime import timedelta
from uuid import uuid4

import pytest

from commands.eventstore import EventStoreSettings
from commands.feature_flags import FeatureFlagsApplication
from commands.idempotency import IdempotencyKey
from domain.access import Actor
from domain.errors import ConcurrentChange, Forbidden
from domain.feature_flags import Feature, FeatureNotAvailable, bucket, feature_flag_id
from domain.identity import Role
from tests.conftest import ENCRYPTION_KEY
from tests.integration.support import MONDAY, rows

pytestmark = pytest.mark.integration

RIVERSIDE_ADMIN = Actor(uuid4(), Role.CLINIC_ADMIN, frozenset({"riverside"}))
REASON = "pilot with the morning team"


def set_video(flags: FeatureFlagsApplication, percentage: int = 100, **kwargs):
    return flags.set_rule(RIVERSIDE_ADMIN, Feature.TELEMEDICINE, "riverside", "video", percentage,
                          [], kwargs.pop("reason", REASON), at=kwargs.pop("at", MONDAY), **kwargs)


def another_process(database) -> FeatureFlagsApplication:
    """The same application as another API process has it: its own pool and its own cache."""
    return FeatureFlagsApplication(EventStoreSettings(database.url, ENCRYPTION_KEY, pool_size=1))


def test_every_change_is_stored_encrypted_with_who_when_and_why(container, database):
    flags = container.feature_flags
    set_video(flags, 20)
    flags.remove_rule(RIVERSIDE_ADMIN, Feature.TELEMEDICINE, "riverside", "video", "pilot over",
                      at=MONDAY + timedelta(hours=1))

    stored = rows(database.url, "SELECT topic, state FROM eventstore.feature_flags_events"
                                " WHERE originator_id = %s ORDER BY originator_version",
                  (feature_flag_id(Feature.TELEMEDICINE),))
    assert [topic for topic, _ in stored] == [
        "carebridge:feature_flags.FeatureFlag.Created.v1",
        "carebridge:feature_flags.FeatureFlag.RuleSet.v1",
        "carebridge:feature_flags.FeatureFlag.RuleRemoved.v1"]
    assert not any(b"pilot" in bytes(state) for _, state in stored)  # encrypted at rest

    removed, added = flags.history(RIVERSIDE_ADMIN, Feature.TELEMEDICINE)
    assert (added.action, added.percentage, added.reason, added.by, added.at) == (
        "rule_set", 20, REASON, RIVERSIDE_ADMIN.ref, MONDAY)
    assert (removed.action, removed.reason, removed.at) == (
        "rule_removed", "pilot over", MONDAY + timedelta(hours=1))


def test_a_change_made_on_a_stale_version_is_refused_and_saves_nothing(container):
    flags = container.feature_flags
    loaded = set_video(flags, 20).result["version"]
    set_video(flags, 40, expected_version=loaded)

    with pytest.raises(ConcurrentChange) as refusal:
        set_video(flags, 60, expected_version=loaded)

    assert refusal.value.extensions["current_version"] == loaded + 1
    assert flags.overview(RIVERSIDE_ADMIN)[0].rules[0].percentage == 40


def test_a_retried_change_with_the_same_key_is_made_once(container):
    flags = container.feature_flags
    key = IdempotencyKey.for_request(RIVERSIDE_ADMIN.ref, "retry-0001", "set", {"p": 20})

    first, second = set_video(flags, 20, key=key), set_video(flags, 20, key=key)

    assert second.replayed and second.result == first.result
    assert second.position == first.position
    assert len(flags.history(RIVERSIDE_ADMIN, Feature.TELEMEDICINE)) == 1


def test_an_administrator_is_refused_another_clinics_rules_before_anything_is_read(container):
    hillview_admin = Actor(uuid4(), Role.CLINIC_ADMIN, frozenset({"hillview"}))
    with pytest.raises(Forbidden):
        container.feature_flags.set_rule(hillview_admin, Feature.TELEMEDICINE, "riverside", None,
                                         100, [], REASON, at=MONDAY)
    assert container.feature_flags.flag(Feature.TELEMEDICINE) is None


def test_the_gate_refuses_in_plain_words_and_lets_in_whom_the_rule_admits(container):
    flags = container.feature_flags
    inside = next(p for p in iter(uuid4, None) if bucket(Feature.TELEMEDICINE, p) < 2000)
    outside = next(p for p in iter(uuid4, None) if bucket(Feature.TELEMEDICINE, p) >= 2000)
    set_video(flags, 20)

    flags.require(Feature.TELEMEDICINE, inside, "riverside", "video")
    with pytest.raises(FeatureNotAvailable) as refusal:
        flags.require(Feature.TELEMEDICINE, outside, "riverside", "video")
    assert refusal.value.detail.startswith(
        "Video consultations are not available at Riverside yet.")
    assert flags.available_to(inside, "riverside", "video") == {Feature.TELEMEDICINE}
    assert flags.available_to(inside, "hillview", "video") == frozenset()


def test_a_change_saved_by_another_process_is_seen_by_the_gate_at_once(container, database):
    here, there = container.feature_flags, another_process(database)
    patient = uuid4()
    set_video(here, 100)
    assert there.is_available(Feature.TELEMEDICINE, patient, "riverside", "video")
    assert there.repository.cache is not None and there.repository.fastforward  # now cached

    set_video(here, 0, reason="paused after feedback")

    assert not there.is_available(Feature.TELEMEDICINE, patient, "riverside", "video")
    set_video(there, 100, reason="resumed")
    assert here.is_available(Feature.TELEMEDICINE, patient, "riverside", "video")


def test_a_flag_with_a_long_history_loads_from_its_snapshot(container, database):
    flags = container.feature_flags
    named = uuid4()
    for n in range(1, 121):
        flags.set_rule(RIVERSIDE_ADMIN, Feature.MESSAGING, "riverside", None, n % 100 + 1,
                       [named], f"step {n}", at=MONDAY + timedelta(minutes=n))

    snapshots = rows(database.owner_url, "SELECT originator_version FROM"
                                         " eventstore.feature_flags_snapshots")
    assert [version for (version,) in snapshots] == [100]
    fresh = another_process(database)
    loaded = fresh.flag(Feature.MESSAGING)
    assert loaded is not None and loaded.version == 121
    rule = loaded.rule_for("riverside", None)
    assert rule is not None and rule.percentage == 21 and rule.patient_ids == {named}
    assert fresh.is_available(Feature.MESSAGING, named, "riverside")
