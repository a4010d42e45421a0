"""A small demo clinic network so that a newcomer can try every endpoint at once."""

from __future__ import annotations

import contextlib
from datetime import UTC, date, datetime
from typing import Any

from api.container import Container
from commands.identity import EmailAlreadyRegistered, NewAccount
from domain.errors import ConcurrentChange
from domain.feature_flags import Feature, rule_key
from domain.identity import Role

DEMO_PASSWORD = "demo-clinic-2026"
CLINICS = {"riverside": "Riverside Health Centre", "hillview": "Hillview Clinic"}

STAFF = [
    ("dr.okafor@riverside.demo", "Amara", "Okafor", Role.DOCTOR, ["riverside"]),
    ("nurse.jones@riverside.demo", "Ffion", "Jones", Role.NURSE, ["riverside"]),
    ("reception@riverside.demo", "Sam", "Patel", Role.RECEPTION, ["riverside"]),
    ("dr.silva@hillview.demo", "Rui", "Silva", Role.DOCTOR, ["hillview"]),
    ("rx@hillview.demo", "Mei", "Chen", Role.PRESCRIPTION_COORDINATOR, ["hillview"]),
    ("admin@carebridge.demo", "Jo", "Bloggs", Role.CLINIC_ADMIN, ["riverside", "hillview"]),
    ("auditor@carebridge.demo", "Ravi", "Shah", Role.AUDITOR, []),
]
PATIENTS = [
    ("ada@patients.demo", "Ada", "Lovelace", date(1958, 12, 10)),
    ("grace@patients.demo", "Grace", "Hopper", date(1946, 12, 9)),
    ("alan@patients.demo", "Alan", "Turing", date(1982, 6, 23)),
]


def load_demo(container: Container) -> str:
    """Creates the demo accounts (once) and returns the sign-ins to print."""
    now = datetime.now(UTC)
    lines = [f"Demo clinic network: {', '.join(CLINICS.values())}.",
             f"Every demo account's password is: {DEMO_PASSWORD}", ""]
    for email, given, family, role, clinics in STAFF:
        with contextlib.suppress(EmailAlreadyRegistered):
            container.identity.add_staff(NewAccount(email, DEMO_PASSWORD, given, family), role,
                                         clinics, by="demo", at=now)
        lines.append(f"  {role.value:<25} {email}")
    for email, given, family, born in PATIENTS:
        with contextlib.suppress(EmailAlreadyRegistered):
            container.identity.register_patient(
                NewAccount(email, DEMO_PASSWORD, given, family, born), at=now)
        lines.append(f"  {'patient':<25} {email}")
    lines += ["", _roll_out_features(container, now), _set_up_schedules(container, now)]
    return "\n".join(lines)


# A staged rollout at every demo clinic: (feature, percentage of patients, named patients).
ROLLOUT = [
    (Feature.TELEMEDICINE, 100, []),
    (Feature.PRESCRIPTIONS, 100, []),
    (Feature.MESSAGING, 50, []),
    (Feature.RECORDS, 0, ["ada@patients.demo", "grace@patients.demo"]),
]


def _roll_out_features(container: Container, now: datetime) -> str:
    """Sets the demo's rules where a clinic has none yet, as its administrator; rules changed
    since are left as they are."""
    identity, flags = container.identity, container.feature_flags
    admin = identity.account_by_email("admin@carebridge.demo")
    actor = identity.actor(admin.id) if admin is not None else None
    if actor is None:
        raise RuntimeError("the demo administrator must be created before the rollout")
    for feature, percentage, emails in ROLLOUT:
        named = [account.id for account in map(identity.account_by_email, emails) if account]
        flag = flags.flag(feature)
        for clinic_id in CLINICS:
            if flag is None or rule_key(clinic_id, None) not in flag.rules:
                with contextlib.suppress(ConcurrentChange):  # another process got there first
                    flags.set_rule(actor, feature, clinic_id, None, percentage, named,
                                   "demo: staged rollout", at=now)
    return ("Feature rollout at every demo clinic: video consultations and repeat prescriptions "
            "for everyone, secure messaging for half of patients, medical records for Ada and "
            "Grace only (see GET /v1/admin/feature-flags as admin@carebridge.demo).")


# The demo network's reference data. Patterns start on a fixed Monday, so loading the demo
# again records nothing.
DEMO_PATTERNS_FROM = date(2026, 1, 5)
DEMO_CLINICS: dict[str, dict[str, Any]] = {
    "riverside": {"name": CLINICS["riverside"], "address_lines": ["1 River Street"],
                  "town": "Bristol", "postcode": "BS1 4AA", "phone": "0117 496 0001"},
    "hillview": {"name": CLINICS["hillview"], "address_lines": ["22 Hill Road"],
                 "town": "Bath", "postcode": "BA1 2BB", "phone": "01225 496 0002"},
}
DEMO_ROOMS = [("riverside-room-1", "riverside", "consulting", "Consulting room 1"),
              ("riverside-room-2", "riverside", "consulting", "Consulting room 2"),
              ("riverside-treatment", "riverside", "treatment", "Treatment room"),
              ("riverside-vaccination", "riverside", "vaccination", "Vaccination room"),
              ("hillview-room-1", "hillview", "consulting", "Consulting room"),
              ("hillview-treatment", "hillview", "treatment", "Treatment room"),
              ("hillview-vaccination", "hillview", "vaccination", "Vaccination room")]
DEMO_TYPES: dict[str, dict[str, Any]] = {
    "gp-in-person": {"name": "GP appointment", "mode": "in_person", "duration_minutes": 15,
                     "room_kind": "consulting"},
    "video": {"name": "Video consultation", "mode": "video", "duration_minutes": 15,
              "preparation": "Find a quiet place; we will call you in the app."},
    "follow-up": {"name": "Follow-up appointment", "mode": "in_person", "duration_minutes": 10,
                  "room_kind": "consulting"},
    "screening": {"name": "Health screening", "mode": "in_person", "duration_minutes": 30,
                  "room_kind": "treatment",
                  "preparation": "Please do not eat for 8 hours before your appointment."},
    "flu-vaccination": {"name": "Flu vaccination", "mode": "in_person", "duration_minutes": 5,
                        "room_kind": "vaccination", "capacity_per_slot": 6,
                        "preparation": "Wear a short-sleeved top."},
}
# email: (display name, specialty, languages, clinics, types, [(starts, ends, slot, types, room)])
DEMO_CLINICIANS: dict[str, tuple[str, str, list[str], list[str], list[str],
                                  list[tuple[str, str, int, list[str], str | None]]]] = {
    "dr.okafor@riverside.demo": (
        "Dr Amara Okafor", "general practice", ["en", "yo"], ["riverside"],
        ["gp-in-person", "video", "follow-up"],
        [("09:00", "12:30", 15, ["gp-in-person", "video", "follow-up"], None),
         ("14:00", "17:30", 15, ["gp-in-person", "video", "follow-up"], None)]),
    "nurse.jones@riverside.demo": (
        "Nurse Ffion Jones", "practice nursing", ["en", "cy"], ["riverside"],
        ["flu-vaccination", "screening"],
        [("09:00", "12:00", 5, ["flu-vaccination"], "riverside-vaccination"),
         ("13:30", "16:30", 30, ["screening"], "riverside-treatment")]),
    "dr.silva@hillview.demo": (
        "Dr Rui Silva", "general practice", ["en", "pt"], ["hillview"],
        ["gp-in-person", "video", "follow-up"],
        [("08:30", "12:30", 15, ["gp-in-person", "video", "follow-up"], None),
         ("13:30", "17:00", 15, ["gp-in-person", "video", "follow-up"], None)]),
}


def _set_up_schedules(container: Container, now: datetime) -> str:
    """The demo clinics, rooms, consultation types, clinician profiles and Monday-to-Friday
    patterns, set as the demo administrator; what is already so records nothing."""
    identity, scheduling = container.identity, container.scheduling
    admin = identity.account_by_email("admin@carebridge.demo")
    actor = identity.actor(admin.id) if admin is not None else None
    if actor is None:
        raise RuntimeError("the demo administrator must be created before the schedules")
    hours = [{"weekday": day, "opens": "08:00", "closes": "18:30"}
             for day in ("monday", "tuesday", "wednesday", "thursday", "friday")]
    with contextlib.suppress(ConcurrentChange):  # another process got there first
        for clinic_id, details in DEMO_CLINICS.items():
            scheduling.put_clinic(actor, clinic_id, details | {
                "timezone": "Europe/London", "opening_hours": hours}, at=now)
        for room_id, clinic_id, kind, name in DEMO_ROOMS:
            scheduling.put_room(actor, room_id, {"clinic_id": clinic_id, "kind": kind,
                                                 "name": name}, at=now)
        for type_id, details in DEMO_TYPES.items():
            scheduling.put_consultation_type(actor, type_id, details, at=now)
        for email, (name, specialty, languages, clinics, types, sessions) in \
                DEMO_CLINICIANS.items():
            account = identity.account_by_email(email)
            if account is None:
                continue
            scheduling.put_clinician(actor, account.id, {
                "display_name": name, "specialty": specialty, "languages": languages,
                "clinic_ids": clinics, "consultation_type_ids": types}, at=now)
            scheduling.put_working_pattern(actor, account.id, DEMO_PATTERNS_FROM, None, [
                {"weekday": day, "starts": starts, "ends": ends, "clinic_id": clinics[0],
                 "slot_minutes": slot, "consultation_type_ids": kinds, "room_id": room}
                for day in ("monday", "tuesday", "wednesday", "thursday", "friday")
                for starts, ends, slot, kinds, room in sessions], at=now)
    return ("Schedules: Riverside and Hillview with rooms, five consultation types (GP, video, "
            "follow-up, screening, flu vaccination for six a slot) and Monday-to-Friday "
            "sessions for Dr Okafor, Nurse Jones and Dr Silva (GET /v1/clinicians).")
