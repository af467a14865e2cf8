"""The REST API against its own OpenAPI schema with schemathesis: no generated request gets a 5xx, and every answer
matches the schema (documented status codes, content types, bodies)."""

from __future__ import annotations

import schemathesis
from schemathesis.checks import positive_data_acceptance
from hypothesis import HealthCheck, given, settings


def test_no_generated_request_breaks_the_api(served):
    schema = schemathesis.openapi.from_url(f"{served.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} == {"/v1/predict", "/v1/model", "/healthz"}
    for operation in operations:
        @given(case=operation.as_strategy())
        @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def conforms(case):
            # positive_data_acceptance is left out on purpose: the schema's file is any bytes, and random bytes are
            # rightly refused (415, not audio); every other default check runs, not_a_server_error among them
            case.call_and_validate(timeout=60, excluded_checks=[positive_data_acceptance])

        conforms()


def test_no_generated_request_breaks_the_deployment_api(served, tmp_path):
    """The same over a server that keeps a store and requires tokens, called with a valid admin token (schemathesis
    also sends none, and checks the 401)."""
    from envsound.app.auth import Guard
    from envsound.app.run import running
    from envsound.app.server import create_app
    from envsound.deploy.store import Store

    store = Store.open(tmp_path / "events.sqlite")
    _, secret = store.create_token("admin", "admin")
    app = create_app(served.model, store=store, guard=Guard(store, required=True, rate=10_000))
    with running(app) as url:
        schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
        operations = [result.ok() for result in schema.get_all_operations()]
        assert {op.path for op in operations} == {"/v1/predict", "/v1/model", "/healthz", "/v1/report", "/v1/events",
                                                  "/v1/sensors", "/v1/fleet/assignment", "/v1/fleet/key",
                                                  "/v1/fleet/versions/{version_id}/file", "/v1/fleet/versions",
                                                  "/v1/fleet/status", "/v1/fleet/rates"}
        for operation in operations:
            @given(case=operation.as_strategy())
            @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), database=None)
            def conforms(case):
                case.call_and_validate(timeout=60, headers={"Authorization": f"Bearer {secret}"},
                                       excluded_checks=[positive_data_acceptance])

            conforms()
    store.close()
