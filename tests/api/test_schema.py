"""The published OpenAPI document, the reference page rendered from it, and schemathesis against a live server:
for inputs it makes up (valid and invalid), the API never answers 5xx and every answer matches the document."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import schemathesis
from django.contrib.auth.models import User
from django.test import Client
from hypothesis import HealthCheck, given, settings
from rq import Queue
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from portal.api.routing import ENDPOINTS
from releases.catalog.models import Application, ReleaseStatus
from strategies.operations.models import OperationStatus
from tests.api.conftest import ALL_SCOPES, issue
from tests.factories import OperationFactory, ReleaseFactory, UserFactory

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
# Per strategy: 16 operations by 3 strategies by 10 examples, about 500 requests (15 s on an idle machine).
EXAMPLES_PER_OPERATION = 10


@pytest.mark.django_db
def test_the_openapi_document_is_public_and_covers_every_endpoint(client: Client) -> None:
    response = client.get("/api/v1/openapi.json")

    assert response.status_code == 200
    document = response.json()
    assert document["openapi"].startswith("3.1")
    operations = {op["operationId"]: op for path in document["paths"].values() for op in path.values()}
    assert set(operations) == set(ENDPOINTS)
    register = operations["api_release_register"]
    assert register["security"][0] == {"TokenAuth": ["releases:write"]}
    assert set(register["responses"]) >= {"200", "201", "401", "403", "409", "422", "429"}
    assert "application/problem+json" in register["responses"]["422"]["content"]
    assert any(p["name"] == "Idempotency-Key" for p in register["parameters"])
    assert register["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/ReleaseIn")
    assert document["components"]["schemas"]["ReleaseIn"]["additionalProperties"] is False


@pytest.mark.django_db
def test_the_reference_page_lists_every_operation_with_an_example(client: Client, viewer: User) -> None:
    client.force_login(viewer)

    response = client.get("/api/v1/docs/")

    assert response.status_code == 200
    page = response.text
    for spec in ENDPOINTS.values():
        assert f'id="{spec.name}"' in page
        assert f"{spec.method} /api/v1{spec.path}" in page
    assert "curl -sS -X POST &quot;http://testserver/api/v1/releases&quot;" in page
    assert "Idempotency-Key: $(uuidgen)" in page
    assert 'id="problem-promotion-blocked"' in page
    assert "<code>operations:write</code>" in page
    assert "<script>" not in page  # the CSP allows no inline script; the page needs none


@pytest.mark.django_db
def test_the_reference_page_needs_a_sign_in_but_no_role(client: Client) -> None:
    assert client.get("/api/v1/docs/").status_code == 302
    client.force_login(UserFactory(username="nobody-in-particular"))
    assert client.get("/api/v1/docs/").status_code == 200


def _at_real_objects(ids: dict[str, str]) -> Callable[[schemathesis.Case], schemathesis.Case]:
    """Point a generated case at objects that exist, so the happy paths are tried too, not only 404s."""

    def aim(case: schemathesis.Case) -> schemathesis.Case:
        for name, value in ids.items():
            if name in (case.path_parameters or {}):
                case.path_parameters[name] = value
        if isinstance(case.body, dict) and "application" in case.body:
            case.body["application"] = ids["slug"]
        return case

    return aim


@pytest.mark.rq
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_schemathesis_finds_no_server_error_and_no_answer_off_the_document(
    live_server: object, rq_queues: dict[str, Queue], checkout: Application, pipeline: User
) -> None:
    token = issue(pipeline, ALL_SCOPES, name="schemathesis")
    approved = ReleaseFactory(application=checkout, version="1.1.0", status=ReleaseStatus.APPROVED)
    running = OperationFactory(release=approved, status=OperationStatus.RUNNING)
    aim = _at_real_objects({"slug": checkout.slug, "release_id": str(approved.pk), "operation_id": str(running.pk)})
    base = str(live_server.url)  # type: ignore[attr-defined]
    schema = schemathesis.openapi.from_url(f"{base}/api/v1/openapi.json")
    headers = {"Authorization": f"Bearer {token}"}
    tried = 0

    for result in schema.get_all_operations():
        operation = result.ok()
        strategies = [
            operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
            operation.as_strategy(generation_mode=GenerationMode.POSITIVE).map(aim),
            operation.as_strategy(generation_mode=GenerationMode.NEGATIVE),
        ]
        for strategy in strategies:

            @given(case=strategy)
            @settings(
                max_examples=EXAMPLES_PER_OPERATION,
                deadline=None,
                derandomize=True,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            def check(case: schemathesis.Case) -> None:
                case.call_and_validate(base_url=base, headers=headers, checks=CHECKS)

            check()
            tried += 1

    assert tried == 3 * len(ENDPOINTS)
