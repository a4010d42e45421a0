Feature: Repeat prescription requests
  A patient asks for their repeat medicines from the app instead of calling the clinic. They see
  which medicines they can ask for now and, for the others, why not in plain words. The clinic
  works the requests from queues: a prescription coordinator approves routine renewals and a
  prescriber reviews those that need a clinician. The patient follows every step and is told of
  each one, without the medicine being named in any notification.

  Background:
    Given Grace's repeat medicines were imported from Riverside's clinical system
    And Grace has agreed to repeat prescription requests

  Scenario: Grace sees what she can request and why not the others
    When Grace opens her repeat medicines
    Then she can request "Amlodipine 5 mg tablets" and "Sertraline 50 mg tablets"
    And she is told for each of the others why not:
      | medicine                          | reason            |
      | Salbutamol 100 micrograms inhaler | too_soon          |
      | Ramipril 2.5 mg capsules          | review_due        |
      | Metformin 500 mg tablets          | needs_appointment |
      | Atorvastatin 20 mg tablets        | no_issues_left    |
      | Codeine 30 mg tablets             | controlled_drug   |

  Scenario: A request that needs a clinician's review goes to a prescriber
    When Grace requests "sertraline" to collect at the clinic
    Then her request waits in the prescriber queue, not the coordinator's
    And Grace is told her request needs a review, without the medicine being named
    When the doctor approves it
    Then Grace sees her request as approved

  Scenario: A rejected request tells Grace why and what to do
    When Grace requests "amlodipine" to collect at the clinic
    And the coordinator notes "BP readings missing since June" and rejects it saying "Please book a blood pressure check first."
    Then Grace sees that her request was not approved, with "Please book a blood pressure check first."
    And nothing Grace can see mentions "BP readings"
    And Grace can request "amlodipine" again

  Scenario: Grace collects her medicine at the clinic
    When Grace requests "amlodipine" to collect at the clinic
    And the coordinator reviews it, approves it and marks it ready to collect
    Then Grace is told it is ready to collect, without the medicine being named
    When Grace collects it and the coordinator completes the request
    Then Grace's timeline shows received, being reviewed, approved, ready to collect and completed

  Scenario: A request past its promised date is marked delayed
    When Grace requests "amlodipine" to collect at the clinic on Monday morning
    Then she is promised an answer by Wednesday at 18:00
    When it is Wednesday at 19:00 and the request is still open
    Then Grace's request is marked delayed and she is told, without the medicine being named

  Scenario: Grace's prescription is sent to the pharmacy she chose
    Given Riverside lists Dockside Chemist, which collects prescriptions from a drop folder
    When Grace requests "amlodipine" to be sent to Dockside Chemist
    And the coordinator approves it
    Then the prescription reaches Dockside Chemist's folder
    And Grace sees her request as sent to her pharmacy and is told, without the medicine being named

  Scenario: The clinic imports its repeat medication lists from its clinical system
    Given Ada is registered but Riverside has not imported her medicines yet
    When Riverside's administrator imports a file with a mistake in Ada's review date
    Then the administrator is told which line and column to fix, and nothing is imported
    When the administrator imports the corrected file
    Then Ada sees her medicine and can request it
