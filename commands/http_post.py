"""POSTing to another system's HTTP endpoint (a pharmacy, a clinic system's webhook), the same
way everywhere: no proxies from the environment, no redirects (a request is never re-sent to
an address nobody named), a bounded read of the answer, and one rule for what is worth
retrying — 408, 429, 5xx and network errors; any other failure is permanent."""

from __future__ import annotations

import random
import urllib.error
import urllib.request
from datetime import timedelta
from typing import Any

# The retry schedule every outbound delivery shares: doubling waits from the first retry, at
# most LONGEST_WAIT apart, with jitter so that retries after an outage do not arrive together.
MAX_ATTEMPTS = 8
FIRST_RETRY = timedelta(seconds=30)
LONGEST_WAIT = timedelta(hours=6)
HTTP_TIMEOUT_SECONDS = 10.0


def backoff(first_retry: timedelta, attempts: int) -> timedelta:
    """How long to wait after the `attempts`-th failed attempt."""
    wait = min(first_retry * 2 ** (attempts - 1), LONGEST_WAIT)
    return wait * random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not security


class DeliveryFailed(Exception):
    """The other side answered with a failure, or could not be reached. `reason` is safe to
    store and log (an HTTP status or an error class); `permanent` says that sending it again
    cannot help."""

    def __init__(self, reason: str, permanent: bool) -> None:
        super().__init__(reason)
        self.reason, self.permanent = reason, permanent


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def direct_opener() -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirects())


def post(opener: urllib.request.OpenerDirector, request: urllib.request.Request,
         timeout: float) -> None:
    """Sends `request`; returns on 2xx, else raises DeliveryFailed."""
    try:
        with opener.open(request, timeout=timeout) as response:
            response.read(65536)
    except urllib.error.HTTPError as answer:
        answer.close()
        status = answer.code
        raise DeliveryFailed(f"HTTP {status}", permanent=not (
            status in (408, 429) or status >= 500)) from None
    except urllib.error.URLError as error:
        cause = error.reason
        raise DeliveryFailed(type(cause).__name__ if isinstance(cause, BaseException)
                             else "URLError", permanent=False) from None
