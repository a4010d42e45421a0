"""Reading clinic exports of repeat medications: CSV and FHIR R4 Bundles, every error at once."""

from __future__ import annotations

import csv
import io
import json
from datetime import date
from typing import Any
from uuid import UUID, uuid4

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from commands.medication_import import COLUMNS, REPEAT_INFORMATION, parse_csv, parse_fhir_bundle
from domain.errors import InvalidInput
from domain.prescriptions import Medication

ADA = UUID("00000000-0000-4000-8000-00000000ada1")
GRACE = UUID("00000000-0000-4000-8000-000000006ace")
HEADER = ",".join(COLUMNS)
SERTRALINE = Medication("emis-101", "Sertraline 50mg tablets", "one daily", "28 tablets", 5,
                        date(2027, 1, 31), needs_review=True, controlled=False,
                        min_days_between_issues=21, last_issued_on=date(2026, 11, 2))


def errors_of(parse: Any, data: Any) -> dict[str, str]:
    with pytest.raises(InvalidInput) as refused:
        parse(data)
    fields = [e.field for e in refused.value.errors]
    assert len(fields) == len(set(fields)), "each field is reported once"
    return {e.field: e.message for e in refused.value.errors}


# ---- CSV ------------------------------------------------------------------------------------


def csv_line(patient: UUID | str, m: Medication, **cells: str) -> str:
    values = {"patient_id": str(patient), "medication_id": m.medication_id, "name": m.name,
              "dose": m.dose, "quantity": m.quantity, "issues_remaining": str(m.issues_remaining),
              "review_date": str(m.review_date or ""), "needs_review": "yes" if m.needs_review
              else "no", "controlled": "yes" if m.controlled else "no",
              "min_days_between_issues": str(m.min_days_between_issues or ""),
              "last_issued_on": str(m.last_issued_on or "")}
    values.update(cells)
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow([values[c] for c in COLUMNS])
    return out.getvalue().removesuffix("\n")


def export(*lines: str) -> str:
    return "\n".join([HEADER, *lines]) + "\n"


def test_a_clinic_export_reads_into_one_record_per_line():
    warfarin = Medication("emis-102", "Warfarin 1mg", "as directed by the clinic", "56 tablets",
                          0, None, needs_review=False, controlled=False)

    records = parse_csv(export(csv_line(ADA, SERTRALINE), csv_line(GRACE, warfarin)))

    assert records == [(ADA, SERTRALINE), (GRACE, warfarin)]


def test_empty_optional_cells_mean_none():
    line = csv_line(ADA, SERTRALINE, review_date="", min_days_between_issues="",
                    last_issued_on="")

    [(_, medication)] = parse_csv(export(line))

    assert (medication.review_date, medication.min_days_between_issues,
            medication.last_issued_on) == (None, None, None)


@pytest.mark.parametrize(("word", "value"), [
    ("yes", True), ("YES", True), ("true", True), ("True", True), ("1", True),
    ("no", False), ("No", False), ("false", False), ("FALSE", False), ("0", False)])
def test_yes_and_no_may_be_written_several_ways(word, value):
    [(_, medication)] = parse_csv(export(csv_line(ADA, SERTRALINE, controlled=word)))

    assert medication.controlled is value


def test_columns_may_come_in_any_order_with_spaces_a_byte_order_mark_and_windows_line_ends():
    columns = list(reversed(COLUMNS))
    normal = next(csv.reader([csv_line(ADA, SERTRALINE)]))
    by_column = dict(zip(COLUMNS, normal, strict=True))
    text = "\ufeff" + ", ".join(c.upper() for c in columns) + "\r\n" + \
        ",".join(f" {by_column[c]} " for c in columns) + "\r\n"

    assert parse_csv(text) == [(ADA, SERTRALINE)]


def test_quoted_commas_and_line_breaks_stay_in_their_cell_and_blank_lines_are_ignored():
    two_lines = Medication(**{**SERTRALINE.as_dict(), "name": "Co-codamol 8mg/500mg, soluble",
                              "dose": "two tablets\nup to four times a day"})

    records = parse_csv(export("", csv_line(ADA, two_lines), "   ", ""))

    assert records == [(ADA, two_lines)]


def test_a_header_alone_is_an_empty_export():
    assert parse_csv(HEADER + "\n") == []


def test_every_bad_field_of_every_line_is_reported_at_once():
    text = export(
        csv_line(ADA, SERTRALINE),
        csv_line("ada", SERTRALINE, issues_remaining="five", review_date="31/01/2027"),
        csv_line(GRACE, SERTRALINE, needs_review="maybe", controlled="", name="",
                 min_days_between_issues="0", last_issued_on="2026-02-30"),
    )

    errors = errors_of(parse_csv, text)

    assert set(errors) == {"line 3.patient_id", "line 3.issues_remaining", "line 3.review_date",
                           "line 4.needs_review", "line 4.controlled", "line 4.name",
                           "line 4.min_days_between_issues", "line 4.last_issued_on"}
    assert errors["line 3.review_date"] == "Enter a date as YYYY-MM-DD, for example 2026-03-31."
    assert errors["line 4.last_issued_on"].startswith("There is no such date.")
    assert errors["line 4.controlled"] == "Enter yes or no."
    assert errors["line 3.patient_id"].startswith("Give the patient's CareBridge id")


def test_the_domain_limits_are_checked_with_the_line_named():
    line = csv_line(ADA, SERTRALINE, medication_id="x" * 81, dose="d" * 201,
                    issues_remaining="101", min_days_between_issues="366")

    errors = errors_of(parse_csv, export(line))

    assert set(errors) == {"line 2.medication_id", "line 2.dose", "line 2.issues_remaining",
                           "line 2.min_days_between_issues"}
    assert errors["line 2.issues_remaining"] == "Enter 0 to 100 issues."


def test_line_numbers_count_the_lines_of_the_file_including_line_breaks_inside_cells():
    two_lines = Medication(**{**SERTRALINE.as_dict(), "dose": "one\ndaily"})
    text = export(csv_line(ADA, two_lines), "", csv_line(GRACE, SERTRALINE, quantity=""))

    assert set(errors_of(parse_csv, text)) == {"line 5.quantity"}


def test_a_medicine_listed_twice_for_a_patient_names_the_first_line():
    text = export(csv_line(ADA, SERTRALINE), csv_line(GRACE, SERTRALINE),
                  csv_line(ADA, SERTRALINE, dose="two daily"))

    assert errors_of(parse_csv, text) == {
        "line 4.medication_id": "This medicine is listed twice for this patient (also at line 2)."}


def test_a_line_with_too_few_or_too_many_values_is_named():
    short = "3f2a6c1e-8b4d-4e0f-9a7b-2c5d8e1f0a3b,m1,Sertraline 50mg, soluble,one daily"
    long = csv_line(ADA, SERTRALINE) + ",extra"

    errors = errors_of(parse_csv, export(short, long))

    assert set(errors) == {"line 2", "line 3"}
    assert errors["line 2"].startswith("This line has 5 values but the header names 11 columns.")


@pytest.mark.parametrize(("header", "words"), [
    (HEADER.replace(",controlled", ""), "these columns are missing: controlled"),
    (HEADER + ",notes", "these columns are not known: notes"),
    (HEADER + ",", "these columns are not known: (a column without a name)"),
    (HEADER.replace("review_date", "review"), "missing: review_date; these columns are not "
                                              "known: review"),
    (HEADER + ",dose", "a column is named twice"),
])
def test_a_wrong_header_is_reported_with_what_is_missing_or_unknown(header, words):
    errors = errors_of(parse_csv, header + "\n" + csv_line(ADA, SERTRALINE) + "\n")

    assert list(errors) == ["line 1"]
    assert words in errors["line 1"]
    assert errors["line 1"].startswith(f"The first line must name the columns: {HEADER.replace(',', ', ')}")


@pytest.mark.parametrize("text", ["", "\n", "\ufeff", " , ,\n"])
def test_an_empty_file_is_refused(text):
    assert list(errors_of(parse_csv, text)) == ["line 1"]


def test_a_line_that_csv_cannot_read_is_named():
    text = export(csv_line(ADA, SERTRALINE), csv_line(GRACE, SERTRALINE, name="n" * 200_000))

    errors = errors_of(parse_csv, text)

    assert list(errors) == ["line 3"]
    assert errors["line 3"].startswith("This line cannot be read")


# ---- CSV properties -------------------------------------------------------------------------

words = st.text(st.characters(whitelist_categories=("L", "N", "P", "S", "Zs")), min_size=1,
                max_size=60).map(str.strip).filter(bool)
medications = st.builds(
    Medication, medication_id=words.map(lambda w: w[:80]), name=words, dose=words,
    quantity=words, issues_remaining=st.integers(0, 100),
    review_date=st.none() | st.dates(date(2000, 1, 1), date(2100, 12, 31)),
    needs_review=st.booleans(), controlled=st.booleans(),
    min_days_between_issues=st.none() | st.integers(1, 365),
    last_issued_on=st.none() | st.dates(date(2000, 1, 1), date(2100, 12, 31)))
patients = st.sampled_from([ADA, GRACE, UUID("00000000-0000-4000-8000-00000000b0b1")])
records = st.lists(st.tuples(patients, medications), max_size=8,
                   unique_by=lambda r: (r[0], r[1].medication_id))


@settings(max_examples=150)
@given(records)
def test_any_valid_export_reads_back_exactly(written):
    assert parse_csv(export(*(csv_line(p, m) for p, m in written))) == written


# A value that is wrong for each column, and wrong in one way only.
BAD_CELL = {"patient_id": "Ada Lovelace", "medication_id": " ", "name": "", "dose": "x" * 201,
            "quantity": "", "issues_remaining": "6 issues", "review_date": "2026-13-01",
            "needs_review": "perhaps", "controlled": "", "min_days_between_issues": "0",
            "last_issued_on": "yesterday"}


@settings(max_examples=150)
@given(records.filter(bool), st.data())
def test_every_spoilt_cell_is_reported_under_its_line_and_column(written, data):
    spoilt = data.draw(st.sets(st.tuples(st.integers(0, len(written) - 1),
                                         st.sampled_from(COLUMNS)), min_size=1))
    lines = [csv_line(p, m, **{column: BAD_CELL[column] for n, column in spoilt if n == i})
             for i, (p, m) in enumerate(written)]

    errors = errors_of(parse_csv, export(*lines))

    assert set(errors) == {f"line {n + 2}.{column}" for n, column in spoilt}


# ---- FHIR R4 --------------------------------------------------------------------------------


def medication_request(patient_id: UUID | str = ADA, m: Medication = SERTRALINE,
                       **changes: Any) -> dict[str, Any]:
    """A MedicationRequest as a clinic system exports a repeat medicine."""
    tags = [{"system": "https://clinic.example/flags", "code": code}
            for code, on in (("controlled", m.controlled), ("needs-review", m.needs_review)) if on]
    resource: dict[str, Any] = {
        "resourceType": "MedicationRequest",
        "meta": {"tag": tags},
        "extension": [{"url": REPEAT_INFORMATION, "extension": [
            {"url": "numberOfPrescriptionsIssued", "valueUnsignedInt": 3},
            *([{"url": "authorisationExpiryDate", "valueDateTime": str(m.review_date)}]
              if m.review_date else [])]}],
        "identifier": [{"system": "https://clinic.example/repeats", "value": m.medication_id}],
        "status": "active", "intent": "order",
        "courseOfTherapyType": {"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/medicationrequest-course-of-therapy",
            "code": "continuous"}]},
        "medicationCodeableConcept": {"text": m.name, "coding": [
            {"system": "http://snomed.info/sct", "code": "321949006", "display": "other name"}]},
        "subject": {"reference": f"Patient/{patient_id}"},
        "dosageInstruction": [{"text": m.dose}],
        "dispenseRequest": {
            "numberOfRepeatsAllowed": m.issues_remaining,
            "quantity": {"value": int(m.quantity.split()[0]), "unit": m.quantity.split()[1]},
            **({"dispenseInterval": {"value": m.min_days_between_issues, "unit": "days",
                                     "system": "http://unitsofmeasure.org", "code": "d"}}
               if m.min_days_between_issues else {})},
    }
    resource.update(changes)
    return resource


def bundle(*resources: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "collection",
            "entry": [{"fullUrl": f"urn:uuid:{uuid4()}", "resource": r} for r in resources]}


AS_IMPORTED = Medication(**{**SERTRALINE.as_dict(), "last_issued_on": None})


def test_a_bundle_of_repeat_orders_reads_into_records():
    assert parse_fhir_bundle(bundle(medication_request())) == [(ADA, AS_IMPORTED)]


def test_the_bundle_may_be_given_as_json_text():
    text = json.dumps(bundle(medication_request()))

    assert parse_fhir_bundle(text) == parse_fhir_bundle(text.encode()) == [(ADA, AS_IMPORTED)]


def test_other_resources_and_medicines_no_longer_current_are_passed_over():
    patient = {"resourceType": "Patient", "id": str(ADA)}
    stopped = medication_request(status="stopped", identifier=[{"value": "emis-9"}])
    entered_in_error = medication_request(status="entered-in-error", intent="plan")

    records = parse_fhir_bundle(bundle(patient, stopped, medication_request(), entered_in_error))

    assert records == [(ADA, AS_IMPORTED)]


def test_tags_mark_controlled_drugs_and_medicines_that_need_review():
    plain = Medication(**{**AS_IMPORTED.as_dict(), "needs_review": False})
    controlled = Medication(**{**AS_IMPORTED.as_dict(), "medication_id": "emis-7",
                               "controlled": True})

    records = parse_fhir_bundle(bundle(medication_request(m=plain),
                                       medication_request(GRACE, controlled)))

    assert [(m.controlled, m.needs_review) for _, m in records] == [(False, False), (True, True)]


def test_the_review_date_may_be_a_date_time_and_the_interval_may_be_in_weeks():
    resource = medication_request()
    resource["extension"][0]["extension"][1]["valueDateTime"] = "2027-01-31T00:00:00+00:00"
    resource["dispenseRequest"]["dispenseInterval"] = {"value": 3, "code": "wk"}

    [(_, medication)] = parse_fhir_bundle(bundle(resource))

    assert (medication.review_date, medication.min_days_between_issues) == (date(2027, 1, 31), 21)


def test_without_the_optional_parts_a_repeat_has_no_review_date_interval_or_flags():
    resource = medication_request()
    del resource["extension"], resource["meta"], resource["dispenseRequest"]["dispenseInterval"]

    [(_, medication)] = parse_fhir_bundle(bundle(resource))

    assert (medication.review_date, medication.min_days_between_issues, medication.controlled,
            medication.needs_review) == (None, None, False, False)


def test_the_name_may_come_from_the_coding_and_a_quantity_keeps_its_fraction():
    resource = medication_request(medicationCodeableConcept={"coding": [
        {"system": "http://snomed.info/sct", "code": "39732311000001104",
         "display": "Lactulose 3.35g/5ml oral solution"}]})
    resource["dispenseRequest"]["quantity"] = {"value": 2.5, "code": "ml"}
    original = medication_request(identifier=[{"value": "emis-3"}])
    original["courseOfTherapyType"] = {"coding": [{"code": "continuous-repeat-dispensing"}]}
    original["intent"] = "original-order"

    [(_, lactulose), (_, repeat_dispensing)] = parse_fhir_bundle(bundle(resource, original))

    assert (lactulose.name, lactulose.quantity) == ("Lactulose 3.35g/5ml oral solution", "2.5 ml")
    assert repeat_dispensing.medication_id == "emis-3"


def test_every_bad_field_of_every_entry_is_reported_at_once():
    first = medication_request(subject={"reference": "urn:uuid:1234"}, identifier=[],
                               dosageInstruction=[{"timing": {}}])
    first["dispenseRequest"] = {"numberOfRepeatsAllowed": True, "quantity": {"value": 28},
                                "dispenseInterval": {"value": 1, "code": "mo"}}
    first["extension"][0]["extension"][1]["valueDateTime"] = "2027-01"
    second = medication_request(intent="plan", status="suspended",
                                courseOfTherapyType={"coding": [{"code": "acute"}]})
    third = medication_request(GRACE, medicationReference={"reference": "Medication/1"},
                               medicationCodeableConcept=None)
    third["dispenseRequest"]["numberOfRepeatsAllowed"] = 101

    errors = errors_of(parse_fhir_bundle, bundle(first, second, third))

    assert set(errors) == {
        "entry[0].subject.reference", "entry[0].identifier[0].value",
        "entry[0].dosageInstruction[0].text", "entry[0].dispenseRequest.quantity",
        "entry[0].dispenseRequest.numberOfRepeatsAllowed",
        "entry[0].dispenseRequest.dispenseInterval",
        "entry[0].extension[0].extension[1].valueDateTime",
        "entry[1].status", "entry[1].intent", "entry[1].courseOfTherapyType",
        "entry[2].medicationCodeableConcept.text",
        "entry[2].dispenseRequest.numberOfRepeatsAllowed",
    }
    assert errors["entry[0].dispenseRequest.quantity"].startswith(
        "Give the quantity to supply with its unit")
    assert errors["entry[1].courseOfTherapyType"] == \
        'Only repeat medicines can be imported: mark them with the code "continuous".'
    assert "references to Medication resources are not read" in \
        errors["entry[2].medicationCodeableConcept.text"]
    assert errors["entry[2].dispenseRequest.numberOfRepeatsAllowed"] == "Enter 0 to 100 issues."


def test_a_patient_reference_must_be_a_carebridge_patient_id():
    errors = errors_of(parse_fhir_bundle, bundle(medication_request("9434765919")))

    assert list(errors) == ["entry[0].subject.reference"]
    assert errors["entry[0].subject.reference"].startswith("Give the patient's CareBridge id")


def test_a_medicine_listed_twice_for_a_patient_names_the_first_entry():
    errors = errors_of(parse_fhir_bundle, bundle(medication_request(), medication_request(GRACE),
                                                 medication_request()))

    assert errors == {"entry[2].identifier[0].value":
                      "This medicine is listed twice for this patient (also at entry[0])."}


@pytest.mark.parametrize(("data", "field"), [
    ("{not json", "bundle"), (b"\xff\xfe", "bundle"), ([], "resourceType"),
    ({"resourceType": "Patient"}, "resourceType"),
    ({"resourceType": "Bundle", "entry": {}}, "entry"),
    ({"resourceType": "Bundle", "entry": [{"fullUrl": "urn:uuid:1"}]}, "entry[0].resource"),
])
def test_what_is_not_a_bundle_of_entries_is_refused(data, field):
    assert list(errors_of(parse_fhir_bundle, data)) == [field]


def test_a_bundle_without_entries_is_empty():
    assert parse_fhir_bundle({"resourceType": "Bundle", "type": "collection"}) == []


# ---- FHIR properties ------------------------------------------------------------------------

fhir_medications = medications.map(lambda m: Medication(**{
    **m.as_dict(), "quantity": f"{len(m.quantity)} {m.quantity.split()[0]}",
    "last_issued_on": None}))


@settings(max_examples=150)
@given(st.lists(st.tuples(patients, fhir_medications), max_size=6,
                unique_by=lambda r: (r[0], r[1].medication_id)))
def test_any_valid_bundle_reads_back_exactly(written):
    assert parse_fhir_bundle(bundle(*(medication_request(p, m) for p, m in written))) == written


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=3),
    max_leaves=8)
PARTS = ("meta", "extension", "identifier", "status", "intent", "courseOfTherapyType",
         "medicationCodeableConcept", "subject", "dosageInstruction", "dispenseRequest")


@settings(max_examples=300)
@given(st.dictionaries(st.sampled_from(PARTS), json_values, min_size=1))
def test_any_shape_of_json_is_read_or_refused_in_words_never_crashes(replaced):
    try:
        parse_fhir_bundle(bundle(medication_request(**replaced)))
    except InvalidInput as refused:
        assert refused.errors
        assert all(e.field.startswith("entry[0].") and e.message for e in refused.errors)


@settings(max_examples=300)
@given(st.booleans(), st.text(max_size=400))
def test_any_text_is_read_or_refused_in_words_never_crashes(with_header, text):
    try:
        parse_csv(f"{HEADER}\n{text}" if with_header else text)
    except InvalidInput as refused:
        assert refused.errors
        assert all(e.field.startswith("line ") and e.message for e in refused.errors)
