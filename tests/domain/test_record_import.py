"""Reading a clinic's FHIR R4 Bundle of lab results, vaccinations and letters: every error at once,
named by its place in the bundle, and never an internal note."""

from __future__ import annotations

import base64
import copy
import json
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from commands.record_import import FOLLOW_UP, REFERRED_TO, ImportedRecord, parse_record_bundle
from domain.errors import InvalidInput
from domain.records import Record, checked_entry

ADA = UUID("00000000-0000-4000-8000-00000000ada1")
GRACE = UUID("00000000-0000-4000-8000-000000006ace")
NOON = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
LOINC = "http://loinc.org"
INTERNAL = "INTERNAL-7f3a: patient was rude at reception"
PLATELETS_URL = "urn:uuid:5c0d7f52-3a4e-4d1b-9e0f-2b6a8c1d4e70"
LETTER = "Dear colleague,\nI would be grateful if you could see Ada about her palpitations.\n"


def laboratory() -> list[dict[str, Any]]:
    return [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                         "code": "laboratory"}]}]


def observation(name: str = "Haemoglobin", code: str = "718-7", value: float = 118,
                unit: str = "g/L", low: float | None = 120, high: float | None = 160,
                interpretation: str | None = "L", **changes: Any) -> dict[str, Any]:
    """An Observation as a lab system exports one test, with the internal note it may carry."""
    resource: dict[str, Any] = {
        "resourceType": "Observation", "id": "hb-1", "status": "final",
        "category": laboratory(),
        "code": {"coding": [{"system": LOINC, "code": code, "display": "LOINC name"}],
                 "text": name},
        "subject": {"reference": f"Patient/{ADA}"},
        "effectiveDateTime": "2026-11-20T08:15:00+00:00",
        "valueQuantity": {"value": value, "unit": unit, "system": "http://unitsofmeasure.org",
                          "code": unit},
        "referenceRange": [{**({"low": {"value": low, "unit": unit}} if low is not None else {}),
                            **({"high": {"value": high, "unit": unit}} if high is not None
                               else {})}],
        "note": [{"text": INTERNAL}],
    }
    if interpretation:
        resource["interpretation"] = [{"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation",
            "code": interpretation}]}]
    resource.update(changes)
    return resource


def report(*results: str, **changes: Any) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "DiagnosticReport", "id": "fbc-1",
        "identifier": [{"system": "https://lab.example/reports", "value": "lab-report-1"}],
        "status": "final",
        "category": [{"coding": [{"code": "LAB"}]}],
        "code": {"coding": [{"system": "https://lab.example/tests", "code": "FBC",
                             "display": "Full blood count"}], "text": "Full blood count"},
        "subject": {"reference": f"Patient/{ADA}"},
        "effectiveDateTime": "2026-11-20T08:15:00Z", "issued": "2026-11-20T14:02:00+00:00",
        "result": [{"reference": r} for r in results or ("Observation/hb-1", PLATELETS_URL)],
        "conclusion": "Your haemoglobin is a little low; this is common and not urgent.",
        "extension": [{"url": FOLLOW_UP, "valueString": "Book a repeat test in 3 months."}],
    }
    resource.update(changes)
    return resource


def immunization(**changes: Any) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Immunization", "id": "imm-55",
        "identifier": [{"value": "imm-55"}], "status": "completed",
        "vaccineCode": {"coding": [{"system": "http://snomed.info/sct", "code": "FLU-QIV",
                                    "display": "Influenza vaccine"}],
                        "text": "Influenza vaccine (split virion, inactivated)"},
        "patient": {"reference": f"Patient/{ADA}"},
        "occurrenceDateTime": "2026-10-05T23:30:00+01:00",
        "lotNumber": "FLU-2026-118",
        "protocolApplied": [{"doseNumberPositiveInt": 1}],
        "note": [{"text": INTERNAL}],
    }
    resource.update(changes)
    return resource


def attachment(text: str = LETTER, **changes: Any) -> dict[str, Any]:
    return {"contentType": "text/plain; charset=utf-8",
            "data": base64.b64encode(text.encode()).decode(), "title": "Referral to cardiology",
            **changes}


def document(code: str = "57133-1", display: str = "Referral note", **changes: Any
             ) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "DocumentReference", "id": "letter-3",
        "identifier": [{"value": "letter-3"}], "status": "current", "docStatus": "final",
        "type": {"coding": [{"system": LOINC, "code": code, "display": display}]},
        "subject": {"reference": f"Patient/{ADA}"}, "date": "2026-11-21T10:00:00+00:00",
        "description": "Referral to cardiology",
        "extension": [{"url": REFERRED_TO, "valueString": "Cardiology, St Mary's Hospital"}],
        "content": [{"attachment": attachment()}],
    }
    resource.update(changes)
    return resource


def lone_observation(**changes: Any) -> dict[str, Any]:
    resource = observation("Total cholesterol", "2093-3", 4.2, "mmol/L", None, 5, "N",
                           id="chol-9", identifier=[{"value": "chol-9"}],
                           effectiveDateTime="2026-11-18")
    resource.update(changes)
    return resource


def bundle(*resources: dict[str, Any], urls: dict[int, str] | None = None,
           kind: str = "collection") -> dict[str, Any]:
    urls = urls or {}
    return {"resourceType": "Bundle", "type": kind, "entry": [
        {"fullUrl": urls.get(n, f"https://clinic.example/fhir/{r.get('resourceType')}/{n}"),
         "resource": r} for n, r in enumerate(resources)]}


def clinic_export() -> dict[str, Any]:
    """What a clinic system sends: the patient, a full blood count of two tests, a cholesterol
    result on its own, a flu vaccination and a referral letter."""
    patient = {"resourceType": "Patient", "id": str(ADA), "name": [{"family": "Lovelace"}]}
    practitioner = {"resourceType": "Practitioner", "id": "dr-1"}
    platelets = observation("Platelets", "777-3", 250, "10*9/L", 150, 400, "N", id="plt-1")
    return bundle(patient, practitioner, report(), observation(), platelets, lone_observation(),
                  immunization(), document(), urls={4: PLATELETS_URL})


def errors_of(data: Any) -> dict[str, str]:
    with pytest.raises(InvalidInput) as refused:
        parse_record_bundle(data)
    fields = [e.field for e in refused.value.errors]
    assert len(fields) == len(set(fields)), "each field is reported once"
    return {e.field: e.message for e in refused.value.errors}


def record_of(*resources: dict[str, Any]) -> ImportedRecord:
    [record] = parse_record_bundle(bundle(*resources))
    return record


def lab_test(name: str, code: str, value: float, unit: str, low: float | None, high: float | None,
         flag: str | None) -> dict[str, Any]:
    return {"code": code, "name": name, "value": value, "unit": unit, "reference_low": low,
            "reference_high": high, "reference_text": None, "flag": flag}

HAEMOGLOBIN = lab_test("Haemoglobin", "718-7", 118, "g/L", 120, 160, "low")
PLATELETS = lab_test("Platelets", "777-3", 250, "10*9/L", 150, 400, "normal")


# ---- a clinic's export ----------------------------------------------------------------------


def test_a_clinic_export_reads_into_one_record_per_result_vaccination_and_letter():
    records = parse_record_bundle(clinic_export())

    assert records == [
        ImportedRecord(
            "lab-report-1", ADA, "lab_result", "fbc", "Full blood count", "final",
            {"observations": [HAEMOGLOBIN, PLATELETS],
             "comment": "Your haemoglobin is a little low; this is common and not urgent.",
             "follow_up": "Book a repeat test in 3 months."},
            datetime(2026, 11, 20, 8, 15, tzinfo=UTC), "entry[2]"),
        ImportedRecord(
            "chol-9", ADA, "lab_result", "2093-3", "Total cholesterol", "final",
            {"observations": [lab_test("Total cholesterol", "2093-3", 4.2, "mmol/L", None, 5,
                                   "normal")]},
            datetime(2026, 11, 18, tzinfo=UTC), "entry[5]"),
        ImportedRecord(
            "imm-55", ADA, "vaccination", "flu-qiv",
            "Influenza vaccine (split virion, inactivated)", "final",
            {"vaccine": "Influenza vaccine (split virion, inactivated)", "dose": 1,
             "given_on": "2026-10-05", "batch": "FLU-2026-118"},
            datetime(2026, 10, 5, 22, 30, tzinfo=UTC), "entry[6]"),
        ImportedRecord(
            "letter-3", ADA, "referral_letter", "referral_letter", "Referral to cardiology",
            "final", {"to": "Cardiology, St Mary's Hospital", "letter": LETTER},
            datetime(2026, 11, 21, 10, 0, tzinfo=UTC), "entry[7]"),
    ]


def test_every_imported_record_is_accepted_by_the_domain_as_it_is():
    for imported in parse_record_bundle(clinic_export()):
        record = Record.enter(
            source="lab-north", external_id=imported.external_id, patient_id=imported.patient_ref,
            clinic_id="north", kind=imported.kind, code=imported.code, title=imported.title,
            status=imported.status, content=imported.content, occurred_at=imported.occurred_at,
            release_delays={}, by="system:record-import", at=NOON)

        assert (record.kind, record.code, record.title, record.status) == \
            (imported.kind, imported.code, imported.title, imported.status)


def test_the_bundle_may_be_given_as_json_text():
    text = json.dumps(clinic_export())

    assert parse_record_bundle(text) == parse_record_bundle(text.encode()) \
        == parse_record_bundle(clinic_export())


@pytest.mark.parametrize("kind", ["collection", "transaction", "batch", "searchset"])
def test_a_bundle_of_any_kind_that_carries_resources_is_read(kind):
    assert [r.external_id for r in parse_record_bundle(bundle(immunization(), kind=kind))] == \
        ["imm-55"]


def test_a_test_in_the_report_itself_is_read_from_its_contained_resources():
    contained = observation(id="hb")
    del contained["subject"]

    record = record_of(report("#hb", contained=[contained]))

    assert record.content["observations"] == [HAEMOGLOBIN]


def test_a_test_may_give_its_result_in_words():
    words = observation("Urine culture", "630-4", valueString="No growth", interpretation=None)
    del words["valueQuantity"], words["referenceRange"]
    coded = observation("Blood group", "882-1", interpretation=None, id="bg",
                        valueCodeableConcept={"coding": [{"code": "278149003",
                                                          "display": "Group A Rh(D) positive"}]})
    del coded["valueQuantity"], coded["referenceRange"]

    record = record_of(report("Observation/hb-1", "Observation/bg"), words, coded)

    assert [(t["name"], t["value"], t["unit"]) for t in record.content["observations"]] == [
        ("Urine culture", "No growth", None), ("Blood group", "Group A Rh(D) positive", None)]


def test_without_an_identifier_the_resource_id_names_the_record():
    resource = immunization()
    del resource["identifier"]

    assert record_of(resource).external_id == "Immunization/imm-55"


def test_without_a_vaccine_code_a_vaccination_is_coded_as_such_and_titled_by_its_vaccine():
    record = record_of(immunization(vaccineCode={"text": "MMR"}))

    assert (record.code, record.title, record.content["vaccine"]) == ("vaccination", "MMR", "MMR")


@pytest.mark.parametrize(("code", "display"), [
    ("11488-4", "Consult note"), ("34117-2", "History and physical note"),
    ("other", "Appointment summary")])
def test_a_consultation_note_becomes_an_appointment_summary(code, display):
    resource = document(code, display, content=[{"attachment": attachment(
        "We talked about your blood pressure.", title=None)}])
    del resource["extension"]

    record = record_of(resource)

    assert (record.kind, record.title, record.content) == (
        "appointment_summary", "Appointment summary",
        {"summary": "We talked about your blood pressure."})


def test_a_referral_may_be_recognised_by_the_words_of_its_type():
    resource = document(type={"text": "Outgoing REFERRAL letter"})

    assert record_of(resource).kind == "referral_letter"


# ---- statuses and flags -----------------------------------------------------------------------


@pytest.mark.parametrize(("status", "read_as"), [
    ("registered", "preliminary"), ("partial", "preliminary"), ("preliminary", "preliminary"),
    ("final", "final"), ("amended", "amended"), ("corrected", "amended"),
    ("appended", "amended")])
def test_a_report_status_is_read_as_preliminary_final_or_amended(status, read_as):
    record = record_of(report("Observation/hb-1", status=status), observation())

    assert record.status == read_as


@pytest.mark.parametrize(("status", "read_as"), [
    ("preliminary", "preliminary"), ("final", "final"), ("amended", "amended"),
    ("corrected", "amended")])
def test_a_test_on_its_own_is_read_with_its_status(status, read_as):
    assert record_of(lone_observation(status=status)).status == read_as


@pytest.mark.parametrize(("code", "flag"), [
    ("N", "normal"), ("L", "low"), ("H", "high"), ("LL", "critically_low"),
    ("HH", "critically_high"), ("A", "abnormal"), ("AA", "abnormal"), ("IND", None),
    ("<", None)])
def test_the_flag_is_the_labs_interpretation(code, flag):
    resource = lone_observation(interpretation=[{"coding": [{"code": code}]}],
                                referenceRange=[])

    [test] = record_of(resource).content["observations"]

    assert test["flag"] == flag


@pytest.mark.parametrize("resource", [
    report("Observation/hb-1", status="cancelled"), report("Observation/hb-1",
                                                           status="entered-in-error"),
    report("Observation/hb-1", status="unknown"),
    lone_observation(status="registered"), lone_observation(status="cancelled"),
    lone_observation(status="entered-in-error"),
    lone_observation(category=[{"coding": [{"code": "vital-signs"}]}]),
    lone_observation(category=None),
    immunization(status="not-done"), immunization(status="entered-in-error"),
    document(status="superseded"), document(status="entered-in-error"),
    document(docStatus="preliminary"), document(docStatus="entered-in-error"),
    document("18776-5", "Plan of care note", status="draft"),
    document("55107-7", "Addendum", status="draft"),
    {"resourceType": "Patient", "id": str(ADA)}, {"resourceType": "Specimen"},
], ids=lambda r: f"{r['resourceType']}-{r.get('status')}-{r.get('docStatus')}")
def test_what_is_not_a_current_record_is_passed_over(resource):
    assert parse_record_bundle(bundle(resource)) == []


def test_the_tests_of_a_cancelled_report_are_not_imported_on_their_own():
    records = parse_record_bundle(bundle(report("Observation/hb-1", status="cancelled"),
                                         observation()))

    assert records == []


def test_a_test_withdrawn_from_a_report_is_left_out_of_it():
    platelets = observation("Platelets", "777-3", id="plt-1", status="entered-in-error")

    record = record_of(report("Observation/hb-1", "Observation/plt-1"), observation(),
                       platelets)

    assert [t["name"] for t in record.content["observations"]] == ["Haemoglobin"]


def test_an_amended_letter_is_amended():
    assert record_of(document(docStatus="amended")).status == "amended"


# ---- times ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("written", "moment"), [
    ("2026-11-20", datetime(2026, 11, 20, tzinfo=UTC)),
    ("2026-11-20T08:15:00Z", datetime(2026, 11, 20, 8, 15, tzinfo=UTC)),
    ("2026-11-20T08:15:00.250-05:00", datetime(2026, 11, 20, 13, 15, 0, 250000, tzinfo=UTC)),
    ("2026-11-20T00:30+01:00", datetime(2026, 11, 19, 23, 30, tzinfo=UTC))])
def test_a_date_is_midnight_utc_and_a_time_is_read_with_its_offset(written, moment):
    assert record_of(lone_observation(effectiveDateTime=written)).occurred_at == moment


def test_the_time_of_a_report_may_be_its_period_or_else_when_it_was_issued():
    period = report("Observation/hb-1", effectivePeriod={"start": "2026-11-19T07:00:00Z"})
    del period["effectiveDateTime"]
    issued = report("Observation/hb-1", identifier=[{"value": "lab-report-2"}])
    del issued["effectiveDateTime"]

    records = parse_record_bundle(bundle(period, issued, observation()))

    assert [r.occurred_at for r in records] == [datetime(2026, 11, 19, 7, tzinfo=UTC),
                                                datetime(2026, 11, 20, 14, 2, tzinfo=UTC)]


@pytest.mark.parametrize(("written", "words"), [
    ("2026-11-20T08:15:00", "Give the time with its offset from UTC"),
    ("2026-11", "Give a date, like 2026-03-31"),
    ("2026-02-30", "There is no such date"),
    ("2026-11-20T25:00:00Z", "There is no such time"),
    ("9999-12-31T23:00:00-05:00", "There is no such time"),
    (20261120, "Give a date, like 2026-03-31")])
def test_a_time_that_names_no_moment_is_refused(written, words):
    errors = errors_of(bundle(lone_observation(effectiveDateTime=written)))

    assert list(errors) == ["entry[0].resource.effectiveDateTime"]
    assert errors["entry[0].resource.effectiveDateTime"].startswith(words)


def test_a_vaccination_is_given_on_the_day_the_clinic_wrote():
    record = record_of(immunization(occurrenceDateTime="2026-10-06T00:30:00+02:00"))

    assert (record.content["given_on"], record.occurred_at) == \
        ("2026-10-06", datetime(2026, 10, 5, 22, 30, tzinfo=UTC))


# ---- what needs fixing --------------------------------------------------------------------------


def test_every_bad_field_of_every_entry_is_reported_at_once_by_its_place():
    a_report = report("Observation/hb-1", "Observation/missing",
                      effectiveDateTime="2026-11-20T08:15:00")
    bad_test = observation(valueQuantity={"value": "5.2", "unit": "g/L"},
                           referenceRange=[{"low": {"value": "x"}}])
    vaccination = immunization(patient=None)
    del vaccination["occurrenceDateTime"]
    letter = document(content=[{"attachment": {"contentType": "application/pdf",
                                               "url": "https://clinic.example/letter.pdf"}}])
    del letter["extension"]
    too_long = lone_observation(code={"coding": [{"code": "2093-3"}], "text": "x" * 201},
                                subject={"reference": "Patient/ada-lovelace"})
    too_long["valueQuantity"]["unit"] = "u" * 41

    errors = errors_of(bundle(a_report, bad_test, vaccination, letter, too_long))

    assert set(errors) == {
        "entry[0].resource.result[1].reference", "entry[0].resource.effectiveDateTime",
        "entry[1].resource.valueQuantity.value", "entry[1].resource.referenceRange[0].low.value",
        "entry[2].resource.patient.reference", "entry[2].resource.occurrenceDateTime",
        "entry[3].resource.extension", "entry[3].resource.content[0].attachment.data",
        "entry[4].resource.code.text", "entry[4].resource.valueQuantity.unit",
        "entry[4].resource.subject.reference",
    }
    assert errors["entry[0].resource.result[1].reference"].startswith(
        "There is no Observation Observation/missing in this bundle")
    assert errors["entry[2].resource.patient.reference"] == (
        "Refer to the patient as Patient/ followed by their CareBridge id, or to a Patient "
        "resource in the bundle.")
    assert errors["entry[3].resource.content[0].attachment.data"].startswith(
        "Send the letter as text: contentType text/plain")
    assert errors["entry[4].resource.code.text"] == "keep it under 200 characters"
    assert errors["entry[4].resource.subject.reference"].startswith(
        "Give the patient's CareBridge id")


def test_a_test_without_a_name_or_result_is_named_where_each_belongs():
    contained = observation(id="hb")
    contained["code"] = {"coding": [{"code": "718-7"}]}
    del contained["valueQuantity"]

    errors = errors_of(bundle(report("#hb", contained=[contained], code={"text": "FBC"})))

    assert errors == {
        "entry[0].resource.contained[0].value[x]": "Give the result in valueQuantity (a number "
                                                   "and its unit), valueString or "
                                                   "valueCodeableConcept.",
        "entry[0].resource.contained[0].code.text": "is required",
        "entry[0].resource.code.coding[0].code": "is required",
    }


def test_a_report_without_tests_and_a_test_that_is_not_an_observation_are_refused():
    errors = errors_of(bundle(report("Patient/ada"), {"resourceType": "Patient", "id": "ada"},
                              report(result=[], identifier=[{"value": "lab-report-2"}])))

    assert set(errors) == {"entry[0].resource.result[0].reference", "entry[2].resource.result"}


def test_a_report_may_not_list_another_patients_test():
    errors = errors_of(bundle(report("Observation/hb-1"),
                              observation(subject={"reference": f"Patient/{GRACE}"})))

    assert list(errors) == ["entry[1].resource.subject.reference"]


def test_a_status_not_known_is_refused_with_the_statuses_that_are():
    errors = errors_of(bundle(immunization(status="done"), document(status="draft")))

    assert errors == {
        "entry[0].resource.status": "The status must be one of completed (or entered-in-error, "
                                    "not-done, which are not imported).",
        "entry[1].resource.status": "The status must be one of current (or entered-in-error, "
                                    "superseded, which are not imported).",
    }


def test_a_letter_must_be_base64_text_and_a_referral_must_say_to_whom():
    resource = document(content=[{"attachment": attachment(data="not base64!")}],
                        extension=[{"url": REFERRED_TO}])

    errors = errors_of(bundle(resource))

    assert errors == {"entry[0].resource.content[0].attachment.data":
                      "This is not text encoded in base64 (of UTF-8).",
                      "entry[0].resource.extension[0].valueString": "is required"}


def test_a_record_in_the_bundle_twice_names_the_first_place():
    errors = errors_of(bundle(immunization(), document(), immunization()))

    assert errors == {"entry[2].resource.identifier[0].value":
                      "This record is in the bundle twice (also at entry[0])."}


def test_a_record_without_any_id_is_refused():
    resource = immunization()
    del resource["identifier"], resource["id"]

    assert list(errors_of(bundle(resource))) == ["entry[0].resource.identifier[0].value"]


@pytest.mark.parametrize(("data", "field"), [
    ("{not json", "bundle"), (b"\xff\xfe", "bundle"), ("[" * 100_000, "bundle"),
    ([], "resourceType"), ({"resourceType": "Patient"}, "resourceType"),
    ({"resourceType": "Bundle", "type": "history", "entry": []}, "type"),
    ({"resourceType": "Bundle", "entry": []}, "type"),
    ({"resourceType": "Bundle", "type": "collection", "entry": {}}, "entry"),
    ({"resourceType": "Bundle", "type": "collection", "entry": [{"fullUrl": "urn:uuid:1"}]},
     "entry[0].resource"),
])
def test_what_is_not_a_bundle_of_entries_is_refused(data, field):
    assert list(errors_of(data)) == [field]


def test_a_bundle_without_entries_is_empty():
    assert parse_record_bundle({"resourceType": "Bundle", "type": "collection"}) == []


# ---- internal notes ---------------------------------------------------------------------------


def test_an_internal_note_never_reaches_a_record():
    export = clinic_export()
    for entry in export["entry"]:
        entry["resource"]["note"] = [{"text": INTERNAL}]

    records = parse_record_bundle(export)

    assert len(records) == 4
    assert INTERNAL not in json.dumps([asdict(r) for r in records], default=str)
    assert "INTERNAL-7f3a" not in repr(records)


# ---- properties -------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
    | st.sampled_from(["Observation/hb-1", PLATELETS_URL, "#hb", f"Patient/{ADA}", "final",
                       "2026-11-20", "laboratory", "text/plain", FOLLOW_UP, REFERRED_TO]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["value", "unit", "code", "text", "reference", "coding", "url",
                         "valueString", "start", "low", "high", "data", "contentType"])
        | st.text(max_size=8), inner, max_size=3),
    max_leaves=8)
EXPORT = clinic_export()


@settings(max_examples=400)
@given(st.integers(0, len(EXPORT["entry"]) - 1), st.data())
def test_any_shape_of_json_is_read_or_refused_in_words_never_crashes(n, data):
    export = copy.deepcopy(EXPORT)
    resource = export["entry"][n]["resource"]
    parts = [*sorted(resource), "contained", "valueString", "valueCodeableConcept",
             "effectivePeriod", "docStatus"]
    resource.update(data.draw(st.dictionaries(st.sampled_from(parts), json_values, min_size=1)))

    try:
        records = parse_record_bundle(export)
    except InvalidInput as refused:
        assert refused.errors
        assert all(e.field.startswith("entry[") and e.message for e in refused.errors)
    else:
        for record in records:
            checked_entry(record.kind, record.code, record.title, record.status, record.content)


@settings(max_examples=200)
@given(json_values, st.sampled_from(["bundle", "entry", "resource"]))
def test_any_json_in_place_of_the_bundle_or_its_entries_is_refused_in_words(value, where):
    export = copy.deepcopy(EXPORT)
    if where == "bundle":
        export = value
    elif where == "entry":
        export["entry"][2] = value
    else:
        export["entry"][3]["resource"] = value

    try:
        parse_record_bundle(export)
    except InvalidInput as refused:
        assert refused.errors
        assert all(e.field and e.message for e in refused.errors)
