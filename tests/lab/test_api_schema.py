"""The REST API describes itself: an OpenAPI document served by the app, and token authentication."""

import pytest
import yaml
from django.test import Client
from rest_framework.authtoken.models import Token

pytestmark = pytest.mark.django_db


def test_it_serves_an_openapi_schema_of_every_action():
    response = Client().get("/api/schema/")

    assert response.status_code == 200
    schema = yaml.safe_load(response.content)
    assert schema["openapi"].startswith("3.")
    paths = set(schema["paths"])
    for path in ["/api/datasets/", "/api/notebooks/", "/api/cells/{id}/run/", "/api/runs/{id}/events/",
                 "/api/runs/{id}/cancel/", "/api/runs/{id}/resume/", "/api/artifacts/{id}/download/",
                 "/api/uploads/", "/api/uploads/{id}/", "/api/uploads/{id}/complete/"]:
        assert path in paths, f"{path} missing from the schema"
    assert "tokenAuth" in schema["components"]["securitySchemes"]


def test_it_takes_a_token_and_refuses_requests_without_one(cast):
    token = Token.objects.create(user=cast.alice)

    assert Client().get("/api/notebooks/").status_code == 401
    assert Client(headers={"Authorization": "Token wrong"}).get("/api/notebooks/").status_code == 401
    assert Client(headers={"Authorization": f"Token {token.key}"}).get("/api/notebooks/").status_code == 200
