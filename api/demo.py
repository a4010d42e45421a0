"""A small demo clinic network so that a newcomer can try every endpoint at once."""

from __future__ import annotations

import contextlib
from datetime import UTC, date, datetime

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
    lines += ["", _roll_out_features(container, now)]
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
