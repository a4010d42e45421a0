"""The profiles context: a patient changes their profile one section at a time and reads it and
its history; clinic staff read it.

Every change may name the profile version the client read (`expected_version`, from the API's
If-Match): if the profile changed since, nothing is saved and the client is told to reload,
so that one device never silently overwrites what another just saved.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError

from commands.eventstore import CareApplication, EventStoreSettings
from commands.idempotency import IdempotencyKey, IdempotencyStore, Outcome, run_once
from commands.identity import IdentityApplication
from domain.access import Action, Actor, PatientResource, Relationship, authorise
from domain.errors import ConcurrentChange, NotFound
from domain.identity import Role
from domain.profiles import (
    AccessibilityPreferences,
    CommunicationPreferences,
    ContactDetails,
    EmergencyContact,
    PatientProfile,
    PreferredClinic,
    Profile,
    ProfileChange,
    changes,
    empty_profile,
    profile_id,
)

Change = Callable[[PatientProfile], bool]


class ProfilesApplication(CareApplication):
    name = "profiles"

    def __init__(self, store: EventStoreSettings, identity: IdentityApplication) -> None:
        super().__init__(store)
        self.identity = identity  # for the mobile number given at registration
        self.idempotency = IdempotencyStore(self.factory.datastore)  # type: ignore[attr-defined]

    # ---- reads ------------------------------------------------------------------------------

    def profile(self, actor: Actor, patient_id: UUID) -> Profile:
        """One's own profile."""
        authorise(actor, Action.PROFILE_READ, PatientResource(patient_id))
        return self._state(patient_id)

    def patient_profile(self, actor: Actor, patient_id: UUID,
                        relationship: Relationship | None = None) -> Profile:
        """A patient's profile, as clinic staff see it; `relationship` is what links the actor
        to the patient right now (the care context's `relationship`)."""
        authorise(actor, Action.PATIENT_PROFILE_READ, PatientResource(patient_id, relationship))
        account = self.identity.find_account(patient_id)
        if account is None or account.role != Role.PATIENT:
            raise NotFound("There is no patient with this id.")
        return self._state(patient_id)

    def history(self, actor: Actor, patient_id: UUID) -> list[ProfileChange]:
        """Every change of one's own profile, newest first."""
        authorise(actor, Action.PROFILE_READ, PatientResource(patient_id))
        return changes(self.events.get(profile_id(patient_id)))[::-1]

    # ---- changes ----------------------------------------------------------------------------

    def change_contact(self, actor: Actor, patient_id: UUID, details: ContactDetails,
                       at: datetime, key: IdempotencyKey | None = None,
                       expected_version: int | None = None) -> Outcome:
        return self._change(actor, patient_id, "contact",
                            lambda p: p.change_contact(details, by=actor.ref, at=at),
                            at, key, expected_version)

    def change_emergency_contact(self, actor: Actor, patient_id: UUID, contact: EmergencyContact,
                                 at: datetime, key: IdempotencyKey | None = None,
                                 expected_version: int | None = None) -> Outcome:
        return self._change(actor, patient_id, "emergency_contact",
                            lambda p: p.change_emergency_contact(contact, by=actor.ref, at=at),
                            at, key, expected_version)

    def remove_emergency_contact(self, actor: Actor, patient_id: UUID, at: datetime,
                                 key: IdempotencyKey | None = None,
                                 expected_version: int | None = None) -> Outcome:
        return self._change(actor, patient_id, "emergency_contact",
                            lambda p: p.remove_emergency_contact(by=actor.ref, at=at),
                            at, key, expected_version)

    def change_preferred_clinic(self, actor: Actor, patient_id: UUID, clinic: PreferredClinic,
                                at: datetime, key: IdempotencyKey | None = None,
                                expected_version: int | None = None) -> Outcome:
        return self._change(actor, patient_id, "preferred_clinic",
                            lambda p: p.change_preferred_clinic(clinic, by=actor.ref, at=at),
                            at, key, expected_version)

    def change_communication(self, actor: Actor, patient_id: UUID,
                             preferences: CommunicationPreferences, at: datetime,
                             key: IdempotencyKey | None = None,
                             expected_version: int | None = None) -> Outcome:
        return self._change(actor, patient_id, "communication",
                            lambda p: p.change_communication(preferences, by=actor.ref, at=at),
                            at, key, expected_version)

    def change_accessibility(self, actor: Actor, patient_id: UUID,
                             preferences: AccessibilityPreferences, at: datetime,
                             key: IdempotencyKey | None = None,
                             expected_version: int | None = None) -> Outcome:
        return self._change(actor, patient_id, "accessibility",
                            lambda p: p.change_accessibility(preferences, by=actor.ref, at=at),
                            at, key, expected_version)

    def _change(self, actor: Actor, patient_id: UUID, section: str, change: Change, at: datetime,
                key: IdempotencyKey | None, expected_version: int | None) -> Outcome:
        authorise(actor, Action.PROFILE_UPDATE, PatientResource(patient_id))

        def decide() -> tuple[dict[str, Any], list[Any]]:
            profile, version = self._profile(patient_id, actor, at)
            if expected_version is not None and expected_version != version:
                raise ConcurrentChange(
                    "Your profile was changed somewhere else (perhaps on another device) since "
                    "you opened it. Nothing was saved: reload your profile, check it and make "
                    "your change again.", current_version=version)
            if not change(profile):  # nothing new: not even the profile's first event is saved
                return {"section": section, "version": version}, []
            return {"section": section, "version": profile.version}, [profile]

        return run_once(self, self.idempotency, key, decide)

    # ---- loading ----------------------------------------------------------------------------

    def _profile(self, patient_id: UUID, actor: Actor, at: datetime) -> tuple[PatientProfile, int]:
        """The stored profile and its version, or a new one (version 0 until it is saved)."""
        try:
            profile: PatientProfile = self.repository.get(profile_id(patient_id))
        except AggregateNotFoundError:
            return PatientProfile(patient_id=patient_id,
                                  registered_mobile_phone=self._registered_mobile(patient_id),
                                  by=actor.ref, at=at), 0
        return profile, profile.version

    def preferred_clinic(self, patient_id: UUID) -> str | None:
        """The clinic a patient chose in their profile, if any (where their uploads go)."""
        preferred = self._state(patient_id).preferred_clinic
        return preferred.clinic_id if preferred is not None else None

    def _state(self, patient_id: UUID) -> Profile:
        try:
            profile: PatientProfile = self.repository.get(profile_id(patient_id))
        except AggregateNotFoundError:
            return empty_profile(patient_id, self._registered_mobile(patient_id))
        return profile.state()

    def _registered_mobile(self, patient_id: UUID) -> str | None:
        account = self.identity.find_account(patient_id)
        return account.mobile_phone if account is not None else None
