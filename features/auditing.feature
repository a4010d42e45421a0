Feature: Auditing
  An auditor can answer, long afterwards, what happened to a patient's record and what the
  patient could see: every change with who made it and when, every time someone opened the
  record, and the record as it stood on any day, rebuilt from what was recorded then rather than
  from what it says today. Only auditors can ask, and asking is itself recorded.

  Scenario: An auditor reconstructs what a patient saw on a given day
    Given Ada is in Dr Patel's care at Riverside
    And on Monday morning Dr Patel releases Ada's HbA1c result of 48 mmol/mol
    And on Monday morning Dr Patel enters Ada's cholesterol result without releasing it
    And on Monday afternoon Ada opens her HbA1c result
    And on Tuesday Dr Patel corrects the HbA1c result to 40 mmol/mol because "The laboratory re-ran the sample."
    When the auditor asks what Ada could see on Monday
    Then the auditor sees only the HbA1c result, reading 48 mmol/mol as it was released on Monday
    And the cholesterol result is not among what Ada could see
    And Ada's trail shows that Ada opened the HbA1c result on Monday afternoon
    And Ada's trail shows Dr Patel's correction on Tuesday
    When the auditor asks what Ada could see on Tuesday
    Then the auditor sees only the HbA1c result, reading 40 mmol/mol, marked as corrected
