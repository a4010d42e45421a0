"""Step definitions for features/analyst_numbers.feature: a week driven through the API, the
care analytics brought up to date, and the analyst's numbers and report read back."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest
from pytest_bdd import given, parsers, scenarios, then, when

from commands.weekly_report import Week, build, render
from projections.analytics import CareAnalytics
from projections.runner import ProjectionRunner, ensure_tables
from tests.integration.test_analytics import KEY, SEEDED, a_week_at_riverside

scenarios("analyst_numbers.feature")


@pytest.fixture
def scene() -> dict[str, Any]:
    return {}


def count(scene: dict[str, Any], query: str) -> Any:
    row = scene["conn"].execute(query).fetchone()
    assert row is not None
    return row[0] if len(row) == 1 else row


@given("a week at Riverside: seven booked appointments, a waitlist offer, three conversations, "
       "two video calls, two forms and two uploads")
def a_week(client, container, clock, staff_member, scene):
    scene["week"] = a_week_at_riverside(client, container, clock, staff_member)


@when("the analytics are brought up to date")
def brought_up_to_date(container, scene):
    conn = scene["conn"] = psycopg.connect(container.database.url, autocommit=True)
    ensure_tables(conn, CareAnalytics(KEY))
    ProjectionRunner(CareAnalytics(KEY), container.applications,
                     container.database.url).catch_up(conn)


@pytest.fixture(autouse=True)
def close_connection(scene):
    yield
    if "conn" in scene:
        scene["conn"].close()


@then(parsers.parse("the analyst counts {booked:d} booked appointments, {late:d} late "
                    "cancellation and {missed:d} no-shows"))
def appointments(scene, booked, late, missed):
    assert count(scene, "SELECT count(*) FILTER (WHERE booked_at IS NOT NULL),"
                        " count(*) FILTER (WHERE late_cancellation),"
                        " count(*) FILTER (WHERE status = 'no_show')"
                        " FROM analytics.appointment_facts") == (booked, late, missed)


@then(parsers.parse("the waitlist filled {taken:d} of {offered:d} offered slots"))
def waitlist(scene, taken, offered):
    assert count(scene, "SELECT count(*) FILTER (WHERE outcome = 'accepted'), count(*)"
                        " FROM analytics.waitlist_offers") == (taken, offered)


@then(parsers.parse("{within:d} of {threads:d} conversations was answered within the "
                    "clinic's promise"))
def conversations(scene, within, threads):
    assert count(scene, "SELECT count(*) FILTER (WHERE answered_within), count(*)"
                        " FROM analytics.message_responses") == (within, threads)


@then(parsers.parse("{before:d} of {forms:d} forms was sent before the appointment began"))
def forms(scene, before, forms):
    assert count(scene, "SELECT count(*) FILTER (WHERE submitted_before_start), count(*)"
                        " FROM analytics.form_completion") == (before, forms)


@then(parsers.parse('{rejected:d} upload was rejected as "{reason}"'))
def uploads(scene, rejected, reason):
    assert scene["conn"].execute(
        "SELECT rejection_reason, count(*) FROM analytics.document_reviews"
        " WHERE outcome = 'rejected' GROUP BY 1").fetchall() == [(reason, rejected)]


@then("no analytics table holds a patient's name, email, phone number or words")
def nothing_personal(scene):
    week = scene["week"]
    values = [text for table in CareAnalytics.tables for (text,) in
              scene["conn"].execute(f"SELECT t::text FROM analytics.{table} t").fetchall()]
    forbidden = [*SEEDED["given names"], SEEDED["family name"], SEEDED["phone"],
                 SEEDED["subject"], SEEDED["body"], SEEDED["upload note"],
                 *(p["email"] for p in week.patients.values()),
                 *(p["account_id"] for p in week.patients.values())]
    assert values
    assert [w for w in forbidden for v in values if w.lower() in v.lower()] == []


@then("the weekly report for 2026-W49 at Riverside shows the same numbers")
def the_report(scene):
    report = build(scene["conn"], Week.parse("2026-W49"), "riverside", ZoneInfo("Europe/London"))
    cancellations = report.section("Cancellations and no-shows")
    assert (cancellations.value("booked"), cancellations.value("cancelled by patient, late"),
            cancellations.value("no-show")) == (7, 1, 2)
    assert report.section("Waitlist offers").value("fill rate (%)") == 100
    assert report.section("Uploads reviewed").value("rejected: unreadable_image") == 1
    page = render(report)
    assert "<td>rejected: unreadable_image</td><td class=\"n\">1</td>" in page
