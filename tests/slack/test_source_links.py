"""Source links in Slack answers -> the readable source page: escaped, signed, expiring.

The page runs in the real service (uvicorn, real index). A planted document full of markup
checks the escaping; API keys on the service check that only correctly signed, unexpired links
open a page, since people clicking in Slack have no key to send.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urljoin

import httpx
import pytest

from assistant.config import Settings
from assistant.embedding import Embedder
from assistant.pipeline import Assistant
from assistant.service.app import create_app
from assistant.service.links import LINK_DAYS, LinkSigner
from tests.conftest import LIST_QUESTION
from tests.service.conftest import API_KEY, LiveServer, live_server, service_settings
from tests.slack.conftest import (
    BOT_USER,
    assert_source_links_open,
    block_texts,
    parse_source_page,
)

LINK_SECRET = "a-link-secret-0123456789abcdef"
DOC = "4-motors-industry-4-0-concept-note.txt"

# A document written to break out of the page: markup in its heading, its text and its name.
HOSTILE_DOC = "notes/plan <b>&'\"2025.md"
HOSTILE_TEXT = """# Plan <script>alert("title")</script> & budget

## Costs </mark><b>section</b>

The hall costs 4,000 euros a year.
The <script>alert(document.cookie)</script> rent is "<img src=x onerror=alert(1)>" & 'more'</mark><b>.
The caterer charges 12 euros a head.
"""
HOSTILE_SENTENCE = (
    "The <script>alert(document.cookie)</script> rent is \"<img src=x onerror=alert(1)>\" & 'more'</mark><b>."
)


@pytest.fixture
def hostile_server(tmp_path: Path, real_embedder: Embedder) -> Iterator[tuple[LiveServer, Assistant]]:
    """The service over an index of the planted document only, without API keys."""
    corpus = tmp_path / "corpus"
    (corpus / "notes").mkdir(parents=True)
    (corpus / HOSTILE_DOC).write_text(HOSTILE_TEXT, encoding="utf-8")
    settings = Settings(corpus_dir=corpus, index_dir=tmp_path / "index", data_dir=tmp_path / "data")
    assistant = Assistant(settings, embedder=real_embedder)
    assistant.index()
    with live_server(create_app(assistant, settings)) as server:
        yield server, assistant


@contextlib.contextmanager
def _service(assistant: Assistant, tmp_path: Path, **overrides: Any) -> Iterator[httpx.Client]:
    settings = service_settings(tmp_path, assistant.settings, **overrides)
    with live_server(create_app(assistant, settings)) as server, server.client() as client:
        yield client


def _passage(assistant: Assistant) -> tuple[int, int, str]:
    """A passage of DOC that answers LIST_QUESTION: its start, end and text."""
    answer = assistant.ask(LIST_QUESTION)
    citation = next(c for c in answer.citations if c.doc == DOC)
    return citation.start, citation.end, citation.quote


def _link(doc: str, query: dict[str, Any]) -> str:
    return f"/source/{quote(doc, safe='/')}?{urlencode(query)}"


def test_source_page_shows_the_passage_highlighted_and_escaped(
    hostile_server: tuple[LiveServer, Assistant],
) -> None:
    server, assistant = hostile_server
    document = assistant.store.document(HOSTILE_DOC)
    start = document.text.index(HOSTILE_SENTENCE)
    end = start + len(HOSTILE_SENTENCE)
    with server.client() as client:
        # No API keys: the page is open, signed or not.
        response = client.get(_link(HOSTILE_DOC, {"start": start, "end": end}))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    csp = response.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src" not in csp
    assert response.headers["referrer-policy"] == "no-referrer"

    page = parse_source_page(response.text)
    # The document's markup arrives as text: the one highlighted passage is the cited span ...
    assert page.marked == [HOSTILE_SENTENCE]
    # ... and no element of the page comes from the document.
    assert page.tags == {
        "html",
        "head",
        "meta",
        "title",
        "style",
        "body",
        "main",
        "p",
        "h1",
        "code",
        "blockquote",
        "mark",
        "a",
    }
    assert "<script>" not in response.text and "&lt;script&gt;" in response.text
    # Title, section and document id, in its context: the sentences before and after it.
    assert page.headline == document.title == 'Plan alert("title") & budget'  # Markdown drops the tags
    assert "Costs section" in page.text
    assert HOSTILE_DOC in page.text
    assert "The hall costs 4,000 euros a year." in page.text
    assert "The caterer charges 12 euros a head." in page.text
    # The link back leads to the service's home page, whatever the document id's depth.
    (home,) = page.links
    assert urljoin(str(response.url), home) == server.url + "/"

    with server.client() as client:
        unknown = client.get(_link("notes/none.md", {"start": 0, "end": 5}))
        assert unknown.status_code == 404
        assert "Document not found" in parse_source_page(unknown.text).headline
        beyond = client.get(_link(HOSTILE_DOC, {"start": 0, "end": len(document.text) + 1}))
        assert beyond.status_code == 404
        for query in ({"start": 9, "end": 3}, {"start": "x", "end": 3}, {"end": 3}):
            bad = client.get(_link(HOSTILE_DOC, query))
            assert bad.status_code == 400
            assert bad.headers["content-type"].startswith("text/html")
        traversal = client.get("/source/notes/%2e%2e/%2e%2e/etc/passwd?start=0&end=5")
        assert traversal.status_code == 400
        assert "root:" not in traversal.text


def test_signed_links_open_with_api_keys_and_tampered_or_expired_ones_are_refused(
    assistant: Assistant, tmp_path: Path
) -> None:
    start, end, quote_text = _passage(assistant)
    overrides = {"api_keys": [API_KEY], "link_secret": LINK_SECRET}
    signer = LinkSigner.from_settings(service_settings(tmp_path, assistant.settings, **overrides))
    assert signer is not None
    signed = signer.query(DOC, start, end)
    assert abs(int(signed["exp"]) - time.time() - LINK_DAYS * 86_400) < 60

    with _service(assistant, tmp_path, **overrides) as client:
        opened = client.get(_link(DOC, signed))
        assert opened.status_code == 200, opened.text
        page = parse_source_page(opened.text)
        assert page.marked == [quote_text]
        assert "This link works until" in page.text
        # The JSON view still needs a key.
        assert client.get(f"/api/documents/{DOC}", params={"start": start, "end": end}).status_code == 401

        other_signer = LinkSigner.from_settings(service_settings(tmp_path, assistant.settings, link_secret="x" * 30))
        assert other_signer is not None
        month_ago = time.time() - (LINK_DAYS + 1) * 86_400
        refused = {
            "unsigned": ({"start": start, "end": end}, "not signed"),
            "another passage": ({**signed, "end": end + 1}, "does not match"),
            "a later expiry": ({**signed, "exp": int(signed["exp"]) + 86_400}, "does not match"),
            "a forged signature": ({**signed, "sig": signed["sig"][:-2] + "AA"}, "does not match"),
            "another secret": (other_signer.query(DOC, start, end), "does not match"),
            "expired": (signer.query(DOC, start, end, now=month_ago), "expired"),
        }
        for case, (query, reason) in refused.items():
            response = client.get(_link(DOC, query))
            assert response.status_code == 403, case
            assert response.headers["content-type"].startswith("text/html"), case
            page = parse_source_page(response.text)
            assert page.headline == "This link cannot be opened", case
            assert reason in page.text, case
            assert quote_text not in response.text, case
        # A valid signature for another document does not open this one.
        moved = client.get(_link("eu-clusters.txt", signed))
        assert moved.status_code == 403

    # Without a secret to sign with, the links of a keyed service cannot open: the page says why.
    with _service(assistant, tmp_path, api_keys=[API_KEY]) as client:
        response = client.get(_link(DOC, signed))
        assert response.status_code == 403
        assert "ASSISTANT_LINK_SECRET" in parse_source_page(response.text).text


def test_link_key_is_derived_from_the_slack_signing_secret_without_a_link_secret(
    assistant: Assistant, tmp_path: Path
) -> None:
    def signer(**overrides: Any) -> LinkSigner | None:
        return LinkSigner.from_settings(service_settings(tmp_path, assistant.settings, **overrides))

    assert signer() is None
    slack = signer(slack_signing_secret="slack-signing-secret-0123")
    assert slack is not None
    # Derived, not the secret itself: a link's signature says nothing about Slack's secret.
    assert slack.key != b"slack-signing-secret-0123"
    same, other = (
        signer(slack_signing_secret="slack-signing-secret-0123"),
        signer(slack_signing_secret="another-secret"),
    )
    assert same is not None and same.key == slack.key
    assert other is not None and other.key != slack.key
    both = signer(slack_signing_secret="slack-signing-secret-0123", link_secret=LINK_SECRET)
    assert both is not None and both.key not in (slack.key, LINK_SECRET.encode())


def test_slack_answer_links_open_the_source_page_with_api_keys_set(start_slack: Any) -> None:
    with start_slack(api_keys=[API_KEY]) as slack:
        response = slack.event(
            {
                "type": "app_mention",
                "user": "U0ALICE",
                "text": f"<@{BOT_USER}> {LIST_QUESTION}",
                "ts": "1700000900.000100",
                "channel": "C0CHAN",
            },
            "Ev0SOURCES",
        )
        assert response.status_code == 200
        (call,) = slack.fake.expect(1)
        raw = call.body["blocks"]
        blocks = json.loads(raw) if isinstance(raw, str) else raw
        texts = block_texts(blocks)
        sources = next(t for t in texts if t.startswith("*Sources*"))
        answer_id = next(e["value"] for b in blocks if b["type"] == "actions" for e in b["elements"])
        citations = slack.store.exchange(answer_id).answer.citations
        assert len(citations) == 3
        # Without a key, as from Slack: each link opens its page, the quote highlighted.
        assert_source_links_open(slack, sources, citations)
        # The [n] markers in the answer's text link to the same pages.
        answer_text = texts[0]
        assert answer_text.count("/source/") == answer_text.count("|[")
