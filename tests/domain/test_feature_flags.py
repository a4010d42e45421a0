"""Feature flags: rules per clinic and service type, stable bucketing, and changes that record
only what changed."""

from __future__ import annotations

from uuid import UUID, uuid4

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.access import Action, Actor, ClinicResource, PatientResource, is_allowed
from domain.errors import InvalidInput
from domain.feature_flags import (
    MAX_PATIENTS,
    Feature,
    FeatureFlag,
    FeatureNotAvailable,
    UnknownFeature,
    bucket,
    is_enabled,
    parse_feature,
)
from domain.identity import Role

from .support import ADA, ADMIN_REF, GRACE, MORNING, NOON, new_events, replay

REASON = "pilot with the morning team"


def flag(feature: Feature = Feature.TELEMEDICINE) -> FeatureFlag:
    """A feature's flag with no rules yet, its history collected."""
    created = FeatureFlag(feature=feature.value, by=ADMIN_REF, at=MORNING)
    created.collect_events()
    return created


def with_rules(*rules: tuple[str, str | None, int, list[UUID]],
               feature: Feature = Feature.TELEMEDICINE) -> FeatureFlag:
    telemedicine = flag(feature)
    for clinic_id, service_type, percentage, patient_ids in rules:
        telemedicine.set_rule(clinic_id, service_type, percentage, patient_ids, REASON,
                              by=ADMIN_REF, at=MORNING)
    telemedicine.collect_events()
    return telemedicine


def field_names(refusal: pytest.ExceptionInfo[InvalidInput]) -> list[str]:
    return [error.field for error in refusal.value.errors]


# ---- rules and specificity -----------------------------------------------------------------

def test_without_a_rule_a_feature_is_not_available():
    assert not is_enabled(None, ADA, "riverside")
    assert not is_enabled(flag(), ADA, "riverside")


def test_a_clinic_wide_rule_for_everyone_turns_the_feature_on_for_every_service_type():
    telemedicine = with_rules(("riverside", None, 100, []))

    assert is_enabled(telemedicine, ADA, "riverside")
    assert is_enabled(telemedicine, ADA, "riverside", "video")
    assert not is_enabled(telemedicine, ADA, "hillview")


def test_a_rule_for_a_service_type_wins_over_the_clinic_wide_rule():
    telemedicine = with_rules(("riverside", None, 100, []), ("riverside", "screening", 0, []))

    assert is_enabled(telemedicine, ADA, "riverside", "video")
    assert not is_enabled(telemedicine, ADA, "riverside", "screening")


def test_a_rule_for_one_service_type_does_not_open_the_others():
    telemedicine = with_rules(("riverside", "follow_up", 100, []))

    assert is_enabled(telemedicine, ADA, "riverside", "follow_up")
    assert not is_enabled(telemedicine, ADA, "riverside", "video")
    assert not is_enabled(telemedicine, ADA, "riverside")


def test_a_named_patient_gets_the_feature_whatever_the_percentage():
    telemedicine = with_rules(("riverside", None, 0, [ADA]))

    assert is_enabled(telemedicine, ADA, "riverside")
    assert not is_enabled(telemedicine, GRACE, "riverside")


def test_a_patient_is_in_if_named_or_in_the_percentage():
    outside = next(p for p in (uuid4() for _ in range(1000))
                   if bucket(Feature.TELEMEDICINE, p) >= 5000)
    inside = next(p for p in (uuid4() for _ in range(1000))
                  if bucket(Feature.TELEMEDICINE, p) < 5000)
    telemedicine = with_rules(("riverside", None, 50, [outside]))

    assert is_enabled(telemedicine, outside, "riverside")
    assert is_enabled(telemedicine, inside, "riverside")


def test_setting_a_rule_replaces_the_previous_one_for_that_clinic_and_service_type():
    telemedicine = with_rules(("riverside", None, 100, []))

    telemedicine.set_rule("riverside", None, 0, [GRACE], "pausing after feedback", by=ADMIN_REF,
                          at=NOON)

    assert not is_enabled(telemedicine, ADA, "riverside")
    assert is_enabled(telemedicine, GRACE, "riverside")
    assert len(telemedicine.rules) == 1
    assert new_events(telemedicine) == ["RuleSet"]


def test_removing_the_specific_rule_falls_back_to_the_clinic_wide_one():
    telemedicine = with_rules(("riverside", None, 100, []), ("riverside", "screening", 0, []))

    assert telemedicine.remove_rule("riverside", "screening", "screening now by video too",
                                    by=ADMIN_REF, at=NOON)

    assert is_enabled(telemedicine, ADA, "riverside", "screening")
    assert new_events(telemedicine) == ["RuleRemoved"]


def test_the_recorded_change_carries_the_rule_who_when_and_why():
    telemedicine = flag()
    telemedicine.set_rule("riverside", "video", 20, [GRACE, ADA, ADA], "  pilot  ", by=ADMIN_REF,
                          at=NOON)

    (recorded,) = telemedicine.collect_events()
    assert (recorded.clinic_id, recorded.service_type, recorded.percentage) == ("riverside", "video", 20)
    assert recorded.patient_ids == sorted([ADA, GRACE])
    assert (recorded.reason, recorded.by, recorded.at) == ("pilot", ADMIN_REF, NOON)


def test_the_recorded_events_alone_rebuild_the_rules():
    telemedicine = FeatureFlag(feature=Feature.TELEMEDICINE.value, by=ADMIN_REF, at=MORNING)
    telemedicine.set_rule("riverside", None, 30, [ADA], REASON, by=ADMIN_REF, at=MORNING)
    telemedicine.set_rule("hillview", "video", 100, [], REASON, by=ADMIN_REF, at=NOON)
    telemedicine.remove_rule("riverside", None, "ending the pilot", by=ADMIN_REF, at=NOON)

    rebuilt = replay(telemedicine.collect_events())

    assert rebuilt.rules == telemedicine.rules
    assert set(rebuilt.rules) == {"hillview/video"}


# ---- changes that change nothing record nothing --------------------------------------------

def test_setting_the_same_rule_again_records_nothing_even_with_another_reason():
    telemedicine = with_rules(("riverside", "video", 20, [ADA, GRACE]))

    changed = telemedicine.set_rule("riverside", "video", 20, [GRACE, ADA], "again",
                                    by=ADMIN_REF, at=NOON)

    assert changed is False
    assert new_events(telemedicine) == []


def test_removing_a_rule_that_is_not_there_records_nothing():
    telemedicine = with_rules(("riverside", None, 100, []))

    assert telemedicine.remove_rule("riverside", "video", REASON, by=ADMIN_REF, at=NOON) is False
    assert new_events(telemedicine) == []


rules = st.tuples(st.sampled_from(["riverside", "hillview"]),
                  st.sampled_from([None, "video", "follow_up"]),
                  st.integers(0, 100),
                  st.lists(st.sampled_from([ADA, GRACE]), max_size=2))


@given(st.lists(rules, max_size=8))
def test_any_change_repeated_at_once_records_nothing_the_second_time(changes):
    telemedicine = FeatureFlag(feature=Feature.TELEMEDICINE.value, by=ADMIN_REF, at=MORNING)
    for clinic_id, service_type, percentage, patient_ids in changes:
        telemedicine.set_rule(clinic_id, service_type, percentage, patient_ids, REASON,
                              by=ADMIN_REF, at=NOON)
        recorded = len(telemedicine.pending_events)
        telemedicine.set_rule(clinic_id, service_type, percentage, patient_ids, REASON,
                              by=ADMIN_REF, at=NOON)
        assert len(telemedicine.pending_events) == recorded
    assert replay(telemedicine.collect_events()).rules == telemedicine.rules


# ---- validation: every field at once -------------------------------------------------------

def test_every_wrong_field_is_reported_at_once_and_nothing_is_recorded():
    telemedicine = flag()

    with pytest.raises(InvalidInput) as refusal:
        telemedicine.set_rule("Riverside Clinic", "Video Calls", 150,
                              [uuid4() for _ in range(MAX_PATIENTS + 1)], "  ",
                              by=ADMIN_REF, at=NOON)

    assert field_names(refusal) == ["clinic_id", "service_type", "percentage", "patient_ids",
                                    "reason"]
    assert new_events(telemedicine) == []


@pytest.mark.parametrize("percentage", [-1, 101, True])
def test_a_percentage_outside_0_to_100_is_refused(percentage):
    with pytest.raises(InvalidInput) as refusal:
        flag().set_rule("riverside", None, percentage, [], REASON, by=ADMIN_REF, at=NOON)
    assert field_names(refusal) == ["percentage"]


@pytest.mark.parametrize("service_type", ["", "Video", "follow-up", "_video", "video_", "x" * 41])
def test_a_service_type_must_be_lower_case_words_joined_by_underscores(service_type):
    with pytest.raises(InvalidInput) as refusal:
        flag().set_rule("riverside", service_type, 50, [], REASON, by=ADMIN_REF, at=NOON)
    assert field_names(refusal) == ["service_type"]


@pytest.mark.parametrize("clinic_id", ["", "Riverside", "river side", "-riverside", "a" * 65])
def test_a_clinic_is_named_by_its_short_name(clinic_id):
    with pytest.raises(InvalidInput) as refusal:
        flag().set_rule(clinic_id, None, 50, [], REASON, by=ADMIN_REF, at=NOON)
    assert field_names(refusal) == ["clinic_id"]


def test_up_to_ten_thousand_patients_may_be_named():
    telemedicine = flag()
    assert telemedicine.set_rule("riverside", None, 0, [uuid4() for _ in range(MAX_PATIENTS)],
                                 REASON, by=ADMIN_REF, at=NOON)


@pytest.mark.parametrize("reason", ["", "   ", "x" * 501])
def test_a_change_needs_a_short_reason(reason):
    telemedicine = with_rules(("riverside", None, 100, []))
    for change in (lambda: telemedicine.set_rule("riverside", None, 50, [], reason,
                                                 by=ADMIN_REF, at=NOON),
                   lambda: telemedicine.remove_rule("riverside", None, reason, by=ADMIN_REF,
                                                    at=NOON)):
        with pytest.raises(InvalidInput) as refusal:
            change()
        assert field_names(refusal) == ["reason"]
    assert new_events(telemedicine) == []


# ---- stable bucketing ----------------------------------------------------------------------

@settings(max_examples=300)
@given(st.uuids(), st.sampled_from(list(Feature)), st.integers(0, 100), st.integers(0, 100))
def test_raising_a_percentage_only_ever_adds_patients(patient_id, feature, lower, higher):
    lower, higher = sorted((lower, higher))
    smaller = with_rules(("riverside", None, lower, []), feature=feature)
    larger = with_rules(("riverside", None, higher, []), feature=feature)

    if is_enabled(smaller, patient_id, "riverside"):
        assert is_enabled(larger, patient_id, "riverside")


@given(st.uuids(), st.sampled_from(list(Feature)))
def test_a_patients_bucket_is_the_same_every_time_and_none_at_0_all_at_100(patient_id, feature):
    assert bucket(feature, patient_id) == bucket(feature, UUID(str(patient_id)))
    assert 0 <= bucket(feature, patient_id) < 10_000
    assert not is_enabled(with_rules(("riverside", None, 0, []), feature=feature), patient_id,
                          "riverside")
    assert is_enabled(with_rules(("riverside", None, 100, []), feature=feature), patient_id,
                      "riverside")


def test_buckets_are_roughly_uniform():
    # 10,000 ids at 30%: the binomial standard deviation is about 46, so 2,800-3,200 is a
    # band of more than four deviations each side.
    telemedicine = with_rules(("riverside", None, 30, []))
    patients = [UUID(int=n * 0x9E3779B97F4A7C15 % 2**128, version=4) for n in range(10_000)]

    admitted = sum(is_enabled(telemedicine, p, "riverside") for p in patients)

    assert 2_800 <= admitted <= 3_200


def test_each_feature_buckets_patients_independently():
    patients = [UUID(int=n * 0x9E3779B97F4A7C15 % 2**128, version=4) for n in range(2_000)]
    early_video = {p for p in patients if bucket(Feature.TELEMEDICINE, p) < 5_000}
    early_messages = {p for p in patients if bucket(Feature.MESSAGING, p) < 5_000}

    assert early_video != early_messages
    assert 300 <= len(early_video & early_messages) <= 700  # about a quarter of 2,000


# ---- names and refusals --------------------------------------------------------------------

def test_an_unknown_feature_is_named_with_the_known_ones():
    assert parse_feature("records") is Feature.RECORDS
    with pytest.raises(UnknownFeature) as refusal:
        parse_feature("teleportation")
    assert refusal.value.extensions["known"] == ["telemedicine", "prescriptions", "records",
                                                 "messaging", "emergency_location"]


def test_a_patient_is_told_plainly_and_never_about_the_rollout():
    refusal = FeatureNotAvailable.at(Feature.TELEMEDICINE, "riverside")

    assert refusal.detail.startswith("Video consultations are not available at Riverside yet.")
    assert refusal.code == "feature-not-available"
    assert "%" not in refusal.detail and "percent" not in refusal.detail
    assert FeatureNotAvailable.at(Feature.MESSAGING, "st-marys").detail.startswith(
        "Secure messages to your care team are not available at St Marys yet.")


# ---- who may see and change a clinic's rules -----------------------------------------------

def test_a_clinic_administrator_manages_only_their_own_clinics_rules():
    riverside_admin = Actor(uuid4(), Role.CLINIC_ADMIN, frozenset({"riverside"}))
    riverside, hillview = ClinicResource("riverside"), ClinicResource("hillview")

    for action in (Action.FEATURE_FLAGS_MANAGE, Action.FEATURE_FLAGS_READ):
        assert is_allowed(riverside_admin, action, riverside)
        assert not is_allowed(riverside_admin, action, hillview)
    assert is_allowed(riverside_admin, Action.FEATURE_FLAGS_READ)  # the list, rule by rule
    assert not is_allowed(riverside_admin, Action.FEATURE_FLAGS_MANAGE)  # no clinic named


@pytest.mark.parametrize("role", ["patient", "doctor", "nurse", "reception", "care_manager",
                                  "prescription_coordinator", "support", "auditor"])
def test_nobody_else_sees_or_changes_rollout_rules(role):
    member = Actor(uuid4(), Role(role), frozenset({"riverside"}))
    for action in (Action.FEATURE_FLAGS_MANAGE, Action.FEATURE_FLAGS_READ):
        assert not is_allowed(member, action, ClinicResource("riverside"))
        assert not is_allowed(member, action)


def test_a_clinic_resource_grants_nothing_beyond_feature_flags():
    admin = Actor(uuid4(), Role.CLINIC_ADMIN, frozenset({"riverside"}))
    assert not is_allowed(admin, Action.CONSENT_TEXT_PUBLISH, ClinicResource("riverside"))


def test_only_the_patient_asks_which_features_they_may_use():
    ada = Actor(ADA, Role.PATIENT)
    assert is_allowed(ada, Action.FEATURES_AVAILABLE, PatientResource(ADA))
    assert not is_allowed(ada, Action.FEATURES_AVAILABLE, PatientResource(GRACE))
    admin = Actor(uuid4(), Role.CLINIC_ADMIN, frozenset({"riverside"}))
    assert not is_allowed(admin, Action.FEATURES_AVAILABLE, PatientResource(admin.account_id))
