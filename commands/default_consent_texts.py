"""The consent texts a new deployment starts with; administrators publish newer versions."""

from __future__ import annotations

from domain.consents import ConsentType

DEFAULT_VERSION = "2026-11"

DEFAULT_TEXTS = {
    ConsentType.TELEMEDICINE: (
        "I agree to have consultations by video. I understand that the clinician may ask me to "
        "come to the clinic in person if a video consultation is not suitable, that the call "
        "is not recorded, and that I can withdraw this consent at any time in the app."
    ),
    ConsentType.DATA_SHARING: (
        "I agree that the clinicians caring for me in this clinic network may share my health "
        "information with each other for my care. I can withdraw this consent at any time; "
        "doing so does not affect care I have already received."
    ),
    ConsentType.PRESCRIPTION_REQUESTS: (
        "I agree that my repeat prescription requests are reviewed by the clinic's prescription "
        "team and prescribers, and that approved prescriptions are sent to the pharmacy I "
        "choose. I can withdraw this consent at any time."
    ),
    ConsentType.DOCUMENT_REVIEW: (
        "I agree that the documents I upload are reviewed by clinic staff and kept with my "
        "record. I can withdraw this consent at any time; documents already reviewed stay in "
        "my record as the law requires."
    ),
}
