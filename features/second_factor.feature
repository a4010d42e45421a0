Feature: Signing in with a second factor
  A patient can protect their account with an authenticator app. After that, their passphrase
  alone no longer signs them in: the app's current code does, or one of their recovery codes
  if the phone is lost. Each code works once.

  Scenario: Ada sets up an authenticator app and signs in with it
    Given Ada has set up an authenticator app
    When Ada signs in with her passphrase
    Then she is asked for a code from her authenticator app
    And with the current code from her app she is signed in

  Scenario: Ada has lost her phone and uses a recovery code
    Given Ada has set up an authenticator app
    When Ada signs in with her passphrase
    And she enters one of her recovery codes
    Then she is signed in
    And the same recovery code does not work a second time
