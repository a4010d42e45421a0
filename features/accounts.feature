Feature: Registering and signing in
  A patient registers once with their email address and a passphrase, then signs in to a
  session that ends on its own after ten minutes. A mistake in the form is explained all at
  once, field by field, so that nobody has to send the form again and again.

  Scenario: Grace registers and signs in
    When Grace registers with the email address "grace@patients.test"
    Then Grace can sign in with her passphrase
    And the app greets her as "Grace Hopper"

  Scenario: A mistake in the form gets every problem named at once
    When Grace sends the registration form with
      | field         | value         |
      | email address | grace@example |
      | passphrase    | short         |
      | given name    | Grace         |
      | family name   |               |
      | date of birth | 2999-01-01    |
    Then Grace is asked to correct her
      | field         |
      | email address |
      | passphrase    |
      | family name   |
      | date of birth |
    And nobody can sign in as "grace@example"

  Scenario: An email address registers only once
    Given Grace registered with the email address "grace@patients.test"
    When someone registers again with the email address "GRACE@patients.test"
    Then they are told the address is already registered and to sign in instead

  Scenario: A registration sent twice by a struggling connection creates one account
    When Grace's app sends her registration for "grace@patients.test" twice with the same key
    Then both answers name the same account

  Scenario: A wrong passphrase and an unknown address get the same answer
    Given Grace registered with the email address "grace@patients.test"
    When Grace signs in with a wrong passphrase
    And someone signs in as "nobody@patients.test"
    Then both are told the same thing: that "the email address or password" may be wrong

  Scenario: A session ends after ten minutes
    Given Grace registered with the email address "grace@patients.test"
    And Grace has signed in
    When eleven minutes pass
    Then Grace is asked to sign in again
