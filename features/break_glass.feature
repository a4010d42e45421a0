Feature: Emergency access (break-glass)
  A doctor or nurse outside a patient's care team can open emergency access by saying why. It
  lasts a short time, it is recorded, the patient sees that it happened (never who, nor why),
  and the clinic administrator reviews it.

  Background:
    Given Ada is a patient at the Riverside clinic
    And Dr Patel is a doctor at Riverside who is not in Ada's care team

  Scenario: Dr Patel opens emergency access with a reason; the clinic administrator reviews it
    Given Dr Patel is told she does not have access to Ada's consents
    When Dr Patel opens emergency access to Ada because "Brought in unconscious; need her allergies and medicines."
    Then Dr Patel can see Ada's consents for the next 60 minutes
    And the clinic administrator sees it waiting for review, with Dr Patel's reason
    When the clinic administrator reviews it as "appropriate"
    Then nothing is waiting for review at Riverside

  Scenario: Emergency access ends by itself
    Given Dr Patel has opened emergency access to Ada
    When 60 minutes pass
    Then Dr Patel is told she does not have access to Ada's consents

  Scenario: Ada sees that emergency access happened, but not who or why
    Given Dr Patel has opened emergency access to Ada
    Then Ada's account activity shows "emergency_access" without any detail
    And nothing Ada's app can read mentions the reason or Dr Patel

  Scenario: A reason is needed
    When Dr Patel tries to open emergency access to Ada because "urgent"
    Then Dr Patel is asked to say why in at least 20 characters
