"""Step-up verification: sensitive actions need a second factor proved on this session recently.

Opening records, downloading documents, requesting prescriptions and changing contact details
call `require_step_up` after the caller is known. Without a verification inside the configured
window the API answers the `step-up-required` problem, which tells the app to ask for a code
(or a passkey) and send it to `POST /v1/me/step-up`, then retry.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from litestar import Request

from domain.errors import Forbidden

STEP_UP_PATH = "/v1/me/step-up"


class StepUpRequired(Forbidden):
    code = "step-up-required"
    title = "Please confirm it is you"


def require_step_up(request: Request[Any, Any, Any], now: datetime) -> None:
    """Refuses unless this request's session proved a second factor within the window.

    Call it in a handler that depends on `actor` (which records the session's last
    verification in the request state) and on `now`.
    """
    window = timedelta(minutes=request.app.state.container.settings.step_up_minutes)
    verified_at = request.scope["state"].get("verified_at")
    if verified_at is not None and now - verified_at < window:
        return
    raise StepUpRequired(
        "For your safety, confirm it is you before doing this: send a code from your "
        "authenticator app, a code we email or text you, or use your passkey, then try again.",
        step_up=STEP_UP_PATH, window_minutes=int(window.total_seconds() // 60))
