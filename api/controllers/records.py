"""Medical records: the patient's record (released records and their own uploads, searchable),
care plans, the access report; the clinic's entry, correction, release and notes; imports from
the clinic's systems.

The patient side reads only the `patient_records` view (projections/record_views.py), which
never receives internal notes or unreleased records. Every view of a record, by anyone, is
recorded in `carebridge.record_access`, and the patient reads that log as the access report.
"""

from __future__ import annotations

import base64
import binascii
from datetime import date, datetime
from typing import Annotated, Any
from uuid import UUID
from zoneinfo import ZoneInfo

import msgspec
from litestar import Controller, Request, Response, get, post, put
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter
from psycopg_pool import AsyncConnectionPool

from api.container import Container
from api.dependencies import (
    expected_version,
    idempotency_key,
    local_time,
    position_headers,
    signed_in,
    wait_for_position,
)
from commands.care import read_relationship
from commands.idempotency import Outcome
from commands.record_access import (
    RESOURCE_WORDS,
    ROLE_WORDS,
    access_report,
    record_access_async,
)
from commands.record_import import parse_record_bundle
from domain.access import Action, Actor, PatientResource, authorise, authorise_ever
from domain.documents import REASON_WORDS, RejectionReason
from domain.documents import WORDS as DOCUMENT_WORDS
from domain.documents import Status as DocumentStatus
from domain.errors import FieldError, InvalidInput, NotFound
from domain.identity import Role
from domain.records import FLAG_WORDS, KIND_WORDS, STATUS_WORDS, Flag, Kind, Status
from projections.record_views import DOCUMENT_KIND, PROJECTION, patient_record, patient_records

PAGE_MAX = 100
# The access report's cursor is a row id: a bigint, so larger is refused, not a server error.
AccessCursor = Annotated[int | None, QueryParameter(name="cursor", ge=1, le=2**63 - 1)]
Text = Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]


# ---- what the patient reads ---------------------------------------------------------------------


class ObservationView(msgspec.Struct):
    name: str
    value: str | None
    unit: str | None
    flag: str | None
    flag_words: str | None
    usual_range: str | None  # "20 to 41 mmol/mol", in words


class EarlierVersion(msgspec.Struct):
    status: str
    status_words: str
    title: str
    observations: list[ObservationView] | None
    replaced_at: str


class RecordSummary(msgspec.Struct):
    record_id: str
    kind: str
    kind_words: str
    code: str
    title: str
    status: str
    status_words: str
    occurred_at: str
    occurred_at_local: str
    released_at: str | None
    amended: bool
    outside_usual_range: bool


class DocumentLink(msgspec.Struct):
    document_id: str
    document_type: str
    filename: str
    content_type: str
    size: int
    explanation: str | None


class RecordDetail(RecordSummary):
    observations: list[ObservationView] | None = None
    comment: str | None = None  # the clinician's comment, written for the patient
    follow_up: str | None = None  # what the patient should do next
    summary: str | None = None
    letter: str | None = None
    referred_to: str | None = None
    vaccine: str | None = None
    dose: int | None = None
    given_on: str | None = None
    batch: str | None = None
    condition: str | None = None
    goals: list[str] | None = None
    actions: list[str] | None = None
    review_on: str | None = None
    appointment_id: str | None = None
    document: DocumentLink | None = None
    amended_at: str | None = None
    amended_at_local: str | None = None
    amendment_reason: str | None = None
    earlier_versions: list[EarlierVersion] = msgspec.field(default_factory=list)


class RecordPage(msgspec.Struct):
    records: list[RecordSummary]
    next_cursor: str | None


class CarePlanView(msgspec.Struct):
    record_id: str
    title: str
    condition: str | None
    summary: str | None
    goals: list[str]
    actions: list[str]
    review_on: str | None
    review_due: bool  # the review date has come
    follow_up: str | None
    updated_at: str


class AccessEntry(msgspec.Struct):
    at: str
    at_local: str
    who: str  # "You", a person's name, or "CareBridge"
    role: str | None
    role_words: str | None
    on_your_behalf: bool  # someone you gave access to (a proxy)
    break_glass: bool  # emergency access, reviewed by the clinic
    what: str
    action: str  # view | download
    record_id: str | None  # when it is something you can open yourself


class AccessReport(msgspec.Struct):
    accesses: list[AccessEntry]
    next_cursor: str | None


# ---- what the clinic sends and reads ------------------------------------------------------------


class RecordEntry(msgspec.Struct, forbid_unknown_fields=True):
    kind: Kind
    content: dict[str, Any]
    code: Annotated[str, msgspec.Meta(min_length=1, max_length=200)] | None = None
    title: Annotated[str, msgspec.Meta(min_length=1, max_length=200)] | None = None
    status: Status | None = None
    clinic_id: str | None = None
    occurred_at: datetime | None = None
    release_now: bool = False  # show it to the patient at once


class RecordRevision(msgspec.Struct, forbid_unknown_fields=True):
    content: dict[str, Any]
    title: Annotated[str, msgspec.Meta(min_length=1, max_length=200)] | None = None
    status: Status | None = None
    reason: Text | None = None  # for the patient: what was corrected and why


class StaffNote(msgspec.Struct, forbid_unknown_fields=True):
    note: Text  # staff only: never shown to the patient


class EnteredInError(msgspec.Struct, forbid_unknown_fields=True):
    reason: Text  # staff only


class InternalNote(msgspec.Struct):
    note: str
    by: str
    at: str


class StaffRevision(msgspec.Struct):
    status: str
    title: str
    content: dict[str, Any]
    until: str


class StaffRecordView(msgspec.Struct):
    record_id: str
    patient_id: str
    clinic_id: str
    kind: str
    code: str
    title: str
    status: str
    content: dict[str, Any]
    source: str
    external_id: str
    occurred_at: str
    entered_at: str
    release_due_at: str | None
    released_at: str | None
    released_by: str | None
    entered_in_error: str | None
    revisions: list[StaffRevision]
    internal_note_count: int
    version: int
    internal_notes: list[InternalNote] | None = None  # for the record's clinicians


class StaffListedRecord(msgspec.Struct):
    record_id: str
    patient_id: str
    clinic_id: str
    kind: str
    code: str
    title: str
    status: str
    occurred_at: str
    entered_at: str
    release_due_at: str | None
    released_at: str | None
    entered_in_error: bool
    internal_note_count: int
    patient_name: str | None = None
    waiting_hours: float | None = None


class StaffRecordList(msgspec.Struct):
    records: list[StaffListedRecord]


class RecordImport(msgspec.Struct, forbid_unknown_fields=True):
    clinic_id: str
    bundle: dict[str, Any]  # a FHIR R4 Bundle
    # The clinic system the bundle comes from ("riverside-emis"): its record numbers on Patient
    # resources are matched through the identifier cross-reference.
    system: str | None = None


class RecordImportSummary(msgspec.Struct):
    entries: int
    created: int
    revised: int
    unchanged: int


# ---- rendering ----------------------------------------------------------------------------------


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def _usual_range(o: dict[str, Any]) -> str | None:
    unit = f" {o['unit']}" if o.get("unit") else ""
    low, high = o.get("reference_low"), o.get("reference_high")
    if low is not None and high is not None:
        return f"{_number(low)} to {_number(high)}{unit}"
    if low is not None:
        return f"{_number(low)}{unit} or more"
    if high is not None:
        return f"up to {_number(high)}{unit}"
    return o.get("reference_text")


def _observations(content: dict[str, Any]) -> list[ObservationView] | None:
    if "observations" not in content:
        return None
    return [ObservationView(
        name=o["name"], value=o.get("value"), unit=o.get("unit"), flag=o.get("flag"),
        flag_words=FLAG_WORDS[Flag(o["flag"])] if o.get("flag") else None,
        usual_range=_usual_range(o)) for o in content["observations"]]


def _status_words(kind: str, status: str, amended_at: datetime | None, zone: ZoneInfo) -> str:
    if kind == DOCUMENT_KIND:
        return DOCUMENT_WORDS[DocumentStatus(status)]
    if status == Status.AMENDED and amended_at is not None:
        return f"Corrected on {amended_at.astimezone(zone):%d %B %Y}"
    if kind == Kind.LAB_RESULT:
        return STATUS_WORDS[Status(status)]
    return "Corrected" if status == Status.AMENDED else "Final"


def _kind_words(kind: str) -> str:
    return "Your upload" if kind == DOCUMENT_KIND else KIND_WORDS[Kind(kind)]


def _summary(row: dict[str, Any], zone: ZoneInfo) -> RecordSummary:
    return RecordSummary(
        record_id=str(row["record_id"]), kind=row["kind"], kind_words=_kind_words(row["kind"]),
        code=row["code"], title=row["title"], status=row["status"],
        status_words=_status_words(row["kind"], row["status"], row["amended_at"], zone),
        occurred_at=row["occurred_at"].isoformat(),
        occurred_at_local=local_time(row["occurred_at"], zone) or "",
        released_at=row["released_at"].isoformat() if row["released_at"] else None,
        amended=row["amended_at"] is not None, outside_usual_range=row["abnormal"])


def _explanation(content: dict[str, Any]) -> str | None:
    reason, note = content.get("reason"), content.get("note")
    if reason:
        words = REASON_WORDS[RejectionReason(reason)]
        return f"{words} {note}" if note else words
    return note


def _detail(row: dict[str, Any], zone: ZoneInfo) -> RecordDetail:
    c = row["content"]
    summary = msgspec.structs.asdict(_summary(row, zone))
    document = None
    if row["kind"] == DOCUMENT_KIND:
        document = DocumentLink(str(row["record_id"]), c["document_type"], c["filename"],
                                c["content_type"], c["size"], _explanation(c))
        c = {}
    amended_at = row["amended_at"]
    earlier = [EarlierVersion(
        status=v["status"], status_words=_status_words(row["kind"], v["status"], None, zone),
        title=v["title"], observations=_observations(v["content"]),
        replaced_at=v["until"]) for v in row["earlier"]]
    return RecordDetail(
        **summary, observations=_observations(c), comment=c.get("comment"),
        follow_up=c.get("follow_up"), summary=c.get("summary"), letter=c.get("letter"),
        referred_to=c.get("to"), vaccine=c.get("vaccine"), dose=c.get("dose"),
        given_on=c.get("given_on"), batch=c.get("batch"), condition=c.get("condition"),
        goals=c.get("goals"), actions=c.get("actions"), review_on=c.get("review_on"),
        appointment_id=c.get("appointment_id"), document=document,
        amended_at=amended_at.isoformat() if amended_at else None,
        amended_at_local=local_time(amended_at, zone), amendment_reason=row["amendment_reason"],
        earlier_versions=earlier)


def _care_plan(row: dict[str, Any], today: date) -> CarePlanView:
    c = row["content"]
    review_on = c.get("review_on")
    return CarePlanView(
        record_id=str(row["record_id"]), title=row["title"], condition=c.get("condition"),
        summary=c.get("summary"), goals=c.get("goals") or [], actions=c.get("actions") or [],
        review_on=review_on,
        review_due=review_on is not None and date.fromisoformat(review_on) <= today,
        follow_up=c.get("follow_up"), updated_at=row["released_at"].isoformat())


def _cursor(value: str | None) -> tuple[datetime, UUID] | None:
    if value is None:
        return None
    try:
        when, _, ref = base64.urlsafe_b64decode(value.encode()).decode().partition("|")
        return datetime.fromisoformat(when), UUID(ref)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidInput([FieldError("cursor", "Send the next_cursor of the page before, "
                                       "unchanged.")]) from None


def _next_cursor(rows: list[dict[str, Any]], limit: int) -> str | None:
    if len(rows) < limit:
        return None
    last = rows[-1]
    raw = f"{last['occurred_at'].isoformat()}|{last['record_id']}"
    return base64.urlsafe_b64encode(raw.encode()).decode()


async def _may_read(conn: Any, actor: Actor, patient_id: UUID, now: datetime) -> None:
    authorise_ever(actor, Action.RECORDS_READ)
    relationship = await read_relationship(conn, actor, patient_id, now)
    authorise(actor, Action.RECORDS_READ, PatientResource(patient_id, relationship))


async def _caught_up(request: Request[Any, Any, State], pool: AsyncConnectionPool,
                     container: Container) -> None:
    await wait_for_position(request, pool, PROJECTION,
                            container.settings.read_your_writes_timeout_ms)


def _zone(container: Container, row: dict[str, Any], default: ZoneInfo) -> ZoneInfo:
    """A record's times are shown in the zone of its clinic (else the network's)."""
    clinic = container.records.clinics(row["clinic_id"])
    return getattr(clinic, "zone", None) or default


def _who(actor_ref: str, patient_id: UUID, container: Container) -> tuple[str, str | None, bool]:
    """(name, role, on the patient's behalf) for an actor ref as events write it."""
    if actor_ref == "system":
        return "CareBridge", None, False
    role, _, account = actor_ref.partition(":")
    if role == "emergency_contact":
        return "Your emergency contact (from the link we sent)", None, True
    if account == str(patient_id):
        return "You", role, False
    found = container.identity.find_account(UUID(account)) if account else None
    name = f"{found.given_name} {found.family_name}".strip() if found else "A former user"
    return name, role, role == Role.PATIENT


# ---- the patient's side -------------------------------------------------------------------------


class PatientRecordController(Controller):
    """The patient's record, as the patient (or a proxy with the records scope) reads it."""

    path = "/v1"
    tags = ["records"]
    dependencies = signed_in("read_pool", "zone")

    async def _page(self, request: Request[Any, Any, State], actor: Actor, patient_id: UUID,
                    read_pool: AsyncConnectionPool, container: Container, zone: ZoneInfo,
                    now: datetime, **filters: Any) -> RecordPage:
        limit = filters.pop("limit")
        after = _cursor(filters.pop("cursor"))
        if filters["since"] is not None and filters["until"] is not None \
                and filters["since"] > filters["until"]:
            raise InvalidInput([FieldError("until", "must be after since")])
        await _caught_up(request, read_pool, container)
        async with read_pool.connection() as conn:
            await _may_read(conn, actor, patient_id, now)
            rows = await patient_records(conn, patient_id, after=after, limit=limit, **filters)
            await record_access_async(conn, actor.ref, patient_id, "record_list", patient_id, now)
        return RecordPage([_summary(r, _zone(container, r, zone)) for r in rows],
                          _next_cursor(rows, limit))

    @get("/me/records", summary="My records: results, letters, vaccinations, care plans, uploads")
    async def mine(self, request: Request[Any, Any, State], actor: NamedDependency[Actor],
                   read_pool: NamedDependency[AsyncConnectionPool],
                   container: NamedDependency[Container], zone: NamedDependency[ZoneInfo],
                   now: NamedDependency[datetime],
                   kind: Annotated[str | None, QueryParameter(name="kind")] = None,
                   status: Annotated[str | None, QueryParameter(name="status")] = None,
                   code: Annotated[str | None, QueryParameter(name="code")] = None,
                   q: Annotated[str | None, QueryParameter(name="q", max_length=200)] = None,
                   outside_usual_range: Annotated[bool | None, QueryParameter(
                       name="outside_usual_range")] = None,
                   since: Annotated[datetime | None, QueryParameter(name="since")] = None,
                   until: Annotated[datetime | None, QueryParameter(name="until")] = None,
                   cursor: Annotated[str | None, QueryParameter(name="cursor")] = None,
                   limit: Annotated[int, QueryParameter(name="limit", ge=1, le=PAGE_MAX)] = 50,
                   ) -> RecordPage:
        return await self._page(request, actor, actor.account_id, read_pool, container, zone,
                                now, kind=_kind_filter(kind), status=status, code=code, text=q,
                                abnormal=outside_usual_range, since=since, until=until,
                                cursor=cursor, limit=limit)

    @get("/patients/{patient_id:uuid}/records",
         summary="The records of someone I act for (a proxy with the records scope)")
    async def theirs(self, request: Request[Any, Any, State], patient_id: FromPath[UUID],
                     actor: NamedDependency[Actor],
                     read_pool: NamedDependency[AsyncConnectionPool],
                     container: NamedDependency[Container], zone: NamedDependency[ZoneInfo],
                     now: NamedDependency[datetime],
                     kind: Annotated[str | None, QueryParameter(name="kind")] = None,
                     status: Annotated[str | None, QueryParameter(name="status")] = None,
                     code: Annotated[str | None, QueryParameter(name="code")] = None,
                     q: Annotated[str | None, QueryParameter(name="q", max_length=200)] = None,
                     outside_usual_range: Annotated[bool | None, QueryParameter(
                         name="outside_usual_range")] = None,
                     since: Annotated[datetime | None, QueryParameter(name="since")] = None,
                     until: Annotated[datetime | None, QueryParameter(name="until")] = None,
                     cursor: Annotated[str | None, QueryParameter(name="cursor")] = None,
                     limit: Annotated[int, QueryParameter(name="limit", ge=1,
                                                          le=PAGE_MAX)] = 50) -> RecordPage:
        return await self._page(request, actor, patient_id, read_pool, container, zone, now,
                                kind=_kind_filter(kind), status=status, code=code, text=q,
                                abnormal=outside_usual_range, since=since, until=until,
                                cursor=cursor, limit=limit)

    @get("/records/{record_id:uuid}", summary="One record, in full; the view is recorded")
    async def one(self, request: Request[Any, Any, State], record_id: FromPath[UUID],
                  actor: NamedDependency[Actor], read_pool: NamedDependency[AsyncConnectionPool],
                  container: NamedDependency[Container], zone: NamedDependency[ZoneInfo],
                  now: NamedDependency[datetime]) -> RecordDetail:
        authorise_ever(actor, Action.RECORDS_READ)
        await _caught_up(request, read_pool, container)
        async with read_pool.connection() as conn:
            row = await patient_record(conn, record_id)
            if row is None:
                raise NotFound("There is no such record in your records. Results appear here "
                               "once the clinic has released them.")
            await _may_read(conn, actor, row["patient_id"], now)
            resource = "document" if row["kind"] == DOCUMENT_KIND else "record"
            await record_access_async(conn, actor.ref, row["patient_id"], resource, record_id,
                                      now)
        return _detail(row, _zone(container, row, zone))

    async def _plans(self, actor: Actor, patient_id: UUID, read_pool: AsyncConnectionPool,
                     container: Container, zone: ZoneInfo,
                     now: datetime) -> list[CarePlanView]:
        async with read_pool.connection() as conn:
            await _may_read(conn, actor, patient_id, now)
            rows = await patient_records(conn, patient_id, kind=Kind.CARE_PLAN.value,
                                         limit=PAGE_MAX)
            await record_access_async(conn, actor.ref, patient_id, "record_list", patient_id, now)
        return [_care_plan(r, now.astimezone(_zone(container, r, zone)).date()) for r in rows]

    @get("/me/care-plans", summary="My care plans for long-term conditions")
    async def my_plans(self, request: Request[Any, Any, State], actor: NamedDependency[Actor],
                       read_pool: NamedDependency[AsyncConnectionPool],
                       container: NamedDependency[Container], zone: NamedDependency[ZoneInfo],
                       now: NamedDependency[datetime]) -> list[CarePlanView]:
        await _caught_up(request, read_pool, container)
        return await self._plans(actor, actor.account_id, read_pool, container, zone, now)

    @get("/patients/{patient_id:uuid}/care-plans",
         summary="The care plans of someone I act for")
    async def their_plans(self, request: Request[Any, Any, State], patient_id: FromPath[UUID],
                          actor: NamedDependency[Actor],
                          read_pool: NamedDependency[AsyncConnectionPool],
                          container: NamedDependency[Container],
                          zone: NamedDependency[ZoneInfo],
                          now: NamedDependency[datetime]) -> list[CarePlanView]:
        await _caught_up(request, read_pool, container)
        return await self._plans(actor, patient_id, read_pool, container, zone, now)

    async def _report(self, actor: Actor, patient_id: UUID, read_pool: AsyncConnectionPool,
                      container: Container, zone: ZoneInfo, now: datetime, cursor: int | None,
                      limit: int) -> AccessReport:
        async with read_pool.connection() as conn:
            await _may_read(conn, actor, patient_id, now)
        rows = access_report(container.identity.factory.datastore,  # type: ignore[attr-defined]
                             patient_id, cursor, limit)
        async with read_pool.connection() as conn:  # which of them the patient can open
            visible = {r[0] for r in await (await conn.execute(
                "SELECT record_id FROM views.patient_records WHERE record_id = ANY(%s)",
                ([r["resource_id"] for r in rows],))).fetchall()} if rows else set()
        entries = []
        for r in rows:
            who, role, proxy = _who(r["actor"], patient_id, container)
            entries.append(AccessEntry(
                at=r["at"].isoformat(), at_local=local_time(r["at"], zone) or "", who=who,
                role=role, role_words=ROLE_WORDS.get(role or ""), on_your_behalf=proxy,
                break_glass=r["break_glass"],
                what=RESOURCE_WORDS.get(r["resource"], "part of your record"),
                action=r["action"],
                record_id=str(r["resource_id"]) if r["resource_id"] in visible else None))
        next_cursor = str(rows[-1]["access_id"]) if len(rows) == limit else None
        return AccessReport(entries, next_cursor)

    @get("/me/record-access", summary="Who viewed or downloaded my record, and when")
    async def my_access(self, actor: NamedDependency[Actor],
                        read_pool: NamedDependency[AsyncConnectionPool],
                        container: NamedDependency[Container], zone: NamedDependency[ZoneInfo],
                        now: NamedDependency[datetime],
                        cursor: AccessCursor = None,
                        limit: Annotated[int, QueryParameter(name="limit", ge=1,
                                                             le=PAGE_MAX)] = 50) -> AccessReport:
        return await self._report(actor, actor.account_id, read_pool, container, zone, now,
                                  cursor, limit)

    @get("/patients/{patient_id:uuid}/record-access",
         summary="Who viewed or downloaded the record of someone I act for")
    async def their_access(self, patient_id: FromPath[UUID], actor: NamedDependency[Actor],
                           read_pool: NamedDependency[AsyncConnectionPool],
                           container: NamedDependency[Container],
                           zone: NamedDependency[ZoneInfo], now: NamedDependency[datetime],
                           cursor: AccessCursor = None,
                           limit: Annotated[int, QueryParameter(
                               name="limit", ge=1, le=PAGE_MAX)] = 50) -> AccessReport:
        return await self._report(actor, patient_id, read_pool, container, zone, now, cursor,
                                  limit)


def _kind_filter(kind: str | None) -> str | None:
    if kind is None or kind == DOCUMENT_KIND or kind in Kind.__members__.values():
        return kind
    raise InvalidInput([FieldError("kind", "must be one of " + ", ".join(
        [*(k.value for k in Kind), DOCUMENT_KIND]))])


# ---- the clinic's side --------------------------------------------------------------------------


def _staff(outcome: Outcome) -> Response[StaffRecordView]:
    cleaned = {k: v for k, v in outcome.result.items() if k != "changed"}
    return Response(msgspec.convert(cleaned, StaffRecordView),
                    headers=position_headers("records", outcome.position)
                    | {"ETag": f'"{cleaned["version"]}"'})


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise InvalidInput([FieldError("occurred_at", "include the time zone, for example "
                                       "2026-03-02T09:30:00+01:00")])
    return value


class StaffRecordController(Controller):
    """Entering, correcting, annotating and releasing records (the care team's doctors and
    nurses), and reading them as the clinic holds them."""

    path = "/v1/staff"
    tags = ["records"]
    dependencies = signed_in()

    @post("/patients/{patient_id:uuid}/records", status_code=201, sync_to_thread=True,
          summary="Enter a record for a patient in my care")
    def enter(self, request: Request[Any, Any, State], patient_id: FromPath[UUID],
              data: JSONBody[RecordEntry], actor: NamedDependency[Actor],
              container: NamedDependency[Container],
              now: NamedDependency[datetime]) -> Response[StaffRecordView]:
        key = idempotency_key(request, actor.ref, f"records.enter.{patient_id}", data)
        entry = msgspec.structs.asdict(data)
        entry["kind"], entry["occurred_at"] = data.kind.value, _aware(data.occurred_at)
        entry["status"] = data.status.value if data.status else None
        response = _staff(container.records.enter(actor, patient_id, entry, now, key=key))
        response.status_code = 201
        return response

    @get("/patients/{patient_id:uuid}/records", sync_to_thread=True,
         summary="A patient's records as the clinic holds them, released or not")
    def listed(self, patient_id: FromPath[UUID], actor: NamedDependency[Actor],
               container: NamedDependency[Container], now: NamedDependency[datetime],
               kind: Annotated[Kind | None, QueryParameter(name="kind")] = None,
               ) -> StaffRecordList:
        rows = container.records.staff_records(actor, patient_id, now, kind)
        return StaffRecordList([msgspec.convert(r, StaffListedRecord) for r in rows])

    @get("/clinics/{clinic_id:str}/records-to-release", sync_to_thread=True,
         summary="My clinic's records waiting for release, oldest first")
    def to_release(self, clinic_id: FromPath[str], actor: NamedDependency[Actor],
                   container: NamedDependency[Container],
                   now: NamedDependency[datetime]) -> StaffRecordList:
        rows = container.records.release_queue(actor, clinic_id, now)
        return StaffRecordList([msgspec.convert(r, StaffListedRecord) for r in rows])

    @get("/records/{record_id:uuid}", sync_to_thread=True,
         summary="One record as the clinic holds it; the view is recorded")
    def one(self, record_id: FromPath[UUID], actor: NamedDependency[Actor],
            container: NamedDependency[Container],
            now: NamedDependency[datetime]) -> Response[StaffRecordView]:
        view = container.records.staff_record(actor, record_id, now)
        return Response(msgspec.convert(view, StaffRecordView),
                        headers={"ETag": f'"{view["version"]}"'})

    @put("/records/{record_id:uuid}", sync_to_thread=True,
         summary="A new version: the final result, or a correction (send If-Match)")
    def revise(self, request: Request[Any, Any, State], record_id: FromPath[UUID],
               data: JSONBody[RecordRevision], actor: NamedDependency[Actor],
               container: NamedDependency[Container],
               now: NamedDependency[datetime]) -> Response[StaffRecordView]:
        expected = expected_version(request, "the record you read")
        key = idempotency_key(request, actor.ref, f"records.revise.{record_id}", data)
        entry = msgspec.structs.asdict(data)
        entry["status"] = data.status.value if data.status else None
        return _staff(container.records.revise(actor, record_id, entry, expected, now, key=key))

    @post("/records/{record_id:uuid}/release", status_code=200, sync_to_thread=True,
          summary="Release a record to the patient now")
    def release(self, request: Request[Any, Any, State], record_id: FromPath[UUID],
                actor: NamedDependency[Actor], container: NamedDependency[Container],
                now: NamedDependency[datetime]) -> Response[StaffRecordView]:
        key = idempotency_key(request, actor.ref, f"records.release.{record_id}", {})
        return _staff(container.records.release(actor, record_id, now, key=key))

    @post("/records/{record_id:uuid}/notes", status_code=200, sync_to_thread=True,
          summary="Add an internal note (the clinic's clinicians only; never the patient)")
    def note(self, request: Request[Any, Any, State], record_id: FromPath[UUID],
             data: JSONBody[StaffNote], actor: NamedDependency[Actor],
             container: NamedDependency[Container],
             now: NamedDependency[datetime]) -> Response[StaffRecordView]:
        key = idempotency_key(request, actor.ref, f"records.note.{record_id}", data)
        return _staff(container.records.add_note(actor, record_id, data.note, now, key=key))

    @post("/records/{record_id:uuid}/entered-in-error", status_code=200, sync_to_thread=True,
          summary="Mark a record as entered in error (it leaves the patient's record)")
    def entered_in_error(self, request: Request[Any, Any, State], record_id: FromPath[UUID],
                         data: JSONBody[EnteredInError], actor: NamedDependency[Actor],
                         container: NamedDependency[Container],
                         now: NamedDependency[datetime]) -> Response[StaffRecordView]:
        key = idempotency_key(request, actor.ref, f"records.error.{record_id}", data)
        return _staff(container.records.mark_entered_in_error(actor, record_id, data.reason,
                                                              now, key=key))


class RecordImportController(Controller):
    """Records from the clinic's systems (a FHIR R4 Bundle), all or nothing."""

    path = "/v1/admin"
    tags = ["records"]
    dependencies = signed_in()

    @post("/record-import", status_code=200, sync_to_thread=True,
          summary="Import results, vaccinations and letters from the clinic's system (FHIR R4)")
    def import_records(self, data: JSONBody[RecordImport], actor: NamedDependency[Actor],
                       container: NamedDependency[Container],
                       now: NamedDependency[datetime]) -> RecordImportSummary:
        container.records.may_import(actor, data.clinic_id)
        entries = parse_record_bundle(data.bundle)
        return RecordImportSummary(**container.records.import_records(
            actor, data.clinic_id, entries, now, system=data.system))
