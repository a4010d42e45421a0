Feature: Seeing what happened on my account
  A patient can check their own recent account activity: when they signed in and on which
  device, when someone typed a wrong passphrase, when a device was signed out, and when they
  gave or withdrew a consent. Nobody else's activity is ever shown.

  Scenario: Grace sees a wrong passphrase and her new sign-in on her tablet
    Given Grace has registered and signed in on her phone
    And someone typed a wrong passphrase for Grace's email address
    When Grace signs in on "Grace's tablet"
    Then her account activity shows, newest first, "session_started" on "Grace's tablet"
    And her account activity shows a failed sign-in
    And her account activity does not show anything of another patient
