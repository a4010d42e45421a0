"""Consent texts: each publication is a new immutable version; a repeated publication is a no-op."""

from __future__ import annotations

import pytest

from domain.consents import ConsentText, ConsentTextVersionExists, ConsentType, text_hash
from domain.errors import InvalidInput

from .support import (
    ADMIN_REF,
    DECEMBER,
    DECEMBER_TEXT,
    MORNING,
    NOON,
    NOVEMBER,
    NOVEMBER_TEXT,
    new_events,
    published_text,
)


def test_a_new_consent_text_has_no_current_version_until_published():
    document = ConsentText(consent_type=ConsentType.TELEMEDICINE.value, by=ADMIN_REF, at=MORNING)

    assert document.current_version is None
    assert document.versions == {}
    assert document.id == ConsentText.create_id(consent_type="telemedicine")


def test_an_administrator_publishes_the_first_version():
    document = published_text()

    assert document.publish(NOVEMBER, NOVEMBER_TEXT, by=ADMIN_REF, at=NOON)

    assert new_events(document) == ["VersionPublished"]
    assert document.current_version == NOVEMBER
    assert document.versions == {NOVEMBER: text_hash(NOVEMBER_TEXT)}
    assert document.texts[NOVEMBER] == NOVEMBER_TEXT


def test_a_later_version_becomes_current_and_earlier_versions_stay():
    document = published_text((NOVEMBER, NOVEMBER_TEXT))

    document.publish(DECEMBER, DECEMBER_TEXT, by=ADMIN_REF, at=NOON)

    assert document.current_version == DECEMBER
    assert document.versions == {NOVEMBER: text_hash(NOVEMBER_TEXT),
                                 DECEMBER: text_hash(DECEMBER_TEXT)}


def test_publishing_the_same_version_with_the_same_text_records_nothing():
    document = published_text((NOVEMBER, NOVEMBER_TEXT))

    changed = document.publish(NOVEMBER, NOVEMBER_TEXT, by=ADMIN_REF, at=NOON)

    assert changed is False
    assert new_events(document) == []


def test_republishing_an_old_version_unchanged_does_not_make_it_current_again():
    document = published_text((NOVEMBER, NOVEMBER_TEXT), (DECEMBER, DECEMBER_TEXT))

    document.publish(NOVEMBER, NOVEMBER_TEXT, by=ADMIN_REF, at=NOON)

    assert document.current_version == DECEMBER
    assert new_events(document) == []


def test_publishing_a_version_again_with_different_wording_is_refused():
    document = published_text((NOVEMBER, NOVEMBER_TEXT))

    with pytest.raises(ConsentTextVersionExists) as refusal:
        document.publish(NOVEMBER, DECEMBER_TEXT, by=ADMIN_REF, at=NOON)

    assert "new version name" in refusal.value.detail
    assert new_events(document) == []
    assert document.versions == {NOVEMBER: text_hash(NOVEMBER_TEXT)}


def test_every_problem_with_a_publication_is_reported_at_once():
    document = published_text()

    with pytest.raises(InvalidInput) as refusal:
        document.publish("   ", "too short", by=ADMIN_REF, at=NOON)

    assert [e.field for e in refusal.value.errors] == ["version", "text"]
    assert "version:" in refusal.value.detail
    assert "text:" in refusal.value.detail
    assert new_events(document) == []


@pytest.mark.parametrize(("version", "text", "field"), [
    ("", NOVEMBER_TEXT, "version"),
    (NOVEMBER, " " * 40 + "short", "text"),
])
def test_a_publication_with_one_problem_names_only_that_field(version, text, field):
    document = published_text()

    with pytest.raises(InvalidInput) as refusal:
        document.publish(version, text, by=ADMIN_REF, at=NOON)

    assert [e.field for e in refusal.value.errors] == [field]


def test_the_published_event_keeps_the_hash_of_exactly_the_published_wording():
    document = published_text()

    document.publish(NOVEMBER, NOVEMBER_TEXT, by=ADMIN_REF, at=NOON)

    published = document.pending_events[0]
    assert (published.version, published.text_sha256) == (NOVEMBER, text_hash(NOVEMBER_TEXT))
    assert published.consent_type == "telemedicine"
