Feature: Day lists for the clinic
  Staff see who is coming in on a day, per clinic and per clinician. Reception sees the times,
  the patients' names, whether each comes in or joins by video, and whether they have arrived;
  never the kind of appointment, never anything clinical, and never another clinic's list.

  Background:
    Given Dr Patel sees patients at Riverside
    And Bob has an appointment with Dr Patel on Monday at 09:00
    And Grace has an appointment with Dr Patel on Monday at 09:15

  Scenario: Reception sees the day list without clinical content
    When the receptionist at Riverside opens Monday's day list
    Then the day list shows, in order:
      | time  | patient        | how       | status |
      | 09:00 | Bob Lovelace   | in_person | booked |
      | 09:15 | Grace Lovelace | in_person | booked |
    And the day list holds nothing but times, names, how and statuses

  Scenario: A receptionist at another clinic cannot see Riverside's day list
    When a receptionist at Hillside asks for Riverside's day list for Monday
    Then they are told they do not have access
