"""Consent views: each patient's current consents, their history, and the published texts.

Only the events below are read. The history keeps who acted as a role and account id, so a
patient can tell their own actions from a carer's or a member of staff's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg import Cursor

from domain.consents import Consent, ConsentText
from projections.base import Envelope, Projection, Tables

GIVEN = Consent.Given.TOPIC  # type: ignore[attr-defined]
WITHDRAWN = Consent.Withdrawn.TOPIC  # type: ignore[attr-defined]
PUBLISHED = ConsentText.VersionPublished.TOPIC  # type: ignore[attr-defined]


class ConsentViews(Projection):
    name = "consent_views"
    sources = {"consents": (GIVEN, WITHDRAWN, PUBLISHED)}
    tables = ("patient_consents", "consent_history", "consent_texts")

    def ddl(self) -> Sequence[str]:
        return [
            "CREATE TABLE IF NOT EXISTS {patient_consents} ("
            " patient_id uuid NOT NULL, consent_type text NOT NULL, consent_id uuid NOT NULL,"
            " status text NOT NULL, text_version text NOT NULL, text_sha256 text NOT NULL,"
            " given_at timestamptz, withdrawn_at timestamptz, aggregate_version bigint NOT NULL,"
            " PRIMARY KEY (patient_id, consent_type))",
            "CREATE TABLE IF NOT EXISTS {consent_history} ("
            " consent_id uuid NOT NULL, aggregate_version bigint NOT NULL,"
            " patient_id uuid NOT NULL, consent_type text NOT NULL, action text NOT NULL,"
            " text_version text, text_sha256 text, reason text, actor text NOT NULL,"
            " on_behalf boolean NOT NULL, at timestamptz NOT NULL,"
            " PRIMARY KEY (consent_id, aggregate_version))",
            "CREATE INDEX IF NOT EXISTS {ix_consent_history_patient} ON {consent_history} (patient_id, at)",
            "CREATE TABLE IF NOT EXISTS {consent_texts} ("
            " consent_type text NOT NULL, version text NOT NULL, text text NOT NULL,"
            " text_sha256 text NOT NULL, published_at timestamptz NOT NULL,"
            " is_current boolean NOT NULL, PRIMARY KEY (consent_type, version))",
        ]

    def apply(self, cur: Cursor[Any], t: Tables, batch: Sequence[Envelope]) -> None:
        history: list[tuple[Any, ...]] = []
        current: dict[tuple[Any, str], tuple[Any, ...]] = {}
        for envelope in batch:
            e = envelope.event
            if envelope.topic == PUBLISHED:
                cur.execute(t.format(
                    "UPDATE {consent_texts} SET is_current = false WHERE consent_type = %s"),
                    (e.consent_type,))
                cur.execute(t.format(
                    "INSERT INTO {consent_texts} VALUES (%s, %s, %s, %s, %s, true)"),
                    (e.consent_type, e.version, e.text, e.text_sha256, e.at))
                continue
            given = envelope.topic == GIVEN
            history.append((
                e.originator_id, e.originator_version, e.patient_id, e.consent_type,
                "given" if given else "withdrawn",
                e.version if given else None, e.text_sha256 if given else None,
                None if given else e.reason, e.by, getattr(e, "on_behalf", False), e.at,
            ))
            key = (e.patient_id, e.consent_type)
            previous = current.get(key)
            current[key] = (
                e.patient_id, e.consent_type, e.originator_id,
                "given" if given else "withdrawn",
                e.version if given else (previous[4] if previous else None),
                e.text_sha256 if given else (previous[5] if previous else None),
                e.at if given else (previous[6] if previous else None),
                None if given else e.at,
                e.originator_version,
            )
        if history:
            with cur.copy(t.format(
                "COPY {consent_history} (consent_id, aggregate_version, patient_id, consent_type,"
                " action, text_version, text_sha256, reason, actor, on_behalf, at) FROM STDIN"
            )) as copy:
                for record in history:
                    copy.write_row(record)
        if current:
            cur.executemany(t.format(
                "INSERT INTO {patient_consents} AS c (patient_id, consent_type, consent_id, status,"
                " text_version, text_sha256, given_at, withdrawn_at, aggregate_version)"
                " VALUES (%s, %s, %s, %s, coalesce(%s, ''), coalesce(%s, ''), %s, %s, %s)"
                " ON CONFLICT (patient_id, consent_type) DO UPDATE SET"
                " status = excluded.status,"
                " text_version = CASE WHEN excluded.status = 'given'"
                "   THEN excluded.text_version ELSE c.text_version END,"
                " text_sha256 = CASE WHEN excluded.status = 'given'"
                "   THEN excluded.text_sha256 ELSE c.text_sha256 END,"
                " given_at = coalesce(excluded.given_at, c.given_at),"
                " withdrawn_at = excluded.withdrawn_at,"
                " aggregate_version = excluded.aggregate_version"
            ), list(current.values()))
