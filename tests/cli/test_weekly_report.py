"""`carebridge report weekly`: a self-contained HTML report whose every number is the analytics
tables' own, for the week in the clinic's zone."""

from __future__ import annotations

from datetime import date, timedelta
from html.parser import HTMLParser
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest
from click.testing import CliRunner

from api.cli import main
from api.cli_report import report
from commands.weekly_report import Week, build, render
from projections.prescription_analytics import PrescriptionAnalytics
from projections.runner import ProjectionRunner, ensure_tables
from tests.cli.test_cli import database_env
from tests.integration.test_analytics import (
    KEY,
    SEEDED,
    CareAnalytics,
    a_week_at_riverside,
    monday,
)
from tests.integration.test_prescription_analytics import COORDINATOR, submitted

pytestmark = pytest.mark.integration

LONDON = ZoneInfo("Europe/London")
main.add_command(report)  # as api/cli.py registers it


class Tables(HTMLParser):
    """Every <table> of a page: its section's <h2> and its rows of cell texts."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.heading = ""
        self._in: str | None = None
        self._row: list[str] | None = None
        self._text = ""

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag in ("h2", "td", "th"):
            self._in, self._text = tag, ""
        elif tag == "tr":
            self._row = []

    def handle_data(self, data: str) -> None:
        if self._in:
            self._text += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "h2":
            self.heading, self._in = self._text, None
        elif tag == "td" and self._row is not None:
            self._row.append(self._text)
            self._in = None
        elif tag == "th":
            self._in = None
        elif tag == "tr" and self._row:
            self.tables.setdefault(self.heading, []).append(self._row)
            self._row = None


def prescriptions_that_week(container: Any) -> None:
    """Two repeat prescription requests handled on the Monday."""
    for hours_to_approve in (2, 4):
        request = submitted(at=monday(8))
        request.start_review(by=COORDINATOR, at=monday(9))
        request.approve(by=COORDINATOR, at=monday(9 + hours_to_approve))
        container.prescriptions.save_all(request)


@pytest.fixture
def week_recorded(client, container, clock, staff_member) -> Any:
    happened = a_week_at_riverside(client, container, clock, staff_member)
    prescriptions_that_week(container)
    with psycopg.connect(container.database.url, autocommit=True) as conn:
        # Until the container wires the care analytics, the test brings them up to date.
        ensure_tables(conn, CareAnalytics(KEY))
        ProjectionRunner(CareAnalytics(KEY), container.applications,
                         container.database.url).catch_up(conn)
    return happened


def run_report(database: Any, tmp_path: Any, *args: str) -> tuple[Any, str]:
    out = tmp_path / "report.html"
    env = database_env(database) | {
        "CAREBRIDGE_STATIC_SCHEDULE": "tests.domain.test_appointments:clinic_schedule"}
    result = CliRunner().invoke(main, ["report", "weekly", *args, "--out", str(out)], env=env,
                                catch_exceptions=False)
    return result, out.read_text(encoding="utf-8") if out.exists() else ""


def test_the_report_is_one_self_contained_file_with_a_chart_and_its_numbers_per_section(
        database, tmp_path, week_recorded):
    result, page = run_report(database, tmp_path, "--week", "2026-W49", "--clinic", "riverside")

    assert result.exit_code == 0, result.output
    assert "2026-W49" in result.output
    for outside in ("<script", "src=", "href=", "<link", "@import", "url(", "<img"):
        assert outside not in page
    assert page.count("<svg") == 8 and page.count("<table>") == 8
    assert "Monday 30 November 2026 to Sunday 06 December 2026, times in Europe/London" in page
    for word in [*SEEDED["given names"], SEEDED["family name"], SEEDED["subject"]]:
        assert word not in page


def test_every_number_in_the_report_is_the_analytics_tables_own(database, tmp_path,
                                                                 week_recorded):
    result, page = run_report(database, tmp_path, "--week", "2026-W49", "--clinic", "riverside")
    assert result.exit_code == 0, result.output
    with psycopg.connect(database.url, autocommit=True) as conn:
        built = build(conn, Week(2026, 49), "riverside", LONDON)
        booked, = conn.execute("SELECT count(*) FROM analytics.appointment_facts"
                               " WHERE booked_at IS NOT NULL").fetchone()  # type: ignore[misc]
        steps = conn.execute(
            "SELECT queue || ' · ' || step, count(*) FROM analytics.prescription_steps"
            " WHERE left_at IS NOT NULL GROUP BY 1 ORDER BY 1").fetchall()
    tables = Tables()
    tables.feed(page)

    assert tables.tables == {s.title: [[_shown(v) for v in row] for row in s.rows]
                             for s in built.sections}
    assert sum(n for _, n in built.section("Booking demand").rows) == booked == 7
    cancellations = built.section("Cancellations and no-shows")
    assert [(label, cancellations.value(label)) for label, _ in cancellations.rows] == [
        ("booked", 7), ("cancelled by patient, in good time", 1),
        ("cancelled by patient, late", 1), ("cancelled by the clinic", 0), ("no-show", 2),
        ("arrived", 1)]
    assert built.section("Waitlist offers").rows == [("accepted", 1), ("fill rate (%)", 100)]
    assert built.section("Message response times").rows == [
        ("appointment", 2, 2, 1, 24.0, 13.6), ("general", 1, 0, 0, 72.0, None)]
    assert [row[:2] for row in built.section("Prescription turnaround").rows] == \
        [tuple(s) for s in steps] == [("coordinator · submitted", 2),
                                      ("coordinator · under_review", 2)]
    assert built.section("Video consultations").rows == [
        ("no_show", 1, 0, None, None), ("technical_failure", 1, 1, -2.0, 3.0)]
    assert built.section("Forms before consultations").rows == [("pre-consultation", 2, 1)]
    assert built.section("Uploads reviewed").rows == [
        ("accepted", 1), ("rejected: unreadable_image", 1)]


def _shown(value: Any) -> str:
    return "–" if value is None else (f"{value:g}" if isinstance(value, float) else str(value))  # noqa: RUF001


def test_another_week_or_clinic_has_nothing_to_count(database, tmp_path, week_recorded):
    with psycopg.connect(database.url, autocommit=True) as conn:
        earlier = build(conn, Week(2026, 47), "riverside", LONDON)
        elsewhere = build(conn, Week(2026, 49), "hillside", LONDON)
    for empty in (earlier, elsewhere):
        counted = {s.title: s.rows for s in empty.sections}
        assert {n for _, n in counted.pop("Cancellations and no-shows")} == {0}
        assert counted.pop("Waitlist offers") == [("fill rate (%)", 0)]
        assert list(counted.values()) == [[]] * 6
        assert "Nothing this week." in render(empty)


def test_an_unknown_clinic_or_a_malformed_week_is_refused(database, tmp_path, container):
    with psycopg.connect(container.database.url, autocommit=True) as conn:
        ensure_tables(conn, PrescriptionAnalytics())
    unknown, _ = run_report(database, tmp_path, "--clinic", "atlantis")
    malformed, _ = run_report(database, tmp_path, "--week", "2026-47", "--clinic", "riverside")

    assert unknown.exit_code == 2 and "no clinic named 'atlantis'" in unknown.output
    assert malformed.exit_code == 2 and "not an ISO week such as 2026-W47" in malformed.output


def test_the_default_week_is_the_last_whole_week_and_weeks_run_monday_to_monday_locally():
    assert Week.before(date(2026, 12, 9)) == Week(2026, 49)
    assert Week.before(date(2027, 1, 4)) == Week(2026, 53)
    start, end = Week.parse("2026-W13").bounds(LONDON)  # the clocks go forward on 29 March
    assert (start.isoformat(), end.isoformat()) == ("2026-03-23T00:00:00+00:00",
                                                    "2026-03-29T23:00:00+00:00")
    assert end - start == timedelta(days=7, hours=-1)
    with pytest.raises(ValueError, match="not an ISO week"):
        Week.parse("2026-W54")


def test_a_report_without_a_clinic_counts_every_clinic(database, tmp_path, week_recorded):
    result, page = run_report(database, tmp_path, "--week", "2026-W49")

    assert result.exit_code == 0, result.output
    assert "All clinics" in page
