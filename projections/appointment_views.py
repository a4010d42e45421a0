"""Appointment views: each patient's upcoming and past visits, and the staff day lists.

One row per appointment, kept current from the appointments log. The row holds times, ids,
the consultation type and the status, and the note the clinic wrote *for the patient* when it
cancelled; never a reason for the visit or anything clinical. Day lists are the same rows
read by clinic or clinician and a clinic-local day (the API turns the day into UTC bounds in
the clinic's zone), with the patient's name added at read time.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg import Cursor

from projections.base import Envelope, Projection, Tables


def _topic(name: str) -> str:
    return f"carebridge:appointments.Appointment.{name}.v1"


HELD = _topic("Held")
CONFIRMED = _topic("Confirmed")
HOLD_LAPSED = _topic("HoldLapsed")
RESCHEDULED = _topic("Rescheduled")
CANCELLED = _topic("Cancelled")
ARRIVED = _topic("Arrived")
NO_SHOW = _topic("NoShowRecorded")

_STATUS = {CONFIRMED: "booked", HOLD_LAPSED: "lapsed", ARRIVED: "arrived", NO_SHOW: "no_show"}


class AppointmentViews(Projection):
    name = "appointment_views"
    sources = {"appointments": (HELD, CONFIRMED, HOLD_LAPSED, RESCHEDULED, CANCELLED, ARRIVED,
                                NO_SHOW)}
    tables = ("appointments",)

    def ddl(self) -> Sequence[str]:
        return [
            "CREATE TABLE IF NOT EXISTS {appointments} ("
            " appointment_id uuid PRIMARY KEY, patient_id uuid NOT NULL,"
            " clinician_id uuid NOT NULL, clinic_id text NOT NULL, room_id text,"
            " consultation_type_id text NOT NULL, mode text NOT NULL,"
            " starts_at timestamptz NOT NULL, ends_at timestamptz NOT NULL,"
            " status text NOT NULL, hold_expires_at timestamptz,"
            " booked_by_staff boolean NOT NULL, cancelled_by text, late_cancellation boolean,"
            " note_for_patient text, reschedule_count integer NOT NULL DEFAULT 0,"
            " aggregate_version bigint NOT NULL, updated_at timestamptz NOT NULL)",
            "CREATE INDEX IF NOT EXISTS {ix_appointments_patient} ON {appointments}"
            " (patient_id, starts_at)",
            "CREATE INDEX IF NOT EXISTS {ix_appointments_clinic} ON {appointments}"
            " (clinic_id, starts_at)",
            "CREATE INDEX IF NOT EXISTS {ix_appointments_clinician} ON {appointments}"
            " (clinician_id, starts_at)",
        ]

    def apply(self, cur: Cursor[Any], t: Tables, batch: Sequence[Envelope]) -> None:
        for envelope in batch:
            e, topic = envelope.event, envelope.topic
            if topic == HELD:
                cur.execute(t.format(
                    "INSERT INTO {appointments} (appointment_id, patient_id, clinician_id,"
                    " clinic_id, room_id, consultation_type_id, mode, starts_at, ends_at, status,"
                    " hold_expires_at, booked_by_staff, aggregate_version, updated_at)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, 'held', %s, %s, %s, %s)"
                    " ON CONFLICT (appointment_id) DO NOTHING"),
                    (e.originator_id, e.patient_id, e.clinician_id, e.clinic_id, e.room_id,
                     e.consultation_type_id, e.mode, e.starts_at, e.ends_at, e.hold_expires_at,
                     e.booked_by_staff, e.originator_version, e.at))
            elif topic == RESCHEDULED:
                cur.execute(t.format(
                    "UPDATE {appointments} SET starts_at = %s, ends_at = %s, room_id = %s,"
                    " clinician_id = %s, reschedule_count = %s, aggregate_version = %s,"
                    " updated_at = %s WHERE appointment_id = %s"),
                    (e.starts_at, e.ends_at, e.room_id, e.clinician_id, e.reschedule_count,
                     e.originator_version, e.at, e.originator_id))
            elif topic == CANCELLED:
                cur.execute(t.format(
                    "UPDATE {appointments} SET status = 'cancelled', cancelled_by = %s,"
                    " late_cancellation = %s, note_for_patient = %s, aggregate_version = %s,"
                    " updated_at = %s WHERE appointment_id = %s"),
                    (e.cancelled_by, e.late, e.note_for_patient, e.originator_version, e.at,
                     e.originator_id))
            else:
                cur.execute(t.format(
                    "UPDATE {appointments} SET status = %s, hold_expires_at = NULL,"
                    " aggregate_version = %s, updated_at = %s WHERE appointment_id = %s"),
                    (_STATUS[topic], e.originator_version, e.at, e.originator_id))
