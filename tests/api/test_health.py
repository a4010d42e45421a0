"""Liveness, readiness and the published OpenAPI document."""

from __future__ import annotations

import json


def test_the_process_reports_itself_live(client):
    response = client.get("/health/live")
    assert response.status_code == 200
    assert response.json() == {"status": "live"}


def test_a_migrated_database_reports_ready(client):
    response = client.get("/health/ready")
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "ready"}


def test_the_openapi_document_lists_the_consent_endpoints(client):
    response = client.get("/schema/openapi.json")
    assert response.status_code == 200
    document = json.loads(response.content)
    assert document["openapi"].startswith("3.")
    paths = document["paths"]
    assert {"get", "post"} <= paths["/v1/me/consents"].keys()
    assert "post" in paths["/v1/me/consents/{consent_type}/withdraw"]
    assert "get" in paths["/v1/me/consents/history"]
    assert "get" in paths["/v1/consent-texts/{consent_type}"]
    assert "get" in paths["/v1/staff/patients/{patient_id}/consents"]
    assert "post" in paths["/v1/staff/consent-texts/{consent_type}"]
    assert "bearer" in document["components"]["securitySchemes"]
