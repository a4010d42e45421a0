"""The simulated phones of `bench.load` (a locust file; run by bench/load.py, not directly).

Each simulated phone serves a few seeded patients in turn (one at a time, as the app of one
person opened now and then) and makes requests at a fixed rate, so that all phones together
offer `rate` requests per second. The mix, per 1,000 requests (about 80% reads, 20% writes):

    reads   availability search 150, my appointments 170, my records 130, one record 40,
            my conversations 90, one conversation 50, my prescription requests 60,
            my medicines 50, my account 60
    writes  refresh the session (how the app signs in when it opens) 29, sign in with a
            password 1, hold + confirm a booking 2 x 35, cancel a booking 20, reply in a
            conversation 40, start a conversation 10, ask for a repeat prescription 15,
            cancel a prescription request 15

A 409 is the right answer to some writes under this traffic (a slot someone else has just
taken, a medicine already requested), so it counts as a success; any other 4xx or 5xx is a
failure.
"""

from __future__ import annotations

import json
import os
import random
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from locust import constant_throughput, task
from locust.contrib.fasthttp import FastHttpUser

DATA = json.loads(open(os.environ["CAREBRIDGE_LOAD_DATA"]).read())  # noqa: SIM115
PATIENTS: list[dict[str, Any]] = DATA["patients"]
FIRST_SLOT = datetime.fromisoformat(DATA["first_slot"])
_next_phone = iter(range(10**9))


class Phone(FastHttpUser):
    pace = constant_throughput(DATA["rate"] / DATA["users"])
    connection_timeout = 10.0
    network_timeout = 30.0

    def on_start(self) -> None:
        index = next(_next_phone)
        # This phone's patients: every users-th one, so no two phones share a session.
        self.mine = [p | {"appointments": [], "requests": []}
                     for p in PATIENTS[index % DATA["users"]::DATA["users"]]] or [PATIENTS[0]]
        self.opened = 0
        self.patient = self.mine[0]

    def wait_time(self) -> float:
        # Between two requests: every 25 requests, another of this phone's patients opens the app.
        self.opened += 1
        if self.opened % 25 == 0:
            self.patient = self.mine[(self.opened // 25) % len(self.mine)]
        return float(self.pace())

    def _headers(self, key: bool = False) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.patient['token']}"}
        if key:
            headers["Idempotency-Key"] = str(uuid.uuid4())
        return headers

    def _get(self, path: str, name: str) -> None:
        with self.client.get(path, headers=self._headers(), name=name,
                             catch_response=True) as response:
            if response.status_code >= 400:
                response.failure(f"{response.status_code} {(response.text or '')[:160]}")

    def _post(self, path: str, name: str, body: Any, allowed: tuple[int, ...] = (),
              then: Callable[[Any], None] | None = None) -> Any:
        with self.client.post(path, json=body, headers=self._headers(key=True), name=name,
                              catch_response=True) as response:
            if response.status_code in allowed:
                response.success()
            elif response.status_code >= 400:
                response.failure(f"{response.status_code} {(response.text or '')[:160]}")
            elif response.status_code < 300 and then is not None:
                then(response.json())
            return response

    # Reads ------------------------------------------------------------------------------------

    @task(150)
    def search_availability(self) -> None:
        day = (FIRST_SLOT + timedelta(days=random.randrange(60))).date().isoformat()
        self._get(f"/v1/availability?consultation_type_id={DATA['type_id']}&date_from={day}"
                  "&limit=12", "/v1/availability")

    @task(170)
    def my_appointments(self) -> None:
        self._get("/v1/me/appointments", "/v1/me/appointments")

    @task(130)
    def my_records(self) -> None:
        self._get("/v1/me/records", "/v1/me/records")

    @task(40)
    def one_record(self) -> None:
        self._get(f"/v1/records/{random.choice(self.patient['records'])}", "/v1/records/{id}")

    @task(90)
    def my_conversations(self) -> None:
        self._get("/v1/me/message-threads", "/v1/me/message-threads")

    @task(50)
    def one_conversation(self) -> None:
        self._get(f"/v1/message-threads/{self.patient['thread_id']}", "/v1/message-threads/{id}")

    @task(60)
    def my_prescription_requests(self) -> None:
        self._get("/v1/me/prescription-requests", "/v1/me/prescription-requests")

    @task(50)
    def my_medicines(self) -> None:
        self._get("/v1/me/medications", "/v1/me/medications")

    @task(60)
    def my_account(self) -> None:
        self._get("/v1/me", "/v1/me")

    # Writes -----------------------------------------------------------------------------------

    @task(29)
    def refresh(self) -> None:
        patient = self.patient
        with self.client.post("/v1/auth/refresh", json={"refresh_token": patient["refresh_token"]},
                              name="/v1/auth/refresh", catch_response=True) as response:
            if response.status_code >= 400:
                response.failure(f"{response.status_code} {(response.text or '')[:160]}")
            else:
                body = response.json()
                patient["token"], patient["refresh_token"] = (body["access_token"],
                                                              body["refresh_token"])

    @task(1)
    def sign_in(self) -> None:
        patient = random.choice([p for p in PATIENTS if p["password_login"]])
        self.client.post("/v1/auth/login", json={
            "email": patient["email"], "password": DATA["password"], "device_id": "load-phone",
            "device_label": "Load phone"}, name="/v1/auth/login")

    @task(35)
    def book(self) -> None:
        starts = FIRST_SLOT + timedelta(days=random.randrange(70),
                                        minutes=10 * random.randrange(72))
        patient = self.patient

        def confirm(held: dict[str, Any]) -> None:
            self._post(f"/v1/appointments/{held['appointment_id']}/confirm",
                       "/v1/appointments/{id}/confirm", None, allowed=(409,))
            patient["appointments"].append(held["appointment_id"])

        self._post("/v1/appointments/holds", "/v1/appointments/holds", {
            "clinician_id": random.choice(DATA["clinicians"]),
            "consultation_type_id": DATA["type_id"], "starts_at": starts.isoformat()},
            allowed=(409,), then=confirm)

    @task(20)
    def cancel_booking(self) -> None:
        if not self.patient["appointments"]:
            return self.my_appointments()
        appointment = self.patient["appointments"].pop(0)
        self._post(f"/v1/appointments/{appointment}/cancel", "/v1/appointments/{id}/cancel",
                   {"reason_code": "cannot_attend"}, allowed=(409,))
        return None

    @task(40)
    def reply(self) -> None:
        self._post(f"/v1/message-threads/{self.patient['thread_id']}/messages",
                   "/v1/message-threads/{id}/messages",
                   {"body": "Thank you, that helps. Could I also ask about parking?"})

    @task(10)
    def start_conversation(self) -> None:
        self._post("/v1/message-threads", "/v1/message-threads", {
            "category": "general", "subject": "Opening hours", "clinic_id": DATA["clinic_id"],
            "body": "Is the clinic open on the bank holiday?"})

    @task(15)
    def ask_for_prescription(self) -> None:
        patient = self.patient
        self._post("/v1/prescription-requests", "/v1/prescription-requests", {
            "clinic_id": DATA["clinic_id"], "fulfilment": "collection",
            "items": [{"medication_id": random.choice(DATA["medicines"]),
                       "dosage_confirmed": True}]},
            allowed=(409,), then=lambda made: patient["requests"].append(made["request_id"]))

    @task(15)
    def cancel_prescription_request(self) -> None:
        if not self.patient["requests"]:
            return self.my_prescription_requests()
        self._post(f"/v1/prescription-requests/{self.patient['requests'].pop(0)}/cancel",
                   "/v1/prescription-requests/{id}/cancel", None, allowed=(409,))
        return None


class Ceiling(FastHttpUser):
    """The framework's ceiling on this machine (`bench.load --ceiling`): the cheapest request
    the API answers (liveness: no token, no database), at the same offered rate."""

    wait_time = constant_throughput(DATA["rate"] / DATA["users"])
    connection_timeout = 10.0
    network_timeout = 30.0

    @task
    def alive(self) -> None:
        self.client.get("/health/live", name="/health/live")
