"""Reference data on a real PostgreSQL: stored encrypted with stable topics, read fresh by every
process, and imported all or nothing."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest

from commands.eventstore import EventStoreSettings
from commands.idempotency import IdempotencyKey
from commands.identity import NewAccount
from commands.scheduling import SchedulingApplication
from domain.access import Actor
from domain.errors import ConcurrentChange, Forbidden, InvalidInput, Rejections
from domain.identity import Role
from domain.scheduling import clinic_stream, parse_clinic
from tests.conftest import ENCRYPTION_KEY
from tests.integration.support import MONDAY, rows

pytestmark = pytest.mark.integration

ADMIN = Actor(uuid4(), Role.CLINIC_ADMIN, frozenset({"riverside"}))
HILLVIEW_ADMIN = Actor(uuid4(), Role.CLINIC_ADMIN, frozenset({"hillview"}))
CLINIC = {"name": "Riverside Health Centre", "address_lines": ["1 River Street"],
          "town": "Bristol", "postcode": "BS1 1AA", "timezone": "Europe/London"}
GP = {"name": "GP appointment", "mode": "in_person", "duration_minutes": 15,
      "room_kind": "consulting"}
FIRST_MONDAY = date(2026, 11, 30)


def another_process(database: Any, container: Any) -> SchedulingApplication:
    """The same application as another API process has it: its own pool and its own cache."""
    return SchedulingApplication(EventStoreSettings(database.url, ENCRYPTION_KEY, pool_size=1),
                                 container.identity)


def a_clinician(container: Any, email: str = "dr.patel@riverside.test") -> UUID:
    outcome = container.identity.add_staff(NewAccount(email, "staff passphrase 2026", "Asha",
                                                      "Patel"), Role.DOCTOR, ["riverside"],
                                           by="test", at=MONDAY)
    account_id = UUID(outcome.result["account_id"])
    scheduling = container.scheduling
    scheduling.put_clinic(ADMIN, "riverside", CLINIC, at=MONDAY)
    scheduling.put_consultation_type(ADMIN, "gp-in-person", GP, at=MONDAY)
    scheduling.put_clinician(ADMIN, account_id, {
        "display_name": "Dr Asha Patel", "specialty": "General practice", "languages": ["en"],
        "clinic_ids": ["riverside"], "consultation_type_ids": ["gp-in-person"]}, at=MONDAY)
    return account_id


def test_every_change_is_stored_encrypted_under_a_stable_topic(container, database):
    container.scheduling.put_clinic(ADMIN, "riverside", CLINIC, at=MONDAY)
    container.scheduling.close_clinic(ADMIN, "riverside", [date(2026, 12, 25)], "Christmas Day",
                                      at=MONDAY)

    stored = rows(database.url, "SELECT topic, state FROM eventstore.scheduling_events"
                                " WHERE originator_id = %s ORDER BY originator_version",
                  (clinic_stream("riverside"),))
    assert [topic for topic, _ in stored] == ["carebridge:scheduling.Clinic.Created.v1",
                                              "carebridge:scheduling.Clinic.DetailsSet.v1",
                                              "carebridge:scheduling.Clinic.Closed.v1"]
    assert not any(b"Christmas" in bytes(state) for _, state in stored)
    closed, details, created = container.scheduling.clinic_history(ADMIN, "riverside")
    assert (closed.change, closed.by, closed.at) == ("Closed", ADMIN.ref, MONDAY)
    assert details.details["details"]["town"] == "Bristol" and created.change == "Created"


def test_another_process_sees_a_change_at_its_next_read(container, database):
    other = another_process(database, container)
    assert other.clinics() == []
    doctor = a_clinician(container)
    assert [c.clinic_id for c in other.clinics()] == ["riverside"]
    assert other.sessions(doctor, FIRST_MONDAY) == []

    container.scheduling.put_working_pattern(ADMIN, doctor, FIRST_MONDAY, None, [
        {"weekday": "monday", "starts": "09:00", "ends": "12:00", "clinic_id": "riverside",
         "slot_minutes": 15, "consultation_type_ids": ["gp-in-person"]}], at=MONDAY)

    (session,) = other.sessions(doctor, FIRST_MONDAY)
    assert (session.starts_at.hour, session.ends_at.hour) == (9, 12)
    reference = other.current()
    assert other.current() is reference  # nothing new: the same picture, no rebuild
    container.scheduling.record_leave(ADMIN, doctor, FIRST_MONDAY, FIRST_MONDAY, "leave",
                                      at=MONDAY)
    assert other.sessions(doctor, FIRST_MONDAY) == []
    assert reference.sessions(doctor, FIRST_MONDAY) != []  # an old picture never changes


def test_an_administrator_of_another_clinic_changes_nothing_here(container):
    container.scheduling.put_clinic(ADMIN, "riverside", CLINIC, at=MONDAY)
    with pytest.raises(Forbidden):
        container.scheduling.put_clinic(HILLVIEW_ADMIN, "riverside", CLINIC | {"name": "Mine"},
                                        at=MONDAY)
    with pytest.raises(Forbidden):
        container.scheduling.close_clinic(HILLVIEW_ADMIN, "riverside", [date(2026, 12, 25)],
                                          "Christmas Day", at=MONDAY)
    info = container.scheduling.clinic("riverside")
    assert info is not None and info.name == CLINIC["name"]


IMPORT = """clinician,clinic,weekday,start,end,slot_minutes,consultation_types,valid_from,valid_until
dr.patel@riverside.test,riverside,monday,09:00,12:00,15,gp-in-person,2026-11-30,
dr.patel@riverside.test,riverside,tue,14:00,17:00,15,gp-in-person,2026-11-30,
"""


def test_an_import_with_a_bad_row_saves_nothing_and_names_every_problem(container, database):
    doctor = a_clinician(container)
    bad = IMPORT + ("nobody@riverside.test,riverside,funday,9am,12:00,15,gp-in-person,"
                    "2026-11-30,\n"
                    f"{doctor},hillview,wednesday,09:00,12:00,300,gp-in-person;x-ray,"
                    "30/11/2026,\n")

    with pytest.raises(InvalidInput) as refused:
        container.scheduling.import_patterns(ADMIN, bad, at=MONDAY)

    assert {e.field for e in refused.value.errors} == {
        "line 4.clinician", "line 4.weekday", "line 4.starts", "line 5.clinic_id",
        "line 5.slot_minutes", "line 5.consultation_type_ids", "line 5.valid_from"}
    assert container.scheduling.current().pattern(doctor) is None


def test_an_import_is_saved_once_whatever_the_retries(container, database):
    doctor = a_clinician(container)
    key = IdempotencyKey.for_request(ADMIN.ref, "import-0001", "scheduling.import", IMPORT)

    first = container.scheduling.import_patterns(ADMIN, IMPORT, at=MONDAY, key=key)
    retried = container.scheduling.import_patterns(ADMIN, IMPORT, at=MONDAY, key=key)
    again = container.scheduling.import_patterns(ADMIN, IMPORT, at=MONDAY)

    assert first.result == {"clinicians": 1, "periods": 1, "sessions": 2, "changed": True}
    assert retried.replayed and retried.result == first.result
    assert again.result["changed"] is False
    tuesday = FIRST_MONDAY + timedelta(days=1)
    assert [s.starts_at.hour for s in container.scheduling.sessions(doctor, tuesday)] == [14]
    assert rows(database.url, "SELECT count(*) FROM eventstore.scheduling_events")[0][0] == 8


def test_a_change_saved_over_someone_elses_is_refused(container, database):
    container.scheduling.put_clinic(ADMIN, "riverside", CLINIC, at=MONDAY)
    stale = container.scheduling.repository.get(clinic_stream("riverside"))
    another_process(database, container).put_clinic(ADMIN, "riverside",
                                                    CLINIC | {"name": "Riverside Surgery"},
                                                    at=MONDAY)
    stale.set_details(parse_clinic(CLINIC | {"name": "Riverside Practice"}, Rejections()),
                      by=ADMIN.ref, at=MONDAY)

    with pytest.raises(ConcurrentChange):
        container.scheduling.save_all(stale)

    assert container.scheduling.clinic("riverside").name == "Riverside Surgery"
