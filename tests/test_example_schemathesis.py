"""schemathesis against the example app's OpenAPI schema: no server errors, and responses that
conform to the schema (status codes, content types, bodies).

The app keeps run logs in memory and its mock model does not wait (``delay_scale=0``), so that
every generated chat streams to its end in milliseconds.
"""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, settings
from runstream import ComponentConfig, Config
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from examples.fastapi_llm.main import create_app

app = create_app(config=Config(run_log_store=ComponentConfig(type="memory")), delay_scale=0)
schema = schemathesis.openapi.from_asgi("/openapi.json", app)

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]


@schema.parametrize()
@settings(max_examples=25, deadline=2000, suppress_health_check=list(HealthCheck))
def test_no_server_errors_and_responses_conform(case: schemathesis.Case) -> None:
    case.call_and_validate(checks=CHECKS)
