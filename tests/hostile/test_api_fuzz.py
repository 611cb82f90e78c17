"""Schemathesis fuzzes every operation of the service's OpenAPI schema: no input gets a 5xx.

The operations are driven through Schemathesis' Hypothesis strategies directly (its pytest
plugin does not support the pytest version in use), each against the real app over the real
index, with valid and invalid inputs generated from the schema.
"""

from __future__ import annotations

from collections import Counter

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from assistant.config import Settings
from assistant.pipeline import Assistant
from assistant.service.app import create_app


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_no_input_to_any_operation_gets_a_server_error(
    assistant: Assistant, tmp_path_factory: pytest.TempPathFactory
) -> None:
    service_settings = Settings(
        corpus_dir=assistant.settings.corpus_dir,
        index_dir=assistant.settings.index_dir,
        data_dir=tmp_path_factory.mktemp("fuzz-data"),
    )
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(assistant, service_settings))
    statuses: Counter[int] = Counter()
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def fuzz(case: schemathesis.Case) -> None:
            response = case.call()
            statuses[response.status_code] += 1
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:200]}")

        fuzz()
    assert not failures, failures
    # The fuzzing reached both success and refusal paths.
    assert any(200 <= s < 300 for s in statuses) and any(400 <= s < 500 for s in statuses)
