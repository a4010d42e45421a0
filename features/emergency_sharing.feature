Feature: Emergency location sharing
  A patient in distress shares their live location so that help can find them. The clinic's
  on-call staff see it on their screen as it arrives, and the patient's emergency contact gets a
  text with a link to a plain page: coordinates, how accurate they are and how far the patient
  has moved, with no map fetched from the internet. The share ends when the patient stops it,
  when the on-call staff close it with an outcome, or when its time runs out; the link dies
  with it. Every look at the location is in the patient's access report.

  Background:
    Given Ada is a patient at Riverside, where emergency location sharing is switched on
    And Ada named her daughter Ann as her emergency contact

  Scenario: Ada, who fell on the Thames path, shares her location until she stops
    Given the on-call nurse at Riverside has the emergency screen open
    When Ada, who fell on the Thames path, shares her location with the note "Fell on the path, cannot get up", giving her consent to share her information in the same step
    Then the nurse's screen hears that Ada started sharing
    And her daughter gets a text with a link to see where Ada is
    When Ada's phone sends her position on the bench by the river
    Then the nurse's screen shows that position as it arrives
    When Ada's phone sends her position a few metres along the path
    Then the nurse's screen shows that position as it arrives
    And her daughter's page shows the coordinates, their accuracy and the distance Ada moved, with no map tiles or scripts
    When Ada's phone sends a position north of the North Pole
    Then the phone is told that the latitude must be between -90 and 90
    And the nurse's screen still shows the last good position
    When Ada stops sharing
    Then the nurse's screen hears that the share ended
    And her daughter's link says that Ada stopped sharing

  Scenario: A share left running expires after its time and the link dies
    Given Ada is sharing her location
    When 59 minutes pass and the clinic's expiry sweep runs
    Then her daughter's link still shows where Ada is
    When 2 minutes pass and the clinic's expiry sweep runs
    Then the share has expired
    And her daughter's link says that the share's time ran out

  Scenario: The on-call doctor closes a share once help has arrived
    Given Ada is sharing her location
    When the on-call doctor closes Ada's share with the outcome "help arrived"
    Then the doctor sees the share closed with the outcome "help arrived"
    And Ada's share is no longer on the clinic's on-call list
    And her daughter's link says that the clinic closed the share

  Scenario: Ada's access report shows who looked at her location
    Given Ada is sharing her location
    When her daughter opens the link
    And the on-call nurse opens Ada's share
    Then Ada's access report shows that her emergency contact and the nurse looked at her location
