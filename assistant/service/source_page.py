"""A cited passage -> a readable HTML page: GET /source/{doc}?start=&end=&exp=&sig=

The page Slack answers link to: the document's title, the section and page, and the passage
highlighted in the text around it (its section, at most BEFORE_CHARS before and AFTER_CHARS
after it, so that on a phone the passage shows without scrolling far), with a link back to the
assistant. People open it from Slack without an API key, so when
ASSISTANT_API_KEYS is set the link must carry a valid, unexpired signature (links.py) and is
refused with a readable 403 page otherwise; without API keys the page is open.

Document text is untrusted: everything is HTML-escaped, and the Content-Security-Policy allows
nothing but the page's own stylesheet (no scripts, no images, no forms, no frames).
"""

from __future__ import annotations

import base64
import hashlib
import html
import re
import time
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse

from assistant.errors import NotFoundError
from assistant.records import Document
from assistant.service.context import Context
from assistant.service.documents import BAD_ID
from assistant.service.links import LinkCheck, LinkSigner

router = APIRouter(tags=["source"])

BEFORE_CHARS = 500  # text shown before the passage, within its section
AFTER_CHARS = 1500  # and after it
_ELLIPSIS = "\u2026"

_STYLE = """
:root { --ink: #1c2430; --muted: #5f6b7a; --line: #e3e7ee; --accent: #2458d6;
  font-family: -apple-system, BlinkMacSystemFont, "Segoe UI", Roboto, "Helvetica Neue", Arial,
    "Noto Sans", "Liberation Sans", sans-serif; color: var(--ink); line-height: 1.6; }
body { margin: 0; background: #f6f7f9; }
main { max-width: 760px; margin: 0 auto; padding: 32px 20px 56px; }
.eyebrow { font-size: 13px; font-weight: 700; letter-spacing: .08em; text-transform: uppercase;
  color: var(--accent); margin: 0 0 6px; }
h1 { font-size: 26px; line-height: 1.25; margin: 0 0 6px; overflow-wrap: anywhere; }
.meta { color: var(--muted); font-size: 15px; margin: 0 0 20px; overflow-wrap: anywhere; }
.meta code { font-size: 13.5px; }
.text { background: #fff; border: 1px solid var(--line); border-radius: 12px; padding: 18px 20px;
  font-size: 16px; color: #3b4552; white-space: pre-wrap; overflow-wrap: anywhere; margin: 0; }
mark { background: #ffe9a8; color: var(--ink); padding: 1px 2px; border-radius: 3px;
  box-shadow: 0 0 0 1px #f3d27a; }
.note { color: var(--muted); font-size: 14px; margin: 16px 0 0; }
a { color: var(--accent); }
"""
# The stylesheet's hash lets the Content-Security-Policy allow it and nothing else.
_STYLE_HASH = base64.b64encode(hashlib.sha256(_STYLE.encode()).digest()).decode()
HEADERS = {
    "Content-Security-Policy": (
        f"default-src 'none'; style-src 'sha256-{_STYLE_HASH}'; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    # The link's signature must not travel on to other sites in a Referer header.
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "private, no-cache",
}

_REFUSALS = {
    LinkCheck.MISSING: "This link is not signed. Open the source from a link in an answer of the assistant.",
    LinkCheck.INVALID: "This link's signature does not match it: it was changed, or made for another server.",
    LinkCheck.EXPIRED: "This link has expired. Ask the assistant again for a fresh link.",
    LinkCheck.NO_KEY: (
        "This service signs no links (neither ASSISTANT_LINK_SECRET nor ASSISTANT_SLACK_SIGNING_SECRET "
        "is set), so its source pages cannot be opened without an API key."
    ),
}


@router.get("/source/{doc_id:path}", response_class=HTMLResponse, include_in_schema=False)
def source_page(
    doc_id: str,
    context: Context,
    start: Annotated[str, Query()] = "",
    end: Annotated[str, Query()] = "",
    exp: Annotated[str, Query()] = "",
    sig: Annotated[str, Query()] = "",
) -> HTMLResponse:
    """Renders the passage doc[start:end] highlighted in its context, if the link may open it."""
    home = _home(context.settings.public_url, doc_id)
    if not doc_id or BAD_ID.search(doc_id):
        return _error(400, "Not a document", "This link does not name a document of the assistant.", home)
    span = _span(start, end)
    if span is None:
        return _error(400, "Not a passage", "This link does not say which passage to show.", home)
    first, last = span
    expires = int(exp) if exp.isdigit() else None
    signer = LinkSigner.from_settings(context.settings)
    # Checked before the document is looked up, so that no one learns which documents exist.
    if context.settings.api_keys:
        check = signer.check(doc_id, first, last, expires, sig) if signer else LinkCheck.NO_KEY
        if check is not LinkCheck.VALID:
            return _error(403, "This link cannot be opened", _REFUSALS[check], home)
    try:
        document = context.assistant.store.document(doc_id)
    except NotFoundError:
        return _error(404, "Document not found", "The assistant's documents do not include this one (any more).", home)
    if last > len(document.text):
        return _error(404, "Passage not found", "The document has changed since this link was made.", home)
    return HTMLResponse(_page(document, first, last, home, expires), headers=HEADERS)


def _span(start: str, end: str) -> tuple[int, int] | None:
    if not (start.isdigit() and end.isdigit()):
        return None
    first, last = int(start), int(end)
    return (first, last) if first < last else None


def _home(public_url: str | None, doc_id: str) -> str:
    """Returns the assistant's home page address as seen from the source page."""
    if public_url:
        return public_url.rstrip("/") + "/"
    # Relative, so that it also works behind a proxy that serves the service under a prefix:
    # from /source/a/b.txt, "../../" is /.
    return "../" * max(1, doc_id.count("/") + 1)


def _context(document: Document, start: int, end: int) -> tuple[str, str]:
    """Returns the text before and after the passage: its section, within BEFORE_CHARS and AFTER_CHARS."""
    text = document.text
    section = document.section_at(start)
    first, last = (section.start, max(section.end, end)) if section else (0, len(text))
    low, high = max(first, start - BEFORE_CHARS), min(last, end + AFTER_CHARS)
    before, after = text[low:start], text[end:high]
    # Context cut short starts and ends at a word, and says so.
    if low > first:
        before = _ELLIPSIS + re.sub(r"^\S*\s", "", before)
    if high < last:
        after = re.sub(r"\s\S*$", "", after) + _ELLIPSIS
    # Runs of blank lines (page breaks, spaced headings) say nothing here.
    return re.sub(r"\n\s*\n\s*\n", "\n\n", before), re.sub(r"\n\s*\n\s*\n", "\n\n", after)


def _page(document: Document, start: int, end: int, home: str, expires: int | None) -> str:
    e = html.escape
    section = document.section_at(start)
    where = [section.title] if section and section.title != document.title else []
    page = document.page_at(start)
    if page is not None:
        where.append(f"page {page}")
    before, after = _context(document, start, end)
    meta = " \u00b7 ".join([*map(e, where), f"<code>{e(document.id)}</code>"])
    valid = ""
    if expires is not None:
        day = time.gmtime(expires)
        until = f"{day.tm_mday} {time.strftime('%B %Y', day)}"
        valid = f" This link works until {e(until)}."
    body = (
        '<p class="eyebrow">Source</p>'
        f"<h1>{e(document.title or document.id)}</h1>"
        f'<p class="meta">{meta}</p>'
        f'<blockquote class="text">{e(before)}<mark>{e(document.text[start:end])}</mark>{e(after)}</blockquote>'
        f'<p class="note">The highlighted passage is the one the answer cites.{valid} '
        f'<a href="{e(home)}">Ask the assistant</a></p>'
    )
    return _html(f"{document.title or document.id} \u00b7 source", body)


def _error(status: int, title: str, message: str, home: str) -> HTMLResponse:
    e = html.escape
    body = (
        '<p class="eyebrow">Source</p>'
        f"<h1>{e(title)}</h1>"
        f'<p class="meta">{e(message)}</p>'
        f'<p class="note"><a href="{e(home)}">Ask the assistant</a></p>'
    )
    return HTMLResponse(_html(title, body), status_code=status, headers=HEADERS)


def _html(title: str, body: str) -> str:
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="robots" content="noindex">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><main>{body}</main></body></html>\n"
    )
