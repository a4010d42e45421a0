"""Patient identifiers: the NHS number and the clinic systems' local record numbers of one patient.

One `PatientIdentifiers` aggregate per CareBridge patient holds the identifiers other systems
know the patient by: `nhs` (the NHS number, ten digits with a modulus-11 check digit) and one
local record number per clinic system (`"riverside-emis": "R12345"`). A system's name starts
with the short name of the clinic that runs it. These event types are the storage format and
are versioned with care; every change carries who made it and when.

`decide` holds the match rules for a record that arrives from a clinic system (its identifiers,
family name and date of birth): pure, so the command layer only looks the candidates up.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from eventsourcing.domain import event

from domain.aggregate import CareAggregate, topic
from domain.errors import Rejections
from domain.ids import stream_id

CONTEXT = "identifiers"
NHS = "nhs"
MAX_SYSTEMS = 20
_SYSTEM = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)+$")
_LOCAL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9/._-]{0,39}$")
_NHS_SEPARATORS = re.compile(r"[\s-]")


def nhs_number(value: str) -> str | None:
    """The NHS number in its ten digits (spaces and dashes dropped), or None when it is not
    one: the tenth digit must be the modulus-11 check digit of the first nine."""
    digits = _NHS_SEPARATORS.sub("", value)
    if len(digits) != 10 or not digits.isascii() or not digits.isdigit():
        return None
    total = sum(int(d) * weight for d, weight in zip(digits[:9], range(10, 1, -1), strict=True))
    check = 11 - total % 11
    if check == 11:
        check = 0
    if check == 10 or check != int(digits[9]):
        return None
    return digits


def clinic_of(system: str) -> str | None:
    """The clinic a local system belongs to: the system's name is `<clinic>-<system>` (a
    clinic's short name may itself hold dashes; the system's own name may not)."""
    return system.rsplit("-", 1)[0] if _SYSTEM.match(system) else None


def checked(identifiers: Mapping[str, str], field: str = "identifiers") -> dict[str, str]:
    """The identifiers as stored (NHS number in ten digits, values trimmed), refused with every
    wrong one named at once."""
    errors = Rejections()
    clean: dict[str, str] = {}
    if len(identifiers) > MAX_SYSTEMS:
        errors.add(field, f"Give at most {MAX_SYSTEMS} identifiers.")
    for system, raw in identifiers.items():
        value = raw.strip()
        if system == NHS:
            number = nhs_number(value)
            if number is None:
                errors.add(f"{field}.{NHS}", "This is not a valid NHS number: it has ten "
                                             "digits and the last one is a check digit.")
            else:
                clean[system] = number
        elif not _SYSTEM.match(system) or len(system) > 80:
            errors.add(f"{field}.{system[:80]}", "Name the system as clinic and system in lower "
                                                 "case, for example riverside-emis, or use nhs.")
        elif not _LOCAL.match(value):
            errors.add(f"{field}.{system}", "Give the local record number: up to 40 letters, "
                                            "digits, '/', '.', '_' and '-'.")
        else:
            clean[system] = value
    errors.raise_if_any()
    return clean


def patient_identifiers_id(patient_id: UUID) -> UUID:
    return stream_id("patient-identifiers", patient_id)


class PatientIdentifiers(CareAggregate):
    """The identifiers one patient is known by in the systems around CareBridge."""

    TOPIC = topic(CONTEXT, "PatientIdentifiers")

    @classmethod
    def create_id(cls, patient_id: UUID, **_: object) -> UUID:
        return patient_identifiers_id(patient_id)

    @event("Created", topic=topic(CONTEXT, "PatientIdentifiers.Opened"))
    def __init__(self, patient_id: UUID, by: str, at: datetime) -> None:
        self.patient_id = patient_id
        self.identifiers: dict[str, str] = {}

    def replace(self, identifiers: Mapping[str, str], by: str, at: datetime) -> None:
        """Makes the patient's identifiers exactly these (already `checked`); unchanged ones
        record nothing, so a repeated command records nothing."""
        for system, value in sorted(identifiers.items()):
            if self.identifiers.get(system) != value:
                self._assigned(system=system, value=value, by=by, at=at)
        for system in sorted(set(self.identifiers) - set(identifiers)):
            self._removed(system=system, by=by, at=at)

    def assign(self, system: str, value: str, by: str, at: datetime) -> None:
        """Adds or changes one identifier (a confirmed match links it)."""
        if self.identifiers.get(system) != value:
            self._assigned(system=system, value=value, by=by, at=at)

    @event("Assigned", topic=topic(CONTEXT, "PatientIdentifiers.Assigned"))
    def _assigned(self, system: str, value: str, by: str, at: datetime) -> None:
        self.identifiers = {**self.identifiers, system: value}

    @event("Removed", topic=topic(CONTEXT, "PatientIdentifiers.Removed"))
    def _removed(self, system: str, by: str, at: datetime) -> None:
        self.identifiers = {k: v for k, v in self.identifiers.items() if k != system}


# ---- match rules -------------------------------------------------------------------------------

MATCHED, UNCERTAIN, NONE = "matched", "uncertain", "none"


@dataclass(frozen=True)
class Match:
    """What the match rules made of an incoming record. `matched`: certain, `patient_id` is the
    patient. `uncertain`: a clinic administrator must decide among `candidates` (`reason` says
    why). `none`: nobody known fits."""

    outcome: str
    patient_id: UUID | None
    candidates: tuple[UUID, ...]
    # nhs_number | local_number | conflict | demographics | no_candidate; the command layer adds
    # confirmed_review and rejected_review (an administrator decided on this record before).
    reason: str


def decide(by_identifier: Mapping[str, UUID], by_demographics: Sequence[UUID]) -> Match:
    """The match rules. `by_identifier`: for each incoming identifier that is known, whose it
    is; `by_demographics`: the patients with the same family name and date of birth.
    - identifiers that all point to one patient: certain (by NHS number, else local number);
    - identifiers that point to different patients: a conflict for review;
    - no known identifier, and patients with the same family name and date of birth: uncertain,
      for review (a unique one is proposed; several are all listed);
    - otherwise: no match."""
    found = sorted(set(by_identifier.values()), key=str)
    if len(found) > 1:
        return Match(UNCERTAIN, None, tuple(found), "conflict")
    if found:
        reason = "nhs_number" if NHS in by_identifier else "local_number"
        return Match(MATCHED, found[0], (found[0],), reason)
    candidates = tuple(sorted(set(by_demographics), key=str))
    if candidates:
        return Match(UNCERTAIN, None, candidates, "demographics")
    return Match(NONE, None, (), "no_candidate")


def family_name_key(family_name: str) -> str:
    """How family names are compared: case, spacing and punctuation aside."""
    return re.sub(r"[\s'\u2019.-]+", "", family_name).casefold()
