"""Given-helpers for in-memory domain tests: aggregates built from what already happened."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from domain.aggregate import CareAggregate
from domain.consents import Consent, ConsentText, ConsentType, text_hash

ADA = UUID("00000000-0000-4000-8000-00000000ada1")
GRACE = UUID("00000000-0000-4000-8000-000000006ace")
ADA_REF = f"patient:{ADA}"
ADMIN_REF = "clinic_admin:00000000-0000-4000-8000-0000000000ad"
MORNING = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
NOON = MORNING + timedelta(hours=3)
EVENING = MORNING + timedelta(hours=9)

NOVEMBER = "2026-11"
DECEMBER = "2026-12"
NOVEMBER_TEXT = "I agree to have consultations by video, and I can withdraw at any time."
DECEMBER_TEXT = "I agree to video consultations; calls are never recorded; I may withdraw."


def telemedicine_consent(patient_id: UUID = ADA, at: datetime = MORNING) -> Consent:
    """A patient's telemedicine consent that has never been given, with its history collected."""
    consent = Consent(patient_id=patient_id, consent_type=ConsentType.TELEMEDICINE.value,
                      by=f"patient:{patient_id}", at=at)
    consent.collect_events()
    return consent


def given_consent(version: str = NOVEMBER, at: datetime = MORNING) -> Consent:
    consent = telemedicine_consent(at=at)
    consent.give(version, text_hash(NOVEMBER_TEXT), current_version=version, by=ADA_REF, at=at)
    consent.collect_events()
    return consent


def withdrawn_consent(at: datetime = NOON) -> Consent:
    consent = given_consent()
    consent.withdraw("I prefer to come in person", by=ADA_REF, at=at)
    consent.collect_events()
    return consent


def published_text(*versions: tuple[str, str]) -> ConsentText:
    """The telemedicine consent text with the given (version, wording) pairs already published."""
    document = ConsentText(consent_type=ConsentType.TELEMEDICINE.value, by=ADMIN_REF, at=MORNING)
    for version, wording in versions:
        document.publish(version, wording, by=ADMIN_REF, at=MORNING)
    document.collect_events()
    return document


def new_events(aggregate: CareAggregate) -> list[str]:
    """Names of the events recorded since the aggregate was given, in order."""
    return [type(e).__name__ for e in aggregate.pending_events]


def replay(events: Sequence[Any]) -> Any:
    """The aggregate that the recorded events alone rebuild, as loading from the store does."""
    state: Any = None
    for recorded in events:
        state = recorded.mutate(state)
    return state
