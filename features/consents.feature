Feature: Consents
  Patients decide what they agree to: video consultations, sharing their information with
  their care team, repeat prescription requests and the review of documents they upload.
  They agree to a published text, can change their mind at any time, and see a history of
  every decision. Staff see those decisions only as far as their role allows.

  Background:
    Given Ada is registered with the clinic

  Scenario: Ada agrees to video consultations
    When Ada agrees to the current text for "video consultations"
    Then Ada's consent to "video consultations" is "given"
    And Ada has not given any other consent

  Scenario: Ada withdraws her consent and sees it in her history
    Given Ada has agreed to "video consultations"
    When Ada withdraws her consent to "video consultations" because "I prefer to come in person"
    Then Ada's consent to "video consultations" is "withdrawn"
    And Ada's history shows, newest first:
      | what      | consent             | by her | reason                     |
      | withdrawn | video consultations | yes    | I prefer to come in person |
      | given     | video consultations | yes    |                            |

  Scenario: Ada is asked to read the new text when the clinic publishes a new version
    Given the clinic administrator publishes version "2027-01" of the "video consultations" text
    When Ada agrees to version "2026-11" of the "video consultations" text
    Then Ada is told the text has changed and the current version is "2027-01"
    And Ada's consent to "video consultations" is "not given"

  Scenario: A nurse sees Ada's consents but a receptionist cannot
    Given Ada has agreed to "sharing your information with your care team"
    Then a nurse sees that Ada's consent to "sharing your information with your care team" is "given"
    And a receptionist is told they do not have access to Ada's consents

  Scenario: A retried request does not give consent twice
    When Ada agrees to "video consultations" and her app sends the same request again
    Then both answers are the same
    And Ada's history shows that she agreed to "video consultations" once
