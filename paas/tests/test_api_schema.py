"""The REST API keeps its OpenAPI contract: the schema generates without warnings, and schemathesis, fuzzing every
operation from that schema, finds no 5xx and no response that differs from the schema (for the organization's
owner with an API token, and for an anonymous caller)."""

from __future__ import annotations

import pytest
import schemathesis
from django.core.management import call_command
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from accounts.services import create_api_token
from paas.tests.isolation_world import World, build_world

CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]


def test_the_schema_generates_without_warnings(tmp_path):
    # --fail-on-warn turns every warning (an unresolved serializer, authenticator or operationId clash) into an error.
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml"))
    assert "/api/v1/organizations/{org_slug}/projects/" in (tmp_path / "schema.yaml").read_text()


@pytest.fixture
def fuzz_world(transactional_db) -> tuple[World, str]:
    """Committed data: the WSGI app closes the database connection between requests, ending any test transaction."""
    world = build_world()
    _, raw = create_api_token(world.owner, "fuzz")  # the owner may call every operation
    return world, raw


# The schema as the API serves it, loaded at collection so that each operation is a test of its own.
schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", get_wsgi_application())


@schema.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_api_answers_as_its_schema_says(case, fuzz_world):
    world, token = fuzz_world
    # Real identifiers, so the generated bodies and queries reach the views instead of stopping at a 404.
    acme = world.acme
    known = {"org_slug": acme.org.slug, "project_slug": acme.project.slug, "revision": acme.release.revision,
             "name": acme.service.name, "variable_id": acme.variable.pk}
    if case.path_parameters:
        case.path_parameters = {**case.path_parameters, **{k: v for k, v in known.items() if k in case.path_parameters}}
    case.call_and_validate(headers={"Authorization": f"Bearer {token}"}, checks=CHECKS)
    case.call_and_validate(checks=CHECKS)  # anonymous
