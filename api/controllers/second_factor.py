"""Setting up the second factor: an authenticator app, confirmed by a code, with recovery codes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec
from litestar import Controller, post
from litestar.di import NamedDependency, Provide
from litestar.params import JSONBody

from api.container import Container
from api.dependencies import provide_actor, provide_clock, provide_container
from domain.access import Action, Actor, PatientResource, authorise


class TotpEnrolment(msgspec.Struct):
    otpauth_uri: str  # for apps that accept a link
    secret: str  # for typing in by hand
    qr_svg: str  # the same link as a QR code, to scan


class TotpConfirmation(msgspec.Struct, forbid_unknown_fields=True):
    code: Annotated[str, msgspec.Meta(min_length=6, max_length=8)]


class RecoveryCodes(msgspec.Struct):
    recovery_codes: list[str]  # shown this once; each works once


class SecondFactorController(Controller):
    path = "/v1/me/second-factor"
    tags = ["accounts"]
    dependencies = {
        "container": Provide(provide_container, sync_to_thread=False),
        "actor": Provide(provide_actor),
        "now": Provide(provide_clock, sync_to_thread=False),
    }

    @post("/totp", status_code=201, sync_to_thread=True,
          summary="Start setting up an authenticator app")
    def begin(self, actor: NamedDependency[Actor], container: NamedDependency[Container],
              now: NamedDependency[datetime]) -> TotpEnrolment:
        authorise(actor, Action.PROFILE_READ, PatientResource(actor.account_id))
        enrolment = container.second_factor.begin_totp(actor, at=now)
        return TotpEnrolment(enrolment.otpauth_uri, enrolment.secret, enrolment.qr_svg)

    @post("/totp/confirm", status_code=200, sync_to_thread=True,
          summary="Confirm the authenticator app with a code; returns recovery codes")
    def confirm(self, data: JSONBody[TotpConfirmation], actor: NamedDependency[Actor],
                container: NamedDependency[Container],
                now: NamedDependency[datetime]) -> RecoveryCodes:
        authorise(actor, Action.PROFILE_READ, PatientResource(actor.account_id))
        return RecoveryCodes(container.second_factor.confirm_totp(actor, data.code,
                                                                           at=now))
