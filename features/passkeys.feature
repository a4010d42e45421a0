Feature: Signing in with a passkey
  A passkey lets a patient sign in with their face or fingerprint on their phone, without
  typing an email address, a password or a code. It counts as both factors at once: the phone
  (something they have) and their face (something they are). It only works for CareBridge, so
  a look-alike site cannot use it. Adding or removing one needs a fresh check that it is them.

  Background:
    Given Grace has confirmed it is her with a code we emailed her
    And Grace has added a passkey on her phone called "Grace's iPhone"

  Scenario: Grace signs in with her face on her phone
    When Grace signs in with her face on her phone, without typing her email address
    Then she is signed in
    And she can change sensitive settings without being asked for another code
    And her account activity shows that she added the passkey and signed in

  Scenario: Grace removes a lost phone's passkey
    Given Grace has lost her phone
    When Grace removes the passkey "Grace's iPhone"
    Then "Grace's iPhone" is no longer among her passkeys
    And whoever finds the phone cannot sign in with it
