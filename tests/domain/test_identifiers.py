"""Patient identifiers: NHS numbers and their check digit, changes that record only what changed,
and the match rules for records from clinic systems."""

from __future__ import annotations

from uuid import UUID

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.errors import InvalidInput
from domain.identifiers import (
    MATCHED,
    NONE,
    UNCERTAIN,
    PatientIdentifiers,
    checked,
    clinic_of,
    decide,
    family_name_key,
    nhs_number,
    patient_identifiers_id,
)

from .support import ADA, ADMIN_REF, GRACE, MORNING, NOON, new_events

VALID_NHS = "9434765919"
FULL_WIDTH = "".join(chr(0xFF10 + int(d)) for d in VALID_NHS)  # digits, but not ASCII ones


def identifiers_of_ada(**known: str) -> PatientIdentifiers:
    """Ada's identifiers with `known` already recorded, the history collected."""
    aggregate = PatientIdentifiers(patient_id=ADA, by=ADMIN_REF, at=MORNING)
    aggregate.replace({system.replace("_", "-"): value for system, value in known.items()},
                      by=ADMIN_REF, at=MORNING)
    aggregate.collect_events()
    return aggregate


def test_an_nhs_number_with_the_right_check_digit_is_accepted_with_or_without_spaces():
    assert nhs_number("943 476 5919") == VALID_NHS
    assert nhs_number("943-476-5919") == VALID_NHS


@pytest.mark.parametrize("wrong", ["9434765918", "943476591", "94347659190", "943476591x",
                                   FULL_WIDTH, "1234567890"])
def test_a_number_that_is_not_an_nhs_number_is_refused(wrong):
    # 1234567890: the check digit would be 10, which no NHS number has.
    assert nhs_number(wrong) is None


@given(st.text(alphabet="0123456789", min_size=9, max_size=9))
def test_exactly_one_check_digit_completes_nine_digits_unless_it_would_be_ten(first_nine):
    completing = [d for d in "0123456789" if nhs_number(first_nine + d)]
    total = sum(int(d) * w for d, w in zip(first_nine, range(10, 1, -1), strict=True))
    assert len(completing) == (0 if 11 - total % 11 == 10 else 1)


def test_every_wrong_identifier_is_named_at_once():
    with pytest.raises(InvalidInput) as refused:
        checked({"nhs": "9434765918", "EMIS": "R1", "riverside-emis": "R 12"})
    assert [e.field for e in refused.value.errors] == [
        "identifiers.nhs", "identifiers.EMIS", "identifiers.riverside-emis"]


def test_a_local_system_belongs_to_the_clinic_its_name_starts_with():
    assert clinic_of("riverside-emis") == "riverside"
    assert clinic_of("north-hill-systmone") == "north-hill"
    assert clinic_of("emis") is None


def test_replacing_identifiers_records_each_change_with_who_and_when():
    ada = identifiers_of_ada(nhs=VALID_NHS, riverside_emis="R12345")
    ada.replace({"nhs": VALID_NHS, "northgate-vision": "N9"}, by=ADMIN_REF, at=NOON)
    assert new_events(ada) == ["Assigned", "Removed"]
    assert all(e.by == ADMIN_REF and e.at == NOON for e in ada.pending_events)
    assert ada.identifiers == {"nhs": VALID_NHS, "northgate-vision": "N9"}


def test_the_same_identifiers_again_record_nothing():
    ada = identifiers_of_ada(nhs=VALID_NHS, riverside_emis="R12345")
    ada.replace({"riverside-emis": "R12345", "nhs": VALID_NHS}, by=ADMIN_REF, at=NOON)
    ada.assign("nhs", VALID_NHS, by=ADMIN_REF, at=NOON)
    assert new_events(ada) == []


def test_each_patient_has_one_identifiers_stream():
    assert PatientIdentifiers(patient_id=ADA, by=ADMIN_REF, at=MORNING).id == \
        patient_identifiers_id(ADA)


# ---- the match rules ---------------------------------------------------------------------------

def test_a_known_nhs_number_is_a_certain_match():
    assert decide({"nhs": ADA}, [GRACE]) == decide({"nhs": ADA}, [])
    found = decide({"nhs": ADA}, [])
    assert (found.outcome, found.patient_id, found.reason) == (MATCHED, ADA, "nhs_number")


def test_a_known_local_number_of_the_system_is_a_certain_match():
    found = decide({"riverside-emis": ADA}, [])
    assert (found.outcome, found.patient_id, found.reason) == (MATCHED, ADA, "local_number")


def test_identifiers_that_point_to_different_patients_go_to_review():
    found = decide({"nhs": ADA, "riverside-emis": GRACE}, [])
    assert (found.outcome, found.patient_id, found.reason) == (UNCERTAIN, None, "conflict")
    assert set(found.candidates) == {ADA, GRACE}


def test_a_unique_family_name_and_date_of_birth_is_only_uncertain():
    found = decide({}, [ADA])
    assert (found.outcome, found.patient_id, found.candidates, found.reason) == (
        UNCERTAIN, None, (ADA,), "demographics")


def test_several_patients_with_the_same_name_and_birthday_are_all_proposed_for_review():
    assert set(decide({}, [ADA, GRACE, ADA]).candidates) == {ADA, GRACE}


def test_nobody_known_is_no_match():
    assert decide({}, []).outcome == NONE


@given(st.dictionaries(st.sampled_from(["nhs", "riverside-emis", "northgate-vision"]),
                       st.sampled_from([ADA, GRACE])),
       st.lists(st.sampled_from([ADA, GRACE, UUID(int=7)]), max_size=3))
def test_a_certain_match_is_never_made_from_demographics_alone(by_identifier, by_demographics):
    found = decide(by_identifier, by_demographics)
    if found.outcome == MATCHED:
        assert found.patient_id in by_identifier.values()
        assert set(by_identifier.values()) == {found.patient_id}


def test_family_names_compare_without_case_spaces_or_apostrophes():
    assert family_name_key("O'Brien") == family_name_key("o brien") == "obrien"
