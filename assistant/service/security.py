"""Security settings -> request checks: API keys, CORS origins, request body size.

- API keys (`ASSISTANT_API_KEYS`): when set, every /api and /v1 route needs
  `Authorization: Bearer <key>`; keys are compared in constant time and never logged.
- Admin keys (`ASSISTANT_ADMIN_KEYS`): the admin routes (/api/admin/...) need one of them and
  are refused (403) while none is configured. An API key is never an admin key: it may sit in
  a public page (the widget's `data-api-key`), and admin can rebuild the index at will.
- CORS (`ASSISTANT_CORS_ORIGINS`): only the listed origins get CORS headers; no wildcard.
- Body size (`ASSISTANT_MAX_BODY_BYTES`): larger request bodies get 413 before they are parsed.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Sequence
from typing import Annotated

import anyio
from fastapi import Depends, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import SecretStr
from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from assistant.config import Settings
from assistant.errors import ConfigError
from assistant.service.context import Context
from assistant.service.handlers import error_body

_bearer = HTTPBearer(
    auto_error=False,
    description="A key from ASSISTANT_API_KEYS; for /api/admin, one from ASSISTANT_ADMIN_KEYS",
)
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def _matches(given: str, keys: Sequence[SecretStr]) -> bool:
    candidate = given.encode()
    found = False
    # Compare with every key, without stopping early, so that timing says nothing.
    for key in keys:
        found |= hmac.compare_digest(candidate, key.get_secret_value().encode())
    return found


def _check_key(credentials: HTTPAuthorizationCredentials | None, settings: Settings) -> None:
    if credentials is None:
        raise HTTPException(401, "missing API key: send the header Authorization: Bearer <key>", headers=_CHALLENGE)
    if not _matches(credentials.credentials, settings.api_keys):
        raise HTTPException(401, "invalid API key", headers=_CHALLENGE)


def require_api_key(context: Context, credentials: Credentials) -> None:
    """Refuses the request (401) when API keys are configured and none of them was sent."""
    if context.settings.api_keys:
        _check_key(credentials, context.settings)


def require_admin_key(context: Context, credentials: Credentials) -> None:
    """Refuses admin requests: 403 while no admin key is configured or for an API key, 401
    without a valid admin key."""
    settings = context.settings
    if not settings.admin_keys:
        raise HTTPException(403, "admin endpoints are disabled: set ASSISTANT_ADMIN_KEYS to enable them")
    if credentials is None:
        raise HTTPException(
            401, "missing admin key: send the header Authorization: Bearer <admin key>", headers=_CHALLENGE
        )
    if _matches(credentials.credentials, settings.admin_keys):
        return
    if _matches(credentials.credentials, settings.api_keys):
        raise HTTPException(403, "an API key does not open admin endpoints: use a key from ASSISTANT_ADMIN_KEYS")
    raise HTTPException(401, "invalid admin key", headers=_CHALLENGE)


class RequestTooLargeError(HTTPException):
    """A request body is over the configured limit (raised while the body is read)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than {limit} bytes (ASSISTANT_MAX_BODY_BYTES)")


# What is read and dropped of a refused body before the 413 goes out. A client still sending
# when the server closes the connection gets a reset instead of the 413; past these bounds a
# client that keeps sending gets the reset.
DRAIN_BYTES = 4_000_000
DRAIN_SECONDS = 2.0


async def _drain(receive: Receive, more_body: bool = True) -> None:
    """Reads and drops the rest of a request body, within DRAIN_BYTES and DRAIN_SECONDS."""
    drained = 0
    with anyio.move_on_after(DRAIN_SECONDS):
        while more_body and drained <= DRAIN_BYTES:
            message = await receive()
            if message["type"] != "http.request":
                return
            drained += len(message.get("body", b""))
            more_body = message.get("more_body", False)


class BodySizeLimit:
    """ASGI middleware: answers 413 to request bodies larger than `max_bytes`.

    A declared Content-Length over the limit is refused before the app runs; a chunked body
    is counted as it is read and refused as soon as it passes the limit. Either way the rest
    of the body is read and dropped (within bounds) first, so the client gets to read the 413.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            error = RequestTooLargeError(self.max_bytes)
            body = error_body(scope["path"], 413, str(error.detail))
            response = JSONResponse(body, status_code=413, headers={"Connection": "close"})
            await _drain(receive)
            await response(scope, receive, send)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    await _drain(receive, message.get("more_body", False))
                    raise RequestTooLargeError(self.max_bytes)
            return message

        await self.app(scope, counting_receive, send)


class StrictCORSMiddleware(CORSMiddleware):
    """CORS for the configured origins only; a refused preflight gets JSON 400, no CORS headers."""

    def preflight_response(self, request_headers: Headers) -> Response:
        """Answers a preflight request, or refuses it with a JSON `detail`."""
        response = super().preflight_response(request_headers)
        if response.status_code == 200:
            return response
        reason = bytes(response.body).decode()
        detail = f"CORS preflight refused ({reason}); ASSISTANT_CORS_ORIGINS lists the allowed origins"
        return Response(
            json.dumps({"detail": detail}),
            status_code=400,
            media_type="application/json",
            headers={"Vary": "Origin"},
        )


def cors_options(settings: Settings) -> dict[str, object]:
    """Returns the CORS middleware options for the configured origins (refusing a wildcard)."""
    if any("*" in origin for origin in settings.cors_origins):
        raise ConfigError(
            "ASSISTANT_CORS_ORIGINS must list origins such as https://intranet.example.org; a wildcard is not allowed"
        )
    return {
        "allow_origins": list(settings.cors_origins),
        "allow_methods": ["GET", "POST"],
        "allow_headers": ["Authorization", "Content-Type"],
        "allow_credentials": False,  # keys travel in the Authorization header, not in cookies
        "max_age": 600,
    }
