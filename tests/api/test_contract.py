"""The OpenAPI document is valid and tells an integrator every answer a route can give."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from openapi_spec_validator import validate


@pytest.fixture
def document(client: TestClient) -> dict[str, Any]:
    answer = client.get("/openapi.json")
    assert answer.status_code == 200
    result: dict[str, Any] = answer.json()
    return result


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
    ]


def test_the_openapi_document_is_valid(document: dict[str, Any]) -> None:
    validate(document)


def test_every_api_route_documents_its_errors_in_the_detail_shape(
    document: dict[str, Any],
) -> None:
    problem = {"$ref": "#/components/schemas/Problem"}
    assert document["components"]["schemas"]["Problem"]["required"] == ["detail"]
    for path, method, operation in _operations(document):
        if not path.startswith("/v1/"):
            continue
        answers = operation["responses"]
        wanted = {"400", "401", "500", "503"}
        wanted |= {"404"} if "{" in path else set()
        wanted |= {"410"} if "{patient_id}" in path else set()
        wanted |= {"409", "422"} if method in ("post", "patch", "delete") else set()
        wanted |= {"413", "415"} if "requestBody" in operation else set()
        assert wanted <= set(answers), f"{method} {path} leaves out {wanted - set(answers)}"
        for code in wanted:
            shape = answers[code]["content"]["application/json"]["schema"]
            assert shape == problem or code == "422", (method, path, code)


def test_every_request_body_has_an_example(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    for path, method, operation in _operations(document):
        body = operation.get("requestBody", {}).get("content", {}).get("application/json")
        if body is None:
            continue
        schema = body["schema"]
        ref = schema.get("$ref") or next(s["$ref"] for s in schema["anyOf"] if "$ref" in s)
        name = ref.rsplit("/", 1)[1]
        assert schemas[name].get("examples"), f"{method} {path}: {name} has no example"


def test_the_patient_pages_are_described_as_html(document: dict[str, Any]) -> None:
    pages = [(p, m, o) for p, m, o in _operations(document) if p.startswith(("/s/", "/u/"))]
    assert {p for p, _, _ in pages} >= {"/s/{token}", "/s/{token}/confirm", "/u/{token}"}
    for path, method, operation in pages:
        assert operation.get("description"), f"{method} {path} is not described"
        assert "text/html" in operation["responses"]["200"]["content"]
        assert "text/html" in operation["responses"]["404"]["content"]
