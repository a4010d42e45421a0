Feature: Signing in on a new device, confirming it is you, and looking after a password
  A passphrase alone never opens an account on a device CareBridge has not seen: the patient
  also types a code we email or text them (or uses their authenticator app or passkey). A
  device they choose to remember skips the code for a while. Sensitive changes ask them to
  confirm it is them again. Every one of these is listed in their account activity.

  Background:
    Given Grace has registered with her email address and mobile number

  Scenario: Grace confirms her email address from the link we sent
    When Grace opens the confirmation link from her email
    Then her email address is confirmed

  Scenario: Grace signs in on a new laptop with a code we email her
    Given Grace has signed in on her phone before
    When Grace signs in on her new laptop with her passphrase
    Then she is asked for a code, by email or by text message
    And with the code from her email she is signed in
    And we email her that her account was signed in on a new device, without any medical detail
    And her account activity lists the sign-in on the new laptop

  Scenario: Grace's remembered tablet does not ask for a code
    Given Grace signed in on her tablet with a code and asked us to remember it
    When Grace signs in on her tablet with her passphrase
    Then she is signed in without a code

  Scenario: Grace confirms it is her before changing her mobile number
    Given Grace signed in on her phone a while ago
    When Grace changes her mobile number
    Then she is asked to confirm it is her
    And after typing the code we text her the change goes through

  Scenario: Grace forgot her password and resets it from the email
    Given Grace has signed in on her phone before
    When Grace asks for a password reset and follows the link to choose a new passphrase
    Then her phone is signed out
    And she signs in with the new passphrase

  Scenario: Grace changes her passphrase and her other devices are signed out
    Given Grace has signed in on her phone before
    And Grace has signed in on her laptop too
    When Grace changes her passphrase on her laptop
    Then her phone is signed out
    And she signs in with the new passphrase
