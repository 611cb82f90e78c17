"""Assistant + Settings -> the FastAPI app: middleware, error handlers, routers, static files.

    app = create_app(Assistant.from_settings(settings), settings, update_index=True)

Routers: `admin` (/healthz, /readyz, /api/admin/reindex), `chat` (/api/chat ...), `documents`
(/api/documents ...), `openai_compat` (/v1 ...), `source_page` (/source/..., the readable page
Slack answers link to). The API docs (/docs, /redoc) load Swagger UI
and ReDoc from files of the fastapi-offline package, served here: no CDN, so they work offline.
ReDoc's page is our own, with a Content-Security-Policy that keeps its "API docs by Redocly"
logo (an image on Redocly's CDN that no ReDoc option hides) from being fetched.
Two seams for later pieces:

- the chat widget: files in `assistant/service/static/` are served, `index.html` at `/` (the
  demo page), `widget.js` at `/widget.js`, everything at `/static/...`;
- the Slack bot: when `settings.slack_enabled`, the module `assistant.service.slack` must
  provide `create_router(context: ServiceContext) -> APIRouter` with POST /slack/events and
  POST /slack/interactions (Slack signs its requests; API keys do not apply there).
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import importlib
import importlib.util
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.openapi.docs import get_redoc_html
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline

from assistant.config import Settings
from assistant.conversation.history import ConversationStore
from assistant.errors import ConfigError
from assistant.pipeline import Assistant
from assistant.service import admin, chat, documents, openai_compat, source_page
from assistant.service.context import ServiceContext
from assistant.service.handlers import install_error_handlers
from assistant.service.reindex import Reindexer
from assistant.service.security import BodySizeLimit, StrictCORSMiddleware, cors_options

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
SLACK_MODULE = "assistant.service.slack"
OFFLINE_DOCS_URL = "/static-offline-docs"  # where fastapi-offline serves Swagger UI's and ReDoc's files
# ReDoc may load from this service only. It styles with inline <style> elements, runs its search
# in a worker made from a blob: URL and draws icons from data: URLs; anything elsewhere (its logo
# on cdn.redoc.ly) the browser blocks without sending a request.
REDOC_POLICY = "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; worker-src 'self' blob:"


def create_app(assistant: Assistant, settings: Settings, *, update_index: bool = False) -> FastAPI:
    """Builds the web application answering with `assistant`, configured by `settings`.

    `settings` governs the service (data folder, API keys, CORS, body size, file watching);
    the assistant's own settings govern the index, the corpus and question length. At
    start-up the index on disk is loaded in the background, and with `update_index` then
    brought up to date with the corpus (when the corpus folder exists, or no index does): the
    server listens at once, answers from the version on disk meanwhile, and swaps in the new
    one when it is complete. Versions that other processes build (the other workers of
    `assistant serve --workers N`, `assistant index`) are swapped in too.
    """
    context = ServiceContext(
        assistant=assistant,
        settings=settings,
        conversations=ConversationStore(settings.data_dir),
        reindexer=Reindexer(assistant),
    )
    cors = cors_options(settings)
    if settings.reindex_watch:
        _check_watchable(assistant.settings.corpus_dir)

    update = update_index and (assistant.settings.corpus_dir.is_dir() or not assistant.has_index())

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        reindexer = context.reindexer
        reindexer.start(update=update, watch=settings.reindex_watch)
        stop = asyncio.Event()
        watcher: asyncio.Task[None] | None = None
        # Of several processes serving one index, the keeper alone watches the corpus.
        if settings.reindex_watch and reindexer.keeper:
            watcher = asyncio.create_task(reindexer.watch(assistant.settings.corpus_dir, stop))
            watcher.add_done_callback(_report_watcher_end)
        try:
            yield
        finally:
            stop.set()
            if watcher is not None:
                await asyncio.wait([watcher])
            reindexer.stop()

    app = FastAPIOffline(
        title="assistant",
        summary="Answers questions from an organisation's documents, with citations you can check.",
        lifespan=lifespan,
        static_url=OFFLINE_DOCS_URL,
        redoc_url=None,  # our own page below
        # Swagger UI would send the schema's address to validator.swagger.io for a badge.
        swagger_ui_parameters={"validatorUrl": None},
    )
    app.state.context = context
    _add_redoc(app)
    install_error_handlers(app)
    # Added last = outermost: CORS headers go on every response, 413s included.
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(StrictCORSMiddleware, **cors)  # type: ignore[arg-type]
    for router in (admin.router, chat.router, documents.router, openai_compat.router, source_page.router):
        app.include_router(router)
    if settings.slack_enabled:
        app.include_router(_slack_router(context))
    _mount_static(app, STATIC_DIR, settings.examples)
    return app


def _add_redoc(app: FastAPI) -> None:
    """Serves ReDoc at /redoc from fastapi-offline's copy, barred from loading anything elsewhere."""

    @app.get("/redoc", include_in_schema=False)
    def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        page = get_redoc_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{OFFLINE_DOCS_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{OFFLINE_DOCS_URL}/favicon.png",
            with_google_fonts=False,
        )
        page.headers["Content-Security-Policy"] = REDOC_POLICY
        return page


def _check_watchable(corpus_dir: Path) -> None:
    if importlib.util.find_spec("watchfiles") is None:
        raise ConfigError("ASSISTANT_REINDEX_WATCH needs the watchfiles package: pip install watchfiles")
    if not corpus_dir.is_dir():
        raise ConfigError(f"ASSISTANT_REINDEX_WATCH is on but the corpus folder {corpus_dir} does not exist")


def _report_watcher_end(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error(
            "the corpus watcher stopped; reindex with POST /api/admin/reindex",
            exc_info=task.exception(),
        )


def _slack_router(context: ServiceContext) -> APIRouter:
    try:
        module = importlib.import_module(SLACK_MODULE)
    except ModuleNotFoundError as exc:
        if exc.name == SLACK_MODULE:
            raise ConfigError(
                "ASSISTANT_SLACK_BOT_TOKEN and ASSISTANT_SLACK_SIGNING_SECRET are set, but this "
                "version has no Slack bot: unset them"
            ) from exc
        raise ConfigError(f"the Slack bot needs {exc.name}: pip install 'assistant[slack]'") from exc
    router: APIRouter = module.create_router(context)
    return router


def _mount_static(app: FastAPI, folder: Path, examples: list[str]) -> None:
    """Serves the widget's files: the demo page at /, widget.js at /widget.js, all at /static.

    The demo page's widget suggests the configured example questions (`ASSISTANT_EXAMPLE_QUESTIONS`).
    """

    def installed(name: str) -> Path:
        path = folder / name
        if not path.is_file():
            raise HTTPException(404, f"{name} is not part of this installation")
        return path

    def serve(name: str) -> FileResponse:
        # Revalidate every time: sites embedding the widget pick up a new version at once.
        return FileResponse(installed(name), headers={"Cache-Control": "no-cache"})

    @app.get("/", include_in_schema=False)
    def demo_page() -> HTMLResponse:
        suggestions = html.escape("|".join(examples), quote=True)
        page = installed("index.html").read_text(encoding="utf-8")
        page = page.replace('data-suggestions=""', f'data-suggestions="{suggestions}"')
        return HTMLResponse(page, headers={"Cache-Control": "no-cache"})

    @app.get("/widget.js", include_in_schema=False)
    def widget() -> FileResponse:
        return serve("widget.js")

    if folder.is_dir():
        app.mount("/static", StaticFiles(directory=folder), name="static")
