"""The HTTP service: FastAPI app factory and routers that translate HTTP to and from core records.

    app.py            create_app(assistant, settings): middleware, handlers, routers, static
    server.py         run_server(assistant, host, port): uvicorn
    context.py        what every route needs (ServiceContext) and the request log line
    models.py         HTTP schemas (pydantic)
    handlers.py       the one place where errors become HTTP responses
    security.py       API keys, CORS, request body size
    chat.py           /api/chat, /api/chat/stream (SSE), /api/conversations, /api/feedback
    openai_compat.py  /v1/chat/completions, /v1/models
    documents.py      /api/documents
    admin.py          /healthz, /readyz, /api/admin/reindex
    reindex.py        index rebuilds while serving: one at a time, off the event loop

The service only calls the library (`Assistant`, `ConversationStore`); it holds no retrieval or
answering logic.
"""
