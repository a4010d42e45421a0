Feature: Working with the clinic's own systems
  The clinic's records system and CareBridge name the same patient differently. Records from it
  must reach the right patient, never a lookalike; and the clinic's system must hear of changes
  at once, signed, without a word of clinical detail.

  Background:
    Given Ada Lovelace, born on 10 December 1958, is a CareBridge patient
    And Riverside's administrator has recorded Ada's NHS number

  Scenario: A result from the clinic's system reaches the patient its NHS number names
    When Riverside's records system sends a vaccination for the patient with Ada's NHS number
    Then the vaccination is in Ada's record

  Scenario: A record that only matches by name and birth date waits for a person to confirm it
    When Riverside's records system sends a vaccination for "Lovelace", born on 10 December 1958, with only its own record number
    Then the import is refused, naming the entry
    And the administrator finds the record waiting in the review queue with Ada as the candidate
    When the administrator confirms that it is Ada
    And Riverside's records system sends the same vaccination again
    Then the vaccination is in Ada's record

  Scenario: The clinic's system hears of a booking, signed and without clinical detail
    Given Riverside's administrator has subscribed its records system to bookings
    When Ada books an appointment at Riverside
    Then the records system receives one signed notice of the booking
    And the notice carries ids and the status only
