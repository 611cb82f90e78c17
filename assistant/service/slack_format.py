"""Answers -> Slack messages (mrkdwn and Block Kit); Slack message text -> a plain question.

An answer message, top to bottom:

    context   "<@U1> asked: ..." (when the message is shared from /ask)
    section   the answer: "- " bullets as "•", [n] markers linked to their passage
              (or, for "not in the documents", a distinct :mag: notice and a hint)
    divider
    section   "Sources": [n] title (linked) · section · page
    actions   "Post to channel" (the private /ask copy only), "Helpful", "Not helpful"

Slack's limits are kept by construction: a section's text is at most SECTION_CHARS, the
answer takes at most ANSWER_SECTIONS sections and the sources SOURCE_SECTIONS (longer ones
are shortened with a note), so a message never nears 50 blocks. Messages are also kept small
because Slack sends the whole message back with every button click, and the service refuses
request bodies over ASSISTANT_MAX_BODY_BYTES.

Links to a passage point at the service's readable source page,
`{public_url}/source/{doc}?start=..&end=..&exp=..&sig=..` (source_page.py), signed so that they
open without an API key (links.py); they are left out without a public URL.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from typing import Any, Literal

from assistant.records import Answer, Citation
from assistant.service.links import LinkSigner, source_url
from assistant.text import visible_text

SECTION_CHARS = 3000  # Slack's limit for a section's text
CONTEXT_CHARS = 3000  # and for a context element's text
MAX_BLOCKS = 50  # Slack's limit for a message
ANSWER_SECTIONS = 2
SOURCE_SECTIONS = 1
FALLBACK_CHARS = 300  # the notification text shown where blocks are not
QUESTION_CHARS = 500  # how much of a question is repeated above a shared answer

ACTION_POST = "post_answer"
ACTION_HELPFUL = "feedback_up"
ACTION_NOT_HELPFUL = "feedback_down"

NOT_FOUND_HINT = (
    "I answer only from the indexed documents. Try other words, or name the document, project or organisation you mean."
)
SHORTENED = "_(shortened: the full text is too long for a Slack message)_"

_MARKER = re.compile(r"\[(\d+)\]")
_BULLET = re.compile(r"^(\s*)[-*•]\s+")
_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*$")
_BOLD = re.compile(r"\*\*(?=\S)(.+?)(?<=\S)\*\*")
# Pieces that must not be cut apart: a <link|label>, an &entity;, spaces, a run of text.
_ATOM = re.compile(r"<[^<>]*>|&[a-z]+;|\s+|[^\s<&]+|.", re.S)

_USER_MENTION = re.compile(r"<@([UW][A-Z0-9]+)(?:\|([^>]*))?>")
_CHANNEL_MENTION = re.compile(r"<#[A-Z0-9]+(?:\|([^>]*))?>")
_SPECIAL_MENTION = re.compile(r"<!([^>|]*)(?:\|([^>]*))?>")
_LINK = re.compile(r"<([^<>|]+)(?:\|([^<>]*))?>")


@dataclass(frozen=True)
class SlackMessage:
    """A message as chat.postMessage and response_url take it: fallback text and blocks."""

    text: str
    blocks: tuple[dict[str, Any], ...]

    def payload(self) -> dict[str, Any]:
        """Returns the message fields, for chat.postMessage or a response_url."""
        return {"text": self.text, "blocks": [dict(b) for b in self.blocks]}


# -- incoming text ------------------------------------------------------------------------


def question_from_slack(text: str, bot_user_id: str | None = None) -> str:
    """Turns a Slack message's text into a plain question: mentions, markup and invisibles removed.

    The bot's own mention goes (any leading mention when the bot's id is unknown); other
    people's mentions keep their label if Slack sent one; links keep their label or URL;
    Slack's &amp; &lt; &gt; escapes are undone. NUL, zero-width and other characters no one
    sees go too, so that a mention followed by nothing readable is "" like a bare mention.
    """
    if bot_user_id:
        text = re.sub(rf"<@{re.escape(bot_user_id)}(?:\|[^>]*)?>", " ", text)
    else:
        text = re.sub(r"^\s*<@[UW][A-Z0-9]+(?:\|[^>]*)?>", " ", text)
    text = _USER_MENTION.sub(lambda m: f"@{m.group(2)}" if m.group(2) else " ", text)
    text = _CHANNEL_MENTION.sub(lambda m: f"#{m.group(1)}" if m.group(1) else " ", text)
    text = _SPECIAL_MENTION.sub(lambda m: m.group(2) or " ", text)
    text = _LINK.sub(lambda m: m.group(2) or m.group(1), text)
    text = html.unescape(text)
    # Last: a zero-width joiner that stood between two mentions is at an edge only now.
    return " ".join(visible_text(text).split())


# -- outgoing text ------------------------------------------------------------------------


def escape(text: str) -> str:
    """Escapes the three characters Slack reserves for markup: &, < and >."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def link(url: str, label: str) -> str:
    """Returns a mrkdwn link `<url|label>` (label escaped; a "|" would end the URL part)."""
    return f"<{escape(url)}|{escape(label.replace('|', '/'))}>"


def passage_url(public_url: str, citation: Citation, signer: LinkSigner | None = None) -> str:
    """Returns the address of a cited passage's source page (signed when there is a signer)."""
    return source_url(public_url, citation.doc, citation.start, citation.end, signer)


def answer_mrkdwn(answer: Answer, public_url: str | None = None, signer: LinkSigner | None = None) -> str:
    """Converts an answer's text to mrkdwn: escaped, bullets as "•", markers linked.

    Markdown an LLM may write is translated: **bold** to *bold*, headings to bold lines.
    A [n] marker becomes a link to its passage when a public URL is configured.
    """
    urls = {c.n: passage_url(public_url, c, signer) for c in answer.citations} if public_url else {}
    lines = []
    for line in escape(answer.text.strip()).split("\n"):
        heading = _HEADING.match(line)
        if heading:
            line = f"*{heading.group(1)}*"
        bullet = _BULLET.match(line)
        if bullet:
            nested = len(bullet.group(1).expandtabs(4)) >= 2
            line = ("    ◦ " if nested else "• ") + line[bullet.end() :]
        line = _BOLD.sub(r"*\1*", line)
        lines.append(line)
    text = "\n".join(lines)

    def marker(match: re.Match[str]) -> str:
        url = urls.get(int(match.group(1)))
        return link(url, match.group(0)) if url else match.group(0)

    return _MARKER.sub(marker, text)


def source_line(citation: Citation, public_url: str | None = None, signer: LinkSigner | None = None) -> str:
    """Returns one numbered source as mrkdwn: [n] title (linked) · section · page."""
    title = citation.title or citation.doc
    parts = [link(passage_url(public_url, citation, signer), title) if public_url else escape(title)]
    if citation.section and citation.section != title:
        parts.append(escape(citation.section))
    if citation.page is not None:
        parts.append(f"p. {citation.page}")
    return f"*[{citation.n}]* " + " · ".join(parts)


def answer_message(
    answer: Answer,
    *,
    answer_id: str | None,
    public_url: str | None = None,
    signer: LinkSigner | None = None,
    question: str | None = None,
    asked_by: str | None = None,
    shareable: bool = False,
) -> SlackMessage:
    """Renders an answer as a Slack message with its sources and feedback buttons.

    Source links (with a `public_url`) are signed by `signer`. `question` is repeated above
    the answer ("<@asked_by> asked", or "You asked" without a user); `shareable` adds the "Post
    to channel" button of the private /ask copy. Without an `answer_id` (nothing stored) there
    are no buttons.
    """
    blocks: list[dict[str, Any]] = []
    if question:
        who = f"<@{asked_by}> asked" if asked_by else "You asked"
        asked = _shorten(escape(question), QUESTION_CHARS)
        blocks.append(_context(f"{who}: _{asked}_"))
    body = answer_mrkdwn(answer, public_url, signer) or "_(empty answer)_"
    if answer.abstained:
        blocks.append(_section(":mag: *Not in the documents*"))
        blocks.extend(_section(t) for t in _pieces(body, ANSWER_SECTIONS))
        blocks.append(_context(NOT_FOUND_HINT))
    else:
        blocks.extend(_section(t) for t in _pieces(body, ANSWER_SECTIONS))
    if answer.citations:
        heading = "*Closest passages*" if answer.abstained else "*Sources*"
        lines = "\n".join(source_line(c, public_url, signer) for c in answer.citations)
        blocks.append({"type": "divider"})
        blocks.extend(_section(t) for t in _pieces(f"{heading}\n{lines}", SOURCE_SECTIONS))
    if answer_id:
        blocks.append(_actions(answer_id, shareable))
    assert len(blocks) <= MAX_BLOCKS  # bounded by ANSWER_SECTIONS and SOURCE_SECTIONS
    fallback = answer.text if not answer.abstained else f"Not in the documents: {answer.text}"
    return SlackMessage(
        text=_shorten(escape(" ".join(fallback.split())), FALLBACK_CHARS),
        blocks=tuple(blocks),
    )


def notice_message(text: str, emoji: str = ":warning:") -> SlackMessage:
    """Renders a short notice (an error, a usage hint) as a one-section message."""
    body = _shorten(f"{emoji} {escape(text)}", SECTION_CHARS)
    return SlackMessage(text=_shorten(escape(text), FALLBACK_CHARS), blocks=(_section(body),))


def feedback_note(rating: Literal["up", "down"]) -> SlackMessage:
    """Renders the private thank-you shown after a feedback button."""
    if rating == "up":
        return notice_message("Thanks, glad it helped. Your feedback was recorded.", ":thumbsup:")
    return notice_message(
        "Thanks, your feedback was recorded: it helps us improve the answers and the documents.",
        ":memo:",
    )


# -- blocks and limits --------------------------------------------------------------------


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _context(text: str) -> dict[str, Any]:
    return {
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": _shorten(text, CONTEXT_CHARS)}],
    }


def _button(label: str, action_id: str, value: str, style: str | None = None) -> dict[str, Any]:
    button: dict[str, Any] = {
        "type": "button",
        "action_id": action_id,
        "text": {"type": "plain_text", "text": label, "emoji": True},
        "value": value,
    }
    if style:
        button["style"] = style
    return button


def _actions(answer_id: str, shareable: bool) -> dict[str, Any]:
    buttons = []
    if shareable:
        buttons.append(_button("Post to channel", ACTION_POST, answer_id, "primary"))
    buttons.append(_button(":thumbsup: Helpful", ACTION_HELPFUL, answer_id))
    buttons.append(_button(":thumbsdown: Not helpful", ACTION_NOT_HELPFUL, answer_id))
    return {"type": "actions", "block_id": "answer_actions", "elements": buttons}


def _pieces(text: str, max_pieces: int, limit: int = SECTION_CHARS) -> list[str]:
    """Splits mrkdwn into at most `max_pieces` texts of at most `limit` characters.

    Splits at line breaks where it can, else at spaces, never inside a link or an escape;
    what does not fit is dropped and the last piece ends with a note saying so.
    """
    pieces: list[str] = []
    current = ""
    for line in text.split("\n"):
        candidate = f"{current}\n{line}" if current else line
        if len(candidate) <= limit:
            current = candidate
            continue
        if current:
            pieces.append(current)
        while len(line) > limit:
            head, line = _cut(line, limit)
            pieces.append(head)
        current = line
    if current:
        pieces.append(current)
    if len(pieces) <= max_pieces:
        return pieces
    kept = pieces[:max_pieces]
    note = f"…\n{SHORTENED}"
    kept[-1] = _cut(kept[-1], limit - len(note) - 1)[0] + "\n" + note
    return kept


def _shorten(text: str, limit: int, mark: str = "…") -> str:
    """Cuts `text` to at most `limit` characters at a safe place, ending with `mark`."""
    if len(text) <= limit:
        return text
    return _cut(text, limit - len(mark))[0] + mark


def _cut(text: str, limit: int) -> tuple[str, str]:
    """Splits `text` into a head of at most `limit` characters and the rest, at a safe place."""
    size = 0
    last_space = 0
    for atom in _ATOM.finditer(text):
        end = atom.end()
        if end > limit:
            break
        size = end
        if atom.group().isspace():
            last_space = atom.start()
    else:
        return text, ""
    if last_space > limit // 2:
        size = last_space
    if size == 0:  # one word (or link) longer than the limit: cut it anyway
        size = limit
    return text[:size].rstrip(), text[size:].lstrip()
