"""Errors -> HTTP responses: the one place where exceptions become status codes and JSON.

Every error body is JSON with a readable `detail` string. Paths under /v1/ also carry the
OpenAI error object (`{"error": {"message", "type", "param", "code"}}`) so that OpenAI
clients show the message.

    AssistantError subclass        status
    QuestionError                  422  (empty or too long question)
    NotFoundError                  404  (document, conversation, answer)
    IndexNotFoundError / Corrupt   503  (not ready: build or rebuild the index)
    IndexMismatchError             503
    IndexWriteError                503  (a rebuild failed; the previous index still serves)
    CorpusError, ConfigError       503
    GenerationError                502
    any other AssistantError       500  (its message was written for people)
    HTTPException                  its own status (404 route, 405 method, 401 key, 413 body ...)
    RequestValidationError         422, or 400 for a body that is not JSON
    anything else                  500 "internal error" with a reference; details only in the log
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from assistant.errors import (
    AssistantError,
    ConfigError,
    CorpusError,
    GenerationError,
    IndexCorruptError,
    IndexMismatchError,
    IndexNotFoundError,
    IndexWriteError,
    NotFoundError,
    QuestionError,
)

logger = logging.getLogger(__name__)

_STATUS: tuple[tuple[type[AssistantError], int], ...] = (
    (QuestionError, 422),
    (NotFoundError, 404),
    (IndexNotFoundError, 503),
    (IndexCorruptError, 503),
    (IndexMismatchError, 503),
    (IndexWriteError, 503),
    (CorpusError, 503),
    (ConfigError, 503),
    (GenerationError, 502),
)

_OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


def status_for(exc: AssistantError) -> int:
    """Returns the HTTP status of an AssistantError."""
    for kind, status in _STATUS:
        if isinstance(exc, kind):
            return status
    return 500


def error_body(path: str, status: int, detail: str, **extra: Any) -> dict[str, Any]:
    """Returns the JSON body of an error response (with the OpenAI error object under /v1/)."""
    body: dict[str, Any] = {"detail": detail, **extra}
    if path.startswith("/v1/"):
        body["error"] = {
            "message": detail,
            "type": _OPENAI_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error"),
            "param": None,
            "code": status,
        }
    return body


def _json(
    request: Request,
    status: int,
    detail: str,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    return JSONResponse(error_body(request.url.path, status, detail, **extra), status_code=status, headers=headers)


async def _assistant_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AssistantError)
    status = status_for(exc)
    if status >= 500:
        logger.warning("%s on %s %s: %s", type(exc).__name__, request.method, request.url.path, exc)
    # AssistantError messages are written for the user: they say what is wrong and what to do.
    return _json(request, status, str(exc))


_ROUTE_DETAILS = {
    404: "no such route: {method} {path}",
    405: "method {method} is not allowed on {path}",
}


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail
    template = _ROUTE_DETAILS.get(exc.status_code)
    # Starlette's own 404/405 carry only the reason phrase; say which route was wrong.
    if template and detail in {"Not Found", "Method Not Allowed"}:
        detail = template.format(method=request.method, path=request.url.path)
        allowed = (exc.headers or {}).get("Allow")
        if allowed:
            detail += f" (allowed: {allowed})"
    return _json(request, exc.status_code, str(detail), headers=exc.headers)


def _where(loc: Sequence[int | str]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in {"body", "query", "path", "header"}:
        parts = parts[1:] or parts
    return ".".join(parts)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    for error in errors:
        if error.get("type") == "json_invalid":
            reason = (error.get("ctx") or {}).get("error", "malformed JSON")
            position = error["loc"][1] if len(error["loc"]) > 1 else "?"
            return _json(
                request,
                400,
                f"the request body is not valid JSON: {reason} (at character {position})",
            )
        if tuple(error.get("loc", ())) == ("body",):
            return _json(
                request,
                422,
                "the request body must be a JSON object, sent with Content-Type: application/json",
            )
    # The input is left out on purpose: it may be 64 kB of text or a secret.
    problems = [{"loc": _where(e.get("loc", ())), "msg": str(e.get("msg", "invalid"))} for e in errors]
    summary = "; ".join(f"{p['loc']}: {p['msg']}" for p in problems)
    return _json(request, 422, f"invalid request: {summary}", errors=problems)


def unexpected_error_detail(exc: BaseException, method: str, path: str) -> str:
    """Logs an unexpected error under a new reference; returns the detail that tells users it.

    The log gets the traceback, the user only the reference: the exception's message may hold
    anything, and a request's text (a question) is never logged on purpose.
    """
    reference = uuid.uuid4().hex[:12]
    logger.error("unexpected error (reference %s) on %s %s", reference, method, path, exc_info=exc)
    return f"internal error (reference {reference}); the server log has the details"


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    return _json(request, 500, unexpected_error_detail(exc, request.method, request.url.path))


def install_error_handlers(app: FastAPI) -> None:
    """Registers the handlers that turn every error into a JSON response with a `detail`."""
    app.add_exception_handler(AssistantError, _assistant_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected_error)
