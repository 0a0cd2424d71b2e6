"""The OpenAPI description is valid OpenAPI 3.1 and documents every API route."""
from __future__ import annotations

from openapi_spec_validator import validate


def test_openapi_is_valid_31_and_complete(app):
    spec = app.test_client().get("/api/openapi.json").json
    assert spec["openapi"].startswith("3.1")
    validate(spec)
    documented = set(spec["paths"])
    for rule in app.url_map.iter_rules():
        path = rule.rule
        if not path.startswith("/api/v1/") or rule.endpoint.startswith("static"):
            continue
        openapi_path = path
        for arg in rule.arguments:
            openapi_path = openapi_path.replace(f"<int:{arg}>", "{" + arg + "}") \
                .replace(f"<string:{arg}>", "{" + arg + "}").replace(f"<{arg}>", "{" + arg + "}")
        assert openapi_path in documented, f"{path} is not in the OpenAPI description"
