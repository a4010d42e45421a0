"""A small demo clinic network so that a newcomer can try every endpoint at once."""

from __future__ import annotations

import contextlib
from datetime import UTC, date, datetime

from api.container import Container
from commands.identity import EmailAlreadyRegistered, NewAccount
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
    return "\n".join(lines)
