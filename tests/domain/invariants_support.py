"""Shared machinery of the invariant state machines (tests/domain/test_invariants_*.py).

The machines drive the real command handlers (`commands/`) on eventsourcing's in-memory (POPO)
recorder, with the production mapper and cipher, so that what they replay has been through
the same encoding as PostgreSQL would store. The collaborators the handlers ask about people
(care relationships, accounts, consents, pharmacies) are small fakes here.

Settings: by default each machine runs `max_examples=75` programs of up to 60 steps, with no
deadline (hypothesis ends some programs early, so 75 are needed for the 3,000 steps per machine
that each test checks it ran; the three machines take about 10 to 20 seconds together).
`CAREBRIDGE_HYPOTHESIS=deep` selects the hypothesis profile "deep" instead: ten times as many
programs (at least 30,000 steps per machine, about a minute and a half), for benchmarks and the
nightly CI run:

    CAREBRIDGE_HYPOTHESIS=deep uv run pytest tests/domain/test_invariants_*.py -q -s

With `-s` each test prints how many steps it ran. A failure prints the shortest sequence of
steps that breaks the invariant, as Python that replays it.
"""

from __future__ import annotations

import base64
import os
import secrets
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from types import SimpleNamespace
from typing import Any, TypeVar, cast
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.persistence import StoredEvent
from eventsourcing.popo import POPOApplicationRecorder, POPOFactory
from hypothesis import settings

from commands.eventstore import EventStoreSettings, Statement
from domain.access import NO_RELATIONSHIP, Actor, Relationship
from domain.consents import ConsentType
from domain.errors import CareBridgeError
from domain.identity import Role

T = TypeVar("T")

DEFAULT_PROFILE, DEEP_PROFILE = "carebridge-invariants", "deep"
EXAMPLES, STEPS_PER_EXAMPLE = 75, 60
settings.register_profile(DEFAULT_PROFILE, max_examples=EXAMPLES,
                          stateful_step_count=STEPS_PER_EXAMPLE, deadline=None)
settings.register_profile(DEEP_PROFILE, max_examples=10 * EXAMPLES,
                          stateful_step_count=STEPS_PER_EXAMPLE, deadline=None)
DEEP = os.environ.get("CAREBRIDGE_HYPOTHESIS") == DEEP_PROFILE
# Only the machines use these settings: loading the profile globally would change every other
# property test of the suite.
MACHINE_SETTINGS = settings.get_profile(DEEP_PROFILE if DEEP else DEFAULT_PROFILE)
MIN_STEPS = 3_000 * (10 if DEEP else 1)

CLINIC = "riverside"


# ---- the event store in memory ----------------------------------------------------------------

class InMemoryRecorder(POPOApplicationRecorder):
    """The POPO recorder, keeping the lookup-table statements (`also`) that PostgreSQL would
    run in the same transaction as the events, in the order they committed."""

    def __init__(self) -> None:
        super().__init__()
        self.statements: list[Statement] = []

    def insert_events(self, stored_events: Sequence[StoredEvent],
                      **kwargs: Any) -> Sequence[int] | None:
        ids = super().insert_events(stored_events, **kwargs)
        self.statements.extend(kwargs.get("also") or ())
        return ids


class InMemoryDatastore:
    """Takes the plain INSERTs a handler writes outside the event transaction (the record
    access log) and refuses any other SQL, so that a handler reading a SQL view is loud. The
    machines pass no idempotency keys, so that store is never asked."""

    def __init__(self) -> None:
        self.inserted: list[Statement] = []

    @contextmanager
    def get_connection(self) -> Iterator[InMemoryDatastore]:
        yield self

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        assert sql.startswith("INSERT INTO "), f"a SQL read in memory: {sql}"
        self.inserted.append(Statement(sql, tuple(params)))


class InMemoryFactory(POPOFactory):
    def __init__(self, env: Any) -> None:
        super().__init__(env)
        self.datastore = InMemoryDatastore()

    def application_recorder(self) -> InMemoryRecorder:
        return InMemoryRecorder()


class InMemoryStore(EventStoreSettings):
    def env(self, app: type[Application[Any]]) -> dict[str, str]:
        return {"PERSISTENCE_MODULE": f"{__name__}:InMemoryFactory",
                "MAPPER_TOPIC": "commands.codec:CareMapper",
                "CIPHER_TOPIC": "commands.codec:CareCipher",
                "CIPHER_KEY": self.encryption_key}


def in_memory_store() -> EventStoreSettings:
    return InMemoryStore(database_url="", encryption_key=base64.b64encode(
        secrets.token_bytes(32)).decode())


def upserted_rows(app: Application[Any], table: str, key_index: int = 0,
                  ) -> dict[Any, tuple[Any, ...]]:
    """The rows of a write-side lookup table as the committed upserts left them."""
    recorder = app.recorder
    assert isinstance(recorder, InMemoryRecorder)
    rows: dict[Any, tuple[Any, ...]] = {}
    for statement in recorder.statements:
        if statement.sql.startswith(f"INSERT INTO {table} "):
            rows[statement.params[key_index]] = statement.params
    return rows


# ---- people ---------------------------------------------------------------------------------------

def person(role: Role, number: int, clinic: str | None = CLINIC) -> Actor:
    return Actor(UUID(f"00000000-0000-4000-8000-{number:012d}"), role,
                 frozenset({clinic}) if clinic else frozenset())


@dataclass(frozen=True)
class Account:
    id: UUID
    email: str
    given_name: str = "Grace"
    family_name: str = "Hopper"
    mobile_phone: str | None = None
    date_of_birth: date | None = None


@dataclass
class Directory:
    accounts: dict[UUID, Account] = field(default_factory=dict)

    def find_account(self, account_id: UUID) -> Account | None:
        return self.accounts.get(account_id)


@dataclass
class ClinicCare:
    """Stands in for the care context: every patient is known at Riverside and in the care
    team of its staff; a patient acts only for themself (no proxies)."""

    identity: Directory = field(default_factory=Directory)
    joined: list[tuple[UUID, UUID]] = field(default_factory=list)

    def relationship(self, actor: Actor, patient_id: UUID, at: datetime) -> Relationship:
        if actor.role is Role.PATIENT:
            return NO_RELATIONSHIP
        return Relationship(care_team_clinics=frozenset({CLINIC}),
                            patient_clinics=frozenset({CLINIC}))

    def join_through_appointment(self, patient_id: UUID, clinician_id: UUID, *_: Any) -> None:
        self.joined.append((patient_id, clinician_id))


@dataclass
class Consents:
    given: set[tuple[UUID, ConsentType]] = field(default_factory=set)

    def holds(self, patient_id: UUID, consent_type: ConsentType) -> bool:
        return (patient_id, consent_type) in self.given

    def current_text(self, consent_type: ConsentType) -> Any:
        return SimpleNamespace(current_version="2026-11")


# ---- what was appended ----------------------------------------------------------------------------

class EventLog:
    """Follows one application's notification log: what each command appended, and whether the
    log and the aggregates' streams still hold exactly that, with no gaps."""

    def __init__(self, app: Application[Any]) -> None:
        self.app = app
        self.seen = 0
        self.versions: dict[UUID, int] = {}
        self.names: dict[UUID, list[str]] = defaultdict(list)
        self._replays: dict[UUID, tuple[int, Any]] = {}

    def appended(self) -> dict[UUID, list[str]]:
        """Event names appended since the last call, by aggregate. Notification ids follow on
        from the last seen one, and each aggregate's versions from its last version."""
        new = list(self.app.recorder.select_notifications(start=self.seen + 1, limit=10_000))
        assert [n.id for n in new] == list(range(self.seen + 1, self.seen + 1 + len(new))), \
            "the notification log has a gap or is out of order"
        assert (self.app.recorder.max_notification_id() or 0) == self.seen + len(new)
        by_aggregate: dict[UUID, list[str]] = defaultdict(list)
        for notification in new:
            event = self.app.mapper.to_domain_event(notification)
            aggregate_id = cast(UUID, notification.originator_id)
            assert notification.originator_version == self.versions.get(aggregate_id, 0) + 1, \
                f"{aggregate_id}: version {notification.originator_version} does not follow on"
            self.versions[aggregate_id] = notification.originator_version
            name = type(event).__name__
            self.names[aggregate_id].append(name)
            by_aggregate[aggregate_id].append(name)
        self.seen += len(new)
        return dict(by_aggregate)

    def replayed(self, aggregate_id: UUID) -> Any:
        """The aggregate rebuilt from its stored events alone (not the application's cache, no
        snapshot); its version is the number of its events, and they are the ones the log
        announced. An aggregate is rebuilt again whenever the log shows it changed."""
        version = self.versions.get(aggregate_id, 0)
        known = self._replays.get(aggregate_id)
        if known is not None and known[0] == version:
            return known[1]
        state: Any = None
        names = []
        stream: Iterable[Any] = self.app.repository.event_store.get(aggregate_id)
        for stored in stream:
            state = stored.mutate(state)
            names.append(type(stored).__name__)
        assert names == self.names.get(aggregate_id, []), f"{aggregate_id}: stream != log"
        assert (state.version if state else 0) == version
        self._replays[aggregate_id] = (version, state)
        return state

    def check_totals(self) -> None:
        """Nothing was appended outside a command, and the log holds as many events as the
        streams (each stream's length is checked when it is rebuilt)."""
        assert self.appended() == {}, "events were appended outside any command"
        assert self.seen == sum(self.versions.values())


Appended = Mapping[EventLog, Mapping[UUID, Sequence[str]]]


def attempt(command: Callable[[], T], refusal: type[CareBridgeError] | None, logs: Iterable[EventLog],
            appended: Appended | Callable[[T], Appended] | None = None,
            may_touch: Mapping[EventLog, Iterable[UUID]] | None = None) -> T | None:
    """Runs a command the model has judged. An illegal one must be refused with the domain's
    error; a legal one must succeed. Either way each log must hold exactly what the model
    says was appended (`appended`: the events of the aggregates it predicts, or a function of
    the command's result that gives them; `may_touch`: aggregates that may change too, such as
    day ledgers), and nothing else."""
    result: T | None = None
    try:
        result = command()
    except CareBridgeError as error:
        assert refusal is not None, f"a legal command was refused: {error.code}: {error.detail}"
        assert error.code == refusal.code, \
            f"refused with {error.code} ({error.detail}), expected {refusal.code}"
    else:
        assert refusal is None, f"an illegal command was accepted; expected {refusal.code}"
    if callable(appended):
        appended = appended(result) if result is not None else {}
    appended = appended or {}
    may_touch = may_touch or {}
    for log in logs:
        got = log.appended()
        want = appended.get(log, {})
        for aggregate_id, names in want.items():
            assert got.get(aggregate_id, []) == list(names), \
                f"{aggregate_id}: appended {got.get(aggregate_id, [])}, expected {list(names)}"
        unexpected = set(got) - set(want) - set(may_touch.get(log, ()))
        assert not unexpected, f"events appended to {unexpected}: {[got[u] for u in unexpected]}"
    return result


@dataclass
class StepCounter:
    """Counts the steps the machines ran (invariants run once at the start and after every
    step), so that a test can tell that thousands of steps were taken."""

    machines: int = 0
    checks: int = 0

    @property
    def steps(self) -> int:
        return self.checks - self.machines
