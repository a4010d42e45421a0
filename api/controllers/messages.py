"""Secure messaging: the patient's conversations with their clinic (started with what they are
about, routed to the right team, with the answer time the clinic promises), the teams' queues
and answers, staff notes that stay with staff, and a live feed of changes over a WebSocket.

The patient side reads only the `patient_threads` view (projections/message_views.py), which
never receives staff notes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID
from zoneinfo import ZoneInfo

import msgspec
from litestar import Controller, Request, Response, WebSocket, get, post, put, websocket
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.exceptions import WebSocketDisconnect
from litestar.params import FromPath, JSONBody, QueryParameter
from psycopg_pool import AsyncConnectionPool

from api.container import Container
from api.dependencies import (
    idempotency_key,
    local_time,
    position_headers,
    provide_actor,
    signed_in,
    wait_for_position,
)
from api.live import NotifyListener, forward
from commands.care import ACCESS, read_relationship
from commands.messaging import CHANNEL, TEAM_ROLES
from commands.record_access import ROLE_WORDS, record_access_async
from domain.access import Action, Actor, PatientResource, authorise, authorise_ever
from domain.errors import CareBridgeError, NotFound
from domain.identity import Role
from domain.messaging import (
    CATEGORY_WORDS,
    STATE_WORDS,
    TEAM_WORDS,
    Category,
    ContextKind,
    Team,
    expectation_words,
)
from domain.messaging import (
    State as ThreadState,
)
from projections.message_views import PROJECTION, patient_thread, patient_threads

log = logging.getLogger("carebridge.messaging")

Body = Annotated[str, msgspec.Meta(min_length=1, max_length=5000)]
Subject = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Note = Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]
Attachments = Annotated[list[UUID], msgspec.Meta(max_length=5)]


class Context(msgspec.Struct, forbid_unknown_fields=True):
    kind: ContextKind
    id: UUID


class NewThread(msgspec.Struct, forbid_unknown_fields=True):
    category: Category
    subject: Subject
    body: Body
    patient_id: UUID | None = None  # a proxy writes for the patient they help
    context: Context | None = None
    attachments: Attachments = msgspec.field(default_factory=list)
    clinic_id: str | None = None  # when there is no context and no preferred clinic


class NewMessage(msgspec.Struct, forbid_unknown_fields=True):
    body: Body
    attachments: Attachments = msgspec.field(default_factory=list)


class StaffNote(msgspec.Struct, forbid_unknown_fields=True):
    note: Note  # staff only: never shown to the patient


class Reassignment(msgspec.Struct, forbid_unknown_fields=True):
    team: Team
    clinician_id: UUID | None = None


class Route(msgspec.Struct, forbid_unknown_fields=True):
    team: Team
    clinician_id: UUID | None = None


class ThreadOutcome(msgspec.Struct):
    thread_id: str
    state: str
    team: str
    due_by: str | None
    version: int


class CategoryView(msgspec.Struct):
    category: str
    words: str
    expectation: str  # "The clinic usually answers within 2 days."
    response_hours: float


class MessageView(msgspec.Struct):
    message_id: str
    from_patient: bool
    author: str  # "You", the proxy's name, or the staff member's name
    author_role: str | None
    body: str
    attachments: list[str]
    at: str
    at_local: str


class ThreadSummary(msgspec.Struct):
    thread_id: str
    category: str
    category_words: str
    subject: str
    team: str
    team_words: str
    state: str
    state_words: str
    expected_answer_by: str | None  # while the clinic owes an answer
    expectation: str
    context_kind: str | None
    context_id: str | None
    last_message_at: str
    message_count: int


class ThreadDetail(ThreadSummary):
    messages: list[MessageView]
    version: int


class QueuedThread(msgspec.Struct):
    thread_id: str
    patient_id: str
    patient_name: str | None
    clinic_id: str
    category: str
    subject: str
    team: str
    clinician_id: str | None
    state: str
    due_by: str | None
    overdue: bool
    last_message_at: str


class Queue(msgspec.Struct):
    threads: list[QueuedThread]


class StaffMessage(msgspec.Struct):
    message_id: str
    by: str
    body: str
    attachments: list[str]
    at: str


class StaffNoteView(msgspec.Struct):
    note: str
    by: str
    at: str


class StaffThread(msgspec.Struct):
    thread_id: str
    patient_id: str
    clinic_id: str
    category: str
    subject: str
    context_kind: str | None
    context_id: str | None
    team: str
    clinician_id: str | None
    state: str
    due_by: str | None
    overdue: bool
    messages: list[StaffMessage]
    notes: list[StaffNoteView]
    version: int


def _outcome(outcome: Any, status: int = 200) -> Response[ThreadOutcome]:
    cleaned = {k: v for k, v in outcome.result.items() if k != "changed"}
    return Response(msgspec.convert(cleaned, ThreadOutcome), status_code=status,
                    headers=position_headers("messaging", outcome.position))


def _author(container: Container, ref: str, patient_id: UUID, me: Actor) -> tuple[str, str | None]:
    role, _, account = ref.partition(":")
    if account == str(me.account_id):
        return "You", role
    if account == str(patient_id):
        found = container.identity.find_account(patient_id)
        return (f"{found.given_name} {found.family_name}" if found else "The patient"), role
    found = container.identity.find_account(UUID(account)) if account else None
    return (f"{found.given_name} {found.family_name}".strip() if found else "The clinic"), role


def _summary(row: dict[str, Any], container: Container, zone: ZoneInfo) -> ThreadSummary:
    category = Category(row["category"])
    hours = container.messaging.hours(category)
    waiting = ThreadState(row["state"]) in (ThreadState.OPEN, ThreadState.PENDING_CLINIC,
                                            ThreadState.REOPENED)
    return ThreadSummary(
        thread_id=str(row["thread_id"]), category=category.value,
        category_words=CATEGORY_WORDS[category], subject=row["subject"], team=row["team"],
        team_words=TEAM_WORDS[Team(row["team"])], state=row["state"],
        state_words=STATE_WORDS[ThreadState(row["state"])],
        expected_answer_by=local_time(row["due_by"], zone) if waiting else None,
        expectation=expectation_words(hours),
        context_kind=row["context_kind"],
        context_id=str(row["context_id"]) if row["context_id"] else None,
        last_message_at=row["last_message_at"].isoformat(),
        message_count=row["message_count"])


async def _may_read(conn: Any, actor: Actor, patient_id: UUID, now: datetime) -> None:
    authorise_ever(actor, Action.MESSAGES_READ)
    relationship = await read_relationship(conn, actor, patient_id, now)
    authorise(actor, Action.MESSAGES_READ, PatientResource(patient_id, relationship))


class PatientMessageController(Controller):
    """The patient's side (or a proxy with the messaging scope)."""

    path = "/v1"
    tags = ["messages"]
    dependencies = signed_in("read_pool", "zone")

    @get("/message-categories", summary="What a conversation can be about, and how soon the "
         "clinic answers each")
    async def categories(self, actor: NamedDependency[Actor],
                         container: NamedDependency[Container]) -> list[CategoryView]:
        return [CategoryView(c.value, CATEGORY_WORDS[c], expectation_words(
            container.messaging.hours(c)), container.messaging.hours(c)) for c in Category]

    @post("/message-threads", status_code=201, sync_to_thread=True,
          summary="Start a conversation with the clinic, about something if you like")
    def start(self, request: Request[Any, Any, State], data: JSONBody[NewThread],
              actor: NamedDependency[Actor], container: NamedDependency[Container],
              now: NamedDependency[datetime]) -> Response[ThreadOutcome]:
        patient_id = data.patient_id or actor.account_id
        key = idempotency_key(request, actor.ref, f"messages.start.{patient_id}", data)
        outcome = container.messaging.start(
            actor, patient_id, data.category, data.subject, data.body,
            data.context.kind if data.context else None,
            data.context.id if data.context else None, list(data.attachments), data.clinic_id,
            now, key=key)
        return _outcome(outcome, 201)

    async def _list(self, request: Request[Any, Any, State], actor: Actor, patient_id: UUID,
                    read_pool: AsyncConnectionPool, container: Container, zone: ZoneInfo,
                    now: datetime, state: ThreadState | None) -> list[ThreadSummary]:
        await wait_for_position(request, read_pool, PROJECTION,
                                container.settings.read_your_writes_timeout_ms)
        async with read_pool.connection() as conn:
            await _may_read(conn, actor, patient_id, now)
            rows = await patient_threads(conn, patient_id, state.value if state else None, 200)
        return [_summary(r, container, zone) for r in rows]

    @get("/me/message-threads", summary="My conversations with the clinic, latest first")
    async def mine(self, request: Request[Any, Any, State], actor: NamedDependency[Actor],
                   read_pool: NamedDependency[AsyncConnectionPool],
                   container: NamedDependency[Container], zone: NamedDependency[ZoneInfo],
                   now: NamedDependency[datetime],
                   thread_state: Annotated[ThreadState | None,
                                           QueryParameter(name="state")] = None,
                   ) -> list[ThreadSummary]:
        return await self._list(request, actor, actor.account_id, read_pool, container, zone,
                                now, thread_state)

    @get("/patients/{patient_id:uuid}/message-threads",
         summary="The conversations of someone I help (the messaging scope)")
    async def theirs(self, request: Request[Any, Any, State], patient_id: FromPath[UUID],
                     actor: NamedDependency[Actor],
                     read_pool: NamedDependency[AsyncConnectionPool],
                     container: NamedDependency[Container], zone: NamedDependency[ZoneInfo],
                     now: NamedDependency[datetime],
                     thread_state: Annotated[ThreadState | None,
                                             QueryParameter(name="state")] = None,
                     ) -> list[ThreadSummary]:
        return await self._list(request, actor, patient_id, read_pool, container, zone, now,
                                thread_state)

    @get("/message-threads/{thread_id:uuid}", summary="One conversation, every message in it")
    async def one(self, request: Request[Any, Any, State], thread_id: FromPath[UUID],
                  actor: NamedDependency[Actor], read_pool: NamedDependency[AsyncConnectionPool],
                  container: NamedDependency[Container], zone: NamedDependency[ZoneInfo],
                  now: NamedDependency[datetime]) -> ThreadDetail:
        authorise_ever(actor, Action.MESSAGES_READ)
        if actor.role is not Role.PATIENT:
            raise NotFound("Staff open conversations from their team's queue.")
        await wait_for_position(request, read_pool, PROJECTION,
                                container.settings.read_your_writes_timeout_ms)
        async with read_pool.connection() as conn:
            thread, messages = await patient_thread(conn, thread_id)
            if thread is None:
                raise NotFound("There is no such conversation.")
            await _may_read(conn, actor, thread["patient_id"], now)
            await record_access_async(conn, actor.ref, thread["patient_id"], "message_thread",
                                      thread_id, now)
        views = []
        for m in messages:
            who, role = _author(container, m["author"], thread["patient_id"], actor)
            views.append(MessageView(
                str(m["message_id"]), m["from_patient"], who,
                ROLE_WORDS.get(role or "") if not m["from_patient"] else None, m["body"],
                list(m["attachments"]), m["at"].isoformat(), local_time(m["at"], zone) or ""))
        summary = msgspec.structs.asdict(_summary(thread, container, zone))
        return ThreadDetail(**summary, messages=views, version=thread["aggregate_version"])

    @post("/message-threads/{thread_id:uuid}/messages", status_code=201, sync_to_thread=True,
          summary="Write in a conversation")
    def write(self, request: Request[Any, Any, State], thread_id: FromPath[UUID],
              data: JSONBody[NewMessage], actor: NamedDependency[Actor],
              container: NamedDependency[Container],
              now: NamedDependency[datetime]) -> Response[ThreadOutcome]:
        key = idempotency_key(request, actor.ref, f"messages.post.{thread_id}", data)
        return _outcome(container.messaging.post(actor, thread_id, data.body,
                                                 list(data.attachments), now, key=key), 201)

    @post("/message-threads/{thread_id:uuid}/close", status_code=200, sync_to_thread=True,
          summary="Close a conversation (it can be reopened for 30 days)")
    def close(self, request: Request[Any, Any, State], thread_id: FromPath[UUID],
              actor: NamedDependency[Actor], container: NamedDependency[Container],
              now: NamedDependency[datetime]) -> Response[ThreadOutcome]:
        key = idempotency_key(request, actor.ref, f"messages.close.{thread_id}", {})
        return _outcome(container.messaging.close_thread(actor, thread_id, now, key=key))

    @post("/message-threads/{thread_id:uuid}/reopen", status_code=200, sync_to_thread=True,
          summary="Reopen a closed conversation")
    def reopen(self, request: Request[Any, Any, State], thread_id: FromPath[UUID],
               actor: NamedDependency[Actor], container: NamedDependency[Container],
               now: NamedDependency[datetime]) -> Response[ThreadOutcome]:
        key = idempotency_key(request, actor.ref, f"messages.reopen.{thread_id}", {})
        return _outcome(container.messaging.reopen_thread(actor, thread_id, now, key=key))


class StaffMessageController(Controller):
    """A clinic's teams: their queues, answers, notes, and passing a conversation on."""

    path = "/v1/staff/message-threads"
    tags = ["messages"]
    dependencies = signed_in()

    @get("/", sync_to_thread=True,
         summary="My teams' conversations at a clinic, the ones waiting longest first")
    def queue(self, actor: NamedDependency[Actor], container: NamedDependency[Container],
              now: NamedDependency[datetime],
              clinic_id: Annotated[str, QueryParameter(name="clinic_id")],
              team: Annotated[Team | None, QueryParameter(name="team")] = None,
              thread_state: Annotated[ThreadState | None, QueryParameter(name="state")] = None,
              overdue: Annotated[bool, QueryParameter(name="overdue")] = False) -> Queue:
        rows = container.messaging.queue(actor, clinic_id, team,
                                         thread_state.value if thread_state else None, overdue,
                                         now)
        return Queue([msgspec.convert(r, QueuedThread) for r in rows])

    @get("/{thread_id:uuid}", sync_to_thread=True,
         summary="One conversation with its staff notes; the view is recorded")
    def one(self, thread_id: FromPath[UUID], actor: NamedDependency[Actor],
            container: NamedDependency[Container], now: NamedDependency[datetime]) -> StaffThread:
        return msgspec.convert(container.messaging.staff_thread(actor, thread_id, now),
                               StaffThread)

    @post("/{thread_id:uuid}/messages", status_code=201, sync_to_thread=True,
          summary="Answer the patient (they are told there is a message, never what)")
    def answer(self, request: Request[Any, Any, State], thread_id: FromPath[UUID],
               data: JSONBody[NewMessage], actor: NamedDependency[Actor],
               container: NamedDependency[Container],
               now: NamedDependency[datetime]) -> Response[ThreadOutcome]:
        key = idempotency_key(request, actor.ref, f"messages.answer.{thread_id}", data)
        return _outcome(container.messaging.post(actor, thread_id, data.body,
                                                 list(data.attachments), now, key=key), 201)

    @post("/{thread_id:uuid}/notes", status_code=200, sync_to_thread=True,
          summary="Add a note for staff (never shown to the patient)")
    def note(self, request: Request[Any, Any, State], thread_id: FromPath[UUID],
             data: JSONBody[StaffNote], actor: NamedDependency[Actor],
             container: NamedDependency[Container],
             now: NamedDependency[datetime]) -> Response[ThreadOutcome]:
        key = idempotency_key(request, actor.ref, f"messages.note.{thread_id}", data)
        return _outcome(container.messaging.add_note(actor, thread_id, data.note, now, key=key))

    @post("/{thread_id:uuid}/reassign", status_code=200, sync_to_thread=True,
          summary="Pass the conversation to another team or a named clinician")
    def reassign(self, request: Request[Any, Any, State], thread_id: FromPath[UUID],
                 data: JSONBody[Reassignment], actor: NamedDependency[Actor],
                 container: NamedDependency[Container],
                 now: NamedDependency[datetime]) -> Response[ThreadOutcome]:
        key = idempotency_key(request, actor.ref, f"messages.reassign.{thread_id}", data)
        return _outcome(container.messaging.reassign(actor, thread_id, data.team,
                                                     data.clinician_id, now, key=key))

    @post("/{thread_id:uuid}/close", status_code=200, sync_to_thread=True,
          summary="Close a conversation")
    def close(self, request: Request[Any, Any, State], thread_id: FromPath[UUID],
              actor: NamedDependency[Actor], container: NamedDependency[Container],
              now: NamedDependency[datetime]) -> Response[ThreadOutcome]:
        key = idempotency_key(request, actor.ref, f"messages.staff-close.{thread_id}", {})
        return _outcome(container.messaging.close_thread(actor, thread_id, now, key=key))


class MessageRoutingController(Controller):
    """A clinic's administrators decide which team answers each category there."""

    path = "/v1/admin/clinics"
    tags = ["messages"]
    dependencies = signed_in()

    @get("/{clinic_id:str}/message-routes", sync_to_thread=True,
         summary="Which team answers each category of conversation at the clinic")
    def routes(self, clinic_id: FromPath[str], actor: NamedDependency[Actor],
               container: NamedDependency[Container]) -> dict[str, Route]:
        return {category: msgspec.convert(rule, Route)
                for category, rule in container.messaging.routes(actor, clinic_id).items()}

    @put("/{clinic_id:str}/message-routes", sync_to_thread=True,
         summary="Change which team answers categories of conversation at the clinic")
    def set_routes(self, request: Request[Any, Any, State], clinic_id: FromPath[str],
                   data: JSONBody[dict[Category, Route]], actor: NamedDependency[Actor],
                   container: NamedDependency[Container],
                   now: NamedDependency[datetime]) -> dict[str, Route]:
        key = idempotency_key(request, actor.ref, f"messages.routes.{clinic_id}", data)
        container.messaging.set_routes(actor, clinic_id, {
            category: (route.team, route.clinician_id) for category, route in data.items()},
            now, key=key)
        return {category: msgspec.convert(rule, Route)
                for category, rule in container.messaging.routes(actor, clinic_id).items()}


# ---- the live feed ------------------------------------------------------------------------------

CLOSE_UNAUTHENTICATED = 4401


class MessageFeed:
    """Tells this process's connected clients that a conversation they may see changed. It
    listens on the NOTIFY every change of a thread sends (committed with it), so every API
    process hears of every change; frames carry ids and the state, and clients read the thread
    through the API, which stays the source of truth for clients that were offline."""

    def __init__(self, url: str) -> None:
        self.subscribers: set[tuple[Callable[[dict[str, Any]], bool], asyncio.Queue[Any]]] = set()
        self.listener = NotifyListener(url, CHANNEL, self.fan_out)

    async def start(self) -> None:
        await self.listener.start()

    async def stop(self) -> None:
        await self.listener.stop()

    def fan_out(self, change: dict[str, Any]) -> None:
        for may_see, queue in list(self.subscribers):
            if may_see(change):
                queue.put_nowait(change)


def _filter_for(actor: Actor, patients: set[str]) -> Callable[[dict[str, Any]], bool]:
    """Which changes this person hears of: a patient's (and those of the people they help
    with messaging), or the conversations of the teams a staff member works in at their
    clinics."""
    if actor.role is Role.PATIENT:
        return lambda change: change["patient_id"] in patients
    teams = {t.value for t in Team if actor.role in TEAM_ROLES[t]}
    mine = str(actor.account_id)

    def may_see(change: dict[str, Any]) -> bool:
        if change["clinic_id"] not in actor.clinic_ids or change["team"] not in teams:
            return False
        return change["team"] != Team.CLINICIAN.value or change["clinician_id"] == mine
    return may_see


@websocket("/v1/messages/live")
async def message_feed(socket: WebSocket[Any, Any, State]) -> None:
    """Live changes to the caller's conversations: `{"type": "thread", "thread_id", "event",
    "state"}`. Authenticated like the API (`Authorization: Bearer`)."""
    state = socket.app.state
    clock: Callable[[], datetime] = state.get("clock") or (lambda: datetime.now(UTC))
    await socket.accept()
    try:
        actor = await provide_actor(socket, state)  # type: ignore[arg-type]
    except CareBridgeError as refused:
        await socket.close(CLOSE_UNAUTHENTICATED, refused.detail[:120])
        return
    patients = {str(actor.account_id)}
    if actor.role is Role.PATIENT:
        async with state.read_pool.connection() as conn:
            rows = await (await conn.execute(
                f"SELECT patient_id FROM {ACCESS} WHERE kind = 'proxy' AND account_id = %s"
                " AND state = 'active' AND starts_at <= %s AND (ends_at IS NULL OR ends_at > %s)"
                " AND 'messaging' = ANY(scopes)", (actor.account_id, clock(), clock()))
            ).fetchall()
        patients |= {str(row[0]) for row in rows}
    queue: asyncio.Queue[Any] = asyncio.Queue()
    entry = (_filter_for(actor, patients), queue)
    feed: MessageFeed = state.message_feed
    feed.subscribers.add(entry)
    try:
        await socket.send_json({"type": "ready"})
        await forward(socket, queue, lambda change: {
            "type": "thread", "thread_id": change["thread_id"], "event": change["event"],
            "state": change["state"]})
    except WebSocketDisconnect:
        log.debug("message feed: a client went away")
    except Exception:
        log.exception("message feed: a connection failed")
    finally:
        feed.subscribers.discard(entry)
