"""The access policy: one place that answers "may this actor do this action on this resource".

Default deny. Every endpoint and command handler asks `authorise`; nothing decides access on
its own. The next identity issue adds care relationships, proxies and break-glass here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from uuid import UUID

from domain.errors import Forbidden
from domain.identity import CLINICAL_ROLES, Role
from domain.ids import stream_id


class Action(StrEnum):
    CONSENT_GIVE = "consent.give"
    CONSENT_WITHDRAW = "consent.withdraw"
    CONSENT_READ = "consent.read"
    PATIENT_CONSENTS_READ = "patient.consents.read"  # staff reading a patient's consents
    CONSENT_TEXT_PUBLISH = "consent_text.publish"
    PROFILE_READ = "profile.read"  # one's own account, sessions, activity and profile
    PROFILE_UPDATE = "profile.update"  # a patient changing their own profile
    PATIENT_PROFILE_READ = "patient.profile.read"  # staff reading a patient's profile
    FEATURE_FLAGS_READ = "feature_flags.read"
    FEATURE_FLAGS_MANAGE = "feature_flags.manage"


@dataclass(frozen=True)
class Actor:
    """Who is asking: an authenticated account with its role and clinics."""

    account_id: UUID
    role: Role
    clinic_ids: frozenset[str] = field(default_factory=frozenset)
    system: bool = False

    @property
    def ref(self) -> str:
        """How the actor is written into events: role and account id, never a name."""
        return "system" if self.system else f"{self.role.value}:{self.account_id}"


# CareBridge itself, when it acts on start-up (publishing the default consent texts).
SYSTEM = Actor(stream_id("actor", "system"), Role.CLINIC_ADMIN, system=True)


@dataclass(frozen=True)
class PatientResource:
    """Something that belongs to one patient's care."""

    patient_id: UUID


_OWN_PATIENT_ACTIONS = {Action.CONSENT_GIVE, Action.CONSENT_WITHDRAW, Action.CONSENT_READ,
                        Action.PROFILE_READ, Action.PROFILE_UPDATE}
_STAFF_READ_CONSENT = CLINICAL_ROLES | {Role.CLINIC_ADMIN}


def is_allowed(actor: Actor, action: Action, resource: PatientResource | None = None) -> bool:
    if actor.role == Role.PATIENT:
        return (
            action in _OWN_PATIENT_ACTIONS
            and resource is not None
            and resource.patient_id == actor.account_id
        )
    if action == Action.PATIENT_CONSENTS_READ:
        return actor.role in _STAFF_READ_CONSENT and resource is not None
    if action == Action.CONSENT_TEXT_PUBLISH:
        return actor.role == Role.CLINIC_ADMIN
    if action == Action.PATIENT_PROFILE_READ:
        # Contact details are not clinical: reception needs them as much as clinicians do.
        return (actor.role in CLINICAL_ROLES | {Role.RECEPTION, Role.CLINIC_ADMIN}
                and resource is not None)
    if action in (Action.FEATURE_FLAGS_READ, Action.FEATURE_FLAGS_MANAGE):
        return actor.role == Role.CLINIC_ADMIN
    if action == Action.PROFILE_READ:
        return resource is not None and resource.patient_id == actor.account_id
    return False


def authorise(actor: Actor, action: Action, resource: PatientResource | None = None) -> None:
    if not is_allowed(actor, action, resource):
        raise Forbidden("You do not have access to this. If you think you should, ask your "
                        "clinic administrator.")
