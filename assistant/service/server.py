"""An Assistant -> the web service, running under uvicorn until stopped, its index kept up to date."""

from __future__ import annotations

import logging

import uvicorn

from assistant.pipeline import Assistant
from assistant.service.app import create_app


def run_server(assistant: Assistant, *, host: str = "127.0.0.1", port: int = 8000, update_index: bool = True) -> None:
    """Serves the chat API, the OpenAI-compatible API, the Slack bot and the widget.

    Listens at once: with `update_index` the index is brought up to date with the corpus in
    the background (built when missing) while the version on disk answers; /readyz says
    which version answers and how far a build has got.

    Example: `run_server(Assistant.from_settings(get_settings()), port=8000)`.
    """
    app = create_app(assistant, assistant.settings, update_index=update_index)
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
