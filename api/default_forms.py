"""The intake form every deployment starts with, published at start-up when it has no version.

One "pre-consultation" form (FHIR R4 Questionnaire) in six sections: the reason for the visit,
symptoms, medical history, allergies, current medicines and family history. One form rather
than six, because a patient fills in what the visit needs in one sitting, and a clinician reads
it as one page. Clinic administrators publish new versions (or other forms) with
`PUT /v1/admin/forms/{form_id}`; a consultation type asks for forms with
`PUT /v1/admin/consultation-types/{type_id}/requirements`.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from typing import Any

from api.container import Container
from domain.access import SYSTEM
from domain.errors import ConcurrentChange

PRE_CONSULTATION = "pre-consultation"
CODES = "urn:carebridge:codes"


def _coding(code: str, display: str) -> dict[str, Any]:
    return {"valueCoding": {"system": CODES, "code": code, "display": display}}


def _when_yes(question: str) -> dict[str, Any]:
    return {"enableWhen": [{"question": question, "operator": "=", "answerBoolean": True}]}


SEVERITY = [_coding("mild", "Mild"), _coding("moderate", "Moderate"),
                _coding("severe", "Severe")]

PRE_CONSULTATION_FORM: dict[str, Any] = {
    "resourceType": "Questionnaire",
    "status": "active",
    "title": "Before your consultation",
    "item": [
        {"linkId": "reason", "type": "group", "text": "Why you are coming", "item": [
            {"linkId": "reason.text", "type": "text", "required": True, "maxLength": 1000,
             "text": "What would you like to talk about in this consultation?"},
        ]},
        {"linkId": "symptoms", "type": "group", "text": "Your symptoms", "item": [
            {"linkId": "symptoms.any", "type": "boolean", "required": True,
             "text": "Do you have symptoms you would like the clinician to know about?"},
            {"linkId": "symptoms.list", "type": "string", "repeats": True, "required": True,
             "maxLength": 200, "text": "Describe each symptom in a few words",
             **_when_yes("symptoms.any")},
            {"linkId": "symptoms.since", "type": "date",
             "text": "Since when have you had them? (a date, or a month)",
             **_when_yes("symptoms.any")},
            {"linkId": "symptoms.severity", "type": "choice", "answerOption": SEVERITY,
             "text": "How much do they trouble you?", **_when_yes("symptoms.any")},
        ]},
        {"linkId": "history", "type": "group", "text": "Your medical history", "item": [
            {"linkId": "history.conditions", "type": "open-choice", "repeats": True,
             "maxLength": 200,
             "text": "Have you been told you have any of these? Add others in your own words.",
             "answerOption": [_coding("diabetes", "Diabetes"), _coding("asthma", "Asthma"),
                              _coding("hypertension", "High blood pressure"),
                              _coding("heart-disease", "Heart disease"),
                              _coding("none", "None of these")]},
            {"linkId": "history.operations", "type": "text", "maxLength": 2000,
             "text": "Operations or hospital stays, with the year if you remember it"},
        ]},
        {"linkId": "allergies", "type": "group", "text": "Allergies", "item": [
            {"linkId": "allergies.any", "type": "boolean", "required": True,
             "text": "Do you have any allergies?"},
            {"linkId": "allergies.allergy", "type": "group", "repeats": True, "required": True,
             "text": "Each allergy", **_when_yes("allergies.any"), "item": [
                 {"linkId": "allergies.allergy.substance", "type": "string", "required": True,
                  "text": "What are you allergic to?"},
                 {"linkId": "allergies.allergy.reaction", "type": "open-choice",
                  "text": "What happens?",
                  "answerOption": [_coding("rash", "Rash"), _coding("swelling", "Swelling"),
                                   _coding("breathing", "Difficulty breathing"),
                                   _coding("anaphylaxis", "Anaphylaxis")]},
             ]},
        ]},
        {"linkId": "medications", "type": "group", "text": "Medicines you take now", "item": [
            {"linkId": "medications.any", "type": "boolean", "required": True,
             "text": "Do you take any medicines, including ones you buy yourself?"},
            {"linkId": "medications.medication", "type": "group", "repeats": True,
             "required": True, "text": "Each medicine", **_when_yes("medications.any"),
             "item": [
                 {"linkId": "medications.medication.name", "type": "string", "required": True,
                  "text": "Name of the medicine"},
                 {"linkId": "medications.medication.dose", "type": "string",
                  "text": "How much and how often"},
             ]},
        ]},
        {"linkId": "family", "type": "group", "text": "Your family's health", "item": [
            {"linkId": "family.conditions", "type": "open-choice", "repeats": True,
             "maxLength": 200,
             "text": "Have close relatives (parents, brothers, sisters) had any of these?",
             "answerOption": [_coding("heart-disease", "Heart disease"),
                              _coding("diabetes", "Diabetes"), _coding("cancer", "Cancer"),
                              _coding("stroke", "Stroke"), _coding("none", "None of these")]},
        ]},
        {"linkId": "closing", "type": "display",
         "text": "Thank you. Your clinician will read this before your consultation."},
    ],
}

DEFAULT_FORMS = {PRE_CONSULTATION: PRE_CONSULTATION_FORM}


def publish_default_forms(container: Container) -> None:
    """Publishes the default forms that have no version yet; later versions stay."""
    now = datetime.now(UTC)
    for form_id, resource in DEFAULT_FORMS.items():
        if container.forms.published(form_id):
            continue
        # Several API processes may start at once; the first one publishes.
        with contextlib.suppress(ConcurrentChange):
            container.forms.publish(SYSTEM, form_id, resource, at=now)
