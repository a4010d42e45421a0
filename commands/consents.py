"""The consents context: publish consent texts, give and withdraw consent, ask who holds what."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError

from commands.eventstore import CareApplication, EventStoreSettings
from commands.idempotency import IdempotencyKey, IdempotencyStore, Outcome, run_once
from domain.access import Action, Actor, PatientResource, authorise
from domain.consents import (
    CONSENT_LABELS,
    Consent,
    ConsentText,
    ConsentType,
    consent_id,
    consent_text_id,
)
from domain.errors import NotFound


class ConsentTextNotPublished(NotFound):
    code = "consent-text-not-published"
    title = "No consent text has been published yet"


class ConsentsApplication(CareApplication):
    name = "consents"

    def __init__(self, store: EventStoreSettings) -> None:
        super().__init__(store)
        self.idempotency = IdempotencyStore(self.factory.datastore)  # type: ignore[attr-defined]

    def publish_text(self, actor: Actor, consent_type: ConsentType, version: str, text: str,
                     at: datetime, key: IdempotencyKey | None = None) -> Outcome:
        authorise(actor, Action.CONSENT_TEXT_PUBLISH)

        def decide() -> tuple[dict[str, Any], list[Any]]:
            document = self.text_document(consent_type) or ConsentText(
                consent_type=consent_type.value, by=actor.ref, at=at
            )
            document.publish(version, text, by=actor.ref, at=at)
            return {"consent_type": consent_type.value, "version": version,
                    "text_sha256": document.versions[version]}, [document]

        return run_once(self, self.idempotency, key, decide)

    def current_text(self, consent_type: ConsentType) -> ConsentText:
        document = self.text_document(consent_type)
        if document is None or document.current_version is None:
            raise ConsentTextNotPublished(
                f"The clinic has not published a consent text for "
                f"{CONSENT_LABELS[consent_type]} yet."
            )
        return document

    def give(self, actor: Actor, patient_id: UUID, consent_type: ConsentType, version: str,
             at: datetime, key: IdempotencyKey | None = None) -> Outcome:
        authorise(actor, Action.CONSENT_GIVE, PatientResource(patient_id))

        def decide() -> tuple[dict[str, Any], list[Any]]:
            document = self.current_text(consent_type)
            assert document.current_version is not None
            consent = self._consent(patient_id, consent_type) or Consent(
                patient_id=patient_id, consent_type=consent_type.value, by=actor.ref, at=at
            )
            consent.give(
                version=version,
                text_sha256=document.versions.get(version, ""),
                current_version=document.current_version,
                by=actor.ref,
                at=at,
                on_behalf=actor.account_id != patient_id,
            )
            return _view(consent), [consent]

        return run_once(self, self.idempotency, key, decide)

    def withdraw(self, actor: Actor, patient_id: UUID, consent_type: ConsentType,
                 reason: str | None, at: datetime, key: IdempotencyKey | None = None) -> Outcome:
        authorise(actor, Action.CONSENT_WITHDRAW, PatientResource(patient_id))

        def decide() -> tuple[dict[str, Any], list[Any]]:
            consent = self._consent(patient_id, consent_type) or Consent(
                patient_id=patient_id, consent_type=consent_type.value, by=actor.ref, at=at
            )
            consent.withdraw(reason, by=actor.ref, at=at)
            return _view(consent), [consent]

        return run_once(self, self.idempotency, key, decide)

    def holds(self, patient_id: UUID, consent_type: ConsentType) -> bool:
        """Does the patient hold this consent right now, for the current text version?

        A consent given to an older text still counts until the clinic asks again; other
        contexts call this before acting on the patient's behalf.
        """
        consent = self._consent(patient_id, consent_type)
        return consent is not None and consent.is_given

    def text_document(self, consent_type: ConsentType) -> ConsentText | None:
        try:
            return self.repository.get(consent_text_id(consent_type))
        except AggregateNotFoundError:
            return None

    def _consent(self, patient_id: UUID, consent_type: ConsentType) -> Consent | None:
        try:
            return self.repository.get(consent_id(patient_id, consent_type))
        except AggregateNotFoundError:
            return None


def _view(consent: Consent) -> dict[str, Any]:
    return {
        "consent_id": str(consent.id),
        "consent_type": consent.consent_type,
        "status": consent.status,
        "text_version": consent.text_version,
        "version": consent.version,
    }
