"""The identifiers context: the cross-reference of patient identifiers, matching of records that
arrive from clinic systems, and the review queue for the matches a person must decide.

Each patient's identifiers are a `PatientIdentifiers` aggregate (domain/identifiers.py); the
lookup `carebridge.patient_identifier_index` (system, value -> patient) is written in the same
transaction as its events, so a number is never found for the wrong patient, and one number
belongs to one patient at most (its primary key). Matching also needs each patient's family name
and date of birth: `carebridge.patient_demographics`, filled from the identity log by a follower
(`demographics_statements`) and by `remember_demographics`.

An uncertain match (found only by family name and date of birth, or identifiers that point to
different patients) goes to `carebridge.identifier_reviews` for the clinic administrators of the
clinic whose system sent it; confirming links the record's identifiers to the patient chosen,
rejecting closes it. The same record arriving again while its review is open joins that review.
Logs carry review and patient ids, never names, dates of birth or identifier values.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from psycopg.types.json import Jsonb

from commands.eventstore import CareApplication, EventStoreSettings, Statement
from domain.access import Actor
from domain.errors import Conflict, Forbidden, InvalidInput, NotFound, Rejections
from domain.identifiers import (
    MATCHED,
    NHS,
    NONE,
    UNCERTAIN,
    Match,
    PatientIdentifiers,
    checked,
    clinic_of,
    decide,
    family_name_key,
    patient_identifiers_id,
)
from domain.identity import Role

log = logging.getLogger("carebridge.identifiers")

INDEX = "carebridge.patient_identifier_index"
DEMOGRAPHICS = "carebridge.patient_demographics"
REVIEWS = "carebridge.identifier_reviews"
REGISTERED = "carebridge:identity.Account.Registered.v1"
DEMOGRAPHIC_TOPICS = (REGISTERED,)
KEEPERS = frozenset({Role.CLINIC_ADMIN})
MAX_CANDIDATES = 10


@dataclass(frozen=True)
class Demographics:
    """What an incoming record says about the person, besides identifiers."""

    family_name: str
    date_of_birth: date | None  # unknown: never matched on name and birth date


@dataclass(frozen=True)
class Identifiers:
    patient_id: UUID
    identifiers: dict[str, str]
    version: int  # 0: none recorded yet


@dataclass(frozen=True)
class MatchResult:
    outcome: str  # matched | uncertain | none
    patient_id: UUID | None
    reason: str
    review_id: UUID | None


@dataclass(frozen=True)
class Review:
    review_id: UUID
    clinic_id: str
    system: str
    identifiers: dict[str, str]
    family_name: str
    date_of_birth: date
    reason: str
    candidates: list[UUID]
    status: str  # open | confirmed | rejected
    patient_id: UUID | None
    created_at: datetime
    decided_by: str | None
    decided_at: datetime | None


def _may_keep(actor: Actor) -> None:
    if actor.role not in KEEPERS or actor.system:
        raise Forbidden("Only clinic administrators keep patients' identifiers.")


def _system_of_mine(actor: Actor, system: str, field: str, errors: Rejections) -> None:
    if system != NHS and clinic_of(system) not in actor.clinic_ids:
        errors.add(field, "This system belongs to a clinic you do not administer.")


def demographics_statements(topic: str, event: Any) -> list[Statement]:
    """What the identity log's events call for in the demographics lookup (a follower of the
    identity log runs these with its tracking position): patients' family names and dates of
    birth, for matching."""
    if topic != REGISTERED or getattr(event, "role", None) != Role.PATIENT.value:
        return []
    if event.date_of_birth is None:
        return []
    return [_demographics(event.originator_id, event.family_name, event.date_of_birth)]


def _demographics(patient_id: UUID, family_name: str, born: date) -> Statement:
    return Statement(
        f"INSERT INTO {DEMOGRAPHICS} (patient_id, family_name_key, date_of_birth)"
        " VALUES (%s, %s, %s) ON CONFLICT (patient_id) DO UPDATE SET"
        " family_name_key = EXCLUDED.family_name_key, date_of_birth = EXCLUDED.date_of_birth",
        (patient_id, family_name_key(family_name), born))


class IdentifiersApplication(CareApplication):
    name = "identifiers"
    snapshotting_intervals = {PatientIdentifiers: 50}

    def __init__(self, store: EventStoreSettings,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        super().__init__(store)
        self.datastore = self.factory.datastore  # type: ignore[attr-defined]
        self.clock = clock

    # ---- a patient's identifiers ------------------------------------------------------------

    def identifiers_of(self, actor: Actor, patient_id: UUID) -> Identifiers:
        _may_keep(actor)
        found = self._aggregate(patient_id)
        if found is None:
            return Identifiers(patient_id, {}, 0)
        return Identifiers(patient_id, dict(found.identifiers), found.version)

    def put(self, actor: Actor, patient_id: UUID, identifiers: Mapping[str, str], at: datetime,
            expected_version: int | None = None) -> Identifiers:
        """Makes the NHS number and the local numbers of the administrator's clinics' systems
        exactly these; other clinics' systems are kept as they are. Every wrong identifier is
        named at once, including one that already belongs to another patient."""
        _may_keep(actor)
        clean = checked(identifiers)
        errors = Rejections()
        for system in clean:
            _system_of_mine(actor, system, f"identifiers.{system}", errors)
        errors.raise_if_any()
        self._refuse_taken(patient_id, clean, errors)
        found = self._aggregate(patient_id)
        version = found.version if found else 0
        if expected_version is not None and expected_version != version:
            raise Conflict("These identifiers were changed since you loaded them. Nothing was "
                           "saved; reload them and try again.", current_version=version)
        aggregate = found or PatientIdentifiers(patient_id=patient_id, by=actor.ref, at=at)
        kept = {system: value for system, value in aggregate.identifiers.items()
                if system != NHS and clinic_of(system) not in actor.clinic_ids}
        aggregate.replace({**kept, **clean}, by=actor.ref, at=at)
        self._save(aggregate)
        log.info("identifiers of patient %s saved by %s (version %d)", patient_id, actor.ref,
                 aggregate.version)
        return Identifiers(patient_id, dict(aggregate.identifiers), aggregate.version)

    def remember_demographics(self, patient_id: UUID, family_name: str, born: date) -> None:
        statement = _demographics(patient_id, family_name, born)
        with self.datastore.transaction(commit=True) as cur:
            cur.execute(statement.sql, statement.params)

    # ---- matching ---------------------------------------------------------------------------

    def match(self, system: str, identifiers: Mapping[str, str], demographics: Demographics,
              at: datetime, errors: Rejections | None = None) -> MatchResult:
        """Applies the match rules to a record from `system`; an uncertain match is queued for
        review (a record already waiting joins its open review). Every wrong field at once,
        with those the caller found (`errors`)."""
        errors = errors or Rejections()
        if clinic_of(system) is None:
            errors.add("system", "Name the system as clinic and system in lower case, for "
                                 "example riverside-emis.")
        clean: dict[str, str] = {}
        try:
            clean = checked(identifiers)
        except InvalidInput as refused:
            errors.errors.extend(refused.errors)
        if not demographics.family_name.strip() or len(demographics.family_name) > 200:
            errors.add("family_name", "Give the family name the record carries.")
        errors.raise_if_any()
        found = self._decide(clean, demographics)
        fingerprint = _fingerprint(system, clean, demographics)
        if found.outcome == UNCERTAIN:
            found = self._decided_before(fingerprint, found)
        review_id = self._queue(system, clean, demographics, found, fingerprint, at) \
            if found.outcome == UNCERTAIN else None
        log.info("record from %s: %s (%s)%s", system, found.outcome, found.reason,
                 f", review {review_id}" if review_id else "")
        return MatchResult(found.outcome, found.patient_id, found.reason, review_id)

    def match_for(self, actor: Actor, system: str, identifiers: Mapping[str, str],
                  demographics: Demographics, at: datetime) -> MatchResult:
        """`match`, asked by a clinic administrator for a system of one of their clinics."""
        _may_keep(actor)
        errors = Rejections()
        if clinic_of(system) is not None:
            _system_of_mine(actor, system, "system", errors)
        return self.match(system, identifiers, demographics, at, errors)

    def resolve_patient(self, system: str, identifiers: Mapping[str, str],
                        demographics: Demographics, at: datetime | None = None) -> UUID | None:
        """The patient a record from a clinic system is about, for the record and schedule
        imports: the patient when the match is certain, else None (an uncertain match waits
        in the review queue; import it again once it is confirmed)."""
        result = self.match(system, identifiers, demographics, at or self.clock())
        return result.patient_id if result.outcome == MATCHED else None

    def _decide(self, identifiers: Mapping[str, str], demographics: Demographics) -> Match:
        with self.datastore.get_connection() as conn:
            by_identifier = {
                row["system"]: row["patient_id"] for row in conn.execute(
                    f"SELECT system, patient_id FROM {INDEX} WHERE (system, value) IN"
                    " (SELECT * FROM unnest(%s::text[], %s::text[]))",
                    (list(identifiers), list(identifiers.values()))).fetchall()}
            by_demographics = [] if by_identifier else [
                row["patient_id"] for row in conn.execute(
                    f"SELECT patient_id FROM {DEMOGRAPHICS} WHERE family_name_key = %s"
                    " AND date_of_birth = %s ORDER BY patient_id LIMIT %s",
                    (family_name_key(demographics.family_name), demographics.date_of_birth,
                     MAX_CANDIDATES)).fetchall()]
        return decide(by_identifier, by_demographics)

    def _decided_before(self, fingerprint: str, found: Match) -> Match:
        """An administrator's last decision on this very record, if the candidates are still
        the same: confirmed for one of them is a certain match; rejected is no match (the
        record is not queued again every time it is imported)."""
        with self.datastore.get_connection() as conn:
            row = conn.execute(
                f"SELECT status, patient_id, candidates FROM {REVIEWS} WHERE fingerprint = %s"
                " AND status <> 'open' ORDER BY decided_at DESC LIMIT 1",
                (fingerprint,)).fetchone()
        if row is None or set(row["candidates"]) != set(found.candidates):
            return found
        if row["status"] == "confirmed":
            return Match(MATCHED, row["patient_id"], (row["patient_id"],), "confirmed_review")
        return Match(NONE, None, (), "rejected_review")

    def _queue(self, system: str, identifiers: Mapping[str, str], demographics: Demographics,
               found: Match, fingerprint: str, at: datetime) -> UUID:
        with self.datastore.transaction(commit=True) as cur:
            row = cur.execute(
                f"INSERT INTO {REVIEWS} (review_id, clinic_id, system, identifiers, family_name,"
                " date_of_birth, reason, candidates, status, fingerprint, created_at)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, 'open', %s, %s)"
                " ON CONFLICT (fingerprint) WHERE status = 'open' DO UPDATE"
                " SET candidates = EXCLUDED.candidates, reason = EXCLUDED.reason"
                " RETURNING review_id",
                (uuid.uuid4(), clinic_of(system), system, Jsonb(dict(identifiers)),
                 " ".join(demographics.family_name.split()), demographics.date_of_birth,
                 found.reason, list(found.candidates), fingerprint, at)).fetchone()
        assert row is not None
        review_id: UUID = row["review_id"]
        return review_id

    # ---- the review queue -------------------------------------------------------------------

    def reviews(self, actor: Actor, status: str = "open", limit: int = 100) -> list[Review]:
        """Reviews of the administrator's clinics with this status, oldest first."""
        _may_keep(actor)
        with self.datastore.get_connection() as conn:
            rows = conn.execute(
                f"{_REVIEW} WHERE status = %s AND clinic_id = ANY(%s)"
                " ORDER BY created_at, review_id LIMIT %s",
                (status, sorted(actor.clinic_ids), max(1, min(limit, 500)))).fetchall()
        return [Review(**row) for row in rows]

    def confirm(self, actor: Actor, review_id: UUID, patient_id: UUID | None,
                at: datetime) -> Review:
        """Links the record's identifiers to the patient chosen among the candidates (the only
        candidate when there is one). Confirming again for the same patient does nothing."""
        review = self._review(actor, review_id)
        if review.status == "confirmed" and patient_id in (None, review.patient_id):
            return review
        if review.status != "open":
            raise Conflict(f"This review is already {review.status}.")
        chosen = patient_id or (review.candidates[0] if len(review.candidates) == 1 else None)
        if chosen is None or chosen not in review.candidates:
            errors = Rejections()
            errors.add("patient_id", "Choose the patient among the review's candidates.")
            errors.raise_if_any()
        assert chosen is not None
        self._refuse_taken(chosen, review.identifiers, Rejections())
        aggregate = self._aggregate(chosen) or PatientIdentifiers(
            patient_id=chosen, by=actor.ref, at=at)
        for system, value in sorted(review.identifiers.items()):
            held = aggregate.identifiers.get(system)
            if held is not None and held != value:
                raise Conflict(f"The patient already has another {system} identifier; correct "
                               "their identifiers first if this one is right.", system=system)
            aggregate.assign(system, value, by=actor.ref, at=at)
        if aggregate.pending_events:
            self._save(aggregate, also=[_decision(review_id, "confirmed", chosen, actor, at)])
        else:
            self._decided(review_id, "confirmed", chosen, actor, at)
        log.info("identifier review %s confirmed for patient %s by %s", review_id, chosen,
                 actor.ref)
        return self._review(actor, review_id)

    def reject(self, actor: Actor, review_id: UUID, at: datetime) -> Review:
        """Closes the review: the record is about none of the candidates."""
        review = self._review(actor, review_id)
        if review.status == "rejected":
            return review
        if review.status != "open":
            raise Conflict(f"This review is already {review.status}.")
        self._decided(review_id, "rejected", None, actor, at)
        log.info("identifier review %s rejected by %s", review_id, actor.ref)
        return self._review(actor, review_id)

    def _decided(self, review_id: UUID, status: str, patient_id: UUID | None, actor: Actor,
                 at: datetime) -> None:
        decision = _decision(review_id, status, patient_id, actor, at)
        with self.datastore.transaction(commit=True) as cur:
            cur.execute(decision.sql, decision.params)

    def _review(self, actor: Actor, review_id: UUID) -> Review:
        _may_keep(actor)
        with self.datastore.get_connection() as conn:
            row = conn.execute(f"{_REVIEW} WHERE review_id = %s", (review_id,)).fetchone()
        if row is None or row["clinic_id"] not in actor.clinic_ids:
            raise NotFound("There is no such identifier review at your clinics.")
        return Review(**row)

    # ---- helpers ----------------------------------------------------------------------------

    def _aggregate(self, patient_id: UUID) -> PatientIdentifiers | None:
        try:
            found: PatientIdentifiers = self.repository.get(patient_identifiers_id(patient_id))
        except AggregateNotFoundError:
            return None
        return found

    def _refuse_taken(self, patient_id: UUID, identifiers: Mapping[str, str],
                      errors: Rejections) -> None:
        with self.datastore.get_connection() as conn:
            for row in conn.execute(
                    f"SELECT system FROM {INDEX} WHERE patient_id <> %s AND (system, value) IN"
                    " (SELECT * FROM unnest(%s::text[], %s::text[])) ORDER BY system",
                    (patient_id, list(identifiers), list(identifiers.values()))).fetchall():
                errors.add(f"identifiers.{row['system']}",
                           "This identifier already belongs to another patient.")
        errors.raise_if_any()

    def _save(self, aggregate: PatientIdentifiers, also: list[Statement] | None = None) -> None:
        statements = [Statement(f"DELETE FROM {INDEX} WHERE patient_id = %s",
                                (aggregate.patient_id,))]
        statements += [Statement(f"INSERT INTO {INDEX} (system, value, patient_id)"
                                 " VALUES (%s, %s, %s)", (system, value, aggregate.patient_id))
                       for system, value in sorted(aggregate.identifiers.items())]
        if aggregate.pending_events:  # a repeated command records nothing
            self.save_all(aggregate, also=statements + (also or []))


def _fingerprint(system: str, identifiers: Mapping[str, str], demographics: Demographics) -> str:
    """The same record from the same system, whatever the spelling of the name's case."""
    return hashlib.sha256(json.dumps(
        [system, sorted(identifiers.items()), family_name_key(demographics.family_name),
         demographics.date_of_birth.isoformat() if demographics.date_of_birth else None]
    ).encode()).hexdigest()


def _decision(review_id: UUID, status: str, patient_id: UUID | None, actor: Actor,
              at: datetime) -> Statement:
    return Statement(f"UPDATE {REVIEWS} SET status = %s, patient_id = %s, decided_by = %s,"
                     " decided_at = %s WHERE review_id = %s AND status = 'open'",
                     (status, patient_id, actor.ref, at, review_id))


_REVIEW = (f"SELECT review_id, clinic_id, system, identifiers, family_name, date_of_birth, reason,"
           f" candidates, status, patient_id, created_at, decided_by, decided_at FROM {REVIEWS}")
