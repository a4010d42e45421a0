"""The weekly operations report: one clinic's (or every clinic's) week from the analytics
tables, as a self-contained HTML page with charts and the numbers behind each chart.

It reads only the pseudonymised `analytics` schema (so it runs as `carebridge_analyst` too) and
counts; no row names a patient. The week runs Monday 00:00 to Monday 00:00 in the clinic's
zone. Each section says which time places a row in the week.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import psycopg

WEEK = re.compile(r"^(\d{4})-W(\d{2})$")


@dataclass(frozen=True)
class Week:
    year: int
    number: int

    @classmethod
    def parse(cls, text: str) -> Week:
        match = WEEK.match(text)
        if match is None:
            raise ValueError(f"{text!r} is not an ISO week such as 2026-W47")
        week = cls(int(match[1]), int(match[2]))
        try:
            week.monday  # noqa: B018 - refuses week 54 and the like
        except ValueError:
            raise ValueError(f"{text!r} is not an ISO week such as 2026-W47") from None
        return week

    @classmethod
    def before(cls, day: date) -> Week:
        """The last whole week before `day`'s week."""
        year, number, _ = (day - timedelta(days=7)).isocalendar()
        return cls(year, number)

    @property
    def monday(self) -> date:
        return date.fromisocalendar(self.year, self.number, 1)

    def bounds(self, zone: ZoneInfo) -> tuple[datetime, datetime]:
        start = datetime.combine(self.monday, time(0), tzinfo=zone)
        end = datetime.combine(self.monday + timedelta(days=7), time(0), tzinfo=zone)
        return start.astimezone(UTC), end.astimezone(UTC)

    def __str__(self) -> str:
        return f"{self.year}-W{self.number:02d}"


@dataclass
class Section:
    title: str
    explains: str
    columns: Sequence[str]
    rows: list[tuple[Any, ...]] = field(default_factory=list)
    chart_column: int = 1  # which column the bars show, labelled by column 0

    def value(self, label: str, column: str | None = None) -> Any:
        index = self.columns.index(column) if column else 1
        return next(row[index] for row in self.rows if row[0] == label)


@dataclass
class Report:
    week: Week
    clinic_id: str | None
    zone: str
    sections: list[Section]

    def section(self, title: str) -> Section:
        return next(s for s in self.sections if s.title == title)


def _median_hours(column: str) -> str:
    return f"round((percentile_cont(0.5) WITHIN GROUP (ORDER BY {column}) / 3600)::numeric, 1)"


def _median_minutes(column: str) -> str:
    return f"round((percentile_cont(0.5) WITHIN GROUP (ORDER BY {column}) / 60)::numeric, 1)"


# Each: title, what places a row in the week, columns, query (with %(start)s, %(end)s, %(clinic)s).
_QUERIES: tuple[tuple[str, str, tuple[str, ...], str], ...] = (
    ("Booking demand", "Appointments confirmed for a time in the week, by consultation type, "
     "channel and who booked.", ("booking", "appointments"),
     "SELECT consultation_type_id || ' · ' || replace(channel, '_', '-') || ' · by ' || booked_by,"
     " count(*) FROM analytics.appointment_facts WHERE booked_at IS NOT NULL"
     " AND starts_at >= %(start)s AND starts_at < %(end)s {clinic} GROUP BY 1 ORDER BY 1"),
    ("Cancellations and no-shows", "Confirmed appointments due in the week and what became of "
     "them. Late means inside the clinic's free cancellation window.", ("outcome", "appointments"),
     "SELECT label, n FROM (SELECT 1 AS o, 'booked' AS label, count(*) AS n"
     " FROM analytics.appointment_facts WHERE booked_at IS NOT NULL AND {week} {clinic}"
     " UNION ALL SELECT 2, 'cancelled by patient, in good time', count(*)"
     " FROM analytics.appointment_facts WHERE cancelled_by = 'patient'"
     " AND NOT late_cancellation AND booked_at IS NOT NULL AND {week} {clinic}"
     " UNION ALL SELECT 3, 'cancelled by patient, late', count(*)"
     " FROM analytics.appointment_facts WHERE cancelled_by = 'patient' AND late_cancellation"
     " AND {week} {clinic}"
     " UNION ALL SELECT 4, 'cancelled by the clinic', count(*)"
     " FROM analytics.appointment_facts WHERE cancelled_by = 'clinic'"
     " AND booked_at IS NOT NULL AND {week} {clinic}"
     " UNION ALL SELECT 5, 'no-show', count(*) FROM analytics.appointment_facts"
     " WHERE status = 'no_show' AND {week} {clinic}"
     " UNION ALL SELECT 6, 'arrived', count(*) FROM analytics.appointment_facts"
     " WHERE status = 'arrived' AND {week} {clinic}) t ORDER BY o"),
    ("Waitlist offers", "Offers of freed slots that start in the week, by what the patient did. "
     "Fill rate: offers taken out of offers made.", ("outcome", "offers"),
     "SELECT outcome, count(*) FROM analytics.waitlist_offers"
     " WHERE slot_starts_at >= %(start)s AND slot_starts_at < %(end)s {clinic}"
     " GROUP BY 1 ORDER BY 1"),
    ("Message response times", "Conversations started in the week, by category: answered "
     "within the hours the clinic promises for that category.",
     ("category", "conversations", "answered", "answered in time", "expected hours",
      "median hours to answer"),
     "SELECT category, count(*), count(first_answered_at),"
     " count(*) FILTER (WHERE answered_within), round(max(expected_hours), 0),"
     f" {_median_hours('answer_seconds')} FROM analytics.message_responses"
     " WHERE started_at >= %(start)s AND started_at < %(end)s {clinic} GROUP BY 1 ORDER BY 1"),
    ("Prescription turnaround", "Repeat prescription steps entered in the week: how long "
     "requests waited at each step (finished steps only).",
     ("step", "steps", "median hours"),
     "SELECT queue || ' · ' || step, count(*), " + _median_hours("seconds_in_step")
     + " FROM analytics.prescription_steps WHERE left_at IS NOT NULL"
     " AND entered_at >= %(start)s AND entered_at < %(end)s {clinic} GROUP BY 1 ORDER BY 1"),
    ("Video consultations", "Video consultations due in the week: attendance and how late (in "
     "minutes; negative is early) patients and clinicians joined.",
     ("outcome", "consultations", "patient joined", "median patient delay (min)",
      "median clinician delay (min)"),
     "SELECT coalesce(outcome, 'open'), count(*), count(patient_joined_at),"
     f" {_median_minutes('patient_join_delay_seconds')},"
     f" {_median_minutes('clinician_join_delay_seconds')} FROM analytics.video_consultations"
     " WHERE starts_at >= %(start)s AND starts_at < %(end)s {clinic} GROUP BY 1 ORDER BY 1"),
    ("Forms before consultations", "Forms started for appointments due in the week: sent "
     "before the appointment began, or not.", ("form", "started", "sent before the start"),
     "SELECT form_id, count(*), count(*) FILTER (WHERE submitted_before_start)"
     " FROM analytics.form_completion WHERE appointment_starts_at >= %(start)s"
     " AND appointment_starts_at < %(end)s {clinic} GROUP BY 1 ORDER BY 1"),
    ("Uploads reviewed", "Review decisions made in the week; rejections by reason.",
     ("decision", "uploads"),
     "SELECT outcome || coalesce(': ' || rejection_reason, ''), count(*)"
     " FROM analytics.document_reviews WHERE reviewed_at >= %(start)s"
     " AND reviewed_at < %(end)s {clinic} GROUP BY 1 ORDER BY 1"),
)


# The column a section's bars show, when not its first count.
_CHARTED = {"Prescription turnaround": 2}


def build(conn: psycopg.Connection[Any], week: Week, clinic_id: str | None,
          zone: ZoneInfo) -> Report:
    """Reads the week's numbers from the analytics tables."""
    start, end = week.bounds(zone)
    params = {"start": start, "end": end, "clinic": clinic_id}
    sections = []
    for title, explains, columns, query in _QUERIES:
        statement = query.format(
            clinic="AND clinic_id = %(clinic)s" if clinic_id else "",
            week="starts_at >= %(start)s AND starts_at < %(end)s")
        rows = [tuple(_plain(v) for v in row)
                for row in conn.execute(statement, params).fetchall()]
        sections.append(Section(title, explains, columns, rows,
                                chart_column=_CHARTED.get(title, 1)))
    offers = sections[2]
    made = sum(n for _, n in offers.rows)
    taken = sum(n for outcome, n in offers.rows if outcome == "accepted")
    offers.rows.append(("fill rate (%)", round(100 * taken / made) if made else 0))
    return Report(week, clinic_id, zone.key, sections)


def _plain(value: Any) -> Any:
    from decimal import Decimal

    return float(value) if isinstance(value, Decimal) else value


# ---- HTML -----------------------------------------------------------------------------------

_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem auto;max-width:56rem;
color:#1f2933;padding:0 1rem}h1{font-size:1.6rem}h2{font-size:1.2rem;margin-top:2.2rem}
p.explains{color:#52606d}table{border-collapse:collapse;margin-top:.5rem}
th,td{border-bottom:1px solid #d9e2ec;padding:.3rem .8rem;text-align:left}
td.n{text-align:right;font-variant-numeric:tabular-nums}svg text{font-size:12px;fill:#1f2933}
"""
_BAR = 360  # px for the longest bar


def render(report: Report) -> str:
    scope = f"clinic {report.clinic_id}" if report.clinic_id else "all clinics"
    start = report.week.monday
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>CareBridge weekly report {report.week} ({html.escape(scope)})</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>Weekly operations report: {report.week}</h1>",
        f"<p>{html.escape(scope.capitalize())}; Monday {start:%d %B %Y} to Sunday "
        f"{start + timedelta(days=6):%d %B %Y}, times in {html.escape(report.zone)}. "
        "Pseudonymised: no patient is named.</p>",
    ]
    for section in report.sections:
        parts += [f"<section><h2>{html.escape(section.title)}</h2>",
                  f'<p class="explains">{html.escape(section.explains)}</p>',
                  _chart(section), _table(section), "</section>"]
    parts.append("</body></html>")
    return "\n".join(parts)


def _chart(section: Section) -> str:
    # A percentage is a different scale from the counts beside it: it stays in the table.
    bars = [(str(row[0]), row[section.chart_column] or 0) for row in section.rows
            if not str(row[0]).endswith("(%)")]
    if not any(value for _, value in bars):
        return "<p>Nothing this week.</p>"
    top = max(*(value for _, value in bars), 1)
    height = 24 * len(bars) + 8
    label_width = 260
    rows = []
    for i, (label, value) in enumerate(bars):
        y = 4 + 24 * i
        width = round(_BAR * value / top)
        rows.append(f'<text x="{label_width - 8}" y="{y + 15}" text-anchor="end">'
                    f"{html.escape(label)}</text>"
                    f'<rect x="{label_width}" y="{y}" width="{width}" height="18" fill="#3e7cb1">'
                    f"<title>{html.escape(label)}: {value}</title></rect>"
                    f'<text x="{label_width + width + 6}" y="{y + 15}">{value}</text>')
    return (f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{label_width + _BAR + 60}"'
            f' height="{height}" aria-label="{html.escape(section.title)}">'
            + "".join(rows) + "</svg>")


def _table(section: Section) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in section.columns)
    body = "".join(
        "<tr>" + "".join(_cell(v, i) for i, v in enumerate(row)) + "</tr>" for row in section.rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _cell(value: Any, index: int) -> str:
    if index == 0:
        return f"<td>{html.escape(str(value))}</td>"
    shown = "&ndash;" if value is None else (f"{value:g}" if isinstance(value, float) else str(value))
    return f'<td class="n">{shown}</td>'
