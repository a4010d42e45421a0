"""Intake forms in memory: publishing Questionnaire versions, what a visit asks for, drafts and
submissions checked against the version they started on, every error at once."""

from __future__ import annotations

import copy
from typing import Any
from uuid import UUID

import pytest

from api.default_forms import PRE_CONSULTATION_FORM
from domain.errors import InvalidInput
from domain.forms import (
    FormClosed,
    FormDefinition,
    FormResponse,
    VisitRequirements,
    check_submission,
    parse_questionnaire,
    progress,
)
from tests.domain.support import ADA, ADA_REF, ADMIN_REF, MORNING, NOON, new_events

APPOINTMENT = UUID("00000000-0000-4000-8000-0000000a0001")
SECRET = "my private words"  # an answer that must never appear in an error


def answer(link_id: str, *values: dict[str, Any]) -> dict[str, Any]:
    return {"linkId": link_id, "answer": list(values)}


def group(link_id: str, *items: dict[str, Any]) -> dict[str, Any]:
    return {"linkId": link_id, "item": list(items)}


def yes(flag: bool = True) -> dict[str, Any]:
    return {"valueBoolean": flag}


def words(text: str) -> dict[str, Any]:
    return {"valueString": text}


def complete_answers() -> list[dict[str, Any]]:
    return [
        group("reason", answer("reason.text", words("Headaches in the morning"))),
        group("symptoms", answer("symptoms.any", yes()),
              answer("symptoms.list", words("headache"), words("tired")),
              answer("symptoms.since", {"valueDate": "2026-10"}),
              answer("symptoms.severity", {"valueCoding": {"code": "moderate"}})),
        group("allergies", answer("allergies.any", yes(False))),
        group("medications", answer("medications.any", yes()),
              group("medications.medication", answer("medications.medication.name",
                                                     words("Paracetamol"))),
              group("medications.medication", answer("medications.medication.name",
                                                     words("Ibuprofen")),
                    answer("medications.medication.dose", words("200 mg when needed")))),
        group("family", answer("family.conditions", {"valueCoding": {
            "system": "urn:carebridge:codes", "code": "diabetes"}}, words("Gout"))),
    ]


def published(resource: dict[str, Any] | None = None) -> FormDefinition:
    form = FormDefinition(form_id="pre-consultation", by=ADMIN_REF, at=MORNING)
    form.publish(resource or PRE_CONSULTATION_FORM, by=ADMIN_REF, at=MORNING)
    form.collect_events()
    return form


def started(form: FormDefinition | None = None) -> FormResponse:
    form = form or published()
    response = FormResponse(patient_id=ADA, appointment_id=APPOINTMENT,
                            form_id="pre-consultation", form_version=form.current_version or 0,
                            by=ADA_REF, at=MORNING)
    response.collect_events()
    return response


def fields(error: InvalidInput) -> set[str]:
    return {e.field for e in error.errors}


# ---- definitions ------------------------------------------------------------------------------

def test_the_default_form_is_a_supported_questionnaire():
    questionnaire = parse_questionnaire(PRE_CONSULTATION_FORM)
    assert questionnaire.title == "Before your consultation"
    assert {i.link_id for i in questionnaire.items} == {
        "reason", "symptoms", "history", "allergies", "medications", "family", "closing"}


def test_a_questionnaire_is_refused_with_every_problem_at_once():
    with pytest.raises(InvalidInput) as refused:
        parse_questionnaire({"resourceType": "Questionnaire", "title": "", "item": [
            {"linkId": "a", "type": "attachment", "text": "Upload"},
            {"linkId": "b", "type": "choice", "text": "Pick"},
            {"linkId": "c", "type": "boolean", "text": "Shown?", "enableWhen": [
                {"question": "nowhere", "operator": "=", "answerBoolean": True}]},
            {"linkId": "b", "type": "string", "text": "Again (after a refused item)"},
            {"linkId": "d", "type": "string", "text": "Long", "maxLength": 0,
             "initial": [{"valueString": "x"}]},
            {"linkId": "e", "type": "integer", "text": "When", "enableWhen": [
                {"question": "c", "operator": ">", "answerBoolean": True}]}]})
    assert fields(refused.value) == {
        "title", "item[0].type", "item[1].answerOption", "item[2].enableWhen[0]",
        "item[3].linkId", "item[4].maxLength", "item[4].initial",
        "item[5].enableWhen[0].operator"}


def test_publishing_the_same_content_again_records_nothing_and_a_change_is_a_new_version():
    form = published()
    assert form.publish(copy.deepcopy(PRE_CONSULTATION_FORM), by=ADMIN_REF, at=NOON) is False
    changed = copy.deepcopy(PRE_CONSULTATION_FORM) | {"title": "Before your visit"}
    assert form.publish(changed, by=ADMIN_REF, at=NOON) is True
    assert new_events(form) == ["VersionPublished"]
    assert form.current_version == 2
    assert form.versions[2]["version"] == "2" and form.versions[1]["title"] == \
        "Before your consultation"


def test_a_visit_asks_only_for_known_document_types_once_each():
    requirements = VisitRequirements(consultation_type_id="gp-in-person", by=ADMIN_REF,
                                     at=MORNING)
    with pytest.raises(InvalidInput) as refused:
        requirements.set(["pre-consultation", "pre-consultation"], ["passport"], by=ADMIN_REF,
                         at=MORNING)
    assert fields(refused.value) == {"forms", "uploads[0]"}
    assert requirements.set(["pre-consultation"], ["referral_letter"], by=ADMIN_REF, at=NOON)
    assert not requirements.set(["pre-consultation"], ["referral_letter"], by=ADMIN_REF, at=NOON)


# ---- answers ----------------------------------------------------------------------------------

def test_a_draft_may_be_incomplete_and_counts_its_progress():
    form, response = published(), started()
    draft = [group("reason", answer("reason.text", words("Headaches"))),
             group("symptoms", answer("symptoms.any", yes()))]
    assert response.save_draft(form.questionnaire(), draft, by=ADA_REF, at=NOON)
    assert response.save_draft(form.questionnaire(), draft, by=ADA_REF, at=NOON) is False
    assert (response.answered, response.questions) == (2, 10)  # symptoms opened three
    assert response.status == "draft" and new_events(response) == ["DraftSaved"]


def test_a_draft_of_the_wrong_shape_is_refused():
    form, response = published(), started()
    with pytest.raises(InvalidInput) as refused:
        response.save_draft(form.questionnaire(), [{"answer": []}, answer("x", {"valueFoo": 1})],
                            by=ADA_REF, at=NOON)
    assert fields(refused.value) == {"item[0]", "item[1].answer"}


def test_submission_reports_every_problem_by_its_linkid_path_and_never_quotes_an_answer():
    form = published()
    with pytest.raises(InvalidInput) as refused:
        check_submission(form.questionnaire(), [
            group("reason", answer("reason.text", words(SECRET * 100))),
            group("symptoms", answer("symptoms.any", words("yes")),
                  answer("symptoms.since", {"valueDate": "2026-13-01"})),
            group("allergies", answer("allergies.any", yes()),
                  group("allergies.allergy", answer("allergies.allergy.reaction",
                                                    words(SECRET)))),
            group("medications", answer("medications.any", yes(), yes())),
            group("family", answer("family.conditions", {"valueCoding": {"code": "gout"}})),
            answer("unknown", words(SECRET))])
    assert fields(refused.value) == {
        "reason/reason.text", "symptoms/symptoms.any", "allergies/allergies.allergy[0]/"
        "allergies.allergy.substance", "medications/medications.any",
        "medications/medications.medication",
        "family/family.conditions[0]", "unknown"}
    assert SECRET not in str(refused.value) and "my private" not in refused.value.detail


def test_questions_that_do_not_apply_are_not_required_and_their_answers_are_dropped():
    form = published()
    answers = complete_answers()
    answers[1] = group("symptoms", answer("symptoms.any", yes(False)),
                       answer("symptoms.list", words("left over from before")))
    completed = check_submission(form.questionnaire(), answers)
    symptoms = next(i for i in completed if i["linkId"] == "symptoms")
    assert [i["linkId"] for i in symptoms["item"]] == ["symptoms.any"]
    with pytest.raises(InvalidInput) as refused:
        check_submission(form.questionnaire(), [*answers[:1], group(
            "symptoms", answer("symptoms.any", yes())), *answers[2:]])
    assert fields(refused.value) == {"symptoms/symptoms.list"}


def test_a_submitted_response_keeps_question_words_and_full_codings():
    form = published()
    completed = check_submission(form.questionnaire(), complete_answers())
    symptoms = next(i for i in completed if i["linkId"] == "symptoms")
    severity = next(i for i in symptoms["item"] if i["linkId"] == "symptoms.severity")
    assert severity["text"] == "How much do they trouble you?"
    assert severity["answer"] == [{"valueCoding": {
        "code": "moderate", "system": "urn:carebridge:codes", "display": "Moderate"}}]
    family = next(i for i in completed if i["linkId"] == "family")["item"][0]
    assert family["answer"][1] == {"valueString": "Gout"}  # open-choice: own words allowed
    assert progress(form.questionnaire(), completed) == (10, 12)  # no history given


def test_submission_is_final_and_the_same_submission_again_records_nothing():
    form, response = published(), started()
    assert response.submit(form.questionnaire(), complete_answers(), by=ADA_REF, at=NOON)
    assert response.submit(form.questionnaire(), complete_answers(), by=ADA_REF, at=NOON) is False
    with pytest.raises(FormClosed):
        response.save_draft(form.questionnaire(), [], by=ADA_REF, at=NOON)
    changed = complete_answers()[:-1]
    with pytest.raises(FormClosed):
        response.submit(form.questionnaire(), changed, by=ADA_REF, at=NOON)
    assert new_events(response) == ["Submitted"]


def test_a_response_is_checked_against_the_version_it_started_on():
    form = published()
    response = started(form)
    stricter = copy.deepcopy(PRE_CONSULTATION_FORM)
    stricter["item"][2]["item"][1]["required"] = True  # operations now required
    form.publish(stricter, by=ADMIN_REF, at=NOON)
    assert response.form_version == 1 and form.current_version == 2
    assert response.submit(form.questionnaire(response.form_version), complete_answers(),
                           by=ADA_REF, at=NOON)
    with pytest.raises(InvalidInput) as refused:
        check_submission(form.questionnaire(2), complete_answers())
    assert fields(refused.value) == {"history/history.operations"}
