"""Example questions come from the settings, never from the product's code: they name the deployer's documents."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from assistant.config import Settings
from assistant.service.slack import usage

EXAMPLES = 'Who chairs the <board> & "council"?|When was the workshop held?'


def test_the_demo_page_suggests_the_configured_questions_escaped(
    start_server: Callable[..., contextlib.AbstractContextManager[Any]],
) -> None:
    with start_server(example_questions=EXAMPLES) as server, server.client() as client:
        page = client.get("/")
    assert page.status_code == 200 and page.headers["cache-control"] == "no-cache"
    expected = "Who chairs the &lt;board&gt; &amp; &quot;council&quot;?|When was the workshop held?"
    assert f'data-suggestions="{expected}"' in page.text
    assert "<board>" not in page.text


def test_without_examples_the_demo_page_suggests_nothing_and_names_no_document(
    start_server: Callable[..., contextlib.AbstractContextManager[Any]],
) -> None:
    with start_server() as server, server.client() as client:
        page = client.get("/")
    assert page.status_code == 200
    assert 'data-suggestions=""' in page.text
    for corpus_word in ("Gold label", "Luxembourg", "bwcon", "cluster"):
        assert corpus_word not in page.text


def test_the_slack_hint_quotes_the_first_example_or_none() -> None:
    assert Settings(example_questions=" | ").examples == []
    examples = Settings(example_questions=EXAMPLES).examples
    assert examples == ['Who chairs the <board> & "council"?', "When was the workshop held?"]
    assert "`/ask Who chairs the &lt;board&gt; &amp; " in usage(examples)  # Slack's mrkdwn escapes
    generic = usage([])
    assert "`/ask your question`" in generic and "Gold" not in generic
