"""Patient profiles: the patient reads and changes theirs, section by section, and sees its
history; clinic staff read a patient's profile.

Each response carries the profile version as an ETag. A change may send it back as If-Match:
if the profile changed since it was read, nothing is saved (409, reload and retry). Changing
contact details needs a recent second-factor verification on this session (step-up).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, TypeVar
from uuid import UUID
from zoneinfo import ZoneInfo

import msgspec
from litestar import Controller, Request, Response, delete, get, put
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody

from api.container import Container
from api.dependencies import (
    expected_version,
    idempotency_key,
    position_headers,
    signed_in,
)
from api.step_up import require_step_up
from commands.idempotency import Outcome
from domain.access import Action, Actor, PatientResource, authorise
from domain.profiles import (
    AccessibilityPreferences,
    CommunicationPreferences,
    ContactDetails,
    EmergencyContact,
    PreferredClinic,
    Profile,
    who_changed,
)

T = TypeVar("T")

# Generous limits that only keep absurd input out; the domain gives the real rules, every
# field at once, in plain words (422).
Text = Annotated[str, msgspec.Meta(max_length=200)]
PRIVATE = {"Cache-Control": "no-store"}  # personal data: no cache may keep it


class ContactDetailsBody(msgspec.Struct, forbid_unknown_fields=True):
    mobile_phone: Text | None = None
    landline: Text | None = None
    address_lines: Annotated[list[Text], msgspec.Meta(max_length=10)] = []
    town: Text | None = None
    postcode: Text | None = None
    country: Text | None = None  # ISO 3166-1 alpha-2, e.g. GB


class EmergencyContactBody(msgspec.Struct, forbid_unknown_fields=True):
    name: Text | None = None
    relationship: Text | None = None
    phone: Text | None = None


class PreferredClinicBody(msgspec.Struct, forbid_unknown_fields=True):
    clinic_id: Text | None = None


class QuietHoursBody(msgspec.Struct, forbid_unknown_fields=True):
    start: Text | None = None  # HH:MM, local wall-clock time in `zone`
    end: Text | None = None  # HH:MM; may be earlier than start (wraps midnight)
    zone: Text | None = None  # IANA zone, e.g. Europe/London


class CommunicationBody(msgspec.Struct, forbid_unknown_fields=True):
    channels: Annotated[list[Text], msgspec.Meta(max_length=10)] = []  # email, sms, push
    quiet_hours: QuietHoursBody | None = None
    language: Text | None = None  # BCP 47, e.g. en, cy, pl


class AccessibilityBody(msgspec.Struct, forbid_unknown_fields=True):
    larger_text: bool = False
    screen_reader: bool = False
    simple_language: bool = False
    interpreter_language: Text | None = None  # BCP 47, e.g. pl, ar, bfi (British Sign Language)


class ProfileView(msgspec.Struct):
    patient_id: str
    version: int  # also the ETag; send it back as If-Match when changing a section
    contact: ContactDetailsBody
    emergency_contact: EmergencyContactBody | None
    preferred_clinic: PreferredClinicBody | None
    communication: CommunicationBody | None
    accessibility: AccessibilityBody


class ProfileChanged(msgspec.Struct):
    section: str
    version: int
    changed: bool


class ProfileHistoryEntry(msgspec.Struct):
    section: str  # contact, emergency_contact, preferred_clinic, communication, accessibility
    fields: list[str]  # which fields of the section changed; never their values
    removed: bool
    changed_by: str  # "you" or "clinic staff"; never a name or an id
    at: datetime
    at_local: str


def _view(profile: Profile) -> ProfileView:
    def section(name: str, body: Any) -> Any:
        return msgspec.convert(getattr(profile, name), body, from_attributes=True)

    return ProfileView(
        patient_id=str(profile.patient_id),
        version=profile.version,
        contact=section("contact", ContactDetailsBody),
        emergency_contact=section("emergency_contact", EmergencyContactBody | None),
        preferred_clinic=section("preferred_clinic", PreferredClinicBody | None),
        communication=section("communication", CommunicationBody | None),
        accessibility=section("accessibility", AccessibilityBody),
    )


def _read(profile: Profile) -> Response[ProfileView]:
    return Response(_view(profile), headers={"ETag": f'"{profile.version}"', **PRIVATE})


def _value(body: msgspec.Struct, section: type[T]) -> T:
    """The domain's (unchecked) value of a section from its request body: same field names."""
    return msgspec.convert(body, section, from_attributes=True)


def _conditions(request: Request[Any, Any, Any], actor: Actor, operation: str,
                body: Any) -> dict[str, Any]:
    """What makes a change safe to retry and to race: its Idempotency-Key and If-Match."""
    return {"key": idempotency_key(request, actor.ref, f"profile.{operation}", body),
            "expected_version": expected_version(request, "the profile you read")}


def _answer(outcome: Outcome) -> Response[ProfileChanged]:
    return Response(ProfileChanged(**outcome.result),
                    headers={"ETag": f'"{outcome.result["version"]}"',
                             **position_headers("profiles", outcome.position)})


_DEPENDENCIES = signed_in("zone")


class ProfileController(Controller):
    path = "/v1/me/profile"
    tags = ["profiles"]
    dependencies = _DEPENDENCIES

    @get("/", sync_to_thread=True, summary="My profile (the ETag is its version)")
    def mine(self, actor: NamedDependency[Actor],
             container: NamedDependency[Container]) -> Response[ProfileView]:
        return _read(container.profiles.profile(actor, actor.account_id))

    @get("/history", sync_to_thread=True,
         summary="Every change of my profile, newest first: what changed, when and by whom")
    def history(self, actor: NamedDependency[Actor], container: NamedDependency[Container],
                zone: NamedDependency[ZoneInfo]) -> Response[list[ProfileHistoryEntry]]:
        entries = [
            ProfileHistoryEntry(change.section, list(change.fields), change.removed,
                                who_changed(change.by, actor.account_id), change.at,
                                change.at.astimezone(zone).isoformat())
            for change in container.profiles.history(actor, actor.account_id)
        ]
        return Response(entries, headers=PRIVATE)

    @put("/contact", sync_to_thread=True,
         summary="Change my contact details (needs a recent second-factor check: step-up)")
    def contact(self, request: Request[Any, Any, State], data: JSONBody[ContactDetailsBody],
                actor: NamedDependency[Actor], container: NamedDependency[Container],
                now: NamedDependency[datetime]) -> Response[ProfileChanged]:
        # Someone who may not change a profile at all is told so, not asked to step up first.
        authorise(actor, Action.PROFILE_UPDATE, PatientResource(actor.account_id))
        require_step_up(request, now)
        return _answer(container.profiles.change_contact(
            actor, actor.account_id, _value(data, ContactDetails), at=now,
            **_conditions(request, actor, "contact", data)))

    @put("/emergency-contact", sync_to_thread=True,
         summary="Set or change my emergency contact")
    def emergency_contact(self, request: Request[Any, Any, State],
                          data: JSONBody[EmergencyContactBody], actor: NamedDependency[Actor],
                          container: NamedDependency[Container],
                          now: NamedDependency[datetime]) -> Response[ProfileChanged]:
        return _answer(container.profiles.change_emergency_contact(
            actor, actor.account_id, _value(data, EmergencyContact), at=now,
            **_conditions(request, actor, "emergency_contact", data)))

    @delete("/emergency-contact", status_code=200, sync_to_thread=True,
            summary="Remove my emergency contact")
    def remove_emergency_contact(self, request: Request[Any, Any, State],
                                 actor: NamedDependency[Actor],
                                 container: NamedDependency[Container],
                                 now: NamedDependency[datetime]) -> Response[ProfileChanged]:
        return _answer(container.profiles.remove_emergency_contact(
            actor, actor.account_id, at=now,
            **_conditions(request, actor, "emergency_contact.remove", {})))

    @put("/preferred-clinic", sync_to_thread=True,
         summary="Choose the clinic I prefer to attend")
    def preferred_clinic(self, request: Request[Any, Any, State],
                         data: JSONBody[PreferredClinicBody], actor: NamedDependency[Actor],
                         container: NamedDependency[Container],
                         now: NamedDependency[datetime]) -> Response[ProfileChanged]:
        return _answer(container.profiles.change_preferred_clinic(
            actor, actor.account_id, _value(data, PreferredClinic), at=now,
            **_conditions(request, actor, "preferred_clinic", data)))

    @put("/communication", sync_to_thread=True,
         summary="How and when the clinic may contact me: channels, quiet hours, language")
    def communication(self, request: Request[Any, Any, State], data: JSONBody[CommunicationBody],
                      actor: NamedDependency[Actor], container: NamedDependency[Container],
                      now: NamedDependency[datetime]) -> Response[ProfileChanged]:
        return _answer(container.profiles.change_communication(
            actor, actor.account_id, _value(data, CommunicationPreferences), at=now,
            **_conditions(request, actor, "communication", data)))

    @put("/accessibility", sync_to_thread=True,
         summary="What helps me: larger text, screen reader, simple language, an interpreter")
    def accessibility(self, request: Request[Any, Any, State],
                      data: JSONBody[AccessibilityBody], actor: NamedDependency[Actor],
                      container: NamedDependency[Container],
                      now: NamedDependency[datetime]) -> Response[ProfileChanged]:
        return _answer(container.profiles.change_accessibility(
            actor, actor.account_id, _value(data, AccessibilityPreferences), at=now,
            **_conditions(request, actor, "accessibility", data)))


class StaffProfileController(Controller):
    path = "/v1/staff/patients"
    tags = ["profiles (staff)"]
    dependencies = _DEPENDENCIES

    @get("/{patient_id:uuid}/profile", sync_to_thread=True,
         summary="A patient's profile: contact details, emergency contact and preferences")
    def patient_profile(self, patient_id: FromPath[UUID], actor: NamedDependency[Actor],
                        container: NamedDependency[Container],
                        now: NamedDependency[datetime]) -> Response[ProfileView]:
        relationship = container.care.relationship(actor, patient_id, now)
        return _read(container.profiles.patient_profile(actor, patient_id, relationship))
