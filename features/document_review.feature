Feature: Documents checked by the clinic
  A patient uploads the documents the clinic asks for. The clinic checks each one; when it
  cannot accept a document it says why in plain words and what to do, so that the patient
  uploads the right thing once more instead of again and again.

  Background:
    Given Grace has an appointment at Riverside and has agreed to the review of her documents

  Scenario: A rejected document with its reason, and a resubmission
    Given Grace uploaded a photo of her passport for her appointment
    When reception rejects it because the image is unreadable, noting "glare across the photo page" for staff
    Then Grace sees that it was not accepted and reads that she should take a new photo in good light
    And Grace is told there is an update, without any detail
    And nothing Grace can see mentions "glare"
    When Grace uploads a new photo to replace it
    Then the first upload shows as replaced by the new one
    And reception sees only the new one waiting for review
    When reception accepts it
    Then Grace sees her document as accepted

  Scenario: An upload interrupted and resumed
    Given Grace starts uploading her three-page referral letter for her appointment
    When her phone loses its connection after the first two pages
    And she opens the app again later
    Then the upload continues from where it stopped, not from the start
    And the clinic receives the whole letter, waiting for review
