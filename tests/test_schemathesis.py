"""Schemathesis fuzzes the live local runner from the OpenAPI document: no request, however
malformed, may answer 5xx, and every answer (status, headers, body) must match the document.

Bounded: a few examples per operation (JOBGATE_FUZZ_EXAMPLES, default 15), no coverage or
stateful phase. Operations whose route app.py does not have yet are left out (they would
only meet the local server's 403)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis  # a dev requirement: missing, the run must fail, not skip

import app
from chalicelib.openapi import document
from localrunner.live import LiveRunner, live_runner

EXAMPLES = int(os.environ.get("JOBGATE_FUZZ_EXAMPLES") or 15)
ROUTES = {(method.lower(), path) for path, methods in app.app.routes.items() for method in methods}

CONFIG = schemathesis.Config.from_dict({
    "generation": {
        "max-examples": EXAMPLES,
        "mode": "all",  # schema-valid and schema-invalid requests
        # Chalice's local server answers 403 (not our 404) to a non-ASCII path segment;
        # API Gateway routes those to us. Keep the fuzz on what we serve.
        "codec": "ascii",
        "deterministic": True,
    },
    "phases": {"coverage": {"enabled": False}, "stateful": {"enabled": False}},
    "checks": {
        # A schema-valid request may still be refused by rules no schema can state (an
        # unknown service is 404, a made-up cursor 400, input that fails the service's own
        # model 422): those are right answers here.
        "positive_data_acceptance": {"enabled": False},
        # TRACE & co. reach Chalice's local server (501), not the app (API Gateway: 403).
        "unsupported_method": {"enabled": False},
    },
    "suppress-health-check": ["too_slow", "filter_too_much", "data_too_large"],
})

schema = schemathesis.openapi.from_dict(document("http://127.0.0.1"), config=CONFIG).include(
    func=lambda ctx: (ctx.operation.method.lower(), ctx.operation.path) in ROUTES)


@pytest.fixture(scope="module")
def live() -> Iterator[LiveRunner]:
    with live_runner(JOB_MAX_ATTEMPTS="1") as runner:
        yield runner


@schema.parametrize()
def test_api_answers_match_the_document(case: Any, live: LiveRunner) -> None:
    case.call_and_validate(base_url=live.url, headers={"Authorization": f"Bearer {live.api_key}"})


def test_every_route_is_fuzzed() -> None:
    """Once app.py has GET /openapi.json, nothing of the document is left out."""
    documented = {(m, p) for p, item in document("http://x")["paths"].items() for m in item
                  if m != "parameters"}
    missing = documented - ROUTES
    assert missing <= {("get", "/openapi.json")}, f"documented but not routed: {sorted(missing)}"
