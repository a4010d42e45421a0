Feature: Notifications that respect the patient
  CareBridge tells patients when something needs their attention: a reminder, a change to an
  appointment, an update on a request. It uses the way each patient chose to hear from the
  clinic (an app notification, a text or an email), it waits until their quiet hours are over,
  and it never says anything medical, because a phone shows it on the lock screen. Messages
  about the account itself (sign-in codes, password resets) are not held back. A message that
  cannot be delivered is tried again for a while, and then shown to the clinic's support team,
  who can send it again.

  Scenario: A reminder respecting quiet hours
    Given Ada wants to hear from the clinic by text, but not between 21:00 and 07:00
    And Ada has an appointment reminder due at 22:30 on 23 November
    When CareBridge sends what is due at 22:30
    Then Ada has received nothing
    And her reminder waits until 07:00 the next morning
    When CareBridge sends what is due at 07:00 on 24 November
    Then Ada receives her reminder by text, naming only the time and the clinic

  Scenario: A failed delivery is retried and then shown to the clinic
    Given Ada has an appointment reminder due at 10:00 on 23 November
    And the email provider is down
    When CareBridge tries to send it, again and again, until it gives up
    Then the support team sees the reminder as failed after 8 attempts, without Ada's address or its words
    When the email provider is back and support sends the reminder again
    Then Ada receives her reminder by email
    And the support team sees no failed notifications
