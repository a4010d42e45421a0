Feature: An analyst's weekly numbers
  Clinic managers used to spend five to eight hours a week counting bookings, cancellations,
  missed appointments, waitlist offers, unanswered messages, video calls, forms and uploads by
  hand. CareBridge keeps those numbers in analytics tables that name no patient, and writes
  the week's report for them.

  Scenario: An analyst's weekly numbers
    Given a week at Riverside: seven booked appointments, a waitlist offer, three conversations, two video calls, two forms and two uploads
    When the analytics are brought up to date
    Then the analyst counts 7 booked appointments, 1 late cancellation and 2 no-shows
    And the waitlist filled 1 of 1 offered slots
    And 1 of 3 conversations was answered within the clinic's promise
    And 1 of 2 forms was sent before the appointment began
    And 1 upload was rejected as "unreadable_image"
    And no analytics table holds a patient's name, email, phone number or words
    And the weekly report for 2026-W49 at Riverside shows the same numbers
