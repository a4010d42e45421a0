"""Feature flags: clinic administrators roll features out; a patient asks what they can use."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import msgspec
from litestar import Controller, Request, Response, get, post, put
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody

from api.container import Container
from api.dependencies import (
    idempotency_key,
    local_time,
    position_headers,
    signed_in,
)
from commands.feature_flags import RuleChange
from commands.idempotency import Outcome
from domain.access import Action, Actor, PatientResource, authorise
from domain.errors import FieldError, InvalidInput, Rejections
from domain.feature_flags import FEATURE_LABELS, Feature, Rule, check_place, parse_feature

APPLICATION = "feature_flags"
_IF_MATCH = re.compile(r'^(?:W/)?"?([0-9]{1,9})"?$')


class SetRule(msgspec.Struct, forbid_unknown_fields=True):
    clinic_id: str
    reason: str
    service_type: str | None = None  # null: every service type of the clinic
    percentage: int = 0
    patient_ids: list[UUID] = msgspec.field(default_factory=list)


class RemoveRule(msgspec.Struct, forbid_unknown_fields=True):
    clinic_id: str
    reason: str
    service_type: str | None = None


class RuleView(msgspec.Struct):
    clinic_id: str
    service_type: str | None
    percentage: int
    patient_ids: list[UUID]


class FlagView(msgspec.Struct):
    feature: Feature
    label: str
    version: int  # send it as If-Match when changing this feature's rules
    rules: list[RuleView]


class RuleChanged(msgspec.Struct):
    feature: Feature
    version: int
    changed: bool


class ChangeView(msgspec.Struct):
    version: int
    action: str  # rule_set | rule_removed
    clinic_id: str
    service_type: str | None
    percentage: int | None
    patient_ids: list[UUID]
    reason: str
    by_role: str
    by_account_id: str | None
    at: datetime
    at_local: str | None


class AvailableFeatures(msgspec.Struct):
    clinic_id: str
    service_type: str | None
    telemedicine: bool
    prescriptions: bool
    records: bool
    messaging: bool
    emergency_location: bool


_DEPENDENCIES = signed_in("zone")


def expected_version(request: Request[Any, Any, Any]) -> int | None:
    """The version named in If-Match (as the ETag and `version` gave it), if any."""
    raw = request.headers.get("if-match")
    if raw is None:
        return None
    match = _IF_MATCH.match(raw.strip())
    if match is None:
        raise InvalidInput([FieldError("If-Match", 'must be the version you loaded, for '
                                                   'example "3"')])
    return int(match.group(1))


def _answer(outcome: Outcome) -> Response[RuleChanged]:
    result = outcome.result
    return Response(RuleChanged(Feature(result["feature"]), result["version"], result["changed"]),
                    status_code=200,
                    headers={**position_headers(APPLICATION, outcome.position),
                             "ETag": f'"{result["version"]}"'})


def _rule(rule: Rule) -> RuleView:
    return RuleView(rule.clinic_id, rule.service_type, rule.percentage, sorted(rule.patient_ids))


def _change(change: RuleChange, zone: ZoneInfo) -> ChangeView:
    role, _, account_id = change.by.partition(":")
    return ChangeView(change.version, change.action, change.clinic_id, change.service_type,
                      change.percentage, change.patient_ids, change.reason, role,
                      account_id or None, change.at, local_time(change.at, zone))


class FeatureFlagController(Controller):
    path = "/v1/admin/feature-flags"
    tags = ["feature flags (clinic administrators)"]
    dependencies = _DEPENDENCIES

    @get("", sync_to_thread=True,
         summary="Every feature with its rollout rules at the clinics I administer")
    def overview(self, actor: NamedDependency[Actor],
                 container: NamedDependency[Container]) -> list[FlagView]:
        return [FlagView(o.feature, FEATURE_LABELS[o.feature], o.version,
                         [_rule(rule) for rule in o.rules])
                for o in container.feature_flags.overview(actor)]

    @get("/{feature:str}/history", sync_to_thread=True,
         summary="Every change to a feature's rules at my clinics, newest first")
    def history(self, feature: FromPath[str], actor: NamedDependency[Actor],
                container: NamedDependency[Container],
                zone: NamedDependency[ZoneInfo]) -> list[ChangeView]:
        changes = container.feature_flags.history(actor, parse_feature(feature))
        return [_change(change, zone) for change in changes]

    @put("/{feature:str}/rules", sync_to_thread=True,
         summary="Set the rule for a clinic (and optionally one service type)")
    def set_rule(self, request: Request[Any, Any, State], feature: FromPath[str],
                 data: JSONBody[SetRule], actor: NamedDependency[Actor],
                 container: NamedDependency[Container],
                 now: NamedDependency[datetime]) -> Response[RuleChanged]:
        chosen = parse_feature(feature)
        version = expected_version(request)
        key = idempotency_key(request, actor.ref, f"feature_flags.set_rule.{chosen}.{version}",
                              data)
        outcome = container.feature_flags.set_rule(
            actor, chosen, data.clinic_id, data.service_type, data.percentage, data.patient_ids,
            data.reason, at=now, expected_version=version, key=key)
        return _answer(outcome)

    @post("/{feature:str}/rules/remove", status_code=200, sync_to_thread=True,
          summary="Remove the rule for a clinic (and optionally one service type)")
    def remove_rule(self, request: Request[Any, Any, State], feature: FromPath[str],
                    data: JSONBody[RemoveRule], actor: NamedDependency[Actor],
                    container: NamedDependency[Container],
                    now: NamedDependency[datetime]) -> Response[RuleChanged]:
        chosen = parse_feature(feature)
        version = expected_version(request)
        key = idempotency_key(request, actor.ref,
                              f"feature_flags.remove_rule.{chosen}.{version}", data)
        outcome = container.feature_flags.remove_rule(
            actor, chosen, data.clinic_id, data.service_type, data.reason, at=now,
            expected_version=version, key=key)
        return _answer(outcome)


class MyFeaturesController(Controller):
    path = "/v1/me/features"
    tags = ["feature flags"]
    dependencies = _DEPENDENCIES

    @get("", sync_to_thread=True, summary="Which features I can use at a clinic")
    def mine(self, actor: NamedDependency[Actor], container: NamedDependency[Container],
             clinic_id: FromQuery[str],
             service_type: FromQuery[str | None] = None) -> AvailableFeatures:
        authorise(actor, Action.FEATURES_AVAILABLE, PatientResource(actor.account_id))
        service_type = service_type or None
        errors = Rejections()
        check_place(clinic_id, service_type, errors)
        errors.raise_if_any()
        available = container.feature_flags.available_to(actor.account_id, clinic_id,
                                                         service_type)
        return AvailableFeatures(clinic_id, service_type,
                                 **{feature.value: feature in available for feature in Feature})
