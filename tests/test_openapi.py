"""The served OpenAPI document covers every endpoint; docs UI is served."""
from __future__ import annotations

import re

from openapi_spec_validator import validate


def _openapi_path(rule: str) -> str:
    return re.sub(r"<(?:[a-z_]+:)?([a-z_]+)>", r"{\1}", rule)


def test_every_route_is_documented(app, client):
    spec = client.get("/api/v1/openapi.json").json
    documented = {(path, method.upper()) for path, ops in spec["paths"].items() for method in ops}
    missing = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint in ("static", "api-docs.openapi_json", "docs.page", "docs.asset") \
                or rule.endpoint.startswith("console."):   # pages for people, not the API
            continue
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            if (_openapi_path(rule.rule), method) not in documented:
                missing.append(f"{method} {rule.rule}")
    assert not missing, f"undocumented endpoints: {missing}"


def test_spec_is_valid_openapi_with_problem_errors_and_bearer_auth(client):
    spec = client.get("/api/v1/openapi.json").json
    validate(spec)
    assert spec["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert "code" in spec["components"]["schemas"]["Problem"]["properties"]
    assert spec["paths"]["/api/v1/me"]["get"]["security"] == [{"bearerAuth": []}]
    assert "security" not in spec["paths"]["/api/v1/auth/login"]["post"]


def test_docs_ui_is_served(client):
    r = client.get("/docs")
    assert r.status_code == 200
    assert "/api/v1/openapi.json" in r.get_data(as_text=True)


def test_docs_ui_needs_no_network(client):
    """Every file the page loads is served by the app itself (the pinned swagger-ui-bundle package)."""
    page = client.get("/docs").get_data(as_text=True)
    assert "http://" not in page and "https://" not in page
    assets = [a for a in re.findall(r'(?:src|href)="([^"]+)"', page) if a != "data:,"]
    assert len(assets) == 4
    for path in assets:
        response = client.get(path)
        assert response.status_code == 200 and len(response.get_data()) > 100, path
    assert "SwaggerUIBundle(" in client.get("/docs/assets/docs-init.js").get_data(as_text=True)
    assert client.get("/docs/assets/index.html").status_code == 404     # only the files the page needs
