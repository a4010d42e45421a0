"""Who may call what: every endpoint in the OpenAPI schema against every kind of caller.

The table is explicit on purpose. A new endpoint fails `test_every_endpoint_has_a_row` until
someone decides, row by row, who may call it.
"""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Any
from uuid import UUID

import pytest

from tests.api.emergency_support import sharing_on
from tests.api.message_support import messaging_on
from tests.api.support import CURRENT_VERSION, PASSWORD, assert_problem, auth, give

OK, SIGN_IN, DENY, REFUSED_INPUT, CONFLICT, NOT_FOUND = "2xx", 401, 403, 422, 409, 404
CODES = {"Y": OK, "A": SIGN_IN, "N": DENY, "V": REFUSED_INPUT, "C": CONFLICT, "F": NOT_FOUND}
STAFF = ("doctor", "nurse", "reception", "prescription_coordinator", "care_manager", "support",
         "clinic_admin", "auditor")
CALLERS = ("anonymous", "patient_own", "patient_other", *STAFF)

# Y: allowed (2xx)   A: must sign in first (401)   N: denied (403)
# V: allowed, and the deliberately wrong input is refused (422)
# C: allowed, and refused as the account's state does not permit it (409)
# F: allowed past access control, and the made-up id in the path is not found (404)
# patient_own is Ada, whose id fills {patient_id}; patient_other is Bob, another patient.
#                                                       anon own oth doc nur rec pre car sup adm aud
MATRIX: dict[tuple[str, str], str] = {
    ("GET", "/health/live"):                             "Y   Y   Y   Y   Y   Y   Y   Y   Y   Y   Y",
    ("GET", "/health/ready"):                            "Y   Y   Y   Y   Y   Y   Y   Y   Y   Y   Y",
    ("POST", "/v1/auth/register"):                       "Y   Y   Y   Y   Y   Y   Y   Y   Y   Y   Y",
    ("POST", "/v1/auth/login"):                          "Y   Y   Y   Y   Y   Y   Y   Y   Y   Y   Y",
    ("POST", "/v1/auth/refresh"):                        "Y   Y   Y   Y   Y   Y   Y   Y   Y   Y   Y",
    ("POST", "/v1/auth/logout"):                         "A   Y   Y   Y   Y   Y   Y   Y   Y   Y   Y",
    ("GET", "/v1/me/sessions"):                          "A   Y   Y   Y   Y   Y   Y   Y   Y   Y   Y",
    ("POST", "/v1/me/sessions/sign-out-everywhere"):     "A   Y   Y   Y   Y   Y   Y   Y   Y   Y   Y",
    ("GET", "/v1/me"):                                   "A   Y   Y   Y   Y   Y   Y   Y   Y   Y   Y",
    ("GET", "/v1/me/security-events"):                   "A   Y   Y   Y   Y   Y   Y   Y   Y   Y   Y",
    ("POST", "/v1/auth/second-factor"):                  "A   A   A   A   A   A   A   A   A   A   A",
    ("POST", "/v1/me/second-factor/totp"):               "A   Y   Y   Y   Y   Y   Y   Y   Y   Y   Y",
    ("POST", "/v1/me/second-factor/totp/confirm"):       "A   V   V   V   V   V   V   V   V   V   V",
    # A made-up challenge or link token: refused whoever sends it.
    ("POST", "/v1/auth/second-factor/code"):             "A   A   A   A   A   A   A   A   A   A   A",
    ("POST", "/v1/auth/verify-email"):                   "C   C   C   C   C   C   C   C   C   C   C",
    ("POST", "/v1/auth/password-reset"):                 "Y   Y   Y   Y   Y   Y   Y   Y   Y   Y   Y",
    ("POST", "/v1/auth/password-reset/complete"):        "C   C   C   C   C   C   C   C   C   C   C",
    # Staff addresses were vouched for by the administrator who added them: nothing to confirm.
    ("POST", "/v1/me/email/verification"):               "A   Y   Y   C   C   C   C   C   C   C   C",
    ("POST", "/v1/me/step-up/code"):                     "A   Y   Y   Y   Y   Y   Y   Y   Y   Y   Y",
    ("POST", "/v1/me/step-up"):                          "A   V   V   V   V   V   V   V   V   V   V",
    ("GET", "/v1/me/devices"):                           "A   Y   Y   Y   Y   Y   Y   Y   Y   Y   Y",
    ("POST", "/v1/me/devices/{device_id}/forget"):       "A   Y   Y   Y   Y   Y   Y   Y   Y   Y   Y",
    # The current password sent is wrong: the caller gets past access control to that check.
    ("POST", "/v1/me/password"):                         "A   V   V   V   V   V   V   V   V   V   V",
    # Adding or removing a passkey needs a recent step-up, which the standing sessions lack;
    # renaming gets past access control to the (blank) name; nobody here has a passkey yet.
    ("POST", "/v1/me/passkeys/registration-options"):    "A   N   N   N   N   N   N   N   N   N   N",
    ("POST", "/v1/me/passkeys"):                         "A   N   N   N   N   N   N   N   N   N   N",
    ("GET", "/v1/me/passkeys"):                          "A   Y   Y   Y   Y   Y   Y   Y   Y   Y   Y",
    ("POST", "/v1/me/passkeys/{passkey_id}/rename"):     "A   V   V   V   V   V   V   V   V   V   V",
    ("DELETE", "/v1/me/passkeys/{passkey_id}"):          "A   N   N   N   N   N   N   N   N   N   N",
    ("POST", "/v1/auth/passkey/options"):                "Y   Y   Y   Y   Y   Y   Y   Y   Y   Y   Y",
    ("POST", "/v1/auth/passkey"):                        "V   V   V   V   V   V   V   V   V   V   V",
    ("POST", "/v1/me/step-up/passkey/options"):          "A   C   C   C   C   C   C   C   C   C   C",
    ("POST", "/v1/me/step-up/passkey"):                  "A   V   V   V   V   V   V   V   V   V   V",
    ("GET", "/v1/consent-texts/{consent_type}"):         "A   Y   Y   Y   Y   Y   Y   Y   Y   Y   Y",
    ("GET", "/v1/me/consents"):                          "A   Y   Y   N   N   N   N   N   N   N   N",
    ("POST", "/v1/me/consents"):                         "A   Y   Y   N   N   N   N   N   N   N   N",
    ("GET", "/v1/me/consents/history"):                  "A   Y   Y   N   N   N   N   N   N   N   N",
    ("POST", "/v1/me/consents/{consent_type}/withdraw"): "A   Y   Y   N   N   N   N   N   N   N   N",
    # No staff member here is in Ada's care team, and Ada is known at no clinic yet:
    # tests/api/test_access_relationships.py has the columns with relationships.
    ("GET", "/v1/staff/patients/{patient_id}/consents"): "A   N   N   N   N   N   N   N   N   N   N",
    ("GET", "/v1/staff/patients/{patient_id}/care-team"): "A   N   N   N   N   N   N   N   N   N   N",
    ("POST", "/v1/staff/patients/{patient_id}/care-team"):
                                                         "A   N   N   N   N   N   N   V   N   V   N",
    ("POST", "/v1/staff/patients/{patient_id}/care-team/{relationship_id}/end"):
                                                         "A   N   N   N   N   N   N   F   N   F   N",
    ("POST", "/v1/staff/patients/{patient_id}/parental-responsibility"):
                                                         "A   N   N   N   N   N   N   N   N   N   N",
    ("POST", "/v1/staff/patients/{patient_id}/break-glass"):
                                                         "A   N   N   V   V   N   N   N   N   N   N",
    ("GET", "/v1/staff/break-glass"):                    "A   N   N   N   N   N   N   N   N   Y   Y",
    ("POST", "/v1/staff/break-glass/{access_id}/close"): "A   N   N   F   F   N   N   N   N   N   N",
    ("POST", "/v1/staff/break-glass/{access_id}/review"): "A   N   N   N   N   N   N   N   N   F   F",
    ("GET", "/v1/me/proxies"):                           "A   Y   Y   N   N   N   N   N   N   N   N",
    ("POST", "/v1/me/proxies"):                          "A   Y   Y   N   N   N   N   N   N   N   N",
    ("POST", "/v1/me/proxies/{grant_id}/scopes"):        "A   F   F   N   N   N   N   N   N   N   N",
    ("POST", "/v1/me/proxies/{grant_id}/revoke"):        "A   F   F   N   N   N   N   N   N   N   N",
    ("GET", "/v1/me/represented"):                       "A   Y   Y   N   N   N   N   N   N   N   N",
    ("POST", "/v1/me/represented/{grant_id}/accept"):    "A   F   F   N   N   N   N   N   N   N   N",
    ("POST", "/v1/me/represented/{grant_id}/decline"):   "A   F   F   N   N   N   N   N   N   N   N",
    ("POST", "/v1/me/represented/{grant_id}/step-down"): "A   F   F   N   N   N   N   N   N   N   N",
    ("GET", "/v1/patients/{patient_id}/consents"):       "A   Y   N   N   N   N   N   N   N   N   N",
    ("POST", "/v1/staff/consent-texts/{consent_type}"):  "A   N   N   N   N   N   N   N   N   Y   N",
    ("GET", "/v1/me/profile"):                           "A   Y   Y   Y   Y   Y   Y   Y   Y   Y   Y",
    ("GET", "/v1/me/profile/history"):                   "A   Y   Y   Y   Y   Y   Y   Y   Y   Y   Y",
    # The matrix's patients have not stepped up, so changing contact details is refused (403
    # step-up-required) even to them; tests/api/test_profile.py covers it after step-up.
    ("PUT", "/v1/me/profile/contact"):                   "A   N   N   N   N   N   N   N   N   N   N",
    ("PUT", "/v1/me/profile/emergency-contact"):         "A   Y   Y   N   N   N   N   N   N   N   N",
    ("DELETE", "/v1/me/profile/emergency-contact"):      "A   Y   Y   N   N   N   N   N   N   N   N",
    ("PUT", "/v1/me/profile/preferred-clinic"):          "A   Y   Y   N   N   N   N   N   N   N   N",
    ("PUT", "/v1/me/profile/communication"):             "A   Y   Y   N   N   N   N   N   N   N   N",
    ("PUT", "/v1/me/profile/accessibility"):             "A   Y   Y   N   N   N   N   N   N   N   N",
    # Like the consents: nobody here has a relationship with Ada (see test_access_relationships).
    ("GET", "/v1/staff/patients/{patient_id}/profile"):  "A   N   N   N   N   N   N   N   N   N   N",
    ("GET", "/v1/admin/feature-flags"):                  "A   N   N   N   N   N   N   N   N   Y   N",
    ("GET", "/v1/admin/feature-flags/{feature}/history"): "A   N   N   N   N   N   N   N   N   Y   N",
    ("PUT", "/v1/admin/feature-flags/{feature}/rules"):  "A   N   N   N   N   N   N   N   N   Y   N",
    ("POST", "/v1/admin/feature-flags/{feature}/rules/remove"):
                                                         "A   N   N   N   N   N   N   N   N   Y   N",
    ("GET", "/v1/me/features"):                          "A   Y   Y   N   N   N   N   N   N   N   N",
    # Availability: anyone signed in (the matrix's schedule is empty; the clinician is made
    # up). Calendar: a made-up appointment is not found for those who may read appointments;
    # the feed is the patient's own, and its address (here made up) is the only credential.
    ("GET", "/v1/availability"):                         "A   Y   Y   Y   Y   Y   Y   Y   Y   Y   Y",
    ("GET", "/v1/clinicians/{account_id}/next-slots"):   "A   F   F   F   F   F   F   F   F   F   F",
    ("GET", "/v1/appointments/{appointment_id}/calendar.ics"):
                                                         "A   F   F   F   F   F   F   F   N   F   N",
    ("POST", "/v1/me/calendar-feed"):                    "A   Y   Y   N   N   N   N   N   N   N   N",
    ("DELETE", "/v1/me/calendar-feed"):                  "A   Y   Y   N   N   N   N   N   N   N   N",
    ("GET", "/v1/calendar-feeds/{feed_file}"):           "F   F   F   F   F   F   F   F   F   F   F",
    # Appointments: a made-up clinician or appointment. Patients get past access control to the
    # input check or the lookup; staff use the staff endpoints. Booking for Ada needs a
    # relationship with her, which no staff member here has.
    ("POST", "/v1/appointments/holds"):                  "A   V   V   N   N   N   N   N   N   N   N",
    ("POST", "/v1/appointments/{appointment_id}/confirm"): "A   F   F   N   N   N   N   N   N   N   N",
    ("POST", "/v1/appointments/{appointment_id}/cancel"): "A   F   F   N   N   N   N   N   N   N   N",
    ("POST", "/v1/appointments/{appointment_id}/reschedule"):
                                                         "A   F   F   N   N   N   N   N   N   N   N",
    ("GET", "/v1/appointments/{appointment_id}"):        "A   F   F   F   F   F   F   F   N   F   N",
    ("POST", "/v1/staff/appointments"):                  "A   N   N   N   N   N   N   N   N   N   N",
    ("POST", "/v1/staff/appointments/{appointment_id}/cancel"):
                                                         "A   N   N   F   F   F   F   F   N   F   N",
    ("POST", "/v1/staff/appointments/{appointment_id}/reschedule"):
                                                         "A   N   N   F   F   F   F   F   N   F   N",
    ("POST", "/v1/staff/appointments/{appointment_id}/arrived"):
                                                         "A   N   N   F   F   F   F   F   N   F   N",
    ("POST", "/v1/staff/appointments/{appointment_id}/no-show"):
                                                         "A   N   N   F   F   F   F   F   N   F   N",
    # Reference data: each clinic's administrators (the matrix's work at riverside); the
    # clinician rows name a made-up account. Anyone signed in reads the directory.
    ("PUT", "/v1/admin/clinics/{clinic_id}"):            "A   N   N   N   N   N   N   N   N   Y   N",
    ("POST", "/v1/admin/clinics/{clinic_id}/closures"):  "A   N   N   N   N   N   N   N   N   Y   N",
    ("GET", "/v1/admin/clinics/{clinic_id}/history"):    "A   N   N   N   N   N   N   N   N   Y   N",
    ("PUT", "/v1/admin/rooms/{room_id}"):                "A   N   N   N   N   N   N   N   N   Y   N",
    ("GET", "/v1/admin/rooms/{room_id}/history"):        "A   N   N   N   N   N   N   N   N   Y   N",
    ("PUT", "/v1/admin/consultation-types/{type_id}"):   "A   N   N   N   N   N   N   N   N   Y   N",
    ("GET", "/v1/admin/consultation-types/{type_id}/history"):
                                                         "A   N   N   N   N   N   N   N   N   Y   N",
    ("PUT", "/v1/admin/clinicians/{account_id}"):        "A   N   N   N   N   N   N   N   N   F   N",
    ("PUT", "/v1/admin/clinicians/{account_id}/working-pattern"):
                                                         "A   N   N   N   N   N   N   N   N   F   N",
    ("POST", "/v1/admin/clinicians/{account_id}/leave"): "A   N   N   N   N   N   N   N   N   F   N",
    ("POST", "/v1/admin/clinicians/{account_id}/leave/withdraw"):
                                                         "A   N   N   N   N   N   N   N   N   F   N",
    ("POST", "/v1/admin/clinicians/{account_id}/extra-sessions"):
                                                         "A   N   N   N   N   N   N   N   N   F   N",
    ("GET", "/v1/admin/clinicians/{account_id}/history"): "A   N   N   N   N   N   N   N   N   F   N",
    ("POST", "/v1/admin/schedule-import"):               "A   N   N   N   N   N   N   N   N   V   N",
    ("GET", "/v1/clinics"):                              "A   Y   Y   Y   Y   Y   Y   Y   Y   Y   Y",
    ("GET", "/v1/clinics/{clinic_id}"):                  "A   Y   Y   Y   Y   Y   Y   Y   Y   Y   Y",
    ("GET", "/v1/consultation-types"):                   "A   Y   Y   Y   Y   Y   Y   Y   Y   Y   Y",
    ("GET", "/v1/clinicians"):                           "A   Y   Y   Y   Y   Y   Y   Y   Y   Y   Y",
    ("GET", "/v1/clinicians/{account_id}"):              "A   F   F   F   F   F   F   F   F   F   F",
    # Visits: Ada's own; nobody here is her proxy or in her care team. The appointment is
    # made up (not found, whoever asks). Day lists: the matrix's staff work at riverside;
    # the clinician is made up.
    ("GET", "/v1/me/appointments"):                      "A   Y   Y   N   N   N   N   N   N   N   N",
    ("GET", "/v1/patients/{patient_id}/appointments"):   "A   Y   N   N   N   N   N   N   N   N   N",
    ("GET", "/v1/appointments/{appointment_id}/outstanding"):
                                                         "A   F   F   F   F   F   F   F   F   F   F",
    ("GET", "/v1/staff/day-list"):                       "A   N   N   Y   Y   Y   Y   Y   N   Y   N",
    ("GET", "/v1/staff/clinicians/{account_id}/day-list"):
                                                         "A   N   N   F   F   F   F   F   N   F   N",
    # The waitlist is a patient's own; joining names a last day before the first.
    ("POST", "/v1/me/waitlist"):                         "A   V   V   N   N   N   N   N   N   N   N",
    ("GET", "/v1/me/waitlist"):                          "A   Y   Y   N   N   N   N   N   N   N   N",
    ("DELETE", "/v1/me/waitlist/{entry_id}"):            "A   F   F   N   N   N   N   N   N   N   N",
    ("POST", "/v1/me/waitlist/offers/{entry_id}/accept"): "A   F   F   N   N   N   N   N   N   N   N",
    ("POST", "/v1/me/waitlist/offers/{entry_id}/decline"):
                                                         "A   F   F   N   N   N   N   N   N   N   N",
    # Video consultations: the patient's side from the appointment (made up: not found);
    # the clinician's side for clinical staff, of their own appointments (made up: not found).
    ("GET", "/v1/appointments/{appointment_id}/consultation"):
                                                         "A   F   F   N   N   N   N   N   N   N   N",
    ("POST", "/v1/appointments/{appointment_id}/consultation/join"):
                                                         "A   F   F   N   N   N   N   N   N   N   N",
    ("GET", "/v1/staff/consultations"):                  "A   N   N   Y   Y   N   Y   Y   N   N   N",
    ("GET", "/v1/staff/consultations/{consultation_id}"): "A   N   N   F   F   N   F   F   N   N   N",
    ("POST", "/v1/staff/consultations/{consultation_id}/join"):
                                                         "A   N   N   F   F   N   F   F   N   N   N",
    ("POST", "/v1/staff/consultations/{consultation_id}/end"):
                                                         "A   N   N   F   F   N   F   F   N   N   N",
    ("POST", "/v1/staff/consultations/{consultation_id}/no-show"):
                                                         "A   N   N   F   F   N   F   F   N   N   N",
    ("PUT", "/v1/staff/consultations/{consultation_id}/summary"):
                                                         "A   N   N   F   F   N   F   F   N   N   N",
    # Repeat prescriptions. A patient's own medicines and requests (Ada has none); nobody here
    # is Ada's proxy or in her care team, and the request, patient list entry and medicine are
    # made up. The clinic's queues: its prescribers and coordinators (the matrix's riverside).
    ("GET", "/v1/me/medications"):                       "A   Y   Y   N   N   N   N   N   N   N   N",
    ("GET", "/v1/patients/{patient_id}/medications"):    "A   Y   N   N   N   N   N   N   N   N   N",
    ("POST", "/v1/prescription-requests"):               "A   V   V   N   N   N   N   N   N   N   N",
    ("GET", "/v1/me/prescription-requests"):             "A   Y   Y   N   N   N   N   N   N   N   N",
    ("GET", "/v1/prescription-requests/{request_id}"):   "A   F   F   F   F   N   F   F   N   N   N",
    ("POST", "/v1/prescription-requests/{request_id}/cancel"):
                                                         "A   F   F   N   N   N   N   N   N   N   N",
    ("GET", "/v1/staff/prescription-requests"):          "A   N   N   Y   Y   N   Y   N   N   N   N",
    ("GET", "/v1/staff/prescription-requests/{request_id}"):
                                                         "A   N   N   F   F   N   F   N   N   N   N",
    ("POST", "/v1/staff/prescription-requests/{request_id}/review"):
                                                         "A   N   N   F   F   N   F   N   N   N   N",
    ("POST", "/v1/staff/prescription-requests/{request_id}/approve"):
                                                         "A   N   N   F   F   N   F   N   N   N   N",
    ("POST", "/v1/staff/prescription-requests/{request_id}/reject"):
                                                         "A   N   N   F   F   N   F   N   N   N   N",
    ("POST", "/v1/staff/prescription-requests/{request_id}/escalate"):
                                                         "A   N   N   F   F   N   F   N   N   N   N",
    ("POST", "/v1/staff/prescription-requests/{request_id}/notes"):
                                                         "A   N   N   F   F   N   F   N   N   N   N",
    ("POST", "/v1/staff/prescription-requests/{request_id}/ready"):
                                                         "A   N   N   F   F   N   F   N   N   N   N",
    ("POST", "/v1/staff/prescription-requests/{request_id}/complete"):
                                                         "A   N   N   F   F   N   F   N   N   N   N",
    ("PUT", "/v1/staff/patients/{patient_id}/medications/{medication_id}"):
                                                         "A   N   N   N   N   N   N   N   N   N   N",
    ("POST", "/v1/staff/patients/{patient_id}/medications/{medication_id}/stop"):
                                                         "A   N   N   N   N   N   N   N   N   N   N",
    # A file with a header and nothing else: the administrator gets past access to its check.
    ("POST", "/v1/admin/medication-import"):             "A   N   N   N   N   N   N   N   N   V   N",
    # Uploads (tus): OPTIONS needs no sign-in; patients get past access control to the missing
    # Upload-Length, staff do not upload; the upload in the path is made up.
    ("OPTIONS", "/v1/uploads"):                          "Y   Y   Y   Y   Y   Y   Y   Y   Y   Y   Y",
    ("POST", "/v1/uploads"):                             "A   V   V   N   N   N   N   N   N   N   N",
    ("HEAD", "/v1/uploads/{upload_id}"):                 "A   F   F   F   F   F   F   F   F   F   F",
    ("PATCH", "/v1/uploads/{upload_id}"):                "A   F   F   F   F   F   F   F   F   F   F",
    ("DELETE", "/v1/uploads/{upload_id}"):               "A   F   F   F   F   F   F   F   F   F   F",
    # Documents: Ada's own (none yet); the document in the path is made up. The clinic's
    # reviewers (doctors, nurses, reception at riverside) work its queue.
    ("GET", "/v1/me/documents"):                         "A   Y   Y   N   N   N   N   N   N   N   N",
    ("GET", "/v1/patients/{patient_id}/documents"):      "A   Y   N   N   N   N   N   N   N   N   N",
    ("GET", "/v1/documents/{document_id}"):              "A   F   F   F   F   F   N   N   N   N   N",
    ("GET", "/v1/documents/{document_id}/content"):      "A   F   F   F   F   F   N   N   N   N   N",
    ("GET", "/v1/staff/documents"):                      "A   N   N   Y   Y   Y   N   N   N   N   N",
    ("POST", "/v1/staff/documents/{document_id}/accept"): "A   N   N   F   F   F   N   N   N   N   N",
    ("POST", "/v1/staff/documents/{document_id}/reject"): "A   N   N   F   F   F   N   N   N   N   N",
    ("POST", "/v1/staff/documents/{document_id}/action-required"):
                                                         "A   N   N   F   F   F   N   N   N   N   N",
    ("POST", "/v1/staff/documents/{document_id}/expire"): "A   N   N   F   F   F   N   N   N   N   N",
    ("POST", "/v1/staff/documents/{document_id}/notes"):  "A   N   N   F   F   F   N   N   N   N   N",
    # Pharmacies: anyone signed in finds one; clinic administrators keep the directory; the
    # handoff's dead letters are for prescription coordinators and administrators (the
    # handoff in the path is made up).
    ("GET", "/v1/pharmacies"):                           "A   Y   Y   Y   Y   Y   Y   Y   Y   Y   Y",
    ("PUT", "/v1/admin/pharmacies/{pharmacy_id}"):       "A   N   N   N   N   N   N   N   N   Y   N",
    ("GET", "/v1/staff/pharmacy-handoffs"):              "A   N   N   N   N   N   Y   N   N   Y   N",
    ("POST", "/v1/staff/pharmacy-handoffs/{handoff_id}/retry"):
                                                         "A   N   N   N   N   N   F   N   N   F   N",
    # Intake forms: anyone signed in reads a form; clinic administrators publish versions and
    # say what a consultation type asks for. Answers are the patient's (or an appointments
    # proxy's): the appointment is made up. The pre-consultation view is for clinical staff in
    # the patient's care team (the appointment is made up: not found).
    ("GET", "/v1/forms/{form_id}"):                      "A   Y   Y   Y   Y   Y   Y   Y   Y   Y   Y",
    ("PUT", "/v1/admin/forms/{form_id}"):                "A   N   N   N   N   N   N   N   N   Y   N",
    ("PUT", "/v1/admin/consultation-types/{type_id}/requirements"):
                                                         "A   N   N   N   N   N   N   N   N   Y   N",
    ("GET", "/v1/appointments/{appointment_id}/forms/{form_id}"):
                                                         "A   F   F   N   N   N   N   N   N   N   N",
    ("PUT", "/v1/appointments/{appointment_id}/forms/{form_id}/draft"):
                                                         "A   F   F   N   N   N   N   N   N   N   N",
    ("POST", "/v1/appointments/{appointment_id}/forms/{form_id}/submit"):
                                                         "A   F   F   N   N   N   N   N   N   N   N",
    ("GET", "/v1/staff/appointments/{appointment_id}/pre-consultation"):
                                                         "A   N   N   F   F   N   F   F   N   N   N",
    # Medical records. The patient's record (released records only), care plans and access
    # report: the patient, or a proxy with the records scope; the care team reads them too,
    # and nobody here is in Ada's care team. The record in the path is made up (not found).
    # The clinic's side: the care team's doctors and nurses enter, correct, annotate and
    # release; clinical staff in the care team read. Clinic administrators import.
    ("GET", "/v1/me/records"):                           "A   Y   Y   N   N   N   N   N   N   N   N",
    ("GET", "/v1/patients/{patient_id}/records"):        "A   Y   N   N   N   N   N   N   N   N   N",
    ("GET", "/v1/records/{record_id}"):                  "A   F   F   F   F   N   F   F   N   N   N",
    ("GET", "/v1/me/care-plans"):                        "A   Y   Y   N   N   N   N   N   N   N   N",
    ("GET", "/v1/patients/{patient_id}/care-plans"):     "A   Y   N   N   N   N   N   N   N   N   N",
    ("GET", "/v1/me/record-access"):                     "A   Y   Y   N   N   N   N   N   N   N   N",
    ("GET", "/v1/patients/{patient_id}/record-access"):  "A   Y   N   N   N   N   N   N   N   N   N",
    ("POST", "/v1/staff/patients/{patient_id}/records"): "A   N   N   N   N   N   N   N   N   N   N",
    ("GET", "/v1/staff/patients/{patient_id}/records"):  "A   N   N   N   N   N   N   N   N   N   N",
    ("GET", "/v1/staff/records/{record_id}"):            "A   N   N   F   F   N   F   F   N   N   N",
    ("PUT", "/v1/staff/records/{record_id}"):            "A   N   N   F   F   N   N   N   N   N   N",
    ("POST", "/v1/staff/records/{record_id}/release"):   "A   N   N   F   F   N   N   N   N   N   N",
    ("POST", "/v1/staff/records/{record_id}/notes"):     "A   N   N   F   F   N   N   N   N   N   N",
    ("POST", "/v1/staff/records/{record_id}/entered-in-error"):
                                                         "A   N   N   F   F   N   N   N   N   N   N",
    ("GET", "/v1/staff/clinics/{clinic_id}/records-to-release"):
                                                         "A   N   N   Y   Y   N   N   N   N   N   N",
    ("POST", "/v1/admin/record-import"):                 "A   N   N   N   N   N   N   N   N   Y   N",
    # Messaging. Anyone signed in reads the categories. A patient (or a messaging proxy) starts
    # and reads their conversations; the clinic's teams (reception, nurses and doctors,
    # prescription coordinators, support) work their queues; the care team may take part. The
    # thread in the path is made up (not found). Clinic administrators set the routing.
    ("GET", "/v1/message-categories"):                   "A   Y   Y   Y   Y   Y   Y   Y   Y   Y   Y",
    ("POST", "/v1/message-threads"):                     "A   Y   Y   N   N   N   N   N   N   N   N",
    ("GET", "/v1/me/message-threads"):                   "A   Y   Y   N   N   N   N   N   N   N   N",
    ("GET", "/v1/patients/{patient_id}/message-threads"): "A   Y   N   N   N   N   N   N   N   N   N",
    ("GET", "/v1/message-threads/{thread_id}"):          "A   F   F   F   F   N   F   F   N   N   N",
    ("POST", "/v1/message-threads/{thread_id}/messages"): "A   F   F   F   F   F   F   F   F   N   N",
    ("POST", "/v1/message-threads/{thread_id}/close"):   "A   F   F   F   F   F   F   F   F   N   N",
    ("POST", "/v1/message-threads/{thread_id}/reopen"):  "A   F   F   F   F   F   F   F   F   N   N",
    ("GET", "/v1/staff/message-threads"):                "A   N   N   Y   Y   Y   Y   N   Y   N   N",
    ("GET", "/v1/staff/message-threads/{thread_id}"):    "A   N   N   F   F   F   F   F   F   N   N",
    ("POST", "/v1/staff/message-threads/{thread_id}/messages"):
                                                         "A   F   F   F   F   F   F   F   F   N   N",
    ("POST", "/v1/staff/message-threads/{thread_id}/notes"):
                                                         "A   N   N   F   F   F   F   F   F   N   N",
    ("POST", "/v1/staff/message-threads/{thread_id}/reassign"):
                                                         "A   N   N   F   F   F   F   F   F   N   N",
    ("POST", "/v1/staff/message-threads/{thread_id}/close"):
                                                         "A   F   F   F   F   F   F   F   F   N   N",
    ("GET", "/v1/admin/clinics/{clinic_id}/message-routes"):
                                                         "A   N   N   N   N   N   N   N   N   Y   N",
    ("PUT", "/v1/admin/clinics/{clinic_id}/message-routes"):
                                                         "A   N   N   N   N   N   N   N   N   Y   N",
    # Emergency location sharing: the patient (or a messaging proxy) shares, giving the
    # data-sharing consent in the same step; the clinic's on-call clinicians (doctors, nurses,
    # care managers) watch and close. The share in the path is made up (not found).
    ("POST", "/v1/emergency-shares"):                    "A   Y   Y   N   N   N   N   N   N   N   N",
    ("GET", "/v1/emergency-shares/{share_id}"):          "A   F   F   N   N   N   N   N   N   N   N",
    ("POST", "/v1/emergency-shares/{share_id}/extend"):  "A   F   F   N   N   N   N   N   N   N   N",
    ("POST", "/v1/emergency-shares/{share_id}/stop"):    "A   F   F   N   N   N   N   N   N   N   N",
    ("GET", "/v1/staff/emergency-shares"):               "A   N   N   Y   Y   N   N   Y   N   N   N",
    ("GET", "/v1/staff/emergency-shares/{share_id}"):    "A   N   N   F   F   N   N   F   N   N   N",
    ("POST", "/v1/staff/emergency-shares/{share_id}/close"):
                                                         "A   N   N   F   F   N   N   F   N   N   N",
    # Notification delivery: anyone signed in registers their own devices for push; clinic
    # administrators and support see failed deliveries and retry them (made up: not found).
    ("PUT", "/v1/me/push-devices/{device_id}"):          "A   Y   Y   Y   Y   Y   Y   Y   Y   Y   Y",
    ("DELETE", "/v1/me/push-devices/{device_id}"):       "A   Y   Y   Y   Y   Y   Y   Y   Y   Y   Y",
    ("GET", "/v1/admin/notifications/failed"):           "A   N   N   N   N   N   N   N   Y   Y   N",
    ("POST", "/v1/admin/notifications/{message_id}/retry"):
                                                         "A   N   N   N   N   N   N   N   F   F   N",
    # Auditors only: the audit trail (clinical content, secrets redacted) and FHIR AuditEvents.
    # The stream in the path is made up (not found).
    ("GET", "/v1/audit/patients/{patient_id}/trail"):    "A   N   N   N   N   N   N   N   N   N   Y",
    ("GET", "/v1/audit/patients/{patient_id}/seen"):     "A   N   N   N   N   N   N   N   N   N   Y",
    ("GET", "/v1/audit/actors/{actor_ref}/trail"):       "A   N   N   N   N   N   N   N   N   N   Y",
    ("GET", "/v1/audit/streams/{aggregate_id}"):         "A   N   N   N   N   N   N   N   N   N   F",
    ("GET", "/fhir/AuditEvent"):                         "A   N   N   N   N   N   N   N   N   N   Y",
    # Integration with clinic systems: clinic administrators keep patients' identifiers, match
    # incoming records, work the review queue, and subscribe their systems to webhooks (the
    # review and delivery in the path are made up: not found).
    ("PUT", "/v1/admin/patients/{patient_id}/identifiers"):
                                                         "A   N   N   N   N   N   N   N   N   Y   N",
    ("GET", "/v1/admin/patients/{patient_id}/identifiers"):
                                                         "A   N   N   N   N   N   N   N   N   Y   N",
    ("POST", "/v1/admin/identifier-matches"):
                                                         "A   N   N   N   N   N   N   N   N   Y   N",
    ("GET", "/v1/admin/identifier-reviews"):
                                                         "A   N   N   N   N   N   N   N   N   Y   N",
    ("POST", "/v1/admin/identifier-reviews/{review_id}/confirm"):
                                                         "A   N   N   N   N   N   N   N   N   F   N",
    ("POST", "/v1/admin/identifier-reviews/{review_id}/reject"):
                                                         "A   N   N   N   N   N   N   N   N   F   N",
    ("PUT", "/v1/admin/clinics/{clinic_id}/webhooks/{subscription_id}"):
                                                         "A   N   N   N   N   N   N   N   N   Y   N",
    ("GET", "/v1/admin/clinics/{clinic_id}/webhooks/{subscription_id}"):
                                                         "A   N   N   N   N   N   N   N   N   Y   N",
    ("DELETE", "/v1/admin/clinics/{clinic_id}/webhooks/{subscription_id}"):
                                                         "A   N   N   N   N   N   N   N   N   Y   N",
    ("GET", "/v1/admin/webhook-deliveries"):
                                                         "A   N   N   N   N   N   N   N   N   Y   N",
    ("POST", "/v1/admin/webhook-deliveries/{delivery_id}/retry"):
                                                         "A   N   N   N   N   N   N   N   N   F   N",
    # The pre-call check: anyone signed in. The offer sent is not SDP; the check is made up.
    ("GET", "/v1/connection-checks/ice-servers"):        "A   Y   Y   Y   Y   Y   Y   Y   Y   Y   Y",
    ("POST", "/v1/connection-checks"):                   "A   V   V   V   V   V   V   V   V   V   V",
    ("POST", "/v1/connection-checks/{check_id}/result"): "A   F   F   F   F   F   F   F   F   F   F",
    # FHIR R4 (issue #10): the same policy as the JSON API. Searches of a patient's care name
    # Ada (patient=Patient/<id>); no staff member here has a relationship with her. The
    # CapabilityStatement is public, as FHIR clients expect.
    ("GET", "/fhir/metadata"):                           "Y   Y   Y   Y   Y   Y   Y   Y   Y   Y   Y",
    ("GET", "/fhir/Patient"):                            "A   Y   N   N   N   N   N   N   N   N   N",
    ("GET", "/fhir/Patient/{patient_id}"):               "A   Y   N   N   N   N   N   N   N   N   N",
    ("GET", "/fhir/Practitioner"):                       "A   Y   Y   Y   Y   Y   Y   Y   Y   Y   Y",
    ("GET", "/fhir/Practitioner/{account_id}"):          "A   F   F   F   F   F   F   F   F   F   F",
    ("GET", "/fhir/Schedule"):                           "A   Y   Y   Y   Y   Y   Y   Y   Y   Y   Y",
    ("GET", "/fhir/Schedule/{account_id}"):              "A   F   F   F   F   F   F   F   F   F   F",
    ("GET", "/fhir/Slot"):                               "A   Y   Y   Y   Y   Y   Y   Y   Y   Y   Y",
    ("GET", "/fhir/Slot/{slot_id}"):                     "A   F   F   F   F   F   F   F   F   F   F",
    ("GET", "/fhir/Appointment"):                        "A   Y   N   N   N   N   N   N   N   N   N",
    ("GET", "/fhir/Appointment/{appointment_id}"):       "A   F   F   F   F   F   F   F   N   F   N",
    ("GET", "/fhir/Consent"):                            "A   Y   N   N   N   N   N   N   N   N   N",
    ("GET", "/fhir/Consent/{consent_id}"):               "A   F   F   F   F   N   F   F   N   F   N",
    ("GET", "/fhir/MedicationRequest"):                  "A   Y   N   N   N   N   N   N   N   N   N",
    ("GET", "/fhir/MedicationRequest/{medication_request_id}"):
                                                         "A   F   F   F   F   N   F   F   N   N   N",
    ("GET", "/fhir/DocumentReference"):                  "A   Y   N   N   N   N   N   N   N   N   N",
    ("GET", "/fhir/DocumentReference/{document_id}"):    "A   F   F   F   F   N   F   F   N   N   N",
    ("GET", "/fhir/Communication"):                      "A   Y   N   N   N   N   N   N   N   N   N",
    ("GET", "/fhir/Communication/{message_id}"):         "A   F   F   F   F   N   F   F   N   N   N",
    ("GET", "/fhir/QuestionnaireResponse"):              "A   Y   N   N   N   N   N   N   N   N   N",
    ("GET", "/fhir/QuestionnaireResponse/{response_id}"):
                                                         "A   F   F   F   F   N   F   F   N   N   N",
}
METHODS = ("get", "put", "post", "patch", "delete", "head", "options", "trace")


def schema_operations(client: Any) -> set[tuple[str, str]]:
    return {(method.upper(), path)
            for path, item in (client.app.openapi_schema.paths or {}).items()
            for method in METHODS if getattr(item, method, None) is not None}


# Rows whose call ends sessions run last, each on a session of its own, so that every other
# row uses the caller's standing session.
ENDS_SESSION = {("POST", "/v1/auth/logout"), ("POST", "/v1/me/sessions/sign-out-everywhere")}
STAFF_PASSWORD = "staff passphrase 2026"  # the `staff_member` fixture's


def log_in(client: Any, email: str, password: str) -> dict[str, Any]:
    response = client.post("/v1/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    return response.json()


NOBODYS_PASSKEY = "00000000-0000-4000-8000-00000000e1e1"
FHIR_CARE_SEARCHES = ("Appointment", "Consent", "MedicationRequest", "DocumentReference",
                      "Communication", "QuestionnaireResponse")
NOBODYS_ID = "00000000-0000-4000-8000-0000000000e2"  # no care relationship, grant or access
REFERENCE_IDS = {"clinic_id": "riverside", "room_id": "riverside-room-1",
                 "type_id": "gp-in-person", "account_id": NOBODYS_ID}
MADE_UP_PASSKEY = {"id": "bWFkZS11cC1wYXNza2V5", "rawId": "bWFkZS11cC1wYXNza2V5",
                   "type": "public-key", "response": {"clientDataJSON": "e30",
                                                      "authenticatorData": "AA", "signature": "AA"}}


class Requests:
    """A valid request for each endpoint, so that only the caller decides the answer."""

    def __init__(self, client: Any, login_email: str, patient_id: str) -> None:
        self.client, self.login_email, self.patient_id = client, login_email, patient_id
        self.serial = itertools.count(1)

    def path(self, template: str) -> str:
        consent_type = "data_sharing" if "/staff/consent-texts/" in template else "telemedicine"
        query = "?clinic_id=riverside" if template == "/v1/me/features" else ""
        query = {"/v1/staff/day-list": "?clinic_id=riverside&date=2026-11-23",
                 "/v1/staff/clinicians/{account_id}/day-list": "?date=2026-11-23",
                 "/v1/staff/prescription-requests": "?clinic_id=riverside",
                 "/v1/staff/documents": "?clinic_id=riverside",
                 "/v1/staff/message-threads": "?clinic_id=riverside",
                 "/v1/staff/emergency-shares": "?clinic_id=riverside",
                 "/v1/audit/patients/{patient_id}/seen": "?day=2026-11-23"}.get(
                     template, query)
        if template.startswith("/fhir/") and "{" not in template:
            query = {"/fhir/Patient": f"?_id={self.patient_id}",
                     "/fhir/AuditEvent": "?agent=system"}.get(
                template, f"?patient=Patient/{self.patient_id}" if template.removeprefix(
                    "/fhir/") in FHIR_CARE_SEARCHES else "")
        return template.format(consent_type=consent_type, patient_id=self.patient_id,
                               feature="telemedicine", passkey_id=NOBODYS_PASSKEY,
                               relationship_id=NOBODYS_ID, grant_id=NOBODYS_ID,
                               access_id=NOBODYS_ID, appointment_id=NOBODYS_ID,
                               consultation_id=NOBODYS_ID, check_id=NOBODYS_ID,
                               request_id=NOBODYS_ID, medication_id="amlodipine",
                               pharmacy_id="high-street", handoff_id=NOBODYS_ID,
                               document_id=NOBODYS_ID, upload_id=NOBODYS_ID,
                               record_id=NOBODYS_ID, thread_id=NOBODYS_ID,
                               share_id=NOBODYS_ID, message_id=NOBODYS_ID,
                               actor_ref="system", aggregate_id=NOBODYS_ID,
                               review_id=NOBODYS_ID, delivery_id=NOBODYS_ID,
                               subscription_id="emis",
                               form_id="pre-consultation",
                               device_id="a-device", entry_id=NOBODYS_ID,
                               feed_file="a-made-up-feed-token-nobody-holds.ics",
                               consent_id=NOBODYS_ID, response_id=NOBODYS_ID,
                               medication_request_id=f"{NOBODYS_ID}-1",
                               slot_id=f"{UUID(NOBODYS_ID).hex}-202611300900",
                               **REFERENCE_IDS) + query

    def body(self, method: str, template: str) -> dict[str, Any] | None:
        if method not in ("POST", "PUT"):
            return None
        n = next(self.serial)
        if template == "/v1/auth/refresh":
            return {"refresh_token": log_in(self.client, self.login_email, PASSWORD)["refresh_token"]}
        return {
            "/v1/auth/register": {"email": f"new.{n}@patients.test", "password": PASSWORD,
                                  "given_name": "New", "family_name": "Patient",
                                  "date_of_birth": "1980-01-01"},
            "/v1/auth/login": {"email": self.login_email, "password": PASSWORD},
            # A made-up challenge: refused whoever sends it.
            "/v1/auth/second-factor": {"challenge_token": "made-up", "code": "123456"},
            "/v1/auth/second-factor/code": {"challenge_token": "made-up"},
            "/v1/auth/verify-email": {"token": f"{NOBODYS_ID}.made-up-secret"},
            "/v1/auth/password-reset": {"email": self.login_email},
            "/v1/auth/password-reset/complete": {"token": f"{NOBODYS_ID}.made-up-secret",
                                                 "new_password": "a long new passphrase"},
            "/v1/me/step-up/code": {"channel": "email"},
            "/v1/me/step-up": {"code": "abcdef"},
            "/v1/me/password": {"current_password": "not the password",
                                "new_password": "a long new passphrase"},
            # Never a valid authenticator code (not digits): the caller gets past access control
            # to the input check.
            "/v1/me/second-factor/totp/confirm": {"code": "abcdef"},
            # Made-up options tokens (refused whoever sends them) with well-formed answers.
            "/v1/me/passkeys": {"options_token": "made-up", "label": "Phone",
                                "credential": MADE_UP_PASSKEY | {"response": {
                                    "clientDataJSON": "e30", "attestationObject": "oA"}}},
            "/v1/me/passkeys/{passkey_id}/rename": {"label": "   "},
            "/v1/auth/passkey": {"options_token": "made-up", "credential": MADE_UP_PASSKEY},
            "/v1/me/step-up/passkey": {"options_token": "made-up", "credential": MADE_UP_PASSKEY},
            "/v1/me/consents": {"consent_type": "telemedicine", "text_version": CURRENT_VERSION},
            "/v1/me/consents/{consent_type}/withdraw": {"reason": None},
            # A made-up clinician, and a reason too short for emergency access: callers who
            # get past access control reach the input checks, and nothing is opened.
            "/v1/staff/patients/{patient_id}/care-team": {
                "clinician_id": NOBODYS_ID, "clinic_id": "riverside", "basis": "assignment",
                "ends_at": "2027-01-31T00:00:00Z"},
            "/v1/staff/patients/{patient_id}/care-team/{relationship_id}/end": {
                "reason": "no longer needed"},
            "/v1/staff/patients/{patient_id}/parental-responsibility": {
                "parent_account_id": NOBODYS_ID},
            "/v1/staff/patients/{patient_id}/break-glass": {"reason": "too short"},
            "/v1/staff/break-glass/{access_id}/review": {"outcome": "appropriate"},
            "/v1/me/proxies": {"email": f"carer.{n}@patients.test", "kind": "carer",
                               "scopes": ["appointments"]},
            "/v1/me/proxies/{grant_id}/scopes": {"scopes": ["appointments"]},
            "/v1/admin/clinics/{clinic_id}": {
                "name": "Riverside Health Centre", "address_lines": ["1 River Street"],
                "town": "Bristol", "postcode": "BS1 1AA", "timezone": "Europe/London"},
            "/v1/admin/clinics/{clinic_id}/closures": {"days": ["2026-12-25"],
                                                       "reason": "Christmas Day"},
            "/v1/admin/rooms/{room_id}": {"clinic_id": "riverside", "kind": "consulting",
                                          "name": "Room 1"},
            "/v1/admin/consultation-types/{type_id}": {
                "name": "GP appointment", "mode": "in_person", "duration_minutes": 15,
                "room_kind": "consulting"},
            "/v1/admin/clinicians/{account_id}": {
                "display_name": "Dr Nobody", "specialty": "general practice",
                "languages": ["en"], "clinic_ids": ["riverside"],
                "consultation_type_ids": ["gp-in-person"]},
            "/v1/admin/clinicians/{account_id}/working-pattern": {"valid_from": "2026-11-30",
                                                                  "sessions": []},
            "/v1/admin/clinicians/{account_id}/leave": {"first_day": "2026-12-01",
                                                        "last_day": "2026-12-02"},
            "/v1/admin/clinicians/{account_id}/leave/withdraw": {"first_day": "2026-12-01",
                                                                 "last_day": "2026-12-02"},
            "/v1/admin/clinicians/{account_id}/extra-sessions": {
                "day": "2026-12-05", "starts": "09:00", "ends": "12:00",
                "clinic_id": "riverside", "slot_minutes": 15,
                "consultation_type_ids": ["gp-in-person"]},
            # A clinician nobody knows: the administrator gets past access control to the rows.
            "/v1/admin/schedule-import": {"csv": "clinician,clinic,weekday,start,end,"
                                          "slot_minutes,consultation_types,valid_from,"
                                          "valid_until\nnobody@clinic.test,riverside,monday,"
                                          "09:00,12:00,15,gp-in-person,2026-11-30,\n"},
            "/v1/appointments/holds": {"clinician_id": NOBODYS_ID,
                                       "consultation_type_id": "gp-in-person",
                                       "starts_at": "2027-01-04T09:00:00Z"},
            "/v1/appointments/{appointment_id}/cancel": {"reason_code": "cannot_attend"},
            "/v1/staff/consultations/{consultation_id}/end": {"outcome": "completed"},
            "/v1/connection-checks": {"offer_sdp": "not an offer"},
            "/v1/staff/documents/{document_id}/reject": {"reason_code": "unreadable_image"},
            "/v1/staff/documents/{document_id}/action-required": {"note": "Upload page 2 too"},
            "/v1/staff/documents/{document_id}/notes": {"note": "Called the patient"},
            "/v1/staff/patients/{patient_id}/records": {
                "kind": "lab_result", "code": "hba1c", "clinic_id": "riverside",
                "content": {"observations": [{"name": "HbA1c", "value": 40,
                                              "unit": "mmol/mol"}]}},
            "/v1/staff/records/{record_id}": {"content": {"observations": [
                {"name": "HbA1c", "value": 41, "unit": "mmol/mol"}]}, "reason": "Corrected."},
            "/v1/staff/records/{record_id}/notes": {"note": "Called the laboratory"},
            "/v1/staff/records/{record_id}/entered-in-error": {"reason": "Wrong patient"},
            "/v1/emergency-shares": {"clinic_id": "riverside"},
            "/v1/me/push-devices/{device_id}": {"platform": "fcm",
                                                "token": "made-up-push-token-0001"},
            "/v1/staff/emergency-shares/{share_id}/close": {"outcome": "patient_safe"},
            "/v1/message-threads": {"category": "general", "subject": "Parking",
                                    "body": "Is there parking?", "clinic_id": "riverside"},
            "/v1/message-threads/{thread_id}/messages": {"body": "Thank you"},
            "/v1/staff/message-threads/{thread_id}/messages": {"body": "You are welcome"},
            "/v1/staff/message-threads/{thread_id}/notes": {"note": "Called her"},
            "/v1/staff/message-threads/{thread_id}/reassign": {"team": "nurses"},
            "/v1/admin/clinics/{clinic_id}/message-routes": {"general": {"team": "reception"}},
            "/v1/admin/patients/{patient_id}/identifiers": {
                "identifiers": {"riverside-emis": f"R{n}"}},
            "/v1/admin/identifier-matches": {"system": "riverside-emis", "identifiers": {},
                                             "family_name": "Nobody",
                                             "date_of_birth": "1990-01-01"},
            "/v1/admin/clinics/{clinic_id}/webhooks/{subscription_id}": {
                "url": "https://ehr.riverside.example/carebridge",
                "event_types": ["appointment.booked"]},
            "/v1/admin/record-import": {"clinic_id": "riverside", "bundle": {
                "resourceType": "Bundle", "type": "collection", "entry": []}},
            "/v1/admin/medication-import": {"clinic_id": "riverside", "format": "csv",
                                            "content": "patient_id,medication_id\n"},
            "/v1/admin/pharmacies/{pharmacy_id}": {
                "name": "High Street Pharmacy", "address": "1 High Street, Bristol",
                "postcode": "BS1 4DJ", "phone": "0117 496 0000", "channel": "file",
                "endpoint": "high-street"},
            "/v1/prescription-requests": {
                "clinic_id": "riverside", "fulfilment": "collection",
                "items": [{"medication_id": "amlodipine", "dosage_confirmed": True}]},
            "/v1/staff/prescription-requests/{request_id}/reject": {
                "reason_code": "needs_review", "explanation": "Please book a review first."},
            "/v1/staff/prescription-requests/{request_id}/escalate": {"note": "Needs review"},
            "/v1/staff/prescription-requests/{request_id}/notes": {"note": "Called the patient"},
            "/v1/staff/patients/{patient_id}/medications/{medication_id}": {
                "name": "Amlodipine 5 mg tablets", "dose": "One a day", "quantity": "28 tablets",
                "issues_remaining": 3, "needs_review": False, "controlled": False},
            "/v1/connection-checks/{check_id}/result": {
                "camera": "granted", "microphone": "granted", "rtc_supported": True,
                "received_audio": True, "received_video": True, "data_channel_echoes": 0},
            "/v1/staff/consultations/{consultation_id}/summary": {
                "follow_up_instructions": "Rest and drink plenty.", "internal_notes": ""},
            "/v1/admin/forms/{form_id}": {
                "resourceType": "Questionnaire", "title": f"Before your visit ({n})", "item": [
                    {"linkId": "reason", "type": "text", "text": "Why are you coming?"}]},
            "/v1/admin/consultation-types/{type_id}/requirements": {"forms": [], "uploads": []},
            "/v1/appointments/{appointment_id}/forms/{form_id}/draft": {
                "resourceType": "QuestionnaireResponse", "item": []},
            "/v1/appointments/{appointment_id}/forms/{form_id}/submit": {
                "resourceType": "QuestionnaireResponse", "item": []},
            "/v1/me/waitlist": {"clinic_id": "riverside", "consultation_type_id": "gp-in-person",
                                "date_from": "2026-11-30", "date_to": "2026-11-01"},
            "/v1/appointments/{appointment_id}/reschedule": {"starts_at": "2027-01-04T09:00:00Z"},
            "/v1/staff/appointments": {"patient_id": self.patient_id, "clinician_id": NOBODYS_ID,
                                       "consultation_type_id": "gp-in-person",
                                       "starts_at": "2027-01-04T09:00:00Z"},
            "/v1/staff/appointments/{appointment_id}/cancel": {
                "reason_code": "clinic_closed", "note_for_patient": None},
            "/v1/staff/appointments/{appointment_id}/reschedule": {
                "starts_at": "2027-01-04T09:00:00Z", "reason": "Dr Patel is on a course"},
            "/v1/staff/consent-texts/{consent_type}": {
                "version": f"2027-{n:02d}", "text": "A new wording of the data sharing consent."},
            "/v1/me/profile/contact": {"mobile_phone": "+44 7700 900123"},
            "/v1/me/profile/emergency-contact": {"name": "Ann", "relationship": "daughter",
                                                 "phone": "+44 7700 900456"},
            "/v1/me/profile/preferred-clinic": {"clinic_id": "riverside"},
            "/v1/me/profile/communication": {"channels": ["sms"], "language": "en"},
            "/v1/me/profile/accessibility": {"larger_text": True},
            # The matrix's staff work at riverside, so its administrator may change these.
            "/v1/admin/feature-flags/{feature}/rules": {
                "clinic_id": "riverside", "service_type": "video", "percentage": n % 100,
                "patient_ids": [], "reason": "staged rollout"},
            "/v1/admin/feature-flags/{feature}/rules/remove": {
                "clinic_id": "riverside", "service_type": "video", "reason": "pilot over"},
        }.get(template, {})

    def headers(self, caller: dict[str, str], operation: tuple[str, str]) -> dict[str, str]:
        # tus answers 412 to any request without its protocol version.
        tus = {"Tus-Resumable": "1.0.0"} if operation[1].startswith("/v1/uploads") else {}
        if not caller:
            return tus
        if operation in ENDS_SESSION:
            token = log_in(self.client, caller["email"], caller["password"])["access_token"]
            return {"Authorization": f"Bearer {token}"} | tus
        return auth(caller) | tus


@pytest.fixture
def callers(client, container, clock, sign_up, staff_member) -> dict[str, dict[str, str]]:
    people = {"anonymous": {}, "patient_own": sign_up(), "patient_other": sign_up(given_name="Bob")}
    for patient in ("patient_own", "patient_other"):
        people[patient]["password"] = PASSWORD
        assert give(client, people[patient]).status_code == 201  # so that withdrawing is possible
        assert give(client, people[patient], "data_sharing").status_code == 201  # to share
    for role in STAFF:
        member = staff_member(role)
        email = container.identity.find_account(UUID(member["account_id"])).email
        people[role] = member | {"email": email, "password": STAFF_PASSWORD}
    clock.now += timedelta(minutes=1)  # past the pause after the registration email
    messaging_on(client)  # so that starting a conversation is decided by the caller alone
    sharing_on(client)  # and starting an emergency share
    return people


def assert_operation_outcome(response: Any, status: int) -> None:
    """The FHIR API's errors are OperationOutcome resources, not problem documents."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/fhir+json"), response.headers
    assert response.json()["resourceType"] == "OperationOutcome", response.text


def status_class(status: int) -> Any:
    return OK if 200 <= status < 300 else status


def test_every_endpoint_has_a_row(client):
    operations = schema_operations(client)
    assert operations, "the OpenAPI schema lists no endpoints"
    without_a_row = sorted(operations - MATRIX.keys())
    assert not without_a_row, f"decide who may call these, and add their rows: {without_a_row}"
    stale = sorted(MATRIX.keys() - operations)
    assert not stale, f"rows for endpoints that no longer exist: {stale}"


def test_every_caller_gets_exactly_the_access_the_table_gives(client, callers, sign_up):
    requests = Requests(client, login_email=sign_up()["email"],
                        patient_id=callers["patient_own"]["account_id"])
    unexpected_allows, other_differences = [], []
    for (method, template), row in sorted(MATRIX.items(), key=lambda item: item[0] in ENDS_SESSION):
        codes = row.split()
        assert len(codes) == len(CALLERS), f"{method} {template}: one column per caller"
        for caller, expected in zip(CALLERS, map(CODES.__getitem__, codes), strict=True):
            headers = requests.headers(callers[caller], (method, template))
            response = client.request(method, requests.path(template), headers=headers,
                                      json=requests.body(method, template))
            actual = status_class(response.status_code)
            if actual != OK and method != "HEAD" and template.startswith("/fhir/"):
                assert_operation_outcome(response, response.status_code)
            elif actual != OK and method != "HEAD":  # a HEAD answer has no body
                assert_problem(response, response.status_code)
            if actual == expected:
                continue
            line = f"{caller:>24} {method} {template}: expected {expected}, got {response.status_code}"
            (unexpected_allows if actual == OK else other_differences).append(line)
    assert not unexpected_allows + other_differences, (
        "unexpected allows:\n" + "\n".join(unexpected_allows)
        + "\nother differences:\n" + "\n".join(other_differences))
