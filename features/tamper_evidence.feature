Feature: Tamper-evident audit log
  Every event CareBridge records is sealed into a hash chain, one chain per part of the service,
  with checkpoints signed by the clinic network's audit key. An auditor recomputes the chains at
  any time with `carebridge audit verify`; an event that was changed, removed or moved behind the
  application's back is named by its place in the log, and the check fails.

  Scenario: Verify catches a tampered event
    Given the clinic has registered 3 staff members
    And the audit sealer has sealed every event
    And the auditor's verification finds nothing wrong
    When someone with database superuser rights changes the 2nd registration behind the application's back
    Then the auditor's verification names that event as "altered" by its position in the "identity" log
    And the auditor's verification fails
