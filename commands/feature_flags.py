"""The feature-flags context: administrators set rollout rules; every other context asks the gate.

`require` is what a command of another context calls before acting for a patient ("may Ada
book a video consultation at Riverside?"). It is on the hot path, so the application keeps
the four flags in its aggregate cache; every read fast-forwards the cached flag with one query
for newer events, so a change saved by any process is seen at once.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import JSONTranscoder, Transcoding

from commands.eventstore import CareApplication, EventStoreSettings
from commands.idempotency import IdempotencyKey, IdempotencyStore, Outcome, run_once
from domain.access import Action, Actor, ClinicResource, authorise, is_allowed
from domain.errors import ConcurrentChange
from domain.feature_flags import (
    Feature,
    FeatureFlag,
    FeatureNotAvailable,
    Rule,
    check_removal,
    feature_flag_id,
    is_enabled,
)


@dataclass(frozen=True)
class FlagOverview:
    feature: Feature
    version: int  # of the whole flag: send it back as If-Match when changing a rule
    rules: list[Rule]


@dataclass(frozen=True)
class RuleChange:
    """One recorded change of a rule, for the audit view."""

    version: int
    action: str  # rule_set | rule_removed
    clinic_id: str
    service_type: str | None
    percentage: int | None
    patient_ids: list[UUID]
    reason: str
    by: str
    at: datetime


class RuleAsDict(Transcoding):
    """Snapshots hold the rules; a rule is stored as a plain mapping."""

    type = Rule
    name = "feature_flag_rule"

    def encode(self, obj: Rule) -> dict[str, Any]:
        return {"clinic_id": obj.clinic_id, "service_type": obj.service_type,
                "percentage": obj.percentage, "patient_ids": sorted(obj.patient_ids)}

    def decode(self, data: dict[str, Any]) -> Rule:
        return Rule(data["clinic_id"], data["service_type"], data["percentage"],
                    frozenset(data["patient_ids"]))


class FeatureFlagsApplication(CareApplication):
    name = "feature_flags"
    snapshotting_intervals = {FeatureFlag: 100}
    env = {"AGGREGATE_CACHE_MAXSIZE": str(len(Feature))}

    def __init__(self, store: EventStoreSettings) -> None:
        super().__init__(store)
        self.idempotency = IdempotencyStore(self.factory.datastore)  # type: ignore[attr-defined]

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        transcoder.register(RuleAsDict())

    # ---- administration --------------------------------------------------------------------

    def set_rule(self, actor: Actor, feature: Feature, clinic_id: str, service_type: str | None,
                 percentage: int, patient_ids: Collection[UUID], reason: str, at: datetime,
                 expected_version: int | None = None,
                 key: IdempotencyKey | None = None) -> Outcome:
        authorise(actor, Action.FEATURE_FLAGS_MANAGE, ClinicResource(clinic_id))

        def decide() -> tuple[dict[str, Any], list[Any]]:
            flag = self._current(feature, expected_version) or FeatureFlag(
                feature=feature.value, by=actor.ref, at=at)
            flag.set_rule(clinic_id, service_type, percentage, patient_ids, reason,
                          by=actor.ref, at=at)
            return _changed(flag), [flag]

        return run_once(self, self.idempotency, key, decide)

    def remove_rule(self, actor: Actor, feature: Feature, clinic_id: str,
                    service_type: str | None, reason: str, at: datetime,
                    expected_version: int | None = None,
                    key: IdempotencyKey | None = None) -> Outcome:
        authorise(actor, Action.FEATURE_FLAGS_MANAGE, ClinicResource(clinic_id))

        def decide() -> tuple[dict[str, Any], list[Any]]:
            flag = self._current(feature, expected_version)
            if flag is None:  # nothing to remove, but bad input is refused all the same
                check_removal(clinic_id, service_type, reason)
                return {"feature": feature.value, "version": 0}, []
            flag.remove_rule(clinic_id, service_type, reason, by=actor.ref, at=at)
            return _changed(flag), [flag]

        return run_once(self, self.idempotency, key, decide)

    def overview(self, actor: Actor) -> list[FlagOverview]:
        """Every feature with the rules of the clinics the administrator manages."""
        authorise(actor, Action.FEATURE_FLAGS_READ)
        overviews = []
        for feature in Feature:
            flag = self.flag(feature)
            rules = [] if flag is None else sorted(
                (rule for rule in flag.rules.values() if _may_see(actor, rule.clinic_id)),
                key=lambda rule: (rule.clinic_id, rule.service_type or ""))
            overviews.append(FlagOverview(feature, flag.version if flag else 0, rules))
        return overviews

    def history(self, actor: Actor, feature: Feature) -> list[RuleChange]:
        """Every change to the feature's rules at the administrator's clinics, newest first."""
        authorise(actor, Action.FEATURE_FLAGS_READ)
        changes = []
        recorded: Any
        for recorded in self.events.get(feature_flag_id(feature)):
            kind = type(recorded).__name__
            if kind == "Created" or not _may_see(actor, recorded.clinic_id):
                continue
            removed = kind == "RuleRemoved"
            changes.append(RuleChange(
                version=recorded.originator_version,
                action="rule_removed" if removed else "rule_set",
                clinic_id=recorded.clinic_id,
                service_type=recorded.service_type,
                percentage=None if removed else recorded.percentage,
                patient_ids=[] if removed else list(recorded.patient_ids),
                reason=recorded.reason, by=recorded.by, at=recorded.at))
        return changes[::-1]

    # ---- the gate ---------------------------------------------------------------------------

    def flag(self, feature: Feature) -> FeatureFlag | None:
        try:
            return self.repository.get(feature_flag_id(feature))
        except AggregateNotFoundError:
            return None

    def is_available(self, feature: Feature, patient_id: UUID, clinic_id: str,
                     service_type: str | None = None) -> bool:
        try:
            # Read-only: the cached flag itself, not a copy (its rules are replaced, never
            # changed in place, so a concurrent fast-forward cannot tear them).
            flag: FeatureFlag = self.repository.get(feature_flag_id(feature),
                                                    deepcopy_from_cache=False)
        except AggregateNotFoundError:
            return False
        return is_enabled(flag, patient_id, clinic_id, service_type)

    def require(self, feature: Feature, patient_id: UUID, clinic_id: str,
                service_type: str | None = None) -> None:
        """Refuses, in words the patient understands, unless the feature is on for them there."""
        if not self.is_available(feature, patient_id, clinic_id, service_type):
            raise FeatureNotAvailable.at(feature, clinic_id)

    def available_to(self, patient_id: UUID, clinic_id: str,
                     service_type: str | None = None) -> frozenset[Feature]:
        return frozenset(f for f in Feature
                         if self.is_available(f, patient_id, clinic_id, service_type))

    # ---- helpers ----------------------------------------------------------------------------

    def _current(self, feature: Feature, expected_version: int | None) -> FeatureFlag | None:
        """The flag to change, refused if the caller saw another version (0: no flag yet)."""
        flag = self.flag(feature)
        version = flag.version if flag is not None else 0
        if expected_version is not None and expected_version != version:
            raise ConcurrentChange(
                "These rollout rules were changed since you loaded them. Nothing was saved; "
                "reload them, check the change, and try again.", current_version=version)
        return flag


def _may_see(actor: Actor, clinic_id: str) -> bool:
    return is_allowed(actor, Action.FEATURE_FLAGS_READ, ClinicResource(clinic_id))


def _changed(flag: FeatureFlag) -> dict[str, Any]:
    return {"feature": flag.feature, "version": flag.version}
