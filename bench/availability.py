"""Availability search: the next 20 free slots across 200 clinicians over twelve weeks.

    uv run python -m bench.availability [--queries 2000] [--clinicians 200] [--seed 7]

Builds a StaticSchedule of 200 clinicians at 8 London clinics (weekday sessions, morning and
afternoon patterns, a few evenings and Saturdays, 10-minute to 15-minute grids, in-person
types needing rooms, video, a group vaccination type), books a realistic share of the slots
into carebridge.slot_bookings on a throwaway embedded PostgreSQL (most of the first fortnight,
less later, one nearly full week, some running and lapsed holds), then times `search(limit=20)`
for a mix of queries. The cache is warmed by one pass first (a live API process is warm);
the cold first pass is reported too. Target: p95 under 20 ms.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time as clock
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from uuid import UUID, uuid4

import psycopg

from bench.common import report, server_facts, throwaway_container
from commands.availability import Availability, PostgresBookings
from domain.schedule_types import (
    ClinicianInfo,
    ClinicInfo,
    ConsultationTypeInfo,
    Mode,
    RoomInfo,
    StaticSchedule,
)

TARGET_P95_MS = 20.0
WEEKS = 12
START = date(2026, 11, 30)  # a Monday
NOW = datetime(2026, 11, 29, 20, 0, tzinfo=UTC)
FULL_WEEK = START + timedelta(weeks=3)  # nearly everything booked this week
SPECIALTIES = ("general practice", "physiotherapy", "dermatology", "nursing", "mental health")
LANGUAGES = ("en", "hi", "pl", "ur", "pa", "ro", "es")
TYPES = [
    ConsultationTypeInfo("gp-in-person", "GP appointment", Mode.IN_PERSON, 10, 0, 5,
                         room_kind="consulting"),
    ConsultationTypeInfo("video", "Video consultation", Mode.VIDEO, 15),
    ConsultationTypeInfo("follow-up", "Follow-up", Mode.IN_PERSON, 15, room_kind="consulting"),
    ConsultationTypeInfo("flu-vaccination", "Flu vaccination", Mode.IN_PERSON, 10,
                         room_kind="vaccination", capacity_per_slot=4),
]


def build_schedule(clinicians: int, rng: random.Random) -> StaticSchedule:
    clinics = [ClinicInfo(f"clinic-{n}", f"Clinic {n}", (f"{n} High Street",), "London",
                          "E1 1AA", "Europe/London") for n in range(8)]
    rooms = [RoomInfo(f"clinic-{n}-room-{r}", f"clinic-{n}", "consulting", f"Room {r}")
             for n in range(8) for r in range(20)]
    rooms += [RoomInfo(f"clinic-{n}-vaccination", f"clinic-{n}", "vaccination", "Vaccinations")
              for n in range(8)]
    schedule = StaticSchedule(clinic_list=clinics, type_list=TYPES, room_list=rooms)
    for n in range(clinicians):
        account_id = UUID(int=n + 1)
        clinic = clinics[n % len(clinics)].clinic_id
        specialty = SPECIALTIES[n % len(SPECIALTIES)]
        nurse = specialty == "nursing"
        types = ("flu-vaccination", "follow-up") if nurse else ("gp-in-person", "video",
                                                                 "follow-up")
        languages = ("en", *rng.sample(LANGUAGES[1:], rng.choice((0, 1, 2))))
        schedule.clinician_list.append(ClinicianInfo(
            account_id, f"Clinician {n}", specialty, languages, (clinic,), types))
        slot = 10 if nurse else 15
        room = f"{clinic}-vaccination" if nurse and n % 2 else None
        week: dict[int, list[Any]] = {}
        for weekday in range(5):
            if rng.random() < 0.15:
                continue  # a non-working weekday
            week[weekday] = [(clinic, time(8, 30), time(12, 30), slot, types, room),
                             (clinic, time(13, 30), time(17, 30), slot, types, room)]
            if weekday == 2 and n % 7 == 0:
                week[weekday].append((clinic, time(18), time(20), slot, types, room))
        if n % 9 == 0:
            week[5] = [(clinic, time(9), time(12), slot, types, room)]
        schedule.weekly[account_id] = week
        schedule.days_off[account_id] = {START + timedelta(days=rng.randrange(WEEKS * 7))
                                         for _ in range(5)}
    return schedule


def booked_share(day: date) -> float:
    if FULL_WEEK <= day < FULL_WEEK + timedelta(days=7):
        return 0.97
    weeks_ahead = (day - START).days // 7
    return max(0.15, 0.85 - 0.1 * weeks_ahead)


def book(schedule: StaticSchedule, url: str, rng: random.Random) -> int:
    """Writes the bookings and holds the appointments context would have written."""
    kinds = {t.type_id: t for t in TYPES}
    rows = []
    for clinician in schedule.clinician_list:
        for n in range(WEEKS * 7):
            day = START + timedelta(days=n)
            share = booked_share(day)
            room_use: dict[datetime, int] = {}
            for session in schedule.sessions(clinician.account_id, day):
                for start in session.slot_starts():
                    if rng.random() >= share:
                        continue
                    kind = kinds[session.consultation_type_ids[0]]
                    if start + kind.occupies > session.ends_at:
                        continue
                    room = session.room_id
                    if room is None and kind.room_kind == "consulting":
                        used = room_use[start] = room_use.get(start, 0) + 1
                        room = f"{session.clinic_id}-room-{used % 20}"
                    elif room is None and kind.room_kind is not None:
                        room = f"{session.clinic_id}-vaccination"
                    status, expires = "booked", None
                    if rng.random() < 0.02:
                        status = "held"
                        expires = NOW + timedelta(minutes=rng.choice((-10, 5)))
                    rows.append((uuid4(), uuid4(), clinician.account_id, session.clinic_id,
                                 room, kind.type_id, start, start + kind.occupies, status,
                                 expires, NOW))
    with psycopg.connect(url, autocommit=True) as conn, conn.cursor() as cur:
        with cur.copy("COPY carebridge.slot_bookings (appointment_id, patient_id, clinician_id,"
                      " clinic_id, room_id, consultation_type_id, starts_at, ends_at, status,"
                      " hold_expires_at, updated_at) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        conn.execute("ANALYZE carebridge.slot_bookings")
    return len(rows)


def queries(schedule: StaticSchedule, rng: random.Random) -> list[tuple[str, dict[str, Any]]]:
    last = START + timedelta(weeks=WEEKS) - timedelta(days=1)
    whole = {"date_from": START, "date_to": last}
    mix: list[tuple[str, dict[str, Any]]] = []
    for _ in range(50):
        clinician = rng.choice(schedule.clinician_list)
        mix += [
            ("any", whole),
            ("clinic", {**whole, "clinic_id": f"clinic-{rng.randrange(8)}"}),
            ("specialty", {**whole, "specialty": rng.choice(SPECIALTIES)}),
            ("type", {**whole, "consultation_type_id": rng.choice(("video", "gp-in-person"))}),
            ("clinician", {**whole, "clinician_id": clinician.account_id}),
            ("language_morning", {**whole, "language": rng.choice(LANGUAGES[1:]),
                                  "time_of_day": "morning"}),
            ("evening", {**whole, "time_of_day": "evening"}),
            ("mostly_booked_week", {"date_from": FULL_WEEK,
                                    "date_to": FULL_WEEK + timedelta(days=6),
                                    "consultation_type_id": "gp-in-person"}),
        ]
    rng.shuffle(mix)
    return mix


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--clinicians", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    schedule = build_schedule(args.clinicians, rng)
    with throwaway_container("availability") as container:
        rows = book(schedule, container.database.owner_url, rng)
        # The cache lasts the whole run, as it would between reference-data changes.
        availability = Availability(schedule, PostgresBookings(
            container.identity.factory.datastore), cache_seconds=3600)  # type: ignore[attr-defined]
        mix = queries(schedule, rng)
        cold: list[float] = []
        for _, criteria in mix[:8]:
            began = clock.perf_counter()
            availability.search(at=NOW, limit=20, **criteria)
            cold.append((clock.perf_counter() - began) * 1000)
        for _, criteria in mix:
            availability.search(at=NOW, limit=20, **criteria)  # warm every clinician-day
        timings: dict[str, list[float]] = {}
        found: list[int] = []
        for n in range(args.queries):
            name, criteria = mix[n % len(mix)]
            began = clock.perf_counter()
            slots = availability.search(at=NOW, limit=20, **criteria)
            timings.setdefault(name, []).append((clock.perf_counter() - began) * 1000)
            found.append(len(slots))
        every = [t for values in timings.values() for t in values]
        p95 = percentile(every, 0.95)
        figures = {
            "clinicians": args.clinicians, "weeks": WEEKS, "bookings": rows,
            "queries": len(every), "p50_ms": round(statistics.median(every), 2),
            "p95_ms": round(p95, 2), "p99_ms": round(percentile(every, 0.99), 2),
            "first_cold_query_ms": round(cold[0], 1),
            "mean_slots_found": round(statistics.mean(found), 1),
            "by_query_p95_ms": {name: round(percentile(values, 0.95), 2)
                                for name, values in sorted(timings.items())},
            "target_p95_ms": TARGET_P95_MS, "met": p95 < TARGET_P95_MS,
            **server_facts(container.database.owner_url),
        }
        report("availability", figures)


if __name__ == "__main__":
    main()
