"""Relationships that open a patient's care to another account: care teams, proxies, break-glass.

These event types are the storage format and are versioned with care. Each aggregate is one
relationship between one patient and one other account, with its own lifetime:

- `CareRelationship`: a clinician in the patient's care team at one clinic, through an
  appointment, a referral or an explicit assignment, always with an end date.
- `ProxyGrant`: another patient account (a carer, a family member, a parent) acting for the
  patient within scopes, offered and accepted, until revoked, declined or expired.
- `BreakGlass`: a clinician outside the care team opening time-limited emergency access with
  a reason, reviewed afterwards. The reason is staff-only content: it never reaches the
  patient, a log line or an analytics table.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from uuid import UUID

from eventsourcing.domain import event

from domain.aggregate import CareAggregate, topic
from domain.errors import Conflict, Rejections
from domain.ids import stream_id

MAX_CARE_RELATIONSHIP = timedelta(days=2 * 366)
MIN_REASON, MAX_REASON, MAX_NOTE = 20, 1000, 1000
CHILD_UNTIL_AGE = 16


class CareBasis(StrEnum):
    APPOINTMENT = "appointment"
    REFERRAL = "referral"
    ASSIGNMENT = "assignment"


class ProxyKind(StrEnum):
    CARER = "carer"
    FAMILY = "family"
    PARENT = "parent"  # recorded by clinic staff who checked it in person; never offered


class ProxyScope(StrEnum):
    APPOINTMENTS = "appointments"
    PRESCRIPTIONS = "prescriptions"
    RECORDS = "records"
    DOCUMENTS = "documents"
    MESSAGING = "messaging"
    CONSENTS = "consents"


class ReviewOutcome(StrEnum):
    APPROPRIATE = "appropriate"
    INAPPROPRIATE = "inappropriate"


class RelationshipEnded(Conflict):
    code = "relationship-ended"
    title = "This relationship has already ended"


class AlreadyReviewed(Conflict):
    code = "already-reviewed"
    title = "This emergency access was already reviewed"


def care_relationship_id(patient_id: UUID, clinician_id: UUID, clinic_id: str, basis: str,
                         source_ref: str) -> UUID:
    """One relationship per source (an appointment, a referral letter): a repeat extends it."""
    return stream_id("care-relationship", patient_id, clinician_id, clinic_id, basis, source_ref)


def sixteenth_birthday(born: date) -> datetime:
    """The moment a child patient's parents stop acting for them (a 29 February birthday
    counts from 1 March)."""
    try:
        day = born.replace(year=born.year + CHILD_UNTIL_AGE)
    except ValueError:
        day = date(born.year + CHILD_UNTIL_AGE, 3, 1)
    return datetime.combine(day, time(), tzinfo=UTC)


def is_child(born: date, at: datetime) -> bool:
    return at < sixteenth_birthday(born)


def check_reason(reason: str, errors: Rejections, field: str = "reason") -> None:
    length = len(reason.strip())
    if length < MIN_REASON:
        errors.add(field, f"Say why you need emergency access, in at least {MIN_REASON} "
                   "characters.")
    elif length > MAX_REASON:
        errors.add(field, f"Use at most {MAX_REASON} characters.")


class CareRelationship(CareAggregate):
    """A clinician in one patient's care team at one clinic, from a start to an end date."""

    TOPIC = topic("care", "CareRelationship")

    @event("Created", topic=topic("care", "CareRelationship.Created"))
    def __init__(self, patient_id: UUID, clinician_id: UUID, clinic_id: str, basis: str,
                 source_ref: str, starts_at: datetime, ends_at: datetime, by: str,
                 at: datetime) -> None:
        self.patient_id = patient_id
        self.clinician_id = clinician_id
        self.clinic_id = clinic_id
        self.basis = basis
        self.source_ref = source_ref
        self.starts_at = starts_at
        self.ends_at = ends_at
        self.ended_at: datetime | None = None

    @classmethod
    def create_id(cls, patient_id: UUID, clinician_id: UUID, clinic_id: str, basis: str,
                  source_ref: str, **_: object) -> UUID:
        return care_relationship_id(patient_id, clinician_id, clinic_id, basis, source_ref)

    @staticmethod
    def check(starts_at: datetime, ends_at: datetime, at: datetime, errors: Rejections) -> None:
        if ends_at <= max(starts_at, at):
            errors.add("ends_at", "The end date must be in the future and after the start.")
        elif ends_at - starts_at > MAX_CARE_RELATIONSHIP:
            errors.add("ends_at", "A care relationship lasts at most two years; extend it "
                       "later if care continues.")

    def is_active(self, at: datetime) -> bool:
        return self.ended_at is None and self.starts_at <= at < self.ends_at

    def extend(self, ends_at: datetime, by: str, at: datetime) -> bool:
        """Moves the end date later. An earlier or equal end date records nothing."""
        if self.ended_at is not None:
            raise RelationshipEnded("This care relationship has ended; add a new one instead.")
        if ends_at <= self.ends_at:
            return False
        errors = Rejections()
        self.check(self.starts_at, ends_at, at, errors)
        errors.raise_if_any()
        self._extended(patient_id=self.patient_id, ends_at=ends_at, by=by, at=at)
        return True

    @event("Extended", topic=topic("care", "CareRelationship.Extended"))
    def _extended(self, patient_id: UUID, ends_at: datetime, by: str, at: datetime) -> None:
        self.ends_at = ends_at

    def end(self, reason: str, by: str, at: datetime) -> bool:
        if self.ended_at is not None:
            return False
        self._ended(patient_id=self.patient_id, reason=reason.strip()[:500], by=by, at=at)
        return True

    @event("Ended", topic=topic("care", "CareRelationship.Ended"))
    def _ended(self, patient_id: UUID, reason: str, by: str, at: datetime) -> None:
        self.ended_at = at


class ProxyGrant(CareAggregate):
    """A patient lets another account act for them within scopes.

    `proxy_account_id` is None when nobody has an account with the invited address: the offer
    is kept all the same, so that the patient's answer never reveals who has an account.
    """

    TOPIC = topic("care", "ProxyGrant")

    @event("Created", topic=topic("care", "ProxyGrant.Offered"))
    def __init__(self, patient_id: UUID, proxy_email: str, proxy_account_id: UUID | None,
                 kind: str, scopes: list[str], expires_at: datetime | None, by: str,
                 at: datetime) -> None:
        self.patient_id = patient_id
        self.proxy_email = proxy_email
        self.proxy_account_id = proxy_account_id
        self.kind = kind
        self.scopes = sorted(scopes)
        self.expires_at = expires_at
        self.status = "offered"  # offered | active | declined | revoked
        self.offered_at = at
        self.accepted_at: datetime | None = None
        self.ended_at: datetime | None = None
        self.ended_by: str | None = None

    @staticmethod
    def check(scopes: list[str], expires_at: datetime | None, at: datetime,
              errors: Rejections) -> None:
        if not scopes:
            errors.add("scopes", "Choose at least one thing they may help with: "
                       + ", ".join(ProxyScope) + ".")
        if expires_at is not None and expires_at <= at:
            errors.add("expires_on", "The end date must be in the future.")

    def is_active(self, at: datetime) -> bool:
        return self.status == "active" and not self.is_expired(at)

    def is_expired(self, at: datetime) -> bool:
        return self.expires_at is not None and at >= self.expires_at

    def accept(self, by: str, at: datetime) -> bool:
        if self.status == "active":
            return False
        self._still_offered(at)
        self._accepted(patient_id=self.patient_id, by=by, at=at)
        return True

    @event("Accepted", topic=topic("care", "ProxyGrant.Accepted"))
    def _accepted(self, patient_id: UUID, by: str, at: datetime) -> None:
        self.status = "active"
        self.accepted_at = at

    def decline(self, by: str, at: datetime) -> bool:
        if self.status == "declined":
            return False
        self._still_offered(at)
        self._declined(patient_id=self.patient_id, by=by, at=at)
        return True

    @event("Declined", topic=topic("care", "ProxyGrant.Declined"))
    def _declined(self, patient_id: UUID, by: str, at: datetime) -> None:
        self.status = "declined"
        self.ended_at = at

    def change_scopes(self, scopes: list[str], by: str, at: datetime) -> bool:
        if self.status in ("declined", "revoked"):
            raise RelationshipEnded("This access has ended; offer it again instead.")
        if self.kind == ProxyKind.PARENT:
            raise Conflict("A parent acts for their child in everything; to change that, "
                           "end the parental access.")
        errors = Rejections()
        self.check(scopes, None, at, errors)
        errors.raise_if_any()
        if sorted(scopes) == self.scopes:
            return False
        self._scopes_changed(patient_id=self.patient_id, scopes=sorted(scopes), by=by, at=at)
        return True

    @event("ScopesChanged", topic=topic("care", "ProxyGrant.ScopesChanged"))
    def _scopes_changed(self, patient_id: UUID, scopes: list[str], by: str, at: datetime) -> None:
        self.scopes = list(scopes)

    def revoke(self, stepped_down: bool, by: str, at: datetime) -> bool:
        """Ends the access: revoked by the patient, or the proxy stepping down."""
        if self.status in ("revoked", "declined"):
            return False
        self._revoked(patient_id=self.patient_id, stepped_down=stepped_down, by=by, at=at)
        return True

    @event("Revoked", topic=topic("care", "ProxyGrant.Revoked"))
    def _revoked(self, patient_id: UUID, stepped_down: bool, by: str, at: datetime) -> None:
        self.status = "revoked"
        self.ended_at = at
        self.ended_by = "proxy" if stepped_down else "patient"

    def _still_offered(self, at: datetime) -> None:
        if self.status != "offered":
            raise RelationshipEnded("This invitation is no longer open.")
        if self.is_expired(at):
            raise RelationshipEnded("This invitation has expired; ask for a new one.")


class BreakGlass(CareAggregate):
    """Emergency access to one patient by one clinician, for a short time, with a reason."""

    TOPIC = topic("care", "BreakGlass")

    @event("Created", topic=topic("care", "BreakGlass.Opened"))
    def __init__(self, clinician_id: UUID, patient_id: UUID, clinic_id: str, reason: str,
                 expires_at: datetime, by: str, at: datetime) -> None:
        self.clinician_id = clinician_id
        self.patient_id = patient_id
        self.clinic_id = clinic_id
        self.reason = reason
        self.opened_at = at
        self.expires_at = expires_at
        self.closed_at: datetime | None = None
        self.review_outcome: str | None = None
        self.review_note: str | None = None
        self.reviewed_by: str | None = None
        self.reviewed_at: datetime | None = None

    def is_active(self, at: datetime) -> bool:
        return self.closed_at is None and self.opened_at <= at < self.expires_at

    def close(self, by: str, at: datetime) -> bool:
        """Ends the access early. Closing an ended or expired access records nothing."""
        if not self.is_active(at):
            return False
        self._closed(patient_id=self.patient_id, by=by, at=at)
        return True

    @event("Closed", topic=topic("care", "BreakGlass.Closed"))
    def _closed(self, patient_id: UUID, by: str, at: datetime) -> None:
        self.closed_at = at

    def review(self, outcome: ReviewOutcome, note: str | None, by: str, at: datetime) -> bool:
        note = (note or "").strip() or None
        if self.review_outcome is not None:
            if (self.review_outcome, self.review_note) == (outcome.value, note):
                return False
            raise AlreadyReviewed("This emergency access was already reviewed; the review "
                                  "stands as recorded.")
        errors = Rejections()
        if note is not None and len(note) > MAX_NOTE:
            errors.add("note", f"Use at most {MAX_NOTE} characters.")
        if outcome == ReviewOutcome.INAPPROPRIATE and note is None:
            errors.add("note", "Say what was inappropriate, so that it can be followed up.")
        errors.raise_if_any()
        self._reviewed(patient_id=self.patient_id, outcome=outcome.value, note=note, by=by,
                       at=at)
        return True

    @event("Reviewed", topic=topic("care", "BreakGlass.Reviewed"))
    def _reviewed(self, patient_id: UUID, outcome: str, note: str | None, by: str,
                  at: datetime) -> None:
        self.review_outcome = outcome
        self.review_note = note
        self.reviewed_by = by
        self.reviewed_at = at

