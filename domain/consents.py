"""Consents: versioned consent texts and each patient's consent of each type.

These event types are the storage format and are versioned with care. A consent event records
which text version was agreed and a SHA-256 hash of that exact text, never the text itself.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from enum import StrEnum
from uuid import UUID

from eventsourcing.domain import event

from domain.aggregate import CareAggregate, topic
from domain.errors import Conflict, FieldError, InvalidInput
from domain.ids import stream_id


class ConsentType(StrEnum):
    TELEMEDICINE = "telemedicine"
    DATA_SHARING = "data_sharing"
    PRESCRIPTION_REQUESTS = "prescription_requests"
    DOCUMENT_REVIEW = "document_review"


CONSENT_LABELS = {
    ConsentType.TELEMEDICINE: "video consultations",
    ConsentType.DATA_SHARING: "sharing your information with your care team",
    ConsentType.PRESCRIPTION_REQUESTS: "repeat prescription requests",
    ConsentType.DOCUMENT_REVIEW: "review of the documents you upload",
}


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def consent_text_id(consent_type: ConsentType) -> UUID:
    return stream_id("consent-text", consent_type.value)


def consent_id(patient_id: UUID, consent_type: ConsentType) -> UUID:
    return stream_id("consent", patient_id, consent_type.value)


class ConsentTextVersionExists(Conflict):
    code = "consent-text-version-exists"
    title = "That consent text version already exists"


class ConsentTextOutdated(Conflict):
    code = "consent-text-outdated"
    title = "The consent text has changed"


class NothingToWithdraw(Conflict):
    code = "nothing-to-withdraw"
    title = "There is no consent to withdraw"


class ConsentText(CareAggregate):
    """The published wording of one consent type; each publication is a new, immutable version."""

    TOPIC = topic("consents", "ConsentText")

    @event("Created", topic=topic("consents", "ConsentText.Created"))
    def __init__(self, consent_type: str, by: str, at: datetime) -> None:
        self.consent_type = consent_type
        self.versions: dict[str, str] = {}  # version -> sha256 of its text
        self.texts: dict[str, str] = {}
        self.current_version: str | None = None

    @classmethod
    def create_id(cls, consent_type: str, **_: object) -> UUID:
        return consent_text_id(ConsentType(consent_type))

    def publish(self, version: str, text: str, by: str, at: datetime) -> bool:
        """Publishes a new version. Publishing the same version with the same text is a no-op."""
        errors = []
        if not version.strip():
            errors.append(FieldError("version", "Give the version a name, for example 2026-11."))
        if len(text.strip()) < 20:
            errors.append(FieldError("text", "The consent text must be at least 20 characters."))
        if errors:
            raise InvalidInput(errors)
        digest = text_hash(text)
        if version in self.versions:
            if self.versions[version] == digest:
                return False
            raise ConsentTextVersionExists(
                f"Version {version} was already published with different wording; "
                "publish the new wording under a new version name."
            )
        self._published(consent_type=self.consent_type, version=version, text=text,
                        text_sha256=digest, by=by, at=at)
        return True

    @event("VersionPublished", topic=topic("consents", "ConsentText.VersionPublished"))
    def _published(self, consent_type: str, version: str, text: str, text_sha256: str, by: str,
                   at: datetime) -> None:
        self.versions[version] = text_sha256
        self.texts[version] = text
        self.current_version = version


class Consent(CareAggregate):
    """One patient's consent of one type: given for a text version, withdrawn, given again."""

    TOPIC = topic("consents", "Consent")

    @event("Created", topic=topic("consents", "Consent.Created"))
    def __init__(self, patient_id: UUID, consent_type: str, by: str, at: datetime) -> None:
        self.patient_id = patient_id
        self.consent_type = consent_type
        self.status = "never_given"
        self.text_version: str | None = None
        self.text_sha256: str | None = None
        self.given_at: datetime | None = None
        self.withdrawn_at: datetime | None = None

    @classmethod
    def create_id(cls, patient_id: UUID, consent_type: str, **_: object) -> UUID:
        return consent_id(patient_id, ConsentType(consent_type))

    @property
    def is_given(self) -> bool:
        return self.status == "given"

    def give(self, version: str, text_sha256: str, current_version: str, by: str, at: datetime,
             on_behalf: bool = False) -> bool:
        """Gives consent to the current text version. Giving it again unchanged records nothing."""
        if version != current_version:
            raise ConsentTextOutdated(
                f"You were shown version {version}, but the current text is version "
                f"{current_version}. Please read the current text and agree to it.",
                current_version=current_version,
            )
        if self.is_given and self.text_version == version:
            return False
        self._given(patient_id=self.patient_id, consent_type=self.consent_type, version=version,
                    text_sha256=text_sha256, on_behalf=on_behalf, by=by, at=at)
        return True

    @event("Given", topic=topic("consents", "Consent.Given"))
    def _given(self, patient_id: UUID, consent_type: str, version: str, text_sha256: str,
               on_behalf: bool, by: str, at: datetime) -> None:
        self.status = "given"
        self.text_version = version
        self.text_sha256 = text_sha256
        self.given_at = at
        self.withdrawn_at = None

    def withdraw(self, reason: str | None, by: str, at: datetime) -> bool:
        """Withdraws consent. Withdrawing an already withdrawn consent records nothing."""
        if self.status == "withdrawn":
            return False
        if not self.is_given:
            raise NothingToWithdraw(
                f"You have not given consent for {CONSENT_LABELS[ConsentType(self.consent_type)]},"
                " so there is nothing to withdraw."
            )
        self._withdrawn(patient_id=self.patient_id, consent_type=self.consent_type,
                        reason=(reason or "").strip()[:500] or None, by=by, at=at)
        return True

    @event("Withdrawn", topic=topic("consents", "Consent.Withdrawn"))
    def _withdrawn(self, patient_id: UUID, consent_type: str, reason: str | None, by: str,
                   at: datetime) -> None:
        self.status = "withdrawn"
        self.withdrawn_at = at
