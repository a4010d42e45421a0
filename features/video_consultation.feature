Feature: Video consultations from the appointment
  A patient with a video appointment joins from the app. The waiting room always says where
  they stand: early, waiting for the clinician, the clinician has joined, in the call, or over.
  The first video consultation needs the patient's consent to video consultations. A dropped
  call can always be rejoined while the consultation is open. After the call the clinician
  writes follow-up instructions for the patient and internal notes that only staff see.

  Background:
    Given Dr Patel sees patients at Riverside and offers video consultations
    And Amira has a video appointment with Dr Patel on Monday at 09:00

  Scenario: Amira joins early and waits until the call opens
    Given Amira has agreed to video consultations
    When Amira joins at 08:30
    Then Amira is told she is early and that the call opens at 08:50
    When it is 08:50
    Then Amira is in the waiting room and told her clinician has not joined yet

  Scenario: The first video consultation asks for consent first
    When Amira joins at 08:55
    Then Amira is asked to accept the consent to video consultations, version 2026-11
    When Amira accepts the consent to video consultations
    And Amira joins at 08:55
    Then Amira is in the waiting room and told her clinician has not joined yet

  Scenario: The clinician joins and the patient is told
    Given Amira has agreed to video consultations
    And Amira is waiting in the waiting room at 08:55
    When Dr Patel joins the call
    Then Amira sees that her clinician has joined
    And Amira is sent a message that her clinician is ready, without any medical detail
    When their video connects
    Then Amira's call is in progress

  Scenario: A dropped call is rejoined
    Given Amira has agreed to video consultations
    And Amira and Dr Patel are in the call
    When Amira's connection drops
    Then Dr Patel sees that Amira has left and the call waits for her
    When Amira joins at 09:03
    Then Dr Patel is asked to call Amira again
    And after their video connects again Amira's call is in progress

  Scenario: The call ends with a summary Amira can read
    Given Amira has agreed to video consultations
    And Amira and Dr Patel are in the call
    When Dr Patel ends the call
    Then Amira sees that the call has ended
    When Dr Patel writes "Use the inhaler twice a day." for Amira and "Query early COPD." for staff
    Then Amira reads "Use the inhaler twice a day." after her video appointment
    And nothing Amira can see mentions "COPD"
    And the session log shows when each of them joined and left
