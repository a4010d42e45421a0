Feature: Finding a free appointment
  Patients look for free appointments by clinic, clinician, specialty, type of appointment,
  language and time of day. What they are offered comes from the clinicians' working
  patterns, the rooms, and what is already booked or being booked; times are shown in the
  clinic's time, and also in the patient's own time when they are elsewhere.

  Background:
    Given the Riverside Health Centre in London, where Dr Asha Patel (English and Hindi) sees patients on weekday mornings and Dr Ben Jones (English) from 11:00 to 19:00
    And Grace is registered with the clinic

  Scenario: Grace finds the next morning appointments with a Hindi-speaking doctor
    Given Dr Asha Patel's 09:15 appointment today is already booked
    When Grace looks for the next 3 morning GP appointments with a doctor who speaks Hindi
    Then Grace is offered, all with Dr Asha Patel:
      | starts (clinic time)      |
      | 2026-11-23T09:30:00+00:00 |
      | 2026-11-23T09:45:00+00:00 |
      | 2026-11-23T10:00:00+00:00 |

  Scenario: Grace in New York sees times in both zones
    When Grace, who is in "America/New_York", looks for the next appointment with Dr Ben Jones
    Then the first appointment offered is at "2026-11-23T11:00:00+00:00" clinic time
    And it is at "2026-11-23T06:00:00-05:00" in Grace's own time

  Scenario: Slots after the clocks change are at the same local time
    When Grace looks for Dr Asha Patel's first video appointment on "2027-03-26" and on "2027-03-29"
    Then both start at 09:00 London time
    And the first is at "2027-03-26T09:00:00Z" and the second at "2027-03-29T08:00:00Z"

  Scenario: Grace puts her appointments in her own calendar, which says where but not what for
    Given Grace has a GP appointment with Dr Asha Patel on "2026-11-30T10:00:00Z"
    When Grace turns on her private calendar feed
    Then her calendar app shows "Appointment at Riverside Health Centre" from "20261130T100000Z"
    And nothing in the feed names a specialty or the type of appointment
    When Grace turns her calendar feed off
    Then her calendar app is told there is no feed at that address
