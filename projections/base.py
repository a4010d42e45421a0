"""The one projection base. A projection owns a few tables and fills them from events.

A projection declares which applications' logs it follows and which event topics it needs
(`sources`), its tables' DDL, and `apply`, which receives a whole batch of events and writes
them with as few statements as it can. The runner calls `apply` inside the transaction that
also advances the projection's tracking position, so every event is applied exactly once.

Tables are named through `Tables`, so the same code fills the live tables and, during a
rebuild, fresh `__rebuild` tables that are swapped in at the end.
"""

from __future__ import annotations

import string
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from psycopg import Cursor, sql

REBUILD_SUFFIX = "__rebuild"


@dataclass(frozen=True)
class Tables:
    schema: str
    suffix: str = ""
    # Tables kept outside the projection's schema (a table no reader of that schema may see).
    elsewhere: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, projection: Projection, suffix: str = "") -> Tables:
        return cls(projection.schema, suffix, tuple(projection.table_schemas.items()))

    def name(self, table: str) -> str:
        return f"{table}{self.suffix}"

    def schema_of(self, table: str) -> str:
        return dict(self.elsewhere).get(table, self.schema)

    def __call__(self, table: str) -> sql.Composable:
        return sql.Identifier(self.schema_of(table), self.name(table))

    def format(self, statement: str) -> sql.Composed:
        """`statement` with `{table}` placeholders replaced by physical table names, and
        `{ix_name}` placeholders by index names (unqualified, as PostgreSQL wants them)."""
        names = {f for _, f, _, _ in string.Formatter().parse(statement) if f}
        return sql.SQL(statement).format(**{
            n: sql.Identifier(self.name(n)) if n.startswith("ix_") else self(n) for n in names
        })


@dataclass(frozen=True)
class Envelope:
    """An event with where it sits in its application's log."""

    application: str
    position: int
    event: Any

    @property
    def topic(self) -> str:
        return type(self.event).TOPIC


class Projection(ABC):
    """Base of every projection. Subclasses are small: sources, DDL and a batch `apply`."""

    name: ClassVar[str]
    schema: ClassVar[str] = "views"
    sources: ClassVar[dict[str, tuple[str, ...]]]  # application name -> event topics
    tables: ClassVar[tuple[str, ...]]
    table_schemas: ClassVar[dict[str, str]] = {}  # table -> schema, when not `schema`
    # How long the runner lets further commits gather after a notification before it reads:
    # zero for views people wait for; a moment for work nobody waits on (analytics, sealing),
    # which then runs once for many commits instead of once for each.
    settle_seconds: ClassVar[float] = 0.0

    @abstractmethod
    def ddl(self) -> Sequence[str]:
        """CREATE TABLE / CREATE INDEX statements with `{table}` placeholders."""

    @abstractmethod
    def apply(self, cur: Cursor[Any], t: Tables, batch: Sequence[Envelope]) -> None:
        """Writes a batch of events (in log order) to the tables named by `t`."""

    def create(self, cur: Cursor[Any], t: Tables) -> None:
        for statement in self.ddl():
            cur.execute(t.format(statement))

    def drop(self, cur: Cursor[Any], t: Tables) -> None:
        for table in self.tables:
            cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(t(table)))
