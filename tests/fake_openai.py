"""A local server speaking the OpenAI chat-completions protocol, scriptable per test.

    with FakeOpenAI(api_key="sk-test") as server:
        server.reply(Reply("Bwcon was founded in 1997 [1]."))
        client = openai.OpenAI(base_url=server.url, api_key="sk-test")
        ...
        server.requests[-1].messages  # the prompt the client sent

It serves, on 127.0.0.1 and a free port, in a background thread:

- `POST /v1/chat/completions`: a `chat.completion` JSON object, or with `"stream": true` a
  Server-Sent Events stream of `chat.completion.chunk` objects over chunked HTTP/1.1 (a first
  delta with the role, then content pieces, a last chunk with `finish_reason`, a usage chunk
  when `stream_options.include_usage` is set, then `data: [DONE]`), as api.openai.com does.
- `GET /v1/models` and `GET /v1/models/{id}`.
- Errors in OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`: 401 for a
  wrong key, 404 for an unknown model or path, 400 for a malformed request, and any status
  a test scripts.

Each request is recorded (headers, JSON body). What a completion says is scripted with
`Reply` records, queued with `reply()` or computed from the request by `respond_with()`:
its content and streamed pieces, a delay before the response, an error status, a stall, or a
stream broken after some pieces (connection cut, or an error event).
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

# Waits inside the server end early when the server stops, so teardown never hangs.
_MAX_HOLD_S = 10.0


@dataclass
class Reply:
    """What the fake server answers to one chat-completion request."""

    content: str = "I could not find this in the documents."
    # Streamed content deltas; by default the content cut into pieces of a few characters.
    pieces: Sequence[str] | None = None
    finish_reason: str = "stop"
    status: int = 200  # an error status answers with OpenAI's error JSON instead
    error_message: str = "The server had an error while processing your request."
    delay_s: float = 0.0  # before the response starts (headers included)
    piece_delay_s: float = 0.0  # between streamed pieces
    # Stream only: after this many content pieces, `break_with` ends the stream abnormally.
    break_after: int | None = None
    break_with: Literal["close", "error_event", "stall", "eof"] = "close"
    # Stream only: after this many content pieces, wait until the event is set.
    hold_after: int | None = None
    release: threading.Event | None = None

    def stream_pieces(self) -> list[str]:
        """Returns the content deltas a stream sends."""
        if self.pieces is not None:
            return list(self.pieces)
        # Irregular cuts, like a tokenizer's: markers such as "[12]" often arrive split.
        return [p for p in re.findall(r"\S{1,3}|\s+", self.content) if p]


@dataclass(frozen=True)
class RecordedRequest:
    """One request the fake server received."""

    method: str
    path: str
    headers: dict[str, str]  # lower-cased names
    body: Any  # the parsed JSON body, or None

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The chat messages of a completion request."""
        return list(self.body.get("messages", [])) if isinstance(self.body, dict) else []

    @property
    def stream(self) -> bool:
        """Whether the completion was asked as a stream."""
        return isinstance(self.body, dict) and bool(self.body.get("stream"))


@dataclass
class _State:
    api_key: str | None
    models: tuple[str, ...]
    replies: deque[Reply] = field(default_factory=deque)
    responder: Callable[[RecordedRequest], Reply] | None = None
    requests: list[RecordedRequest] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stopping: threading.Event = field(default_factory=threading.Event)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # a handler stalled on purpose must not hold up teardown
    state: _State

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (timeout, closed stream) is what several tests do on purpose.
        pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        pass  # keep test output clean

    # -- routing ----------------------------------------------------------------------

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's naming
        request = self._record(None)
        state = self.server.state
        if request.path == "/v1/models":
            data = [self._model(m) for m in state.models]
            self._json(200, {"object": "list", "data": data})
        elif request.path.startswith("/v1/models/"):
            name = request.path.removeprefix("/v1/models/")
            if name in state.models:
                self._json(200, self._model(name))
            else:
                self._error(
                    404,
                    f"The model `{name}` does not exist",
                    "invalid_request_error",
                    "model_not_found",
                )
        else:
            self._error(
                404,
                f"Unknown request URL: GET {request.path}.",
                "invalid_request_error",
                "unknown_url",
            )

    def do_POST(self) -> None:  # noqa: N802 - the stdlib's naming
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        request = self._record(body)
        state = self.server.state
        if request.path != "/v1/chat/completions":
            self._error(
                404,
                f"Unknown request URL: POST {request.path}.",
                "invalid_request_error",
                "unknown_url",
            )
            return
        if state.api_key is not None and self.headers.get("Authorization") != f"Bearer {state.api_key}":
            # Like OpenAI, the message never repeats the key that was sent.
            self._error(401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key")
            return
        problem = _invalid(body)
        if problem:
            self._error(400, problem, "invalid_request_error", None)
            return
        if body["model"] not in state.models:
            self._error(
                404,
                f"The model `{body['model']}` does not exist",
                "invalid_request_error",
                "model_not_found",
            )
            return
        reply = self._next_reply(request)
        if reply.delay_s and self._hold(reply.delay_s):
            return
        if reply.status != 200:
            error_type = "server_error" if reply.status >= 500 else "invalid_request_error"
            self._error(reply.status, reply.error_message, error_type, None)
            return
        if body.get("stream"):
            self._stream(body, reply)
        else:
            self._completion(body, reply)

    # -- responses --------------------------------------------------------------------

    def _completion(self, body: dict[str, Any], reply: Reply) -> None:
        self._json(
            200,
            {
                "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body["model"],
                "system_fingerprint": "fp_fake",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": reply.content, "refusal": None},
                        "logprobs": None,
                        "finish_reason": reply.finish_reason,
                    }
                ],
                "usage": _usage(body, reply.content),
            },
        )

    def _stream(self, body: dict[str, Any], reply: Reply) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("x-request-id", f"req_{uuid.uuid4().hex[:16]}")
        self.end_headers()
        completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        created = int(time.time())

        def chunk(choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
            return {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": body["model"],
                "system_fingerprint": "fp_fake",
                "choices": choices,
                **extra,
            }

        def choice(delta: dict[str, Any], finish_reason: str | None = None) -> list[dict[str, Any]]:
            return [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]

        try:
            self._event(chunk(choice({"role": "assistant", "content": "", "refusal": None})))
            for i, piece in enumerate(reply.stream_pieces()):
                if reply.break_after is not None and i == reply.break_after:
                    self._break(reply)
                    return
                if reply.hold_after is not None and i == reply.hold_after and reply.release:
                    reply.release.wait(_MAX_HOLD_S)
                if reply.piece_delay_s and self._hold(reply.piece_delay_s):
                    return
                self._event(chunk(choice({"content": piece})))
            self._event(chunk(choice({}, reply.finish_reason)))
            options = body.get("stream_options") or {}
            if options.get("include_usage"):
                self._event(chunk([], usage=_usage(body, reply.content)))
            self._send_chunk(b"data: [DONE]\n\n")
            self._send_chunk(b"")  # the chunked body's end
        except OSError:
            self.close_connection = True  # the client went away

    def _break(self, reply: Reply) -> None:
        if reply.break_with == "error_event":
            # What OpenAI sends when generation fails after the stream started.
            error = {
                "error": {
                    "message": reply.error_message,
                    "type": "server_error",
                    "param": None,
                    "code": None,
                }
            }
            self._event(error)
            self._send_chunk(b"data: [DONE]\n\n")
            self._send_chunk(b"")
        elif reply.break_with == "stall":
            self._hold(_MAX_HOLD_S)
            self.close_connection = True
        elif reply.break_with == "eof":
            # The body ends properly but without a finishing chunk or [DONE].
            self._send_chunk(b"")
        else:
            # The connection drops in the middle of the chunked body.
            self._send_raw(b'40\r\ndata: {"id": "chatcmpl-cut')
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)

    # -- plumbing ---------------------------------------------------------------------

    def _record(self, body: Any) -> RecordedRequest:
        request = RecordedRequest(
            method=self.command,
            path=self.path.split("?", 1)[0],
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
        )
        with self.server.state.lock:
            self.server.state.requests.append(request)
        return request

    def _next_reply(self, request: RecordedRequest) -> Reply:
        state = self.server.state
        with state.lock:
            if state.replies:
                return state.replies.popleft()
            responder = state.responder
        return responder(request) if responder else Reply()

    def _hold(self, seconds: float) -> bool:
        """Waits; returns True when the server is stopping meanwhile."""
        if self.server.state.stopping.wait(seconds):
            self.close_connection = True
            return True
        return False

    def _model(self, name: str) -> dict[str, Any]:
        return {"id": name, "object": "model", "created": 1_700_000_000, "owned_by": "fake"}

    def _json(self, status: int, data: Any) -> None:
        payload = json.dumps(data).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("x-request-id", f"req_{uuid.uuid4().hex[:16]}")
            self.end_headers()
            self.wfile.write(payload)
            self.wfile.flush()
        except OSError:
            self.close_connection = True

    def _error(self, status: int, message: str, error_type: str, code: str | None) -> None:
        self._json(status, {"error": {"message": message, "type": error_type, "param": None, "code": code}})

    def _event(self, data: dict[str, Any]) -> None:
        self._send_chunk(f"data: {json.dumps(data)}\n\n".encode())

    def _send_chunk(self, data: bytes) -> None:
        self._send_raw(f"{len(data):X}\r\n".encode() + data + b"\r\n")

    def _send_raw(self, data: bytes) -> None:
        self.wfile.write(data)
        self.wfile.flush()


def _invalid(body: Any) -> str:
    if not isinstance(body, dict):
        return "We could not parse the JSON body of your request."
    if not isinstance(body.get("model"), str):
        return "you must provide a model parameter"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "'messages' must be a non-empty array"
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in {
            "system",
            "developer",
            "user",
            "assistant",
            "tool",
        }:
            return f"Invalid value for 'messages[{i}].role'."
        if not isinstance(message.get("content"), str | list):
            return f"Invalid type for 'messages[{i}].content'."
    return ""


def _usage(body: dict[str, Any], content: str) -> dict[str, int]:
    # Word counts stand in for tokens: the shape is what clients read.
    prompt = sum(len(str(m.get("content", "")).split()) for m in body["messages"])
    completion = len(content.split())
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


class FakeOpenAI:
    """An OpenAI-compatible chat-completions server on 127.0.0.1, run in a thread."""

    def __init__(self, *, api_key: str | None = None, models: Sequence[str] = ("fake-model",)) -> None:
        self._state = _State(api_key=api_key, models=tuple(models))
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The base URL a client is given: `http://127.0.0.1:<port>/v1`."""
        if self._server is None:
            raise RuntimeError("the fake server is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, in order."""
        with self._state.lock:
            return list(self._state.requests)

    @property
    def completions(self) -> list[RecordedRequest]:
        """The chat-completion requests received so far."""
        return [r for r in self.requests if r.path == "/v1/chat/completions"]

    def reply(self, *replies: Reply) -> None:
        """Queues replies for the next completion requests, in order."""
        with self._state.lock:
            self._state.replies.extend(replies)

    def respond_with(self, responder: Callable[[RecordedRequest], Reply] | None) -> None:
        """Answers completions the queue does not cover with `responder(request)`."""
        with self._state.lock:
            self._state.responder = responder

    def start(self) -> FakeOpenAI:
        """Starts serving on a free port."""
        server = _Server(("127.0.0.1", 0), _Handler)
        server.state = self._state
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stops serving; handlers waiting on purpose give up at once."""
        self._state.stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
