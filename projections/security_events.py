"""Each account's recent security activity: sign-ins, failures, pauses, sessions, consents.

What a patient sees when they ask "what happened on my account". Rows hold a kind, a time and
at most a device label the patient chose: no addresses, no tokens, no health content.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg import Cursor

from domain.consents import Consent
from domain.identity import Account
from domain.sessions import Session
from projections.base import Envelope, Projection, Tables

_KINDS = {
    Account.Created.TOPIC: "registered",  # type: ignore[attr-defined]
    Account.SignedIn.TOPIC: "signed_in",  # type: ignore[attr-defined]
    Account.SignInFailed.TOPIC: "sign_in_failed",  # type: ignore[attr-defined]
    Account.LockedOut.TOPIC: "sign_in_paused",  # type: ignore[attr-defined]
    Account.TotpEnabled.TOPIC: "second_factor_enabled",  # type: ignore[attr-defined]
    Session.Created.TOPIC: "session_started",  # type: ignore[attr-defined]
    Session.Ended.TOPIC: "session_ended",  # type: ignore[attr-defined]
    Consent.Given.TOPIC: "consent_given",  # type: ignore[attr-defined]
    Consent.Withdrawn.TOPIC: "consent_withdrawn",  # type: ignore[attr-defined]
}
_IDENTITY = tuple(t for t in _KINDS if ".Consent." not in t)
_CONSENTS = tuple(t for t in _KINDS if ".Consent." in t)


class SecurityEvents(Projection):
    name = "security_events"
    sources = {"identity": _IDENTITY, "consents": _CONSENTS}
    tables = ("security_events",)

    def ddl(self) -> Sequence[str]:
        return [
            "CREATE TABLE IF NOT EXISTS {security_events} ("
            " stream_id uuid NOT NULL, stream_version bigint NOT NULL, account_id uuid NOT NULL,"
            " kind text NOT NULL, detail text, session_id uuid, at timestamptz NOT NULL,"
            " position bigint NOT NULL,"
            " PRIMARY KEY (stream_id, stream_version))",
            "CREATE INDEX IF NOT EXISTS {ix_security_events_account}"
            " ON {security_events} (account_id, at DESC, position DESC)",
        ]

    def apply(self, cur: Cursor[Any], t: Tables, batch: Sequence[Envelope]) -> None:
        insert = t.format(
            "INSERT INTO {security_events} (stream_id, stream_version, account_id, kind, detail,"
            " session_id, at, position) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)")
        # A session's end names only the session; its account comes from its start.
        ended = t.format(
            "INSERT INTO {security_events} (stream_id, stream_version, account_id, kind, detail,"
            " session_id, at, position) SELECT %s, %s, account_id, %s, %s, %s, %s, %s"
            " FROM {security_events}"
            " WHERE session_id = %s AND kind = 'session_started'")
        for envelope in batch:
            e, kind, position = envelope.event, _KINDS[envelope.topic], envelope.position
            row = (e.originator_id, e.originator_version)
            if kind == "session_ended":
                cur.execute(ended, (*row, kind, e.reason, e.originator_id, e.at, position,
                                    e.originator_id))
            elif kind == "session_started":
                cur.execute(insert, (*row, e.account_id, kind, e.device_label, e.originator_id,
                                     e.at, position))
            elif kind.startswith("consent_"):
                cur.execute(insert, (*row, e.patient_id, kind, e.consent_type, None, e.at,
                                     position))
            else:
                cur.execute(insert, (*row, e.originator_id, kind, None, None, e.at, position))
