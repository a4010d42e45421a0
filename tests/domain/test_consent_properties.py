"""Properties of consent decisions: a repeated command records nothing, and events rebuild state."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from hypothesis import given, settings
from hypothesis import strategies as st

from domain.consents import Consent, ConsentType, text_hash
from domain.errors import Conflict

from .support import ADA_REF, DECEMBER, MORNING, NOVEMBER, replay

VERSIONS = (NOVEMBER, DECEMBER)


@dataclass(frozen=True)
class Give:
    shown_version: str
    current_version: str

    def apply(self, consent: Consent, at: datetime) -> None:
        consent.give(self.shown_version, text_hash(f"wording of {self.shown_version}"),
                     current_version=self.current_version, by=ADA_REF, at=at)


@dataclass(frozen=True)
class Withdraw:
    reason: str | None

    def apply(self, consent: Consent, at: datetime) -> None:
        consent.withdraw(self.reason, by=ADA_REF, at=at)


Command = Give | Withdraw

commands = st.lists(st.one_of(
    st.builds(Give, st.sampled_from(VERSIONS), st.sampled_from(VERSIONS)),
    st.builds(Withdraw, st.none() | st.text(max_size=30)),
), max_size=12)


def attempt(command: Command, consent: Consent, at: datetime) -> bool:
    """Runs the command; returns whether it was refused. A refusal must record nothing."""
    recorded = len(consent.pending_events)
    try:
        command.apply(consent, at)
    except Conflict:
        assert len(consent.pending_events) == recorded
        return True
    return False


def expected_status(history: list[Command]) -> str:
    """The simplest model of a consent: the last accepted give or withdraw decides."""
    status = "never_given"
    for command in history:
        if isinstance(command, Give) and command.shown_version == command.current_version:
            status = "given"
        elif isinstance(command, Withdraw) and status != "never_given":
            status = "withdrawn"
    return status


@settings(database=None, deadline=None)
@given(history=commands, patient=st.uuids())
def test_a_repeated_command_records_nothing_and_the_events_rebuild_the_consent(
        history: list[Command], patient: UUID) -> None:
    consent = Consent(patient_id=patient, consent_type=ConsentType.TELEMEDICINE.value,
                      by=ADA_REF, at=MORNING)
    for minute, command in enumerate(history, start=1):
        first_refused = attempt(command, consent, MORNING + timedelta(minutes=2 * minute))
        recorded = len(consent.pending_events)

        second_refused = attempt(command, consent, MORNING + timedelta(minutes=2 * minute + 1))

        assert len(consent.pending_events) == recorded
        assert second_refused == first_refused
    assert consent.status == expected_status(history)

    events = consent.collect_events()
    rebuilt = replay(events)

    assert rebuilt == consent
    assert [e.originator_version for e in events] == list(range(1, len(events) + 1))
