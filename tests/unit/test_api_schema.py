"""Schemathesis against the app's own OpenAPI schema: no 5xx, responses match the schema.

Through the ASGI transport (no socket); schemathesis runs the app's lifespan, which
runs the node (``Node.self_running_app``: the engine, FastAGI on an ephemeral port, no
AMI) in its own event-loop thread.
Examples are bounded so the whole file stays within a few seconds.
"""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    response_schema_conformance,
    status_code_conformance,
)

from acd.config import ApiRole, Config
from api.auth import Principal, TokenStore
from app.node import Node

ADMIN = "admin-token-0123456789abcdef"
AGENT = "agent-1001-token-0123456789"
CONFIG = Config.model_validate({
    "fastagi": {"host": "127.0.0.1", "port": 0},
    "queues": [{"id": "consult", "skills": {"consult": 1}},
               {"id": "repair", "skills": {"repair": 1}}],
    "agents": [{"id": "1001", "skills": {"consult": 2}},
               {"id": "1002", "skills": {"repair": 3}, "status": "logged_out"}],
    "sites": [{"id": "bj", "kind": "own"},
              {"id": "gd", "kind": "partner", "regions": ["CN-GD"], "number": "8000",
               "trunk": {"contact": "sip:127.0.0.1:7001"}}],
    "regions": {"policies": {"CN-ZJ": {"mode": "primary"}}},
    "api": {},
    # callbacks and a campaign: their endpoints are fuzzed too (no AMI: nothing dials)
    "callbacks": {},
    "campaigns": [{"id": "aftersale", "queue": "repair", "outcome_codes": ["ok"]}],
})
NODE = Node(CONFIG, ami_secrets=None)
NODE.app.state.acd.tokens = TokenStore([(ADMIN, Principal("ops", ApiRole.ADMIN)),  # type: ignore[union-attr]
                                        (AGENT, Principal("agent-1001", ApiRole.AGENT, "1001"))])
APP = NODE.self_running_app()
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]


@schema.parametrize()
@settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors_and_responses_match_the_schema(case: schemathesis.Case) -> None:
    for token in (ADMIN, AGENT, None):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = case.call(headers=headers)
        case.validate_response(response, checks=CHECKS)
