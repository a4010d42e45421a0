Feature: Pre-call connection check
  Before a video visit, a patient can check that their camera, microphone and connection
  work. The clinic's side of the check sends back everything it receives, and the patient is
  told in plain words whether the visit can go ahead, and what to do if something does not
  work: allow the camera or microphone, move to a better connection, go ahead with sound only,
  use another browser, or ask the clinic for a phone call instead.

  Background:
    Given Amira is registered with the clinic

  Scenario: Everything works, and Amira is ready for her video visit
    Given Amira has allowed her camera and her microphone
    And her connection to the clinic is good
    When Amira checks her connection before her video visit
    Then she is told she is ready for her video visit
    And she is given nothing to fix

  Scenario: With her camera blocked, Amira's visit can still go ahead by sound
    Given Amira has blocked her camera but allowed her microphone
    And her connection to the clinic is good
    When Amira checks her connection before her video visit
    Then she is told her visit can go ahead with sound only
    And she is advised, in this order, to:
      | advice               |
      | allow the camera     |
      | switch to audio only |

  Scenario: On a slow connection, Amira is told to move or to use sound only
    Given Amira has allowed her camera and her microphone
    And her connection to the clinic takes 600 milliseconds to answer
    When Amira checks her connection before her video visit
    Then she is told her visit can go ahead with sound only
    And she is advised, in this order, to:
      | advice                      |
      | move to a better connection |
      | switch to audio only        |

  Scenario: When nothing gets through, Amira is offered a phone call instead
    Given Amira has allowed her camera and her microphone
    And her network lets nothing through to the clinic
    When Amira checks her connection before her video visit
    Then she is told she is not ready for a video visit
    And she is advised, in this order, to:
      | advice                      |
      | move to a better connection |
      | ask for a phone call        |

  Scenario: In a browser that cannot make video calls, Amira is told to change browser
    Given Amira uses Internet Explorer 11, which cannot make video calls
    And her network lets nothing through to the clinic
    When Amira checks her connection before her video visit
    Then she is told she is not ready for a video visit
    And she is advised, in this order, to:
      | advice                  |
      | use a supported browser |
      | ask for a phone call    |

  Scenario: Only Amira sees the result of her check
    Given Amira has allowed her camera and her microphone
    And her connection to the clinic is good
    And Amira has started a connection check
    When Bob, another patient, reports a result for Amira's check
    Then Bob is told there is no such check
    And Amira still gets her own result
