Feature: Secure messaging
  A patient writes to her clinic from the app instead of chasing answers by email. She starts a
  conversation from what it is about (a result, an appointment, a request), so she never has to
  explain again, and it reaches the team that answers that kind of question. She is told how
  soon the clinic usually answers, and the team sees the questions it is late with. Staff can
  leave notes for each other on a conversation; the patient never sees them. She is told that
  a new message has arrived, never what it says. A closed conversation can be reopened for 30
  days; after that she starts a new one.

  Background:
    Given Ada is a patient at Riverside

  Scenario: A question about a result goes to the nurses, who answer it
    Given Dr Patel, who cares for Ada, has released her HbA1c result
    When Ada asks "What does 48 mean for me?" from the result itself
    Then her question waits in the nursing team's queue, not reception's
    And Ada sees that it is about her result and with "The nursing team"
    And Ada is told "The clinic usually answers within 2 days."
    When a nurse adds a note for colleagues: "call her back if she sounds anxious"
    And the nurse answers "It is a little high. Please book a review with the practice nurse."
    Then Ada is told "You have a new message from your clinic", without any detail
    And Ada reads the answer "It is a little high. Please book a review with the practice nurse." from a "Nurse"
    And nothing Ada can see mentions "anxious"
    And the conversation reads "The clinic answered: your reply is awaited"

  Scenario: A closed conversation can be reopened for 30 days, then a new one is needed
    Given Ada asked reception "Is the entrance step-free?"
    And reception answered "Yes, there is a ramp at the side door."
    When Ada closes the conversation
    Then writing in it is refused: "This conversation is closed. Reopen it to write again, or start a new one."
    When Ada reopens the conversation
    Then it is back in reception's queue as reopened
    When Ada closes the conversation
    And 31 days pass
    Then reopening it is refused and Ada is told to start a new one

  Scenario: A question left unanswered past the promised time shows as late to the team
    Given Ada asked reception "Can my daughter come in with me?"
    And Ada is told "The clinic usually answers within 24 hours."
    When 23 hours pass
    Then reception's queue shows nothing overdue
    When 2 more hours pass
    Then reception's queue shows Ada's question as overdue
    When reception answers "Yes, of course."
    Then reception's queue shows nothing overdue

  Scenario: A clinic sends general questions to patient support
    Given Riverside's administrator sends "general" questions to patient support
    When Ada asks a general question: "Is there parking nearby?"
    Then it waits in patient support's queue, not reception's
    And Ada sees that it is with "Patient support"
