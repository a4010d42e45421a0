"""Feature flags: which clinics offer telemedicine, prescriptions, records and messaging, and to whom.

One FeatureFlag aggregate per feature holds its rollout rules, one per clinic (optionally
narrowed to one service type). A rule lets in a percentage of patients, by a stable bucket of
their id, and/or a named list of patients. These event types are the storage format and are
versioned with care; every change carries who made it, when and why.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from uuid import UUID

from eventsourcing.domain import event

from domain.aggregate import CareAggregate, topic
from domain.errors import Forbidden, NotFound, Rejections
from domain.ids import stream_id


class Feature(StrEnum):
    TELEMEDICINE = "telemedicine"
    PRESCRIPTIONS = "prescriptions"
    RECORDS = "records"
    MESSAGING = "messaging"
    EMERGENCY_LOCATION = "emergency_location"


# How a patient reads each feature's name, at the start of "... are not available at ...".
FEATURE_LABELS = {
    Feature.TELEMEDICINE: "Video consultations",
    Feature.PRESCRIPTIONS: "Repeat prescription requests",
    Feature.RECORDS: "Medical records in the app",
    Feature.MESSAGING: "Secure messages to your care team",
    Feature.EMERGENCY_LOCATION: "Emergency location sharing",
}

BUCKETS = 10_000  # a percentage has two decimals' worth of room, so raising it never reshuffles
MAX_PATIENTS = 10_000
MAX_REASON_LENGTH = 500
_CLINIC_ID = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_SERVICE_TYPE = re.compile(r"^[a-z]+(?:_[a-z0-9]+)*$")


class UnknownFeature(NotFound):
    code = "unknown-feature"
    title = "There is no such feature"


class FeatureNotAvailable(Forbidden):
    """A command the patient's clinic does not offer them yet. The detail names the feature and
    the clinic only: never the rollout's percentage or list."""

    code = "feature-not-available"
    title = "Not available yet"

    @classmethod
    def at(cls, feature: Feature, clinic_id: str) -> FeatureNotAvailable:
        return cls(f"{FEATURE_LABELS[feature]} are not available at {clinic_name(clinic_id)} "
                   "yet. You can still contact the clinic in the usual way.",
                   feature=feature.value)


def parse_feature(name: str) -> Feature:
    try:
        return Feature(name)
    except ValueError:
        known = [f.value for f in Feature]
        raise UnknownFeature(f"There is no feature called '{name[:40]}'. The features are: "
                             + ", ".join(known) + ".", known=known) from None


def feature_flag_id(feature: Feature) -> UUID:
    return stream_id("feature-flag", feature.value)


def clinic_name(clinic_id: str) -> str:
    """A readable clinic name from its short name, until clinics become reference data."""
    return " ".join(part.capitalize() for part in clinic_id.split("-"))


def bucket(feature: Feature, patient_id: UUID) -> int:
    """The patient's stable place (0 to 9,999) in this feature's rollout order."""
    digest = hashlib.sha256(f"{feature.value}:{patient_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


@dataclass(frozen=True)
class Rule:
    """Who gets a feature at one clinic (and, if set, one service type)."""

    clinic_id: str
    service_type: str | None
    percentage: int
    patient_ids: frozenset[UUID]

    @property
    def key(self) -> str:
        return rule_key(self.clinic_id, self.service_type)

    def admits(self, feature: Feature, patient_id: UUID) -> bool:
        return (patient_id in self.patient_ids
                or bucket(feature, patient_id) < self.percentage * (BUCKETS // 100))


def rule_key(clinic_id: str, service_type: str | None) -> str:
    return f"{clinic_id}/{service_type or '*'}"


def check_place(clinic_id: str, service_type: str | None, errors: Rejections) -> None:
    if len(clinic_id) > 64 or not _CLINIC_ID.match(clinic_id):
        errors.add("clinic_id", "Use the clinic's short name: lower-case letters, digits and "
                                "hyphens, for example riverside.")
    if service_type is not None and (len(service_type) > 40
                                     or not _SERVICE_TYPE.match(service_type)):
        errors.add("service_type", "Use a service type in lower case with underscores, for "
                                   "example video or follow_up; leave it empty for all services.")


def _check_reason(reason: str, errors: Rejections) -> str:
    reason = reason.strip()
    if not reason:
        errors.add("reason", "Say briefly why you are making this change; it is kept in the "
                             "audit trail.")
    elif len(reason) > MAX_REASON_LENGTH:
        errors.add("reason", f"Keep the reason to {MAX_REASON_LENGTH} characters or fewer.")
    return reason


def check_removal(clinic_id: str, service_type: str | None, reason: str) -> str:
    """Refuses a removal with every wrong field at once; returns the reason as recorded."""
    errors = Rejections()
    check_place(clinic_id, service_type, errors)
    reason = _check_reason(reason, errors)
    errors.raise_if_any()
    return reason


class FeatureFlag(CareAggregate):
    """The rollout rules of one feature across the clinic network."""

    TOPIC = topic("feature_flags", "FeatureFlag")

    @event("Created", topic=topic("feature_flags", "FeatureFlag.Created"))
    def __init__(self, feature: str, by: str, at: datetime) -> None:
        self.feature = feature
        # Replaced as a whole on every change (never mutated), so that a reader of a cached
        # flag always sees one consistent set of rules.
        self.rules: dict[str, Rule] = {}

    @classmethod
    def create_id(cls, feature: str, **_: object) -> UUID:
        return feature_flag_id(Feature(feature))

    def rule_for(self, clinic_id: str, service_type: str | None) -> Rule | None:
        """The rule that decides: the clinic's rule for the service type, else its clinic-wide one."""
        rules = self.rules
        specific = rules.get(rule_key(clinic_id, service_type)) if service_type else None
        return specific or rules.get(rule_key(clinic_id, None))

    def set_rule(self, clinic_id: str, service_type: str | None, percentage: int,
                 patient_ids: Collection[UUID], reason: str, by: str, at: datetime) -> bool:
        """Adds or replaces the rule for the clinic and service type. Setting the rule it already
        has records nothing (whatever the reason)."""
        errors = Rejections()
        check_place(clinic_id, service_type, errors)
        if isinstance(percentage, bool) or not 0 <= percentage <= 100:
            errors.add("percentage", "Choose a percentage of patients from 0 to 100.")
        chosen = frozenset(patient_ids)
        if len(chosen) > MAX_PATIENTS:
            errors.add("patient_ids", f"Name at most {MAX_PATIENTS:,} patients; for more, use a "
                                      "percentage.")
        reason = _check_reason(reason, errors)
        errors.raise_if_any()
        rule = Rule(clinic_id, service_type, percentage, chosen)
        if self.rules.get(rule.key) == rule:
            return False
        self._rule_set(clinic_id=clinic_id, service_type=service_type, percentage=percentage,
                       patient_ids=sorted(chosen), reason=reason, by=by, at=at)
        return True

    @event("RuleSet", topic=topic("feature_flags", "FeatureFlag.RuleSet"))
    def _rule_set(self, clinic_id: str, service_type: str | None, percentage: int,
                  patient_ids: list[UUID], reason: str, by: str, at: datetime) -> None:
        rule = Rule(clinic_id, service_type, percentage, frozenset(patient_ids))
        self.rules = {**self.rules, rule.key: rule}

    def remove_rule(self, clinic_id: str, service_type: str | None, reason: str, by: str,
                    at: datetime) -> bool:
        """Removes the rule for the clinic and service type; removing a rule that is not there
        records nothing."""
        reason = check_removal(clinic_id, service_type, reason)
        if rule_key(clinic_id, service_type) not in self.rules:
            return False
        self._rule_removed(clinic_id=clinic_id, service_type=service_type, reason=reason, by=by,
                           at=at)
        return True

    @event("RuleRemoved", topic=topic("feature_flags", "FeatureFlag.RuleRemoved"))
    def _rule_removed(self, clinic_id: str, service_type: str | None, reason: str, by: str,
                      at: datetime) -> None:
        key = rule_key(clinic_id, service_type)
        self.rules = {k: rule for k, rule in self.rules.items() if k != key}


def is_enabled(flag: FeatureFlag | None, patient_id: UUID, clinic_id: str,
               service_type: str | None = None) -> bool:
    """Whether the patient gets the feature at the clinic for the service type. Pure: the most
    specific rule decides, and no rule means not available."""
    if flag is None:
        return False
    rule = flag.rule_for(clinic_id, service_type)
    return rule is not None and rule.admits(Feature(flag.feature), patient_id)
