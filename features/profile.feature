Feature: Keeping my profile up to date
  A patient keeps their own details in the app: how to reach them, who to call in an
  emergency, the clinic they prefer, how and when the clinic may contact them, and what helps
  them (larger text, a screen reader, simple language, an interpreter). Every change is kept,
  so the patient can see when their profile was changed and by whom. Because a new mobile
  number could let someone else take over the account, changing contact details needs the
  patient to confirm it is them first.

  Scenario: Grace updates her emergency contact
    Given Grace has registered with the mobile number "+44 7700 900123"
    When Grace names "Ann Hopper", her daughter, on "+44 7700 900456" as her emergency contact
    Then her profile shows "Ann Hopper" as her emergency contact
    When Grace saves the same emergency contact again
    Then she is told that nothing changed

  Scenario: Grace must confirm it is her before changing her mobile number
    Given Grace has registered with the mobile number "+44 7700 900123"
    When Grace changes her mobile number to "+44 7700 900999"
    Then she is asked to confirm it is her
    And her mobile number is still "+44 7700 900123"
    When Grace confirms it is her with her authenticator app
    And Grace changes her mobile number to "+44 7700 900999"
    Then her mobile number is "+44 7700 900999"

  Scenario: Grace sees when her profile was changed
    Given Grace has registered with the mobile number "+44 7700 900123"
    And at 09:04 Grace asked for larger text
    And at 09:08 Grace chose "riverside" as her preferred clinic
    When Grace looks at the history of her profile
    Then she sees, newest first
      | what changed     | changed by | at    |
      | preferred clinic | you        | 09:08 |
      | accessibility    | you        | 09:04 |
    And her account activity shows that her profile was updated, without the details

  Scenario: A change from Grace's tablet does not overwrite one made on her phone
    Given Grace has registered with the mobile number "+44 7700 900123"
    And Grace opened her profile on her phone and on her tablet
    When Grace names "Ann Hopper", her daughter, on "+44 7700 900456" as her emergency contact on her phone
    And Grace asks for larger text on her tablet
    Then her tablet is asked to reload her profile before saving
    And her profile still shows "Ann Hopper" as her emergency contact
