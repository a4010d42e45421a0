"""Care analytics: a week at Riverside driven through the API (bookings, cancellations, a
waitlist offer, conversations, video calls, a form, upload reviews), then the analytics
projection's numbers, its rebuild, and a scan for anything that names a patient."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import psycopg
import pytest

from projections.analytics import CareAnalytics, analytics_key
from projections.runner import ProjectionRunner, ensure_tables
from tests.api.care_support import in_care_team
from tests.api.consultation_support import at, switch_on_video
from tests.api.document_support import Upload, uploaded
from tests.api.message_support import answer, started
from tests.api.support import PASSWORD, auth, give
from tests.api.test_forms import FORM, answers, ask_before_visits, submit
from tests.api.visits_support import book, open_riverside, run_process_managers
from tests.conftest import ENCRYPTION_KEY
from tests.domain.test_forms import answer as answer_to
from tests.domain.test_forms import complete_answers, group, words

pytestmark = pytest.mark.integration

KEY = analytics_key(ENCRYPTION_KEY)
WEEK_MONDAY = datetime(2026, 11, 30, tzinfo=UTC)  # 2026-W49; London is on UTC in winter


def monday(hour: int, minute: int = 0) -> datetime:
    return WEEK_MONDAY.replace(hour=hour, minute=minute)


# Strings that must never reach an analytics table (the scan looks for each).
SEEDED = {
    "given names": ["Quillon", "Barnaby", "Carmody", "Evadne", "Dashiell", "Fenwick", "Hesketh"],
    "family name": "Ormerod-Pike", "phone": "+44 7700 900517",
    "subject": "Stairlift-Question", "body": "Marmalade-Confession",
    "answer": "Reception-Porcupine", "upload note": "Glare-Heron", "file name": "Tansy-Scan.png",
    "form answer": "Periwinkle-Cough",
}


@dataclass
class Week:
    """What happened at Riverside in 2026-W49, with the ids the test asserts on."""

    patients: dict[str, dict[str, str]] = field(default_factory=dict)
    appointments: dict[str, str] = field(default_factory=dict)
    staff: dict[str, dict[str, str]] = field(default_factory=dict)

    def patient_id(self, name: str) -> UUID:
        return UUID(self.patients[name]["account_id"])


def register(client: Any, given_name: str) -> dict[str, str]:
    email = f"{given_name.lower()}.{uuid.uuid4().hex[:8]}@patients.test"
    registered = client.post("/v1/auth/register", json={
        "email": email, "password": PASSWORD, "given_name": given_name,
        "family_name": SEEDED["family name"], "date_of_birth": "1950-03-14",
        "mobile_phone": SEEDED["phone"]})
    assert registered.status_code == 201, registered.text
    token = client.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert token.status_code == 200, token.text
    return {"account_id": registered.json()["account_id"], "email": email,
            "Authorization": f"Bearer {token.json()['access_token']}"}


def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def a_week_at_riverside(client: Any, container: Any, clock: Any, staff_member: Any) -> Week:
    """Seven patients, booked a week ahead on Monday 23 November; the week itself is
    Monday 30 November to Sunday 6 December."""
    week = Week()
    doctor = open_riverside(container, staff_member)["doctor"]
    reception, admin = staff_member("reception"), staff_member("clinic_admin")
    week.staff = {"doctor": doctor, "reception": reception}
    switch_on_video(client, staff_member)
    ask_before_visits(client, admin, [FORM], [])
    grace, bob, cara, eve, dan, fay, hal = (register(client, n) for n in SEEDED["given names"])
    week.patients = {"grace": grace, "bob": bob, "cara": cara, "eve": eve, "dan": dan,
                     "fay": fay, "hal": hal}
    for person in (dan, fay):
        assert give(client, person).status_code == 201
    assert give(client, grace, "document_review").status_code == 201

    def booked(person: dict[str, str], when: datetime, type_id: str = "gp-in-person") -> str:
        appointment_id = book(client, person, doctor, when, type_id).json()["appointment_id"]
        return str(appointment_id)

    week.appointments = {"grace": booked(grace, monday(9)), "bob": booked(bob, monday(9, 15)),
                         "cara": booked(cara, monday(9, 30)),
                         "dan": booked(dan, monday(10), "video"),
                         "fay": booked(fay, monday(10, 15), "video")}
    in_care_team(container, clock, hal["account_id"], doctor["account_id"])
    week.appointments["hal"] = ok(client.post("/v1/staff/appointments", headers=auth(reception), json={
        "patient_id": hal["account_id"], "clinician_id": doctor["account_id"],
        "consultation_type_id": "gp-in-person", "starts_at": monday(10, 30).isoformat()}),
        201)["appointment_id"]
    # Grace sends her form a week ahead; Eve waits for an earlier slot and takes Bob's.
    items = [group("reason", answer_to("reason.text", words(SEEDED["form answer"]))),
             *complete_answers()[1:]]
    ok(submit(client, grace, week.appointments["grace"], items))
    entry = ok(client.post("/v1/me/waitlist", headers=auth(eve), json={
        "clinic_id": "riverside", "consultation_type_id": "gp-in-person",
        "clinician_id": doctor["account_id"], "date_from": "2026-11-30",
        "date_to": "2026-12-04", "urgency": "soon"}), 201)["entry_id"]
    ok(client.post(f"/v1/appointments/{week.appointments['bob']}/cancel", headers=auth(bob),
                   json={"reason_code": "cannot_attend"}))
    run_process_managers(container, clock)
    week.appointments["eve"] = ok(client.post(f"/v1/me/waitlist/offers/{entry}/accept",
                                              headers=auth(eve)))["appointment_id"]
    ok(client.put(f"/v1/appointments/{week.appointments['eve']}/forms/{FORM}/draft",
                  headers=auth(eve), json=answers([group("reason", answer_to(
                      "reason.text", words(SEEDED["form answer"])))])))

    # Sunday: Cara cancels late.
    at(client, clock, monday(12) - timedelta(days=1), cara)
    ok(client.post(f"/v1/appointments/{week.appointments['cara']}/cancel", headers=auth(cara),
                   json={"reason_code": "feeling_better"}))

    # Monday morning: conversations, uploads and their review.
    at(client, clock, monday(8), grace, bob, cara, reception, doctor)
    threads = {name: started(client, week.patients[name], category=category,
                             subject=SEEDED["subject"], body=SEEDED["body"])["thread_id"]
               for name, category in (("grace", "appointment"), ("bob", "general"),
                                      ("cara", "appointment"))}
    documents = [uploaded(container, Upload(week.patient_id("grace"), filename=SEEDED["file name"],
                                            appointment_id=UUID(week.appointments["grace"])),
                          clock.now) for _ in range(2)]
    at(client, clock, monday(8, 30), reception)
    ok(client.post(f"/v1/staff/documents/{documents[0]['document_id']}/reject",
                   headers=auth(reception),
                   json={"reason_code": "unreadable_image", "note": SEEDED["upload note"]}))
    ok(client.post(f"/v1/staff/documents/{documents[1]['document_id']}/accept",
                   headers=auth(reception)))

    # Grace does not come; Dan's video call fails; Hal arrives; Fay does not join.
    at(client, clock, monday(9, 20), reception)
    ok(client.post(f"/v1/staff/appointments/{week.appointments['grace']}/no-show",
                   headers=auth(reception)))
    at(client, clock, monday(9, 58), dan, doctor)
    consultation = ok(client.post(
        f"/v1/appointments/{week.appointments['dan']}/consultation/join",
        headers=auth(dan)))["consultation_id"]
    at(client, clock, monday(10, 3), doctor)
    ok(client.post(f"/v1/staff/consultations/{consultation}/join", headers=auth(doctor)))
    at(client, clock, monday(10, 12), doctor)
    ok(client.post(f"/v1/staff/consultations/{consultation}/end", headers=auth(doctor),
                   json={"outcome": "technical_failure"}))
    at(client, clock, monday(10, 15), reception)
    answer(client, reception, threads["grace"], SEEDED["answer"])
    at(client, clock, monday(10, 25), reception)
    ok(client.post(f"/v1/staff/appointments/{week.appointments['hal']}/arrived",
                   headers=auth(reception)))
    at(client, clock, monday(10, 50), doctor)
    ok(client.post(f"/v1/staff/consultations/{week.appointments['fay']}/no-show",
                   headers=auth(doctor)))

    # Tuesday: Cara's answer comes a day late.
    at(client, clock, monday(9) + timedelta(days=1), reception)
    answer(client, reception, threads["cara"], SEEDED["answer"])
    return week


class Analytics:
    """The analytics projection on this test's database, fed by the real runner."""

    def __init__(self, container: Any, conn: psycopg.Connection[Any]) -> None:
        self.container, self.conn = container, conn
        self.runner = self.runner_with(batch_size=1000)

    def runner_with(self, batch_size: int) -> ProjectionRunner:
        return ProjectionRunner(CareAnalytics(KEY), self.container.applications,
                                self.container.database.url, batch_size=batch_size)

    def catch_up(self, runner: ProjectionRunner | None = None) -> int:
        return (runner or self.runner).catch_up(self.conn)

    def rows(self, query: str, *params: Any) -> list[tuple[Any, ...]]:
        return self.conn.execute(query, params).fetchall()  # type: ignore[call-overload, no-any-return]

    def tables(self) -> dict[str, list[tuple[Any, ...]]]:
        return {table: sorted(self.rows(f"SELECT * FROM analytics.{table}"), key=repr)
                for table in CareAnalytics.tables}


@pytest.fixture
def analytics(container: Any) -> Iterator[Analytics]:
    with psycopg.connect(container.database.url, autocommit=True) as conn:
        ensure_tables(conn, CareAnalytics(KEY))
        yield Analytics(container, conn)


@pytest.fixture
def week(client: Any, container: Any, clock: Any, staff_member: Any, analytics: Analytics) -> Week:
    happened = a_week_at_riverside(client, container, clock, staff_member)
    analytics.catch_up()
    return happened


def key_of(patient_id: UUID) -> str:
    return hmac.new(KEY, str(patient_id).encode(), hashlib.sha256).hexdigest()


# ---- the numbers ----------------------------------------------------------------------------


def test_appointment_facts_give_demand_cancellations_and_no_shows(analytics, week):
    facts = {row[0]: row[1:] for row in analytics.rows(
        "SELECT appointment_key::text, patient_key, consultation_type_id, channel, booked_by,"
        " status, cancelled_by, cancellation_reason, late_cancellation, starts_at"
        " FROM analytics.appointment_facts WHERE booked_at IS NOT NULL")}

    def fact(name: str) -> tuple[Any, ...]:
        return facts[week.appointments[name]]

    assert len(facts) == 7
    assert fact("grace") == (key_of(week.patient_id("grace")), "gp-in-person", "in_person",
                             "patient", "no_show", None, None, None, monday(9))
    assert fact("bob")[4:8] == ("cancelled", "patient", "cannot_attend", False)
    assert fact("cara")[4:8] == ("cancelled", "patient", "feeling_better", True)
    assert fact("eve")[1:5] == ("gp-in-person", "in_person", "patient", "booked")
    assert fact("eve")[-1] == monday(9, 15), "Eve took Bob's freed slot"
    assert fact("hal")[3:5] == ("staff", "arrived")
    assert [fact(n)[1:5] for n in ("dan", "fay")] == [
        ("video", "video", "patient", "booked"), ("video", "video", "patient", "no_show")]
    demand = analytics.rows(
        "SELECT consultation_type_id, channel, booked_by, count(*) FROM analytics.appointment_facts"
        " WHERE booked_at IS NOT NULL GROUP BY 1, 2, 3 ORDER BY 1, 2, 3")
    assert demand == [("gp-in-person", "in_person", "patient", 4),
                      ("gp-in-person", "in_person", "staff", 1), ("video", "video", "patient", 2)]


def test_the_waitlist_offer_was_made_and_taken(analytics, week):
    assert analytics.rows(
        "SELECT offer_number, clinic_id, consultation_type_id, slot_starts_at, outcome,"
        " closed_at IS NOT NULL FROM analytics.waitlist_offers") == [
        (1, "riverside", "gp-in-person", monday(9, 15), "accepted", True)]
    assert analytics.rows("SELECT patient_key, urgency, status FROM analytics.waitlist_entries") \
        == [(key_of(week.patient_id("eve")), "soon", "fulfilled")]


def test_message_response_times_are_measured_against_each_categorys_expectation(analytics, week):
    rows = {key: rest for key, *rest in analytics.rows(
        "SELECT patient_key, category, started_by, expected_hours, answer_seconds,"
        " answered_within, messages FROM analytics.message_responses")}

    def of(name: str) -> list[Any]:
        return rows[key_of(week.patient_id(name))]

    assert of("grace") == ["appointment", "patient", 24, 2.25 * 3600, True, 2]
    assert of("bob") == ["general", "patient", 72, None, None, 1]
    assert of("cara") == ["appointment", "patient", 24, 25 * 3600, False, 2]


def test_video_attendance_and_join_delays_come_from_the_telemedicine_log(analytics, week):
    rows = {key: rest for key, *rest in analytics.rows(
        "SELECT consultation_key::text, starts_at, patient_join_delay_seconds,"
        " clinician_join_delay_seconds, call_started_at, outcome"
        " FROM analytics.video_consultations")}

    assert rows[week.appointments["dan"]] == [monday(10), -120, 180, None, "technical_failure"]
    assert rows[week.appointments["fay"]] == [monday(10, 15), None, None, None, "no_show"]


def test_forms_are_counted_as_sent_before_the_consultation_or_not(analytics, week):
    assert sorted(analytics.rows(
        "SELECT appointment_key::text, form_id, clinic_id, appointment_starts_at,"
        " submitted_at IS NOT NULL, submitted_before_start FROM analytics.form_completion")) == \
        sorted([(week.appointments["grace"], FORM, "riverside", monday(9), True, True),
                (week.appointments["eve"], FORM, "riverside", monday(9, 15), False, False)])


def test_upload_reviews_are_counted_by_outcome_and_rejection_reason(analytics, week):
    assert sorted(analytics.rows(
        "SELECT review_number, clinic_id, document_type, outcome, rejection_reason,"
        " review_seconds FROM analytics.document_reviews")) == [
        (1, "riverside", "id_document", "accepted", None, 1800),
        (1, "riverside", "id_document", "rejected", "unreadable_image", 1800)]
    assert sorted(analytics.rows("SELECT status FROM analytics.uploads")) == [
        ("accepted",), ("rejected",)]


def test_one_patient_has_one_key_in_every_table_and_the_key_needs_the_secret(analytics, week):
    grace = key_of(week.patient_id("grace"))
    found = [table for table in ("appointment_facts", "message_responses", "form_completion",
                                 "uploads")
             if analytics.rows(f"SELECT 1 FROM analytics.{table} WHERE patient_key = %s", grace)]
    unkeyed = hashlib.sha256(str(week.patient_id("grace")).encode()).hexdigest()

    assert found == ["appointment_facts", "message_responses", "form_completion", "uploads"]
    assert analytics.rows("SELECT 1 FROM analytics.appointment_facts WHERE patient_key = %s",
                          unkeyed) == []


# ---- rebuilds -------------------------------------------------------------------------------


def test_a_rebuild_and_one_event_per_batch_reproduce_the_tables(analytics, week):
    live = analytics.tables()
    analytics.runner.rebuild(analytics.conn)
    rebuilt = analytics.tables()
    # Back to the first event in one transaction (a runner the container started waits).
    with psycopg.connect(analytics.container.database.owner_url, autocommit=True) as owner, \
            owner.transaction():
        owner.execute("UPDATE carebridge.projection_tracking SET position = 0"
                      " WHERE projection = %s", (CareAnalytics.name,))
        owner.execute("TRUNCATE " + ", ".join(f"analytics.{t}" for t in CareAnalytics.tables))
    analytics.catch_up(analytics.runner_with(batch_size=1))

    assert rebuilt == live
    assert analytics.tables() == live
    assert analytics.catch_up() == 0, "every event is applied once"


# ---- what the tables never hold -------------------------------------------------------------


def test_no_analytics_value_holds_a_name_contact_detail_free_text_or_patient_id(analytics, week):
    every_value = [text for table in CareAnalytics.tables for (text,) in
                   analytics.rows(f"SELECT t::text FROM analytics.{table} t")]
    accounts = [week.patient_id(n) for n in week.patients] + \
        [UUID(s["account_id"]) for s in week.staff.values()]
    forbidden = [*SEEDED["given names"], *(v for k, v in SEEDED.items() if k != "given names"),
                 *(p["email"] for p in week.patients.values()), "Sam Staff",
                 *(str(a) for a in accounts), *(a.hex for a in accounts)]

    assert len(every_value) >= 7 + 2 + 3 + 2 + 2 + 2 + 2
    assert [w for w in forbidden for text in every_value if str(w).lower() in text.lower()] == []


# Words of a column name (split at `_`) that would say it holds something personal.
PERSONAL_WORDS = {"name", "names", "email", "phone", "mobile", "address", "postcode", "birth",
                  "note", "notes", "subject", "body", "message", "text", "comment",
                  "explanation", "filename", "file", "answers", "items", "patient_id"}


def test_no_analytics_column_could_hold_a_name_contact_detail_or_free_text(analytics):
    columns = analytics.rows(
        "SELECT table_name, column_name, data_type FROM information_schema.columns"
        " WHERE table_schema = 'analytics' AND table_name = ANY(%s)", list(CareAnalytics.tables))

    assert {t for t, _, _ in columns} == set(CareAnalytics.tables)
    assert [c for _, c, _ in columns if set(c.split("_")) & PERSONAL_WORDS] == []
    assert "patient_id" not in {c for _, c, _ in columns}
    text_columns = {c for _, c, kind in columns if kind == "text"}
    assert text_columns == {
        "patient_key", "clinic_id", "consultation_type_id", "channel", "booked_by", "status",
        "cancelled_by", "cancellation_reason", "urgency", "outcome", "category", "team",
        "started_by", "form_id", "document_type", "rejection_reason"}


# The queries the README offers analysts.
DOCUMENTED_QUERIES = {
    "demand": "SELECT date_trunc('week', starts_at) AS week, clinic_id, consultation_type_id,"
    " channel, booked_by, count(*) AS appointments FROM analytics.appointment_facts"
    " WHERE booked_at IS NOT NULL GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5",
    "missed": "SELECT clinic_id, count(*) FILTER (WHERE late_cancellation) AS late_cancellations,"
    " count(*) FILTER (WHERE status = 'no_show') AS no_shows, count(*) AS booked"
    " FROM analytics.appointment_facts WHERE booked_at IS NOT NULL"
    " AND starts_at >= timestamptz '2026-12-07' - interval '30 days' GROUP BY 1",
    "fill rate": "SELECT clinic_id, round(avg((outcome = 'accepted')::int), 2) AS fill_rate,"
    " count(*) AS offers FROM analytics.waitlist_offers WHERE outcome <> 'open' GROUP BY 1",
    "messages": "SELECT category, round(avg(answered_within::int), 2) AS in_time,"
    " max(expected_hours) AS promised_hours, round((percentile_cont(0.5) WITHIN GROUP"
    " (ORDER BY answer_seconds) / 3600)::numeric, 1) AS median_hours"
    " FROM analytics.message_responses GROUP BY 1 ORDER BY 1",
    "rejected": "SELECT rejection_reason, count(*) FROM analytics.document_reviews"
    " WHERE outcome = 'rejected' GROUP BY 1 ORDER BY 2 DESC",
}


def test_the_documented_queries_answer_as_an_analyst(analytics, week):
    with psycopg.connect(analytics.container.database.owner_url, autocommit=True) as owner:
        owner.execute("SET ROLE carebridge_analyst")
        answers = {name: owner.execute(query).fetchall()
                   for name, query in DOCUMENTED_QUERIES.items()}

    assert [row[1:] for row in answers["demand"]] == [
        ("riverside", "gp-in-person", "in_person", "patient", 4),
        ("riverside", "gp-in-person", "in_person", "staff", 1),
        ("riverside", "video", "video", "patient", 2)]
    assert answers["missed"] == [("riverside", 1, 2, 7)]
    assert [(c, float(r), n) for c, r, n in answers["fill rate"]] == [("riverside", 1.0, 1)]
    assert [(c, float(i) if i is not None else None, float(h), m and float(m))
            for c, i, h, m in answers["messages"]] == [
        ("appointment", 0.5, 24.0, 13.6), ("general", None, 72.0, None)]
    assert answers["rejected"] == [("unreadable_image", 1)]


def test_analysts_read_the_tables_rebuilt_or_not(analytics, week):
    analytics.runner.rebuild(analytics.conn)
    with psycopg.connect(analytics.container.database.owner_url, autocommit=True) as owner:
        owner.execute("SET ROLE carebridge_analyst")
        counts = {table: owner.execute(f"SELECT count(*) FROM analytics.{table}").fetchone()[0]
                  for table in CareAnalytics.tables}
    assert counts["appointment_facts"] == 7 and counts["waitlist_offers"] == 1
