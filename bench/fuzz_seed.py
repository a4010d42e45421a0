"""The world `bench.fuzz` fuzzes: Riverside with one account of every role, a patient in the
doctor's and the nurse's care team, and one of each thing a path parameter can name.

Accounts, sessions, the care team, feature flags and imported medicines are made directly
through the container; the rest goes through the API in-process (the same ASGI app the fuzzer
calls), so each id is real. Seeds that fail are listed, never fatal: the fuzzer then only
exercises the refusals of that operation.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as wall_time
from pathlib import Path
from typing import Any
from uuid import UUID

from api.auth import TokenService
from api.container import Container, migrate
from api.database import local_secrets, start_embedded
from api.default_forms import DEFAULT_FORMS, publish_default_forms
from api.seed import publish_default_consent_texts
from api.settings import Settings
from commands.identity import NewAccount
from domain.access import Actor
from domain.consents import ConsentType
from domain.feature_flags import Feature
from domain.identity import Role
from domain.prescriptions import Medication
from domain.schedule_types import (
    ClinicianInfo,
    ClinicInfo,
    ConsultationTypeInfo,
    Mode,
    RoomInfo,
    StaticSchedule,
)

CLINIC = "riverside"
PASSWORD = "a long enough passphrase 2026"
CONSENT_VERSION = "2026-11"
GP = ConsultationTypeInfo("gp-in-person", "GP appointment", Mode.IN_PERSON, 15)
VIDEO = ConsultationTypeInfo("video", "Video consultation", Mode.VIDEO, 15)
ANONYMOUS = "anonymous"
ROLES = (*(role.value for role in Role), ANONYMOUS)


@contextmanager
def fuzz_container() -> Iterator[Container]:
    """A migrated container on a fresh embedded PostgreSQL (as bench.common's, with a rate
    limit no fuzzer reaches and no second factor for new devices), with the default consent
    texts and forms published. Mail and SMS go to logs in its temporary directory."""
    workdir = Path(tempfile.mkdtemp(prefix="carebridge-bench-fuzz-"))
    atexit.register(shutil.rmtree, workdir, True)
    database = start_embedded(workdir)
    key = local_secrets(workdir)["encryption_key"]
    settings = Settings(data_dir=workdir, password_hash_memory_kib=1024, password_hash_time_cost=1,
                        rate_limit_per_minute=10_000_000, new_device_second_factor=False,
                        mail_log_path=workdir / "mail.log", sms_log_path=workdir / "sms.log")
    migrate(settings, database, key)
    with Container(settings, database, key) as container:
        publish_default_consent_texts(container)
        publish_default_forms(container)
        yield container


@dataclass
class World:
    """Who can call, with which token, and the real ids to put in paths."""

    container: Any
    tokens: TokenService
    clock: Callable[[], datetime]  # the app's (tests move it by hand)
    accounts: dict[str, Any] = field(default_factory=dict)  # role -> Account
    ids: dict[str, list[str]] = field(default_factory=dict)  # path parameter -> values
    failed_seeds: list[str] = field(default_factory=list)

    def add(self, parameter: str, value: Any) -> None:
        values = self.ids.setdefault(parameter, [])
        if str(value) not in values:
            values.append(str(value))

    def headers(self, role: str) -> dict[str, str]:
        """A fresh session and access token for `role` (none for anonymous), so that an
        operation that signs out or changes a password cannot spoil the next one."""
        if role == ANONYMOUS:
            return {}
        account = self.accounts[role]
        now = self.clock()
        issued = self.container.sessions.start(account, f"fuzz-{uuid.uuid4().hex[:8]}", "fuzz", now)
        actor = Actor(account.id, Role(role), frozenset(account.clinic_ids))
        token = self.tokens.issue(actor, issued.session_id, now).token
        return {"Authorization": f"Bearer {token}"}


def fuzz_schedule(doctor: UUID, nurse: UUID) -> StaticSchedule:
    """Riverside: the doctor sees GP and video patients, the nurse GP patients, 09:00-17:00 in
    15-minute slots every day."""
    return StaticSchedule(
        clinic_list=[ClinicInfo(CLINIC, "Riverside Health Centre", ("1 River Walk",), "London",
                                "SE1 1AA", "Europe/London")],
        type_list=[GP, VIDEO],
        clinician_list=[ClinicianInfo(doctor, "Dr Asha Patel", "general practice", ("en",),
                                      (CLINIC,), (GP.type_id, VIDEO.type_id)),
                        ClinicianInfo(nurse, "Nurse Nina Okafor", "practice nursing", ("en",),
                                      (CLINIC,), (GP.type_id,))],
        room_list=[RoomInfo("riverside-room-1", CLINIC, "consulting", "Room 1"),
                   RoomInfo("riverside-room-2", CLINIC, "consulting", "Room 2")],
        weekly={person: {d: [(CLINIC, wall_time(9), wall_time(17), 15,
                              (GP.type_id, VIDEO.type_id), None)] for d in range(7)}
                for person in (doctor, nurse)})


def seed(container: Any, tokens: TokenService, client: Any,
         clock: Callable[[], datetime] | None = None) -> World:
    """Accounts of every role, the patient's care team, and one of each thing where it can be
    made. `client` is a requests-style session on the app (schemathesis' ASGI client or
    Litestar's test client); `clock` the app's, if it has one."""
    world = World(container, tokens, clock or (lambda: datetime.now(UTC)))
    now = world.clock()
    for role in Role:
        if role is Role.PATIENT:
            outcome = container.identity.register_patient(NewAccount(
                "fuzz.patient@patients.test", PASSWORD, "Ada", "Lovelace", date(1958, 12, 10)),
                at=now)
        else:
            outcome = container.identity.add_staff(
                NewAccount(f"fuzz.{role.value}@clinic.test", PASSWORD, "Sam", role.value.title()),
                role, [CLINIC], by="bench", at=now)
        world.accounts[role.value] = container.identity.account(UUID(outcome.result["account_id"]))
    patient, doctor, nurse = (world.accounts[r].id for r in ("patient", "doctor", "nurse"))
    world.add("patient_id", patient)
    for staff in ("doctor", "nurse"):
        world.add("account_id", world.accounts[staff].id)
    world.add("clinic_id", CLINIC)
    world.add("actor_ref", f"patient:{patient}")
    world.add("form_id", next(iter(DEFAULT_FORMS)))
    for consent in ConsentType:
        world.add("consent_type", consent.value)
    for feature in Feature:
        world.add("feature", feature.value)
    for type_info in (GP, VIDEO):
        world.add("type_id", type_info.type_id)
    container.appointments.schedule = fuzz_schedule(doctor, nurse)
    for clinician in (doctor, nurse):
        container.care.join_through_appointment(patient, clinician, CLINIC,
                                                f"appointment-{uuid.uuid4().hex[:8]}",
                                                starts_at=now, ends_at=now + timedelta(days=365),
                                                at=now)
    admin = Actor(world.accounts["clinic_admin"].id, Role.CLINIC_ADMIN, frozenset({CLINIC}))
    for feature in Feature:
        container.feature_flags.set_rule(admin, feature, CLINIC, None, 100, [], "fuzzing", now)
    soon = now.date() + timedelta(days=120)
    container.prescriptions.import_medications(admin, CLINIC, [
        (patient, Medication("amlodipine", "Amlodipine 5 mg tablets", "One a day", "28 tablets",
                             5, soon, False, False)),
        (patient, Medication("sertraline", "Sertraline 50 mg tablets", "One in the morning",
                             "28 tablets", 3, soon, True, False))], now)
    world.add("medication_id", "amlodipine")
    _seed_through_api(world, client)
    return world


def _seed_through_api(world: World, client: Any) -> None:
    """One of each thing the API makes easily, each id recorded under its path parameter."""
    patient, doctor = world.headers("patient"), world.headers("doctor")
    patient_id, doctor_id = world.accounts["patient"].id, world.accounts["doctor"].id

    def attempt(who: dict[str, str], method: str, path: str, body: Any = None,
                *ids: tuple[str, str]) -> Any:
        try:
            response = client.request(method, path, headers=who, json=body)
        except Exception as error:  # a seed that fails is reported, not fatal
            world.failed_seeds.append(f"{method} {path}: {type(error).__name__}")
            return None
        if response.status_code >= 300:
            world.failed_seeds.append(f"{method} {path}: {response.status_code} "
                                      f"{response.text[:200]}")
            return None
        found = response.json() if response.content else {}
        for parameter, key in ids:
            if isinstance(found, dict) and found.get(key):
                world.add(parameter, found[key])
        return found

    for consent in ConsentType:
        attempt(patient, "POST", "/v1/me/consents",
                {"consent_type": consent.value, "text_version": CONSENT_VERSION})
    starts = _next_nine(world.clock())
    for offset, type_id in enumerate((GP.type_id, VIDEO.type_id)):
        held = attempt(patient, "POST", "/v1/appointments/holds", {
            "clinician_id": str(doctor_id), "consultation_type_id": type_id,
            "starts_at": (starts + timedelta(hours=offset)).isoformat()},
            ("appointment_id", "appointment_id"), ("aggregate_id", "appointment_id"))
        if held:
            attempt(patient, "POST", f"/v1/appointments/{held['appointment_id']}/confirm")
    attempt(patient, "POST", "/v1/prescription-requests", {
        "clinic_id": CLINIC, "fulfilment": "collection",
        "items": [{"medication_id": "amlodipine", "dosage_confirmed": True}]},
        ("request_id", "request_id"), ("aggregate_id", "request_id"))
    attempt(patient, "POST", "/v1/message-threads", {
        "category": "general", "subject": "Parking", "body": "Is there parking nearby?",
        "clinic_id": CLINIC}, ("thread_id", "thread_id"))
    attempt(patient, "POST", "/v1/me/waitlist", {
        "clinic_id": CLINIC, "consultation_type_id": GP.type_id,
        "date_from": starts.date().isoformat(),
        "date_to": (starts + timedelta(days=14)).date().isoformat(), "urgency": "soon"},
        ("entry_id", "entry_id"))
    attempt(patient, "POST", "/v1/emergency-shares", {"clinic_id": CLINIC},
            ("share_id", "share_id"))
    feed = attempt(patient, "POST", "/v1/me/calendar-feed")
    if feed and feed.get("url"):
        world.add("feed_file", str(feed["url"]).rsplit("/", 1)[-1])
    attempt(patient, "POST", "/v1/me/proxies", {
        "email": "fuzz.proxy@patients.test", "kind": "family", "scopes": ["appointments"]},
        ("grant_id", "grant_id"))
    attempt(doctor, "POST", f"/v1/staff/patients/{patient_id}/records", {
        "kind": "lab_result", "code": "hba1c", "title": "HbA1c", "clinic_id": CLINIC,
        "content": {"observations": [{"name": "HbA1c", "value": 38, "unit": "mmol/mol",
                                      "reference_low": 20, "reference_high": 41}]},
        "release_now": True},
        ("record_id", "record_id"), ("aggregate_id", "record_id"))
    attempt(world.headers("care_manager"), "POST", f"/v1/staff/patients/{patient_id}/care-team",
            {"clinician_id": str(world.accounts["nurse"].id), "clinic_id": CLINIC,
             "basis": "assignment", "ends_at": (starts + timedelta(days=90)).isoformat()},
            ("relationship_id", "relationship_id"))
    admin = world.headers("clinic_admin")
    attempt(admin, "PUT", "/v1/admin/pharmacies/high-street", {
        "name": "High Street Pharmacy", "address": "2 High Street", "postcode": "SE1 2BB",
        "phone": "020 7946 0000", "channel": "file", "endpoint": "high-street",
        "active": True}, ("pharmacy_id", "pharmacy_id"))
    world.add("room_id", "riverside-room-1")


def _next_nine(now: datetime) -> datetime:
    """09:00 in London (UTC in winter, 08:00 UTC in summer) three days from now."""
    from zoneinfo import ZoneInfo

    from domain.schedule_types import local_to_utc

    return local_to_utc((now + timedelta(days=3)).date(), wall_time(9), ZoneInfo("Europe/London"))
