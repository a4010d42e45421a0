Feature: Feature flags for a staged rollout
  Clinic administrators turn video consultations, repeat prescriptions, medical records and
  secure messaging on clinic by clinic, and service by service, for a share of patients or for
  named patients, so that a new service can start small and grow. A patient whose clinic does
  not offer something yet is told so plainly. Every change is recorded with who made it and why.

  Background:
    Given the Riverside administrator is signed in

  Scenario: The Riverside administrator turns on video consultations for 20% of patients
    When the administrator turns on "video consultations" at Riverside for 20% of patients because "pilot with the morning team"
    Then the rollout of "video consultations" at Riverside shows 20% of patients
    And about 20% of Riverside's patients can have video consultations
    And every patient in the pilot keeps video consultations when it grows to 50%

  Scenario: A patient at a clinic without video consultations is told it is not available yet
    Given the administrator has turned on "video consultations" at Riverside for every patient
    And Ada is a patient of Hillview
    When Ada asks which features she can use at Hillview
    Then she is told that video consultations are not available to her there
    And when she asks for a video consultation at Hillview she is told "Video consultations are not available at Hillview yet."

  Scenario: Every change to a rollout is recorded with who and why
    When the administrator turns on "secure messaging" at Riverside for 10% of patients because "first week"
    And the administrator turns on "secure messaging" at Riverside for 50% of patients because "no complaints so far"
    And the administrator turns off "secure messaging" at Riverside because "paused over the holidays"
    Then the history of "secure messaging" shows, newest first:
      | change       | percentage | reason                   | by                  |
      | rule_removed |            | paused over the holidays | clinic_admin        |
      | rule_set     | 50         | no complaints so far     | clinic_admin        |
      | rule_set     | 10         | first week               | clinic_admin        |
    And each change names the administrator's account and when it was made

  Scenario: An administrator of another clinic cannot change Riverside's rollout
    When an administrator of Hillview tries to turn on "video consultations" at Riverside
    Then they are told they do not have access
    And Riverside's rollout of "video consultations" is unchanged
