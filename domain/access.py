"""The access policy: one place that answers "may this actor do this action on this resource".

Default deny. Every endpoint and command handler asks `authorise`; nothing decides access on
its own. A decision uses the actor's role and clinics, and, for a patient's resources, the
`Relationship` between the actor and that patient at this moment (care team, proxy,
break-glass), which the command layer reads from the write-side lookup table and passes in.

The rules, in words:
- A patient acts on their own resources. Another patient account acts for them only through an
  accepted, unexpired, unrevoked proxy grant, and only for the actions its scopes cover
  (`SCOPE_OF`); giving or withdrawing consent on someone's behalf needs parental
  responsibility.
- Clinical roles see clinical content only with an active care relationship at one of their
  own clinics, or an active break-glass.
- Reception does administrative work (appointments, contact details, who is in the care team)
  for patients known at one of its clinics, and never sees clinical content.
- Consents are not clinical content, but only the care team and the clinic administrator see
  them: reception does not need them to do its job.
- Clinic administrators manage their clinics' care teams and review break-glass there;
  auditors review break-glass everywhere. Neither sees clinical content through the API, except
  auditors in the audit trail (`/v1/audit`), where it is the point (and their reads are logged).
- Support staff never see a patient's care.
- A clinic's day list (times, patients' names, consultation types, statuses; nothing clinical)
  is for the clinic's reception, clinical staff and administrators.
- Anyone signed in reads the directory of clinics, consultation types and clinicians; a
  clinic's administrators keep its reference data (schedules), any of them the network-wide
  consultation types.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from uuid import UUID

from domain.care import ProxyKind, ProxyScope
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
    FEATURES_AVAILABLE = "features.available"  # which features a patient may use at a clinic
    # A patient's care, for the patient, their proxies and their care team.
    APPOINTMENTS_READ = "appointments.read"
    APPOINTMENTS_BOOK = "appointments.book"
    PRESCRIPTIONS_READ = "prescriptions.read"
    PRESCRIPTIONS_REQUEST = "prescriptions.request"
    RECORDS_READ = "records.read"
    DOCUMENTS_READ = "documents.read"
    MESSAGES_READ = "messages.read"
    MESSAGES_SEND = "messages.send"
    # Relationships.
    PROXIES_MANAGE = "proxies.manage"  # a patient deciding who may act for them
    REPRESENTED_READ = "represented.read"  # whom I act for, and invitations to do so
    PROXY_RESPOND = "proxy.respond"  # the invited account accepts, declines or steps down
    CARE_TEAM_READ = "care_team.read"
    CARE_TEAM_MANAGE = "care_team.manage"  # assign to, or end, a clinic's care relationship
    CARE_TEAM_REFER = "care_team.refer"  # a doctor in the care team refers to a colleague
    PARENTAL_RESPONSIBILITY_RECORD = "parental_responsibility.record"
    BREAK_GLASS_OPEN = "break_glass.open"
    BREAK_GLASS_CLOSE = "break_glass.close"
    BREAK_GLASS_REVIEW = "break_glass.review"  # list and review emergency access
    # Reference data: clinics, rooms, consultation types, clinicians, working patterns.
    SCHEDULE_READ = "schedule.read"  # the public directory, for anyone signed in
    SCHEDULE_MANAGE = "schedule.manage"  # a clinic's administrators keep its reference data
    DAY_LIST_READ = "day_list.read"  # a clinic's day list: times, names, types, statuses
    # Video consultations: the patient's side (or a proxy for appointments), and the
    # clinician's (only the appointment's own clinician runs the call).
    CONSULTATION_JOIN = "consultation.join"
    CONSULTATION_CONDUCT = "consultation.conduct"
    # Repeat prescriptions, staff side: working a clinic's request queues (prescribers approve
    # what needs a clinical review), and keeping patients' repeat medications.
    PRESCRIPTIONS_PROCESS = "prescriptions.process"
    MEDICATIONS_MANAGE = "medications.manage"
    # Documents: the patient (or a proxy with the documents scope) uploads; a clinic's staff
    # review what was uploaded to it.
    DOCUMENTS_UPLOAD = "documents.upload"
    DOCUMENTS_REVIEW = "documents.review"
    # Medical records, staff side: the care team's doctors and nurses enter, correct, annotate
    # and release records; a clinic's administrators import them from the clinic's systems.
    RECORDS_WRITE = "records.write"
    RECORDS_IMPORT = "records.import"
    # Messaging, staff side: a clinic's teams answer the conversations routed to them.
    MESSAGES_ANSWER = "messages.answer"
    # Emergency location sharing: the patient (or a messaging proxy) shares; a clinic's
    # on-call clinicians watch its active shares and close them.
    EMERGENCY_SHARE = "emergency.share"
    # The audit trail: every change and every read, for auditors only.
    AUDIT_READ = "audit.read"
    EMERGENCY_RESPOND = "emergency.respond"


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


# CareBridge itself, when it acts on start-up (publishing the default consent texts) or on
# behalf of another context (a booked appointment puts the clinician in the care team).
SYSTEM = Actor(stream_id("actor", "system"), Role.CLINIC_ADMIN, system=True)


@dataclass(frozen=True)
class Relationship:
    """What links one actor to one patient at one moment (computed by the command layer)."""

    care_team_clinics: frozenset[str] = frozenset()  # the actor's active care relationships
    proxy_scopes: frozenset[ProxyScope] = frozenset()  # from an accepted, unexpired grant
    parent: bool = False  # the proxy grant is parental responsibility
    break_glass: bool = False  # the actor holds active emergency access
    patient_clinics: frozenset[str] = frozenset()  # clinics the patient is known at


NO_RELATIONSHIP = Relationship()


@dataclass(frozen=True)
class Link:
    """One relationship of a patient as the lookup table holds it, with whether it is live
    (accepted or in force, started, not yet ended or expired) at the moment asked about."""

    kind: str  # care_team | proxy | break_glass
    account_id: UUID | None
    clinic_id: str | None = None
    basis: str | None = None  # the care basis, or the proxy kind
    scopes: tuple[str, ...] = ()
    live: bool = True


def relationship_of(account_id: UUID, links: Iterable[Link]) -> Relationship:
    """What the patient's links give this account. Every care-team link, live or not, makes
    the patient known at its clinic; only live links of the account itself give access."""
    care: set[str] = set()
    scopes: set[ProxyScope] = set()
    patient_clinics: set[str] = set()
    parent = break_glass = False
    for link in links:
        if link.kind == "care_team" and link.clinic_id is not None:
            patient_clinics.add(link.clinic_id)
        if link.account_id != account_id or not link.live:
            continue
        if link.kind == "care_team" and link.clinic_id is not None:
            care.add(link.clinic_id)
        elif link.kind == "proxy":
            scopes.update(ProxyScope(s) for s in link.scopes)
            parent = parent or link.basis == ProxyKind.PARENT
        elif link.kind == "break_glass":
            break_glass = True
    return Relationship(frozenset(care), frozenset(scopes), parent, break_glass,
                        frozenset(patient_clinics))


@dataclass(frozen=True)
class PatientResource:
    """Something that belongs to one patient's care.

    `clinic_id` is the clinic the thing belongs to (a care relationship, an emergency access);
    `holder_id` the account that holds a grant of access to this patient (a proxy, the
    clinician who opened emergency access).
    """

    patient_id: UUID
    relationship: Relationship | None = None
    clinic_id: str | None = None
    holder_id: UUID | None = None


@dataclass(frozen=True)
class ClinicResource:
    """Something that belongs to one clinic as a whole (its feature-flag rules)."""

    clinic_id: str


FEATURE_FLAG_ACTIONS = frozenset({Action.FEATURE_FLAGS_READ, Action.FEATURE_FLAGS_MANAGE})


# The proxy scope each action needs. A proxy may do nothing else.
SCOPE_OF: dict[Action, ProxyScope] = {
    Action.APPOINTMENTS_READ: ProxyScope.APPOINTMENTS,
    Action.APPOINTMENTS_BOOK: ProxyScope.APPOINTMENTS,
    Action.CONSULTATION_JOIN: ProxyScope.APPOINTMENTS,
    Action.PRESCRIPTIONS_READ: ProxyScope.PRESCRIPTIONS,
    Action.PRESCRIPTIONS_REQUEST: ProxyScope.PRESCRIPTIONS,
    Action.RECORDS_READ: ProxyScope.RECORDS,
    Action.DOCUMENTS_READ: ProxyScope.DOCUMENTS,
    Action.DOCUMENTS_UPLOAD: ProxyScope.DOCUMENTS,
    Action.MESSAGES_READ: ProxyScope.MESSAGING,
    Action.MESSAGES_SEND: ProxyScope.MESSAGING,
    Action.CONSENT_READ: ProxyScope.CONSENTS,
    Action.EMERGENCY_SHARE: ProxyScope.MESSAGING,
}
# Deciding for someone else what they agree to is for parents only.
PARENT_ONLY: dict[Action, ProxyScope] = {
    Action.CONSENT_GIVE: ProxyScope.CONSENTS,
    Action.CONSENT_WITHDRAW: ProxyScope.CONSENTS,
}

_OWN_PATIENT_ACTIONS = frozenset({
    Action.CONSENT_GIVE, Action.CONSENT_WITHDRAW, Action.CONSENT_READ, Action.PROFILE_READ,
    Action.PROFILE_UPDATE, Action.PROXIES_MANAGE, Action.REPRESENTED_READ,
    Action.FEATURES_AVAILABLE, Action.SCHEDULE_READ, *SCOPE_OF})

# Clinical content: the care team (or break-glass) only; never reception, support, auditors.
CLINICAL_ACTIONS = frozenset({
    Action.RECORDS_READ, Action.DOCUMENTS_READ, Action.PRESCRIPTIONS_READ,
    Action.MESSAGES_READ, Action.MESSAGES_SEND})
# Administrative work on a patient: reception for patients known at its clinics, and the care
# team.
ADMINISTRATIVE_ACTIONS = frozenset({
    Action.APPOINTMENTS_READ, Action.APPOINTMENTS_BOOK, Action.PATIENT_PROFILE_READ,
    Action.CARE_TEAM_READ})
_ADMINISTRATIVE_ROLES = frozenset({Role.RECEPTION, Role.CLINIC_ADMIN})
BREAK_GLASS_ROLES = frozenset({Role.DOCTOR, Role.NURSE})
_REVIEWERS = frozenset({Role.CLINIC_ADMIN, Role.AUDITOR})

# Which staff roles may ever do an action (to some resource). Checked before a resource is
# loaded, so that a made-up id tells a caller without the role nothing.
STAFF_ROLES_FOR: dict[Action, frozenset[Role]] = {
    **{action: CLINICAL_ROLES for action in CLINICAL_ACTIONS},
    **{action: CLINICAL_ROLES | _ADMINISTRATIVE_ROLES for action in ADMINISTRATIVE_ACTIONS},
    Action.PATIENT_CONSENTS_READ: CLINICAL_ROLES | {Role.CLINIC_ADMIN},
    Action.CONSENT_TEXT_PUBLISH: frozenset({Role.CLINIC_ADMIN}),
    Action.FEATURE_FLAGS_READ: frozenset({Role.CLINIC_ADMIN}),
    Action.FEATURE_FLAGS_MANAGE: frozenset({Role.CLINIC_ADMIN}),
    Action.CARE_TEAM_MANAGE: frozenset({Role.CLINIC_ADMIN, Role.CARE_MANAGER}),
    Action.CARE_TEAM_REFER: frozenset({Role.DOCTOR}),
    Action.PARENTAL_RESPONSIBILITY_RECORD: _ADMINISTRATIVE_ROLES,
    Action.BREAK_GLASS_OPEN: BREAK_GLASS_ROLES,
    Action.BREAK_GLASS_CLOSE: BREAK_GLASS_ROLES,
    Action.BREAK_GLASS_REVIEW: _REVIEWERS,
    Action.SCHEDULE_READ: frozenset(Role) - {Role.PATIENT},
    Action.SCHEDULE_MANAGE: frozenset({Role.CLINIC_ADMIN}),
    Action.DAY_LIST_READ: CLINICAL_ROLES | _ADMINISTRATIVE_ROLES,
    Action.CONSULTATION_CONDUCT: CLINICAL_ROLES,
    Action.PRESCRIPTIONS_PROCESS: frozenset({Role.DOCTOR, Role.NURSE,
                                             Role.PRESCRIPTION_COORDINATOR}),
    Action.MEDICATIONS_MANAGE: frozenset({Role.DOCTOR, Role.NURSE, Role.PRESCRIPTION_COORDINATOR,
                                          Role.CLINIC_ADMIN}),
    Action.DOCUMENTS_REVIEW: frozenset({Role.DOCTOR, Role.NURSE, Role.RECEPTION}),
    Action.RECORDS_WRITE: frozenset({Role.DOCTOR, Role.NURSE}),
    Action.RECORDS_IMPORT: frozenset({Role.CLINIC_ADMIN}),
    Action.MESSAGES_ANSWER: frozenset({Role.RECEPTION, Role.NURSE, Role.DOCTOR,
                                       Role.PRESCRIPTION_COORDINATOR, Role.SUPPORT}),
    Action.EMERGENCY_RESPOND: frozenset({Role.DOCTOR, Role.NURSE, Role.CARE_MANAGER}),
    Action.AUDIT_READ: frozenset({Role.AUDITOR}),
}
PRESCRIBERS = frozenset({Role.DOCTOR, Role.NURSE})
# Who reads the internal notes of a record: its clinicians. Other clinical staff in the care
# team (coordinators, care managers) read the record as the clinic holds it, without them.
INTERNAL_NOTE_READERS = frozenset({Role.DOCTOR, Role.NURSE})
PATIENT_ACTIONS = _OWN_PATIENT_ACTIONS | {Action.PROXY_RESPOND} | PARENT_ONLY.keys()


def may_ever(actor: Actor, action: Action) -> bool:
    """Could this actor's role do this action to some resource? The coarse gate before a
    resource is loaded; the decision itself is `is_allowed` with the resource."""
    if actor.role == Role.PATIENT:
        return action in PATIENT_ACTIONS
    return actor.role in STAFF_ROLES_FOR.get(action, frozenset()) or (
        actor.system and action == Action.CARE_TEAM_MANAGE)


def is_allowed(actor: Actor, action: Action,
               resource: PatientResource | ClinicResource | None = None) -> bool:
    if action in SCHEDULE_ACTIONS:
        return _may_use_schedules(actor, action, resource)
    if action == Action.DAY_LIST_READ:
        # Reception, clinical staff and administrators of the clinic; no clinical content.
        return (actor.role in STAFF_ROLES_FOR[action] and isinstance(resource, ClinicResource)
                and resource.clinic_id in actor.clinic_ids)
    if action in (Action.PRESCRIPTIONS_PROCESS, Action.DOCUMENTS_REVIEW, Action.RECORDS_IMPORT,
                  Action.MESSAGES_ANSWER, Action.EMERGENCY_RESPOND):
        # A clinic's work queues (prescriptions, documents to check): its staff of those roles.
        return (actor.role in STAFF_ROLES_FOR[action] and isinstance(resource, ClinicResource)
                and resource.clinic_id in actor.clinic_ids)
    if action == Action.AUDIT_READ:
        return actor.role == Role.AUDITOR and not actor.system
    if action in FEATURE_FLAG_ACTIONS or isinstance(resource, ClinicResource):
        return _may_use_feature_flags(actor, action, resource)
    if actor.role == Role.PATIENT:
        return _patient_may(actor, action, resource)
    if action == Action.CONSENT_TEXT_PUBLISH:
        return actor.role == Role.CLINIC_ADMIN
    if action == Action.PROFILE_READ:
        return resource is not None and resource.patient_id == actor.account_id
    if action == Action.BREAK_GLASS_REVIEW:
        return _may_review(actor, resource)
    if resource is None or action not in STAFF_ROLES_FOR:
        return False
    return _staff_may(actor, action, resource)


def _patient_may(actor: Actor, action: Action, resource: PatientResource | None) -> bool:
    if resource is None:
        return False
    if action == Action.PROXY_RESPOND:
        return resource.holder_id == actor.account_id
    if resource.patient_id == actor.account_id:
        return action in _OWN_PATIENT_ACTIONS
    relationship = resource.relationship or NO_RELATIONSHIP
    if action in SCOPE_OF:
        return SCOPE_OF[action] in relationship.proxy_scopes
    if action in PARENT_ONLY:
        return relationship.parent and PARENT_ONLY[action] in relationship.proxy_scopes
    return False


def _staff_may(actor: Actor, action: Action, resource: PatientResource) -> bool:
    if actor.role not in STAFF_ROLES_FOR[action]:
        return False
    relationship = resource.relationship or NO_RELATIONSHIP
    in_care_team = bool(relationship.care_team_clinics & actor.clinic_ids)
    known_here = bool(relationship.patient_clinics & actor.clinic_ids)
    clinic_is_mine = resource.clinic_id is not None and resource.clinic_id in actor.clinic_ids
    if action == Action.CARE_TEAM_MANAGE:
        return clinic_is_mine or actor.system
    if action == Action.CARE_TEAM_REFER:
        return clinic_is_mine and in_care_team
    if action == Action.BREAK_GLASS_OPEN:
        return clinic_is_mine
    if action == Action.BREAK_GLASS_CLOSE:
        return resource.holder_id == actor.account_id
    if resource.clinic_id is not None and not clinic_is_mine:
        return False  # something of another clinic (a row of another clinic's care team)
    if action == Action.CARE_TEAM_READ and actor.role in (Role.CLINIC_ADMIN, Role.CARE_MANAGER):
        return known_here or in_care_team
    if actor.role in CLINICAL_ROLES:
        return in_care_team or relationship.break_glass
    # Reception and clinic administrators: administrative actions (and, for administrators,
    # consents) for patients known at one of their clinics.
    return known_here


def _may_review(actor: Actor, resource: PatientResource | None) -> bool:
    if actor.role not in _REVIEWERS:
        return False
    if resource is None:
        return True  # the list; each entry is checked with its resource
    if resource.holder_id == actor.account_id:
        return False  # nobody reviews their own emergency access
    return actor.role == Role.AUDITOR or (resource.clinic_id or "") in actor.clinic_ids


def _may_use_feature_flags(actor: Actor, action: Action,
                          resource: PatientResource | ClinicResource | None) -> bool:
    """A clinic's rollout rules are its administrators' business: they see and change only
    their own clinics' rules. The list (no clinic named) is allowed; each rule is checked."""
    if actor.role != Role.CLINIC_ADMIN or action not in FEATURE_FLAG_ACTIONS:
        return False
    if isinstance(resource, ClinicResource):
        return resource.clinic_id in actor.clinic_ids
    return resource is None and action == Action.FEATURE_FLAGS_READ


SCHEDULE_ACTIONS = frozenset({Action.SCHEDULE_READ, Action.SCHEDULE_MANAGE})


def _may_use_schedules(actor: Actor, action: Action,
                       resource: PatientResource | ClinicResource | None) -> bool:
    """Anyone signed in reads the directory of clinics and clinicians. A clinic's reference
    data is changed by its administrators only; network-wide data (no clinic named, such as
    the consultation types) by any clinic administrator."""
    if action == Action.SCHEDULE_READ:
        return resource is None  # the directory, never a patient's or a clinic's own records
    if actor.role != Role.CLINIC_ADMIN or actor.system:
        return False
    if isinstance(resource, ClinicResource):
        return resource.clinic_id in actor.clinic_ids
    return resource is None


def authorise(actor: Actor, action: Action,
              resource: PatientResource | ClinicResource | None = None) -> None:
    if not is_allowed(actor, action, resource):
        raise Forbidden("You do not have access to this. If you think you should, ask your "
                        "clinic administrator.")


def authorise_ever(actor: Actor, action: Action) -> None:
    """The coarse gate (see `may_ever`), with the same answer as `authorise`."""
    if not may_ever(actor, action):
        raise Forbidden("You do not have access to this. If you think you should, ask your "
                        "clinic administrator.")
