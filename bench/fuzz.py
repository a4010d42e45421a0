"""Schemathesis against every operation of the OpenAPI document, as every role and anonymous.

    uv run python -m bench.fuzz [--max-examples 25] [--seconds 780] [--roles patient,doctor]
                                [--operations REGEX] [--hostile | --no-hostile] [--seed N]

Starts a throwaway embedded PostgreSQL, builds the app in-process (no socket) and seeds it
(bench/fuzz_seed.py: an account of every role at Riverside, the patient in the doctor's and the
nurse's care team, one of each thing a path parameter names). Then, for every operation and
every role (patient, doctor, nurse, reception, prescription_coordinator, care_manager, support,
clinic_admin, auditor, anonymous), schemathesis generates up to `--max-examples` requests, half
of them with real ids in the path, from valid and invalid data. Every response must be no 5xx,
have a documented status code, the documented content type and body schema, and every 4xx
must be an RFC 9457 problem document (application/problem+json with type, title, status and
detail). A failing case is shrunk by Hypothesis and reported with a curl-like reproduction
(the access token replaced by `<ROLE token>`).

With `--hostile` (the default) it then starts `carebridge api` on 127.0.0.1 and sends what a
hostile client would (bench/hostile.py): oversized and deeply nested JSON, invalid UTF-8, huge
uploads, slowloris headers, dribbled bodies and many idle connections, checking the answers, the
server's memory and that it still answers /health afterwards.

Prints the counts and writes them to bench/results/fuzz-<stamp>.json. Loopback only.
"""

from __future__ import annotations

import argparse
import re
import secrets
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import hypothesis
import schemathesis
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.openapi.checks import (  # noqa: F401  (loads the OpenAPI checks)
    UndefinedStatusCode,
)
from schemathesis.python.asgi import get_client
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.app import create_app
from bench.common import report
from bench.fuzz_seed import ROLES, World, fuzz_container, seed

SCHEMA_PATH = "/schema/openapi.json"
PROBLEM_JSON = "application/problem+json"
FHIR_JSON = "application/fhir+json"
PROBLEM_FIELDS = ("type", "title", "status", "detail")


class NotAProblemDocument(Failure):
    """A 4xx answer that is not an RFC 9457 problem document."""

    code = "ST999"
    kind_title = "Client error is not a problem document"


@schemathesis.check
def problem_json(ctx: Any, response: Any, case: Any) -> bool | None:
    """Every 4xx is application/problem+json with type, title, status (the response's) and
    detail; the FHIR API's are FHIR OperationOutcomes (application/fhir+json), as FHIR asks."""
    if not 400 <= response.status_code < 500:
        return None
    media_type = (response.headers.get("content-type") or [""])[0].split(";")[0].strip()
    wrong = None
    if case.operation.path.startswith("/fhir/"):
        if media_type != FHIR_JSON or '"OperationOutcome"' not in response.text:
            wrong = f"not a FHIR OperationOutcome ({media_type or 'no content type'})"
    elif media_type != PROBLEM_JSON:
        wrong = f"content type is {media_type or 'missing'}"
    elif case.method.upper() == "HEAD":
        return True  # a HEAD answer has no body
    else:
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            wrong = "body is not a JSON object"
        elif missing := [name for name in PROBLEM_FIELDS if name not in body]:
            wrong = f"missing {', '.join(missing)}"
        elif body["status"] != response.status_code:
            wrong = f"status {body['status']} in a {response.status_code} answer"
    if wrong:
        raise NotAProblemDocument(operation=case.operation.label, message=wrong)
    return True


CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance, problem_json]


@dataclass
class Tally:
    requests: int = 0
    by_status_class: Counter[str] = field(default_factory=Counter)
    by_status: Counter[int] = field(default_factory=Counter)
    failures: list[dict[str, Any]] = field(default_factory=list)
    pairs_run: int = 0
    pairs_cut: int = 0  # (operation, role) pairs not run because `--seconds` ran out
    errors: list[str] = field(default_factory=list)  # generation errors, not findings


Send = Callable[[Any, dict[str, str]], Any]  # (case, headers) -> response


def send_in_process(case: Any, headers: dict[str, str]) -> Any:
    """Through schemathesis' own ASGI client (the schema was loaded from the app)."""
    return case.call(headers=headers)


def fuzz(schema: Any, world: World, roles: list[str], max_examples: int, seconds: float,
         seed_value: int | None, send: Send = send_in_process) -> tuple[Tally, int]:
    """Runs every selected operation as every role; returns the tally and operation count."""
    tally = Tally()
    deadline = time.monotonic() + seconds
    operations = [result.ok() for result in schema.get_all_operations()]
    for operation in operations:
        strategy = _strategy(operation, tally)
        if strategy is None:
            continue
        for role in roles:
            if time.monotonic() >= deadline:
                tally.pairs_cut += 1
                continue
            _run_pair(operation, role, strategy, world, tally, max_examples, deadline, seed_value,
                      send)
            tally.pairs_run += 1
    return tally, len(operations)


def _strategy(operation: Any, tally: Tally) -> Any:
    strategies = []
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
        try:
            strategies.append(operation.as_strategy(generation_mode=mode))
        except Exception as error:  # e.g. nothing to negate
            tally.errors.append(f"{operation.label} {mode.value}: {type(error).__name__}")
    return st.one_of(*strategies) if strategies else None


def _run_pair(operation: Any, role: str, strategy: Any, world: World, tally: Tally,
              max_examples: int, deadline: float, seed_value: int | None, send: Send) -> None:
    headers = world.headers(role)
    shown = {"Authorization": f"Bearer <{role} token>"} if headers else {}
    last: dict[str, Any] = {}

    @hypothesis.settings(max_examples=max_examples, deadline=None, database=None,
                         suppress_health_check=list(hypothesis.HealthCheck),
                         verbosity=hypothesis.Verbosity.quiet, print_blob=False)
    @hypothesis.given(case=strategy, data=st.data())
    def run(case: Any, data: Any) -> None:
        if time.monotonic() >= deadline:
            return
        if case.path_parameters and data.draw(st.booleans(), label="real ids"):
            for name in case.path_parameters:
                if world.ids.get(name):
                    case.path_parameters[name] = data.draw(st.sampled_from(world.ids[name]))
        response = send(case, headers)
        tally.requests += 1
        tally.by_status[response.status_code] += 1
        tally.by_status_class[f"{response.status_code // 100}xx"] += 1
        try:
            case.validate_response(response, checks=CHECKS, headers=headers)
        except (Failure, FailureGroup) as failure:
            found = failure.exceptions if isinstance(failure, FailureGroup) else (failure,)
            last.update(status=response.status_code,
                        checks=sorted({f"{f.title}: {_one_line(f.message)}" for f in found}),
                        reproduce=case.as_curl_command(headers=shown),
                        body=response.text[:300])
            raise

    if seed_value is not None:
        run = hypothesis.seed(seed_value)(run)
    try:
        run()
    except (Exception, BaseExceptionGroup) as error:  # FailureGroup is an exception group
        if not last:
            tally.errors.append(f"{operation.label} as {role}: {type(error).__name__}: "
                                f"{_one_line(str(error))[:300]}")
            return
        tally.failures.append({"operation": operation.label, "role": role, **last})
        print(f"FAIL {operation.label} as {role}: {last['status']} {last['checks']}\n"
              f"     {last['reproduce']}", flush=True)


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-examples", type=int, default=25,
                        help="requests per operation per role (Hypothesis examples)")
    parser.add_argument("--seconds", type=float, default=780, help="cap on the schema fuzzing")
    parser.add_argument("--roles", default=",".join(ROLES), help="comma-separated")
    parser.add_argument("--operations", default="", help="regex on 'METHOD /path'")
    parser.add_argument("--seed", type=int, default=None, help="Hypothesis seed")
    parser.add_argument("--hostile", action=argparse.BooleanOptionalAction, default=True,
                        help="also send hostile input to a real server")
    args = parser.parse_args()
    roles = [r.strip() for r in args.roles.split(",") if r.strip()]
    unknown = set(roles) - set(ROLES)
    if unknown:
        parser.error(f"unknown roles: {', '.join(sorted(unknown))}")
    token_secret = secrets.token_urlsafe(48)
    started = time.monotonic()
    with fuzz_container() as container:
        container.start_projections()
        app = create_app(container, token_secret)
        config = schemathesis.Config.from_dict(
            {"generation": {"with-security-parameters": False}})
        schema: Any = schemathesis.openapi.from_asgi(SCHEMA_PATH, app, config=config)
        if args.operations:
            pattern = re.compile(args.operations)
            schema = schema.include(func=lambda ctx: bool(
                pattern.search(f"{ctx.operation.method.upper()} {ctx.operation.path}")))
        with get_client(cast(Any, app)) as client:
            world = seed(container, app.state.tokens, client)
        print(f"seeded in {time.monotonic() - started:.1f}s; ids for "
              f"{', '.join(sorted(world.ids))}; failed seeds: {world.failed_seeds or 'none'}",
              flush=True)
        tally, operations = fuzz(schema, world, roles, args.max_examples, args.seconds,
                                 args.seed)
        fuzz_seconds = time.monotonic() - started
        hostile: dict[str, Any] = {}
        if args.hostile:
            from bench.hostile import attack

            hostile = attack(container, token_secret)
    figures = {
        "operations": operations, "roles": roles, "max_examples": args.max_examples,
        "pairs_run": tally.pairs_run, "pairs_cut_by_time": tally.pairs_cut,
        "requests": tally.requests, "by_status_class": dict(sorted(tally.by_status_class.items())),
        "by_status": {str(k): v for k, v in sorted(tally.by_status.items())},
        "server_errors": tally.by_status_class.get("5xx", 0),
        "failures": len(tally.failures), "failed": tally.failures,
        "generation_errors": tally.errors, "failed_seeds": world.failed_seeds,
        "fuzz_seconds": round(fuzz_seconds, 1),
        "hostile": hostile,
    }
    report("fuzz", figures)


if __name__ == "__main__":
    main()
