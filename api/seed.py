"""Start-up seeding that every deployment needs: the default consent texts."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime

from api.container import Container
from commands.default_consent_texts import DEFAULT_TEXTS, DEFAULT_VERSION
from domain.access import SYSTEM
from domain.consents import ConsentType
from domain.errors import ConcurrentChange


def publish_default_consent_texts(container: Container) -> None:
    """Publishes the default texts for types that have none yet; later versions stay."""
    now = datetime.now(UTC)
    for consent_type in ConsentType:
        document = container.consents.text_document(consent_type)
        if document is None or document.current_version is None:
            # Several API processes may start at once; the first one publishes.
            with contextlib.suppress(ConcurrentChange):
                container.consents.publish_text(SYSTEM, consent_type, DEFAULT_VERSION,
                                                DEFAULT_TEXTS[consent_type], at=now)
