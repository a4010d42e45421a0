Feature: Staying signed in, safely
  Ada uses the clinic's app on her phone and her laptop. While she uses it, the app quietly
  renews her sign-in every few minutes, so she is not asked for her passphrase again and
  again. If someone copies her sign-in to another device, both are stopped. If she leaves the
  app for 15 minutes she is signed out, and she can sign out of every device at once.
  Guessing passphrases is slowed down by pausing sign-in after five wrong ones.

  Background:
    Given Ada is registered with the clinic

  Scenario: Ada stays signed in while she uses the app
    Given Ada has signed in on "Ada's phone"
    When 9 minutes pass and Ada's app renews her sign-in
    And 9 minutes pass and Ada's app renews her sign-in
    And 9 minutes pass and Ada's app renews her sign-in
    Then the app on "Ada's phone" greets her as "Ada Lovelace"

  Scenario: A stolen sign-in is stopped
    Given Ada has signed in on "Ada's phone"
    And someone has copied Ada's sign-in from "Ada's phone"
    When 5 minutes pass and Ada's app renews her sign-in
    And a minute passes
    And the copied sign-in is used to renew it
    Then the copy is refused
    And the app on "Ada's phone" signs Ada out for her safety and suggests changing her passphrase

  Scenario: A renewal whose answer was lost on the way can be sent again
    Given Ada has signed in on "Ada's phone"
    When 5 minutes pass and Ada's app renews her sign-in but the answer is lost on the way
    And moments later the app sends the same renewal again
    Then Ada is still signed in on "Ada's phone"

  Scenario: Ada is signed out after 15 minutes without activity
    Given Ada has signed in on "Ada's phone"
    When 9 minutes pass and Ada's app renews her sign-in
    And Ada does not use the app for 16 minutes
    Then the app on "Ada's phone" cannot renew her sign-in
    And Ada is told she was signed out after a period without activity

  Scenario: Ada signs out on every device
    Given Ada has signed in on "Ada's phone"
    And Ada has signed in on "Ada's laptop"
    Then on "Ada's laptop" Ada sees that she is signed in on
      | device       | this device |
      | Ada's phone  | no          |
      | Ada's laptop | yes         |
    When Ada signs out on every device from "Ada's laptop"
    Then Ada is signed out on "Ada's phone"
    And Ada is signed out on "Ada's laptop"

  Scenario: Repeated wrong passwords pause sign-in
    When Ada signs in with a wrong passphrase 5 times
    Then Ada cannot sign in even with her right passphrase
    And she is told exactly what someone signing in with an unknown address is told
    When 15 minutes pass
    Then Ada can sign in with her right passphrase
