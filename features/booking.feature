Feature: Booking an appointment
  Patients book, move and cancel their own appointments at any hour, and the clinic's rules for
  notice apply the same way to everyone. A time is held for a few minutes while the patient
  confirms; nobody can ever be booked into a time that is already taken. Reception books for
  patients who phone, and when the clinic has to cancel, the patient is told.

  Background:
    Given Riverside Health Centre, where Dr Asha Patel sees GP patients on weekday mornings
    And cancelling or moving needs 24 hours' notice there
    And Grace is registered with the clinic

  Scenario: Grace books a GP appointment
    When Grace holds "Monday 30 November 2026" at "09:00" with Dr Patel
    And Grace confirms the booking
    Then Grace's appointment is "booked"
    And her confirmation shows "Riverside Health Centre" at "09:00" London time
    And her confirmation tells her to "Bring a list of your current medicines."

  Scenario: Grace reschedules inside the policy
    Given Grace has booked "Monday 30 November 2026" at "09:00" with Dr Patel
    When Grace moves it to "Tuesday 1 December 2026" at "10:00"
    Then Grace's appointment is "booked" at "10:00" London time on "2026-12-01"
    And the time "Monday 30 November 2026" at "09:00" is free again

  Scenario: Grace cannot reschedule with less than a day's notice
    Given Grace has booked "Monday 30 November 2026" at "09:00" with Dr Patel
    And it is "Sunday 29 November 2026" at "12:00"
    When Grace moves it to "Tuesday 1 December 2026" at "10:00"
    Then Grace is told she can move it online only up to 24 hours before
    And Grace's appointment is "booked" at "09:00" London time on "2026-11-30"

  Scenario: A late cancellation is recorded
    Given Grace has booked "Monday 30 November 2026" at "09:00" with Dr Patel
    And it is "Monday 30 November 2026" at "07:00"
    When Grace cancels because she "cannot_attend"
    Then the cancellation is recorded as late
    And Grace is told the free cancellation period ended at "29 November 2026 at 09:00 GMT"

  Scenario: Reception books for a patient
    Given Grace is known at Riverside Health Centre
    When the receptionist books "Monday 30 November 2026" at "09:30" with Dr Patel for Grace
    Then Grace's appointment is "booked"
    And the receptionist does not see what the appointment is for

  Scenario: The clinic cancels and Grace is told without medical detail
    Given Grace has booked "Monday 30 November 2026" at "09:00" with Dr Patel
    When the receptionist cancels it because "clinician_unavailable"
    Then Grace's appointment is "cancelled"
    And Grace is sent a message naming "30 November 2026 at 09:00" and "Riverside Health Centre"
    And the message says nothing about "GP", "general practice", "Patel" or "medicines"

  Scenario: The clinic moves Grace's appointment and tells her only the new time
    Given Grace has booked "Monday 30 November 2026" at "09:00" with Dr Patel
    When the receptionist moves it to "Monday 30 November 2026" at "10:00" because "Dr Patel is on a course"
    Then Grace's appointment is "booked" at "10:00" London time on "2026-11-30"
    And Grace is sent a message naming "30 November 2026 at 10:00" and "Riverside Health Centre"
    And the message says nothing about "GP", "course", "Patel" or "medicines"

  Scenario: A booking across the clock change is at the right time
    Given it is "Friday 26 March 2027" at "10:00"
    When Grace holds "Monday 29 March 2027" at "09:00" with Dr Patel
    And Grace confirms the booking
    Then Grace's appointment is "booked" at "09:00" London time on "2027-03-29"
    And it starts at "08:00" UTC
