Feature: Proxy access
  A patient can let someone they trust, a carer or a family member, help with parts of their
  care, and can stop it at any time. A parent acts for their young child once the clinic has
  checked it in person. Nobody can use an invitation to find out who has an account.

  Background:
    Given Grace is registered with the clinic
    And her daughter Emma has an account too

  Scenario: Grace lets her daughter manage her appointments
    When Grace invites Emma to help with "appointments"
    And Emma accepts the invitation
    Then Emma sees that she may act for Grace with "appointments"
    And Grace sees that Emma's access is "active"
    But Emma is told she does not have access to Grace's consents

  Scenario: Grace revokes her daughter's access
    Given Emma helps Grace with "appointments, consents"
    And Emma can see Grace's consents
    When Grace revokes Emma's access
    Then Emma is told she does not have access to Grace's consents
    And Grace sees that Emma's access is "revoked"
    And Grace's account activity shows that Emma's access began and ended

  Scenario: An invitation to an address without an account is answered the same way
    When Grace invites "someone.new@example.com" to help with "appointments"
    And Grace invites Emma to help with "appointments"
    Then both invitations were answered the same way

  Scenario: A parent acts for their child
    Given Lily, born on 2015-06-01, is a patient at the clinic
    And her mother Priya has an account
    When the receptionist records, after checking in person, that Priya is Lily's parent
    Then Priya sees that she may act for Lily in everything until 2031-06-01
    And Priya can see Lily's consents
