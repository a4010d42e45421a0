Feature: Clinic schedules
  Each clinic's administrator keeps its schedule: the clinic's opening hours and closed days,
  and each clinician's weekly working pattern with their leave. Patients can only book what
  the schedule offers, and a session is always at the time the clinic's clocks show.

  Background:
    Given Riverside offers GP appointments
    And Dr Patel is a doctor at Riverside
    And the Riverside administrator is signed in

  Scenario: The Riverside administrator sets Dr Patel's weekly pattern
    When the administrator sets Dr Patel's pattern from 30 November 2026 to Mondays 09:00-12:00 and Wednesdays 14:00-17:00 in 15-minute slots
    Then Dr Patel works 09:00-12:00 at Riverside on Monday 30 November 2026, with 12 slots
    And Dr Patel works 14:00-17:00 at Riverside on Wednesday 2 December 2026, with 12 slots
    And Dr Patel does not work on Tuesday 1 December 2026
    And Dr Patel's history shows the new pattern was set by a clinic administrator

  Scenario: A bank holiday closes the clinic
    Given Dr Patel works Fridays 09:00-12:00 from 30 November 2026
    When the administrator closes Riverside on 25 December 2026 for "Christmas Day"
    Then Dr Patel does not work on Friday 25 December 2026
    And Dr Patel works 09:00-12:00 at Riverside on Friday 18 December 2026, with 12 slots
    And patients see that Riverside is closed on 25 December 2026

  Scenario: Dr Patel's leave removes her sessions
    Given Dr Patel works Mondays 09:00-12:00 from 30 November 2026
    When the administrator records Dr Patel's leave from 7 December 2026 to 11 December 2026
    Then Dr Patel does not work on Monday 7 December 2026
    And Dr Patel works 09:00-12:00 at Riverside on Monday 14 December 2026, with 12 slots

  Scenario: Dr Patel's leave is cancelled and her sessions come back
    Given Dr Patel works Mondays 09:00-12:00 from 30 November 2026
    And the administrator records Dr Patel's leave from 7 December 2026 to 11 December 2026
    When the administrator withdraws Dr Patel's leave from 7 December 2026 to 11 December 2026
    Then Dr Patel works 09:00-12:00 at Riverside on Monday 7 December 2026, with 12 slots

  Scenario: A 9 o'clock session is at 9 o'clock after the clocks go forward
    Given Dr Patel works Mondays 09:00-12:00 from 30 November 2026
    Then Dr Patel works 09:00-12:00 at Riverside on Monday 22 March 2027, with 12 slots
    And Dr Patel works 09:00-12:00 at Riverside on Monday 29 March 2027, with 12 slots
    And the session on Monday 29 March 2027 starts at 08:00 UTC, an hour earlier than the week before
