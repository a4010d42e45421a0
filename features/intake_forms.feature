Feature: Intake forms before a consultation
  A consultation type may ask the patient to fill in forms before the visit. The patient can
  start on one device and finish on another, sends the form when it is complete, and the
  clinician reads the answers before the consultation. The answers stay between the patient
  and their clinicians: reception never sees them.

  Background:
    Given Riverside asks GP patients to fill in the pre-consultation form before the visit
    And Grace has a GP appointment with Dr Patel on Monday at 09:00

  Scenario: A form saved as a draft and finished later on another device
    When Grace answers why she is coming and her symptoms on her phone and saves a draft
    Then the appointment still needs the pre-consultation form, with 5 of 10 questions answered
    When Grace opens the form on her laptop
    Then she sees the answers she gave on her phone
    When she adds her allergies, medicines and family history and sends the form
    Then the form is sent to the clinic
    And the appointment no longer needs any form
    And a save from her phone's old copy is refused because the form has been sent

  Scenario: A clinician seeing the form before the appointment
    Given Grace has sent the pre-consultation form
    When Dr Patel opens the pre-consultation view of Monday's appointment
    Then Dr Patel sees "How much do they trouble you?" answered "Moderate"
    And Dr Patel sees "Name of the medicine" answered "Ibuprofen"
    And the view is recorded in the record access log
    When the receptionist at Riverside asks for the same view
    Then the receptionist is told they do not have access
