"""Answers -> Slack messages, and Slack text -> questions: escaping, markers, sources, limits."""

from __future__ import annotations

import json
import re
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from assistant.records import NOT_FOUND, Answer, Citation
from assistant.service.links import LINK_DAYS, LinkCheck, LinkSigner
from assistant.service.slack_format import (
    FALLBACK_CHARS,
    MAX_BLOCKS,
    SECTION_CHARS,
    SHORTENED,
    answer_message,
    answer_mrkdwn,
    escape,
    notice_message,
    passage_url,
    question_from_slack,
    source_line,
)
from tests.slack.conftest import block_texts

PUBLIC = "https://docs.example.org/assistant/"


def _citation(n: int, **changes: Any) -> Citation:
    values: dict[str, Any] = {
        "n": n,
        "doc": "reports/2024 q1.txt",
        "title": "Quarterly report",
        "section": f"Section {n}",
        "start": 10 * n,
        "end": 10 * n + 5,
        "quote": "quote",
    }
    values.update(changes)
    return Citation(**values)


def _answer(text: str, citations: tuple[Citation, ...] = (), abstained: bool = False) -> Answer:
    return Answer(question="q", text=text, citations=citations, abstained=abstained)


def _unescaped_markup(text: str) -> list[str]:
    """Any & < > that is not part of an escape or of a <link|label> we made."""
    text = re.sub(r"<https?://[^<>|\s]+\|[^<>]*>|<@[A-Z0-9]+>", "", text)
    text = re.sub(r"&(amp|lt|gt);", "", text)
    return re.findall(r"[&<>]", text)


def test_escape_replaces_the_three_control_characters() -> None:
    assert escape("R&D <b> a > b") == "R&amp;D &lt;b&gt; a &gt; b"


def test_bullets_markers_and_markdown_become_mrkdwn() -> None:
    answer = _answer(
        "Three clusters [1]:\n\n- **Plastipolis** [1]\n  - nested [2]\n* Pool-Net & co <3 [2]\n## Next steps",
        (_citation(1), _citation(2)),
    )
    text = answer_mrkdwn(answer)
    assert text.splitlines() == [
        "Three clusters [1]:",
        "",
        "• *Plastipolis* [1]",
        "    ◦ nested [2]",
        "• Pool-Net &amp; co &lt;3 [2]",
        "*Next steps*",
    ]


def test_markers_link_to_their_passage_when_a_public_url_is_set() -> None:
    citation = _citation(1, start=120, end=180)
    text = answer_mrkdwn(_answer("Gold label [1], and [7] points nowhere.", (citation,)), PUBLIC)
    url = "https://docs.example.org/assistant/source/reports/2024%20q1.txt?start=120&amp;end=180"
    assert text == f"Gold label <{url}|[1]>, and [7] points nowhere."
    assert passage_url(PUBLIC, citation).endswith("/source/reports/2024%20q1.txt?start=120&end=180")


def test_links_are_signed_for_the_passage_they_open() -> None:
    signer = LinkSigner(b"k" * 32)
    citation = _citation(1, start=120, end=180)
    url = urlsplit(passage_url(PUBLIC, citation, signer))
    assert url.path == "/assistant/source/reports/2024%20q1.txt"
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    assert set(query) == {"start", "end", "exp", "sig"}
    expires = int(query["exp"])
    assert abs(expires - time.time() - LINK_DAYS * 86_400) < 60
    check = signer.check("reports/2024 q1.txt", 120, 180, expires, query["sig"])
    assert check is LinkCheck.VALID
    # Signed links in the message text are escaped for mrkdwn like any other.
    text = answer_mrkdwn(_answer("Gold label [1].", (citation,)), PUBLIC, signer)
    assert re.fullmatch(r"Gold label <https://\S+&amp;exp=\d+&amp;sig=[\w-]+\|\[1\]>\.", text), text
    assert _unescaped_markup(text) == []


def test_source_lines_name_title_section_and_page() -> None:
    line = source_line(_citation(2, title="A | B <draft>", section="3. Costs & risks", page=4))
    assert line == "*[2]* A | B &lt;draft&gt; · 3. Costs &amp; risks · p. 4"
    linked = source_line(_citation(2, title="A | B"), PUBLIC)
    assert linked.startswith("*[2]* <https://docs.example.org/assistant/source/")
    assert linked.endswith("|A / B> · Section 2")  # "|" would end the link's label


def test_answer_message_layout() -> None:
    answer = _answer("Plastipolis [1] and Pool-Net [2].", (_citation(1), _citation(2)))
    message = answer_message(answer, answer_id="a1", public_url=PUBLIC)
    kinds = [b["type"] for b in message.blocks]
    assert kinds == ["section", "divider", "section", "actions"]
    texts = block_texts(message.blocks)
    assert texts[0].startswith("Plastipolis <https://")
    assert texts[1].startswith("*Sources*\n*[1]* <https://")
    assert texts[1].count("\n*[") == 2
    buttons = message.blocks[-1]["elements"]
    assert [b["action_id"] for b in buttons] == ["feedback_up", "feedback_down"]
    assert {b["value"] for b in buttons} == {"a1"}
    assert message.text == "Plastipolis [1] and Pool-Net [2]."
    json.dumps(message.payload())  # what the Web API gets is plain JSON


def test_shared_answer_names_the_asker_and_private_one_can_be_posted() -> None:
    answer = _answer("Yes [1].", (_citation(1),))
    shared = answer_message(answer, answer_id="a1", question="Is <it> & so?", asked_by="U1")
    assert block_texts(shared.blocks)[0] == "<@U1> asked: _Is &lt;it&gt; &amp; so?_"
    private = answer_message(answer, answer_id="a1", question="Q?", shareable=True)
    assert block_texts(private.blocks)[0] == "You asked: _Q?_"
    assert private.blocks[-1]["elements"][0]["action_id"] == "post_answer"
    assert answer_message(answer, answer_id=None).blocks[-1]["type"] != "actions"


def test_not_found_answers_look_different() -> None:
    message = answer_message(_answer(NOT_FOUND, abstained=True), answer_id="a1")
    texts = block_texts(message.blocks)
    assert texts[0] == ":mag: *Not in the documents*"
    assert texts[1] == escape(NOT_FOUND)
    assert "indexed documents" in texts[2]
    assert not any("Sources" in t for t in texts)
    assert message.text.startswith("Not in the documents")


@pytest.mark.parametrize("shape", ["one-long-line", "many-lines", "many-links"])
def test_long_answers_and_many_sources_stay_within_slack_limits(shape: str) -> None:
    citations = tuple(_citation(n, title=f"Title {n} & more " * 5) for n in range(1, 301))
    if shape == "one-long-line":
        text = " ".join(f"word{n} & <x> [{n % 300 + 1}]" for n in range(3000))
    elif shape == "many-lines":
        text = "\n".join(f"- item {n} is & <b> [{n % 300 + 1}]" for n in range(3000))
    else:
        text = "".join(f"[{n % 300 + 1}]" for n in range(5000))
    message = answer_message(_answer(text, citations), answer_id="a1", public_url=PUBLIC)
    assert len(message.blocks) <= MAX_BLOCKS
    assert len(message.text) <= FALLBACK_CHARS
    texts = block_texts(message.blocks)
    for block_text in texts:
        assert 0 < len(block_text) <= SECTION_CHARS
        assert not _unescaped_markup(block_text), block_text[-200:]
        # Never cut inside a link or an escape.
        assert block_text.count("<") == block_text.count(">")
    assert texts[1].endswith(SHORTENED)  # the answer says it was shortened
    assert texts[-1].endswith(SHORTENED)  # so do the sources
    assert len(json.dumps(message.payload())) < 20_000  # clicks send the message back


def test_question_from_slack_strips_the_bot_and_markup() -> None:
    text = (
        "<@U0BOT> what did <@U0ALICE|alice> post in <#C0GEN|general> about "
        "<https://example.org/a?b=1&amp;c=2|the plan> &amp; <mailto:x@y.org> &lt;today&gt;? <!here>"
    )
    assert question_from_slack(text, "U0BOT") == (
        "what did @alice post in #general about the plan & mailto:x@y.org <today>?"
    )
    assert question_from_slack("<@U0BOT> Which partners?", None) == "Which partners?"
    assert question_from_slack("<@U0BOT|assistant>", "U0BOT") == ""


def test_question_from_slack_drops_what_no_one_sees() -> None:
    # Nothing readable after the mention: no question, as with the mention alone.
    assert question_from_slack("<@U0BOT> \u200b\x00\ufeff", "U0BOT") == ""
    assert question_from_slack("\u200d<@U0BOT> \u200d <@U0BOT>\u2060", "U0BOT") == ""
    assert question_from_slack("<@U0BOT> Which\x00 clusters\u200b hold a Silver label?", "U0BOT") == (
        "Which clusters hold a Silver label?"
    )
    # The joiner inside an emoji sequence is part of what people see.
    assert question_from_slack("<@U0BOT> Who is the \U0001f469\u200d\U0001f4bb here?", "U0BOT") == (
        "Who is the \U0001f469\u200d\U0001f4bb here?"
    )


def test_notices_are_escaped_and_short() -> None:
    message = notice_message("x < y" * 2000)
    assert len(message.blocks[0]["text"]["text"]) <= SECTION_CHARS
    assert "<" not in message.blocks[0]["text"]["text"]
