"""Each account's recent security activity: sign-ins, failures, pauses, sessions, new devices,
second factors and step-ups, password changes, consents, profile changes.

What a patient sees when they ask "what happened on my account". Rows hold a kind, a time and
at most a device label the patient chose, a consent type or a profile section: no addresses,
no phone numbers, no tokens, no health content.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg import Cursor

from domain.care import BreakGlass, ProxyGrant
from domain.consents import Consent
from domain.identity import Account
from domain.passkeys import Passkey
from domain.profiles import SECTIONS as PROFILE_SECTIONS
from domain.sessions import Session
from projections.base import Envelope, Projection, Tables

_KINDS = {
    Account.Created.TOPIC: "registered",  # type: ignore[attr-defined]
    Account.SignedIn.TOPIC: "signed_in",  # type: ignore[attr-defined]
    Account.SignInFailed.TOPIC: "sign_in_failed",  # type: ignore[attr-defined]
    Account.LockedOut.TOPIC: "sign_in_paused",  # type: ignore[attr-defined]
    Account.TotpEnabled.TOPIC: "second_factor_enabled",  # type: ignore[attr-defined]
    Account.EmailVerified.TOPIC: "email_confirmed",  # type: ignore[attr-defined]
    Account.PasswordChanged.TOPIC: "password_changed",  # type: ignore[attr-defined]
    Account.PasswordResetRequested.TOPIC: "password_reset_requested",  # type: ignore[attr-defined]
    Account.SignedInOnNewDevice.TOPIC: "new_device_sign_in",  # type: ignore[attr-defined]
    Account.DeviceRemembered.TOPIC: "device_remembered",  # type: ignore[attr-defined]
    Account.DeviceForgotten.TOPIC: "device_forgotten",  # type: ignore[attr-defined]
    Session.Verified.TOPIC: "identity_confirmed",  # type: ignore[attr-defined]
    Session.Created.TOPIC: "session_started",  # type: ignore[attr-defined]
    Session.Ended.TOPIC: "session_ended",  # type: ignore[attr-defined]
    Passkey.Created.TOPIC: "passkey_added",  # type: ignore[attr-defined]
    Passkey.Removed.TOPIC: "passkey_removed",  # type: ignore[attr-defined]
    Passkey.CloneSuspected.TOPIC: "passkey_blocked",  # type: ignore[attr-defined]
    Consent.Given.TOPIC: "consent_given",  # type: ignore[attr-defined]
    Consent.Withdrawn.TOPIC: "consent_withdrawn",  # type: ignore[attr-defined]
}
# The patient learns that someone was given, or used, access to their care; never who among
# the staff, nor the reason given for emergency access (staff-only content).
_CARE_KINDS = {
    BreakGlass.Created.TOPIC: "emergency_access",  # type: ignore[attr-defined]
    ProxyGrant.Accepted.TOPIC: "proxy_access_granted",  # type: ignore[attr-defined]
    ProxyGrant.Revoked.TOPIC: "proxy_access_ended",  # type: ignore[attr-defined]
}
_IDENTITY = tuple(t for t in _KINDS if ".Consent." not in t)
_CONSENTS = tuple(t for t in _KINDS if ".Consent." in t)


class SecurityEvents(Projection):
    name = "security_events"
    sources = {"identity": _IDENTITY, "consents": _CONSENTS, "profiles": tuple(PROFILE_SECTIONS),
               "care": tuple(_CARE_KINDS)}
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
        # Likewise a passkey's later events: account and label come from its addition.
        of_passkey = t.format(
            "INSERT INTO {security_events} (stream_id, stream_version, account_id, kind, detail,"
            " session_id, at, position) SELECT %s, %s, account_id, %s, COALESCE(%s, detail),"
            " NULL, %s, %s FROM {security_events}"
            " WHERE stream_id = %s AND kind = 'passkey_added'")
        for envelope in batch:
            if envelope.topic in PROFILE_SECTIONS:  # the section only: its values are personal
                e = envelope.event
                cur.execute(insert, (e.originator_id, e.originator_version, e.patient_id,
                                     "profile_updated", PROFILE_SECTIONS[envelope.topic], None,
                                     e.at, envelope.position))
                continue
            if envelope.topic in _CARE_KINDS:
                e = envelope.event
                cur.execute(insert, (e.originator_id, e.originator_version, e.patient_id,
                                     _CARE_KINDS[envelope.topic], None, None, e.at,
                                     envelope.position))
                continue
            e, kind, position = envelope.event, _KINDS[envelope.topic], envelope.position
            row = (e.originator_id, e.originator_version)
            if kind == "session_ended":
                cur.execute(ended, (*row, kind, e.reason, e.originator_id, e.at, position,
                                    e.originator_id))
            elif kind == "identity_confirmed":  # a second factor proved on a session
                cur.execute(ended, (*row, kind, e.method, e.originator_id, e.at, position,
                                    e.originator_id))
            elif kind in ("new_device_sign_in", "device_remembered"):
                cur.execute(insert, (*row, e.originator_id, kind, e.device_label, None, e.at,
                                     position))
            elif kind == "password_changed":  # changed or reset
                cur.execute(insert, (*row, e.originator_id, kind, e.reason, None, e.at, position))
            elif kind == "session_started":
                cur.execute(insert, (*row, e.account_id, kind, e.device_label, e.originator_id,
                                     e.at, position))
            elif kind == "passkey_added":
                cur.execute(insert, (*row, e.account_id, kind, e.label, None, e.at, position))
            elif kind.startswith("passkey_"):
                cur.execute(of_passkey, (*row, kind, getattr(e, "label", None), e.at, position,
                                         e.originator_id))
            elif kind.startswith("consent_"):
                cur.execute(insert, (*row, e.patient_id, kind, e.consent_type, None, e.at,
                                     position))
            else:
                cur.execute(insert, (*row, e.originator_id, kind, None, None, e.at, position))
