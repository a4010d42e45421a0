Feature: Medical records
  A patient reads her results in plain words once the clinic has released them: what was
  measured, the usual range, whether it is outside it, the doctor's comment and what to do
  next. A note the clinic writes for its own staff never reaches her. Some results wait for a
  conversation with a doctor; others are shown on their own after a short delay. A corrected
  result says that it was corrected, why, and what it said before. She can see who opened her
  record, and someone she trusts can read it for her if she allows it.

  Background:
    Given Ada is in Dr Patel's care at Riverside

  Scenario: A released result reads in plain words; the note for staff stays with staff
    Given Dr Patel enters Ada's HbA1c result of 48 mmol/mol, commenting "Your blood sugar has been a little high." and asking her to "Book a review with the nurse within four weeks."
    And Dr Patel adds a note for staff: "possible haemolysis - check with lab"
    When Dr Patel releases the result to Ada
    Then Ada is told "A new result is available", without any detail
    And Ada sees the result in her records as "Final result"
    And Ada reads 48 mmol/mol, with the usual range "20 to 41 mmol/mol", marked "Above the usual range"
    And Ada reads the comment "Your blood sugar has been a little high."
    And Ada reads what to do next: "Book a review with the nurse within four weeks."
    And nothing Ada can see mentions "haemolysis"
    But Dr Patel still sees the note for staff

  Scenario: A result that needs a conversation first waits for the doctor
    Given Dr Patel enters Ada's "Skin biopsy (histology)" result, which only a clinician may release
    Then Ada's records do not show it
    And searching Ada's records for "biopsy" finds nothing
    And searching Ada's records for "histology" finds nothing
    And when Ada opens it by its id she is told there is no such record
    And it waits in Riverside's list of records to release

  Scenario: A result is shown on its own once its waiting time has passed
    Given a lab result is shown to the patient 48 hours after it is entered, unless a doctor releases it sooner
    And Dr Patel enters Ada's HbA1c result of 48 mmol/mol without releasing it
    When 47 hours pass and the release run goes by
    Then Ada's records do not show it
    When 2 more hours pass and the release run goes by
    Then Ada sees the result in her records as "Final result"
    And Ada is told "A new result is available", without any detail

  Scenario: A corrected result says so, why, and what it said before
    Given Dr Patel has released Ada's HbA1c result of 48 mmol/mol
    When Dr Patel corrects it to 40 mmol/mol because "The laboratory re-ran the sample and corrected the value."
    Then Ada sees the result marked as corrected, with the reason "The laboratory re-ran the sample and corrected the value."
    And Ada reads 40 mmol/mol, with the usual range "20 to 41 mmol/mol", marked "Within the usual range"
    And Ada sees that it said 48 mmol/mol before the correction

  Scenario: Ada sees who opened her result, and which opening was emergency access
    Given Dr Patel has released Ada's HbA1c result of 48 mmol/mol
    When Ada opens the result
    And Dr Patel opens the result
    And a nurse at Riverside, outside Ada's care team, opens it with emergency access
    Then Ada's access report shows who opened the result, newest first:
      | who opened it | shown as   | role    | emergency access |
      | the nurse     | their name | Nurse   | yes              |
      | Dr Patel      | their name | Doctor  | no               |
      | Ada           | You        | Patient | no               |

  Scenario: A carer Ada allows to read her records sees her results; a helper with appointments does not
    Given Dr Patel has released Ada's HbA1c result of 48 mmol/mol
    And Grace, Ada's carer, may help her with "records"
    And Tom, Ada's son, may help her with "appointments"
    Then Grace sees the result in Ada's records and can open it
    But Tom is told he does not have access to Ada's records
