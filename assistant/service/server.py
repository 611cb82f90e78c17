"""An Assistant with a loaded index -> the web service, running under uvicorn until stopped."""

from __future__ import annotations

import logging

import uvicorn

from assistant.pipeline import Assistant
from assistant.service.app import create_app


def run_server(assistant: Assistant, *, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serves the chat API, the OpenAI-compatible API, the Slack bot and the widget.

    Example: `run_server(Assistant.from_settings(get_settings()), port=8000)`.
    """
    app = create_app(assistant, assistant.settings)
    # One line per answer (sizes, latency, outcome) goes to the log at INFO.
    service_log = logging.getLogger("assistant.service")
    if service_log.getEffectiveLevel() > logging.INFO:
        service_log.setLevel(logging.INFO)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="info",
        timeout_graceful_shutdown=30,  # lets answers and a running reindex finish
    )
    uvicorn.Server(config).run()
