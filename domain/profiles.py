"""Patient profiles: contact details, emergency contact, preferred clinic, and how and when the
clinic may contact the patient, each section replaced as a whole and kept with its history.

These event types are the storage format and are versioned with care. They hold personal data
(phone numbers, addresses), which is why event payloads are encrypted at rest and why anything
derived for display elsewhere (account activity) names only the section that changed.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, time
from functools import cache
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo, available_timezones

from eventsourcing.domain import event

from domain.aggregate import CareAggregate, require_utc, topic
from domain.errors import Rejections
from domain.identity import check_phone
from domain.ids import stream_id

CHANNELS = ("email", "sms", "push")
GB = "GB"
MAX_ADDRESS_LINES = 3
MAX_TEXT = 100

_TIME = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$")
_LANGUAGE = re.compile(r"^([A-Za-z]{2,3})(?:-([A-Za-z]{4}))?(?:-([A-Za-z]{2}|[0-9]{3}))?$")
_CLINIC = re.compile(r"^(?=.{2,50}$)[a-z0-9]+(?:-[a-z0-9]+)*$")
_COUNTRY = re.compile(r"^[A-Z]{2}$")
_UK_POSTCODE = re.compile(r"^[A-Z]{1,2}[0-9][A-Z0-9]?[0-9][A-Z]{2}$")
_POSTCODE = re.compile(r"^[A-Z0-9][A-Z0-9 -]{1,9}$")


def profile_id(patient_id: UUID) -> UUID:
    return stream_id("profile", str(patient_id))


# ---- the sections: value types that check and normalise themselves ------------------------


@dataclass(frozen=True)
class ContactDetails:
    mobile_phone: str | None = None
    landline: str | None = None
    address_lines: tuple[str, ...] = ()
    town: str | None = None
    postcode: str | None = None
    country: str | None = None  # ISO 3166-1 alpha-2

    def checked(self) -> ContactDetails:
        """These details tidied up, or every problem with them at once (InvalidInput)."""
        errors = Rejections()
        mobile = _clean(self.mobile_phone)
        if mobile is None:
            errors.add("mobile_phone", "Enter a mobile number so that the clinic can reach you.")
        check_phone(mobile, errors)
        landline = _clean(self.landline)
        _check_phone_number(landline, errors, "landline", "020 7946 0958")
        lines = tuple(line for line in map(_clean, self.address_lines) if line)
        town, country = _clean(self.town), (_clean(self.country) or "").upper() or None
        postcode = (_clean(self.postcode) or "").upper() or None
        if lines or town or postcode or country:  # an address is all of it or none of it
            if not lines:
                errors.add("address_lines", "Enter the first line of the address.")
            elif len(lines) > MAX_ADDRESS_LINES:
                errors.add("address_lines", f"Use at most {MAX_ADDRESS_LINES} address lines.")
            elif any(len(line) > MAX_TEXT for line in lines):
                errors.add("address_lines", f"Keep each address line to {MAX_TEXT} characters.")
            if not town:
                errors.add("town", "Enter the town or city.")
            elif len(town) > MAX_TEXT:
                errors.add("town", f"Use at most {MAX_TEXT} characters.")
            if country is None or not _COUNTRY.match(country):
                errors.add("country", "Choose the country (a two-letter code, GB for the UK).")
            postcode = _checked_postcode(postcode, country, errors)
        errors.raise_if_any()
        return ContactDetails(mobile, landline, lines, town, postcode, country)


@dataclass(frozen=True)
class EmergencyContact:
    name: str | None = None
    relationship: str | None = None
    phone: str | None = None

    def checked(self) -> EmergencyContact:
        errors = Rejections()
        name, relationship, phone = map(_clean, (self.name, self.relationship, self.phone))
        if name is None:
            errors.add("name", "Enter the name of the person to contact in an emergency.")
        elif len(name) > MAX_TEXT:
            errors.add("name", f"Use at most {MAX_TEXT} characters.")
        if relationship is None:
            errors.add("relationship", "Say who they are to you, for example daughter or neighbour.")
        elif len(relationship) > 50:
            errors.add("relationship", "Use at most 50 characters.")
        if phone is None:
            errors.add("phone", "Enter a phone number we can call them on.")
        _check_phone_number(phone, errors, "phone", "+44 7700 900123")
        errors.raise_if_any()
        return EmergencyContact(name, relationship, phone)


@dataclass(frozen=True)
class PreferredClinic:
    clinic_id: str | None = None

    def checked(self) -> PreferredClinic:
        errors = Rejections()
        clinic_id = (self.clinic_id or "").strip()
        if not _CLINIC.match(clinic_id):
            errors.add("clinic_id", "Choose a clinic from the list.")
        errors.raise_if_any()
        return PreferredClinic(clinic_id)


@dataclass(frozen=True)
class QuietHours:
    """A daily window, in local wall-clock time of `zone`, in which nobody is disturbed. It may
    wrap midnight (21:00 to 07:00). The end is not part of the window."""

    start: str | None = None  # HH:MM
    end: str | None = None
    zone: str | None = None  # IANA zone, e.g. Europe/London

    def includes(self, at: datetime) -> bool:
        assert self.start and self.end and self.zone, "use QuietHours after checked()"
        now = require_utc(at).astimezone(ZoneInfo(self.zone)).time()
        start, end = time.fromisoformat(self.start), time.fromisoformat(self.end)
        if start < end:
            return start <= now < end
        return now >= start or now < end


@dataclass(frozen=True)
class CommunicationPreferences:
    channels: tuple[str, ...] = ()
    quiet_hours: QuietHours | None = None
    language: str | None = None

    def checked(self) -> CommunicationPreferences:
        errors = Rejections()
        unknown = set(self.channels) - set(CHANNELS)
        if unknown:
            errors.add("channels", "Choose from email, sms and push.")
        elif not self.channels:
            errors.add("channels", "Choose at least one way to hear from us: email, sms or push.")
        channels = tuple(c for c in CHANNELS if c in self.channels)
        quiet = self.quiet_hours
        if quiet is not None:
            quiet = _checked_quiet_hours(quiet, errors)
        language = _checked_language(self.language, errors, "language",
                                     "Choose the language we should use with you, for "
                                     "example en, cy or pl.")
        errors.raise_if_any()
        return CommunicationPreferences(channels, quiet, language)


@dataclass(frozen=True)
class AccessibilityPreferences:
    larger_text: bool = False
    screen_reader: bool = False
    simple_language: bool = False
    interpreter_language: str | None = None  # BCP 47, e.g. pl, ar, bfi (British Sign Language)

    def checked(self) -> AccessibilityPreferences:
        errors = Rejections()
        interpreter = None
        if _clean(self.interpreter_language) is not None:
            interpreter = _checked_language(
                self.interpreter_language, errors, "interpreter_language",
                "Enter the interpreter's language as a code, for example pl, ar or bfi "
                "(British Sign Language).")
        errors.raise_if_any()
        return AccessibilityPreferences(bool(self.larger_text), bool(self.screen_reader),
                                        bool(self.simple_language), interpreter)


def in_quiet_hours(preferences: CommunicationPreferences | None, at_utc: datetime) -> bool:
    """Is `at_utc` inside the patient's quiet hours? Wall-clock times in the patient's zone,
    so a 21:00 start stays 21:00 across clock changes. On the night the clocks go back, a
    window over 01:00-02:00 holds for both passes of that hour; a window that starts inside
    the hour skipped in spring begins as the clocks jump past its start."""
    if preferences is None or preferences.quiet_hours is None:
        return False
    return preferences.quiet_hours.includes(at_utc)


# ---- the aggregate ------------------------------------------------------------------------


@dataclass(frozen=True)
class Profile:
    """A profile as it reads: every section, and the version to send back as If-Match."""

    patient_id: UUID
    version: int
    contact: ContactDetails
    emergency_contact: EmergencyContact | None
    preferred_clinic: PreferredClinic | None
    communication: CommunicationPreferences | None
    accessibility: AccessibilityPreferences


def empty_profile(patient_id: UUID, registered_mobile_phone: str | None) -> Profile:
    """The profile of a patient who never changed it: the mobile number they registered with."""
    return Profile(patient_id, 0, ContactDetails(mobile_phone=registered_mobile_phone), None,
                   None, None, AccessibilityPreferences())


class PatientProfile(CareAggregate):
    """One patient's profile. A change identical to what is there records nothing."""

    TOPIC = topic("profiles", "PatientProfile")

    @event("Created", topic=topic("profiles", "PatientProfile.Started"))
    def __init__(self, patient_id: UUID, registered_mobile_phone: str | None, by: str,
                 at: datetime) -> None:
        seed = empty_profile(patient_id, registered_mobile_phone)
        self.patient_id = patient_id
        self.contact = seed.contact
        self.emergency_contact: EmergencyContact | None = None
        self.preferred_clinic: PreferredClinic | None = None
        self.communication: CommunicationPreferences | None = None
        self.accessibility = seed.accessibility

    @classmethod
    def create_id(cls, patient_id: UUID, **_: object) -> UUID:
        return profile_id(patient_id)

    def state(self) -> Profile:
        return Profile(self.patient_id, self.version, self.contact, self.emergency_contact,
                       self.preferred_clinic, self.communication, self.accessibility)

    def change_contact(self, details: ContactDetails, by: str, at: datetime) -> bool:
        details = details.checked()
        if details == self.contact:
            return False
        self._contact_changed(patient_id=self.patient_id, mobile_phone=details.mobile_phone,
                              landline=details.landline, address_lines=list(details.address_lines),
                              town=details.town, postcode=details.postcode,
                              country=details.country, by=by, at=at)
        return True

    @event("ContactDetailsChanged", topic=topic("profiles", "PatientProfile.ContactDetailsChanged"))
    def _contact_changed(self, patient_id: UUID, mobile_phone: str | None, landline: str | None,
                         address_lines: list[str], town: str | None, postcode: str | None,
                         country: str | None, by: str, at: datetime) -> None:
        self.contact = ContactDetails(mobile_phone, landline, tuple(address_lines), town,
                                      postcode, country)

    def change_emergency_contact(self, contact: EmergencyContact, by: str, at: datetime) -> bool:
        contact = contact.checked()
        if contact == self.emergency_contact:
            return False
        self._emergency_contact_changed(patient_id=self.patient_id, name=contact.name,
                                        relationship=contact.relationship, phone=contact.phone,
                                        by=by, at=at)
        return True

    @event("EmergencyContactChanged",
           topic=topic("profiles", "PatientProfile.EmergencyContactChanged"))
    def _emergency_contact_changed(self, patient_id: UUID, name: str | None,
                                   relationship: str | None, phone: str | None, by: str,
                                   at: datetime) -> None:
        self.emergency_contact = EmergencyContact(name, relationship, phone)

    def remove_emergency_contact(self, by: str, at: datetime) -> bool:
        if self.emergency_contact is None:
            return False
        self._emergency_contact_removed(patient_id=self.patient_id, by=by, at=at)
        return True

    @event("EmergencyContactRemoved",
           topic=topic("profiles", "PatientProfile.EmergencyContactRemoved"))
    def _emergency_contact_removed(self, patient_id: UUID, by: str, at: datetime) -> None:
        self.emergency_contact = None

    def change_preferred_clinic(self, clinic: PreferredClinic, by: str, at: datetime) -> bool:
        clinic = clinic.checked()
        if clinic == self.preferred_clinic:
            return False
        self._preferred_clinic_changed(patient_id=self.patient_id, clinic_id=clinic.clinic_id,
                                       by=by, at=at)
        return True

    @event("PreferredClinicChanged", topic=topic("profiles", "PatientProfile.PreferredClinicChanged"))
    def _preferred_clinic_changed(self, patient_id: UUID, clinic_id: str | None, by: str,
                                  at: datetime) -> None:
        self.preferred_clinic = PreferredClinic(clinic_id)

    def change_communication(self, preferences: CommunicationPreferences, by: str,
                             at: datetime) -> bool:
        preferences = preferences.checked()
        if preferences == self.communication:
            return False
        quiet = preferences.quiet_hours or QuietHours()
        self._communication_changed(patient_id=self.patient_id, channels=list(preferences.channels),
                                    quiet_hours_start=quiet.start, quiet_hours_end=quiet.end,
                                    quiet_hours_zone=quiet.zone, language=preferences.language,
                                    by=by, at=at)
        return True

    @event("CommunicationPreferencesChanged",
           topic=topic("profiles", "PatientProfile.CommunicationPreferencesChanged"))
    def _communication_changed(self, patient_id: UUID, channels: list[str],
                               quiet_hours_start: str | None, quiet_hours_end: str | None,
                               quiet_hours_zone: str | None, language: str | None, by: str,
                               at: datetime) -> None:
        quiet = (QuietHours(quiet_hours_start, quiet_hours_end, quiet_hours_zone)
                 if quiet_hours_start is not None else None)
        self.communication = CommunicationPreferences(tuple(channels), quiet, language)

    def change_accessibility(self, preferences: AccessibilityPreferences, by: str,
                             at: datetime) -> bool:
        preferences = preferences.checked()
        if preferences == self.accessibility:
            return False
        self._accessibility_changed(patient_id=self.patient_id,
                                    larger_text=preferences.larger_text,
                                    screen_reader=preferences.screen_reader,
                                    simple_language=preferences.simple_language,
                                    interpreter_language=preferences.interpreter_language,
                                    by=by, at=at)
        return True

    @event("AccessibilityPreferencesChanged",
           topic=topic("profiles", "PatientProfile.AccessibilityPreferencesChanged"))
    def _accessibility_changed(self, patient_id: UUID, larger_text: bool, screen_reader: bool,
                               simple_language: bool, interpreter_language: str | None, by: str,
                               at: datetime) -> None:
        self.accessibility = AccessibilityPreferences(larger_text, screen_reader, simple_language,
                                                      interpreter_language)


# The section each change event belongs to: what account activity and the history show.
SECTIONS: dict[str, str] = {
    PatientProfile.ContactDetailsChanged.TOPIC: "contact",  # type: ignore[attr-defined]
    PatientProfile.EmergencyContactChanged.TOPIC: "emergency_contact",  # type: ignore[attr-defined]
    PatientProfile.EmergencyContactRemoved.TOPIC: "emergency_contact",  # type: ignore[attr-defined]
    PatientProfile.PreferredClinicChanged.TOPIC: "preferred_clinic",  # type: ignore[attr-defined]
    PatientProfile.CommunicationPreferencesChanged.TOPIC: "communication",  # type: ignore[attr-defined]
    PatientProfile.AccessibilityPreferencesChanged.TOPIC: "accessibility",  # type: ignore[attr-defined]
}


# ---- history --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProfileChange:
    """One change as the patient sees it: which section, which of its fields, who and when."""

    section: str
    fields: tuple[str, ...]
    removed: bool
    by: str
    at: datetime


def changes(events: Iterable[Any]) -> list[ProfileChange]:
    """Every change in a profile's stored events, oldest first, with the fields it changed."""
    profile: PatientProfile | None = None
    found = []
    for recorded in events:
        section = SECTIONS.get(type(recorded).TOPIC)
        before = getattr(profile, section) if profile is not None and section else None
        profile = recorded.mutate(profile)
        if section is None:
            continue
        after = getattr(profile, section)
        found.append(ProfileChange(section, changed_fields(before, after), after is None,
                                   recorded.by, recorded.at))
    return found


def changed_fields(before: Any, after: Any) -> tuple[str, ...]:
    """Names of the fields that differ between two values of a section (either may be None)."""
    kind = type(after if after is not None else before)
    return tuple(f.name for f in dataclasses.fields(kind)
                 if _filled(getattr(before, f.name, None)) != _filled(getattr(after, f.name, None)))


def who_changed(by: str, patient_id: UUID) -> str:
    """Who made a change, in words for the patient: never a name or an id of staff."""
    if by == f"patient:{patient_id}":
        return "you"
    if by == "system":
        return "CareBridge"
    if by.startswith("patient:"):
        return "someone acting for you"
    return "clinic staff"


# ---- checks ---------------------------------------------------------------------------------


def _clean(value: str | None) -> str | None:
    """Text with its spacing tidied; None when nothing is left."""
    if value is None:
        return None
    return " ".join(value.split()) or None


def _filled(value: Any) -> Any:
    """Missing, blank and empty all read as "not given" when comparing fields."""
    return value if value not in (None, "", ()) else None


def _check_phone_number(phone: str | None, errors: Rejections, field: str, example: str) -> None:
    """The same rule as a mobile number, worded for any phone."""
    found = Rejections()
    check_phone(phone, found, field)
    if found.errors:
        errors.add(field, f"Enter a phone number of 7 to 20 digits, for example {example}.")


def _checked_postcode(postcode: str | None, country: str | None,
                      errors: Rejections) -> str | None:
    if country == GB:
        compact = (postcode or "").replace(" ", "")
        if not _UK_POSTCODE.match(compact):
            errors.add("postcode", "Enter a postcode like SW1A 1AA.")
            return postcode
        return f"{compact[:-3]} {compact[-3:]}"
    if postcode is not None and not _POSTCODE.match(postcode):
        errors.add("postcode", "Enter the postcode as it is written on letters.")
    return postcode


def _checked_quiet_hours(quiet: QuietHours, errors: Rejections) -> QuietHours:
    start, end, zone = (value.strip() if value else "" for value in (quiet.start, quiet.end, quiet.zone))
    for name, value in (("start", start), ("end", end)):
        if not _TIME.match(value):
            errors.add(f"quiet_hours.{name}", "Enter a time as HH:MM, for example 21:00.")
    if _TIME.match(start) and start == end:
        errors.add("quiet_hours.end", "Quiet hours must end at a different time than they start.")
    if zone not in _zones():
        errors.add("quiet_hours.zone", "Choose a time zone such as Europe/London.")
    return QuietHours(start, end, zone)


def _checked_language(code: str | None, errors: Rejections, field: str, message: str) -> str | None:
    match = _LANGUAGE.match((code or "").strip())
    if match is None:
        errors.add(field, message)
        return code
    language, script, region = match.groups()
    return "-".join(part for part in (language.lower(), script and script.title(),
                                      region and region.upper()) if part)


@cache
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())
