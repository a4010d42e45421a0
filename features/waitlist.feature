Feature: Waitlist for an earlier appointment
  A patient who would like to be seen sooner joins the waitlist for a clinician (or any
  clinician of a kind of appointment) on the days that suit them, saying how urgent it is.
  When an appointment frees up, the most urgent patient who has waited longest is offered it
  and has 30 minutes to take it. Nobody else is offered the same time meanwhile; if the offer
  is turned down or runs out, the next patient gets it.

  Background:
    Given Dr Patel sees patients at Riverside
    And Bob has an appointment with Dr Patel on Tuesday at 09:00

  Scenario: Grace takes an earlier appointment from the waitlist
    Given Grace is on the waitlist for Dr Patel this week as "soon"
    When Bob cancels his appointment
    Then Grace is offered Tuesday at 09:00 and has 30 minutes to take it
    And Grace is told that an earlier appointment is available, without any medical detail
    When Grace takes the offer
    Then Grace has an appointment with Dr Patel on Tuesday at 09:00
    And Grace is no longer on the waitlist

  Scenario: An offer Grace lets lapse goes to the next patient
    Given Grace is on the waitlist for Dr Patel this week as "urgent"
    And Ada is on the waitlist for Dr Patel this week as "urgent"
    When Bob cancels his appointment
    Then Grace is offered Tuesday at 09:00 and has 30 minutes to take it
    And Ada has no offer
    When 30 minutes pass without Grace answering
    Then Ada is offered Tuesday at 09:00 and has 30 minutes to take it
    And Grace is still waiting on the list without an offer
