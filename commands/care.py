"""The care context: care teams, proxy access and break-glass, and the relationship every access
decision about a patient reads.

Every event of this context is mirrored, in the same transaction, into the write-side lookup
`carebridge.access_relationships` (see `lookup_statements`), so that a grant, a revocation or
an expiry holds from the very next request.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from uuid import UUID, uuid4

import psycopg
from eventsourcing.application import AggregateNotFoundError
from psycopg.rows import tuple_row

from commands.eventstore import CareApplication, EventStoreSettings, Statement
from commands.idempotency import IdempotencyKey, IdempotencyStore, Outcome, run_once
from commands.identity import IdentityApplication
from commands.outbox import Message, enqueue
from domain.access import (
    SYSTEM,
    Action,
    Actor,
    Link,
    PatientResource,
    Relationship,
    authorise,
    authorise_ever,
    is_allowed,
    relationship_of,
)
from domain.aggregate import TOPIC_PREFIX, CareAggregate
from domain.care import (
    BreakGlass,
    CareBasis,
    CareRelationship,
    ProxyGrant,
    ProxyKind,
    ProxyScope,
    ReviewOutcome,
    care_relationship_id,
    check_reason,
    is_child,
    sixteenth_birthday,
)
from domain.errors import Conflict, NotFound, Rejections
from domain.identity import CLINICAL_ROLES, Account, Role, check_email, normalise_email

ACCESS = "carebridge.access_relationships"
REVIEW_LIST_LIMIT = 200

_LINKS = (
    "SELECT kind, account_id, clinic_id, basis, scopes,"
    " state = 'active' AND starts_at <= %(at)s AND (ends_at IS NULL OR ends_at > %(at)s)"
    f" FROM {ACCESS} WHERE patient_id = %(patient)s"
    " AND (account_id = %(account)s OR kind = 'care_team')"
)


class NotAChild(Conflict):
    code = "not-a-child"
    title = "This patient is not a child"


def _links(rows: Iterable[tuple[Any, ...]]) -> list[Link]:
    return [Link(kind, account_id, clinic_id, basis, tuple(scopes or ()), bool(live))
            for kind, account_id, clinic_id, basis, scopes, live in rows]


async def read_relationship(conn: psycopg.AsyncConnection[Any], actor: Actor, patient_id: UUID,
                            at: datetime) -> Relationship:
    """`CareAccessApplication.relationship` for async handlers, on a read-pool connection."""
    cur = conn.cursor(row_factory=tuple_row)
    await cur.execute(_LINKS, {"at": at, "patient": patient_id, "account": actor.account_id})
    return relationship_of(actor.account_id, _links(await cur.fetchall()))


def lookup_statements(events: Iterable[Any], table: str = ACCESS) -> list[Statement]:
    """The writes that keep the lookup table in step with these events (in order). Replaying
    every event of the context through this function rebuilds the table."""
    statements = []
    for e in events:
        kind = type(e).TOPIC.removeprefix(f"{TOPIC_PREFIX}:care.").removesuffix(".v1")
        row = e.originator_id
        if kind == "CareRelationship.Created":
            statements.append(Statement(
                f"INSERT INTO {table} (aggregate_id, kind, patient_id, account_id, clinic_id,"
                " basis, state, starts_at, ends_at) VALUES"
                " (%s, 'care_team', %s, %s, %s, %s, 'active', %s, %s)",
                (row, e.patient_id, e.clinician_id, e.clinic_id, e.basis, e.starts_at,
                 e.ends_at)))
        elif kind == "ProxyGrant.Offered":
            statements.append(Statement(
                f"INSERT INTO {table} (aggregate_id, kind, patient_id, account_id, basis,"
                " scopes, state, starts_at, ends_at) VALUES"
                " (%s, 'proxy', %s, %s, %s, %s, 'offered', %s, %s)",
                (row, e.patient_id, e.proxy_account_id, e.kind, list(e.scopes), e.at,
                 e.expires_at)))
        elif kind == "BreakGlass.Opened":
            statements.append(Statement(
                f"INSERT INTO {table} (aggregate_id, kind, patient_id, account_id, clinic_id,"
                " state, starts_at, ends_at) VALUES"
                " (%s, 'break_glass', %s, %s, %s, 'active', %s, %s)",
                (row, e.patient_id, e.clinician_id, e.clinic_id, e.at, e.expires_at)))
        elif kind == "CareRelationship.Extended":
            statements.append(_update(table, "ends_at = %s", e.ends_at, row))
        elif kind == "ProxyGrant.Accepted":
            statements.append(_update(table, "state = 'active', starts_at = %s", e.at, row))
        elif kind == "ProxyGrant.ScopesChanged":
            statements.append(_update(table, "scopes = %s", list(e.scopes), row))
        elif kind == "ProxyGrant.Declined":
            statements.append(_update(table, "state = 'declined', ended_at = %s", e.at, row))
        elif kind in ("CareRelationship.Ended", "ProxyGrant.Revoked", "BreakGlass.Closed"):
            statements.append(_update(table, "state = 'ended', ended_at = %s", e.at, row))
        elif kind == "BreakGlass.Reviewed":
            statements.append(_update(table, "reviewed_at = %s", e.at, row))
    return statements


def _update(table: str, assignments: str, value: Any, aggregate_id: UUID) -> Statement:
    return Statement(f"UPDATE {table} SET {assignments} WHERE aggregate_id = %s",
                     (value, aggregate_id))


def _decided(result: dict[str, Any], *aggregates: CareAggregate,
             ) -> tuple[dict[str, Any], list[Any], list[Statement]]:
    pending = [e for a in aggregates for e in a.pending_events]
    return result, list(aggregates), lookup_statements(pending)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


class CareAccessApplication(CareApplication):
    name = "care"

    def __init__(self, store: EventStoreSettings, identity: IdentityApplication,
                 break_glass_minutes: int = 60) -> None:
        super().__init__(store)
        self.datastore = self.factory.datastore  # type: ignore[attr-defined]
        self.idempotency = IdempotencyStore(self.datastore)
        self.identity = identity
        self.break_glass_for = timedelta(minutes=break_glass_minutes)

    # ---- the relationship every decision about a patient reads ---------------------------

    def relationship(self, actor: Actor, patient_id: UUID, at: datetime) -> Relationship:
        with self.datastore.get_connection() as conn:
            cur = conn.cursor(row_factory=tuple_row)
            cur.execute(_LINKS, {"at": at, "patient": patient_id, "account": actor.account_id})
            return relationship_of(actor.account_id, _links(cur.fetchall()))

    # ---- care teams ----------------------------------------------------------------------

    def add_to_care_team(self, actor: Actor, patient_id: UUID, clinician_id: UUID,
                         clinic_id: str, basis: CareBasis, source_ref: str | None,
                         ends_at: datetime, at: datetime, key: IdempotencyKey | None = None,
                         starts_at: datetime | None = None) -> Outcome:
        relationship = self.relationship(actor, patient_id, at)
        action = (Action.CARE_TEAM_REFER if basis == CareBasis.REFERRAL and actor.role == Role.DOCTOR
                  else Action.CARE_TEAM_MANAGE)
        authorise(actor, action, PatientResource(patient_id, relationship, clinic_id))
        self._patient(patient_id)
        errors = Rejections()
        clinician = self._accounts().find_account(clinician_id)
        if (clinician is None or Role(clinician.role) not in CLINICAL_ROLES
                or clinic_id not in clinician.clinic_ids):
            errors.add("clinician_id", "Choose a doctor, nurse, prescription coordinator or "
                       "care manager who works at this clinic.")
        if basis != CareBasis.ASSIGNMENT and not (source_ref or "").strip():
            errors.add("source_ref", f"Name the {basis.value} this comes from.")
        start = starts_at or at
        CareRelationship.check(start, ends_at, at, errors)
        errors.raise_if_any()

        def decide() -> tuple[dict[str, Any], list[Any], list[Statement]]:
            # An explicit assignment without a reference is a new relationship every time.
            ref = (source_ref or "").strip() or uuid4().hex
            existing = self._get(care_relationship_id(patient_id, clinician_id, clinic_id,
                                                      basis.value, ref), CareRelationship)
            if existing is not None:
                existing.extend(ends_at, by=actor.ref, at=at)
                return _decided(_care_view(existing) | {"created": False}, existing)
            created = CareRelationship(patient_id=patient_id, clinician_id=clinician_id,
                                       clinic_id=clinic_id, basis=basis.value, source_ref=ref,
                                       starts_at=start, ends_at=ends_at, by=actor.ref, at=at)
            return _decided(_care_view(created) | {"created": True}, created)

        return run_once(self, self.idempotency, key, decide)

    def join_through_appointment(self, patient_id: UUID, clinician_id: UUID, clinic_id: str,
                                 appointment_id: str, starts_at: datetime, ends_at: datetime,
                                 at: datetime) -> Outcome:
        """A booked appointment puts its clinician in the patient's care team (called by the
        scheduling context as CareBridge itself). Booking it again extends, never duplicates."""
        return self.add_to_care_team(SYSTEM, patient_id, clinician_id, clinic_id,
                                     CareBasis.APPOINTMENT, appointment_id, ends_at, at,
                                     starts_at=starts_at)

    def end_care_relationship(self, actor: Actor, patient_id: UUID, relationship_id: UUID,
                              reason: str, at: datetime,
                              key: IdempotencyKey | None = None) -> Outcome:
        authorise_ever(actor, Action.CARE_TEAM_MANAGE)
        found = self._get(relationship_id, CareRelationship)
        if found is None or found.patient_id != patient_id:
            raise NotFound("This patient has no care relationship with this id.")
        authorise(actor, Action.CARE_TEAM_MANAGE,
                  PatientResource(patient_id, clinic_id=found.clinic_id))

        def decide() -> tuple[dict[str, Any], list[Any], list[Statement]]:
            care = self._get(relationship_id, CareRelationship)
            assert care is not None
            care.end(reason, by=actor.ref, at=at)
            return _decided(_care_view(care), care)

        return run_once(self, self.idempotency, key, decide)

    def care_team(self, actor: Actor, patient_id: UUID, at: datetime) -> list[dict[str, Any]]:
        """The patient's care relationships at the caller's clinics, newest first."""
        relationship = self.relationship(actor, patient_id, at)
        authorise(actor, Action.CARE_TEAM_READ, PatientResource(patient_id, relationship))
        with self.datastore.get_connection() as conn:
            rows = conn.execute(
                f"SELECT aggregate_id, clinic_id FROM {ACCESS} WHERE patient_id = %s"
                " AND kind = 'care_team' ORDER BY starts_at DESC, aggregate_id",
                (patient_id,)).fetchall()
        team = []
        for row in rows:
            if not is_allowed(actor, Action.CARE_TEAM_READ,
                              PatientResource(patient_id, relationship, row["clinic_id"])):
                continue
            care = self._get(row["aggregate_id"], CareRelationship)
            if care is None:
                continue
            clinician = self._accounts().find_account(care.clinician_id)
            team.append(_care_view(care) | {
                "clinician_name": clinician.display_name if clinician else "",
                "clinician_role": clinician.role if clinician else "",
                "active": care.is_active(at)})
        return team

    # ---- proxies -------------------------------------------------------------------------

    def offer_proxy(self, actor: Actor, email: str, kind: ProxyKind, scopes: list[ProxyScope],
                    expires_on: date | None, at: datetime,
                    key: IdempotencyKey | None = None) -> Outcome:
        """Invites another account to act for the patient. The answer is the same whether or
        not anyone has an account with that address (nobody can probe who is registered)."""
        authorise(actor, Action.PROXIES_MANAGE, PatientResource(actor.account_id))
        expires_at = (datetime.combine(expires_on + timedelta(days=1), time(), tzinfo=UTC)
                      if expires_on is not None else None)
        errors = Rejections()
        check_email(email, errors)
        if kind == ProxyKind.PARENT:
            errors.add("kind", "Parental responsibility is recorded by the clinic, who check it "
                       "in person; choose carer or family.")
        ProxyGrant.check([s.value for s in scopes], expires_at, at, errors)
        own = self._accounts().find_account(actor.account_id)
        if own is not None and normalise_email(email) == own.email:
            errors.add("email", "Enter the address of the person you want to authorise, not "
                       "your own.")
        errors.raise_if_any()

        def decide() -> tuple[dict[str, Any], list[Any], list[Statement]]:
            invited = self._accounts().account_by_email(email)
            proxy_id = (invited.id if invited is not None and invited.role == Role.PATIENT
                        else None)
            grant = ProxyGrant(patient_id=actor.account_id, proxy_email=normalise_email(email),
                               proxy_account_id=proxy_id, kind=kind.value,
                               scopes=sorted({s.value for s in scopes}), expires_at=expires_at,
                               by=actor.ref, at=at)
            result, touched, statements = _decided(_grant_view(grant, at), grant)
            if proxy_id is not None and invited is not None:
                # The invitation email names nobody and nothing medical: the patient tells
                # the person themselves; the app shows the rest after sign-in.
                statements += enqueue(Message("proxy_invitation", "email", invited.id,
                                              invited.email, {}), at)
            return result, touched, statements

        return run_once(self, self.idempotency, key, decide)

    def change_proxy_scopes(self, actor: Actor, grant_id: UUID, scopes: list[ProxyScope],
                            at: datetime, key: IdempotencyKey | None = None) -> Outcome:
        self._own_grant(actor, grant_id)

        def decide() -> tuple[dict[str, Any], list[Any], list[Statement]]:
            grant = self._own_grant(actor, grant_id)
            grant.change_scopes(sorted({s.value for s in scopes}), by=actor.ref, at=at)
            return _decided(_grant_view(grant, at), grant)

        return run_once(self, self.idempotency, key, decide)

    def revoke_proxy(self, actor: Actor, grant_id: UUID, at: datetime,
                     key: IdempotencyKey | None = None) -> Outcome:
        self._own_grant(actor, grant_id)

        def decide() -> tuple[dict[str, Any], list[Any], list[Statement]]:
            grant = self._own_grant(actor, grant_id)
            grant.revoke(stepped_down=False, by=actor.ref, at=at)
            return _decided(_grant_view(grant, at), grant)

        return run_once(self, self.idempotency, key, decide)

    def respond_to_proxy(self, actor: Actor, grant_id: UUID, answer: str, at: datetime,
                         key: IdempotencyKey | None = None) -> Outcome:
        """The invited account accepts or declines, or a proxy steps down."""
        self._held_grant(actor, grant_id)

        def decide() -> tuple[dict[str, Any], list[Any], list[Statement]]:
            grant = self._held_grant(actor, grant_id)
            if answer == "accept":
                grant.accept(by=actor.ref, at=at)
            elif answer == "decline":
                grant.decline(by=actor.ref, at=at)
            else:
                grant.revoke(stepped_down=True, by=actor.ref, at=at)
            return _decided(_grant_view(grant, at), grant)

        return run_once(self, self.idempotency, key, decide)

    def proxies(self, actor: Actor, at: datetime) -> list[dict[str, Any]]:
        """Everyone the patient has authorised or invited, newest first."""
        authorise(actor, Action.PROXIES_MANAGE, PatientResource(actor.account_id))
        return [_grant_view(grant, at) for grant in self._grants("patient_id", actor.account_id)]

    def represented(self, actor: Actor, at: datetime) -> list[dict[str, Any]]:
        """The patients this account may act for, and open invitations to do so."""
        authorise(actor, Action.REPRESENTED_READ, PatientResource(actor.account_id))
        views = []
        for grant in self._grants("account_id", actor.account_id):
            if grant.status not in ("offered", "active") or grant.is_expired(at):
                continue
            patient = self._accounts().find_account(grant.patient_id)
            views.append(_grant_view(grant, at) | {
                "patient_id": str(grant.patient_id),
                "patient_name": patient.display_name if patient else ""})
        return views

    def record_parental_responsibility(self, actor: Actor, child_id: UUID, parent_id: UUID,
                                       at: datetime,
                                       key: IdempotencyKey | None = None) -> Outcome:
        """Staff who checked it in person record that a parent acts for a child patient, in
        everything, until the child's 16th birthday."""
        relationship = self.relationship(actor, child_id, at)
        authorise(actor, Action.PARENTAL_RESPONSIBILITY_RECORD,
                  PatientResource(child_id, relationship))
        child = self._patient(child_id)
        parent = self._accounts().find_account(parent_id)
        errors = Rejections()
        if parent is None or parent.role != Role.PATIENT or parent.id == child.id:
            errors.add("parent_account_id", "Enter the id of the parent's own patient account.")
        errors.raise_if_any()
        assert parent is not None
        if child.date_of_birth is None or not is_child(child.date_of_birth, at):
            raise NotAChild("This patient is 16 or over: they can authorise someone to act for "
                            "them from their own account.")
        born = child.date_of_birth

        def decide() -> tuple[dict[str, Any], list[Any], list[Statement]]:
            for grant in self._grants("patient_id", child_id):
                if (grant.kind == ProxyKind.PARENT and grant.proxy_account_id == parent_id
                        and grant.is_active(at)):
                    return _grant_view(grant, at), [], []
            grant = ProxyGrant(patient_id=child_id, proxy_email=parent.email,
                               proxy_account_id=parent_id, kind=ProxyKind.PARENT.value,
                               scopes=sorted(ProxyScope), expires_at=sixteenth_birthday(born),
                               by=actor.ref, at=at)
            grant.accept(by=actor.ref, at=at)
            return _decided(_grant_view(grant, at), grant)

        return run_once(self, self.idempotency, key, decide)

    # ---- break-glass ---------------------------------------------------------------------

    def open_break_glass(self, actor: Actor, patient_id: UUID, clinic_id: str | None,
                         reason: str, at: datetime,
                         key: IdempotencyKey | None = None) -> Outcome:
        authorise_ever(actor, Action.BREAK_GLASS_OPEN)
        errors = Rejections()
        if clinic_id is None and len(actor.clinic_ids) == 1:
            clinic_id = next(iter(actor.clinic_ids))
        if clinic_id is None:
            errors.add("clinic_id", "You work at more than one clinic: say at which one you "
                       "need emergency access.")
            errors.raise_if_any()
        authorise(actor, Action.BREAK_GLASS_OPEN, PatientResource(patient_id, clinic_id=clinic_id))
        self._patient(patient_id)
        check_reason(reason, errors)
        errors.raise_if_any()
        assert clinic_id is not None

        def decide() -> tuple[dict[str, Any], list[Any], list[Statement]]:
            access = BreakGlass(clinician_id=actor.account_id, patient_id=patient_id,
                                clinic_id=clinic_id, reason=reason.strip(),
                                expires_at=at + self.break_glass_for, by=actor.ref, at=at)
            return _decided(_break_glass_view(access, at), access)

        return run_once(self, self.idempotency, key, decide)

    def close_break_glass(self, actor: Actor, access_id: UUID, at: datetime,
                          key: IdempotencyKey | None = None) -> Outcome:
        authorise_ever(actor, Action.BREAK_GLASS_CLOSE)
        access = self._break_glass(access_id)
        authorise(actor, Action.BREAK_GLASS_CLOSE, _break_glass_resource(access))

        def decide() -> tuple[dict[str, Any], list[Any], list[Statement]]:
            access = self._break_glass(access_id)
            access.close(by=actor.ref, at=at)
            return _decided(_break_glass_view(access, at), access)

        return run_once(self, self.idempotency, key, decide)

    def review_break_glass(self, actor: Actor, access_id: UUID, outcome: ReviewOutcome,
                           note: str | None, at: datetime,
                           key: IdempotencyKey | None = None) -> Outcome:
        authorise_ever(actor, Action.BREAK_GLASS_REVIEW)
        access = self._break_glass(access_id)
        authorise(actor, Action.BREAK_GLASS_REVIEW, _break_glass_resource(access))

        def decide() -> tuple[dict[str, Any], list[Any], list[Statement]]:
            access = self._break_glass(access_id)
            access.review(outcome, note, by=actor.ref, at=at)
            return _decided(_break_glass_view(access, at) | _review_view(access), access)

        return run_once(self, self.idempotency, key, decide)

    def break_glass_for_review(self, actor: Actor, reviewed: bool | None,
                               at: datetime) -> list[dict[str, Any]]:
        """Emergency accesses the caller may review, newest first (staff-only content)."""
        authorise(actor, Action.BREAK_GLASS_REVIEW)
        everywhere = actor.role == Role.AUDITOR  # narrows the query; the policy decides below
        with self.datastore.get_connection() as conn:
            rows = conn.execute(
                f"SELECT aggregate_id FROM {ACCESS} WHERE kind = 'break_glass'"
                " AND (%s OR clinic_id = ANY(%s))"
                " AND (%s::boolean IS NULL OR (reviewed_at IS NOT NULL) = %s::boolean)"
                " ORDER BY starts_at DESC LIMIT %s",
                (everywhere, sorted(actor.clinic_ids), reviewed, reviewed,
                 REVIEW_LIST_LIMIT)).fetchall()
        views = []
        for row in rows:
            access = self._break_glass(row["aggregate_id"])
            if not is_allowed(actor, Action.BREAK_GLASS_REVIEW, _break_glass_resource(access)):
                continue
            clinician = self._accounts().find_account(access.clinician_id)
            views.append(_break_glass_view(access, at) | _review_view(access) | {
                "clinician_id": str(access.clinician_id),
                "clinician_name": clinician.display_name if clinician else "",
                "reason": access.reason})
        return views

    # ---- loading -------------------------------------------------------------------------

    def _accounts(self) -> IdentityApplication:
        return self.identity

    def _patient(self, patient_id: UUID) -> Account:
        account = self._accounts().find_account(patient_id)
        if account is None or account.role != Role.PATIENT:
            raise NotFound("There is no patient with this id.")
        return account

    def _get(self, aggregate_id: UUID, kind: type[Any]) -> Any:
        try:
            found: Any = self.repository.get(aggregate_id)
        except AggregateNotFoundError:
            return None
        return found if isinstance(found, kind) else None

    def _own_grant(self, actor: Actor, grant_id: UUID) -> ProxyGrant:
        authorise_ever(actor, Action.PROXIES_MANAGE)
        grant = self._get(grant_id, ProxyGrant)
        if grant is None or grant.patient_id != actor.account_id:
            raise NotFound("You have not authorised anyone under this id.")
        authorise(actor, Action.PROXIES_MANAGE, PatientResource(grant.patient_id))
        return grant

    def _held_grant(self, actor: Actor, grant_id: UUID) -> ProxyGrant:
        authorise_ever(actor, Action.PROXY_RESPOND)
        grant = self._get(grant_id, ProxyGrant)
        if grant is None or grant.proxy_account_id != actor.account_id:
            raise NotFound("There is no invitation or access for you under this id.")
        authorise(actor, Action.PROXY_RESPOND,
                  PatientResource(grant.patient_id, holder_id=grant.proxy_account_id))
        return grant

    def _grants(self, column: str, account_id: UUID) -> list[ProxyGrant]:
        assert column in ("patient_id", "account_id")
        with self.datastore.get_connection() as conn:
            rows = conn.execute(
                f"SELECT aggregate_id FROM {ACCESS} WHERE {column} = %s AND kind = 'proxy'"
                " ORDER BY starts_at DESC, aggregate_id", (account_id,)).fetchall()
        return [g for g in (self._get(r["aggregate_id"], ProxyGrant) for r in rows) if g]

    def _break_glass(self, access_id: UUID) -> BreakGlass:
        access = self._get(access_id, BreakGlass)
        if access is None:
            raise NotFound("There is no emergency access with this id.")
        return access


def _break_glass_resource(access: BreakGlass) -> PatientResource:
    return PatientResource(access.patient_id, clinic_id=access.clinic_id,
                           holder_id=access.clinician_id)


def _care_view(care: CareRelationship) -> dict[str, Any]:
    return {"relationship_id": str(care.id), "patient_id": str(care.patient_id),
            "clinician_id": str(care.clinician_id), "clinic_id": care.clinic_id,
            "basis": care.basis, "source_ref": care.source_ref,
            "starts_at": _iso(care.starts_at), "ends_at": _iso(care.ends_at),
            "ended_at": _iso(care.ended_at)}


def _grant_view(grant: ProxyGrant, at: datetime) -> dict[str, Any]:
    status = grant.status
    if status in ("offered", "active") and grant.is_expired(at):
        status = "expired"
    return {"grant_id": str(grant.id), "email": grant.proxy_email, "kind": grant.kind,
            "scopes": list(grant.scopes), "status": status, "offered_at": _iso(grant.offered_at),
            "accepted_at": _iso(grant.accepted_at), "expires_at": _iso(grant.expires_at),
            "ended_at": _iso(grant.ended_at), "ended_by": grant.ended_by}


def _break_glass_view(access: BreakGlass, at: datetime) -> dict[str, Any]:
    return {"access_id": str(access.id), "patient_id": str(access.patient_id),
            "clinic_id": access.clinic_id, "opened_at": _iso(access.opened_at),
            "expires_at": _iso(access.expires_at), "closed_at": _iso(access.closed_at),
            "active": access.is_active(at)}


def _review_view(access: BreakGlass) -> dict[str, Any]:
    return {"review_outcome": access.review_outcome, "review_note": access.review_note,
            "reviewed_at": _iso(access.reviewed_at)}
