"""The API's documented contract: every error answer, in the `{"detail"}` shape the
error handlers give, is written into the OpenAPI document for each route it can come
from."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel


class FieldProblem(BaseModel):
    """One wrong input: where it is (`["body", "email"]`, `["query", "limit"]`,
    `["header", "Idempotency-Key"]`) and what is wrong with it."""

    loc: list[str | int]
    msg: str
    type: str


class Problem(BaseModel):
    """Every error answer: `detail` says what is wrong; for 422 it lists each field."""

    detail: str | list[FieldProblem]


_PROBLEM = {"$ref": "#/components/schemas/Problem"}
_EVERYWHERE = {500: "An internal error; its details are only in the service's log."}
_API = {
    400: "An API key was put in the URL: it is refused (and should be revoked).",
    401: "No valid API key in `Authorization: Bearer <key>`.",
    503: "The database cannot be written right now; nothing was recorded.",
}
_WITH_ID = {404: "Not found, or it belongs to another clinic."}
_PATIENT = {410: "The patient was erased."}
_CHANGE = {
    409: "Clashes with the current state, or a request with the same `Idempotency-Key` "
    "is still in progress.",
    422: "An input is wrong; `detail` names each field.",
}
_BODY = {
    413: "The body is larger than the service takes (`max_body_bytes`).",
    415: "The body is not `application/json`.",
}


_PAGE = {
    404: "The link is unknown or has expired; the page says what to do.",
    409: "The session is already recorded or no longer planned; the page says so.",
    422: "A form value is wrong; the page says which.",
}
_HTML = {"text/html": {"schema": {"type": "string"}}}
_FEED_GONE = "The link is unknown or revoked, or its patient erased; the body is empty."


def _errors_of(path: str, method: str, has_body: bool) -> dict[int, str]:
    if path.endswith(".ics"):  # a patient's calendar feed: a calendar reads no error text
        return _EVERYWHERE | {404: _FEED_GONE}
    if not path.startswith("/v1/") and "{token}" in path:  # a patient's page
        return (
            _EVERYWHERE
            | {404: _PAGE[404]}
            | ({409: _PAGE[409], 422: _PAGE[422]} if method == "post" else {})
        )
    codes = dict(_EVERYWHERE)
    if path.startswith("/v1/"):
        codes |= _API
    if "{" in path:
        codes |= _WITH_ID | {422: "A path or query value is wrong; `detail` names it."}
    if "{patient_id}" in path:
        codes |= _PATIENT
    if method in ("post", "patch", "delete") and path.startswith("/v1/"):
        codes |= _CHANGE
    if has_body:
        codes |= _BODY
    return codes


def install_contract(app: FastAPI) -> None:
    """Make `app.openapi()` document the error answers of every route."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        problem = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(problem.pop("$defs", {}))
        schemas["Problem"] = problem
        for path, operations in document.get("paths", {}).items():
            for method, operation in operations.items():
                answers = operation.setdefault("responses", {})
                codes = _errors_of(path, method, "requestBody" in operation)
                page = not path.startswith("/v1/") and "{token}" in path
                feed = path.endswith(".ics")
                for code, description in codes.items():
                    if feed and code == 404:
                        answers[str(code)] = {"description": description}
                        continue
                    shape = (
                        _HTML
                        if page and code != 500
                        else {"application/json": {"schema": _PROBLEM}}
                    )
                    answers[str(code)] = {"description": description, "content": shape}
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]
