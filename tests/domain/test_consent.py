"""A patient's consent: given to the current text, withdrawn, given again; retries record nothing."""

from __future__ import annotations

import pytest

from domain.consents import (
    ConsentTextOutdated,
    ConsentType,
    NothingToWithdraw,
    consent_id,
    text_hash,
)

from .support import (
    ADA,
    ADA_REF,
    DECEMBER,
    DECEMBER_TEXT,
    EVENING,
    GRACE,
    MORNING,
    NOON,
    NOVEMBER,
    NOVEMBER_TEXT,
    given_consent,
    new_events,
    telemedicine_consent,
    withdrawn_consent,
)


def test_a_patient_gives_consent_to_the_current_text_version():
    consent = telemedicine_consent()

    assert consent.give(NOVEMBER, text_hash(NOVEMBER_TEXT), current_version=NOVEMBER,
                        by=ADA_REF, at=NOON)

    assert new_events(consent) == ["Given"]
    assert consent.is_given
    assert (consent.status, consent.text_version, consent.given_at) == ("given", NOVEMBER, NOON)
    assert consent.text_sha256 == text_hash(NOVEMBER_TEXT)
    given = consent.pending_events[0]
    assert (given.patient_id, given.consent_type, given.on_behalf) == (ADA, "telemedicine", False)


def test_giving_the_same_consent_again_unchanged_records_nothing():
    consent = given_consent(NOVEMBER)

    changed = consent.give(NOVEMBER, text_hash(NOVEMBER_TEXT), current_version=NOVEMBER,
                           by=ADA_REF, at=NOON)

    assert changed is False
    assert new_events(consent) == []
    assert consent.given_at == MORNING


def test_consent_to_an_outdated_text_is_refused_naming_the_current_version():
    consent = telemedicine_consent()

    with pytest.raises(ConsentTextOutdated) as refusal:
        consent.give(NOVEMBER, text_hash(NOVEMBER_TEXT), current_version=DECEMBER, by=ADA_REF,
                     at=NOON)

    assert refusal.value.extensions == {"current_version": DECEMBER}
    assert DECEMBER in refusal.value.detail
    assert NOVEMBER in refusal.value.detail
    assert new_events(consent) == []
    assert consent.status == "never_given"


def test_a_consent_given_to_an_older_text_is_given_again_to_the_new_one():
    consent = given_consent(NOVEMBER)

    assert consent.give(DECEMBER, text_hash(DECEMBER_TEXT), current_version=DECEMBER,
                        by=ADA_REF, at=NOON)

    assert new_events(consent) == ["Given"]
    assert (consent.text_version, consent.text_sha256) == (DECEMBER, text_hash(DECEMBER_TEXT))


def test_a_patient_withdraws_consent_with_a_reason():
    consent = given_consent()

    assert consent.withdraw("  I prefer to come in person  ", by=ADA_REF, at=NOON)

    assert new_events(consent) == ["Withdrawn"]
    assert not consent.is_given
    assert (consent.status, consent.withdrawn_at) == ("withdrawn", NOON)
    assert consent.pending_events[0].reason == "I prefer to come in person"
    assert consent.text_version == NOVEMBER, "the history keeps which text was agreed"


def test_a_blank_or_very_long_withdrawal_reason_is_tidied():
    blank = given_consent()
    blank.withdraw("   ", by=ADA_REF, at=NOON)
    rambling = given_consent()
    rambling.withdraw("x" * 2000, by=ADA_REF, at=NOON)

    assert blank.pending_events[0].reason is None
    assert rambling.pending_events[0].reason == "x" * 500


def test_withdrawing_twice_records_nothing_the_second_time():
    consent = withdrawn_consent(at=NOON)

    changed = consent.withdraw(None, by=ADA_REF, at=EVENING)

    assert changed is False
    assert new_events(consent) == []
    assert consent.withdrawn_at == NOON


def test_withdrawing_a_consent_never_given_is_refused():
    consent = telemedicine_consent()

    with pytest.raises(NothingToWithdraw) as refusal:
        consent.withdraw("changed my mind", by=ADA_REF, at=NOON)

    assert "video consultations" in refusal.value.detail
    assert new_events(consent) == []
    assert consent.status == "never_given"


def test_consent_can_be_given_again_after_withdrawal():
    consent = withdrawn_consent(at=NOON)

    assert consent.give(NOVEMBER, text_hash(NOVEMBER_TEXT), current_version=NOVEMBER,
                        by=ADA_REF, at=EVENING)

    assert new_events(consent) == ["Given"]
    assert (consent.status, consent.given_at, consent.withdrawn_at) == ("given", EVENING, None)


def test_a_carer_giving_consent_for_the_patient_is_recorded_as_on_behalf():
    consent = telemedicine_consent()
    carer = "care_manager:00000000-0000-4000-8000-0000000000c1"

    consent.give(NOVEMBER, text_hash(NOVEMBER_TEXT), current_version=NOVEMBER, by=carer, at=NOON,
                 on_behalf=True)

    given = consent.pending_events[0]
    assert (given.by, given.on_behalf) == (carer, True)


def test_each_patient_has_exactly_one_consent_stream_per_type():
    streams = {(patient, kind): consent_id(patient, kind) for patient in (ADA, GRACE)
               for kind in ConsentType}

    assert len(set(streams.values())) == len(streams)
    assert consent_id(ADA, ConsentType.TELEMEDICINE) == telemedicine_consent().id
