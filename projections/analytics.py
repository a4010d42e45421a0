"""Care analytics: bookings, cancellations, waitlist offers, message answers, video attendance,
forms and upload reviews, per clinic, for analysts and the weekly operations report.

Eight tables in the `analytics` schema, which analysts read with SQL as `carebridge_analyst` (the
schema's default privileges give that role SELECT on every table the projection creates,
rebuilt tables included). Times are timestamptz (UTC); durations are computed by the database
(generated columns), in seconds.

- `appointment_facts`: one row per appointment (held, booked or not): `appointment_key`,
  `patient_key`, `clinic_id`, `consultation_type_id`, `channel` (`in_person` or `video`),
  `booked_by` (`patient` or `staff`), `held_at`, `booked_at` (confirmed; null if the hold
  lapsed), `starts_at` (after any move), `reschedule_count`, `status` (`held`, `booked`,
  `lapsed`, `cancelled`, `arrived`, `no_show`), `cancelled_at`, `cancelled_by` (`patient` or
  `clinic`), `cancellation_reason` (the code), `late_cancellation` (inside the clinic's free
  cancellation window), `cancellation_notice_seconds` (start minus cancellation), `arrived_at`,
  `no_show_at`.
- `waitlist_entries`: one row per waitlist entry: `entry_key`, `patient_key`, `clinic_id`,
  `consultation_type_id`, `urgency`, `joined_at`, `status` (`waiting`, `offered`, `fulfilled`,
  `left`), `fulfilled_at`, `left_at`.
- `waitlist_offers`: one row per offer of a freed slot: `entry_key`, `offer_number` (1, 2, …
  per entry), `clinic_id`, `consultation_type_id`, `slot_starts_at`, `offered_at`,
  `expires_at`, `outcome` (`open`, `accepted`, `declined`, `lapsed`, `withdrawn` (taken by
  someone else), `left`), `closed_at`, `seconds_to_outcome`. Fill rate = accepted / offers.
- `message_responses`: one row per conversation: `thread_key`, `patient_key`, `clinic_id`,
  `category`, `team` (the team it was routed to at the start), `started_by` (`patient` or
  `staff`), `started_at`, `due_by` (the answer the clinic promised), `expected_hours`
  (`due_by - started_at`: the category's expectation), `first_answered_at` (first message from
  the clinic), `answer_seconds`, `answered_within` (null until answered), `messages`
  (how many), `closed_at`.
- `video_consultations`: one row per confirmed video appointment, filled from the telemedicine
  log (and the appointment's own outcome when nobody joined): `consultation_key` (the
  appointment's key), `patient_key`, `clinic_id`, `starts_at` (after
  any move), `patient_joined_at` (first check-in or join), `patient_join_delay_seconds`
  (negative when early), `clinician_joined_at`, `clinician_join_delay_seconds`,
  `call_started_at` (media first connected), `connection_failures`, `ended_at`, `outcome`
  (`completed`, `technical_failure`, `no_show`, `cancelled`; null while open).
- `form_completion`: one row per form a patient started for an appointment: `response_key`,
  `appointment_key`, `patient_key`, `form_id`, `form_version`, `started_at`, `submitted_at`,
  and from the appointment: `clinic_id`, `consultation_type_id`, `appointment_starts_at`;
  `submitted_before_start` (null until the appointment is known).
- `uploads`: one row per uploaded document: `document_key`, `patient_key`, `clinic_id`,
  `document_type`, `uploaded_at`, `status` (`pending_review`, `accepted`, `rejected`,
  `action_required`, `expired`, `replaced`), `reviewed_at` (the last review decision).
- `document_reviews`: one row per review decision: `document_key`, `review_number`,
  `clinic_id`, `document_type`, `uploaded_at`, `reviewed_at`, `review_seconds`, `outcome`
  (`accepted`, `rejected`, `action_required`), `rejection_reason` (the code:
  `unreadable_image`, `wrong_document_type`, `expired_document`, `missing_page`, `other`).

Pseudonymous by construction: a patient appears only as `patient_key`, the HMAC-SHA256 of the
patient id under a key analysts do not have (derived from the encryption key), so a patient's
rows can be counted together but not named. Only ids, times, codes, counts and statuses are
read from events: never names, contact details, subjects, message bodies, notes, reasons
written by people, file names, answers, or who on the staff acted.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Sequence
from typing import Any
from uuid import UUID

from psycopg import Cursor

from domain.appointments import Appointment
from domain.consultations import Consultation, Role
from domain.documents import Document
from domain.forms import FormResponse
from domain.messaging import Thread
from domain.waitlist import WaitlistEntry
from projections.base import Envelope, Projection, Tables

Handler = Callable[["CareAnalytics", Cursor[Any], Tables, Any], None]
_HANDLERS: dict[str, Handler] = {}


def analytics_key(encryption_key: str) -> bytes:
    """The patient-hash key, derived from the encryption key setting: stable across restarts
    and rebuilds, and not the encryption key itself (a new encryption key means new patient
    keys: rebuild the analytics)."""
    return hmac.new(encryption_key.encode(), b"carebridge analytics patient key v1",
                    hashlib.sha256).digest()


def on(*events: type) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        for event_class in events:
            _HANDLERS[event_class.TOPIC] = handler  # type: ignore[attr-defined]
        return handler
    return register


def _seconds(until: str, since: str) -> str:
    return f"numeric GENERATED ALWAYS AS (extract(epoch FROM {until} - {since})) STORED"


def _role(by: str) -> str:
    """`patient` or `staff` from an actor string (`patient:…`, `staff:…`), nothing more."""
    return "patient" if by.startswith("patient:") else "staff"


# Typed as Any: the event classes are made by `@event` at run time.
_A: Any = Appointment
_W: Any = WaitlistEntry
_T: Any = Thread
_C: Any = Consultation
_F: Any = FormResponse
_D: Any = Document


class CareAnalytics(Projection):
    name = "care_analytics"
    schema = "analytics"
    settle_seconds = 0.5
    tables = ("appointment_facts", "waitlist_entries", "waitlist_offers", "message_responses",
              "video_consultations", "form_completion", "uploads", "document_reviews")
    sources = {
        "appointments": tuple(e.TOPIC for e in (
            _A.Created, _A.Confirmed, _A.HoldLapsed, _A.Rescheduled,
            _A.Cancelled, _A.Arrived, _A.NoShowRecorded)),
        "waitlist": tuple(e.TOPIC for e in (
            _W.Created, _W.Offered, _W.OfferAccepted, _W.Fulfilled,
            _W.OfferDeclined, _W.OfferLapsed, _W.OfferWithdrawn, _W.Left)),
        "messaging": tuple(e.TOPIC for e in (
            _T.Created, _T.MessagePosted, _T.Closed, _T.Reopened)),
        "telemedicine": tuple(e.TOPIC for e in (
            _C.Created, _C.CheckedIn, _C.ClinicianAdmitted, _C.Joined,
            _C.MediaConnected, _C.ConnectionFailed, _C.Ended, _C.NoShow,
            _C.Cancelled, _C.Moved)),
        "forms": tuple(e.TOPIC for e in (_F.Created, _F.Submitted)),
        "documents": tuple(e.TOPIC for e in (
            _D.Created, _D.Accepted, _D.Rejected, _D.ActionRequired,
            _D.Expired, _D.Replaced)),
    }

    def __init__(self, patient_key: bytes) -> None:
        if len(patient_key) < 16:
            raise ValueError("the analytics patient key must be at least 16 bytes")
        self._patient_key = patient_key

    def patient(self, patient_id: UUID) -> str:
        """The keyed hash that stands for a patient in every analytics table."""
        return hmac.new(self._patient_key, str(patient_id).encode(), hashlib.sha256).hexdigest()

    def ddl(self) -> Sequence[str]:
        return [
            "CREATE TABLE IF NOT EXISTS {appointment_facts} ("
            " appointment_key uuid PRIMARY KEY, patient_key text NOT NULL,"
            " clinic_id text NOT NULL, consultation_type_id text NOT NULL, channel text NOT NULL,"
            " booked_by text NOT NULL, held_at timestamptz NOT NULL, booked_at timestamptz,"
            " starts_at timestamptz NOT NULL, reschedule_count integer NOT NULL DEFAULT 0,"
            " status text NOT NULL, cancelled_at timestamptz, cancelled_by text,"
            " cancellation_reason text, late_cancellation boolean,"
            f" cancellation_notice_seconds {_seconds('starts_at', 'cancelled_at')},"
            " arrived_at timestamptz, no_show_at timestamptz)",
            "CREATE INDEX IF NOT EXISTS {ix_appointment_facts_clinic}"
            " ON {appointment_facts} (clinic_id, starts_at)",
            "CREATE TABLE IF NOT EXISTS {waitlist_entries} ("
            " entry_key uuid PRIMARY KEY, patient_key text NOT NULL, clinic_id text NOT NULL,"
            " consultation_type_id text NOT NULL, urgency text NOT NULL,"
            " joined_at timestamptz NOT NULL, status text NOT NULL,"
            " fulfilled_at timestamptz, left_at timestamptz)",
            "CREATE TABLE IF NOT EXISTS {waitlist_offers} ("
            " entry_key uuid NOT NULL, offer_number integer NOT NULL, clinic_id text NOT NULL,"
            " consultation_type_id text NOT NULL, slot_starts_at timestamptz NOT NULL,"
            " offered_at timestamptz NOT NULL, expires_at timestamptz NOT NULL,"
            " outcome text NOT NULL, closed_at timestamptz,"
            f" seconds_to_outcome {_seconds('closed_at', 'offered_at')},"
            " PRIMARY KEY (entry_key, offer_number))",
            "CREATE INDEX IF NOT EXISTS {ix_waitlist_offers_clinic}"
            " ON {waitlist_offers} (clinic_id, offered_at)",
            "CREATE TABLE IF NOT EXISTS {message_responses} ("
            " thread_key uuid PRIMARY KEY, patient_key text NOT NULL, clinic_id text NOT NULL,"
            " category text NOT NULL, team text NOT NULL, started_by text NOT NULL,"
            " started_at timestamptz NOT NULL, due_by timestamptz NOT NULL,"
            " expected_hours numeric GENERATED ALWAYS AS"
            " (extract(epoch FROM due_by - started_at) / 3600) STORED,"
            " first_answered_at timestamptz,"
            f" answer_seconds {_seconds('first_answered_at', 'started_at')},"
            " answered_within boolean GENERATED ALWAYS AS (first_answered_at <= due_by) STORED,"
            " messages integer NOT NULL DEFAULT 1, closed_at timestamptz)",
            "CREATE INDEX IF NOT EXISTS {ix_message_responses_clinic}"
            " ON {message_responses} (clinic_id, started_at)",
            "CREATE TABLE IF NOT EXISTS {video_consultations} ("
            " consultation_key uuid PRIMARY KEY, patient_key text NOT NULL,"
            " clinic_id text NOT NULL, starts_at timestamptz NOT NULL,"
            " patient_joined_at timestamptz,"
            f" patient_join_delay_seconds {_seconds('patient_joined_at', 'starts_at')},"
            " clinician_joined_at timestamptz,"
            f" clinician_join_delay_seconds {_seconds('clinician_joined_at', 'starts_at')},"
            " call_started_at timestamptz, connection_failures integer NOT NULL DEFAULT 0,"
            " ended_at timestamptz, outcome text)",
            "CREATE INDEX IF NOT EXISTS {ix_video_consultations_clinic}"
            " ON {video_consultations} (clinic_id, starts_at)",
            "CREATE TABLE IF NOT EXISTS {form_completion} ("
            " response_key uuid PRIMARY KEY, appointment_key uuid NOT NULL,"
            " patient_key text NOT NULL, form_id text NOT NULL, form_version integer NOT NULL,"
            " started_at timestamptz NOT NULL, submitted_at timestamptz, clinic_id text,"
            " consultation_type_id text, appointment_starts_at timestamptz,"
            " submitted_before_start boolean GENERATED ALWAYS AS"
            " (CASE WHEN appointment_starts_at IS NOT NULL"
            " THEN coalesce(submitted_at < appointment_starts_at, false) END) STORED)",
            "CREATE INDEX IF NOT EXISTS {ix_form_completion_appointment}"
            " ON {form_completion} (appointment_key)",
            "CREATE TABLE IF NOT EXISTS {uploads} ("
            " document_key uuid PRIMARY KEY, patient_key text NOT NULL, clinic_id text NOT NULL,"
            " document_type text NOT NULL, uploaded_at timestamptz NOT NULL,"
            " status text NOT NULL, reviewed_at timestamptz)",
            "CREATE TABLE IF NOT EXISTS {document_reviews} ("
            " document_key uuid NOT NULL, review_number integer NOT NULL,"
            " clinic_id text NOT NULL, document_type text NOT NULL,"
            " uploaded_at timestamptz NOT NULL, reviewed_at timestamptz NOT NULL,"
            f" review_seconds {_seconds('reviewed_at', 'uploaded_at')},"
            " outcome text NOT NULL, rejection_reason text,"
            " PRIMARY KEY (document_key, review_number))",
            "CREATE INDEX IF NOT EXISTS {ix_document_reviews_clinic}"
            " ON {document_reviews} (clinic_id, reviewed_at)",
        ]

    def apply(self, cur: Cursor[Any], t: Tables, batch: Sequence[Envelope]) -> None:
        appointments: set[UUID] = set()
        # One statement or two per event, sent without waiting for each answer (a pipeline
        # keeps their order), so a batch costs about one round trip.
        with cur.connection.pipeline():
            for envelope in batch:
                _HANDLERS[envelope.topic](self, cur, t, envelope.event)
                if envelope.application == "appointments":
                    appointments.add(envelope.event.originator_id)
                elif envelope.topic == _F.Created.TOPIC:
                    appointments.add(envelope.event.appointment_id)
        if appointments:
            # Forms and appointments come from two logs, read in either order: whichever
            # arrives second completes the form's row, so a rebuild gives the same table.
            cur.execute(t.format(
                "UPDATE {form_completion} f SET clinic_id = a.clinic_id,"
                " consultation_type_id = a.consultation_type_id,"
                " appointment_starts_at = a.starts_at FROM {appointment_facts} a"
                " WHERE a.appointment_key = f.appointment_key AND f.appointment_key = ANY(%s)"),
                (list(appointments),))


def _sql(cur: Cursor[Any], t: Tables, statement: str, *params: Any) -> None:
    cur.execute(t.format(statement), params, prepare=True)


# ---- appointments ---------------------------------------------------------------------------


@on(_A.Created)
def _held(p: CareAnalytics, cur: Cursor[Any], t: Tables, e: Any) -> None:
    _sql(cur, t, "INSERT INTO {appointment_facts} (appointment_key, patient_key, clinic_id,"
         " consultation_type_id, channel, booked_by, held_at, starts_at, status)"
         " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, 'held') ON CONFLICT DO NOTHING",
         e.originator_id, p.patient(e.patient_id), e.clinic_id, e.consultation_type_id,
         str(e.mode), "staff" if e.booked_by_staff else "patient", e.at, e.starts_at)


def _appointment(cur: Cursor[Any], t: Tables, e: Any, assignments: str, *params: Any) -> None:
    _sql(cur, t, f"UPDATE {{appointment_facts}} SET {assignments} WHERE appointment_key = %s",
         *params, e.originator_id)


@on(_A.Confirmed)
def _booked(p: CareAnalytics, cur: Cursor[Any], t: Tables, e: Any) -> None:
    _appointment(cur, t, e, "status = 'booked', booked_at = %s", e.at)
    # Every confirmed video appointment has a row, even one nobody ever joined (its
    # consultation is only opened in the telemedicine log when someone does).
    _sql(cur, t, "INSERT INTO {video_consultations} (consultation_key, patient_key, clinic_id,"
         " starts_at) SELECT appointment_key, patient_key, clinic_id, starts_at"
         " FROM {appointment_facts} WHERE appointment_key = %s AND channel = 'video'"
         " ON CONFLICT DO NOTHING", e.originator_id)


@on(_A.HoldLapsed)
def _lapsed(p: CareAnalytics, cur: Cursor[Any], t: Tables, e: Any) -> None:
    _appointment(cur, t, e, "status = 'lapsed'")


@on(_A.Rescheduled)
def _moved(p: CareAnalytics, cur: Cursor[Any], t: Tables, e: Any) -> None:
    _appointment(cur, t, e, "starts_at = %s, reschedule_count = %s", e.starts_at,
                 e.reschedule_count)
    _consultation(cur, t, e, "starts_at = %s", e.starts_at)


@on(_A.Cancelled)
def _cancelled(p: CareAnalytics, cur: Cursor[Any], t: Tables, e: Any) -> None:
    _appointment(cur, t, e, "status = 'cancelled', cancelled_at = %s, cancelled_by = %s,"
                 " cancellation_reason = %s, late_cancellation = %s",
                 e.at, e.cancelled_by, e.reason_code, e.late)
    _consultation(cur, t, e, _VIDEO_CANCELLED, e.at)


@on(_A.Arrived)
def _arrived(p: CareAnalytics, cur: Cursor[Any], t: Tables, e: Any) -> None:
    _appointment(cur, t, e, "status = 'arrived', arrived_at = %s", e.at)


@on(_A.NoShowRecorded)
def _no_show(p: CareAnalytics, cur: Cursor[Any], t: Tables, e: Any) -> None:
    _appointment(cur, t, e, "status = 'no_show', no_show_at = %s", e.at)
    _consultation(cur, t, e, _VIDEO_NO_SHOW, e.at)


# A video appointment's no-show or cancellation is in both logs (the consultation follows the
# appointment), whichever is read first: the first one counts.
_VIDEO_NO_SHOW = "outcome = coalesce(outcome, 'no_show'), ended_at = coalesce(ended_at, %s)"
_VIDEO_CANCELLED = "outcome = coalesce(outcome, 'cancelled'), ended_at = coalesce(ended_at, %s)"


# ---- waitlist -------------------------------------------------------------------------------


@on(_W.Created)
def _joined(p: CareAnalytics, cur: Cursor[Any], t: Tables, e: Any) -> None:
    _sql(cur, t, "INSERT INTO {waitlist_entries} (entry_key, patient_key, clinic_id,"
         " consultation_type_id, urgency, joined_at, status)"
         " VALUES (%s, %s, %s, %s, %s, %s, 'waiting') ON CONFLICT DO NOTHING",
         e.originator_id, p.patient(e.patient_id), e.clinic_id, e.consultation_type_id,
         str(e.urgency), e.at)


@on(_W.Offered)
def _offered(p: CareAnalytics, cur: Cursor[Any], t: Tables, e: Any) -> None:
    _sql(cur, t, "INSERT INTO {waitlist_offers} (entry_key, offer_number, clinic_id,"
         " consultation_type_id, slot_starts_at, offered_at, expires_at, outcome)"
         " SELECT %s, coalesce(max(offer_number), 0) + 1, %s, %s, %s, %s, %s, 'open'"
         " FROM {waitlist_offers} WHERE entry_key = %s",
         e.originator_id, e.clinic_id, e.consultation_type_id, e.starts_at, e.at,
         e.offer_expires_at, e.originator_id)
    _sql(cur, t, "UPDATE {waitlist_entries} SET status = 'offered' WHERE entry_key = %s",
         e.originator_id)


def _offer_closed(outcome: str, status: str) -> Handler:
    def close(p: CareAnalytics, cur: Cursor[Any], t: Tables, e: Any) -> None:
        _sql(cur, t, "UPDATE {waitlist_offers} SET outcome = %s, closed_at = %s"
             " WHERE entry_key = %s AND outcome = 'open'", outcome, e.at, e.originator_id)
        stamp = {"fulfilled": ", fulfilled_at = %s", "left": ", left_at = %s"}.get(status, "")
        _sql(cur, t, f"UPDATE {{waitlist_entries}} SET status = %s{stamp} WHERE entry_key = %s",
             status, *((e.at,) if stamp else ()), e.originator_id)
    return close


on(_W.OfferAccepted)(_offer_closed("accepted", "fulfilled"))
on(_W.Fulfilled)(_offer_closed("accepted", "fulfilled"))
on(_W.OfferDeclined)(_offer_closed("declined", "waiting"))
on(_W.OfferLapsed)(_offer_closed("lapsed", "waiting"))
on(_W.OfferWithdrawn)(_offer_closed("withdrawn", "waiting"))
on(_W.Left)(_offer_closed("left", "left"))


# ---- messaging ------------------------------------------------------------------------------


@on(_T.Created)
def _thread_started(p: CareAnalytics, cur: Cursor[Any], t: Tables, e: Any) -> None:
    _sql(cur, t, "INSERT INTO {message_responses} (thread_key, patient_key, clinic_id, category,"
         " team, started_by, started_at, due_by) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
         " ON CONFLICT DO NOTHING",
         e.originator_id, p.patient(e.patient_id), e.clinic_id, str(e.category), str(e.team),
         _role(e.by), e.at, e.due_by)


@on(_T.MessagePosted)
def _posted(p: CareAnalytics, cur: Cursor[Any], t: Tables, e: Any) -> None:
    answered = "" if e.from_patient else \
        ", first_answered_at = coalesce(first_answered_at, %s)"
    _sql(cur, t, f"UPDATE {{message_responses}} SET messages = messages + 1{answered}"
         " WHERE thread_key = %s", *(() if e.from_patient else (e.at,)), e.originator_id)


@on(_T.Closed)
def _thread_closed(p: CareAnalytics, cur: Cursor[Any], t: Tables, e: Any) -> None:
    _sql(cur, t, "UPDATE {message_responses} SET closed_at = %s WHERE thread_key = %s",
         e.at, e.originator_id)


@on(_T.Reopened)
def _thread_reopened(p: CareAnalytics, cur: Cursor[Any], t: Tables, e: Any) -> None:
    _sql(cur, t, "UPDATE {message_responses} SET closed_at = NULL WHERE thread_key = %s",
         e.originator_id)


# ---- telemedicine ---------------------------------------------------------------------------


@on(_C.Created)
def _opened(p: CareAnalytics, cur: Cursor[Any], t: Tables, e: Any) -> None:
    _sql(cur, t, "INSERT INTO {video_consultations} (consultation_key, patient_key, clinic_id,"
         " starts_at) VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
         e.originator_id, p.patient(e.patient_id), e.clinic_id, e.starts_at)


def _consultation(cur: Cursor[Any], t: Tables, e: Any, assignments: str, *params: Any) -> None:
    _sql(cur, t, f"UPDATE {{video_consultations}} SET {assignments} WHERE consultation_key = %s",
         *params, e.originator_id)


_PATIENT_IN = "patient_joined_at = coalesce(patient_joined_at, %s)"
_CLINICIAN_IN = "clinician_joined_at = coalesce(clinician_joined_at, %s)"


@on(_C.CheckedIn)
def _checked_in(p: CareAnalytics, cur: Cursor[Any], t: Tables, e: Any) -> None:
    _consultation(cur, t, e, _PATIENT_IN, e.at)


@on(_C.ClinicianAdmitted)
def _admitted(p: CareAnalytics, cur: Cursor[Any], t: Tables, e: Any) -> None:
    _consultation(cur, t, e, _CLINICIAN_IN, e.at)


@on(_C.Joined)
def _joined_call(p: CareAnalytics, cur: Cursor[Any], t: Tables, e: Any) -> None:
    _consultation(cur, t, e, _PATIENT_IN if e.role == Role.PATIENT else _CLINICIAN_IN, e.at)


@on(_C.MediaConnected)
def _media(p: CareAnalytics, cur: Cursor[Any], t: Tables, e: Any) -> None:
    _consultation(cur, t, e, "call_started_at = coalesce(call_started_at, %s)", e.at)


@on(_C.ConnectionFailed)
def _failed(p: CareAnalytics, cur: Cursor[Any], t: Tables, e: Any) -> None:
    _consultation(cur, t, e, "connection_failures = connection_failures + 1")


@on(_C.Ended)
def _ended(p: CareAnalytics, cur: Cursor[Any], t: Tables, e: Any) -> None:
    _consultation(cur, t, e, "ended_at = %s, outcome = %s", e.at, str(e.outcome))


@on(_C.NoShow)
def _video_no_show(p: CareAnalytics, cur: Cursor[Any], t: Tables, e: Any) -> None:
    _consultation(cur, t, e, _VIDEO_NO_SHOW, e.at)


@on(_C.Cancelled)
def _video_cancelled(p: CareAnalytics, cur: Cursor[Any], t: Tables, e: Any) -> None:
    _consultation(cur, t, e, _VIDEO_CANCELLED, e.at)


@on(_C.Moved)
def _video_moved(p: CareAnalytics, cur: Cursor[Any], t: Tables, e: Any) -> None:
    # A moved consultation starts afresh: the earlier joins were for the earlier time.
    _consultation(cur, t, e, "starts_at = %s, patient_joined_at = NULL,"
                  " clinician_joined_at = NULL", e.starts_at)


# ---- forms ----------------------------------------------------------------------------------


@on(_F.Created)
def _form_started(p: CareAnalytics, cur: Cursor[Any], t: Tables, e: Any) -> None:
    _sql(cur, t, "INSERT INTO {form_completion} (response_key, appointment_key, patient_key,"
         " form_id, form_version, started_at) VALUES (%s, %s, %s, %s, %s, %s)"
         " ON CONFLICT DO NOTHING",
         e.originator_id, e.appointment_id, p.patient(e.patient_id), e.form_id,
         e.form_version, e.at)


@on(_F.Submitted)
def _form_submitted(p: CareAnalytics, cur: Cursor[Any], t: Tables, e: Any) -> None:
    _sql(cur, t, "UPDATE {form_completion} SET submitted_at = coalesce(submitted_at, %s)"
         " WHERE response_key = %s", e.at, e.originator_id)


# ---- documents ------------------------------------------------------------------------------


@on(_D.Created)
def _uploaded(p: CareAnalytics, cur: Cursor[Any], t: Tables, e: Any) -> None:
    _sql(cur, t, "INSERT INTO {uploads} (document_key, patient_key, clinic_id, document_type,"
         " uploaded_at, status) VALUES (%s, %s, %s, %s, %s, 'pending_review')"
         " ON CONFLICT DO NOTHING",
         e.originator_id, p.patient(e.patient_id), e.clinic_id, str(e.document_type), e.at)


def _reviewed(outcome: str) -> Handler:
    def review(p: CareAnalytics, cur: Cursor[Any], t: Tables, e: Any) -> None:
        reason = str(e.reason) if outcome == "rejected" else None
        _sql(cur, t, "INSERT INTO {document_reviews} (document_key, review_number, clinic_id,"
             " document_type, uploaded_at, reviewed_at, outcome, rejection_reason)"
             " SELECT u.document_key, 1 + (SELECT count(*) FROM {document_reviews} r"
             " WHERE r.document_key = u.document_key), u.clinic_id, u.document_type,"
             " u.uploaded_at, %s, %s, %s FROM {uploads} u WHERE u.document_key = %s",
             e.at, outcome, reason, e.originator_id)
        _sql(cur, t, "UPDATE {uploads} SET status = %s, reviewed_at = %s WHERE document_key = %s",
             outcome, e.at, e.originator_id)
    return review


def _document_status(status: str) -> Handler:
    def change(p: CareAnalytics, cur: Cursor[Any], t: Tables, e: Any) -> None:
        _sql(cur, t, "UPDATE {uploads} SET status = %s WHERE document_key = %s", status,
             e.originator_id)
    return change


on(_D.Accepted)(_reviewed("accepted"))
on(_D.Rejected)(_reviewed("rejected"))
on(_D.ActionRequired)(_reviewed("action_required"))
on(_D.Expired)(_document_status("expired"))
on(_D.Replaced)(_document_status("replaced"))
