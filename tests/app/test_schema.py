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
